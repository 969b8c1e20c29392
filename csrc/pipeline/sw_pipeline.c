/* SPDX-License-Identifier: MIT */
/*
 * sw_pipeline.c - the streaming feature engine: keyed, event-time state
 * updated one event at a time, in event-time order.
 *
 * An event passes three gates: valid (fields present, numbers finite, a
 * usable time), not late (no older than the latest event time seen minus
 * out_of_orderness minus allowed_lateness), and the watermark (it waits in
 * a buffer sorted by (time, arrival) until the watermark passes it). Then
 * its feature row is read from the state of each of its keys - every
 * earlier event of the key and not the event itself, so a label cannot leak
 * into its own features - and the event updates that state. Lateness and
 * the order of processing depend only on the order of arrival, never on how
 * the stream is cut into batches, so a replay, a live run and a run resumed
 * from a checkpoint give the same rows. The operators themselves (a
 * feature's state, value and update) are in sw_ops.c.
 */
#include <math.h>
#include <sodium.h>
#include <stdlib.h>

#include "sw_pipeline_int.h"

#define PUSH_CHUNK 256  /* rows read column by column at a time */
#define DRAIN_MIN 1024  /* new records before a drain within a push */
#define PREFETCH_BYTES ((int64_t)4 << 20) /* key tables asked for ahead */

/* ------------------------------------------------------------------ */
/* Hashing                                                              */
/* ------------------------------------------------------------------ */

uint64_t
sw__mix64(uint64_t a, uint64_t b)
{
    uint64_t z = a ^ (b + 0x9E3779B97F4A7C15ULL + (a << 6) + (a >> 2));

    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* SipHash-2-4 (libsodium) of bytes, keyed by seed: strings are hashed with
 * it, so crafted keys cannot flood one bucket of the tables. */
uint64_t
sw__hash_bytes(const void *p, size_t n, uint64_t seed)
{
    unsigned char key[crypto_shorthash_KEYBYTES] = {0}, out[8];

    sw__put_le64(key, seed);
    sw__put_le64(key + 8, 0x73747265616d7769ULL); /* "streamwi" */
    crypto_shorthash(out, p, n, key);
    return sw__get_le64(out);
}

/* ------------------------------------------------------------------ */
/* Events: reading batches into records                                 */
/* ------------------------------------------------------------------ */

/* A pending record: t, seq, then n_fields values and n_fields hashes. */
static inline int64_t *
rec_head(const sw_pipeline *p, int64_t i)
{
    return (int64_t *)(p->pend + i * p->rec);
}

static inline double *
rec_vals(const sw_pipeline *p, int64_t i)
{
    return (double *)(p->pend + i * p->rec + 16);
}

static inline uint64_t *
rec_hash(const sw_pipeline *p, int64_t i)
{
    return (uint64_t *)(p->pend + i * p->rec + 16 + 8 * p->n_fields);
}

/* Hash of one value: integers by a mixer (exact for int64), floats by
 * their bits, strings by SipHash of their bytes up to the first NUL. */
static uint64_t
column_hash(const sw_column *c, int64_t i, uint64_t salt)
{
    if (c->type == SW_COL_STR) {
        const char *s = (const char *)c->data + i * c->width;
        size_t n = 0;

        while (n < (size_t)c->width && s[n] != '\0')
            n++;
        return sw__hash_bytes(s, n, salt);
    }
    if (c->type == SW_COL_F64 || c->type == SW_COL_F32) {
        double v = sw__column_number(c, i);
        uint64_t u;

        if (v == floor(v) && fabs(v) < 9.0e15) /* 3.0 and 3 are one key */
            return sw__mix64(salt, (uint64_t)(int64_t)v);
        memcpy(&u, &v, 8);
        return sw__mix64(salt ^ 0xF, u);
    }
    if (c->type == SW_COL_I64)
        return sw__mix64(salt, (uint64_t)((const int64_t *)c->data)[i]);
    return sw__mix64(salt, (uint64_t)(int64_t)sw__column_number(c, i));
}

sw_rc
sw__pipeline_reserve(sw_pipeline *p, int64_t need, sw_err *err)
{
    unsigned char *q;
    int64_t cap = p->cap_pend ? p->cap_pend : 1024;

    if (need <= p->cap_pend)
        return SW_OK;
    while (cap < need)
        cap *= 2;
    q = sw__realloc_array(p->pend, (size_t)cap, (size_t)p->rec);
    if (q == NULL)
        return sw__fail(err, SW_E_NOMEM,
                        "pipeline: no memory for %lld "
                        "buffered events",
                        (long long)need);
    p->pend = q;
    p->cap_pend = cap;
    return SW_OK;
}

/* ------------------------------------------------------------------ */
/* Processing                                                           */
/* ------------------------------------------------------------------ */

static uint64_t
key_hash(const sw_pipeline *p, const keytab *kt, const uint64_t *h)
{
    uint64_t k = 0x6b6579 + (uint64_t)(kt - p->tables);
    int i;

    for (i = 0; i < kt->n_keys; i++)
        k = sw__mix64(k, h[kt->keys[i]]);
    return k;
}

/* Read a feature's value(s) for an event at t into out, then add the event
 * (values v, hashes h of its fields) to its state s: the codes with the
 * same arithmetic as sw__op_value() then sw__op_update() in one pass over
 * the state, the others through those (sw_ops.c). */
static inline __attribute__((always_inline)) void
step(const step_op *o, int code, double *s, int64_t t, const double *v,
     const uint64_t *h, double *out)
{
    double w, x;

    switch (code) {
    case STEP_COUNT:
        out[0] = s[0];
        s[0] += 1.0;
        return;
    case STEP_SUM:
        out[0] = s[0];
        s[0] += v[o->field];
        return;
    case STEP_MEAN:
        x = v[o->field];
        out[0] = s[0] > 0 ? s[1] : NAN;
        s[0] += 1.0;
        mean_take(s, x);
        return;
    case STEP_VAR:
        x = v[o->field];
        out[0] = s[0] > 1 ? s[2] / (s[0] - 1.0) : NAN;
        s[0] += 1.0;
        welford_take(s, x);
        return;
    case STEP_MIN:
        x = v[o->field];
        out[0] = isinf(s[0]) ? NAN : s[0];
        s[0] = x < s[0] ? x : s[0];
        return;
    case STEP_MAX:
        x = v[o->field];
        out[0] = isinf(s[0]) ? NAN : s[0];
        s[0] = x > s[0] ? x : s[0];
        return;
    case STEP_LAST:
        out[0] = s[1] != 0 ? s[0] : NAN;
        s[0] = v[o->field];
        s[1] = 1.0;
        return;
    case STEP_DECAYED_SUM:
    case STEP_DECAYED_COUNT:
        /* one exp2 for read and update (as decay()) */
        if (!isnan(s[1]))
            s[0] *= exp2(-((double)t - s[1]) / o->a);
        s[1] = (double)t;
        out[0] = s[0];
        s[0] += code == STEP_DECAYED_SUM ? v[o->field] : 1.0;
        return;
    case STEP_SINCE:
        out[0] = isnan(s[0]) ? NAN : ((double)t - s[0]) / 1e6;
        s[0] = (double)t;
        return;
    case STEP_RATE:
        out[0] = (s[0] + o->a) / (s[1] + o->a + o->b);
        s[0] += v[o->field];
        s[1] += 1.0;
        return;
    case STEP_TUMBLING_COUNT:
    case STEP_TUMBLING_SUM:
        /* below 2^53 us (year 2255) times and s[1] * window are exact
         * doubles: an event within the key's window needs no division */
        w = s[1];
        if (t >= ((int64_t)1 << 53) ||
            !((double)t >= w * (double)o->window &&
              (double)t < (w + 1.0) * (double)o->window))
            w = (double)(t / o->window);
        if (s[1] != w) { /* the key's first event in this window */
            out[0] = 0.0;
            s[0] = 0.0;
            s[1] = w;
        } else {
            out[0] = s[0];
        }
        s[0] += code == STEP_TUMBLING_COUNT ? 1.0 : v[o->field];
        return;
    default:
        x = o->field >= 0 ? v[o->field] : 1.0;
        if (o->f->kind == OP_DECAYED_SUM || o->f->kind == OP_DECAYED_COUNT) {
            s[0] *= decay(o->f, s, t);
            s[1] = (double)t;
            out[0] = s[0];
        } else {
            sw__op_value(o->f, s, t, x, out);
        }
        sw__op_update(o->f, s, t, x, o->field >= 0 ? h[o->field] : 0);
        return;
    }
}

static int
cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

    return x < y ? -1 : x > y;
}

/* The key budget: a table at max_keys drops the keys seen least recently
 * (by event time, so a replay drops what the live run dropped) down to
 * nine tenths of it, all of those seen at the cut's time included. */
static sw_rc
evict_oldest(sw_pipeline *p, keytab *kt, sw_err *err)
{
    int64_t n = kt->n, k = n - (p->max_keys - p->max_keys / 10), i, cut,
            before = kt->n, *t;
    sw_rc rc;

    if (k < 1)
        k = 1;
    t = sw__alloc_array((size_t)n, sizeof(int64_t));
    if (t == NULL)
        return sw__fail(err, SW_E_NOMEM, "pipeline: out of memory");
    for (i = 0; i < n; i++)
        t[i] = (int64_t)kt_entry(kt, i)[1];
    qsort(t, (size_t)n, sizeof(int64_t), cmp_i64);
    cut = t[k - 1];
    sw__free(t);
    rc = sw__keytab_rebuild(kt, kt->cap, cut == INT64_MAX ? cut : cut + 1, err);
    if (rc == SW_OK)
        p->n_evicted += before - kt->n;
    return rc;
}

static void finish_rows(sw_pipeline *p, int64_t i0, int64_t m, sw_result *r);

/* Process pending record i (key hashes kh, one per table): emit its row
 * into r and update the state. */
static sw_rc
process(sw_pipeline *p, int64_t i, const uint64_t *kh, sw_result *r,
        const double *init, sw_err *err)
{
    int64_t t = rec_head(p, i)[0], j, at;
    const double *v = rec_vals(p, i);
    const uint64_t *h = rec_hash(p, i);
    double *dense = r->dense + r->n * p->n_dense;
    const step_op *o, *end;
    int tb;

    for (tb = 0; tb < p->n_tables; tb++) {
        keytab *kt = &p->tables[tb];
        const double *tinit = init + tb * p->max_block;
        uint64_t *e;
        double *s;

        if (p->max_keys > 0 && kt->n >= p->max_keys &&
            sw__keytab_find(kt, kh[tb]) == NULL &&
            evict_oldest(p, kt, err) != SW_OK)
            return SW_E_NOMEM;
        if (p->ttl > 0 && kt->cap > 0 && (kt->n + 1) * 10 > kt->cap * 7) {
            /* evict idle keys before growing: by event time, so a replay
             * evicts exactly what the live run did */
            int64_t keep = 0, c = kt->cap;

            for (j = 0; j < kt->n; j++)
                keep += (int64_t)kt_entry(kt, j)[1] >= t - p->ttl;
            while ((keep + 1) * 10 > c * 7)
                c *= 2;
            if (sw__keytab_rebuild(kt, c, t - p->ttl, err) != SW_OK)
                return SW_E_NOMEM;
        }
        at = sw__keytab_get_at(kt, kh[tb], tinit, err);
        if (at < 0 || sw__keytab_touch_at(kt, at, err) != SW_OK)
            return SW_E_NOMEM;
        e = kt_entry(kt, at);
        s = (double *)(e + 2);
        if (p->ttl > 0 && (int64_t)e[1] != INT64_MIN &&
            t - (int64_t)e[1] > p->ttl)
            memcpy(s, tinit, (size_t)kt->block * sizeof(double));
        end = p->ops + p->plan_at[tb + 1];
        for (o = p->ops + p->plan_at[tb]; o < end; o++)
            step(o, o->code, s + o->slot, t, v, h, dense + o->out);
        e[1] = (uint64_t)t;
    }
    finish_rows(p, i, 1, r);
    return SW_OK;
}

/* The rest of the rows of pending records i0 .. i0+m-1, once their keyed
 * features are in: stateless transforms, hashed features, defaults, and
 * each row's place. p's words are read once: the stores into r could be
 * any of them, as far as the compiler knows. */
static void
finish_rows(sw_pipeline *p, int64_t i0, int64_t m, sw_result *r)
{
    const int64_t nd = p->n_dense, nh = p->n_hash, row0 = r->n;
    const int k0 = p->plan_at[p->n_tables], k1 = p->plan_at[p->n_tables + 1],
              k2 = p->plan_at[p->n_tables + 2], n_fill = p->n_fill;
    int64_t i, *seq = r->seq + row0, *rt = r->t + row0,
               *indptr = r->indptr + row0;
    int k;

    for (i = 0; i < m && (k0 < k2 || n_fill > 0); i++) {
        const double *v = rec_vals(p, i0 + i);
        const uint64_t *h = rec_hash(p, i0 + i);
        double *dense = r->dense + (row0 + i) * nd;
        int64_t *ind = r->indices + (row0 + i) * nh;
        int n_h = 0;

        for (k = k0; k < k1; k++) {
            const feature *f = &p->features[p->plan[k]];

            sw__op_transform(f, v[f->field], h[f->field], dense + f->offset);
        }
        for (; k < k2; k++) {
            const feature *f = &p->features[p->plan[k]];
            uint64_t x = f->salt;
            int j;

            for (j = 0; j < f->n_hash; j++)
                x = sw__mix64(x, h[f->hash_fields[j]]);
            ind[n_h++] = f->offset + (int64_t)(x % (uint64_t)f->dims);
        }
        for (k = 0; k < n_fill; k++) {
            if (isnan(dense[p->fill_col[k]]))
                dense[p->fill_col[k]] = p->fill_val[k];
        }
    }
    for (i = 0; i < m; i++) {
        const int64_t *head = rec_head(p, i0 + i);

        seq[i] = head[1];
        rt[i] = head[0];
        indptr[i + 1] = (row0 + i + 1) * nh;
    }
    indptr[0] = row0 * nh;
    if (m > 0)
        p->now = rt[m - 1];
    r->n += m;
    p->n_emitted += m;
}

/* Events process_block takes at a time: enough that each op's loop runs
 * long, few enough that their entries stay in cache from op to op. */
#define BLOCK 128

/* How many of the next left events may go through process_block: none
 * when a key can be dropped within the block (a time-to-live, or a key
 * budget within reach), as that moves entries and resets state between
 * one event's ops and the next's. */
static int64_t
block_len(const sw_pipeline *p, int64_t left)
{
    int64_t m = left < BLOCK ? left : BLOCK;
    int tb;

    if (p->ttl > 0 || m < 2)
        return 0;
    for (tb = 0; p->max_keys > 0 && tb < p->n_tables; tb++)
        if (p->tables[tb].n + m > p->max_keys)
            return 0;
    return m;
}

/* One op over pending records i0 .. i0+m-1, whose states (entry words
 * after the header) are sp[]; code is a constant in each loop, so the
 * loop has no dispatch. */
static void
run_op(const sw_pipeline *p, const step_op *o, double *const *sp, int64_t i0,
       int64_t m, double *out)
{
    int64_t i, nd = p->n_dense;

#define RUN_OP(C)                                                          \
    case C:                                                                \
        for (i = 0; i < m; i++)                                            \
            step(o, C, sp[i] + o->slot, rec_head(p, i0 + i)[0],            \
                 rec_vals(p, i0 + i), rec_hash(p, i0 + i), out + i * nd);  \
        return
    switch (o->code) {
        RUN_OP(STEP_COUNT);
        RUN_OP(STEP_SUM);
        RUN_OP(STEP_MEAN);
        RUN_OP(STEP_VAR);
        RUN_OP(STEP_MIN);
        RUN_OP(STEP_MAX);
        RUN_OP(STEP_LAST);
        RUN_OP(STEP_DECAYED_SUM);
        RUN_OP(STEP_DECAYED_COUNT);
        RUN_OP(STEP_SINCE);
        RUN_OP(STEP_RATE);
        RUN_OP(STEP_TUMBLING_COUNT);
        RUN_OP(STEP_TUMBLING_SUM);
    default:
        for (i = 0; i < m; i++)
            step(o, STEP_OTHER, sp[i] + o->slot, rec_head(p, i0 + i)[0],
                 rec_vals(p, i0 + i), rec_hash(p, i0 + i), out + i * nd);
        return;
    }
#undef RUN_OP
}

/* At a million keys every event is a cache miss: ask for table tb's index
 * cell of the event 16 after pending record i, and for the entry of the
 * one 8 after, while i is processed (n records are being drained; their
 * key hashes are in p->kh). */
static void
ask_ahead(const sw_pipeline *p, int tb, int64_t i, int64_t n)
{
    const keytab *kt = &p->tables[tb];

    if (i + 16 < n)
        sw__keytab_prefetch(kt, p->kh[(i + 16) * p->n_tables + tb]);
    if (i + 8 < n)
        sw__keytab_prefetch_entry(kt, p->kh[(i + 8) * p->n_tables + tb]);
}

/* process() for pending records i0 .. i0+m-1 (m <= BLOCK, from
 * block_len), an op at a time over all of them rather than an event at a
 * time: the per-event dispatch among ops was most of the work when keys
 * fit in cache. Every op reads and writes only its own state words and
 * output column, and sees its key's events in the same order, so the bits
 * are process()'s. All keys are looked up first (their key hashes in
 * p->kh become entry numbers); a lookup that fails leaves that event and
 * the later ones unprocessed. Sets *done to the events processed. With
 * ahead, asks for the keys of later events (ask_ahead). */
static sw_rc
process_block(sw_pipeline *p, int64_t i0, int64_t m, int ahead, int64_t n,
              sw_result *r, const double *init, int64_t *done, sw_err *err)
{
    int64_t i, nt = p->n_tables;
    uint64_t *kh = p->kh + i0 * nt;
    double *sp[BLOCK];
    sw_rc rc = SW_OK;
    int tb;

    for (tb = 0; tb < nt; tb++) {
        keytab *kt = &p->tables[tb];
        const double *tinit = init + tb * p->max_block;
        int64_t at;

        for (i = 0; i < m; i++) {
            if (ahead)
                ask_ahead(p, tb, i0 + i, n);
            at = sw__keytab_get_at(kt, kh[i * nt + tb], tinit, err);
            if (at < 0 || sw__keytab_touch_at(kt, at, err) != SW_OK) {
                /* the tables before hold keys of events not processed,
                 * in their fresh state: as a key seen and not counted */
                rc = SW_E_NOMEM;
                m = i;
                break;
            }
            kt_entry(kt, at)[1] = (uint64_t)rec_head(p, i0 + i)[0];
            kh[i * nt + tb] = (uint64_t)at;
        }
    }
    for (tb = 0; tb < nt; tb++) {
        const keytab *kt = &p->tables[tb];
        const step_op *o, *end = p->ops + p->plan_at[tb + 1];

        for (i = 0; i < m; i++)
            sp[i] = (double *)(kt_entry(kt, (int64_t)kh[i * nt + tb]) + 2);
        for (o = p->ops + p->plan_at[tb]; o < end; o++)
            run_op(p, o, sp, i0, m, r->dense + r->n * p->n_dense + o->out);
    }
    finish_rows(p, i0, m, r);
    *done = m;
    return rc;
}

static int
rec_cmp(const int64_t *a, const int64_t *b)
{
    if (a[0] != b[0])
        return a[0] < b[0] ? -1 : 1;
    return a[1] < b[1] ? -1 : a[1] > b[1];
}

/* Sort pending records by (time, arrival) when they are not already. */
static sw_rc
sort_pending(sw_pipeline *p, sw_err *err)
{
    int64_t i, *order = NULL;
    unsigned char *q = NULL;
    const sw_pipeline *cp = p;

    if (!p->pend_unsorted)
        return SW_OK;
    p->pend_unsorted = 0;
    for (i = 1; i < p->n_pend; i++) {
        if (rec_cmp(rec_head(p, i - 1), rec_head(p, i)) > 0)
            break;
    }
    if (i >= p->n_pend)
        return SW_OK;
    order = sw__alloc_array((size_t)p->n_pend, sizeof(int64_t));
    q = sw__alloc_array((size_t)p->cap_pend, (size_t)p->rec);
    if (order == NULL || q == NULL) {
        sw__free(order);
        sw__free(q);
        return sw__fail(err, SW_E_NOMEM, "pipeline: out of memory sorting");
    }
    for (i = 0; i < p->n_pend; i++)
        order[i] = i;
    /* a simple merge sort on indices (qsort has no context argument) */
    {
        int64_t *tmp = sw__alloc_array((size_t)p->n_pend, sizeof(int64_t));
        int64_t width;

        if (tmp == NULL) {
            sw__free(order);
            sw__free(q);
            return sw__fail(err, SW_E_NOMEM,
                            "pipeline: out of memory "
                            "sorting");
        }
        for (width = 1; width < p->n_pend; width *= 2) {
            int64_t lo;

            for (lo = 0; lo < p->n_pend; lo += 2 * width) {
                int64_t mid = lo + width < p->n_pend ? lo + width : p->n_pend;
                int64_t hi =
                    lo + 2 * width < p->n_pend ? lo + 2 * width : p->n_pend;
                int64_t a = lo, b = mid, k = lo;

                while (a < mid && b < hi)
                    tmp[k++] = rec_cmp(rec_head(cp, order[b]),
                                       rec_head(cp, order[a])) < 0
                                   ? order[b++]
                                   : order[a++];
                while (a < mid)
                    tmp[k++] = order[a++];
                while (b < hi)
                    tmp[k++] = order[b++];
            }
            memcpy(order, tmp, (size_t)p->n_pend * sizeof(int64_t));
        }
        sw__free(tmp);
    }
    for (i = 0; i < p->n_pend; i++)
        memcpy(q + i * p->rec, p->pend + order[i] * p->rec, (size_t)p->rec);
    sw__free(p->pend);
    p->pend = q;
    sw__free(order);
    return SW_OK;
}

/* The bytes of the key tables' indexes and entries in use: what the
 * lookups touch (sw_pipeline_state_bytes counts the allocation, with the
 * event buffer's room, which says nothing of what stays in cache). */
static int64_t
tables_bytes(const sw_pipeline *p)
{
    int64_t b = 0;
    int tb;

    for (tb = 0; tb < p->n_tables; tb++)
        b += 8 * (p->tables[tb].cap + p->tables[tb].n * p->tables[tb].stride);
    return b;
}

/* Process the pending events with time <= bound, in order: (time,
 * arrival), or arrival alone in arrival emission, where every pending
 * event goes at once. */
static sw_rc
drain(sw_pipeline *p, int64_t bound, sw_result *r, sw_err *err)
{
    double *init = NULL;
    int64_t n = 0, i, j, block = 1, done, check_at = 0;
    int tb, ahead = 0;
    sw_rc rc;

    if (p->arrival)
        bound = INT64_MAX;
    rc = p->arrival ? SW_OK : sort_pending(p, err);
    if (rc != SW_OK)
        return rc;
    while (n < p->n_pend && rec_head(p, n)[0] <= bound)
        n++;
    if (n == 0)
        return SW_OK;
    rc = sw__result_room(r, n, err);
    if (rc == SW_OK)
        rc = sw__join_reserve(p, r, n, err);
    if (rc != SW_OK)
        return rc;
    /* the fresh state of an entry of every table, built once */
    for (tb = 0; tb < p->n_tables; tb++)
        block = p->tables[tb].block > block ? p->tables[tb].block : block;
    p->max_block = block;
    init = sw__alloc_array((size_t)(block * (p->n_tables ? p->n_tables : 1)),
                           sizeof(double));
    if (init == NULL)
        return sw__fail(err, SW_E_NOMEM, "pipeline: out of memory");
    for (j = 0; j < p->n_features; j++) {
        const feature *f = &p->features[j];

        if (f->kind != OP_HASH)
            sw__feature_init_state(f, init + f->table * block + f->slot);
    }
    if (p->n_tables > 0 && n * p->n_tables > p->cap_kh) {
        uint64_t *kh = sw__realloc_array(p->kh, (size_t)(n * p->n_tables),
                                         sizeof(uint64_t));

        if (kh == NULL) {
            sw__free(init);
            return sw__fail(err, SW_E_NOMEM, "pipeline: out of memory");
        }
        p->kh = kh;
        p->cap_kh = n * p->n_tables;
    }
    for (tb = 0; tb < p->n_tables; tb++) {
        const keytab *kt = &p->tables[tb];

        for (i = 0; i < n; i++)
            p->kh[i * p->n_tables + tb] = key_hash(p, kt, rec_hash(p, i));
    }
    for (i = 0; i < n; i += done) {
        int64_t m = p->n_tables ? block_len(p, n - i) : 0;

        /* tables that fit in the caches are not asked ahead (ask_ahead):
         * there the calls cost more than they save */
        if (i >= check_at) {
            ahead = tables_bytes(p) > PREFETCH_BYTES;
            check_at = i + 1024;
        }
        if (m > 0) {
            rc = process_block(p, i, m, ahead, n, r, init, &done, err);
        } else {
            for (tb = 0; ahead && tb < p->n_tables; tb++)
                ask_ahead(p, tb, i, n);
            /* no table, no key hashes: kh is NULL, and NULL + 0 is
             * undefined */
            rc = process(p, i, p->n_tables ? p->kh + i * p->n_tables : NULL,
                         r, init, err);
            done = rc == SW_OK;
        }
        /* the join sees each event after its row, in order */
        for (j = i; p->join.on && j < i + done; j++)
            sw__join_event(p, rec_head(p, j)[0], rec_head(p, j)[1],
                           rec_vals(p, j), rec_hash(p, j), r,
                           r->n - done + (j - i));
        if (rc != SW_OK) {
            /* the rows so far are out; keep the rest buffered */
            i += done;
            memmove(p->pend, p->pend + i * p->rec,
                    (size_t)((p->n_pend - i) * p->rec));
            p->n_pend -= i;
            sw__free(init);
            return rc;
        }
    }
    memmove(p->pend, p->pend + n * p->rec, (size_t)((p->n_pend - n) * p->rec));
    p->n_pend -= n;
    sw__free(init);
    return SW_OK;
}

static int64_t
to_us(const sw_pipeline *p, double v)
{
    switch (p->time_unit) {
    case 1:
        return (int64_t)(v * 1e3);
    case 2:
        return (int64_t)(v * 1e6);
    case 3:
        return (int64_t)(v / 1e3);
    default:
        return (int64_t)v;
    }
}

/* The watermark after partition part saw an event at t: the least of the
 * partitions' latest times (one not seen yet counts as at the stream's
 * first event; one more than idle_timeout behind the newest event does not
 * hold it back), minus the delays, never going back. With one partition
 * it is the newest event time minus the delays. */
static inline void
advance_watermark(sw_pipeline *p, int part, int64_t t)
{
    int64_t low = INT64_MAX;
    int k;

    if (p->first_t == INT64_MIN)
        p->first_t = t;
    if (t > p->max_t)
        p->max_t = t;
    if (p->n_parts == 1) {
        /* the loop below with one partition, which is never idle (it
         * holds the newest event) */
        if (t > p->part_max[0])
            p->part_max[0] = t;
        low = p->part_max[0] - (p->out_of_order + p->lateness);
        if (low > p->wm)
            p->wm = low;
        return;
    }
    if (t <= p->part_max[part] && p->wm != INT64_MIN)
        return;
    if (t > p->part_max[part])
        p->part_max[part] = t;
    for (k = 0; k < p->n_parts; k++) {
        int64_t m = p->part_max[k];

        if (m == INT64_MIN)
            m = p->first_t; /* declared or announced, not seen yet */
        if (p->idle_timeout > 0 && m < p->max_t - p->idle_timeout)
            continue;
        if (m < low)
            low = m;
    }
    low -= p->out_of_order + p->lateness;
    if (low > p->wm)
        p->wm = low;
}

/* Field f of rows lo..n-1 of column cl (NULL: absent) into the values and
 * hashes of records base + lo.., noting in p->why the rows it makes
 * invalid (unless an earlier field did). */
static void
read_column(sw_pipeline *p, const sw_column *cl, int f, int64_t lo, int64_t n,
            int64_t base)
{
    const field *fd = &p->fields[f];
    unsigned char *why = p->why;
    /* in locals: a store through p->pend could be one of p's words */
    const int64_t rec = p->rec;
    unsigned char *vq = p->pend + (base + lo) * rec + 16 + 8 * (int64_t)f;
    unsigned char *hq = vq + 8 * (int64_t)p->n_fields;
    int64_t i;

#define VAL(i) (*(double *)(vq + ((i)-lo) * rec))
#define HASH(i) (*(uint64_t *)(hq + ((i)-lo) * rec))

    if (cl == NULL) {
        for (i = lo; i < n; i++) {
            if (!why[i])
                why[i] = SW_INVALID_MISSING;
        }
        return;
    }
    if (cl->bad != NULL) {
        for (i = lo; i < n; i++) {
            if (!why[i] && cl->bad[i])
                why[i] = cl->bad[i] <= SW_INVALID_TIME ? cl->bad[i]
                                                       : SW_INVALID_TYPE;
        }
    }
    switch (cl->type) {
    case SW_COL_STR:
        for (i = lo; i < n; i++)
            VAL(i) = NAN;
        break;
    case SW_COL_I64:
        for (i = lo; i < n; i++)
            VAL(i) = (double)((const int64_t *)cl->data)[i];
        break;
    case SW_COL_I32:
        for (i = lo; i < n; i++)
            VAL(i) = ((const int32_t *)cl->data)[i];
        break;
    case SW_COL_I8:
    case SW_COL_BOOL:
        for (i = lo; i < n; i++)
            VAL(i) = ((const int8_t *)cl->data)[i];
        break;
    case SW_COL_F64: /* NaN and infinities make the row invalid */
        for (i = lo; i < n; i++) {
            double v = ((const double *)cl->data)[i];

            VAL(i) = v;
            if (!isfinite(v) && !why[i])
                why[i] = f == p->time_field ? SW_INVALID_TIME : SW_INVALID_NAN;
        }
        break;
    default: /* other floats, as float64 */
        for (i = lo; i < n; i++) {
            double v = sw__column_number(cl, i);

            VAL(i) = v;
            if (!isfinite(v) && !why[i])
                why[i] = f == p->time_field ? SW_INVALID_TIME : SW_INVALID_NAN;
        }
        break;
    }
    if (fd->private_) {
        /* only the keyed hash goes further */
        for (i = lo; i < n; i++) {
            VAL(i) = NAN;
            HASH(i) = sw__private_hash(p, cl, i, fd->salt);
        }
    } else if (fd->hashed && cl->type == SW_COL_I64) {
        for (i = lo; i < n; i++)
            HASH(i) =
                sw__mix64(fd->salt, (uint64_t)((const int64_t *)cl->data)[i]);
    } else if (fd->hashed) {
        for (i = lo; i < n; i++)
            HASH(i) = column_hash(cl, i, fd->salt);
    } else {
        for (i = lo; i < n; i++)
            HASH(i) = 0;
    }
#undef VAL
#undef HASH
}

sw_rc
sw_pipeline_push(sw_pipeline *p, const sw_batch *b, sw_result *r, sw_err *err)
{
    return sw_pipeline_push_partition(p, b, 0, r, err);
}

sw_rc
sw_pipeline_push_partition(sw_pipeline *p, const sw_batch *b, int part,
                           sw_result *r, sw_err *err)
{
    const sw_column *cols[SW_MAX_FIELDS];
    int64_t i, lo, end, left;
    int f, c;
    sw_rc rc, drain_rc = SW_OK;

    if (p == NULL || b == NULL || r == NULL || b->n_rows < 0 ||
        (b->n_rows > 0 && b->columns == NULL))
        return sw__fail(err, SW_E_INVAL, "push: NULL or negative argument");
    if (part < 0 ||
        part >= (p->declared_parts ? p->declared_parts : SW_MAX_PARTITIONS))
        return sw__fail(
            err, SW_E_INVAL, "push: partition %d outside 0..%d%s", part,
            (p->declared_parts ? p->declared_parts : SW_MAX_PARTITIONS) - 1,
            p->declared_parts ? " (watermark.partitions)" : "");
    while (p->n_parts <= part)
        p->part_max[p->n_parts++] = INT64_MIN;
    if (p->n_private > 0 && !p->has_secret)
        return sw__fail(err, SW_E_INVAL,
                        "push: the spec hashes private fields; set the secret "
                        "first (sw_pipeline_set_secret)");
    sw__result_reset(r, p);
    for (f = 0; f < p->n_fields; f++) {
        cols[f] = NULL;
        for (c = 0; c < b->n_columns; c++) {
            if (!strcmp(b->columns[c].name, p->fields[f].name))
                cols[f] = &b->columns[c];
        }
        if (cols[f] != NULL &&
            (cols[f]->type == SW_COL_STR) != (p->fields[f].type == SW_COL_STR))
            return sw__fail(
                err, SW_E_INVAL, "push: column '%s' is %s, the spec says %s",
                p->fields[f].name,
                cols[f]->type == SW_COL_STR ? "text" : "numbers",
                p->fields[f].type == SW_COL_STR ? "str" : "a number");
        if (cols[f] != NULL && cols[f]->type == SW_COL_STR &&
            cols[f]->width < 1)
            return sw__fail(err, SW_E_INVAL, "push: column '%s' has width %lld",
                            p->fields[f].name, (long long)cols[f]->width);
        if (cols[f] != NULL && cols[f]->data == NULL && b->n_rows > 0)
            return sw__fail(err, SW_E_INVAL, "push: column '%s' has no data",
                            p->fields[f].name);
    }
    rc = sw__pipeline_reserve(p, p->n_pend + b->n_rows, err);
    if (rc == SW_OK && b->n_rows > p->cap_why) {
        unsigned char *why = sw__realloc_array(p->why, (size_t)b->n_rows, 1);

        if (why == NULL)
            return sw__fail(err, SW_E_NOMEM, "pipeline: out of memory");
        p->why = why;
        p->cap_why = b->n_rows;
    }
    if (rc != SW_OK)
        return rc;
    /* a chunk at a time, column by column into records (one type dispatch
     * per column, not per value), then drained while they are in cache:
     * an event arriving later has a time at or past the watermark it met,
     * so draining early emits the rows a drain at the end would, in the
     * same order. A drain costs the records it leaves buffered (sorting,
     * moving), so the next waits until as many new ones have come.
     * why[i]: the first reason row i is invalid, in field order. */
    if (b->n_rows > 0)
        memset(p->why, 0, (size_t)b->n_rows);
    left = p->n_pend;
    for (lo = 0; lo < b->n_rows; lo = end) {
        int64_t base = p->n_pend - lo; /* row i's record: base + i */

        end = lo + PUSH_CHUNK < b->n_rows ? lo + PUSH_CHUNK : b->n_rows;
        for (f = 0; f < p->n_fields; f++)
            read_column(p, cols[f], f, lo, end, base);
        for (i = lo; i < end; i++) {
            int64_t seq = p->next_seq++, t = 0, k = p->n_pend;
            int reason = p->why[i];
            double tv;

            if (!reason) {
                tv = rec_vals(p, base + i)[p->time_field];
                t = to_us(p, tv);
                if (!(tv >= 0) || t < 0 || t > TIME_MAX_US)
                    reason = SW_INVALID_TIME;
            }
            if (reason) {
                p->n_invalid[reason]++;
                rc = sw__result_push_id(&r->inv, &r->n_inv, &r->cap_inv,
                                        &r->inv_reason, reason, seq, err);
                if (rc != SW_OK)
                    return rc;
                continue;
            }
            if (t < p->wm) {
                p->n_late++;
                rc = sw__result_push_id(&r->late, &r->n_late, &r->cap_late,
                                        NULL, 0, seq, err);
                if (rc != SW_OK)
                    return rc;
                continue;
            }
            advance_watermark(p, part, t);
            if (k > 0 && t < rec_head(p, k - 1)[0])
                p->pend_unsorted = 1;
            if (k != base + i)
                memcpy(rec_head(p, k), rec_head(p, base + i), (size_t)p->rec);
            rec_head(p, k)[0] = t;
            rec_head(p, k)[1] = seq;
            p->n_pend++;
        }
        if (end < b->n_rows && drain_rc == SW_OK &&
            (p->wm != INT64_MIN || p->arrival) &&
            p->n_pend - left >= (left > DRAIN_MIN ? left : DRAIN_MIN)) {
            /* a failed drain keeps its rest buffered; the rows after it
             * are buffered too, and the error is the push's */
            drain_rc = drain(p, p->wm, r, err);
            left = p->n_pend;
        }
    }
    if (drain_rc != SW_OK)
        return drain_rc;
    if (p->wm == INT64_MIN && !p->arrival)
        return SW_OK;
    return drain(p, p->wm, r, err);
}

sw_rc
sw_pipeline_flush(sw_pipeline *p, sw_result *r, sw_err *err)
{
    sw_rc rc;

    if (p == NULL || r == NULL)
        return sw__fail(err, SW_E_INVAL, "flush: NULL argument");
    sw__result_reset(r, p);
    rc = drain(p, INT64_MAX, r, err);
    if (rc == SW_OK)
        rc = sw__join_reserve(p, r, 0, err);
    if (rc == SW_OK) /* the stream ends: nothing more will be claimed */
        sw__join_expire_all(p, r);
    return rc;
}

/* ------------------------------------------------------------------ */
/* The handle                                                           */
/* ------------------------------------------------------------------ */

sw_rc
sw_pipeline_new(const char *spec_json, sw_pipeline **out, sw_err *err)
{
    sw_pipeline *p = NULL;
    sw_rc rc;

    *out = NULL;
    if (spec_json == NULL)
        return sw__fail(err, SW_E_INVAL, "pipeline: NULL spec");
    if (sodium_init() < 0)
        return sw__fail(err, SW_E_INTERNAL, "pipeline: libsodium failed");
    p = sw__calloc(1, sizeof(*p));
    if (p == NULL)
        return sw__fail(err, SW_E_NOMEM, "pipeline: out of memory");
    rc = sw__spec_compile(spec_json, p, err);
    if (rc != SW_OK)
        goto done;
    p->rec = 16 + 16 * p->n_fields;
    p->max_t = INT64_MIN;
    p->now = INT64_MIN;
    p->wm = INT64_MIN;
    p->first_t = INT64_MIN;
    for (p->n_parts = 0; p->n_parts < p->declared_parts; p->n_parts++)
        p->part_max[p->n_parts] = INT64_MIN;
    *out = p;
    p = NULL;
done:
    sw_pipeline_free(p);
    return rc;
}

void
sw_pipeline_free(sw_pipeline *p)
{
    int t;

    if (p == NULL)
        return;
    if (p->bg_pid > 0) { /* leave no zombie and no half-told writer */
        int done;

        sw_pipeline_checkpoint_wait(p, 1, &done, NULL);
    }
    for (t = 0; p->tables && t < p->n_tables; t++)
        sw__keytab_free(&p->tables[t]);
    sw__free(p->tables);
    sw__free(p->pend);
    sw__free(p->kh);
    sw__free(p->why);
    sw__free(p->position);
    sw__join_free(&p->join.q);
    sw__spec_free(p);
    sw__free(p);
}

int
sw_pipeline_n_dense(const sw_pipeline *p)
{
    return p->n_dense;
}

int
sw_pipeline_n_hashed(const sw_pipeline *p)
{
    return p->n_hash;
}

const char *
sw_pipeline_column_name(const sw_pipeline *p, int j)
{
    return j >= 0 && j < p->n_dense ? p->colnames[j] : NULL;
}

int64_t
sw_pipeline_sparse_dims(const sw_pipeline *p)
{
    return p->sparse_dims;
}

const char *
sw_invalid_reason(int code)
{
    static const char *const words[] = {"", "missing", "wrong_type", "nan",
                                        "bad_time"};

    return code >= SW_INVALID_MISSING && code <= SW_INVALID_TIME ? words[code]
                                                                 : "";
}

void
sw_pipeline_get_stats(const sw_pipeline *p, sw_pipeline_stats *out)
{
    int t;

    memset(out, 0, sizeof(*out));
    for (t = 0; t < p->n_tables; t++)
        out->keys += p->tables[t].n;
    for (t = SW_INVALID_MISSING; t <= SW_INVALID_TIME; t++) {
        out->invalid_by[t] = p->n_invalid[t];
        out->invalid += p->n_invalid[t];
    }
    out->emitted = p->n_emitted;
    out->late = p->n_late;
    out->buffered = p->n_pend;
    out->joined = p->join.n_matched;
    out->unmatched = p->join.n_unmatched;
    out->join_waiting = p->join.q.n - p->join.q.head;
}

sw_rc
sw_pipeline_profile(const sw_pipeline *p, const sw_batch *key, double *out,
                    int n_out, sw_err *err)
{
    uint64_t h[SW_MAX_FIELDS] = {0};
    int present[SW_MAX_FIELDS] = {0}, n_present = 0, f, c, tb, j;

    if (n_out != p->n_dense)
        return sw__fail(err, SW_E_SHAPE, "profile: %d outputs, expected %d",
                        n_out, p->n_dense);
    if (key == NULL || key->n_rows != 1)
        return sw__fail(err, SW_E_INVAL,
                        "profile: expected one row of key "
                        "fields");
    for (c = 0; c < key->n_columns; c++) {
        for (f = 0;
             f < p->n_fields && strcmp(p->fields[f].name, key->columns[c].name);
             f++)
            ;
        if (f == p->n_fields)
            return sw__fail(err, SW_E_INVAL,
                            "profile: '%s' is not an event "
                            "field",
                            key->columns[c].name);
        if (p->fields[f].private_ && !p->has_secret)
            return sw__fail(err, SW_E_INVAL,
                            "profile: '%s' is private; set the secret first",
                            key->columns[c].name);
        h[f] = p->fields[f].private_
                   ? sw__private_hash(p, &key->columns[c], 0, p->fields[f].salt)
                   : column_hash(&key->columns[c], 0, p->fields[f].salt);
        present[f] = 1;
        n_present++;
    }
    for (j = 0; j < n_out; j++)
        out[j] = NAN;
    for (tb = 0; tb < p->n_tables; tb++) {
        const keytab *kt = &p->tables[tb];
        const uint64_t *e;
        const double *s;
        int k, all = kt->n_keys == n_present;

        for (k = 0; k < kt->n_keys; k++)
            all &= present[kt->keys[k]];
        if (!all)
            continue;
        e = sw__keytab_find(kt, key_hash(p, kt, h));
        s = e ? (const double *)(e + 2) : NULL;
        for (j = 0; j < p->n_features; j++) {
            const feature *f2 = &p->features[j];

            if (f2->table != tb)
                continue;
            if (s == NULL || (p->ttl > 0 && p->now - (int64_t)e[1] > p->ttl)) {
                double *fresh =
                    sw__alloc_array((size_t)f2->n_slots + 1, sizeof(double));

                if (fresh == NULL)
                    return sw__fail(err, SW_E_NOMEM, "profile: out of memory");
                sw__feature_init_state(f2, fresh);
                sw__op_value(f2, fresh, p->now, NAN, out + f2->offset);
                sw__free(fresh);
            } else {
                sw__op_value(f2, s + f2->slot, p->now, NAN, out + f2->offset);
            }
        }
    }
    return SW_OK;
}

const void *
sw_pipeline_position(const sw_pipeline *p, size_t *len)
{
    *len = p->position_len;
    return p->position;
}

int64_t
sw_pipeline_oldest_pending(const sw_pipeline *p)
{
    int64_t i, lo = p->next_seq;

    for (i = 0; i < p->n_pend; i++) {
        if (rec_head(p, i)[1] < lo)
            lo = rec_head(p, i)[1];
    }
    return lo;
}

int64_t
sw_pipeline_arrivals(const sw_pipeline *p)
{
    return p->next_seq;
}

sw_rc
sw_pipeline_hash_column(const sw_pipeline *p, const sw_column *col,
                        int64_t n_rows, uint64_t *out, sw_err *err)
{
    int64_t i;
    int f;

    if (p == NULL || col == NULL ||
        (n_rows > 0 && (out == NULL || col->data == NULL)))
        return sw__fail(err, SW_E_INVAL, "hash_column: NULL argument");
    for (f = 0; f < p->n_fields && strcmp(p->fields[f].name, col->name); f++)
        ;
    if (f == p->n_fields)
        return sw__fail(err, SW_E_INVAL,
                        "hash_column: '%s' is not an event "
                        "field",
                        col->name);
    if ((col->type == SW_COL_STR) != (p->fields[f].type == SW_COL_STR) ||
        (col->type == SW_COL_STR && col->width < 1))
        return sw__fail(err, SW_E_INVAL,
                        "hash_column: column '%s' does not "
                        "have the spec's type",
                        col->name);
    if (p->fields[f].private_ && !p->has_secret)
        return sw__fail(err, SW_E_INVAL,
                        "hash_column: '%s' is private; set the secret first",
                        col->name);
    for (i = 0; i < n_rows; i++)
        out[i] = p->fields[f].private_
                     ? sw__private_hash(p, col, i, p->fields[f].salt)
                     : column_hash(col, i, p->fields[f].salt);
    return SW_OK;
}

uint64_t
sw_pipeline_spec_hash(const sw_pipeline *p)
{
    return p->spec_hash;
}

int
sw_pipeline_arrival(const sw_pipeline *p)
{
    return p->arrival;
}

int64_t
sw_pipeline_watermark(const sw_pipeline *p)
{
    return p->wm;
}

sw_rc
sw_pipeline_announce_partitions(sw_pipeline *p, int n, sw_err *err)
{
    int limit = p->declared_parts ? p->declared_parts : SW_MAX_PARTITIONS;

    if (n < 0 || n > limit)
        return sw__fail(err, SW_E_INVAL,
                        "announce_partitions: %d outside 0..%d%s", n, limit,
                        p->declared_parts ? " (watermark.partitions)" : "");
    while (p->n_parts < n)
        p->part_max[p->n_parts++] = INT64_MIN;
    return SW_OK;
}

int64_t
sw_pipeline_evicted(const sw_pipeline *p)
{
    return p->n_evicted;
}

int64_t
sw_pipeline_state_bytes(const sw_pipeline *p)
{
    const joinq *q = &p->join.q;
    int64_t bytes = p->cap_pend * p->rec, t;

    for (t = 0; t < p->n_tables; t++) {
        const keytab *kt = &p->tables[t];

        bytes += kt->room * kt->stride * 8 + kt->cap * 8 + kt->dirty_cap +
                 kt->cap_gone * 8;
    }
    bytes += q->cap * (8 * 3 + 8 * (int64_t)(p->n_dense + p->n_hash)) +
             q->mcap * 8;
    return bytes;
}
