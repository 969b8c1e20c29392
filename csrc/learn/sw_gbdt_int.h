/* SPDX-License-Identifier: MIT */
/*
 * sw_gbdt_int.h - what the files of the GBDT trainer share: the trainer
 * and its histograms, leaves and splits, and the per-row draws. The
 * trainer is cut along its stages: sw_gbdt_bins.c bins the features,
 * sw_gbdt_grow.c grows one tree (gradients, histograms, splits, leaves),
 * sw_gbdt_train.c runs the whole fit (checks, ranks, rounds, validation).
 */
#ifndef SW_GBDT_INT_H
#define SW_GBDT_INT_H

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
    int64_t begin, end; /* its rows: positions [begin, end) of */
    int ordered;        /* the leaf-ordered copy, or else of idx */
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
    /* the features whose splits this rank searches: [f_lo, f_hi) (all of
     * them alone); hist_at[k], rank k's first histogram entry (int64) */
    int64_t f_lo, f_hi, hist_at[SW_COLL_MAX_RANKS + 1];
    int ahead_want; /* leaves split at a time, the same on every rank */
    uint8_t *bins; /* n x nf, row-major: histograms read whole rows */
    int *nbins;    /* value bins of feature f; bin nbins[f] is NaN */
    /* The leaf-ordered copy: every row's bins, gh and row id, in the
     * order of the leaves that hold them, so that a leaf's histogram
     * reads its rows in one sweep instead of gathering them from all
     * over bins and gh (at 4M rows bins no longer fit the L3, and a
     * gathered row cost 2.5 times a row read in order). A tree's first
     * split takes its rows into it; later splits move them within it, in
     * place. Position k holds row lrow[k], its bins at lbins + k *
     * bstride, its gh at lgh + 2k. */
    int64_t bstride; /* nf rounded up to 8: rows moved in words */
    uint8_t *lbins;
    int64_t *lgh, *lrow;
    /* per pool thread, MID_ROWS rows of room (see partition_in) */
    uint8_t *mid_bins;
    int64_t *mid_gh, *mid_row;
    int64_t *gh;       /* gradient and hessian of row r, fixed point: gh[2r]
                        * = g * gscale * 2^cbits + 1 (the count packed below
                        * the gradient), gh[2r + 1] = h * hscale */
    double gscale, hscale, ginv, hinv; /* powers of two */
    int cbits;                         /* a count of up to n rows fits */
    double *gmax;                      /* per row chunk, see gradients */
    double *score;
    int64_t *idx, n_bag, *oob, n_oob;
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

static inline uint64_t
mix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* What the (k + 1)-th mix(&s) from state s returns: row k's draw, made
 * by its row id on whichever rank holds it. */
static inline uint64_t
mix_at(uint64_t s, uint64_t k)
{
    uint64_t z = s + k * 0x9e3779b97f4a7c15ULL;

    return mix(&z);
}

static inline int64_t
row_id(const trainer *t, int64_t i)
{
    return t->row_ids ? t->row_ids[i] : i;
}

static inline double
x_at(const sw_rows *X, int64_t i, int64_t f)
{
    return X->dtype == SW_F64
               ? ((const double *)X->data)[i * X->row_stride + f]
               : (double)((const float *)X->data)[i * X->row_stride + f];
}

/* A leaf's split computed ahead of its turn (see split_next). */
typedef struct ahead {
    int ready;
    leaf L, R;
    hbin *fresh; /* for the smaller child, until the split is computed */
} ahead;


/* A leaf of more rows than this is split alone, its histogram summed by
 * all the threads; smaller ones AHEAD_PER_THREAD per thread at a time, each
 * by one thread, taken largest first as threads come free. */
enum {
    PAIR_MAX = 131072,
    GROUP_MIN = 8192,
    AHEAD_PER_THREAD = 2,
    AHEAD_MAX = 64
};

enum { ROW_CHUNK = 65536 }; /* rows per job of per-row work */

enum { MID_ROWS = 128 }; /* see partition_in */

/* A leaf of at least SPLIT_POOLED rows split alone is split by all the
 * threads (see sw_gbdt_grow.c). */
enum { PART_CHUNK = 8192, SPLIT_POOLED = 4 * PART_CHUNK };

/* Edges from a sample (unless continuing a model, whose edges stay), then
 * every row's bins (sw_gbdt_bins.c). */
sw_rc sw__gbdt_make_bins(trainer *t, int have_edges, sw_err *err);

/* One tree for round (and class t->cls) grown into t->g, and the rows'
 * scores moved by it (sw_gbdt_grow.c). */
sw_rc sw__gbdt_grow_tree(trainer *t, int64_t round, sw_err *err);

/* The value the tree at root gives raw row i. */
double sw__gbdt_tree_value(const sw_gbdt *g, int64_t root, const sw_rows *X,
                           int64_t i);

#endif /* SW_GBDT_INT_H */
