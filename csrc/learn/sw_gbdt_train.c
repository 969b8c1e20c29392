/* SPDX-License-Identifier: MIT */
/*
 * sw_gbdt_train.c - histogram gradient boosting: features binned once to
 * uint8 (quantiles of a seeded row sample, a bin of its own for NaN), one
 * row-major byte matrix, trees grown leaf-wise from per-leaf histograms of
 * gradient and hessian sums, the larger child's histogram got by
 * subtracting the smaller's from its parent's.
 *
 * Gains and leaf values are LightGBM's and xgboost's (un-halved gain,
 * soft-threshold for L1, max_delta_step clipping), so that results can be
 * checked against them. A split on bin b sends bins 0..b left; NaN rows go
 * the way that gained more, remembered as the node's default.
 *
 * Gradients and hessians are summed as fixed-point integers (62 bits for a
 * leaf's sum, about 42 for one row's value at a million rows): sums are
 * exact whatever their order, so threads take chunks of a leaf's rows as
 * they come free, each into a histogram of its own, and the same data and
 * seed still give the same model bytes at any thread count.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sw_internal.h"

#if defined(__x86_64__) && defined(__SSE2__)
#include <emmintrin.h>
#endif

/* Loops in the widest vectors the CPU has (one clone per level, picked
 * at load time); no FMA (-ffp-contract=off), so every clone gives the
 * same bits. */
#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__)
#define SW_GBDT_CLONES                                                         \
    __attribute__((target_clones("arch=x86-64-v4", "avx2", "default"),         \
                   optimize("vect-cost-model=dynamic", "no-trapping-math")))
#else
#define SW_GBDT_CLONES
#endif

/* A histogram bin: the sum of gradients with the row count packed in its
 * low bits (gn = g * 2^cbits + n, see gradients()), and the sum of
 * hessians. Both are fixed-point integers, so that sums are exact and the
 * same in any order: threads can take any rows into histograms of their
 * own and the model stays the same at any thread count. LightGBM estimates
 * counts from hessians instead, but on the Higgs-like task that moved
 * min_data_in_leaf enough to cost 0.004 test AUC; a count of its own made
 * the bin 24 bytes, two stores per row and feature where 16 bytes take one
 * (the histogram loop 20-25% faster). */
typedef struct hbin {
    int64_t gn, h;
} hbin;

typedef struct split {
    double gain; /* > 0 when the leaf has a split */
    int32_t feature, bin;
    int default_left;
    int64_t gl, hl, nl;
} split;

typedef struct leaf {
    int64_t begin, end; /* its rows: idx[begin, end) */
    int64_t g, h, n;    /* sums, fixed point as the histograms */
    int depth;
    int64_t node;
    hbin *hist;
    split best;
} leaf;

typedef struct trainer {
    int objective, num_leaves, max_depth, max_bin, threads, depthwise;
    int64_t K;      /* scores per row: classes of a multiclass model, or 1 */
    int64_t cls;    /* multiclass: the class of the tree being grown */
    int64_t round0; /* rounds of the model continued: a continued fit
                     * draws the bags that training longer would have */
    double *prob;   /* multiclass: n x K probabilities at the round's start */
    int64_t rounds, min_data, bin_sample, early;
    double lr, min_hess, l1, l2, min_gain, max_delta, bag, ffrac;
    uint64_t seed;

    const sw_rows *X;
    const double *y;
    int64_t n, nf;
    /* a distributed fit (see sw_gbdt_fit_shard): this rank's rows are
     * rows row_ids (NULL: 0 .. n - 1) of n_all; coll sums the ranks'
     * histograms. Alone: coll NULL, n_all n. */
    const int64_t *row_ids;
    sw_coll *coll;
    int64_t n_all;
    int ahead_want; /* leaves split at a time, the same on every rank */
    uint8_t *bins;     /* n x nf, row-major: histograms read whole rows */
    uint8_t *bins_col; /* nf x n: a split reads one feature of its rows */
    int *nbins;        /* value bins of feature f; bin nbins[f] is NaN */
    int64_t *gh;       /* gradient and hessian of row r, fixed point: gh[2r]
                        * = g * gscale * 2^cbits + 1 (the count packed below
                        * the gradient), gh[2r + 1] = h * hscale */
    double gscale, hscale, ginv, hinv; /* powers of two */
    int cbits;                         /* a count of up to n rows fits */
    double *gmax;                      /* per row chunk, see gradients */
    double *score;
    int64_t *idx, n_bag, *oob, n_oob;
    int64_t *tmp;     /* partition scratch: n per pool thread */
    int64_t *part_at; /* see split_pooled */
    uint8_t *use;
    leaf *leaves;
    struct ahead *ahead; /* per leaf: its children when split ahead */
    int n_leaves;
    hbin **pool;
    int n_pool, cap_pool;
    hbin *partials;    /* per pool thread but the caller, see build_hist */
    sw_pool *workers;  /* NULL with one thread */
    double *node_gain; /* per model node, for importance */
    int64_t cap_gain;
    sw_gbdt *g;
} trainer;

static uint64_t
mix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* What the (k + 1)-th mix(&s) from state s returns: row k's draw, made
 * by its row id on whichever rank holds it. */
static uint64_t
mix_at(uint64_t s, uint64_t k)
{
    uint64_t z = s + k * 0x9e3779b97f4a7c15ULL;

    return mix(&z);
}

static int64_t
row_id(const trainer *t, int64_t i)
{
    return t->row_ids ? t->row_ids[i] : i;
}

static double
x_at(const sw_rows *X, int64_t i, int64_t f)
{
    return X->dtype == SW_F64
               ? ((const double *)X->data)[i * X->row_stride + f]
               : (double)((const float *)X->data)[i * X->row_stride + f];
}

/* ---- binning ----------------------------------------------------- */

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
} bin_job;

/* Edges of feature f: upper bounds of the value bins but the last. */
static void
edges_of(void *ctx, int64_t f, int thread)
{
    bin_job *j = ctx;
    trainer *t = j->t;
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
                t->bins_col[(f0 + k) * t->n + i] = b;
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
    mine = sw_alloc_array((size_t)(t->n < n_sample ? t->n : n_sample) + 1,
                          (size_t)t->nf * sizeof(double));
    if (mine == NULL)
        return sw_fail(err, SW_E_NOMEM, "gbdt: out of memory");
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
    sw_free(mine);
    if (rc != SW_OK)
        return rc;
    for (k = 0, m = 0; k < sw_coll_size(t->coll); k++)
        m += lens[k];
    if (m != n_sample * t->nf * (int64_t)sizeof(double)) {
        sw_free(all);
        return sw_fail(err, SW_E_INVAL,
                       "gbdt: the ranks hold %lld of the %lld sampled rows "
                       "(row ids overlap or are out of range)",
                       (long long)(m / (t->nf * (int64_t)sizeof(double))),
                       (long long)n_sample);
    }
    *vals = all;
    return SW_OK;
}

/* Edges from a sample (unless continuing a model, whose edges stay), then
 * every row's bins. */
static sw_rc
make_bins(trainer *t, int have_edges, sw_err *err)
{
    sw_gbdt *g = t->g;
    int64_t f, n_sample = t->n_all < t->bin_sample ? t->n_all : t->bin_sample;
    sw_rc rc = SW_OK;

    if (!have_edges) {
        int64_t *sample = sw_alloc_array((size_t)t->n_all, sizeof(int64_t));
        double *scratch =
            sw_alloc_array((size_t)(2 * n_sample * t->threads), sizeof(double));
        double *edges =
            sw_alloc_array((size_t)(t->nf * t->max_bin), sizeof(double));
        int64_t *n_edges = sw_alloc_array((size_t)t->nf, sizeof(int64_t)), k;
        uint64_t s = t->seed ^ 0x62696e73ULL; /* "bins" */
        double *vals = NULL;
        sw_rows gathered;
        bin_job j;

        if (!sample || !scratch || !edges || !n_edges) {
            rc = sw_fail(err, SW_E_NOMEM, "gbdt: out of memory");
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
        j = (bin_job){t, t->X, sample, n_sample, scratch, edges, n_edges};
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
        if (rc == SW_OK)
            rc = sw_parallel(t->threads, t->nf, edges_of, &j, err);
        if (rc == SW_OK) {
            int64_t total = 0;

            g->edge_start[0] = 0;
            for (f = 0; f < t->nf; f++)
                g->edge_start[f + 1] = (total += n_edges[f]);
            g->edges =
                sw_alloc_array((size_t)(total ? total : 1), sizeof(double));
            if (g->edges == NULL)
                rc = sw_fail(err, SW_E_NOMEM, "gbdt: out of memory");
            for (f = 0; rc == SW_OK && f < t->nf; f++)
                memcpy(g->edges + g->edge_start[f], edges + f * t->max_bin,
                       (size_t)n_edges[f] * sizeof(double));
        }
    done:
        sw_free(vals);
        sw_free(sample);
        sw_free(scratch);
        sw_free(edges);
        sw_free(n_edges);
        if (rc != SW_OK)
            return rc;
    }
    {
        double *pad = sw_alloc_array((size_t)t->nf * 256, sizeof(double));
        fill_job j = {t, 16384, pad};
        int64_t k;

        if (pad == NULL)
            return sw_fail(err, SW_E_NOMEM, "gbdt: out of memory");
        for (f = 0; f < t->nf; f++) {
            int64_t a = g->edge_start[f], ne = g->edge_start[f + 1] - a;

            t->nbins[f] = (int)ne + 1;
            for (k = 0; k < 256; k++)
                pad[f * 256 + k] = k < ne ? g->edges[a + k] : INFINITY;
        }
        rc = sw_parallel(t->threads, (t->n + j.block - 1) / j.block, fill_rows,
                         &j, err);
        sw_free(pad);
        return rc;
    }
}

/* ---- histograms and splits ---------------------------------------- */

static hbin *
hist_get(trainer *t)
{
    if (t->n_pool > 0)
        return t->pool[--t->n_pool];
    return sw_alloc_array((size_t)(t->nf * 256), sizeof(hbin));
}

static void
hist_put(trainer *t, hbin *h)
{
    if (h != NULL)
        t->pool[t->n_pool++] = h; /* room for 2 num_leaves + 2 */
}

/* Rows a pool thread takes at a time into a histogram; leaves of fewer
 * than HIST_PARALLEL rows are summed by the caller alone (a hand-off to a
 * woken thread costs tens of microseconds). Threads take chunks as they
 * come free, each into a histogram of its own, added up at the end: the
 * integer sums do not depend on who summed what. */
enum { HIST_CHUNK = 2048, HIST_PARALLEL = 6144 };

typedef struct hist_job {
    const trainer *t;
    const int64_t *rows;
    int64_t n_rows;
    hbin *hist;     /* the caller's (thread 0) histogram */
    hbin *partials; /* thread k > 0 sums into partials + (k - 1) * len */
    int used[SW_MAX_THREADS]; /* thread k took a chunk (its sums zeroed) */
} hist_job;

/* Add rows into hist. */
static void
hist_rows(const trainer *t, const int64_t *rows, int64_t n_rows, hbin *hist)
{
    const uint8_t *bins = t->bins;
    const int64_t *gh = t->gh;
    int64_t nf = t->nf, k, f;

    for (k = 0; k < n_rows; k++) {
        int64_t r = rows[k];
        const uint8_t *b = bins + r * nf;
        int64_t gnr = gh[2 * r], hr = gh[2 * r + 1];
        hbin *h;

        /* a deep leaf's rows are scattered: ask for them early */
        if (k + 16 < n_rows) {
            int64_t ahead = rows[k + 16];

            __builtin_prefetch(bins + ahead * nf);
            __builtin_prefetch(gh + 2 * ahead);
        }
        /* four features a step, each histogram 256 bins past the last:
         * independent adds, and a quarter of the loop's own work
         * (measured 10-25% faster than one at a time) */
        for (f = 0, h = hist; f + 4 <= nf; f += 4, h += 4 * 256) {
            hbin *e0 = h + b[f], *e1 = h + 256 + b[f + 1],
                 *e2 = h + 512 + b[f + 2], *e3 = h + 768 + b[f + 3];

            e0->gn += gnr;
            e0->h += hr;
            e1->gn += gnr;
            e1->h += hr;
            e2->gn += gnr;
            e2->h += hr;
            e3->gn += gnr;
            e3->h += hr;
        }
        for (; f < nf; f++, h += 256) {
            h[b[f]].gn += gnr;
            h[b[f]].h += hr;
        }
    }
}

static void
hist_chunk(void *ctx, int64_t c, int thread)
{
    hist_job *j = ctx;
    int64_t lo = c * HIST_CHUNK, len = j->t->nf * 256,
            n = j->n_rows - lo < HIST_CHUNK ? j->n_rows - lo : HIST_CHUNK;
    hbin *h = thread == 0 ? j->hist : j->partials + (thread - 1) * len;

    if (!j->used[thread]) {
        memset(h, 0, (size_t)len * sizeof(hbin));
        j->used[thread] = 1;
    }
    hist_rows(j->t, j->rows + lo, n, h);
}

/* The histogram of a pooled job: the caller's, plus the other threads'. */
static void
add_partials(const trainer *t, const hist_job *j)
{
    int64_t len = t->nf * 256, k;
    int th, n_threads = sw_pool_threads(t->workers);

    if (!j->used[0])
        memset(j->hist, 0, (size_t)len * sizeof(hbin));
    for (th = 1; th < n_threads; th++) {
        const hbin *p = j->partials + (th - 1) * len;

        if (!j->used[th])
            continue;
        for (k = 0; k < len; k++) {
            j->hist[k].gn += p[k].gn;
            j->hist[k].h += p[k].h;
        }
    }
}

/* A leaf's histogram: by the calling thread alone, or (pooled) by chunks
 * of rows among the pool's threads. */
static void
build_hist(const trainer *t, const int64_t *rows, int64_t n_rows, hbin *hist,
           int pooled)
{
    int64_t len = t->nf * 256;
    hist_job j;

    if (!pooled || t->workers == NULL || n_rows < HIST_PARALLEL) {
        memset(hist, 0, (size_t)len * sizeof(hbin));
        hist_rows(t, rows, n_rows, hist);
        return;
    }
    memset(&j, 0, sizeof(j));
    j.t = t;
    j.rows = rows;
    j.n_rows = n_rows;
    j.hist = hist;
    j.partials = t->partials;
    sw_pool_run(t->workers, (n_rows + HIST_CHUNK - 1) / HIST_CHUNK, hist_chunk,
                &j);
    add_partials(t, &j);
}

/* A histogram of this rank's rows made the histogram of every rank's:
 * integer sums, the same bits whoever added what. */
static sw_rc
sum_hist(const trainer *t, hbin *hist, sw_err *err)
{
    return sw_coll_sum_i64(t->coll, (int64_t *)hist, t->nf * 256 * 2, err);
}

/* The row count and the gradient sum packed in a bin's gn. The shift of a
 * negative sum is arithmetic (sign-extending) in GCC and Clang. */
static inline int64_t
count_of(const trainer *t, int64_t gn)
{
    return gn & (((int64_t)1 << t->cbits) - 1);
}

static inline int64_t
grad_of(const trainer *t, int64_t gn)
{
    return gn >> t->cbits;
}

static double
threshold_l1(double g, double l1)
{
    return g > l1 ? g - l1 : g < -l1 ? g + l1 : 0.0;
}

static double
leaf_output(const trainer *t, double g, double h)
{
    double w = -threshold_l1(g, t->l1) / (h + t->l2);

    if (t->max_delta > 0 && fabs(w) > t->max_delta)
        w = w > 0 ? t->max_delta : -t->max_delta;
    return w;
}

static double
leaf_gain(const trainer *t, double g, double h)
{
    double w;

    if (t->l1 == 0 && t->max_delta == 0) /* the usual case, in closed form */
        return g * g / (h + t->l2);
    w = leaf_output(t, g, h);
    return -(2.0 * threshold_l1(g, t->l1) * w + (h + t->l2) * w * w);
}

/* Can lf split at all? */
static int
splittable(const trainer *t, const leaf *lf)
{
    return !(lf->n < 2 * t->min_data ||
             (double)lf->h * t->hinv < 2.0 * t->min_hess ||
             (t->max_depth > 0 && lf->depth >= t->max_depth));
}

/* One feature's candidate splits on bins 0..m-1 (at most 255): the left
 * side's packed sums, then every candidate's gain in one pass that the
 * compiler vectorizes (conversions, checks and the two divisions per
 * candidate were most of a split search). */
typedef struct cands {
    int64_t gnl[256], hl[256]; /* left: packed gradient and count, hessian */
    double gain[256];          /* 0 where a side is too small */
} cands;

typedef struct side_limits {
    int64_t g, h, n; /* the leaf's sums */
    int cbits;
    int64_t min_data;
    double gi, hi, min_hess, l2, parent;
} side_limits;

/* A double's bits as an integer: for x >= 0 (and NaN above all) ordered as
 * x, and integer maxima vectorize where a double's (NaN-aware) do not. */
static inline int64_t
bits_of(double x)
{
    int64_t i;

    memcpy(&i, &x, sizeof(i));
    return i;
}

/* c->gain[b] for b < m, in whole blocks of 8 (the tail of the last block
 * is padded by the caller): leaf_gain's closed form, the same bits.
 * Returns the largest gain's bits as an integer (see bits_of): most
 * features have no candidate that beats the best so far, and then need no
 * scan for it. */
SW_GBDT_CLONES static int64_t
gains_plain(cands *c, int m, const side_limits *s)
{
    /* count_of and grad_of written out: a call is not inlined into a
     * clone */
    const int64_t mask = ((int64_t)1 << s->cbits) - 1;
    int64_t top[8] = {0}, most = 0; /* per lane: one vector's maxima */
    int b0, k;

    for (b0 = 0; b0 < m; b0 += 8) {
        for (k = b0; k < b0 + 8; k++) {
            int64_t nl = c->gnl[k] & mask, gl = c->gnl[k] >> s->cbits;
            double hld = (double)c->hl[k] * s->hi,
                   hrd = (double)(s->h - c->hl[k]) * s->hi,
                   gld = (double)gl * s->gi, grd = (double)(s->g - gl) * s->gi;
            double gain = gld * gld / (hld + s->l2) +
                          grd * grd / (hrd + s->l2) - s->parent;
            /* & rather than &&, no branches: the loop vectorizes */
            int ok = (nl >= s->min_data) & (s->n - nl >= s->min_data) &
                     (hld >= s->min_hess) & (hrd >= s->min_hess);

            c->gain[k] = ok ? gain : 0.0;
            top[k - b0] = bits_of(c->gain[k]) > top[k - b0]
                              ? bits_of(c->gain[k])
                              : top[k - b0];
        }
    }
    for (k = 0; k < 8; k++)
        most = top[k] > most ? top[k] : most;
    return most;
}

/* The best split of lf on features [f0, f1) into *out (gain 0: none;
 * ties keep the first). */
static void
best_in(const trainer *t, const leaf *lf, int64_t f0, int64_t f1, split *out)
{
    const double gi = t->ginv, hi = t->hinv;
    const int plain = t->l1 == 0 && t->max_delta == 0;
    side_limits sl = {lf->g, lf->h, lf->n,       t->cbits, t->min_data,
                      gi,    hi,    t->min_hess, t->l2,    0};
    cands c;
    int64_t f;
    int b, dl, m;

    sl.parent = leaf_gain(t, (double)lf->g * gi, (double)lf->h * hi);
    memset(out, 0, sizeof(*out));
    for (f = f0; f < f1; f++) {
        const hbin *hf = lf->hist + f * 256;
        int nb = t->nbins[f];

        if (!t->use[f] || nb < 2)
            continue;
        for (dl = 0; dl < 2; dl++) {
            int64_t gnl = 0, hl = 0, top = 0;

            if (dl) {
                if (count_of(t, hf[nb].gn) == 0)
                    break; /* no NaN: both ways are the same */
                gnl = hf[nb].gn;
                hl = hf[nb].h;
            }
            m = nb - 1;
            for (b = 0; b < m; b++) {
                c.gnl[b] = gnl += hf[b].gn;
                c.hl[b] = hl += hf[b].h;
            }
            if (plain) {
                for (b = m; b < ((m + 7) & ~7); b++) /* no candidates */
                    c.gnl[b] = c.hl[b] = 0;
                top = gains_plain(&c, m, &sl);
            } else {
                for (b = 0; b < m; b++) {
                    int64_t nl = count_of(t, c.gnl[b]),
                            gl = grad_of(t, c.gnl[b]);
                    double hld = (double)c.hl[b] * hi,
                           hrd = (double)(lf->h - c.hl[b]) * hi;

                    c.gain[b] =
                        nl >= t->min_data && lf->n - nl >= t->min_data &&
                                hld >= t->min_hess && hrd >= t->min_hess
                            ? leaf_gain(t, (double)gl * gi, hld) +
                                  leaf_gain(t, (double)(lf->g - gl) * gi, hrd) -
                                  sl.parent
                            : 0.0;
                    top = bits_of(c.gain[b]) > top ? bits_of(c.gain[b]) : top;
                }
            }
            if (top <= bits_of(out->gain)) /* out->gain >= 0 */
                continue;
            for (b = 0; b < m; b++)
                if (c.gain[b] > out->gain && c.gain[b] > t->min_gain)
                    *out = (split){c.gain[b],
                                   (int32_t)f,
                                   b,
                                   dl,
                                   grad_of(t, c.gnl[b]),
                                   c.hl[b],
                                   count_of(t, c.gnl[b])};
        }
    }
}

/* The best splits of leaves a and b (b may be NULL). Serial: a leaf's
 * search is tens of microseconds, about what a hand-off to a pool thread
 * costs (measured: a parallel search made 2 threads slower). */
static void
find_best2(trainer *t, leaf *a, leaf *b)
{
    leaf *lfs[2] = {a, b};
    int c;

    for (c = 0; c < 2 && lfs[c] != NULL; c++) {
        memset(&lfs[c]->best, 0, sizeof(split));
        if (splittable(t, lfs[c]))
            best_in(t, lfs[c], 0, t->nf, &lfs[c]->best);
    }
}

/* ---- trees ------------------------------------------------------- */

static sw_rc
new_node(trainer *t, int64_t *id, sw_err *err)
{
    sw_gbdt *g = t->g;

    if (g->n_nodes == g->cap_nodes) {
        int64_t c = g->cap_nodes ? 2 * g->cap_nodes : 1024;
        void *p = sw_realloc_array(g->nodes, (size_t)c, sizeof(sw_gbdt_node));

        if (p == NULL)
            return sw_fail(err, SW_E_NOMEM, "gbdt: out of memory");
        g->nodes = p;
        g->cap_nodes = c;
    }
    if (g->n_nodes >= t->cap_gain) {
        int64_t c = g->cap_nodes;
        double *p = sw_realloc_array(t->node_gain, (size_t)c, sizeof(double));

        if (p == NULL)
            return sw_fail(err, SW_E_NOMEM, "gbdt: out of memory");
        t->node_gain = p;
        t->cap_gain = c;
    }
    *id = g->n_nodes++;
    memset(&g->nodes[*id], 0, sizeof(sw_gbdt_node));
    g->nodes[*id].feature = -1;
    t->node_gain[*id] = 0;
    return SW_OK;
}

/* Whether a row of bin b goes left at split s: bins up to s->bin, NaN by
 * the default. */
static inline int
goes_left(const split *s, int b, int nan_bin)
{
    return b == nan_bin ? s->default_left : b <= s->bin;
}

/* Rows of lf with bin <= s->bin (NaN: by the default) first, in order;
 * tmp: the calling thread's scratch. */
static int64_t
partition(trainer *t, const leaf *lf, const split *s, int64_t *tmp)
{
    int64_t k, nl = 0, nr = 0, f = s->feature;
    const uint8_t *col = t->bins_col + f * t->n;
    int nan_bin = t->nbins[f];

    for (k = lf->begin; k < lf->end; k++) {
        int64_t r = t->idx[k];
        int left = goes_left(s, col[r], nan_bin);

        /* both stores, one kept: a branch here is a coin flip the
         * predictor loses half the time */
        t->idx[lf->begin + nl] = r;
        tmp[nr] = r;
        nl += left;
        nr += !left;
    }
    memcpy(t->idx + lf->begin + nl, tmp, (size_t)nr * sizeof(int64_t));
    return lf->begin + nl;
}

/* A leaf of at least SPLIT_POOLED rows split alone is split by all the
 * threads: each partitions chunks of PART_CHUNK rows into scratch and sums
 * those of the smaller child into its histogram at once (the rows just
 * read); then the chunks' rows are placed. The same rows in the same
 * order as partition(): the tree does not depend on the thread count. */
enum { PART_CHUNK = 8192, SPLIT_POOLED = 4 * PART_CHUNK };

typedef struct part_job {
    hist_job h; /* the smaller child's histogram (h.rows unused) */
    const leaf *p;
    int small_left;
    int64_t n_chunks;
    int64_t *nl, *left_at, *right_at; /* per chunk: rows gone left, where
                                       * its left and right rows go */
} part_job;

static void
part_chunk(void *ctx, int64_t c, int thread)
{
    part_job *j = ctx;
    const trainer *t = j->h.t;
    const split *s = &j->p->best;
    const uint8_t *col = t->bins_col + s->feature * t->n;
    const int nan_bin = t->nbins[s->feature];
    int64_t lo = j->p->begin + c * PART_CHUNK,
            n = j->p->end - lo < PART_CHUNK ? j->p->end - lo : PART_CHUNK,
            *out = t->tmp + lo, /* pooled splits run alone: tmp is free */
        k, nl = 0, nr = 0, len = t->nf * 256;
    hbin *h = thread == 0 ? j->h.hist : j->h.partials + (thread - 1) * len;

    /* left rows from out[0] up, right ones from out[n - 1] down; both
     * stores, one kept, as in partition() */
    for (k = 0; k < n; k++) {
        int64_t r = t->idx[lo + k];
        int left = goes_left(s, col[r], nan_bin);

        out[nl] = r;
        out[n - 1 - nr] = r;
        nl += left;
        nr += !left;
    }
    j->nl[c] = nl;
    if (!j->h.used[thread]) {
        memset(h, 0, (size_t)len * sizeof(hbin));
        j->h.used[thread] = 1;
    }
    if (j->small_left)
        hist_rows(t, out, nl, h);
    else
        hist_rows(t, out + nl, nr, h);
}

static void
place_chunk(void *ctx, int64_t c, int thread)
{
    part_job *j = ctx;
    const trainer *t = j->h.t;
    int64_t lo = j->p->begin + c * PART_CHUNK,
            n = j->p->end - lo < PART_CHUNK ? j->p->end - lo : PART_CHUNK,
            nl = j->nl[c], k;
    const int64_t *in = t->tmp + lo;
    int64_t *right = t->idx + j->right_at[c];

    (void)thread;
    memcpy(t->idx + j->left_at[c], in, (size_t)nl * sizeof(int64_t));
    for (k = 0; k < n - nl; k++) /* back in order */
        right[k] = in[n - 1 - k];
}

/* Leaf p's rows partitioned and the smaller child's histogram summed into
 * hist, by all the threads. */
static int64_t
split_pooled(trainer *t, const leaf *p, hbin *hist, int small_left)
{
    part_job j;
    int64_t n_chunks = (p->end - p->begin + PART_CHUNK - 1) / PART_CHUNK, c,
            left_at = p->begin, right_at = p->begin, mid;

    memset(&j, 0, sizeof(j));
    j.h.t = t;
    j.h.hist = hist;
    j.h.partials = t->partials;
    j.p = p;
    j.small_left = small_left;
    j.n_chunks = n_chunks;
    j.nl = t->part_at;
    j.left_at = t->part_at + n_chunks;
    j.right_at = t->part_at + 2 * n_chunks;
    sw_pool_run(t->workers, n_chunks, part_chunk, &j);
    /* this rank's rows gone left (best.nl counts every rank's) */
    for (c = 0; c < n_chunks; c++)
        right_at += j.nl[c];
    mid = right_at;
    for (c = 0; c < n_chunks; c++) {
        int64_t n = p->end - p->begin - c * PART_CHUNK;

        j.left_at[c] = left_at;
        j.right_at[c] = right_at;
        left_at += j.nl[c];
        right_at += (n < PART_CHUNK ? n : PART_CHUNK) - j.nl[c];
    }
    sw_pool_run(t->workers, n_chunks, place_chunk, &j);
    add_partials(t, &j.h);
    return mid;
}

/* A leaf's split computed ahead of its turn (see split_next). */
typedef struct ahead {
    int ready;
    leaf L, R;
    hbin *fresh; /* for the smaller child, until the split is computed */
} ahead;

/* Leaf p split by its best split into *L and *R, first half: this
 * rank's rows partitioned, and the smaller child's histogram of them
 * summed into fresh (see finish_split). Everything but the tree's nodes,
 * which commit_split() numbers: a leaf can be split ahead of its turn,
 * beside another, and the tree is the same. pooled: the histogram by the
 * pool's threads; otherwise this thread (number thread) alone. Which
 * child is smaller goes by the counts of every rank's rows, so that every
 * rank sums the same child. */
static void
split_rows(trainer *t, const leaf *p, hbin *fresh, int pooled, int thread,
           leaf *L, leaf *R)
{
    const split *s = &p->best;
    leaf *small, *large;
    int64_t mid;

    memset(L, 0, sizeof(*L));
    memset(R, 0, sizeof(*R));
    L->g = s->gl;
    L->h = s->hl;
    L->n = s->nl;
    R->g = p->g - s->gl;
    R->h = p->h - s->hl;
    R->n = p->n - s->nl;
    L->depth = R->depth = p->depth + 1;
    L->node = R->node = -1;
    small = L->n <= R->n ? L : R;
    large = small == L ? R : L;
    large->hist = p->hist;
    small->hist = fresh;
    L->begin = p->begin;
    R->end = p->end;
    if (pooled && t->workers != NULL && p->end - p->begin >= SPLIT_POOLED) {
        L->end = R->begin = split_pooled(t, p, fresh, small == L);
    } else {
        mid = partition(t, p, s, t->tmp + thread * t->n);
        L->end = R->begin = mid;
        build_hist(t, t->idx + small->begin, small->end - small->begin,
                   small->hist, pooled);
    }
}

/* The second half, once the smaller child's histogram is every rank's:
 * the larger's by subtraction in the parent's, both children's best
 * splits. */
static void
finish_split(trainer *t, leaf *L, leaf *R)
{
    leaf *small = L->n <= R->n ? L : R, *large = small == L ? R : L;
    int64_t k;

    for (k = 0; k < t->nf * 256; k++) {
        large->hist[k].gn -= small->hist[k].gn;
        large->hist[k].h -= small->hist[k].h;
    }
    find_best2(t, L, R);
}

/* Both halves, for a split whose smaller histogram needs no other rank's
 * rows. */
static void
compute_split(trainer *t, const leaf *p, hbin *fresh, int pooled, int thread,
              leaf *L, leaf *R)
{
    split_rows(t, p, fresh, pooled, thread, L, R);
    finish_split(t, L, R);
}

/* Put the computed children of leaf i into the tree: its node becomes the
 * split, the children get the next two nodes, L takes i's place among the
 * leaves and R the next one. */
static sw_rc
commit_split(trainer *t, int i, const leaf *L0, const leaf *R0, sw_err *err)
{
    const split *s = &t->leaves[i].best;
    int64_t parent = t->leaves[i].node, nl, nr, k;
    sw_gbdt *g = t->g;
    sw_gbdt_node *node;
    leaf L = *L0, R = *R0;
    sw_rc rc;

    if ((rc = new_node(t, &nl, err)) != SW_OK ||
        (rc = new_node(t, &nr, err)) != SW_OK)
        return rc;
    node = &g->nodes[parent];
    node->feature = s->feature;
    node->value = g->edges[g->edge_start[s->feature] + s->bin];
    /* new_node gave two adjacent nodes: the right child follows the left */
    node->kids = (uint32_t)(nl - parent) << 1 | (uint32_t)s->default_left;
    t->node_gain[parent] = s->gain;
    L.node = nl;
    R.node = nr;
    t->leaves[i] = L;
    t->ahead[i].ready = 0;
    t->leaves[t->n_leaves] = R;
    t->ahead[t->n_leaves++].ready = 0;
    /* a leaf that cannot split gives its histogram back */
    for (k = 0; k < 2; k++) {
        leaf *c = k ? &t->leaves[t->n_leaves - 1] : &t->leaves[i];

        if (c->best.gain <= 0) {
            hist_put(t, c->hist);
            c->hist = NULL;
        }
    }
    return SW_OK;
}

/* Whether leaf c goes before leaf b (NULL: none yet). Leaf-wise: the
 * larger gain; depth-wise: the shallower, then the larger gain. Ties keep
 * the earlier leaf. */
static int
goes_before(const trainer *t, const leaf *c, const leaf *b)
{
    return b == NULL || (t->depthwise && c->depth < b->depth) ||
           ((!t->depthwise || c->depth == b->depth) &&
            c->best.gain > b->best.gain);
}

/* The leaf to split next, among those not in skip[0..n_skip) and, when
 * n_skip > 0, not computed ahead yet; -1 if none. */
static int
next_leaf(const trainer *t, const int *skip, int n_skip)
{
    int i, k, best = -1;

    for (i = 0; i < t->n_leaves; i++) {
        const leaf *c = &t->leaves[i];

        if (c->best.gain <= 0 || (n_skip > 0 && t->ahead[i].ready))
            continue;
        for (k = 0; k < n_skip && skip[k] != i; k++)
            ;
        if (k < n_skip)
            continue;
        if (goes_before(t, c, best < 0 ? NULL : &t->leaves[best]))
            best = i;
    }
    return best;
}

/* A leaf of more rows than this is split alone, its histogram summed by
 * all the threads; smaller ones AHEAD_PER_THREAD per thread at a time, each
 * by one thread, taken largest first as threads come free. */
enum {
    PAIR_MAX = 131072,
    GROUP_MIN = 8192,
    AHEAD_PER_THREAD = 2,
    AHEAD_MAX = 64
};

typedef struct group_job {
    trainer *t;
    int leaf[AHEAD_MAX];
} group_job;

static void
group_split(void *ctx, int64_t c, int thread)
{
    group_job *j = ctx;
    ahead *a = &j->t->ahead[j->leaf[c]];

    if (j->t->coll != NULL) /* the sums across ranks come after */
        split_rows(j->t, &j->t->leaves[j->leaf[c]], a->fresh, 0, thread,
                   &a->L, &a->R);
    else
        compute_split(j->t, &j->t->leaves[j->leaf[c]], a->fresh, 0, thread,
                      &a->L, &a->R);
    a->fresh = NULL; /* the smaller child's now */
}

/* Leaf i's rows on every rank: what grouping goes by, so that every rank
 * groups alike and makes the same sums in the same order. */
static int64_t
rows_of(const trainer *t, int i)
{
    return t->leaves[i].n;
}

/* A leaf split's sums across the ranks, then its second half. */
static sw_rc
finish_shared(trainer *t, ahead *a, sw_err *err)
{
    leaf *small = a->L.n <= a->R.n ? &a->L : &a->R;
    sw_rc rc;

    if ((rc = sum_hist(t, small->hist, err)) != SW_OK)
        return rc;
    finish_split(t, &a->L, &a->R);
    return SW_OK;
}

/* Split leaf best: compute it unless done ahead - with threads, together
 * with the leaves that would come after it, whose splits are then ready
 * when their turn comes (a split depends on its leaf alone; one whose turn
 * never comes because the tree is full is wasted work, nothing more) - and
 * commit it. */
static sw_rc
split_next(trainer *t, int best, sw_err *err)
{
    ahead *a = &t->ahead[best];
    group_job j;
    int n = 1, k, m, want;

    if (!a->ready) {
        j.t = t;
        j.leaf[0] = best;
        want = t->ahead_want;
        if (want > 1 && rows_of(t, best) < PAIR_MAX) {
            int64_t total = rows_of(t, best);

            while (n < want && t->n_leaves + n < t->num_leaves) {
                int c = next_leaf(t, j.leaf, n);

                if (c < 0 || rows_of(t, c) >= PAIR_MAX)
                    break;
                j.leaf[n++] = c;
                total += rows_of(t, c);
            }
            if (total < GROUP_MIN)
                n = 1; /* less work than handing it over costs */
        }
        for (k = 0; k < n; k++) {
            t->ahead[j.leaf[k]].fresh = hist_get(t);
            if (t->ahead[j.leaf[k]].fresh == NULL)
                return sw_fail(err, SW_E_NOMEM, "gbdt: out of memory");
        }
        if (n > 1) {
            /* largest first, so that the last taken are the shortest */
            for (k = 1; k < n; k++) {
                for (m = k;
                     m > 0 && rows_of(t, j.leaf[m]) > rows_of(t, j.leaf[m - 1]);
                     m--) {
                    int x = j.leaf[m];

                    j.leaf[m] = j.leaf[m - 1];
                    j.leaf[m - 1] = x;
                }
            }
            sw_pool_run(t->workers, n, group_split, &j);
            for (k = 0; k < n; k++) {
                sw_rc rc;

                /* the group's order is the same on every rank */
                if (t->coll != NULL &&
                    (rc = finish_shared(t, &t->ahead[j.leaf[k]], err)) !=
                        SW_OK) {
                    while (k < n) /* its histograms are the children's */
                        t->ahead[j.leaf[k++]].ready = 1;
                    return rc;
                }
                t->ahead[j.leaf[k]].ready = 1;
            }
        } else if (t->coll != NULL) {
            sw_rc rc;

            split_rows(t, &t->leaves[best], a->fresh, 1, 0, &a->L, &a->R);
            a->fresh = NULL;
            a->ready = 1;
            if ((rc = finish_shared(t, a, err)) != SW_OK)
                return rc;
        } else {
            compute_split(t, &t->leaves[best], a->fresh, 1, 0, &a->L, &a->R);
            a->fresh = NULL;
            a->ready = 1;
        }
    }
    return commit_split(t, best, &a->L, &a->R, err);
}

/* The value one tree gives raw row i (out-of-bag rows, validation). */
static double
tree_value(const sw_gbdt *g, int64_t root, const sw_rows *X, int64_t i)
{
    const sw_gbdt_node *n = g->nodes + root;

    while (n->feature >= 0) {
        double v = x_at(X, i, n->feature);
        int left = v <= n->value || (v != v && (n->kids & 1));

        n += (n->kids >> 1) + !left;
    }
    return n->value;
}

enum { ROW_CHUNK = 65536 }; /* rows per job of per-row work */

/* llrint(x), which GCC leaves a call (errno) where one instruction does
 * the same: both round in the current mode, to nearest even by default. */
static inline int64_t
to_fixed(double x)
{
#if defined(__x86_64__) && defined(__SSE2__)
    return _mm_cvtsd_si64(_mm_set_sd(x));
#else
    return llrint(x);
#endif
}

/* Log-loss gradients and hessians of n rows from their scores, scaled to
 * fixed point but not yet rounded (see gradients_of). e^-score by hand,
 * for |x| <= 708 within a few units in the last place: x = k ln2 + r
 * (|r| <= ln2 / 2; ln2 in fdlibm's two parts, so that k ln2_hi is exact),
 * e^r by its Taylor series to r^13 (the next term is below 5e-18), times
 * 2^k made from k's bits. Plain arithmetic in the loop itself (a call
 * would not be inlined into a clone) that the compiler vectorizes, where
 * libm's exp is a call per row; -ffp-contract=off keeps the same bits in
 * every clone. */
SW_GBDT_CLONES static void
binary_grads(const double *score, const double *y, int64_t n, double gscale,
             double hscale, double *gd, double *hd)
{
    const double shift = 0x1.8p52, ln2_hi = 0x1.62e42feep-1,
                 ln2_lo = 0x1.a39ef35793c76p-33;
    int64_t i;

    for (i = 0; i < n; i++) {
        double x = -score[i], kd, k, r, e, two_k, p, h;
        uint64_t bits;

        x = x < -708.0 ? -708.0 : x > 708.0 ? 708.0 : x;
        kd = x * 0x1.71547652b82fep0 + shift;
        k = kd - shift;
        r = (x - k * ln2_hi) - k * ln2_lo;
        e = 1.0 / 6227020800.0;
        e = e * r + 1.0 / 479001600.0;
        e = e * r + 1.0 / 39916800.0;
        e = e * r + 1.0 / 3628800.0;
        e = e * r + 1.0 / 362880.0;
        e = e * r + 1.0 / 40320.0;
        e = e * r + 1.0 / 5040.0;
        e = e * r + 1.0 / 720.0;
        e = e * r + 1.0 / 120.0;
        e = e * r + 1.0 / 24.0;
        e = e * r + 1.0 / 6.0;
        e = e * r + 0.5;
        e = e * r + 1.0;
        e = e * r + 1.0;
        /* kd's low bits are k (two's complement): 2^k's exponent field */
        memcpy(&bits, &kd, sizeof(bits));
        bits = (bits - 0x4338000000000000ULL + 1023) << 52;
        memcpy(&two_k, &bits, sizeof(two_k));
        p = 1.0 / (1.0 + e * two_k);
        h = p * (1.0 - p);
        gd[i] = (p - y[i]) * gscale;
        hd[i] = (h > 1e-16 ? h : 1e-16) * hscale;
    }
}

static void
gradients_of(void *ctx, int64_t c, int thread)
{
    enum { BLOCK = 512 };
    trainer *t = ctx;
    int64_t i, i1 = (c + 1) * ROW_CHUNK < t->n ? (c + 1) * ROW_CHUNK : t->n;

    (void)thread;
    if (t->objective == SW_GBDT_BINARY) {
        double gd[BLOCK], hd[BLOCK];
        int64_t b, k;

        for (b = c * ROW_CHUNK; b < i1; b += BLOCK) {
            int64_t n = i1 - b < BLOCK ? i1 - b : BLOCK;

            binary_grads(t->score + b, t->y + b, n, t->gscale, t->hscale, gd,
                         hd);
            for (k = 0; k < n; k++) {
                t->gh[2 * (b + k)] =
                    to_fixed(gd[k]) * ((int64_t)1 << t->cbits) + 1;
                t->gh[2 * (b + k) + 1] = to_fixed(hd[k]);
            }
        }
        return;
    }
    for (i = c * ROW_CHUNK; i < i1; i++) {
        double g, h;

        if (t->objective == SW_GBDT_MULTICLASS) {
            /* softmax cross-entropy; xgboost's hessian 2 p (1 - p) */
            double p = t->prob[i * t->K + t->cls];

            g = p - (t->y[i] == (double)t->cls ? 1.0 : 0.0);
            h = 2.0 * p * (1.0 - p) > 1e-16 ? 2.0 * p * (1.0 - p) : 1e-16;
        } else {
            g = t->score[i] - t->y[i];
            h = 1.0;
        }
        t->gh[2 * i] = to_fixed(g * t->gscale) * ((int64_t)1 << t->cbits) + 1;
        t->gh[2 * i + 1] = to_fixed(h * t->hscale);
    }
}

/* The largest |gradient| of L2 regression, per chunk into t->gmax. */
static void
gmax_of(void *ctx, int64_t c, int thread)
{
    trainer *t = ctx;
    int64_t i, i1 = (c + 1) * ROW_CHUNK < t->n ? (c + 1) * ROW_CHUNK : t->n;
    double m = 0;

    (void)thread;
    for (i = c * ROW_CHUNK; i < i1; i++) {
        double g = fabs(t->score[i] - t->y[i]);

        m = g > m ? g : m;
    }
    t->gmax[c] = m;
}

/* The power of two that makes n values of at most bound sum below 2^62:
 * a leaf's sums fit in int64, and each value keeps at least 62 - log2(n)
 * bits (42 at a million rows). */
static double
fixed_scale(double bound, int64_t n)
{
    int e;

    if (!(bound > 0) || !isfinite(bound))
        bound = 1.0;
    frexp(bound * (double)(n > 0 ? n : 1), &e);
    return ldexp(1.0, 62 - e);
}

static sw_rc
gradients(trainer *t, sw_err *err)
{
    int64_t c, chunks = (t->n + ROW_CHUNK - 1) / ROW_CHUNK;
    double gbound = 1.0;
    sw_rc rc;

    if (t->objective == SW_GBDT_REGRESSION) {
        sw_pool_run(t->workers, chunks, gmax_of, t);
        for (gbound = 0, c = 0; c < chunks; c++)
            gbound = t->gmax[c] > gbound ? t->gmax[c] : gbound;
        if ((rc = sw_coll_max_f64(t->coll, &gbound, 1, err)) != SW_OK)
            return rc;
    }
    /* binary: |g| <= 1 and h <= 1/4; multiclass: h <= 1/2; L2: h = 1.
     * The gradients' sums leave cbits for the count below them: a row's
     * gradient keeps 62 - cbits - log2(n) bits (22 at a million rows;
     * float32, which LightGBM's gradients are, keeps 24). */
    for (t->cbits = 1; t->cbits < 62 && ((int64_t)1 << t->cbits) <= t->n_all;
         t->cbits++)
        ;
    t->gscale = ldexp(fixed_scale(gbound, t->n_all), -t->cbits);
    t->hscale = fixed_scale(t->objective == SW_GBDT_BINARY       ? 0.25
                            : t->objective == SW_GBDT_MULTICLASS ? 0.5
                                                                 : 1.0,
                            t->n_all);
    t->ginv = 1.0 / t->gscale;
    t->hinv = 1.0 / t->hscale;
    sw_pool_run(t->workers, chunks, gradients_of, t);
    return SW_OK;
}

/* Leaf c's value into the scores of its rows. */
static void
leaf_scores(void *ctx, int64_t c, int thread)
{
    trainer *t = ctx;
    const leaf *lf = &t->leaves[c];
    double v = t->g->nodes[lf->node].value;
    int64_t k;

    (void)thread;
    for (k = lf->begin; k < lf->end; k++)
        t->score[t->idx[k] * t->K + t->cls] += v;
}

/* This round's rows (bagging) and features (feature fraction). */
static void
draw(trainer *t, int64_t round)
{
    uint64_t s = t->seed * 0x100000001b3ULL + (uint64_t)round + 1;
    int64_t i, f, k, want;

    /* row i's draw by its row id: the same bag on any number of ranks */
    t->n_bag = t->n_oob = 0;
    for (i = 0; i < t->n; i++) {
        if (t->bag >= 1.0 ||
            (double)(mix_at(s, (uint64_t)row_id(t, i)) >> 11) * 0x1.0p-53 <
                t->bag)
            t->idx[t->n_bag++] = i;
        else
            t->oob[t->n_oob++] = i;
    }
    if (t->bag < 1.0) /* past all the rows' draws, as one rank would be */
        s += (uint64_t)t->n_all * 0x9e3779b97f4a7c15ULL;
    if (t->ffrac >= 1.0) {
        memset(t->use, 1, (size_t)t->nf);
        return;
    }
    want = (int64_t)ceil(t->ffrac * (double)t->nf);
    memset(t->use, 0, (size_t)t->nf);
    for (k = 0; k < want;) {
        f = (int64_t)(mix(&s) % (uint64_t)t->nf);
        if (!t->use[f]) {
            t->use[f] = 1;
            k++;
        }
    }
}

static sw_rc
grow_tree(trainer *t, int64_t round, sw_err *err)
{
    sw_gbdt *g = t->g;
    leaf *root = &t->leaves[0];
    int64_t k, root_id, gn;
    int i;
    sw_rc rc;

    if ((rc = gradients(t, err)) != SW_OK)
        return rc;
    draw(t, (t->round0 + round) * t->K + t->cls);
    if ((rc = new_node(t, &root_id, err)) != SW_OK)
        return rc;
    memset(root, 0, sizeof(*root));
    root->end = t->n_bag;
    root->node = root_id;
    root->hist = hist_get(t);
    if (root->hist == NULL)
        return sw_fail(err, SW_E_NOMEM, "gbdt: out of memory");
    t->n_leaves = 1;
    build_hist(t, t->idx, t->n_bag, root->hist, 1);
    if ((rc = sum_hist(t, root->hist, err)) != SW_OK)
        return rc;
    /* every row is in one bin of feature 0: its bins sum the tree's rows */
    for (k = 0, gn = 0; k < 256; k++) {
        gn += root->hist[k].gn;
        root->h += root->hist[k].h;
    }
    root->g = grad_of(t, gn);
    root->n = count_of(t, gn);
    find_best2(t, root, NULL);
    t->ahead[0].ready = 0;
    while (t->n_leaves < t->num_leaves) {
        int best = next_leaf(t, NULL, 0);

        if (best < 0)
            break;
        if ((rc = split_next(t, best, err)) != SW_OK)
            return rc;
    }
    for (i = 0; i < t->n_leaves; i++) {
        leaf *lf = &t->leaves[i];

        if (t->ahead[i].ready) {
            /* split ahead but the tree was full first: the larger child
             * kept lf's histogram, the smaller's goes back */
            hist_put(t, t->ahead[i].L.n <= t->ahead[i].R.n
                            ? t->ahead[i].L.hist
                            : t->ahead[i].R.hist);
            t->ahead[i].ready = 0;
        }

        g->nodes[lf->node].value =
            t->lr *
            leaf_output(t, (double)lf->g * t->ginv, (double)lf->h * t->hinv);
        hist_put(t, lf->hist);
        lf->hist = NULL;
    }
    sw_pool_run(t->workers, t->n_leaves, leaf_scores, t);
    for (k = 0; k < t->n_oob; k++)
        t->score[t->oob[k] * t->K + t->cls] +=
            tree_value(g, root_id, t->X, t->oob[k]);
    return SW_OK;
}

/* ---- the whole fit ------------------------------------------------ */

static sw_rc
check_input(const trainer *t, const sw_rows *X, const double *y,
            const char *what, sw_err *err)
{
    int64_t i;

    if (X->layout != SW_DENSE)
        return sw_fail(err, SW_E_INVAL,
                       "gbdt: %s rows must be dense (NaN marks a missing "
                       "value)",
                       what);
    if (X->n_rows == 0)
        return sw_fail(err, SW_E_INVAL, "gbdt: the %s set is empty", what);
    if (y == NULL)
        return sw_fail(err, SW_E_INVAL, "gbdt: no %s labels", what);
    for (i = 0; i < X->n_rows; i++) {
        if (!isfinite(y[i]))
            return sw_fail(err, SW_E_NUMERIC, "gbdt: %s label %lld is %g", what,
                           (long long)i, y[i]);
        if (t->objective == SW_GBDT_BINARY && y[i] != 0.0 && y[i] != 1.0)
            return sw_fail(err, SW_E_INVAL,
                           "gbdt: %s label %lld is %g; binary labels are 0 "
                           "or 1",
                           what, (long long)i, y[i]);
        if (t->objective == SW_GBDT_MULTICLASS &&
            (y[i] < 0 || y[i] != floor(y[i]) || (t->K > 0 && y[i] >= t->K)))
            return sw_fail(err, SW_E_INVAL,
                           "gbdt: %s label %lld is %g; multiclass labels are "
                           "0 .. %lld",
                           what, (long long)i, y[i], (long long)t->K - 1);
    }
    return SW_OK;
}

static double
loss_of(int objective, int64_t K, const double *raw, const double *y, int64_t n)
{
    double s = 0;
    int64_t i, j;

    for (i = 0; i < n; i++) {
        if (objective == SW_GBDT_MULTICLASS) {
            /* -log softmax(raw)[y] = logsumexp(raw) - raw[y] */
            const double *z = raw + i * K;
            double m = z[0], e = 0;

            for (j = 1; j < K; j++)
                m = z[j] > m ? z[j] : m;
            for (j = 0; j < K; j++)
                e += exp(z[j] - m);
            s += m + log(e) - z[(int64_t)y[i]];
        } else if (objective == SW_GBDT_BINARY) {
            /* log(1 + e^-z) for y = 1, log(1 + e^z) for y = 0, stable */
            double z = y[i] > 0.5 ? raw[i] : -raw[i];

            s += z > 0 ? log1p(exp(-z)) : -z + log1p(exp(z));
        } else {
            s += (raw[i] - y[i]) * (raw[i] - y[i]);
        }
    }
    return s / (double)n;
}

static void
read_conf(trainer *t, const sw_conf *conf)
{
    t->objective = sw_conf_choice(conf, "gbdt.objective");
    t->K = t->objective == SW_GBDT_MULTICLASS
               ? (int64_t)sw_conf_num(conf, "gbdt.num_class")
               : 1;
    t->rounds = (int64_t)sw_conf_num(conf, "gbdt.n_estimators");
    t->lr = sw_conf_num(conf, "gbdt.learning_rate");
    t->num_leaves = (int)sw_conf_num(conf, "gbdt.num_leaves");
    t->max_depth = (int)sw_conf_num(conf, "gbdt.max_depth");
    t->depthwise = sw_conf_choice(conf, "gbdt.grow_policy") == 1;
    t->max_bin = (int)sw_conf_num(conf, "gbdt.max_bin");
    t->bin_sample = (int64_t)sw_conf_num(conf, "gbdt.bin_sample");
    t->min_data = (int64_t)sw_conf_num(conf, "gbdt.min_data_in_leaf");
    t->min_hess = sw_conf_num(conf, "gbdt.min_sum_hessian_in_leaf");
    t->l1 = sw_conf_num(conf, "gbdt.lambda_l1");
    t->l2 = sw_conf_num(conf, "gbdt.lambda_l2");
    t->min_gain = sw_conf_num(conf, "gbdt.min_gain_to_split");
    t->max_delta = sw_conf_num(conf, "gbdt.max_delta_step");
    t->bag = sw_conf_num(conf, "gbdt.bagging_fraction");
    t->ffrac = sw_conf_num(conf, "gbdt.feature_fraction");
    t->seed = (uint64_t)sw_conf_num(conf, "gbdt.seed");
    t->early = (int64_t)sw_conf_num(conf, "gbdt.early_stopping_rounds");
    t->threads = (int)sw_conf_num(conf, "gbdt.threads");
    if (t->threads <= 0)
        t->threads = sw_n_cpus();
}

static void
trainer_free(trainer *t)
{
    int i;

    sw_free(t->bins);
    sw_free(t->bins_col);
    sw_free(t->nbins);
    sw_free(t->gh);
    sw_free(t->gmax);
    sw_free(t->score);
    sw_free(t->prob);
    sw_free(t->idx);
    sw_free(t->tmp);
    sw_free(t->part_at);
    sw_free(t->oob);
    sw_free(t->use);
    for (i = 0; i < t->n_pool; i++)
        sw_free(t->pool[i]);
    /* left by an error mid-tree: the leaves' histograms, and those of
     * children computed ahead (the larger one's is its leaf's) */
    for (i = 0; t->leaves != NULL && i < t->n_leaves; i++) {
        sw_free(t->leaves[i].hist);
        if (t->ahead != NULL && t->ahead[i].ready)
            sw_free(t->ahead[i].L.n <= t->ahead[i].R.n ? t->ahead[i].L.hist
                                                       : t->ahead[i].R.hist);
        else if (t->ahead != NULL)
            sw_free(t->ahead[i].fresh);
    }
    sw_free(t->leaves);
    sw_free(t->ahead);
    sw_free(t->pool);
    sw_free(t->partials);
    sw_pool_free(t->workers);
    sw_free(t->node_gain);
}

static sw_rc
alloc_all(trainer *t, sw_err *err)
{
    size_t n = (size_t)t->n;

    if (t->threads > 1 && sw_pool_new(t->threads, &t->workers, err) != SW_OK)
        return SW_E_NOMEM;
    t->bins = sw_alloc_array(n, (size_t)t->nf);
    t->bins_col = sw_alloc_array(n, (size_t)t->nf);
    t->nbins = sw_alloc_array((size_t)t->nf, sizeof(int));
    t->gh = sw_alloc_array(n, 2 * sizeof(int64_t));
    t->gmax = sw_alloc_array(n / ROW_CHUNK + 1, sizeof(double));
    t->score = sw_alloc_array(n, (size_t)t->K * sizeof(double));
    if (t->K > 1)
        t->prob = sw_alloc_array(n, (size_t)t->K * sizeof(double));
    t->idx = sw_alloc_array(n, sizeof(int64_t));
    t->tmp = sw_alloc_array(n * (size_t)sw_pool_threads(t->workers),
                            sizeof(int64_t));
    t->oob = sw_alloc_array(n, sizeof(int64_t));
    t->part_at = sw_alloc_array(3 * (n / PART_CHUNK + 1), sizeof(int64_t));
    t->use = sw_alloc_array((size_t)t->nf, 1);
    t->leaves = sw_alloc_array((size_t)t->num_leaves, sizeof(leaf));
    /* the leaves' histograms, and one per leaf split ahead */
    t->pool = sw_alloc_array(2 * (size_t)t->num_leaves + 2, sizeof(hbin *));
    t->ahead = sw_calloc((size_t)t->num_leaves + 1, sizeof(*t->ahead));
    t->partials = sw_alloc_array(
        (size_t)((sw_pool_threads(t->workers) - 1) * t->nf * 256 + 1),
        sizeof(hbin));
    if (!t->partials || !t->bins || !t->bins_col || !t->nbins || !t->gh ||
        !t->gmax || !t->score || (t->K > 1 && !t->prob) || !t->idx || !t->tmp ||
        !t->part_at || !t->oob || !t->use || !t->leaves || !t->pool ||
        !t->ahead)
        return sw_fail(err, SW_E_NOMEM, "gbdt: out of memory");
    return SW_OK;
}

/* A new, empty ensemble over nf features, or a copy of init's. */
static sw_rc
start_model(trainer *t, const sw_model *init, sw_err *err)
{
    sw_gbdt *g;

    if (init != NULL) {
        if (init->kind != SW_MODEL_GBDT)
            return sw_fail(err, SW_E_INVAL,
                           "gbdt: can only continue a gbdt model");
        if (init->u.gbdt->n_features != t->nf)
            return sw_fail(err, SW_E_SHAPE,
                           "gbdt: the model has %lld features, the data "
                           "%lld",
                           (long long)init->u.gbdt->n_features,
                           (long long)t->nf);
        if (init->u.gbdt->objective != t->objective)
            return sw_fail(err, SW_E_INVAL,
                           "gbdt: gbdt.objective differs from the model's");
        return sw_gbdt_dup(init->u.gbdt, &t->g, err);
    }
    g = t->g = sw_calloc(1, sizeof(*g));
    if (g == NULL)
        return sw_fail(err, SW_E_NOMEM, "gbdt: out of memory");
    g->objective = t->objective;
    g->n_features = t->nf;
    g->learning_rate = t->lr;
    g->best_iteration = -1;
    g->roots = sw_calloc(1, sizeof(int64_t));
    g->edge_start = sw_calloc((size_t)t->nf + 1, sizeof(int64_t));
    g->imp_gain = sw_calloc((size_t)t->nf, sizeof(double));
    g->imp_split = sw_calloc((size_t)t->nf, sizeof(int64_t));
    if (!g->roots || !g->edge_start || !g->imp_gain || !g->imp_split)
        return sw_fail(err, SW_E_NOMEM, "gbdt: out of memory");
    return SW_OK;
}

static sw_rc
add_root(trainer *t, sw_err *err)
{
    sw_gbdt *g = t->g;

    if (g->n_trees + 1 >= g->cap_trees) {
        int64_t c = g->cap_trees ? 2 * g->cap_trees + 2 : 128;
        int64_t *p = sw_realloc_array(g->roots, (size_t)c + 1, sizeof(int64_t));

        if (p == NULL)
            return sw_fail(err, SW_E_NOMEM, "gbdt: out of memory");
        g->roots = p;
        g->cap_trees = c;
    }
    g->roots[++g->n_trees] = g->n_nodes;
    return SW_OK;
}

/* What every rank of a distributed fit must agree on, checked before any
 * work: a rank given other data or settings would otherwise make sums
 * that mean nothing. */
static sw_rc
check_ranks(const trainer *t, const sw_rows *X_valid, const sw_model *init,
            sw_err *err)
{
    int64_t mine[8], lens[SW_COLL_MAX_RANKS], *all, k, i;
    static const char *const what[8] = {
        "features",  "gbdt.objective",  "gbdt.num_class", "gbdt.n_estimators",
        "gbdt.seed", "validation rows", "initial trees",  "gbdt.num_leaves"};
    void *buf = NULL;
    sw_rc rc;

    mine[0] = t->nf;
    mine[1] = t->objective;
    mine[2] = t->K;
    mine[3] = t->rounds;
    mine[4] = (int64_t)t->seed;
    mine[5] = X_valid ? X_valid->n_rows : -1;
    mine[6] = init ? sw_gbdt_n_trees(init) : -1;
    mine[7] = t->num_leaves;
    if ((rc = sw_coll_gather(t->coll, mine, sizeof(mine), &buf, lens, err)) !=
        SW_OK)
        return rc;
    all = buf;
    for (k = 1; k < sw_coll_size(t->coll); k++) {
        for (i = 0; i < 8; i++) {
            if (all[k * 8 + i] != all[i]) {
                rc = sw_fail(err, SW_E_INVAL,
                             "gbdt: rank %lld has %lld %s, rank 0 %lld; every "
                             "rank needs the same",
                             (long long)k, (long long)all[k * 8 + i], what[i],
                             (long long)all[i]);
                sw_free(buf);
                return rc;
            }
        }
    }
    sw_free(buf);
    return SW_OK;
}

/* A distributed fit's labels, every rank's, in row id order (the base
 * score sums them in that order, as one rank would); the row ids checked
 * to cover 0 .. n_all - 1 once. */
static sw_rc
gather_labels(trainer *t, double **y_all, sw_err *err)
{
    int64_t lens[SW_COLL_MAX_RANKS], i, total = 0, k;
    double *pairs, *ys;
    uint8_t *seen;
    void *buf = NULL;
    sw_rc rc;

    *y_all = NULL;
    pairs = sw_alloc_array((size_t)t->n + 1, 2 * sizeof(double));
    if (pairs == NULL)
        return sw_fail(err, SW_E_NOMEM, "gbdt: out of memory");
    for (i = 0; i < t->n; i++) {
        int64_t id = row_id(t, i);

        memcpy(&pairs[2 * i], &id, 8);
        pairs[2 * i + 1] = t->y[i];
    }
    rc = sw_coll_gather(t->coll, pairs, t->n * 16, &buf, lens, err);
    sw_free(pairs);
    if (rc != SW_OK)
        return rc;
    for (k = 0; k < sw_coll_size(t->coll); k++)
        total += lens[k] / 16;
    ys = sw_alloc_array((size_t)total + 1, sizeof(double));
    seen = sw_calloc((size_t)total + 1, 1);
    if (ys == NULL || seen == NULL) {
        rc = sw_fail(err, SW_E_NOMEM, "gbdt: out of memory");
        goto done;
    }
    pairs = buf;
    for (i = 0; i < total; i++) {
        int64_t id;

        memcpy(&id, &pairs[2 * i], 8);
        if (id < 0 || id >= total || seen[id]) {
            rc = sw_fail(err, SW_E_INVAL,
                         "gbdt: row id %lld is %s; the ranks' row ids must "
                         "cover 0 .. %lld once",
                         (long long)id,
                         id < 0 || id >= total ? "out of range" : "repeated",
                         (long long)total - 1);
            goto done;
        }
        seen[id] = 1;
        ys[id] = pairs[2 * i + 1];
    }
    t->n_all = total;
    *y_all = ys;
    ys = NULL;
done:
    sw_free(buf);
    sw_free(seen);
    sw_free(ys);
    return rc;
}

sw_rc
sw_gbdt_fit(const sw_conf *conf, const sw_rows *X, const double *y,
            const sw_rows *X_valid, const double *y_valid, const sw_model *init,
            double *valid_loss, sw_gbdt_progress progress, void *progress_ctx,
            sw_model **out, sw_err *err)
{
    return sw_gbdt_fit_shard(conf, X, y, NULL, NULL, X_valid, y_valid, init,
                             valid_loss, progress, progress_ctx, out, err);
}

sw_rc
sw_gbdt_fit_shard(const sw_conf *conf, const sw_rows *X, const double *y,
                  const int64_t *row_ids, sw_coll *coll,
                  const sw_rows *X_valid, const double *y_valid,
                  const sw_model *init, double *valid_loss,
                  sw_gbdt_progress progress, void *progress_ctx,
                  sw_model **out, sw_err *err)
{
    trainer t;
    double *vraw = NULL, best_loss = INFINITY, *y_all = NULL;
    const double *ys;
    int64_t r, i, best_round = -1, first_tree;
    sw_rc rc;

    *out = NULL;
    memset(&t, 0, sizeof(t));
    if (conf == NULL || X == NULL)
        return sw_fail(err, SW_E_INVAL, "gbdt: NULL argument");
    read_conf(&t, conf);
    t.X = X;
    t.y = ys = y;
    t.n = t.n_all = X->n_rows;
    t.nf = X->n_cols;
    t.row_ids = row_ids;
    t.coll = sw_coll_size(coll) > 1 ? coll : NULL;
    if (t.coll == NULL && row_ids != NULL) /* alone, the ids are 0 .. n - 1 */
        for (i = 0; i < t.n; i++)
            if (row_ids[i] != i)
                return sw_fail(err, SW_E_INVAL,
                               "gbdt: row id %lld of a fit on one rank is "
                               "%lld; one rank holds rows 0 .. n - 1",
                               (long long)i, (long long)row_ids[i]);
    for (i = 1; row_ids != NULL && i < t.n; i++)
        if (row_ids[i] <= row_ids[i - 1])
            return sw_fail(err, SW_E_INVAL,
                           "gbdt: row ids must increase: id %lld is %lld "
                           "after %lld",
                           (long long)i, (long long)row_ids[i],
                           (long long)row_ids[i - 1]);
    if ((rc = check_input(&t, X, y, "training", err)) != SW_OK)
        return rc;
    if (t.coll != NULL) {
        if ((rc = check_ranks(&t, X_valid, init, err)) != SW_OK ||
            (rc = gather_labels(&t, &y_all, err)) != SW_OK)
            return rc;
        ys = y_all;
    }
    if (t.objective == SW_GBDT_MULTICLASS) {
        if (t.K == 0) /* gbdt.num_class 0: from the labels */
            for (i = 0; i < t.n_all; i++)
                t.K = ys[i] + 1 > (double)t.K ? (int64_t)ys[i] + 1 : t.K;
        if (t.K < 3)
            return sw_fail(err, SW_E_INVAL,
                           "gbdt: multiclass needs at least 3 classes, the "
                           "labels have %lld (use gbdt.objective=binary)",
                           (long long)t.K);
        if (init != NULL && init->kind == SW_MODEL_GBDT &&
            init->u.gbdt->n_classes != t.K)
            return sw_fail(err, SW_E_INVAL,
                           "gbdt: the model has %lld classes, the labels "
                           "%lld",
                           (long long)init->u.gbdt->n_classes, (long long)t.K);
    }
    if (t.nf < 1)
        return sw_fail(err, SW_E_SHAPE, "gbdt: rows without features");
    if (t.depthwise && t.max_depth <= 0)
        return sw_fail(err, SW_E_INVAL,
                       "gbdt: depth-wise growth needs gbdt.max_depth > 0");
    if (X_valid != NULL) {
        if ((rc = check_input(&t, X_valid, y_valid, "validation", err)) !=
            SW_OK)
            return rc;
        if (X_valid->n_cols != t.nf)
            return sw_fail(err, SW_E_SHAPE,
                           "gbdt: validation rows have %lld features, "
                           "training rows %lld",
                           (long long)X_valid->n_cols, (long long)t.nf);
    }
    if ((rc = alloc_all(&t, err)) != SW_OK ||
        (rc = start_model(&t, init, err)) != SW_OK)
        goto done;
    /* leaves split at a time: a few per pool thread, as many on every
     * rank (a rank without a pool splits its share of them in turn) */
    t.ahead_want = sw_pool_threads(t.workers) * AHEAD_PER_THREAD;
    t.ahead_want = t.workers == NULL       ? 1
                   : t.ahead_want < AHEAD_MAX ? t.ahead_want
                                              : AHEAD_MAX;
    if (t.coll != NULL) {
        double w = t.ahead_want;

        if ((rc = sw_coll_max_f64(t.coll, &w, 1, err)) != SW_OK)
            goto done;
        t.ahead_want = (int)w;
    }
    if ((rc = make_bins(&t, init != NULL, err)) != SW_OK)
        goto done;
    if (init == NULL && t.K > 1) {
        /* each class starts from the log of its share of the labels */
        int64_t k;

        t.g->n_classes = t.K;
        t.g->base_scores = sw_calloc((size_t)t.K, sizeof(double));
        if (t.g->base_scores == NULL) {
            rc = sw_fail(err, SW_E_NOMEM, "gbdt: out of memory");
            goto done;
        }
        for (i = 0; i < t.n_all; i++)
            t.g->base_scores[(int64_t)ys[i]] += 1.0;
        for (k = 0; k < t.K; k++) {
            double p = t.g->base_scores[k] / (double)t.n_all;

            t.g->base_scores[k] = log(p > 1e-15 ? p : 1e-15);
        }
        for (i = 0; i < t.n; i++)
            memcpy(t.score + i * t.K, t.g->base_scores,
                   (size_t)t.K * sizeof(double));
    } else if (init == NULL) {
        double s = 0;

        for (i = 0; i < t.n_all; i++)
            s += ys[i];
        s /= (double)t.n_all;
        if (t.objective == SW_GBDT_BINARY) {
            s = s < 1e-15 ? 1e-15 : s > 1 - 1e-15 ? 1 - 1e-15 : s;
            s = log(s / (1 - s));
        }
        t.g->base_score = s;
        for (i = 0; i < t.n; i++)
            t.score[i] = s;
    } else if ((rc = sw_gbdt_raw(t.g, X, t.g->n_trees, t.score, err)) !=
               SW_OK) {
        goto done;
    }
    if (X_valid != NULL) {
        vraw = sw_alloc_array((size_t)X_valid->n_rows,
                              (size_t)t.K * sizeof(double));
        if (vraw == NULL) {
            rc = sw_fail(err, SW_E_NOMEM, "gbdt: out of memory");
            goto done;
        }
        if ((rc = sw_gbdt_raw(t.g, X_valid, t.g->n_trees, vraw, err)) != SW_OK)
            goto done;
    }
    first_tree = t.g->n_trees;
    t.round0 = first_tree / t.K;
    for (r = 0; r < t.rounds; r++) {
        double l = NAN;
        int stop = 0;

        if (t.K > 1) {
            /* every class's gradients from the round's starting scores */
            for (i = 0; i < t.n; i++) {
                memcpy(t.prob + i * t.K, t.score + i * t.K,
                       (size_t)t.K * sizeof(double));
                sw_gbdt_softmax(t.prob + i * t.K, t.K);
            }
        }
        for (t.cls = 0; t.cls < t.K; t.cls++) {
            int64_t root = t.g->n_nodes;

            if ((rc = grow_tree(&t, r, err)) != SW_OK ||
                (rc = add_root(&t, err)) != SW_OK)
                goto done;
            for (i = 0; X_valid != NULL && i < X_valid->n_rows; i++)
                vraw[i * t.K + t.cls] += tree_value(t.g, root, X_valid, i);
        }
        t.cls = 0;
        if (X_valid != NULL) {
            l = loss_of(t.objective, t.K, vraw, y_valid, X_valid->n_rows);
            if (valid_loss != NULL)
                valid_loss[r] = l;
            if (l < best_loss) {
                best_loss = l;
                best_round = r;
            } else if (t.early > 0 && r - best_round >= t.early) {
                stop = 1;
            }
        }
        if (progress != NULL && progress(progress_ctx, r + 1, t.rounds, l)) {
            rc = sw_fail(err, SW_E_STATE,
                         "gbdt: stopped by the caller after %lld rounds",
                         (long long)r + 1);
            goto done;
        }
        if (stop)
            break;
    }
    if (t.early > 0 && X_valid != NULL && best_round >= 0) {
        /* keep the trees up to the best round */
        t.g->n_trees = first_tree + (best_round + 1) * t.K;
        t.g->n_nodes = t.g->roots[t.g->n_trees];
        t.g->best_iteration = first_tree / t.K + best_round;
    }
    for (i = 0; i < t.g->n_nodes; i++) {
        const sw_gbdt_node *n = &t.g->nodes[i];

        if (n->feature >= 0 && i >= (init ? init->u.gbdt->n_nodes : 0)) {
            t.g->imp_split[n->feature]++;
            t.g->imp_gain[n->feature] += t.node_gain[i];
        }
    }
    rc = sw_model_wrap(SW_MODEL_GBDT, t.g, out, err);
    t.g = NULL; /* the model's now, or freed */
done:
    sw_free(vraw);
    sw_free(y_all);
    sw_gbdt_free(t.g);
    trainer_free(&t);
    return rc;
}
