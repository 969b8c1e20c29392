/* SPDX-License-Identifier: MIT */
/*
 * sw_gbdt_bins.c - the trainer's first stage: each feature's bin edges
 * from the quantiles of a seeded row sample (gathered from every rank of
 * a distributed fit), then every row's bins, a byte per feature,
 * row-major (sw_gbdt_grow.c copies them in the order of the leaves).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sw_gbdt_int.h"

/* Sort n doubles (no NaN) with a least-significant-digit radix sort on
 * their bits (sign-flipped so that integer order is numeric order): six
 * passes of 11 bits, linear in n, where qsort's calls through a pointer
 * cost a second per fit on 200k samples x 28 features. tmp holds n. */
static void
sort_doubles(double *v, double *tmp, int64_t n)
{
    enum { BITS = 11, DIGITS = 1 << BITS };
    uint64_t *a = (uint64_t *)v, *b = (uint64_t *)tmp, *swap;
    int64_t i, pass;

    for (i = 0; i < n; i++) {
        uint64_t u;

        memcpy(&u, &v[i], 8);
        a[i] = u >> 63 ? ~u : u | 0x8000000000000000ULL;
    }
    for (pass = 0; pass < 6; pass++) {
        int64_t count[DIGITS] = {0}, sum = 0, d;
        int shift = (int)pass * BITS;

        for (i = 0; i < n; i++)
            count[(a[i] >> shift) & (DIGITS - 1)]++;
        for (d = 0; d < DIGITS; d++) {
            int64_t c = count[d];

            count[d] = sum;
            sum += c;
        }
        for (i = 0; i < n; i++)
            b[count[(a[i] >> shift) & (DIGITS - 1)]++] = a[i];
        swap = a;
        a = b;
        b = swap;
    }
    /* an even number of passes: the sorted keys are back in v */
    for (i = 0; i < n; i++) {
        uint64_t u = a[i] >> 63 ? a[i] & 0x7fffffffffffffffULL : ~a[i];

        memcpy(&v[i], &u, 8);
    }
}

typedef struct bin_job {
    trainer *t;
    const sw_rows *src; /* the rows sample indexes */
    const int64_t *sample;
    int64_t n_sample;
    double *scratch; /* per thread: 2 n_sample doubles */
    double *edges;   /* nf x max_bin */
    int64_t *n_edges;
    int64_t f0; /* chunk c is feature f0 + c */
} bin_job;

/* Edges of feature f0 + c: upper bounds of the value bins but the last. */
static void
edges_of(void *ctx, int64_t c, int thread)
{
    bin_job *j = ctx;
    trainer *t = j->t;
    int64_t f = j->f0 + c;
    double *v = j->scratch + 2 * (size_t)thread * (size_t)j->n_sample;
    double *e = j->edges + f * t->max_bin;
    int64_t m = 0, k, distinct = 0, ne = 0;

    for (k = 0; k < j->n_sample; k++) {
        double x = x_at(j->src, j->sample[k], f);

        if (x == x)
            v[m++] = x;
    }
    sort_doubles(v, v + j->n_sample, m);
    for (k = 0; k < m; k++)
        distinct += k == 0 || v[k] != v[k - 1];
    if (distinct <= t->max_bin) {
        for (k = 1; k < m; k++) {
            if (v[k] != v[k - 1])
                e[ne++] = v[k - 1] + (v[k] - v[k - 1]) / 2;
        }
    } else {
        /* equal-frequency cuts at ranks k m / max_bin; a rank inside a
         * run of equal values moves to the run's end, so runs are never
         * split and no cut is lost (skipping those cut 256 equally common
         * values into 2 bins) */
        int64_t pos = 0;

        for (k = 1; k < t->max_bin; k++) {
            int64_t want = k * m / t->max_bin;

            pos = want > pos ? want : pos;
            while (pos < m && v[pos] == v[pos - 1])
                pos++;
            if (pos >= m)
                break;
            e[ne++] = v[pos - 1] + (v[pos] - v[pos - 1]) / 2;
            pos++; /* the next cut comes after this one */
        }
    }
    j->n_edges[f] = ne;
}

typedef struct fill_job {
    trainer *t;
    int64_t block;
    const double *pad; /* per feature 256 edges, +inf past its own */
} fill_job;

/* Every row's bins: bin b of x is the count of edges < x (NaN: the NaN
 * bin), found by a binary search without branches over the feature's
 * edges padded to 256 with +inf. Eight features' searches go in step: a
 * search's eight loads each wait for the one before, eight of them side
 * by side keep the core busy. Not vectorized: GCC's two-lane vectors went
 * through memory and were slower. */
#if defined(__GNUC__) && !defined(__clang__)
__attribute__((optimize("no-tree-vectorize")))
#endif
static void
fill_rows(void *ctx, int64_t chunk, int thread)
{
    enum { FB = 8 };
    fill_job *j = ctx;
    trainer *t = j->t;
    int64_t lo = chunk * j->block, hi = lo + j->block, i, f0, step;

    (void)thread;
    if (hi > t->n)
        hi = t->n;
    for (i = lo; i < hi; i++) {
        for (f0 = 0; f0 < t->nf; f0 += FB) {
            int m = t->nf - f0 < FB ? (int)(t->nf - f0) : FB, k;
            double x[FB];
            const double *e[FB];
            int64_t at[FB];

            /* always FB searches (the last feature again past nf), so
             * that the compiler keeps them in registers */
            for (k = 0; k < FB; k++) {
                int64_t f = k < m ? f0 + k : t->nf - 1;

                x[k] = x_at(t->X, i, f);
                e[k] = j->pad + f * 256;
                at[k] = 0;
            }
            for (step = 128; step > 0; step >>= 1) {
#pragma GCC unroll 8
                for (k = 0; k < FB; k++)
                    at[k] =
                        e[k][at[k] + step - 1] < x[k] ? at[k] + step : at[k];
            }
            for (k = 0; k < m; k++) {
                uint8_t b = (uint8_t)(x[k] != x[k] ? t->nbins[f0 + k] : at[k]);

                t->bins[i * t->nf + f0 + k] = b;
            }
        }
    }
}

static int
cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

    return (x > y) - (x < y);
}

/* A distributed fit's bin sample: the rows at sample[0..n_sample) (row
 * ids) that this rank holds, gathered from every rank into *vals (n_sample
 * x nf doubles, in rank order: edges do not depend on the order). */
static sw_rc
gather_sample(trainer *t, int64_t *sample, int64_t n_sample, double **vals,
              sw_err *err)
{
    int64_t lens[SW_COLL_MAX_RANKS], k, i = 0, m = 0, f;
    double *mine;
    void *all = NULL;
    sw_rc rc;

    qsort(sample, (size_t)n_sample, sizeof(int64_t), cmp_i64);
    mine = sw__alloc_array((size_t)(t->n < n_sample ? t->n : n_sample) + 1,
                           (size_t)t->nf * sizeof(double));
    if (mine == NULL)
        return sw__fail(err, SW_E_NOMEM, "gbdt: out of memory");
    for (k = 0; k < n_sample && i < t->n; k++) {
        while (i < t->n && row_id(t, i) < sample[k])
            i++;
        if (i < t->n && row_id(t, i) == sample[k]) {
            for (f = 0; f < t->nf; f++)
                mine[m * t->nf + f] = x_at(t->X, i, f);
            m++;
        }
    }
    rc = sw_coll_gather(t->coll, mine, m * t->nf * (int64_t)sizeof(double),
                        &all, lens, err);
    sw__free(mine);
    if (rc != SW_OK)
        return rc;
    for (k = 0, m = 0; k < sw_coll_size(t->coll); k++)
        m += lens[k];
    if (m != n_sample * t->nf * (int64_t)sizeof(double)) {
        sw__free(all);
        return sw__fail(err, SW_E_INVAL,
                        "gbdt: the ranks hold %lld of the %lld sampled rows "
                        "(row ids overlap or are out of range)",
                        (long long)(m / (t->nf * (int64_t)sizeof(double))),
                        (long long)n_sample);
    }
    *vals = all;
    return SW_OK;
}

/* A distributed fit's edges: each rank computed those of its features
 * ([f_lo, f_hi)), a count and the values per feature; every rank's are
 * gathered, in rank order, which is feature order. */
static sw_rc
share_edges(trainer *t, double *edges, int64_t *n_edges, sw_err *err)
{
    int64_t lens[SW_COLL_MAX_RANKS], f, at = 0, total = 0, k;
    double *mine, *all;
    void *buf = NULL;
    sw_rc rc;

    mine = sw__alloc_array((size_t)((t->f_hi - t->f_lo) * (t->max_bin + 1) + 1),
                           sizeof(double));
    if (mine == NULL)
        return sw__fail(err, SW_E_NOMEM, "gbdt: out of memory");
    for (f = t->f_lo; f < t->f_hi; f++) {
        mine[at++] = (double)n_edges[f];
        memcpy(mine + at, edges + f * t->max_bin,
               (size_t)n_edges[f] * sizeof(double));
        at += n_edges[f];
    }
    rc = sw_coll_gather(t->coll, mine, at * (int64_t)sizeof(double), &buf,
                        lens, err);
    sw__free(mine);
    if (rc != SW_OK)
        return rc;
    all = buf;
    for (k = 0; k < sw_coll_size(t->coll); k++)
        total += lens[k] / (int64_t)sizeof(double);
    for (f = 0, at = 0; f < t->nf; f++) {
        int64_t ne = at < total ? (int64_t)all[at] : -1;

        if (ne < 0 || ne >= t->max_bin || at + 1 + ne > total) {
            sw__free(buf);
            return sw__fail(err, SW_E_FORMAT,
                            "gbdt: the ranks' bin edges stop at feature %lld "
                            "of %lld",
                            (long long)f, (long long)t->nf);
        }
        n_edges[f] = ne;
        memcpy(edges + f * t->max_bin, all + at + 1,
               (size_t)ne * sizeof(double));
        at += 1 + ne;
    }
    sw__free(buf);
    return SW_OK;
}

/* Edges from a sample (unless continuing a model, whose edges stay), then
 * every row's bins. */
sw_rc
sw__gbdt_make_bins(trainer *t, int have_edges, sw_err *err)
{
    sw_gbdt *g = t->g;
    int64_t f, n_sample = t->n_all < t->bin_sample ? t->n_all : t->bin_sample;
    sw_rc rc = SW_OK;

    if (!have_edges) {
        int64_t *sample = sw__alloc_array((size_t)t->n_all, sizeof(int64_t));
        double *scratch = sw__alloc_array((size_t)(2 * n_sample * t->threads),
                                          sizeof(double));
        double *edges =
            sw__alloc_array((size_t)(t->nf * t->max_bin), sizeof(double));
        int64_t *n_edges = sw__alloc_array((size_t)t->nf, sizeof(int64_t)), k;
        uint64_t s = t->seed ^ 0x62696e73ULL; /* "bins" */
        double *vals = NULL;
        sw_rows gathered;
        bin_job j;

        if (!sample || !scratch || !edges || !n_edges) {
            rc = sw__fail(err, SW_E_NOMEM, "gbdt: out of memory");
            goto done;
        }
        for (k = 0; k < t->n_all; k++)
            sample[k] = k;
        /* a seeded partial shuffle of the row ids picks the sample */
        if (n_sample < t->n_all) {
            for (k = 0; k < n_sample; k++) {
                int64_t r = k + (int64_t)(mix(&s) % (uint64_t)(t->n_all - k)),
                        tmp = sample[k];

                sample[k] = sample[r];
                sample[r] = tmp;
            }
        }
        j = (bin_job){t, t->X, sample, n_sample, scratch, edges, n_edges, 0};
        if (t->coll != NULL) {
            rc = gather_sample(t, sample, n_sample, &vals, err);
            memset(&gathered, 0, sizeof(gathered));
            gathered.layout = SW_DENSE;
            gathered.dtype = SW_F64;
            gathered.n_rows = n_sample;
            gathered.n_cols = gathered.row_stride = t->nf;
            gathered.data = vals;
            j.src = &gathered;
            for (k = 0; k < n_sample; k++)
                sample[k] = k;
        }
        /* alone, every feature; a rank, its share, then the others' */
        j.f0 = t->f_lo;
        if (rc == SW_OK)
            rc = sw__parallel(t->threads, t->f_hi - t->f_lo, edges_of, &j, err);
        if (rc == SW_OK && t->coll != NULL)
            rc = share_edges(t, edges, n_edges, err);
        if (rc == SW_OK) {
            int64_t total = 0;

            g->edge_start[0] = 0;
            for (f = 0; f < t->nf; f++)
                g->edge_start[f + 1] = (total += n_edges[f]);
            g->edges =
                sw__alloc_array((size_t)(total ? total : 1), sizeof(double));
            if (g->edges == NULL)
                rc = sw__fail(err, SW_E_NOMEM, "gbdt: out of memory");
            for (f = 0; rc == SW_OK && f < t->nf; f++)
                memcpy(g->edges + g->edge_start[f], edges + f * t->max_bin,
                       (size_t)n_edges[f] * sizeof(double));
        }
    done:
        sw__free(vals);
        sw__free(sample);
        sw__free(scratch);
        sw__free(edges);
        sw__free(n_edges);
        if (rc != SW_OK)
            return rc;
    }
    {
        double *pad = sw__alloc_array((size_t)t->nf * 256, sizeof(double));
        fill_job j = {t, 16384, pad};
        int64_t k;

        if (pad == NULL)
            return sw__fail(err, SW_E_NOMEM, "gbdt: out of memory");
        for (f = 0; f < t->nf; f++) {
            int64_t a = g->edge_start[f], ne = g->edge_start[f + 1] - a;

            t->nbins[f] = (int)ne + 1;
            for (k = 0; k < 256; k++)
                pad[f * 256 + k] = k < ne ? g->edges[a + k] : INFINITY;
        }
        rc = sw__parallel(t->threads, (t->n + j.block - 1) / j.block, fill_rows,
                          &j, err);
        sw__free(pad);
        return rc;
    }
}
