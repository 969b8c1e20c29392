/* SPDX-License-Identifier: MIT */
/*
 * sw_changes.c - the keyed state as a stream of changes, for changelogs.
 *
 * A checkpoint writes every key; a changelog (Kafka Streams' state store
 * changelogs) writes only the keys that changed since the last time, so
 * that a task's state can move to another process as "the last
 * checkpoint plus the changes since". A tracked table keeps one byte per
 * entry, set by the update that touches it (sw__keytab_touch_at, in the
 * drain) and the hashes of the keys a time-to-live or a key
 * budget dropped; sw_pipeline_changes hands them out and clears them.
 * Applying the records in order onto the checkpoint gives back the state:
 * each record is a key's whole state, not a delta, so applying one twice
 * is harmless.
 */
#include "sw_pipeline_int.h"

#define KEY_BYTES 12

/* The largest table's block (max_block is set by the first push). */
static int64_t
widest(const sw_pipeline *p)
{
    int64_t w = 0;
    int t;

    for (t = 0; t < p->n_tables; t++) {
        if (p->tables[t].block > w)
            w = p->tables[t].block;
    }
    return w;
}

sw_rc
sw__keytab_grow_dirty(keytab *kt, int64_t i, sw_err *err)
{
    int64_t cap = kt->room > i + 1 ? kt->room : i + 1;
    unsigned char *d;

    if (cap < 2 * kt->dirty_cap)
        cap = 2 * kt->dirty_cap;
    d = sw__realloc_array(kt->dirty, (size_t)cap, 1);
    if (d == NULL)
        return sw__fail(err, SW_E_NOMEM, "pipeline: out of memory (changes)");
    memset(d + kt->dirty_cap, 0, (size_t)(cap - kt->dirty_cap));
    kt->dirty = d;
    kt->dirty_cap = cap;
    return SW_OK;
}

sw_rc
sw__keytab_note_gone(keytab *kt, uint64_t h, sw_err *err)
{
    if (kt->n_gone == kt->cap_gone) {
        int64_t cap = kt->cap_gone ? 2 * kt->cap_gone : 64;
        uint64_t *g = sw__realloc_array(kt->gone, (size_t)cap, sizeof(*g));

        if (g == NULL)
            return sw__fail(err, SW_E_NOMEM,
                            "pipeline: out of memory (changes)");
        kt->gone = g;
        kt->cap_gone = cap;
    }
    kt->gone[kt->n_gone++] = h;
    return SW_OK;
}

void
sw__keytab_changes_free(keytab *kt)
{
    sw__free(kt->dirty);
    sw__free(kt->gone);
    kt->dirty = NULL;
    kt->gone = NULL;
    kt->dirty_cap = kt->n_gone = kt->cap_gone = 0;
    kt->track = 0;
}

sw_rc
sw_pipeline_track_changes(sw_pipeline *p, int on, sw_err *err)
{
    int t;

    if (p == NULL)
        return sw__fail(err, SW_E_INVAL, "changes: NULL pipeline");
    for (t = 0; t < p->n_tables; t++) {
        sw__keytab_changes_free(&p->tables[t]);
        p->tables[t].track = on != 0;
    }
    return SW_OK;
}

static void
put_key(unsigned char *k, int table, uint64_t h)
{
    uint32_t t = (uint32_t)table;
    int i;

    for (i = 0; i < 4; i++)
        k[i] = (unsigned char)(t >> (8 * i));
    sw__put_le64(k + 4, h);
}

sw_rc
sw_pipeline_changes(sw_pipeline *p, sw_change_cb cb, void *opaque,
                    sw_err *err)
{
    unsigned char key[KEY_BYTES], *val;
    int64_t i, w;
    int t;
    sw_rc rc = SW_OK;

    if (p == NULL || cb == NULL)
        return sw__fail(err, SW_E_INVAL, "changes: NULL argument");
    val = sw__alloc_array((size_t)widest(p) + 1, 8);
    if (val == NULL)
        return sw__fail(err, SW_E_NOMEM, "changes: out of memory");
    for (t = 0; t < p->n_tables && rc == SW_OK; t++) {
        keytab *kt = &p->tables[t];
        int64_t n = kt->n < kt->dirty_cap ? kt->n : kt->dirty_cap;

        for (i = 0; i < n && rc == SW_OK; i++) {
            const uint64_t *e;

            if (!kt->dirty[i])
                continue;
            e = kt_entry(kt, i);
            put_key(key, t, e[0]);
            for (w = 1; w < kt->stride; w++)
                sw__put_le64(val + 8 * (w - 1), e[w]);
            rc = cb(opaque, key, KEY_BYTES, val,
                    (size_t)(kt->stride - 1) * 8, err);
            if (rc == SW_OK)
                kt->dirty[i] = 0;
        }
        for (i = 0; i < kt->n_gone && rc == SW_OK; i++) {
            put_key(key, t, kt->gone[i]);
            if ((rc = cb(opaque, key, KEY_BYTES, NULL, 0, err)) != SW_OK)
                break;
        }
        /* the tombstones not handed out stay */
        if (i > 0) {
            memmove(kt->gone, kt->gone + i,
                    (size_t)(kt->n_gone - i) * sizeof(uint64_t));
            kt->n_gone -= i;
        }
    }
    sw__free(val);
    return rc;
}

/* One record onto the state; *drop says a key of the table was dropped. */
static sw_rc
apply_one(sw_pipeline *p, int64_t r, const unsigned char *k, size_t klen,
          const unsigned char *v, size_t vlen, double *scratch, int *drop,
          sw_err *err)
{
    uint32_t t = 0;
    uint64_t h, *e;
    keytab *kt;
    int64_t w;
    int i;

    if (k == NULL || klen != KEY_BYTES)
        return sw__fail(err, SW_E_FORMAT,
                        "changes: record %lld: a key of %zu bytes, expected "
                        "%d (table, key hash)",
                        (long long)r, klen, KEY_BYTES);
    for (i = 0; i < 4; i++)
        t |= (uint32_t)k[i] << (8 * i);
    h = sw__get_le64(k + 4);
    if (t >= (uint32_t)p->n_tables || h == 0)
        return sw__fail(err, SW_E_FORMAT,
                        "changes: record %lld: table %u, key hash %llu "
                        "(the spec has %d tables; hashes are never 0)",
                        (long long)r, t, (unsigned long long)h, p->n_tables);
    kt = &p->tables[t];
    if (v == NULL || vlen == 0) {
        e = sw__keytab_find(kt, h);
        if (e != NULL) {
            /* dropped together once the records are in */
            e[1] = (uint64_t)INT64_MIN;
            drop[t] = 1;
        }
        return SW_OK;
    }
    /* the time, then the block (a table not yet used has no stride) */
    if (vlen != (size_t)(kt->block + 1) * 8)
        return sw__fail(err, SW_E_FORMAT,
                        "changes: record %lld: %zu bytes of state for table "
                        "%u, expected %lld",
                        (long long)r, vlen, t, (long long)(kt->block + 1) * 8);
    for (w = 0; w < kt->block + 1; w++) {
        uint64_t x = sw__get_le64(v + 8 * w);

        memcpy(&scratch[w], &x, 8);
    }
    {
        int64_t when;

        memcpy(&when, &scratch[0], 8);
        if (when < 0 || when > TIME_MAX_US ||
            !sw__state_valid(p, (int)t, scratch + 1))
            return sw__fail(err, SW_E_FORMAT,
                            "changes: record %lld: table %u: a state no "
                            "update could have made (time %lld)",
                            (long long)r, t, (long long)when);
    }
    e = sw__keytab_get(kt, h, scratch + 1, err);
    if (e == NULL)
        return SW_E_NOMEM;
    memcpy(e + 1, scratch, (size_t)(kt->block + 1) * 8);
    return SW_OK;
}

sw_rc
sw_pipeline_apply_changes(sw_pipeline *p, int64_t n, const void *const *keys,
                          const size_t *key_lens, const void *const *values,
                          const size_t *value_lens, sw_err *err)
{
    double *scratch;
    int *drop;
    int64_t r;
    int t;
    sw_rc rc = SW_OK;

    if (p == NULL || n < 0 || (n > 0 && (keys == NULL || key_lens == NULL ||
                                         values == NULL ||
                                         value_lens == NULL)))
        return sw__fail(err, SW_E_INVAL, "changes: NULL argument");
    scratch = sw__alloc_array((size_t)widest(p) + 1, sizeof(double));
    drop = sw__calloc((size_t)p->n_tables + 1, sizeof(int));
    if (scratch == NULL || drop == NULL) {
        sw__free(scratch);
        sw__free(drop);
        return sw__fail(err, SW_E_NOMEM, "changes: out of memory");
    }
    for (r = 0; r < n && rc == SW_OK; r++)
        rc = apply_one(p, r, keys[r], key_lens[r], values[r], value_lens[r],
                       scratch, drop, err);
    /* the dropped keys go in one pass per table (their time is the least
     * there is; a kept key's is a real event time) */
    for (t = 0; t < p->n_tables; t++) {
        if (drop[t] &&
            sw__keytab_rebuild(&p->tables[t], p->tables[t].cap, INT64_MIN + 1,
                               rc == SW_OK ? err : NULL) != SW_OK &&
            rc == SW_OK)
            rc = SW_E_NOMEM;
    }
    sw__free(scratch);
    sw__free(drop);
    return rc;
}

sw_rc
sw_pipeline_take_tables(sw_pipeline *p, sw_pipeline *src, sw_err *err)
{
    keytab *t;

    if (p == NULL || src == NULL)
        return sw__fail(err, SW_E_INVAL, "changes: NULL pipeline");
    if (p->spec_hash != src->spec_hash || p->n_tables != src->n_tables)
        return sw__fail(err, SW_E_INVAL,
                        "changes: the state is of another spec (%016llx, "
                        "this pipeline's %016llx)",
                        (unsigned long long)src->spec_hash,
                        (unsigned long long)p->spec_hash);
    t = p->tables;
    p->tables = src->tables;
    src->tables = t;
    return SW_OK;
}
