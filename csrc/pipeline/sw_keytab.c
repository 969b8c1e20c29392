/* SPDX-License-Identifier: MIT */
/*
 * sw_keytab.c - hash tables of keyed state.
 *
 * Keys are 64-bit hashes of the key fields' values (a key hashing to 0 is
 * stored as 1). The state lives in a dense array of entries - key hash,
 * event time of its last update (for time-to-live), then the state of every
 * feature on the table's key set - in order of arrival; a separate index of
 * 8-byte cells (linear probing over a power of two, grown at 70% load)
 * maps a hash to its entry. Growing rehashes the small index only: the
 * entries move by remapping their pages, so the state of a million keys is
 * neither copied nor zeroed again, and no memory sits in empty slots. The
 * cell keeps the hash's high half, so a probe reads an entry only when it
 * very likely is the key's. Two different keys with the same 64-bit hash
 * would share state; at a million keys the chance is about 1 in 10^7.
 */
#include "sw_pipeline_int.h"

#define MAX_KEYS ((int64_t)0xfffffffe)

/* Entries an index of cap cells can hold before it grows. */
static int64_t
room_for(int64_t cap)
{
    return cap * 7 / 10 + 1;
}

/* Whether an index of cap cells (and its entries) can exist. */
static int
cap_ok(const keytab *kt, int64_t cap)
{
    /* the size first: room_for(cap) would overflow for a cap from a
     * crafted checkpoint (found by fuzz_checkpoint) */
    return cap >= 1 && (cap & (cap - 1)) == 0 && cap <= (MAX_KEYS / 7) * 10 &&
           room_for(cap) <= MAX_KEYS &&
           (uint64_t)room_for(cap) <= SIZE_MAX / 8 / (uint64_t)kt->stride;
}

static size_t
entries_bytes(const keytab *kt, int64_t n)
{
    return (size_t)n * (size_t)kt->stride * 8;
}

sw_rc
sw__keytab_init(keytab *kt, int64_t cap, sw_err *err)
{
    kt->stride = 2 + kt->block;
    kt->n = 0;
    kt->cap = kt->room = 0;
    kt->idx = NULL;
    kt->e = NULL;
    if (!cap_ok(kt, cap))
        return sw__fail(err, SW_E_NOMEM, "pipeline: no memory for %lld keys",
                        (long long)cap);
    kt->idx = sw__calloc_big((size_t)cap * 8);
    /* the pages of entries not yet used are only reserved: the kernel
     * hands them out as they are first written */
    kt->e = sw__calloc_big(entries_bytes(kt, room_for(cap)));
    if (kt->idx == NULL || kt->e == NULL) {
        sw__free_big(kt->idx, (size_t)cap * 8);
        sw__free_big(kt->e, entries_bytes(kt, room_for(cap)));
        kt->idx = NULL;
        kt->e = NULL;
        return sw__fail(err, SW_E_NOMEM, "pipeline: no memory for %lld keys",
                        (long long)cap);
    }
    kt->cap = cap;
    kt->room = room_for(cap);
    return SW_OK;
}

void
sw__keytab_free(keytab *kt)
{
    sw__keytab_changes_free(kt);
    sw__free_big(kt->idx, (size_t)kt->cap * 8);
    sw__free_big(kt->e, entries_bytes(kt, kt->room));
    kt->idx = NULL;
    kt->e = NULL;
    kt->cap = kt->n = kt->room = 0;
}

/* Index entries 0..n-1 afresh in an index of cap cells. */
static void
reindex(keytab *kt)
{
    int64_t i;
    uint64_t *dummy;

    memset(kt->idx, 0, (size_t)kt->cap * 8);
    for (i = 0; i < kt->n; i++) {
        uint64_t h = kt_entry(kt, i)[0];

        kt->idx[kt_probe(kt, h, &dummy)] = KT_CELL_TAG(h) | (uint64_t)(i + 1);
    }
}

/* Drop the entries last updated before min_seen (keeping the others in
 * their order) and index the rest in new_cap cells. */
sw_rc
sw__keytab_rebuild(keytab *kt, int64_t new_cap, int64_t min_seen, sw_err *err)
{
    int64_t i, kept = 0;
    uint64_t *idx, *e;

    if (!cap_ok(kt, new_cap))
        return sw__fail(err, SW_E_NOMEM, "pipeline: no memory for %lld keys",
                        (long long)new_cap);
    if (new_cap != kt->cap) {
        idx = sw__calloc_big((size_t)new_cap * 8);
        if (idx == NULL)
            return sw__fail(err, SW_E_NOMEM,
                            "pipeline: no memory for %lld keys",
                            (long long)new_cap);
        if (room_for(new_cap) > kt->room) {
            e = sw__realloc_big(kt->e, entries_bytes(kt, kt->room),
                                entries_bytes(kt, room_for(new_cap)));
            if (e == NULL) {
                sw__free_big(idx, (size_t)new_cap * 8);
                return sw__fail(err, SW_E_NOMEM,
                                "pipeline: no memory for %lld keys",
                                (long long)new_cap);
            }
            kt->e = e;
            kt->room = room_for(new_cap);
        }
        sw__free_big(kt->idx, (size_t)kt->cap * 8);
        kt->idx = idx;
        kt->cap = new_cap;
    }
    if (min_seen != INT64_MIN) {
        for (i = 0; i < kt->n; i++) {
            const uint64_t *src = kt_entry(kt, i);

            if ((int64_t)src[1] < min_seen) {
                /* a tracked drop becomes a tombstone in the changes */
                if (kt->track && sw__keytab_note_gone(kt, src[0], err) != SW_OK)
                    return SW_E_NOMEM;
                continue;
            }
            if (kept != i) {
                memcpy(kt_entry(kt, kept), src, (size_t)kt->stride * 8);
                /* kept < i: a dirty mark moves with its entry */
                if (kt->track && kept < kt->dirty_cap) {
                    kt->dirty[kept] = i < kt->dirty_cap ? kt->dirty[i] : 0;
                    if (i < kt->dirty_cap)
                        kt->dirty[i] = 0;
                }
            }
            kept++;
        }
        kt->n = kept;
    }
    reindex(kt);
    return SW_OK;
}

uint64_t *
sw__keytab_find(const keytab *kt, uint64_t h)
{
    uint64_t *e;

    if (kt->cap == 0)
        return NULL;
    kt_probe(kt, h ? h : 1, &e);
    return e;
}

/* A new entry for h at cell i (empty), NULL if the table is full. */
static uint64_t *
append(keytab *kt, int64_t i, uint64_t h)
{
    uint64_t *e;

    if (kt->n >= kt->room)
        return NULL;
    e = kt_entry(kt, kt->n);
    kt->n++;
    kt->idx[i] = KT_CELL_TAG(h) | (uint64_t)kt->n;
    e[0] = h;
    return e;
}

uint64_t *
sw__keytab_add(keytab *kt, uint64_t h, const double *init, sw_err *err)
{
    uint64_t *e;
    int64_t i;

    h = h ? h : 1;
    if (kt->cap == 0 && sw__keytab_init(kt, 1024, err) != SW_OK)
        return NULL;
    i = kt_probe(kt, h, &e);
    if (e != NULL)
        return e;
    if ((kt->n + 1) * 10 > kt->cap * 7) {
        if (sw__keytab_rebuild(kt, kt->cap * 2, INT64_MIN, err) != SW_OK)
            return NULL;
        i = kt_probe(kt, h, &e);
    }
    e = append(kt, i, h);
    if (e == NULL) {
        sw__fail(err, SW_E_NOMEM, "pipeline: no room for key %lld",
                 (long long)kt->n + 1);
        return NULL;
    }
    e[1] = (uint64_t)INT64_MIN;
    memcpy(e + 2, init, (size_t)kt->block * sizeof(double));
    return e;
}

uint64_t *
sw__keytab_put_raw(keytab *kt, uint64_t h)
{
    uint64_t *e;
    int64_t i;

    if (kt->cap == 0 || h == 0 || (kt->n + 1) * 10 > kt->cap * 7 + 10)
        return NULL;
    i = kt_probe(kt, h, &e);
    if (e != NULL)
        return NULL;
    return append(kt, i, h);
}

void
sw__keytab_prefetch(const keytab *kt, uint64_t h)
{
    if (kt->cap > 0) {
        h = h ? h : 1;
        __builtin_prefetch(&kt->idx[h & (uint64_t)(kt->cap - 1)]);
    }
}

/* a guess at the entry (the cell's own, the usual case) costs nothing if
 * wrong */
void
sw__keytab_prefetch_entry(const keytab *kt, uint64_t h)
{
    uint64_t c;

    if (kt->cap > 0) {
        h = h ? h : 1;
        c = kt->idx[h & (uint64_t)(kt->cap - 1)];
        if (c != 0 && KT_CELL_TAG(c) == KT_CELL_TAG(h)) {
            const char *e = (const char *)kt_entry(kt, KT_CELL_ENTRY(c));

            __builtin_prefetch(e);
            __builtin_prefetch(e + 64);
            __builtin_prefetch(e + 8 * kt->stride - 1);
        }
    }
}
