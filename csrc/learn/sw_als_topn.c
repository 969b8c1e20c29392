/* SPDX-License-Identifier: MIT */
/*
 * sw_als_topn.c - top-n recommendation, similar items, ranking metrics and
 * train/test splits for ALS models.
 *
 * Scoring is a dense product of query vectors with every target vector.
 * The targets are copied into blocks of 16, transposed, so that one pass
 * over the factors updates 16 scores at a time for a tile of queries:
 * score[t][i] += x_t[j] * Y[i][j] for j in factor order. Each score is thus
 * summed exactly as the plain loop sum_j x[j] y[j] sums it, in float32 and
 * in the same order, so a batch of 50,000 users, one user from the runner
 * and a (user, item) pair scored by sw_model_predict give the same bits.
 * Selection keeps a min-heap of the n best (score, then lower id) per
 * query; liked and excluded items never enter it.
 */
#include <math.h>
#include <stdlib.h>

#include "sw_internal.h"

#define BLOCK 32 /* targets per block: two vectors of the widest */
#define TILE 4   /* queries per tile */

typedef struct target_set {
    const float *F; /* n x k, row-major */
    int64_t n, k;
    float *blocks; /* n_blocks x k x BLOCK */
    int64_t n_blocks;
} target_set;

static sw_rc
targets_new(target_set *ts, const float *F, int64_t n, int64_t k, sw_err *err)
{
    int64_t b, j, l;

    ts->F = F;
    ts->n = n;
    ts->k = k;
    ts->n_blocks = (n + BLOCK - 1) / BLOCK;
    ts->blocks = sw__calloc((size_t)(ts->n_blocks * k * BLOCK), sizeof(float));
    if (ts->blocks == NULL && ts->n_blocks > 0)
        return sw__fail(err, SW_E_NOMEM, "recommend: out of memory");
    for (b = 0; b < ts->n_blocks; b++) {
        for (l = 0; l < BLOCK && b * BLOCK + l < n; l++) {
            const float *f = F + (b * BLOCK + l) * k;

            for (j = 0; j < k; j++)
                ts->blocks[(b * k + j) * BLOCK + l] = f[j];
        }
    }
    return SW_OK;
}

/* scores[t * n + i] = x_t . F_i for the n_t (<= TILE) query vectors, which
 * xs holds contiguously (TILE x k). Each score is summed over the factors
 * in order, one float add after one float multiply per lane: the bits of
 * score_one at any width. A block's BLOCK targets go two vectors of W
 * lanes (VT) at a time, one chain of adds per query and vector (eight in
 * flight: four left the adders waiting), at the width whose vectors stay
 * in the registers (GCC keeps 16-lane vectors in memory without AVX-512,
 * which made recommend 6.7x slower on AVX2; sw__als_kernel_level
 * picks). */
#define SCORE_ALL(name, VT, W)                                                 \
    static void name(const target_set *ts, const float *xs, int n_t,           \
                     float *scores)                                            \
    {                                                                          \
        int64_t k = ts->k, b, j;                                               \
        int t, l, q;                                                           \
                                                                               \
        for (b = 0; b < ts->n_blocks; b++) {                                   \
            const float *blk = ts->blocks + b * k * BLOCK;                     \
            float out[TILE][BLOCK];                                            \
            int64_t base = b * BLOCK;                                          \
                                                                               \
            for (q = 0; q < BLOCK; q += 2 * (W)) {                             \
                VT a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0}, col;                \
                VT b0 = {0}, b1 = {0}, b2 = {0}, b3 = {0}, col2;               \
                                                                               \
                for (j = 0; j < k; j++) {                                      \
                    memcpy(&col, blk + j * BLOCK + q, sizeof(col));            \
                    a0 += xs[j] * col;                                         \
                    a1 += xs[k + j] * col;                                     \
                    a2 += xs[2 * k + j] * col;                                 \
                    a3 += xs[3 * k + j] * col;                                 \
                    memcpy(&col2, blk + j * BLOCK + q + (W), sizeof(col));     \
                    b0 += xs[j] * col2;                                        \
                    b1 += xs[k + j] * col2;                                    \
                    b2 += xs[2 * k + j] * col2;                                \
                    b3 += xs[3 * k + j] * col2;                                \
                }                                                              \
                memcpy(out[0] + q, &a0, sizeof(a0));                           \
                memcpy(out[1] + q, &a1, sizeof(a1));                           \
                memcpy(out[2] + q, &a2, sizeof(a2));                           \
                memcpy(out[3] + q, &a3, sizeof(a3));                           \
                memcpy(out[0] + q + (W), &b0, sizeof(b0));                     \
                memcpy(out[1] + q + (W), &b1, sizeof(b1));                     \
                memcpy(out[2] + q + (W), &b2, sizeof(b2));                     \
                memcpy(out[3] + q + (W), &b3, sizeof(b3));                     \
            }                                                                  \
            for (t = 0; t < n_t; t++) {                                        \
                for (l = 0; l < BLOCK && base + l < ts->n; l++)                \
                    scores[t * ts->n + base + l] = out[t][l];                  \
            }                                                                  \
        }                                                                      \
    }

typedef float v16sf __attribute__((vector_size(64)));
typedef float v8sf __attribute__((vector_size(32)));
typedef float v4sf __attribute__((vector_size(16)));

SW_TARGET("avx512f") SCORE_ALL(score_all_512, v16sf, 16)
SW_TARGET("avx2") SCORE_ALL(score_all_avx2, v8sf, 8)
SCORE_ALL(score_all_narrow, v4sf, 4)

static void
score_all(const target_set *ts, const float *xs, int n_t, float *scores)
{
    switch (sw__als_kernel_level()) {
    case 2:
        score_all_512(ts, xs, n_t, scores);
        break;
    case 1:
        score_all_avx2(ts, xs, n_t, scores);
        break;
    default:
        score_all_narrow(ts, xs, n_t, scores);
    }
}

/* The same sum for one target: the scalar twin of score_all. */
static inline float
score_one(const float *x, const float *f, int64_t k)
{
    float s = 0.0f;
    int64_t j;

    for (j = 0; j < k; j++)
        s += x[j] * f[j];
    return s;
}

/* ---- top-n selection -------------------------------------------------- */

typedef struct hit {
    float s;
    int64_t id;
} hit;

/* a ranks below b: lower score, or the same score and a higher id */
static inline int
below(hit a, hit b)
{
    return a.s < b.s || (a.s == b.s && a.id > b.id);
}

static void
sift_down(hit *h, int64_t n, int64_t i)
{
    for (;;) {
        int64_t l = 2 * i + 1, r = l + 1, m = i;

        if (l < n && below(h[l], h[m]))
            m = l;
        if (r < n && below(h[r], h[m]))
            m = r;
        if (m == i)
            return;
        hit t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

static void
offer(hit *h, int64_t *size, int64_t cap, hit c)
{
    if (*size < cap) {
        int64_t i = (*size)++;

        h[i] = c;
        while (i > 0 && below(h[i], h[(i - 1) / 2])) {
            hit t = h[i];
            h[i] = h[(i - 1) / 2];
            h[(i - 1) / 2] = t;
            i = (i - 1) / 2;
        }
    } else if (below(h[0], c)) {
        h[0] = c;
        sift_down(h, *size, 0);
    }
}

static int
cmp_best_first(const void *pa, const void *pb)
{
    hit a = *(const hit *)pa, b = *(const hit *)pb;

    return below(b, a) ? -1 : below(a, b) ? 1 : 0;
}

static void
emit(hit *h, int64_t size, int64_t n, int64_t *ids, float *scores)
{
    int64_t i;

    qsort(h, (size_t)size, sizeof(hit), cmp_best_first);
    for (i = 0; i < n; i++) {
        ids[i] = i < size ? h[i].id : -1;
        scores[i] = i < size ? h[i].s : -INFINITY;
    }
}

/* ---- the job ---------------------------------------------------------- */

typedef struct rank_job {
    const target_set *ts;
    const float *qvecs; /* n_q x k query vectors */
    int64_t n_q, n;
    const sw_rows *liked; /* rows of left-out targets, or NULL */
    int liked_by_id;      /* liked row is ids[q], not q */
    const int64_t *ids;
    const int64_t *kept_ptr; /* liked kept in the model (by id) */
    const int32_t *kept_idx;
    const unsigned char *exclude;
    const int64_t *cand;
    int64_t n_cand;
    int64_t *ids_out;
    float *scores_out;
    float *buf; /* threads x TILE x n targets */
    hit *heap;  /* threads x n */
    sw_rc rc;   /* set (once) if a liked row is bad */
} rank_job;

/* Mark a query's left-out targets in its score row with -inf. */
static void
mask_liked(const rank_job *J, int64_t q, float *s)
{
    int64_t e, r;

    if (J->liked != NULL) {
        r = J->liked_by_id ? J->ids[q] : q;
        if (r < 0 || r >= J->liked->n_rows)
            return;
        for (e = sw__csr_ptr(J->liked, r); e < sw__csr_ptr(J->liked, r + 1);
             e++) {
            int64_t c = sw__csr_col(J->liked, e);

            if (c >= 0 && c < J->ts->n)
                s[c] = -INFINITY;
        }
    } else if (J->kept_ptr != NULL) {
        r = J->ids[q];
        for (e = J->kept_ptr[r]; e < J->kept_ptr[r + 1]; e++)
            s[J->kept_idx[e]] = -INFINITY;
    }
}

static void
rank_chunk(void *ctx, int64_t c, int thread)
{
    rank_job *J = ctx;
    const target_set *ts = J->ts;
    int64_t q0 = c * TILE, k = ts->k, i;
    int n_t = (int)(J->n_q - q0 < TILE ? J->n_q - q0 : TILE), t;
    float *buf = J->buf + (int64_t)thread * TILE * ts->n;
    hit *heap = J->heap + (int64_t)thread * J->n;
    const float *x[TILE];
    float xs[TILE * 4096]; /* the tile's query vectors, contiguous */

    for (t = 0; t < TILE; t++) {
        x[t] = J->qvecs + (q0 + (t < n_t ? t : 0)) * k;
        memcpy(xs + t * k, x[t], (size_t)k * sizeof(float));
    }
    if (J->cand == NULL) {
        score_all(ts, xs, n_t, buf);
    } else {
        for (t = 0; t < n_t; t++) {
            for (i = 0; i < J->n_cand; i++)
                buf[t * ts->n + J->cand[i]] =
                    score_one(x[t], ts->F + J->cand[i] * k, k);
        }
    }
    for (t = 0; t < n_t; t++) {
        float *s = buf + t * ts->n;
        int64_t size = 0, q = q0 + t;

        mask_liked(J, q, s);
        if (J->cand == NULL) {
            /* Once the heap is full, an item must reach its worst score
             * to enter: one compare rejects nearly all of them (and the
             * -inf of left-out items, since the heap holds finite ones). */
            float thr = -INFINITY;

            for (i = 0; i < ts->n; i++) {
                if (s[i] < thr || s[i] == -INFINITY)
                    continue;
                if (J->exclude && J->exclude[i])
                    continue;
                if (size == J->n && !below(heap[0], (hit){s[i], i}))
                    continue;
                offer(heap, &size, J->n, (hit){s[i], i});
                if (size == J->n)
                    thr = heap[0].s;
            }
        } else {
            for (i = 0; i < J->n_cand; i++) {
                int64_t id = J->cand[i];

                if (s[id] == -INFINITY || (J->exclude && J->exclude[id]))
                    continue;
                offer(heap, &size, J->n, (hit){s[id], id});
            }
        }
        emit(heap, size, J->n, J->ids_out + q * J->n, J->scores_out + q * J->n);
    }
}

static sw_rc
run_ranking(rank_job *J, int threads, sw_err *err)
{
    int64_t n_chunks = (J->n_q + TILE - 1) / TILE;
    sw_rc rc = SW_OK;

    if (threads > n_chunks)
        threads = n_chunks > 0 ? (int)n_chunks : 1;
    J->buf = sw__alloc_array((size_t)((int64_t)threads * TILE * J->ts->n),
                             sizeof(float));
    J->heap = sw__alloc_array((size_t)((int64_t)threads * (J->n ? J->n : 1)),
                              sizeof(hit));
    if ((J->buf == NULL && J->ts->n > 0) || J->heap == NULL)
        rc = sw__fail(err, SW_E_NOMEM, "recommend: out of memory");
    else
        sw__parallel(threads, n_chunks, rank_chunk, J, err);
    sw__free(J->buf);
    sw__free(J->heap);
    return rc;
}

static sw_rc
check_ids(const int64_t *ids, int64_t n, int64_t limit, const char *what,
          sw_err *err)
{
    int64_t i;

    for (i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= limit)
            return sw__fail(err, SW_E_INVAL, "%s %lld is outside 0..%lld", what,
                            (long long)ids[i], (long long)limit - 1);
    }
    return SW_OK;
}

static const sw_als *
als_of(const sw_model *m)
{
    return m != NULL && m->kind == SW_MODEL_ALS ? m->u.als : NULL;
}

/* Gather query vectors: vecs if given, else rows ids of F. */
static float *
gather(const float *F, const int64_t *ids, int64_t n_q, int64_t k,
       const float *vecs)
{
    float *q =
        sw__alloc_array((size_t)(n_q * k > 0 ? n_q * k : 1), sizeof(float));
    int64_t i;

    if (q == NULL)
        return NULL;
    if (vecs != NULL) {
        memcpy(q, vecs, (size_t)(n_q * k) * sizeof(float));
    } else {
        for (i = 0; i < n_q; i++)
            memcpy(q + i * k, F + ids[i] * k, (size_t)k * sizeof(float));
    }
    return q;
}

static sw_rc
recommend_impl(const sw_als *a, const int64_t *ids, int64_t n_q,
               const float *vecs, int64_t n, int flags, const sw_rows *liked,
               int liked_by_id, const unsigned char *exclude,
               const int64_t *cand, int64_t n_cand, int64_t *ids_out,
               float *scores_out, sw_err *err)
{
    target_set ts = {0};
    rank_job J;
    float *q = NULL;
    sw_rc rc;

    memset(&J, 0, sizeof(J));
    if (n < 0 || n_q < 0)
        return sw__fail(err, SW_E_INVAL, "recommend: negative count");
    if (vecs == NULL) {
        rc = check_ids(ids, n_q, a->n_users, "user", err);
        if (rc != SW_OK)
            return rc;
    }
    if (cand != NULL) {
        rc = check_ids(cand, n_cand, a->n_items, "candidate item", err);
        if (rc != SW_OK)
            return rc;
    }
    if ((flags & SW_REC_FILTER_LIKED) && liked == NULL &&
        a->liked_ptr != NULL && ids != NULL) {
        rc = check_ids(ids, n_q, a->liked_rows, "user", err);
        if (rc != SW_OK)
            return rc;
    }
    if (liked != NULL && (flags & SW_REC_FILTER_LIKED)) {
        rc = sw_rows_check(liked, err);
        if (rc != SW_OK)
            return rc;
        if (!liked_by_id && liked->n_rows != n_q)
            return sw__fail(err, SW_E_SHAPE,
                            "recommend: %lld liked rows for %lld users",
                            (long long)liked->n_rows, (long long)n_q);
    }
    q = gather(a->X, ids, n_q, a->k, vecs);
    if (q == NULL)
        return sw__fail(err, SW_E_NOMEM, "recommend: out of memory");
    rc = targets_new(&ts, a->Y, a->n_items, a->k, err);
    if (rc != SW_OK)
        goto done;
    J.ts = &ts;
    J.qvecs = q;
    J.n_q = n_q;
    J.n = n;
    J.ids = ids;
    if (flags & SW_REC_FILTER_LIKED) {
        J.liked = liked;
        J.liked_by_id = liked_by_id;
        if (liked == NULL && ids != NULL) {
            J.kept_ptr = a->liked_ptr;
            J.kept_idx = a->liked_idx;
        }
    }
    J.exclude = exclude;
    J.cand = cand;
    J.n_cand = n_cand;
    J.ids_out = ids_out;
    J.scores_out = scores_out;
    rc = run_ranking(&J, sw__als_threads(a), err);
done:
    sw__free(ts.blocks);
    sw__free(q);
    return rc;
}

sw_rc
sw_als_recommend(const sw_model *m, const int64_t *ids, int64_t n_q,
                 const float *vecs, int64_t n, int flags, const sw_rows *liked,
                 const unsigned char *exclude, const int64_t *candidates,
                 int64_t n_cand, int64_t *items_out, float *scores_out,
                 sw_err *err)
{
    const sw_als *a = als_of(m);

    if (a == NULL)
        return sw__fail(err, SW_E_INVAL, "recommend: not an ALS model");
    if (ids == NULL && vecs == NULL && n_q > 0)
        return sw__fail(err, SW_E_INVAL, "recommend: no users and no vectors");
    return recommend_impl(a, ids, n_q, vecs, n, flags, liked, 0, exclude,
                          candidates, n_cand, items_out, scores_out, err);
}

/* Rows of F scaled to unit length (zero rows stay zero). */
static float *
normalized(const float *F, int64_t n, int64_t k)
{
    float *G = sw__alloc_array((size_t)(n * k > 0 ? n * k : 1), sizeof(float));
    int64_t i, j;

    if (G == NULL)
        return NULL;
    for (i = 0; i < n; i++) {
        double ss = 0;

        for (j = 0; j < k; j++)
            ss += (double)F[i * k + j] * F[i * k + j];
        for (j = 0; j < k; j++)
            G[i * k + j] = ss > 0 ? (float)(F[i * k + j] / sqrt(ss)) : 0.0f;
    }
    return G;
}

sw_rc
sw_als_similar(const sw_model *m, sw_side side, const int64_t *ids, int64_t n_q,
               int64_t n, const int64_t *candidates, int64_t n_cand,
               int64_t *ids_out, float *scores_out, sw_err *err)
{
    const sw_als *a = als_of(m);
    target_set ts = {0};
    rank_job J;
    float *G = NULL, *q = NULL;
    int64_t rows;
    sw_rc rc;

    if (a == NULL)
        return sw__fail(err, SW_E_INVAL, "similar: not an ALS model");
    if (side != SW_USERS && side != SW_ITEMS)
        return sw__fail(err, SW_E_INVAL, "similar: side %d", side);
    rows = side == 0 ? a->n_users : a->n_items;
    rc = check_ids(ids, n_q, rows, side ? "item" : "user", err);
    if (rc == SW_OK && candidates != NULL)
        rc = check_ids(candidates, n_cand, rows, "candidate", err);
    if (rc != SW_OK)
        return rc;
    G = normalized(side == 0 ? a->X : a->Y, rows, a->k);
    q = G ? gather(G, ids, n_q, a->k, NULL) : NULL;
    if (G == NULL || q == NULL) {
        rc = sw__fail(err, SW_E_NOMEM, "similar: out of memory");
        goto done;
    }
    rc = targets_new(&ts, G, rows, a->k, err);
    if (rc != SW_OK)
        goto done;
    memset(&J, 0, sizeof(J));
    J.ts = &ts;
    J.qvecs = q;
    J.n_q = n_q;
    J.n = n;
    J.ids = ids;
    J.cand = candidates;
    J.n_cand = n_cand;
    J.ids_out = ids_out;
    J.scores_out = scores_out;
    rc = run_ranking(&J, sw__als_threads(a), err);
done:
    sw__free(ts.blocks);
    sw__free(G);
    sw__free(q);
    return rc;
}

/* ---- metrics ------------------------------------------------------------ */

sw_rc
sw_ranking_metrics(const sw_model *m, const sw_rows *train, const sw_rows *test,
                   int64_t k, double out[4], int64_t *n_users_out, sw_err *err)
{
    const sw_als *a = als_of(m);
    int64_t *users = NULL, *rec = NULL, n_users = 0, u, i, e;
    float *scores = NULL;
    double relevant = 0, pr_div = 0, map = 0, ndcg = 0, auc = 0;
    double *cg = NULL, *cg_sum = NULL;
    sw_rc rc;

    memset(out, 0, 4 * sizeof(double));
    if (n_users_out != NULL)
        *n_users_out = 0;
    if (a == NULL)
        return sw__fail(err, SW_E_INVAL, "metrics: not an ALS model");
    if (k < 1)
        return sw__fail(err, SW_E_INVAL, "metrics: k = %lld, expected >= 1",
                        (long long)k);
    rc = sw__als_check_csr(a, test, a->n_users, a->n_items, "test", err);
    if (rc == SW_OK && train != NULL)
        rc = sw__als_check_csr(a, train, a->n_users, a->n_items, "train", err);
    if (rc != SW_OK)
        return rc;
    users =
        sw__alloc_array((size_t)(a->n_users ? a->n_users : 1), sizeof(int64_t));
    cg = sw__alloc_array((size_t)k, sizeof(double));
    cg_sum = sw__alloc_array((size_t)k, sizeof(double));
    if (users == NULL || cg == NULL || cg_sum == NULL) {
        rc = sw__fail(err, SW_E_NOMEM, "metrics: out of memory");
        goto done;
    }
    for (u = 0; u < a->n_users; u++) {
        if (sw__csr_ptr(test, u + 1) > sw__csr_ptr(test, u))
            users[n_users++] = u;
    }
    rec = sw__alloc_array((size_t)(n_users * k > 0 ? n_users * k : 1),
                          sizeof(int64_t));
    scores = sw__alloc_array((size_t)(n_users * k > 0 ? n_users * k : 1),
                             sizeof(float));
    if (rec == NULL || scores == NULL) {
        rc = sw__fail(err, SW_E_NOMEM, "metrics: out of memory");
        goto done;
    }
    rc = recommend_impl(a, users, n_users, NULL, k,
                        train ? SW_REC_FILTER_LIKED : 0, train, 1, NULL, NULL,
                        0, rec, scores, err);
    if (rc != SW_OK)
        goto done;
    for (i = 0; i < k; i++) {
        cg[i] = 1.0 / log2((double)i + 2.0);
        cg_sum[i] = cg[i] + (i ? cg_sum[i - 1] : 0.0);
    }
    for (i = 0; i < n_users; i++) {
        int64_t lo = sw__csr_ptr(test, users[i]),
                hi = sw__csr_ptr(test, users[i] + 1);
        int64_t n_pos = 0, r, hits = 0, miss = 0;
        double ap = 0, dcg = 0, au = 0, idcg;

        /* distinct test items (a CSR row may repeat a column) */
        for (e = lo; e < hi; e++) {
            int64_t c = sw__csr_col(test, e), f;

            for (f = lo; f < e && sw__csr_col(test, f) != c; f++)
                ;
            n_pos += f == e;
        }
        idcg = cg_sum[(n_pos < k ? n_pos : k) - 1];
        for (r = 0; r < k; r++) {
            int64_t item = rec[i * k + r];
            int found = 0;

            for (e = lo; e < hi && item >= 0; e++) {
                if (sw__csr_col(test, e) == item) {
                    found = 1;
                    break;
                }
            }
            if (found) {
                hits++;
                relevant++;
                ap += (double)hits / (double)(r + 1);
                dcg += cg[r] / idcg;
            } else {
                miss++;
                au += (double)hits;
            }
        }
        au += ((double)hits + (double)n_pos) / 2.0 *
              ((double)(a->n_items - n_pos) - (double)miss);
        pr_div += (double)(n_pos < k ? n_pos : k);
        map += ap / (double)(n_pos < k ? n_pos : k);
        ndcg += dcg;
        auc += au / ((double)n_pos * (double)(a->n_items - n_pos));
    }
    if (n_users > 0) {
        out[0] = relevant / pr_div;
        out[1] = map / (double)n_users;
        out[2] = ndcg / (double)n_users;
        out[3] = auc / (double)n_users;
    }
    if (n_users_out != NULL)
        *n_users_out = n_users;
    rc = SW_OK;
done:
    sw__free(users);
    sw__free(rec);
    sw__free(scores);
    sw__free(cg);
    sw__free(cg_sum);
    return rc;
}

/* ---- splits ------------------------------------------------------------- */

static inline uint64_t
mix(uint64_t seed, uint64_t i)
{
    uint64_t z = seed * 0x9E3779B97F4A7C15ULL + i + 0x632BE59BD9B4E019ULL;

    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

sw_rc
sw_split_random(int64_t n, double test_fraction, uint64_t seed,
                unsigned char *in_test, sw_err *err)
{
    int64_t e;

    if (n < 0 || !(test_fraction >= 0 && test_fraction <= 1))
        return sw__fail(err, SW_E_INVAL,
                        "split: test_fraction %g, expected 0..1",
                        test_fraction);
    for (e = 0; e < n; e++)
        in_test[e] =
            (double)(mix(seed, (uint64_t)e) >> 11) * 0x1.0p-53 < test_fraction;
    return SW_OK;
}

sw_rc
sw_split_leave_k_out(const sw_rows *x, int64_t k, uint64_t seed,
                     unsigned char *in_test, int64_t n_in_test, sw_err *err)
{
    int64_t i, e, *pick = NULL, cap = 0;
    sw_rc rc;

    if (x == NULL || x->layout != SW_CSR)
        return sw__fail(err, SW_E_INVAL, "leave_k_out: expected a CSR matrix");
    rc = sw_rows_check(x, err);
    if (rc != SW_OK)
        return rc;
    if (k < 1)
        return sw__fail(err, SW_E_INVAL, "leave_k_out: k = %lld, expected >= 1",
                        (long long)k);
    if (n_in_test != sw__csr_ptr(x, x->n_rows))
        return sw__fail(err, SW_E_SHAPE,
                        "leave_k_out: %lld flags for %lld "
                        "entries",
                        (long long)n_in_test,
                        (long long)sw__csr_ptr(x, x->n_rows));
    memset(in_test, 0, (size_t)n_in_test);
    for (i = 0; i < x->n_rows; i++) {
        int64_t lo = sw__csr_ptr(x, i), n = sw__csr_ptr(x, i + 1) - lo, j;

        if (n <= k)
            continue;
        if (n > cap) {
            int64_t *p = sw__realloc_array(pick, (size_t)n, sizeof(int64_t));

            if (p == NULL) {
                sw__free(pick);
                return sw__fail(err, SW_E_NOMEM, "leave_k_out: out of memory");
            }
            pick = p;
            cap = n;
        }
        for (e = 0; e < n; e++)
            pick[e] = e;
        for (j = 0; j < k; j++) { /* partial Fisher-Yates, seeded per row */
            int64_t r =
                j + (int64_t)(mix(seed ^ (uint64_t)i * 0xA24BAED4963EE407ULL,
                                  (uint64_t)j) %
                              (uint64_t)(n - j));
            int64_t t = pick[j];

            pick[j] = pick[r];
            pick[r] = t;
            in_test[lo + pick[j]] = 1;
        }
    }
    sw__free(pick);
    return SW_OK;
}
