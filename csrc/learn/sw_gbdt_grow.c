/* SPDX-License-Identifier: MIT */
/*
 * sw_gbdt_grow.c - the trainer's second stage, one tree: gradients and
 * hessians in fixed point, the bag, per-leaf histograms (the larger
 * child's by subtraction; across ranks by the collective), the best
 * splits, and leaves grown leaf-wise (or depth-wise) until the tree is
 * full, several computed ahead on threads without changing the tree.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sw_gbdt_int.h"

static hbin *
hist_get(trainer *t)
{
    if (t->n_pool > 0)
        return t->pool[--t->n_pool];
    return sw__alloc_array((size_t)(t->nf * 256), sizeof(hbin));
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
    int ordered; /* rows [lo, lo + n_rows) of a leaf (see leaf.ordered) */
    int64_t lo;
    int64_t n_rows;
    hbin *hist;     /* the caller's (thread 0) histogram */
    hbin *partials; /* thread k > 0 sums into partials + (k - 1) * len */
    int used[SW_MAX_THREADS]; /* thread k took a chunk (its sums zeroed) */
} hist_job;

/* Four features a step, each histogram 256 bins past the last:
 * independent adds, and a quarter of the loop's own work (measured 10-25%
 * faster than one at a time). */
static inline void
hist_row(const uint8_t *b, int64_t nf, int64_t gnr, int64_t hr, hbin *hist)
{
    hbin *h;
    int64_t f;

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

/* Add rows[0, n_rows) of bins and gh into hist. */
static void
hist_rows(const trainer *t, const int64_t *rows, int64_t n_rows, hbin *hist)
{
    const uint8_t *bins = t->bins;
    const int64_t *gh = t->gh;
    int64_t nf = t->nf, k;

    for (k = 0; k < n_rows; k++) {
        int64_t r = rows[k];
        const uint8_t *b = bins + r * nf;
        int64_t gnr = gh[2 * r], hr = gh[2 * r + 1];

        /* a bag's rows are scattered: ask for them early */
        if (k + 16 < n_rows) {
            int64_t soon = rows[k + 16];

            __builtin_prefetch(bins + soon * nf);
            __builtin_prefetch(gh + 2 * soon);
        }
        hist_row(b, nf, gnr, hr, hist);
    }
}

/* Add positions [lo, lo + n) of the leaf-ordered copy into hist: one
 * sweep. */
static void
hist_ordered(const trainer *t, int64_t lo, int64_t n, hbin *hist)
{
    const uint8_t *b = t->lbins + lo * t->bstride;
    const int64_t *gh = t->lgh + 2 * lo;
    int64_t k;

    for (k = 0; k < n; k++, b += t->bstride, gh += 2)
        hist_row(b, t->nf, gh[0], gh[1], hist);
}

/* Add a leaf's rows [lo, lo + n) into hist (see leaf.ordered). */
static void
hist_of(const trainer *t, int ordered, int64_t lo, int64_t n, hbin *hist)
{
    if (ordered)
        hist_ordered(t, lo, n, hist);
    else
        hist_rows(t, t->idx + lo, n, hist);
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
    hist_of(j->t, j->ordered, j->lo + lo, n, h);
}

/* The histogram of a pooled job: the caller's, plus the other threads'. */
static void
add_partials(const trainer *t, const hist_job *j)
{
    int64_t len = t->nf * 256, k;
    int th, n_threads = sw__pool_threads(t->workers);

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

/* The histogram of a leaf's rows [lo, lo + n_rows) (see leaf.ordered): by
 * the calling thread alone, or (pooled) by chunks of rows among the pool's
 * threads. */
static void
build_hist(const trainer *t, int ordered, int64_t lo, int64_t n_rows,
           hbin *hist, int pooled)
{
    int64_t len = t->nf * 256;
    hist_job j;

    if (!pooled || t->workers == NULL || n_rows < HIST_PARALLEL) {
        memset(hist, 0, (size_t)len * sizeof(hbin));
        hist_of(t, ordered, lo, n_rows, hist);
        return;
    }
    memset(&j, 0, sizeof(j));
    j.t = t;
    j.ordered = ordered;
    j.lo = lo;
    j.n_rows = n_rows;
    j.hist = hist;
    j.partials = t->partials;
    sw__pool_run(t->workers, (n_rows + HIST_CHUNK - 1) / HIST_CHUNK, hist_chunk,
                 &j);
    add_partials(t, &j);
}

/* A histogram of this rank's rows made, on the features this rank
 * searches ([f_lo, f_hi)), the histogram of every rank's rows: integer
 * sums, the same bits whoever added what. The other features' bins are
 * left partial: another rank searches them (LightGBM's data-parallel
 * scheme: half the bytes of summing everything everywhere). */
static sw_rc
sum_hist(const trainer *t, hbin *hist, sw_err *err)
{
    return sw_coll_reduce_scatter_i64(t->coll, (int64_t *)hist, t->hist_at,
                                      err);
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
static sw_rc
find_best2(trainer *t, leaf *a, leaf *b, sw_err *err)
{
    int64_t lens[SW_COLL_MAX_RANKS];
    leaf *lfs[2] = {a, b};
    split mine[2];
    void *all = NULL;
    int c, k;
    sw_rc rc;

    memset(mine, 0, sizeof(mine));
    for (c = 0; c < 2 && lfs[c] != NULL; c++) {
        memset(&lfs[c]->best, 0, sizeof(split));
        if (splittable(t, lfs[c]))
            best_in(t, lfs[c], t->f_lo, t->f_hi, &lfs[c]->best);
        mine[c] = lfs[c]->best;
    }
    if (t->coll == NULL)
        return SW_OK;
    /* every rank's best on its features: the largest gain, ties to the
     * lower rank's (lower features), as one search over all would pick */
    if ((rc = sw_coll_gather(t->coll, mine, sizeof(mine), &all, lens, err)) !=
        SW_OK)
        return rc;
    for (c = 0; c < 2 && lfs[c] != NULL; c++) {
        split best;

        memset(&best, 0, sizeof(best));
        for (k = 0; k < sw_coll_size(t->coll); k++) {
            const split *s = (const split *)all + 2 * k + c;

            /* a peer's split indexes this rank's edges: checked */
            if (s->gain > 0 &&
                (s->feature < 0 || s->feature >= t->nf || s->bin < 0 ||
                 s->bin >= t->nbins[s->feature] - 1 || s->nl < 0 ||
                 s->nl > lfs[c]->n)) {
                rc = sw__fail(err, SW_E_FORMAT,
                              "gbdt: rank %d sent a split on feature %d, bin "
                              "%d; not one of this fit's",
                              k, (int)s->feature, (int)s->bin);
                sw__free(all);
                return rc;
            }
            if (s->gain > best.gain)
                best = *s;
        }
        lfs[c]->best = best;
    }
    sw__free(all);
    return SW_OK;
}

/* ---- trees ------------------------------------------------------- */

static sw_rc
new_node(trainer *t, int64_t *id, sw_err *err)
{
    sw_gbdt *g = t->g;

    if (g->n_nodes == g->cap_nodes) {
        int64_t c = g->cap_nodes ? 2 * g->cap_nodes : 1024;
        void *p = sw__realloc_array(g->nodes, (size_t)c, sizeof(sw_gbdt_node));

        if (p == NULL)
            return sw__fail(err, SW_E_NOMEM, "gbdt: out of memory");
        g->nodes = p;
        g->cap_nodes = c;
    }
    if (g->n_nodes >= t->cap_gain) {
        int64_t c = g->cap_nodes;
        double *p = sw__realloc_array(t->node_gain, (size_t)c, sizeof(double));

        if (p == NULL)
            return sw__fail(err, SW_E_NOMEM, "gbdt: out of memory");
        t->node_gain = p;
        t->cap_gain = c;
    }
    *id = g->n_nodes++;
    memset(&g->nodes[*id], 0, sizeof(sw_gbdt_node));
    g->nodes[*id].feature = -1;
    t->node_gain[*id] = 0;
    return SW_OK;
}

/* Whether a row of bin b goes left at a split on bin, NaN by the
 * default: bins up to bin. The split's fields are passed by value, held
 * in locals by the callers (byte stores could alias a split, and the
 * compiler would load its fields again for every row). */
static inline int
left_of(int b, int bin, int nan_bin, int nan_left)
{
    return b == nan_bin ? nan_left : b <= bin;
}

/* The first split of a tree: rows idx[lo, hi), which are the root's
 * (bins and gh by row), copied into positions [lo, hi) of the leaf-ordered
 * copy, those with bin <= sp->bin (NaN: by the default) from lo up, the
 * others from hi down; returns how many went left. The order within a
 * child does not matter: a histogram's integer sums are the same in any
 * order. */
static int64_t
take_rows(trainer *t, int64_t lo, int64_t hi, const split *sp)
{
    const int64_t nf = t->nf, stride = t->bstride, f = sp->feature;
    const int64_t *idx = t->idx, *gh = t->gh;
    const uint8_t *bins = t->bins;
    uint8_t *lb = t->lbins;
    int64_t *lg = t->lgh, *lr = t->lrow, k, w, nl = 0, nr = 0;
    const int bin = sp->bin, nan_bin = t->nbins[f],
              nan_left = sp->default_left;

    for (k = lo; k < hi; k++) {
        int64_t r = idx[k];
        const uint8_t *b = bins + r * nf;
        int left = left_of(b[f], bin, nan_bin, nan_left);
        /* a select, not a branch: which way a row goes is a coin flip
         * the predictor loses half the time */
        int64_t at = left ? lo + nl : hi - 1 - nr;

        for (w = 0; w < stride; w += 8) /* bins has room past its end */
            memcpy(lb + at * stride + w, b + w, 8);
        lg[2 * at] = gh[2 * r];
        lg[2 * at + 1] = gh[2 * r + 1];
        lr[at] = r;
        nl += left;
        nr += !left;
    }
    return nl;
}

/* Positions k and m of the leaf-ordered copy swapped. */
static inline void
swap_rows(uint8_t *lb, int64_t *lg, int64_t *lr, int64_t stride, int64_t k,
          int64_t m)
{
    uint8_t x[8];
    int64_t w, y;

    for (w = 0; w < stride; w += 8) {
        memcpy(x, lb + k * stride + w, 8);
        memcpy(lb + k * stride + w, lb + m * stride + w, 8);
        memcpy(lb + m * stride + w, x, 8);
    }
    y = lg[2 * k], lg[2 * k] = lg[2 * m], lg[2 * m] = y;
    y = lg[2 * k + 1], lg[2 * k + 1] = lg[2 * m + 1], lg[2 * m + 1] = y;
    y = lr[k], lr[k] = lr[m], lr[m] = y;
}

/* Positions [lo, hi) of the leaf-ordered copy split in place: those with
 * bin <= sp->bin (NaN: by the default) first; returns how many. Each row
 * is read once and only misplaced rows are written; a copy into a second
 * array wrote every row, into lines it first had to read (1.9 times the
 * time at 1M rows). Blocks of B rows from both ends: the misplaced rows
 * of each found without a branch, then swapped in pairs (Edelkamp and
 * Weiss's BlockQuicksort); the fewer than 2B rows left in the middle go
 * through the calling thread's buffer. */
static int64_t
partition_in(trainer *t, int64_t lo, int64_t hi, const split *sp, int thread)
{
    enum { B = MID_ROWS / 2 };
    const int64_t stride = t->bstride, f = sp->feature;
    uint8_t *lb = t->lbins;
    int64_t *lg = t->lgh, *lr = t->lrow;
    const int bin = sp->bin, nan_bin = t->nbins[f],
              nan_left = sp->default_left;
    uint8_t offl[B], offr[B];
    int nl = 0, nr = 0, sl = 0, sr = 0, i, m;
    int64_t l = lo, r = hi, k, w, a, z, n;
    uint8_t *mb;
    int64_t *mg, *mr;

    while (r - l >= 2 * B) {
        if (nl == 0) { /* the left block's rows that go right */
            for (sl = 0, i = 0; i < B; i++) {
                offl[nl] = (uint8_t)i;
                nl += !left_of(lb[(l + i) * stride + f], bin, nan_bin,
                               nan_left);
            }
        }
        if (nr == 0) { /* the right block's rows that go left */
            for (sr = 0, i = 0; i < B; i++) {
                offr[nr] = (uint8_t)i;
                nr += left_of(lb[(r - 1 - i) * stride + f], bin, nan_bin,
                              nan_left);
            }
        }
        m = nl < nr ? nl : nr;
        for (i = 0; i < m; i++)
            swap_rows(lb, lg, lr, stride, l + offl[sl + i],
                      r - 1 - offr[sr + i]);
        nl -= m, nr -= m, sl += m, sr += m;
        if (nl == 0)
            l += B;
        if (nr == 0)
            r -= B;
    }
    /* [lo, l) goes left, [r, hi) right; the middle through the buffer */
    n = r - l;
    mb = t->mid_bins + thread * MID_ROWS * stride;
    mg = t->mid_gh + thread * 2 * MID_ROWS;
    mr = t->mid_row + thread * MID_ROWS;
    memcpy(mb, lb + l * stride, (size_t)(n * stride));
    memcpy(mg, lg + 2 * l, (size_t)n * 2 * sizeof(int64_t));
    memcpy(mr, lr + l, (size_t)n * sizeof(int64_t));
    for (a = l, z = r - 1, k = 0; k < n; k++) {
        int left = left_of(mb[k * stride + f], bin, nan_bin, nan_left);
        int64_t at = left ? a : z;

        for (w = 0; w < stride; w += 8)
            memcpy(lb + at * stride + w, mb + k * stride + w, 8);
        lg[2 * at] = mg[2 * k];
        lg[2 * at + 1] = mg[2 * k + 1];
        lr[at] = mr[k];
        a += left;
        z -= !left;
    }
    return a - lo;
}

/* A leaf of at least SPLIT_POOLED rows split alone is split by all the
 * threads: each splits chunks of PART_CHUNK rows in place (a chunk's left
 * rows, then its right ones) and sums those of the smaller child into its
 * histogram at once (the rows just read). Then the right rows before the
 * children's boundary and the left rows after it, as many of each, are
 * swapped in pairs, again by all the threads: only those rows move. */

typedef struct part_job {
    hist_job h; /* the smaller child's histogram (h.ordered, h.lo unused) */
    const leaf *p;
    int small_left;
    int64_t n_chunks;
    int64_t *nl; /* per chunk: rows gone left */
    /* the misplaced rows, in runs of positions: before the boundary,
     * run k is [fa[k], fa[k] + fn[k]); after it, [ba[k], ba[k] + bn[k]) */
    int64_t *fa, *fn, *ba, *bn, n_front, n_back, misplaced, n_pieces;
} part_job;

static void
part_chunk(void *ctx, int64_t c, int thread)
{
    part_job *j = ctx;
    trainer *t = (trainer *)j->h.t;
    int64_t lo = j->p->begin + c * PART_CHUNK,
            n = j->p->end - lo < PART_CHUNK ? j->p->end - lo : PART_CHUNK,
            nl, len = t->nf * 256;
    hbin *h = thread == 0 ? j->h.hist : j->h.partials + (thread - 1) * len;

    nl = j->p->ordered ? partition_in(t, lo, lo + n, &j->p->best, thread)
                       : take_rows(t, lo, lo + n, &j->p->best);
    j->nl[c] = nl;
    if (!j->h.used[thread]) {
        memset(h, 0, (size_t)len * sizeof(hbin));
        j->h.used[thread] = 1;
    }
    if (j->small_left)
        hist_ordered(t, lo, nl, h);
    else
        hist_ordered(t, lo + nl, n - nl, h);
}

/* Position of the m-th misplaced row in runs at[0..n), of lengths len. */
static int64_t
run_pos(const int64_t *at, const int64_t *len, int64_t n, int64_t m,
        int64_t *run)
{
    int64_t k = 0;

    while (k < n && m >= len[k])
        m -= len[k++];
    *run = k;
    return k < n ? at[k] + m : 0;
}

/* Piece c of the misplaced rows: its rows before the boundary swapped
 * with as many after it. */
static void
swap_piece(void *ctx, int64_t c, int thread)
{
    part_job *j = ctx;
    const trainer *t = j->h.t;
    int64_t m0 = j->misplaced * c / j->n_pieces,
            m1 = j->misplaced * (c + 1) / j->n_pieces, fk, bk, f, b, fend,
            bend;

    (void)thread;
    if (m0 == m1)
        return;
    f = run_pos(j->fa, j->fn, j->n_front, m0, &fk);
    b = run_pos(j->ba, j->bn, j->n_back, m0, &bk);
    fend = j->fa[fk] + j->fn[fk];
    bend = j->ba[bk] + j->bn[bk];
    for (; m0 < m1; m0++) {
        if (f == fend) {
            fk++;
            f = j->fa[fk];
            fend = f + j->fn[fk];
        }
        if (b == bend) {
            bk++;
            b = j->ba[bk];
            bend = b + j->bn[bk];
        }
        swap_rows(t->lbins, t->lgh, t->lrow, t->bstride, f++, b++);
    }
}

/* Leaf p's rows partitioned and the smaller child's histogram summed into
 * hist, by all the threads. */
static int64_t
split_pooled(trainer *t, const leaf *p, hbin *hist, int small_left)
{
    part_job j;
    int64_t n_chunks = (p->end - p->begin + PART_CHUNK - 1) / PART_CHUNK, c,
            mid = p->begin;

    memset(&j, 0, sizeof(j));
    j.h.t = t;
    j.h.hist = hist;
    j.h.partials = t->partials;
    j.p = p;
    j.small_left = small_left;
    j.n_chunks = n_chunks;
    j.nl = t->part_at;
    j.fa = t->part_at + n_chunks;
    j.fn = t->part_at + 2 * n_chunks;
    j.ba = t->part_at + 3 * n_chunks;
    j.bn = t->part_at + 4 * n_chunks;
    sw__pool_run(t->workers, n_chunks, part_chunk, &j);
    /* this rank's rows gone left (best.nl counts every rank's) */
    for (c = 0; c < n_chunks; c++)
        mid += j.nl[c];
    for (c = 0; c < n_chunks; c++) {
        int64_t lo = p->begin + c * PART_CHUNK,
                hi = p->end - lo < PART_CHUNK ? p->end : lo + PART_CHUNK,
                r0 = lo + j.nl[c]; /* its right rows: [r0, hi) */

        if (r0 < mid && r0 < hi) { /* right rows before the boundary */
            j.fa[j.n_front] = r0;
            j.fn[j.n_front++] = (hi < mid ? hi : mid) - r0;
        }
        if (hi > mid && lo < r0) { /* left rows after it */
            int64_t a = lo > mid ? lo : mid;

            if (a < r0) {
                j.ba[j.n_back] = a;
                j.bn[j.n_back++] = r0 - a;
            }
        }
    }
    for (c = 0; c < j.n_front; c++)
        j.misplaced += j.fn[c];
    /* a few pieces a thread, equal in rows: each piece finds its start
     * by walking the runs, so pieces of PART_CHUNK rows made the walks
     * grow with the square of the chunks (16M rows: ~2k chunks) */
    j.n_pieces = (j.misplaced + PART_CHUNK - 1) / PART_CHUNK;
    if (j.n_pieces > 4 * sw__pool_threads(t->workers))
        j.n_pieces = 4 * sw__pool_threads(t->workers);
    if (j.n_pieces > 0)
        sw__pool_run(t->workers, j.n_pieces, swap_piece, &j);
    add_partials(t, &j.h);
    return mid;
}


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
        mid = p->begin + (p->ordered ? partition_in(t, p->begin, p->end, s,
                                                     thread)
                                     : take_rows(t, p->begin, p->end, s));
        L->end = R->begin = mid;
        build_hist(t, 1, small->begin, small->end - small->begin, small->hist,
                   pooled);
    }
    L->ordered = R->ordered = 1;
}

/* The second half, once the smaller child's histogram is every rank's
 * (on this rank's features): the larger's by subtraction in the parent's,
 * both children's best splits. */
static sw_rc
finish_split(trainer *t, leaf *L, leaf *R, sw_err *err)
{
    leaf *small = L->n <= R->n ? L : R, *large = small == L ? R : L;
    int64_t k;

    for (k = t->f_lo * 256; k < t->f_hi * 256; k++) {
        large->hist[k].gn -= small->hist[k].gn;
        large->hist[k].h -= small->hist[k].h;
    }
    return find_best2(t, L, R, err);
}

/* Both halves, for a split whose smaller histogram needs no other rank's
 * rows. */
static void
compute_split(trainer *t, const leaf *p, hbin *fresh, int pooled, int thread,
              leaf *L, leaf *R)
{
    split_rows(t, p, fresh, pooled, thread, L, R);
    (void)finish_split(t, L, R, NULL); /* alone: nothing can fail */
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
    return finish_split(t, &a->L, &a->R, err);
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
                return sw__fail(err, SW_E_NOMEM, "gbdt: out of memory");
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
            sw__pool_run(t->workers, n, group_split, &j);
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
double
sw__gbdt_tree_value(const sw_gbdt *g, int64_t root, const sw_rows *X, int64_t i)
{
    const sw_gbdt_node *n = g->nodes + root;

    while (n->feature >= 0) {
        double v = x_at(X, i, n->feature);
        int left = v <= n->value || (v != v && (n->kids & 1));

        n += (n->kids >> 1) + !left;
    }
    return n->value;
}


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
        sw__pool_run(t->workers, chunks, gmax_of, t);
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
    sw__pool_run(t->workers, chunks, gradients_of, t);
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
        t->score[(lf->ordered ? t->lrow[k] : t->idx[k]) * t->K + t->cls] += v;
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

sw_rc
sw__gbdt_grow_tree(trainer *t, int64_t round, sw_err *err)
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
        return sw__fail(err, SW_E_NOMEM, "gbdt: out of memory");
    t->n_leaves = 1;
    build_hist(t, 0, 0, t->n_bag, root->hist, 1);
    {
        /* every row is in one bin of feature 0: its bins sum the tree's
         * rows (this rank's, then every rank's) */
        int64_t tot[2] = {0, 0};

        for (k = 0; k < 256; k++) {
            tot[0] += root->hist[k].gn;
            tot[1] += root->hist[k].h;
        }
        if ((rc = sw_coll_sum_i64(t->coll, tot, 2, err)) != SW_OK ||
            (rc = sum_hist(t, root->hist, err)) != SW_OK)
            return rc;
        gn = tot[0];
        root->h = tot[1];
    }
    root->g = grad_of(t, gn);
    root->n = count_of(t, gn);
    if ((rc = find_best2(t, root, NULL, err)) != SW_OK)
        return rc;
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
    sw__pool_run(t->workers, t->n_leaves, leaf_scores, t);
    for (k = 0; k < t->n_oob; k++)
        t->score[t->oob[k] * t->K + t->cls] +=
            sw__gbdt_tree_value(g, root_id, t->X, t->oob[k]);
    return SW_OK;
}
