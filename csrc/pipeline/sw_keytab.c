/* SPDX-License-Identifier: MIT */
/*
 * sw_keytab.c - open-addressing hash tables of keyed state.
 *
 * Keys are 64-bit hashes of the key fields' values (0 marks an empty slot;
 * a key hashing to 0 is stored as 1). Linear probing over a power-of-two
 * array, grown by rehashing at 70% load. Each entry has the event time of
 * its last update (for time-to-live) and a block of doubles holding the
 * state of every feature on the table's key set. Two different keys with
 * the same 64-bit hash would share state; at a million keys the chance is
 * about one in 10^7.
 */
#include "sw_pipeline_int.h"

sw_rc
sw_keytab_init(keytab *kt, int64_t cap, sw_err *err)
{
    kt->cap = cap;
    kt->n = 0;
    kt->hash = sw_calloc((size_t)cap, sizeof(uint64_t));
    kt->seen = sw_alloc_array((size_t)cap, sizeof(int64_t));
    kt->state = sw_alloc_array((size_t)(cap * (kt->block ? kt->block : 1)),
                               sizeof(double));
    if (kt->hash == NULL || kt->seen == NULL || kt->state == NULL) {
        sw_keytab_free(kt);
        return sw_fail(err, SW_E_NOMEM, "pipeline: no memory for %lld keys",
                       (long long)cap);
    }
    return SW_OK;
}

void
sw_keytab_free(keytab *kt)
{
    sw_free(kt->hash);
    sw_free(kt->seen);
    sw_free(kt->state);
    kt->hash = NULL;
    kt->seen = NULL;
    kt->state = NULL;
    kt->cap = kt->n = 0;
}

static inline int64_t
probe(const keytab *kt, uint64_t h)
{
    int64_t mask = kt->cap - 1, i = (int64_t)(h & (uint64_t)mask);

    while (kt->hash[i] != 0 && kt->hash[i] != h)
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
        int64_t j;

        if (kt->hash[i] == 0 || kt->seen[i] < min_seen)
            continue;
        j = probe(&nk, kt->hash[i]);
        nk.hash[j] = kt->hash[i];
        nk.seen[j] = kt->seen[i];
        memcpy(nk.state + j * nk.block, kt->state + i * kt->block,
               (size_t)kt->block * sizeof(double));
        nk.n++;
    }
    sw_keytab_free(kt);
    *kt = nk;
    return SW_OK;
}

double *
sw_keytab_find(const keytab *kt, uint64_t h, int64_t **seen)
{
    int64_t i;

    if (kt->cap == 0)
        return NULL;
    h = h ? h : 1;
    i = probe(kt, h);
    if (kt->hash[i] == 0)
        return NULL;
    *seen = &kt->seen[i];
    return kt->state + i * kt->block;
}

double *
sw_keytab_get(keytab *kt, uint64_t h, const double *init, int64_t **seen,
              sw_err *err)
{
    int64_t i;

    h = h ? h : 1;
    if (kt->cap == 0 && sw_keytab_init(kt, 1024, err) != SW_OK)
        return NULL;
    i = probe(kt, h);
    if (kt->hash[i] == h) {
        *seen = &kt->seen[i];
        return kt->state + i * kt->block;
    }
    if ((kt->n + 1) * 10 > kt->cap * 7) {
        if (sw_keytab_rebuild(kt, kt->cap * 2, INT64_MIN, err) != SW_OK)
            return NULL;
        i = probe(kt, h);
    }
    kt->hash[i] = h;
    kt->seen[i] = INT64_MIN;
    memcpy(kt->state + i * kt->block, init, (size_t)kt->block * sizeof(double));
    kt->n++;
    *seen = &kt->seen[i];
    return kt->state + i * kt->block;
}

double *
sw_keytab_put_raw(keytab *kt, uint64_t h, int64_t **seen)
{
    int64_t i;

    if (kt->cap == 0 || h == 0 || (kt->n + 1) * 10 > kt->cap * 7 + 10)
        return NULL;
    i = probe(kt, h);
    if (kt->hash[i] != 0)
        return NULL;
    kt->hash[i] = h;
    kt->n++;
    *seen = &kt->seen[i];
    return kt->state + i * kt->block;
}
