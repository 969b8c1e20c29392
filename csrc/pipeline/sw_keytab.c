/* SPDX-License-Identifier: MIT */
/*
 * sw_keytab.c - open-addressing hash tables of keyed state.
 *
 * Keys are 64-bit hashes of the key fields' values (0 marks an empty slot;
 * a key hashing to 0 is stored as 1). Linear probing over a power-of-two
 * array, grown by rehashing at 70% load. An entry is one contiguous record
 * - key hash, event time of its last update (for time-to-live), then the
 * state of every feature on the table's key set - so that a lookup touches
 * neighbouring cache lines only. Two different keys with the same 64-bit
 * hash would share state; at a million keys the chance is about 1 in 10^7.
 */
#include "sw_pipeline_int.h"

sw_rc
sw_keytab_init(keytab *kt, int64_t cap, sw_err *err)
{
    kt->stride = 2 + kt->block;
    kt->cap = cap;
    kt->n = 0;
    /* zeroed: a zero key hash marks an empty slot */
    if ((uint64_t)cap > SIZE_MAX / 8 / (uint64_t)kt->stride) {
        kt->cap = 0;
        return sw_fail(err, SW_E_NOMEM, "pipeline: no memory for %lld keys",
                       (long long)cap);
    }
    kt->e = sw_calloc_big((size_t)cap * (size_t)kt->stride * 8);
    if (kt->e == NULL) {
        kt->cap = 0;
        return sw_fail(err, SW_E_NOMEM, "pipeline: no memory for %lld keys",
                       (long long)cap);
    }
    return SW_OK;
}

void
sw_keytab_free(keytab *kt)
{
    sw_free_big(kt->e, (size_t)kt->cap * (size_t)kt->stride * 8);
    kt->e = NULL;
    kt->cap = kt->n = 0;
}

static inline int64_t
probe(const keytab *kt, uint64_t h)
{
    int64_t mask = kt->cap - 1, i = (int64_t)(h & (uint64_t)mask);

    while (kt_entry(kt, i)[0] != 0 && kt_entry(kt, i)[0] != h)
        i = (i + 1) & mask;
    return i;
}

/* Move every entry of kt into a table of new_cap slots, leaving out those
 * last updated before min_seen. */
sw_rc
sw_keytab_rebuild(keytab *kt, int64_t new_cap, int64_t min_seen, sw_err *err)
{
    keytab nk;
    int64_t i;
    sw_rc rc;

    memset(&nk, 0, sizeof(nk));
    nk.n_keys = kt->n_keys;
    memcpy(nk.keys, kt->keys, sizeof(nk.keys));
    nk.block = kt->block;
    rc = sw_keytab_init(&nk, new_cap, err);
    if (rc != SW_OK)
        return rc;
    for (i = 0; i < kt->cap; i++) {
        const uint64_t *src = kt_entry(kt, i);

        if (src[0] == 0 || (int64_t)src[1] < min_seen)
            continue;
        memcpy(kt_entry(&nk, probe(&nk, src[0])), src, (size_t)kt->stride * 8);
        nk.n++;
    }
    sw_keytab_free(kt);
    *kt = nk;
    return SW_OK;
}

uint64_t *
sw_keytab_find(const keytab *kt, uint64_t h)
{
    uint64_t *e;

    if (kt->cap == 0)
        return NULL;
    h = h ? h : 1;
    e = kt_entry(kt, probe(kt, h));
    return e[0] == 0 ? NULL : e;
}

uint64_t *
sw_keytab_get(keytab *kt, uint64_t h, const double *init, sw_err *err)
{
    uint64_t *e;

    h = h ? h : 1;
    if (kt->cap == 0 && sw_keytab_init(kt, 1024, err) != SW_OK)
        return NULL;
    e = kt_entry(kt, probe(kt, h));
    if (e[0] == h)
        return e;
    if ((kt->n + 1) * 10 > kt->cap * 7) {
        if (sw_keytab_rebuild(kt, kt->cap * 2, INT64_MIN, err) != SW_OK)
            return NULL;
        e = kt_entry(kt, probe(kt, h));
    }
    e[0] = h;
    e[1] = (uint64_t)INT64_MIN;
    memcpy(e + 2, init, (size_t)kt->block * sizeof(double));
    kt->n++;
    return e;
}

void
sw_keytab_prefetch(const keytab *kt, uint64_t h)
{
    if (kt->cap > 0) {
        h = h ? h : 1;
        __builtin_prefetch(
            kt_entry(kt, (int64_t)(h & (uint64_t)(kt->cap - 1))));
    }
}

uint64_t *
sw_keytab_put_raw(keytab *kt, uint64_t h)
{
    uint64_t *e;

    if (kt->cap == 0 || h == 0 || (kt->n + 1) * 10 > kt->cap * 7 + 10)
        return NULL;
    e = kt_entry(kt, probe(kt, h));
    if (e[0] != 0)
        return NULL;
    e[0] = h;
    kt->n++;
    return e;
}
