/* SPDX-License-Identifier: MIT */
/*
 * sw_als.c - matrix factorization by alternating least squares.
 *
 * Implicit feedback: Y. Hu, Y. Koren, C. Volinsky, "Collaborative Filtering
 * for Implicit Feedback Datasets", ICDM 2008. With preferences p_ui = 1 for
 * every interaction and confidences c_ui (linear: alpha r, as the implicit
 * library; hu: 1 + alpha r, as the paper and Spark), each user's factors
 * solve (Eq. 4)
 *     (Y'Y + Y'(C_u - I)Y + lambda_u I) x_u = Y' C_u p_u,
 * where Y'Y is computed once per sweep and the correction touches only the
 * user's n_u items. Two solvers: conjugate gradient warm-started from the
 * current factors for als.cg_steps steps (G. Takacs, I. Pilaszy, D. Tikk,
 * "Applications of the conjugate gradient method for implicit feedback
 * collaborative filtering", RecSys 2011), in float32 as the implicit library
 * does; and an exact Cholesky solve in float64 (the correction summed with
 * dsyrk, factorized with LAPACK dpotrf/dpotrs).
 * Explicit feedback (ALS-WR, Y. Zhou, D. Wilkinson, R. Schreiber, R. Pan,
 * AAIM 2008): (Y_u'Y_u + lambda_u I) x_u = Y_u' r_u over the rated items
 * only, solved by Cholesky. lambda_u is lambda, or lambda n_u with
 * als.reg_scaling=n_u. Items are solved the same way against the users.
 *
 * Determinism: every row's solve reads only the other side's factors and
 * Y'Y, so rows may run on any thread in any order; Y'Y and the loss are
 * summed over fixed chunks of rows and then in chunk order. The result is
 * the same for any thread count.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "sw_blas.h"
#include "sw_internal.h"

enum { SOLVER_CG = 0, SOLVER_CHOLESKY = 1 };
enum { CONF_LINEAR = 0, CONF_HU = 1 };
enum { REG_NONE = 0, REG_NU = 1 };

#define GRAM_CHUNK 4096 /* rows per partial sum of Y'Y */
#define ROW_CHUNK 256   /* rows per task of a sweep */
#define SYRK_BLOCK 256  /* interactions gathered per dsyrk */

/* ------------------------------------------------------------------ */
/* float32 kernels (fixed order, so every host gets the same bits)      */
/* ------------------------------------------------------------------ */

/* GCC's vector extensions: eight or sixteen lanes, each lane doing the
 * same additions in the same order on every instruction set (a v16f is
 * one AVX-512 register, two AVX ones or four SSE ones). The types are
 * aligned as their elements, so rows need no alignment, and may alias
 * them. Loads are macros: a function returning a vector would change
 * its ABI with the instruction set of each clone. */
typedef float v8f __attribute__((vector_size(32), aligned(4), may_alias));
typedef float v16f __attribute__((vector_size(64), aligned(4), may_alias));
typedef double v8d __attribute__((vector_size(64), aligned(8), may_alias));

#define LD8(p) (*(const v8f *)(p))
#define LD16(p) (*(const v16f *)(p))
#define ST16(p, v) (*(v16f *)(p) = (v))
#define LD8D(p) (*(const v8d *)(p))
#define ST8D(p, v) (*(v8d *)(p) = (v))
#define WIDE8(p) __builtin_convertvector(LD8(p), v8d)

/* The one reduction of eight lanes every dot product uses; the narrow
 * kernels hold the lanes as two halves of four. */
#define HALF_SUM(s, o)                                                         \
    (((s)[(o)] + (s)[(o) + 1]) + ((s)[(o) + 2] + (s)[(o) + 3]))
#define LANES_SUM(s) (HALF_SUM(s, 0) + HALF_SUM(s, 4))

/* a . b: eight lanes over blocks of eight, the tail in lane 0. */
static inline float
dotf(const float *a, const float *b, int64_t k)
{
    v8f s = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t j = 0;

    for (; j + 8 <= k; j += 8)
        s += LD8(a + j) * LD8(b + j);
    for (; j < k; j++)
        s[0] += a[j] * b[j];
    return LANES_SUM(s);
}

/* y += a x */
static inline void
axpyf(float a, const float *x, float *y, int64_t k)
{
    int64_t j = 0;

    for (; j + 16 <= k; j += 16)
        ST16(y + j, LD16(y + j) + a * LD16(x + j));
    for (; j < k; j++)
        y[j] += a * x[j];
}

/* p = r + beta p */
static inline void
xpbyf(const float *r, float beta, float *p, int64_t k)
{
    int64_t j = 0;

    for (; j + 16 <= k; j += 16)
        ST16(p + j, LD16(r + j) + beta * LD16(p + j));
    for (; j < k; j++)
        p[j] = r[j] + beta * p[j];
}

/* out = -(out + lam x) */
static inline void
neg_axpyf(float lam, const float *x, float *out, int64_t k)
{
    int64_t j = 0;

    for (; j + 16 <= k; j += 16)
        ST16(out + j, -(LD16(out + j) + lam * LD16(x + j)));
    for (; j < k; j++)
        out[j] = -(out[j] + lam * x[j]);
}

/* LANES_SUM of four rows at once: each level adds the pairs it adds,
 * (0+1)(2+3)(4+5)(6+7), then their pairs, then the last two, for all four
 * rows in one vector, so every row's sum has the same bits as LANES_SUM
 * gives and a quarter of its shuffles. A macro, as the loads: a function
 * taking vectors would change its ABI with each clone. */
#define EVEN8(a, b) __builtin_shufflevector(a, b, 0, 2, 4, 6, 8, 10, 12, 14)
#define ODD8(a, b) __builtin_shufflevector(a, b, 1, 3, 5, 7, 9, 11, 13, 15)
#define SUM4_LANES(s0, s1, s2, s3, out)                                        \
    do {                                                                       \
        v8f p01_ = EVEN8(s0, s1) + ODD8(s0, s1);                               \
        v8f p23_ = EVEN8(s2, s3) + ODD8(s2, s3);                               \
        v8f q_ = EVEN8(p01_, p23_) + ODD8(p01_, p23_);                         \
        v8f r_ = EVEN8(q_, q_) + ODD8(q_, q_);                                 \
        (out)[0] = r_[0];                                                      \
        (out)[1] = r_[1];                                                      \
        (out)[2] = r_[2];                                                      \
        (out)[3] = r_[3];                                                      \
    } while (0)

/* t[i] = Y[i] . v for n rows given by pointer (the other side's factors
 * are read in place, not gathered). Eight rows at a time share the loads
 * of v and keep eight chains of adds in flight (four left the adders
 * waiting on each other); each row's sum is dotf's. */
SW_CLONES static void
rows_dot_wide(const float *const *Y, int64_t n, int64_t k, const float *v,
              float *t)
{
    int64_t i = 0, j;

    for (; i + 8 <= n; i += 8) {
        const float *a0 = Y[i], *a1 = Y[i + 1], *a2 = Y[i + 2], *a3 = Y[i + 3];
        const float *a4 = Y[i + 4], *a5 = Y[i + 5], *a6 = Y[i + 6],
                    *a7 = Y[i + 7];
        v8f s0 = {0}, s1 = {0}, s2 = {0}, s3 = {0};
        v8f s4 = {0}, s5 = {0}, s6 = {0}, s7 = {0};

        for (j = 0; j + 8 <= k; j += 8) {
            v8f vv = LD8(v + j);

            s0 += LD8(a0 + j) * vv;
            s1 += LD8(a1 + j) * vv;
            s2 += LD8(a2 + j) * vv;
            s3 += LD8(a3 + j) * vv;
            s4 += LD8(a4 + j) * vv;
            s5 += LD8(a5 + j) * vv;
            s6 += LD8(a6 + j) * vv;
            s7 += LD8(a7 + j) * vv;
        }
        for (; j < k; j++) {
            s0[0] += a0[j] * v[j];
            s1[0] += a1[j] * v[j];
            s2[0] += a2[j] * v[j];
            s3[0] += a3[j] * v[j];
            s4[0] += a4[j] * v[j];
            s5[0] += a5[j] * v[j];
            s6[0] += a6[j] * v[j];
            s7[0] += a7[j] * v[j];
        }
        SUM4_LANES(s0, s1, s2, s3, t + i);
        SUM4_LANES(s4, s5, s6, s7, t + i + 4);
    }
    /* four rows, then one at a time: dotf for all of the last seven was
     * 1.4% slower a sweep at 2M, and padding the last pass to eight rows
     * 6% slower (7 alternating pairs each) */
    for (; i + 4 <= n; i += 4) {
        const float *a0 = Y[i], *a1 = Y[i + 1], *a2 = Y[i + 2], *a3 = Y[i + 3];
        v8f s0 = {0}, s1 = {0}, s2 = {0}, s3 = {0};

        for (j = 0; j + 8 <= k; j += 8) {
            v8f vv = LD8(v + j);

            s0 += LD8(a0 + j) * vv;
            s1 += LD8(a1 + j) * vv;
            s2 += LD8(a2 + j) * vv;
            s3 += LD8(a3 + j) * vv;
        }
        for (; j < k; j++) {
            s0[0] += a0[j] * v[j];
            s1[0] += a1[j] * v[j];
            s2[0] += a2[j] * v[j];
            s3[0] += a3[j] * v[j];
        }
        SUM4_LANES(s0, s1, s2, s3, t + i);
    }
    for (; i < n; i++)
        t[i] = dotf(Y[i], v, k);
}

/* out += sum_i w[i] Y[i], rows in order: four vectors of outputs stay in
 * registers across all the rows, then one vector at a time, then one
 * output; each output still adds the rows in order i = 0, 1, ... One body
 * for three widths (VT, of W lanes), as the registers an instruction set
 * has decide the width that stays in them: GCC keeps 16-lane vectors in
 * memory without AVX-512 (1.12 CPU-s a sweep at 2M on AVX2 against 0.13)
 * and 8-lane ones without AVX2. The same products in the same order at
 * every width, so the same bits. */
#define ROWS_AXPY(name, VT, W)                                                 \
    static void name(const float *const *Y, int64_t n, int64_t k,             \
                     const float *w, float *out)                               \
    {                                                                          \
        int64_t i, j0 = 0, j;                                                  \
                                                                               \
        for (; j0 + 4 * (W) <= k; j0 += 4 * (W)) {                             \
            VT a0 = *(const VT *)(out + j0);                                   \
            VT a1 = *(const VT *)(out + j0 + (W));                             \
            VT a2 = *(const VT *)(out + j0 + 2 * (W));                         \
            VT a3 = *(const VT *)(out + j0 + 3 * (W));                         \
                                                                               \
            for (i = 0; i < n; i++) {                                          \
                const float *y = Y[i] + j0;                                    \
                float wi = w[i];                                               \
                                                                               \
                a0 += wi * *(const VT *)y;                                     \
                a1 += wi * *(const VT *)(y + (W));                             \
                a2 += wi * *(const VT *)(y + 2 * (W));                         \
                a3 += wi * *(const VT *)(y + 3 * (W));                         \
            }                                                                  \
            *(VT *)(out + j0) = a0;                                            \
            *(VT *)(out + j0 + (W)) = a1;                                      \
            *(VT *)(out + j0 + 2 * (W)) = a2;                                  \
            *(VT *)(out + j0 + 3 * (W)) = a3;                                  \
        }                                                                      \
        for (; j0 + (W) <= k; j0 += (W)) {                                     \
            VT a0 = *(const VT *)(out + j0);                                   \
                                                                               \
            for (i = 0; i < n; i++)                                            \
                a0 += w[i] * *(const VT *)(Y[i] + j0);                         \
            *(VT *)(out + j0) = a0;                                            \
        }                                                                      \
        for (j = j0; j < k; j++) {                                             \
            float acc = out[j];                                                \
                                                                               \
            for (i = 0; i < n; i++)                                            \
                acc += w[i] * Y[i][j];                                         \
            out[j] = acc;                                                      \
        }                                                                      \
    }

typedef float v4f __attribute__((vector_size(16), aligned(4), may_alias));

#define LD4(p) (*(const v4f *)(p))

SW_TARGET("avx512f") ROWS_AXPY(rows_axpy_512, v16f, 16)
SW_TARGET("avx2") ROWS_AXPY(rows_axpy_avx2, v8f, 8)
ROWS_AXPY(rows_axpy_narrow, v4f, 4)

/* The instruction set the kernels below are picked for: 2 AVX-512, 1
 * AVX2, 0 neither (SSE2) - the host's, when built with clones, else the
 * build's. SW_ALS_KERNELS=avx2 or =narrow caps it (as OPENBLAS_CORETYPE
 * picks OpenBLAS's kernels), so that a test can show on one machine that
 * all of them give the same bits. */
int
sw__als_kernel_level(void)
{
    static int level = -1; /* racing threads store the same answer */
    int l = __atomic_load_n(&level, __ATOMIC_RELAXED);

    if (l < 0) {
        const char *env = getenv("SW_ALS_KERNELS");

#if SW_HAVE_CLONES
        __builtin_cpu_init();
        l = __builtin_cpu_supports("avx512f")  ? 2
            : __builtin_cpu_supports("avx2") ? 1
                                               : 0;
#elif defined(__AVX512F__)
        l = 2;
#elif defined(__AVX2__)
        l = 1;
#else
        l = 0;
#endif
        if (env != NULL && strcmp(env, "avx2") == 0 && l > 1)
            l = 1;
        if (env != NULL && strcmp(env, "narrow") == 0)
            l = 0;
        __atomic_store_n(&level, l, __ATOMIC_RELAXED);
    }
    return l;
}

/* rows_dot_wide for hosts without AVX2 (with it, its eight-lane vectors
 * stay in registers): four rows at a time, each row's eight lanes in two
 * four-lane vectors (ten of the sixteen SSE registers with v's two),
 * added up as LANES_SUM does, so the bits are dotf's. */
static void
rows_dot_narrow(const float *const *Y, int64_t n, int64_t k, const float *v,
                float *t)
{
    int64_t i = 0, j;

    for (; i + 4 <= n; i += 4) {
        const float *a0 = Y[i], *a1 = Y[i + 1], *a2 = Y[i + 2], *a3 = Y[i + 3];
        v4f l0 = {0}, l1 = {0}, l2 = {0}, l3 = {0};
        v4f h0 = {0}, h1 = {0}, h2 = {0}, h3 = {0};

        for (j = 0; j + 8 <= k; j += 8) {
            v4f vl = LD4(v + j), vh = LD4(v + j + 4);

            l0 += LD4(a0 + j) * vl;
            h0 += LD4(a0 + j + 4) * vh;
            l1 += LD4(a1 + j) * vl;
            h1 += LD4(a1 + j + 4) * vh;
            l2 += LD4(a2 + j) * vl;
            h2 += LD4(a2 + j + 4) * vh;
            l3 += LD4(a3 + j) * vl;
            h3 += LD4(a3 + j + 4) * vh;
        }
        for (; j < k; j++) {
            l0[0] += a0[j] * v[j];
            l1[0] += a1[j] * v[j];
            l2[0] += a2[j] * v[j];
            l3[0] += a3[j] * v[j];
        }
        t[i] = HALF_SUM(l0, 0) + HALF_SUM(h0, 0);
        t[i + 1] = HALF_SUM(l1, 0) + HALF_SUM(h1, 0);
        t[i + 2] = HALF_SUM(l2, 0) + HALF_SUM(h2, 0);
        t[i + 3] = HALF_SUM(l3, 0) + HALF_SUM(h3, 0);
    }
    for (; i < n; i++)
        t[i] = dotf(Y[i], v, k);
}

static void
rows_dot(const float *const *Y, int64_t n, int64_t k, const float *v, float *t)
{
    if (sw__als_kernel_level() > 0)
        rows_dot_wide(Y, n, k, v, t);
    else
        rows_dot_narrow(Y, n, k, v, t);
}

static void
rows_axpy(const float *const *Y, int64_t n, int64_t k, const float *w,
          float *out)
{
    switch (sw__als_kernel_level()) {
    case 2:
        rows_axpy_512(Y, n, k, w, out);
        break;
    case 1:
        rows_axpy_avx2(Y, n, k, w, out);
        break;
    default:
        rows_axpy_narrow(Y, n, k, w, out);
    }
}

/* out = G v for a symmetric k x k G (row j is column j): its rows as
 * pointers, 64 at a time, added in order. */
static void
symvf(const float *G, const float *v, float *out, int64_t k)
{
    const float *rows[64];
    int64_t j0, j;

    memset(out, 0, (size_t)k * sizeof(float));
    for (j0 = 0; j0 < k; j0 += 64) {
        int64_t m = k - j0 < 64 ? k - j0 : 64;

        for (j = 0; j < m; j++)
            rows[j] = G + (j0 + j) * k;
        rows_axpy(rows, m, k, v + j0, out);
    }
}

/* b += c y, widening y to float64. */
SW_CLONES static void
axpy_wide(double c, const float *y, double *b, int64_t k)
{
    int64_t j;

    for (j = 0; j < k; j++)
        b[j] += c * (double)y[j];
}

/* ------------------------------------------------------------------ */
/* The model                                                            */
/* ------------------------------------------------------------------ */

static sw_als *
als_of(const sw_model *m)
{
    return m != NULL && m->kind == SW_MODEL_ALS ? m->u.als : NULL;
}

static void
als_free(sw_als *a)
{
    if (a == NULL)
        return;
    sw__free(a->X);
    sw__free(a->Y);
    sw__free(a->liked_ptr);
    sw__free(a->liked_idx);
    sw__free(a);
}

/* Fill n floats uniformly in [0, scale) from a splitmix64 stream. */
static void
init_factors(float *f, int64_t n, uint64_t *state, double scale)
{
    int64_t i;

    for (i = 0; i < n; i++) {
        uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);

        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
        z ^= z >> 31;
        f[i] = (float)((double)(z >> 40) * 0x1.0p-24 * scale);
    }
}

static sw_rc
check_sizes(int64_t n_users, int64_t n_items, int64_t k, sw_err *err)
{
    if (n_users < 0 || n_items < 0 || n_users > INT32_MAX ||
        n_items > INT32_MAX)
        return sw__fail(err, SW_E_INVAL,
                        "ALS: %lld users x %lld items, expected 0..%d each",
                        (long long)n_users, (long long)n_items, INT32_MAX);
    if (k < 1 || k > 4096)
        return sw__fail(err, SW_E_INVAL, "als.factors: %lld, expected 1..4096",
                        (long long)k);
    return SW_OK;
}

sw_rc
sw_als_new(const sw_conf *conf, int64_t n_users, int64_t n_items,
           sw_model **out, sw_err *err)
{
    sw_als *a = NULL;
    uint64_t state;
    double scale;
    sw_rc rc;

    *out = NULL;
    if (conf == NULL)
        return sw__fail(err, SW_E_INVAL, "sw_als_new: conf is NULL");
    a = sw__calloc(1, sizeof(*a));
    if (a == NULL) {
        rc = sw__fail(err, SW_E_NOMEM, "ALS: out of memory");
        goto done;
    }
    a->k = (int64_t)sw__conf_num(conf, "als.factors");
    a->reg = sw__conf_num(conf, "als.regularization");
    a->alpha = sw__conf_num(conf, "als.alpha");
    a->solver = sw__conf_choice(conf, "als.solver");
    a->cg_steps = (int64_t)sw__conf_num(conf, "als.cg_steps");
    a->confidence = sw__conf_choice(conf, "als.confidence");
    a->reg_scaling = sw__conf_choice(conf, "als.reg_scaling");
    a->explicit_ = sw__conf_choice(conf, "als.explicit");
    a->seed = (uint64_t)sw__conf_num(conf, "als.seed");
    a->threads = (int)sw__conf_num(conf, "als.threads");
    a->n_users = n_users;
    a->n_items = n_items;
    rc = check_sizes(n_users, n_items, a->k, err);
    if (rc != SW_OK)
        goto done;
    a->X = sw__alloc_array((size_t)(n_users * a->k), sizeof(float));
    a->Y = sw__alloc_array((size_t)(n_items * a->k), sizeof(float));
    if (a->X == NULL || a->Y == NULL) {
        rc = sw__fail(err, SW_E_NOMEM, "ALS: no memory for %lld x %lld factors",
                      (long long)(n_users + n_items), (long long)a->k);
        goto done;
    }
    scale = sw__conf_num(conf, "als.init_scale");
    if (scale == 0)
        scale = a->explicit_ ? 0.1 : 0.01;
    state = a->seed;
    init_factors(a->X, n_users * a->k, &state, scale);
    init_factors(a->Y, n_items * a->k, &state, scale);
    rc = sw__model_wrap(SW_MODEL_ALS, a, out, err);
    a = NULL; /* the model's now, or freed */
done:
    als_free(a);
    return rc;
}

int64_t
sw_als_n_users(const sw_model *m)
{
    const sw_als *a = als_of(m);

    return a ? a->n_users : 0;
}

int64_t
sw_als_n_items(const sw_model *m)
{
    const sw_als *a = als_of(m);

    return a ? a->n_items : 0;
}

int64_t
sw_als_n_factors(const sw_model *m)
{
    const sw_als *a = als_of(m);

    return a ? a->k : 0;
}

int
sw__als_threads(const sw_als *a)
{
    return a->threads > 0 ? a->threads : sw__n_cpus();
}

/* ------------------------------------------------------------------ */
/* Checking interactions                                                */
/* ------------------------------------------------------------------ */

/* A CSR view of n_rows x n_cols interactions: shape, indices in range,
 * finite values, and (implicit) no negative values. */
sw_rc
sw__als_check_csr(const sw_als *a, const sw_rows *x, int64_t n_rows,
                  int64_t n_cols, const char *what, sw_err *err)
{
    int64_t i, e;
    sw_rc rc;

    if (x == NULL || x->layout != SW_CSR)
        return sw__fail(err, SW_E_INVAL, "%s: expected a CSR matrix", what);
    rc = sw_rows_check(x, err);
    if (rc != SW_OK)
        return rc;
    if ((n_rows >= 0 && x->n_rows != n_rows) || x->n_cols != n_cols)
        return sw__fail(
            err, SW_E_SHAPE, "%s: %lld x %lld, the model expects %lld x %lld",
            what, (long long)x->n_rows, (long long)x->n_cols,
            (long long)(n_rows >= 0 ? n_rows : x->n_rows), (long long)n_cols);
    for (i = 0; i < x->n_rows; i++) {
        for (e = sw__csr_ptr(x, i); e < sw__csr_ptr(x, i + 1); e++) {
            double v = sw__csr_val(x, e);

            if (!isfinite(v))
                return sw__fail(err, SW_E_NUMERIC,
                                "%s: row %lld, column %lld: value is %g", what,
                                (long long)i, (long long)sw__csr_col(x, e), v);
            if (!a->explicit_ && v < 0)
                return sw__fail(err, SW_E_INVAL,
                                "%s: row %lld, column %lld: %g; implicit "
                                "feedback must be >= 0 (use explicit=True "
                                "for ratings)",
                                what, (long long)i,
                                (long long)sw__csr_col(x, e), v);
        }
    }
    return SW_OK;
}

static inline double
confidence(const sw_als *a, double v)
{
    return a->confidence == CONF_LINEAR ? a->alpha * v : 1.0 + a->alpha * v;
}

static inline double
row_reg(const sw_als *a, int64_t n)
{
    return a->reg_scaling == REG_NU ? a->reg * (double)n : a->reg;
}

/* ------------------------------------------------------------------ */
/* Gram matrix F'F, deterministic                                       */
/* ------------------------------------------------------------------ */

typedef struct gram_job {
    const float *F;
    int64_t n, k;
    double *partial; /* n_chunks x k x k */
} gram_job;

/* P += f f' for rows lo..hi of F: row a of P from column a & ~7 on, so
 * the vectors start on a multiple of eight (the few cells left of the
 * diagonal are never read: sw__als_gram mirrors the upper triangle). Four
 * rows of F to a pass over P; every cell still adds the rows in order. */
SW_CLONES static void
gram_rows(const float *F, int64_t lo, int64_t hi, int64_t k, double *P)
{
    int64_t i = lo, a, b;

    for (; i + 4 <= hi; i += 4) {
        const float *f0 = F + i * k, *f1 = f0 + k, *f2 = f1 + k, *f3 = f2 + k;

        for (a = 0; a < k; a++) {
            double *row = P + a * k;
            double c0 = f0[a], c1 = f1[a], c2 = f2[a], c3 = f3[a];

            for (b = a & ~(int64_t)7; b + 8 <= k; b += 8) {
                v8d r = LD8D(row + b);

                r += c0 * WIDE8(f0 + b);
                r += c1 * WIDE8(f1 + b);
                r += c2 * WIDE8(f2 + b);
                r += c3 * WIDE8(f3 + b);
                ST8D(row + b, r);
            }
            for (; b < k; b++) {
                double r = row[b];

                r += c0 * (double)f0[b];
                r += c1 * (double)f1[b];
                r += c2 * (double)f2[b];
                r += c3 * (double)f3[b];
                row[b] = r;
            }
        }
    }
    for (; i < hi; i++) {
        const float *f = F + i * k;

        for (a = 0; a < k; a++) {
            double *row = P + a * k, c0 = f[a];

            for (b = a & ~(int64_t)7; b + 8 <= k; b += 8)
                ST8D(row + b, LD8D(row + b) + c0 * WIDE8(f + b));
            for (; b < k; b++)
                row[b] += c0 * (double)f[b];
        }
    }
}

static void
gram_chunk(void *ctx, int64_t c, int thread)
{
    gram_job *g = ctx;
    int64_t lo = c * GRAM_CHUNK, hi = lo + GRAM_CHUNK;
    double *P = g->partial + c * g->k * g->k;

    (void)thread;
    if (hi > g->n)
        hi = g->n;
    memset(P, 0, (size_t)(g->k * g->k) * sizeof(double));
    gram_rows(g->F, lo, hi, g->k, P);
}

/* G = F'F (k x k, float64, full symmetric) over n rows of F. */
sw_rc
sw__als_gram(const float *F, int64_t n, int64_t k, int threads, double *G,
             sw_err *err)
{
    int64_t n_chunks = (n + GRAM_CHUNK - 1) / GRAM_CHUNK, c, a, b;
    gram_job g = {F, n, k, NULL};

    memset(G, 0, (size_t)(k * k) * sizeof(double));
    if (n_chunks == 0)
        return SW_OK;
    g.partial = sw__alloc_array((size_t)(n_chunks * k * k), sizeof(double));
    if (g.partial == NULL)
        return sw__fail(err, SW_E_NOMEM, "ALS: no memory for Y'Y");
    sw__parallel(threads, n_chunks, gram_chunk, &g, err);
    for (c = 0; c < n_chunks; c++) {
        const double *P = g.partial + c * k * k;

        for (a = 0; a < k; a++) {
            for (b = a; b < k; b++)
                G[a * k + b] += P[a * k + b];
        }
    }
    for (a = 0; a < k; a++) {
        for (b = 0; b < a; b++)
            G[a * k + b] = G[b * k + a];
    }
    sw__free(g.partial);
    return SW_OK;
}

/* ------------------------------------------------------------------ */
/* Row solvers                                                          */
/* ------------------------------------------------------------------ */

/* Per-thread scratch of a sweep. */
typedef struct solve_tmp {
    float *r, *p, *Ap; /* CG, k each */
    const float **Y;   /* CG: the row's vectors of the other side, in
                        * place (max_n) */
    float *c, *t, *w;  /* CG: their confidences, dots, weights (max_n) */
    double *A, *b, *G; /* Cholesky: k*k, k, SYRK_BLOCK*k */
} solve_tmp;

typedef struct sweep {
    const sw_als *a;
    const sw_rows *R;   /* rows to solve, over the other side */
    float *S;           /* factors being solved (n_rows x k) */
    const float *O;     /* the other side's factors */
    const float *GfR;   /* other side's Gram, float32 (CG) */
    const double *Gd;   /* other side's Gram, float64 (Cholesky) */
    int cholesky;       /* use the Cholesky solver */
    solve_tmp *tmp;     /* one per thread */
    int64_t failed_row; /* atomic: first row whose solve failed */
} sweep;

#define ROWS_BLOCK 32 /* vectors dotted, then added, while in L1 */

/* out += sum_e w_e y_e with w_e = c_e - (c_e - 1)(y_e . v) on the first
 * pass of a row (the residual) and (c_e - 1)(y_e . v) after it (A p).
 * ROWS_BLOCK vectors at a time, so the add reads them from L1 right after
 * the dot; the rows are still added in order, as one rows_axpy would. */
static void
add_rows(solve_tmp *t, int64_t n, int64_t k, const float *v, int first,
         float *out)
{
    int64_t i0, i;

    for (i0 = 0; i0 < n; i0 += ROWS_BLOCK) {
        int64_t m = n - i0 < ROWS_BLOCK ? n - i0 : ROWS_BLOCK;
        const float *c = t->c + i0;
        float *d = t->t + i0, *w = t->w + i0;

        rows_dot(t->Y + i0, m, k, v, d);
        if (first) {
            for (i = 0; i < m; i++)
                w[i] = c[i] - (c[i] - 1.0f) * d[i];
        } else {
            for (i = 0; i < m; i++)
                w[i] = (c[i] - 1.0f) * d[i];
        }
        rows_axpy(t->Y + i0, m, k, w, out);
    }
}

/* CG for one row: the implicit library's recurrence, reading the row's
 * vectors of the other side in place. */
SW_CLONES static void
solve_cg(const sweep *s, int64_t u, solve_tmp *t)
{
    const sw_als *a = s->a;
    const sw_rows *R = s->R;
    int64_t k = a->k, e, it, n = 0;
    int64_t lo = sw__csr_ptr(R, u), hi = sw__csr_ptr(R, u + 1);
    float *x = s->S + u * k, *r = t->r, *p = t->p, *Ap = t->Ap;
    float lam = (float)row_reg(a, hi - lo), rsold, rsnew, alpha;

    if (hi == lo) {
        memset(x, 0, (size_t)k * sizeof(float));
        return;
    }
    for (e = lo; e < hi; e++) {
        double v = sw__csr_val(R, e);

        if (v == 0)
            continue;
        t->Y[n] = s->O + sw__csr_col(R, e) * k;
        t->c[n++] = (float)confidence(a, v);
    }
    /* r = b - A x, with A x = (G + lambda I) x + sum (c - 1) (y.x) y */
    symvf(s->GfR, x, r, k);
    neg_axpyf(lam, x, r, k);
    add_rows(t, n, k, x, 1, r);
    memcpy(p, r, (size_t)k * sizeof(float));
    rsold = dotf(r, r, k);
    if (rsold < 1e-20f)
        return;
    for (it = 0; it < a->cg_steps; it++) {
        symvf(s->GfR, p, Ap, k);
        axpyf(lam, p, Ap, k);
        add_rows(t, n, k, p, 0, Ap);
        alpha = rsold / dotf(p, Ap, k);
        axpyf(alpha, p, x, k);
        axpyf(-alpha, Ap, r, k);
        rsnew = dotf(r, r, k);
        if (rsnew < 1e-20f)
            break;
        xpbyf(r, rsnew / rsold, p, k);
        rsold = rsnew;
    }
}

/* Add sign * sum_e w_e y_e y_e' to A (row-major upper triangle), where the
 * rows are gathered into t->G scaled by sqrt(w_e), SYRK_BLOCK at a time. */
static void
syrk_rows(const sweep *s, solve_tmp *t, const int64_t *cols, const double *w,
          int64_t n, double sign)
{
    int64_t k = s->a->k, i, j;

    for (i = 0; i < n; i++) {
        const float *y = s->O + cols[i] * k;
        double sq = sqrt(w[i]);

        for (j = 0; j < k; j++)
            t->G[i * k + j] = sq * (double)y[j];
    }
    if (n > 0)
        cblas_dsyrk(SW_CBLAS_ROW_MAJOR, SW_CBLAS_UPPER, SW_CBLAS_TRANS, (int)k,
                    (int)n, sign, t->G, (int)k, 1.0, t->A, (int)k);
}

/* Exact solve of one row in float64. Implicit: A = G + lambda I +
 * sum (c - 1) y y', b = sum c y. Explicit: A = sum y y' + lambda I,
 * b = sum r y. Returns 0, or -1 if A is not positive definite. */
static int
solve_cholesky(const sweep *s, int64_t u, solve_tmp *t)
{
    const sw_als *a = s->a;
    const sw_rows *R = s->R;
    int64_t k = a->k, lo = sw__csr_ptr(R, u), hi = sw__csr_ptr(R, u + 1), e, j;
    int64_t cols_pos[SYRK_BLOCK], cols_neg[SYRK_BLOCK];
    double w_pos[SYRK_BLOCK], w_neg[SYRK_BLOCK];
    int64_t n_pos = 0, n_neg = 0;
    float *x = s->S + u * k;
    int n = (int)k, one = 1, info = 0;
    double lam = row_reg(a, hi - lo);

    if (hi == lo) {
        memset(x, 0, (size_t)k * sizeof(float));
        return 0;
    }
    if (a->explicit_)
        memset(t->A, 0, (size_t)(k * k) * sizeof(double));
    else
        memcpy(t->A, s->Gd, (size_t)(k * k) * sizeof(double));
    for (j = 0; j < k; j++)
        t->A[j * k + j] += lam;
    memset(t->b, 0, (size_t)k * sizeof(double));
    for (e = lo; e < hi; e++) {
        double v = sw__csr_val(R, e), c, w;
        int64_t col = sw__csr_col(R, e);
        const float *y = s->O + col * k;

        if (a->explicit_) {
            c = v;
            w = 1.0;
        } else {
            if (v == 0)
                continue;
            c = confidence(a, v);
            w = c - 1.0;
        }
        axpy_wide(c, y, t->b, k);
        if (w > 0) {
            cols_pos[n_pos] = col;
            w_pos[n_pos++] = w;
        } else if (w < 0) {
            cols_neg[n_neg] = col;
            w_neg[n_neg++] = -w;
        }
        if (n_pos == SYRK_BLOCK) {
            syrk_rows(s, t, cols_pos, w_pos, n_pos, 1.0);
            n_pos = 0;
        }
        if (n_neg == SYRK_BLOCK) {
            syrk_rows(s, t, cols_neg, w_neg, n_neg, -1.0);
            n_neg = 0;
        }
    }
    syrk_rows(s, t, cols_pos, w_pos, n_pos, 1.0);
    syrk_rows(s, t, cols_neg, w_neg, n_neg, -1.0);
    /* Row-major upper is column-major lower: LAPACK sees "L". */
    dpotrf_("L", &n, t->A, &n, &info);
    if (info != 0)
        return -1;
    dpotrs_("L", &n, &one, t->A, &n, t->b, &n, &info);
    if (info != 0)
        return -1;
    for (j = 0; j < k; j++)
        x[j] = (float)t->b[j];
    return 0;
}

static void
sweep_chunk(void *ctx, int64_t c, int thread)
{
    sweep *s = ctx;
    int64_t lo = c * ROW_CHUNK, hi = lo + ROW_CHUNK, u;

    if (hi > s->R->n_rows)
        hi = s->R->n_rows;
    for (u = lo; u < hi; u++) {
        if (s->cholesky) {
            if (solve_cholesky(s, u, &s->tmp[thread]) != 0) {
                int64_t none = -1;

                __atomic_compare_exchange_n(&s->failed_row, &none, u, 0,
                                            __ATOMIC_RELAXED, __ATOMIC_RELAXED);
            }
        } else {
            solve_cg(s, u, &s->tmp[thread]);
        }
    }
}

static void
free_scratch(solve_tmp *tmp, int n)
{
    int i;

    for (i = 0; tmp != NULL && i < n; i++) {
        sw__free(tmp[i].r);
        sw__free(tmp[i].p);
        sw__free(tmp[i].Ap);
        sw__free((void *)tmp[i].Y);
        sw__free(tmp[i].c);
        sw__free(tmp[i].t);
        sw__free(tmp[i].w);
        sw__free(tmp[i].A);
        sw__free(tmp[i].b);
        sw__free(tmp[i].G);
    }
    sw__free(tmp);
}

static solve_tmp *
alloc_scratch(int n, int64_t k, int64_t max_n)
{
    solve_tmp *tmp = sw__calloc((size_t)n, sizeof(*tmp));
    int i;

    if (tmp == NULL)
        return NULL;
    for (i = 0; i < n; i++) {
        tmp[i].r = sw__alloc_array((size_t)k, sizeof(float));
        tmp[i].p = sw__alloc_array((size_t)k, sizeof(float));
        tmp[i].Ap = sw__alloc_array((size_t)k, sizeof(float));
        tmp[i].Y = sw__alloc_array((size_t)max_n, sizeof(float *));
        tmp[i].c = sw__alloc_array((size_t)max_n, sizeof(float));
        tmp[i].t = sw__alloc_array((size_t)max_n, sizeof(float));
        tmp[i].w = sw__alloc_array((size_t)max_n, sizeof(float));
        tmp[i].A = sw__alloc_array((size_t)(k * k), sizeof(double));
        tmp[i].b = sw__alloc_array((size_t)k, sizeof(double));
        tmp[i].G = sw__alloc_array((size_t)(SYRK_BLOCK * k), sizeof(double));
        if (!tmp[i].r || !tmp[i].p || !tmp[i].Ap || !tmp[i].Y || !tmp[i].c ||
            !tmp[i].t || !tmp[i].w || !tmp[i].A || !tmp[i].b || !tmp[i].G) {
            free_scratch(tmp, n);
            return NULL;
        }
    }
    return tmp;
}

/* Solve every row of R (rows of S) against O. cholesky selects the exact
 * solver; the CG solver needs GfR (float32 Gram), Cholesky Gd. */
sw_rc
sw__als_solve_side(const sw_als *a, const sw_rows *R, float *S, const float *O,
                   int64_t n_other, int cholesky, int threads, sw_err *err)
{
    sweep s;
    double *Gd = NULL;
    float *Gf = NULL;
    int64_t k = a->k, j, n_chunks = (R->n_rows + ROW_CHUNK - 1) / ROW_CHUNK;
    int blas_threads = openblas_get_num_threads();
    sw_rc rc;

    memset(&s, 0, sizeof(s));
    s.failed_row = -1;
    Gd = sw__alloc_array((size_t)(k * k), sizeof(double));
    Gf = sw__alloc_array((size_t)(k * k), sizeof(float));
    s.tmp = alloc_scratch(threads, k, sw__rows_max_row(R) + 1);
    if (Gd == NULL || Gf == NULL || s.tmp == NULL) {
        rc = sw__fail(err, SW_E_NOMEM, "ALS: out of memory for a sweep");
        goto done;
    }
    if (!a->explicit_) {
        rc = sw__als_gram(O, n_other, k, threads, Gd, err);
        if (rc != SW_OK)
            goto done;
    }
    for (j = 0; j < k * k; j++)
        Gf[j] = (float)Gd[j];
    s.a = a;
    s.R = R;
    s.S = S;
    s.O = O;
    s.GfR = Gf;
    s.Gd = Gd;
    s.cholesky = cholesky || a->explicit_;
    openblas_set_num_threads(1);
    sw__parallel(threads, n_chunks, sweep_chunk, &s, err);
    openblas_set_num_threads(blas_threads);
    if (s.failed_row >= 0) {
        rc = sw__fail(err, SW_E_NUMERIC,
                      "ALS: the system of row %lld is not positive definite; "
                      "raise als.regularization",
                      (long long)s.failed_row);
        goto done;
    }
    rc = SW_OK;
done:
    free_scratch(s.tmp, threads);
    sw__free(Gd);
    sw__free(Gf);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Loss                                                                 */
/* ------------------------------------------------------------------ */

typedef struct loss_job {
    const sw_als *a;
    const sw_rows *R;
    const float *Gf;
    float *tmp;   /* threads x k */
    double *part; /* n_chunks x 3: loss, confidence, penalty */
} loss_job;

static void
loss_chunk(void *ctx, int64_t c, int thread)
{
    loss_job *L = ctx;
    const sw_als *a = L->a;
    const sw_rows *R = L->R;
    int64_t k = a->k, lo = c * ROW_CHUNK, hi = lo + ROW_CHUNK, u, e;
    double loss = 0, conf = 0, pen = 0;
    float *r = L->tmp + (int64_t)thread * k;

    if (hi > R->n_rows)
        hi = R->n_rows;
    for (u = lo; u < hi; u++) {
        const float *x = a->X + u * k;
        int64_t n_u = sw__csr_ptr(R, u + 1) - sw__csr_ptr(R, u);

        if (a->explicit_) {
            for (e = sw__csr_ptr(R, u); e < sw__csr_ptr(R, u + 1); e++) {
                double d = sw__csr_val(R, e) -
                           (double)dotf(x, a->Y + sw__csr_col(R, e) * k, k);

                loss += d * d;
            }
        } else {
            /* x'(Y'Y)x + sum c (1 - y.x)^2 - (y.x)^2, the implicit
             * library's form of sum over all items of c (p - x.y)^2 */
            symvf(L->Gf, x, r, k);
            for (e = sw__csr_ptr(R, u); e < sw__csr_ptr(R, u + 1); e++) {
                double v = sw__csr_val(R, e), cf, yx;

                if (v == 0)
                    continue;
                cf = confidence(a, v);
                yx = dotf(a->Y + sw__csr_col(R, e) * k, x, k);
                loss += cf * (1.0 - yx) * (1.0 - yx) - yx * yx;
                conf += cf;
            }
            loss += dotf(r, x, k);
        }
        pen += row_reg(a, n_u) * (double)dotf(x, x, k);
    }
    L->part[3 * c] = loss;
    L->part[3 * c + 1] = conf;
    L->part[3 * c + 2] = pen;
}

/* The loss of the current factors on user_items (see sw_als_iterate);
 * item_users supplies the items' penalty counts for reg_scaling n_u. */
sw_rc
sw__als_loss_of(const sw_als *a, const sw_rows *R, const sw_rows *RT,
                int threads, double *out, sw_err *err)
{
    int64_t k = a->k, n_chunks = (R->n_rows + ROW_CHUNK - 1) / ROW_CHUNK;
    int64_t c, i, nnz = 0;
    loss_job L = {a, R, NULL, NULL, NULL};
    double *G = NULL, loss = 0, conf = 0, pen = 0;
    sw_rc rc;

    G = sw__alloc_array((size_t)(k * k), sizeof(double));
    L.Gf = sw__alloc_array((size_t)(k * k), sizeof(float));
    L.tmp = sw__alloc_array((size_t)(threads * k), sizeof(float));
    L.part = sw__calloc((size_t)(3 * (n_chunks + 1)), sizeof(double));
    if (G == NULL || L.Gf == NULL || L.tmp == NULL || L.part == NULL) {
        rc = sw__fail(err, SW_E_NOMEM, "ALS: out of memory for the loss");
        goto done;
    }
    rc = sw__als_gram(a->Y, a->n_items, k, threads, G, err);
    if (rc != SW_OK)
        goto done;
    for (i = 0; i < k * k; i++)
        ((float *)L.Gf)[i] = (float)G[i];
    sw__parallel(threads, n_chunks, loss_chunk, &L, err);
    for (c = 0; c < n_chunks; c++) {
        loss += L.part[3 * c];
        conf += L.part[3 * c + 1];
        pen += L.part[3 * c + 2];
    }
    for (i = 0; i < a->n_items; i++) {
        int64_t n_i = sw__csr_ptr(RT, i + 1) - sw__csr_ptr(RT, i);

        pen += row_reg(a, n_i) * (double)dotf(a->Y + i * k, a->Y + i * k, k);
    }
    for (i = 0; i < R->n_rows; i++)
        nnz += sw__csr_ptr(R, i + 1) - sw__csr_ptr(R, i);
    if (a->explicit_)
        *out = nnz > 0 ? (loss + pen) / (double)nnz : 0.0;
    else
        *out = (loss + pen) /
               (conf + (double)a->n_users * (double)a->n_items - (double)nnz);
    rc = SW_OK;
done:
    sw__free(G);
    sw__free((void *)L.Gf);
    sw__free(L.tmp);
    sw__free(L.part);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Training                                                             */
/* ------------------------------------------------------------------ */

sw_rc
sw_als_iterate(sw_model *m, const sw_rows *user_items,
               const sw_rows *item_users, double *loss, sw_err *err)
{
    sw_als *a = als_of(m);
    int threads;
    sw_rc rc;

    if (a == NULL)
        return sw__fail(err, SW_E_INVAL, "iterate: not an ALS model");
    rc = sw__als_check_csr(a, user_items, a->n_users, a->n_items, "user_items",
                           err);
    if (rc == SW_OK)
        rc = sw__als_check_csr(a, item_users, a->n_items, a->n_users,
                               "item_users", err);
    if (rc != SW_OK)
        return rc;
    threads = sw__als_threads(a);
    rc = sw__als_solve_side(a, user_items, a->X, a->Y, a->n_items,
                            a->solver == SOLVER_CHOLESKY, threads, err);
    if (rc == SW_OK)
        rc = sw__als_solve_side(a, item_users, a->Y, a->X, a->n_users,
                                a->solver == SOLVER_CHOLESKY, threads, err);
    if (rc != SW_OK)
        return rc;
    a->iterations++;
    if (loss != NULL)
        rc = sw__als_loss_of(a, user_items, item_users, threads, loss, err);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Factors in and out, fold-in                                          */
/* ------------------------------------------------------------------ */

static sw_rc
side_of(const sw_als *a, int side, float **F, int64_t *n, sw_err *err)
{
    if (side != SW_USERS && side != SW_ITEMS)
        return sw__fail(err, SW_E_INVAL,
                        "ALS: side %d, expected 0 (users) "
                        "or 1 (items)",
                        side);
    *F = side == 0 ? a->X : a->Y;
    *n = side == 0 ? a->n_users : a->n_items;
    return SW_OK;
}

sw_rc
sw_als_get_factors(const sw_model *m, sw_side side, float *out, int64_t n,
                   sw_err *err)
{
    const sw_als *a = als_of(m);
    float *F = NULL;
    int64_t rows = 0;
    sw_rc rc;

    if (a == NULL)
        return sw__fail(err, SW_E_INVAL, "factors: not an ALS model");
    rc = side_of(a, side, &F, &rows, err);
    if (rc != SW_OK)
        return rc;
    if (n != rows * a->k)
        return sw__fail(err, SW_E_SHAPE, "factors: %lld values, expected %lld",
                        (long long)n, (long long)(rows * a->k));
    memcpy(out, F, (size_t)n * sizeof(float));
    return SW_OK;
}

sw_rc
sw_als_set_factors(sw_model *m, sw_side side, const float *in, int64_t n,
                   sw_err *err)
{
    sw_als *a = als_of(m);
    float *F = NULL;
    int64_t rows = 0, i;
    sw_rc rc;

    if (a == NULL)
        return sw__fail(err, SW_E_INVAL, "factors: not an ALS model");
    rc = side_of(a, side, &F, &rows, err);
    if (rc != SW_OK)
        return rc;
    if (n != rows * a->k)
        return sw__fail(err, SW_E_SHAPE, "factors: %lld values, expected %lld",
                        (long long)n, (long long)(rows * a->k));
    for (i = 0; i < n; i++) {
        if (!isfinite(in[i]))
            return sw__fail(err, SW_E_NUMERIC, "factors: value %lld is %g",
                            (long long)i, (double)in[i]);
    }
    memcpy(F, in, (size_t)n * sizeof(float));
    return SW_OK;
}

sw_rc
sw_als_solve_rows(const sw_model *m, sw_side side, const sw_rows *rows, float *out,
                  int64_t n_out, sw_err *err)
{
    const sw_als *a = als_of(m);
    float *O = NULL;
    int64_t n_other = 0;
    sw_rc rc;

    if (a == NULL)
        return sw__fail(err, SW_E_INVAL, "fold-in: not an ALS model");
    rc = side_of(a, 1 - side, &O, &n_other, err);
    if (rc != SW_OK)
        return rc;
    /* Rows may be narrower than the other side: ids beyond their width
     * (added since) simply have no interactions in them. */
    rc = sw__als_check_csr(a, rows, -1, rows ? rows->n_cols : 0, "fold-in rows",
                           err);
    if (rc != SW_OK)
        return rc;
    if (rows->n_cols > n_other)
        return sw__fail(err, SW_E_SHAPE,
                        "fold-in rows: %lld columns, the model has %lld %s",
                        (long long)rows->n_cols, (long long)n_other,
                        side == 0 ? "items" : "users");
    if (n_out != rows->n_rows * a->k)
        return sw__fail(err, SW_E_SHAPE,
                        "fold-in: output holds %lld values, "
                        "expected %lld",
                        (long long)n_out, (long long)(rows->n_rows * a->k));
    return sw__als_solve_side(a, rows, out, O, n_other, 1, sw__als_threads(a),
                              err);
}

sw_rc
sw_als_solve_block(const sw_model *m, const sw_rows *rows, const float *other,
                   int64_t n_other, float *factors, int64_t n, sw_err *err)
{
    const sw_als *a = als_of(m);
    int64_t i;
    sw_rc rc;

    if (a == NULL)
        return sw__fail(err, SW_E_INVAL, "solve_block: not an ALS model");
    if (other == NULL || factors == NULL || n_other < 0)
        return sw__fail(err, SW_E_INVAL, "solve_block: NULL factors");
    rc = sw__als_check_csr(a, rows, -1, n_other, "solve_block rows", err);
    if (rc != SW_OK)
        return rc;
    if (n != rows->n_rows * a->k)
        return sw__fail(err, SW_E_SHAPE,
                        "solve_block: %lld factor values for %lld rows of "
                        "%lld factors",
                        (long long)n, (long long)rows->n_rows, (long long)a->k);
    for (i = 0; i < n_other * a->k; i++) {
        if (!isfinite(other[i]))
            return sw__fail(err, SW_E_NUMERIC,
                            "solve_block: other side's value %lld is %g",
                            (long long)i, (double)other[i]);
    }
    return sw__als_solve_side(a, rows, factors, other, n_other,
                              a->solver == SOLVER_CHOLESKY, sw__als_threads(a),
                              err);
}

sw_rc
sw_als_put_rows(sw_model *m, sw_side side, const int64_t *ids, int64_t n,
                const float *vecs, sw_err *err)
{
    sw_als *a = als_of(m);
    int64_t i, top = -1, rows, k;
    float **F, *grown;

    if (a == NULL)
        return sw__fail(err, SW_E_INVAL, "put_rows: not an ALS model");
    if (side != SW_USERS && side != SW_ITEMS)
        return sw__fail(err, SW_E_INVAL, "put_rows: side %d", side);
    k = a->k;
    F = side == 0 ? &a->X : &a->Y;
    rows = side == 0 ? a->n_users : a->n_items;
    for (i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= INT32_MAX)
            return sw__fail(err, SW_E_INVAL, "put_rows: id %lld out of range",
                            (long long)ids[i]);
        if (ids[i] > top)
            top = ids[i];
    }
    for (i = 0; i < n * k; i++) {
        if (!isfinite(vecs[i]))
            return sw__fail(err, SW_E_NUMERIC, "put_rows: value %lld is %g",
                            (long long)i, (double)vecs[i]);
    }
    if (side == 0 && a->liked_ptr != NULL && top >= a->liked_rows) {
        /* new users have no kept interactions: empty rows */
        int64_t *p =
            sw__realloc_array(a->liked_ptr, (size_t)(top + 2), sizeof(int64_t));

        if (p == NULL)
            return sw__fail(err, SW_E_NOMEM, "put_rows: out of memory");
        for (i = a->liked_rows + 1; i <= top + 1; i++)
            p[i] = p[a->liked_rows];
        a->liked_ptr = p;
        a->liked_rows = top + 1;
    }
    if (top >= rows) {
        grown = sw__realloc_array(*F, (size_t)((top + 1) * k), sizeof(float));
        if (grown == NULL)
            return sw__fail(err, SW_E_NOMEM,
                            "put_rows: no memory to grow to "
                            "%lld rows",
                            (long long)(top + 1));
        memset(grown + rows * k, 0,
               (size_t)((top + 1 - rows) * k) * sizeof(float));
        *F = grown;
        if (side == 0)
            a->n_users = top + 1;
        else
            a->n_items = top + 1;
    }
    for (i = 0; i < n; i++)
        memcpy(*F + ids[i] * k, vecs + i * k, (size_t)k * sizeof(float));
    return SW_OK;
}

/* ------------------------------------------------------------------ */
/* Liked interactions kept in the model                                 */
/* ------------------------------------------------------------------ */

sw_rc
sw_als_set_liked(sw_model *m, const sw_rows *x, sw_err *err)
{
    sw_als *a = als_of(m);
    int64_t *ptr = NULL, i, e, nnz;
    int32_t *idx = NULL;
    sw_rc rc;

    if (a == NULL)
        return sw__fail(err, SW_E_INVAL, "set_liked: not an ALS model");
    if (x == NULL || x->layout != SW_CSR)
        return sw__fail(err, SW_E_INVAL, "set_liked: expected a CSR matrix");
    rc = sw_rows_check(x, err);
    if (rc != SW_OK)
        return rc;
    if (x->n_rows != a->n_users || x->n_cols != a->n_items)
        return sw__fail(err, SW_E_SHAPE,
                        "set_liked: %lld x %lld, the model is %lld x %lld",
                        (long long)x->n_rows, (long long)x->n_cols,
                        (long long)a->n_users, (long long)a->n_items);
    nnz = sw__csr_ptr(x, x->n_rows) - sw__csr_ptr(x, 0);
    ptr = sw__alloc_array((size_t)(x->n_rows + 1), sizeof(int64_t));
    idx = sw__alloc_array((size_t)(nnz ? nnz : 1), sizeof(int32_t));
    if (ptr == NULL || idx == NULL) {
        sw__free(ptr);
        sw__free(idx);
        return sw__fail(err, SW_E_NOMEM, "set_liked: out of memory");
    }
    ptr[0] = 0;
    for (i = 0; i < x->n_rows; i++) {
        int64_t n = 0;

        for (e = sw__csr_ptr(x, i); e < sw__csr_ptr(x, i + 1); e++)
            idx[ptr[i] + n++] = (int32_t)sw__csr_col(x, e);
        ptr[i + 1] = ptr[i] + n;
    }
    sw__free(a->liked_ptr);
    sw__free(a->liked_idx);
    a->liked_ptr = ptr;
    a->liked_idx = idx;
    a->liked_rows = x->n_rows;
    return SW_OK;
}

int
sw_als_has_liked(const sw_model *m)
{
    const sw_als *a = als_of(m);

    return a != NULL && a->liked_ptr != NULL;
}

/* ------------------------------------------------------------------ */
/* Copies, scoring pairs, the MODEL section                             */
/* ------------------------------------------------------------------ */

static sw_rc
als_dup(const sw_als *a, sw_als **out, sw_err *err)
{
    sw_als *c = NULL;
    int64_t nnz = a->liked_ptr ? a->liked_ptr[a->liked_rows] : 0;

    *out = NULL;
    c = sw__calloc(1, sizeof(*c));
    if (c == NULL)
        return sw__fail(err, SW_E_NOMEM, "ALS: out of memory");
    *c = *a;
    c->X = c->Y = NULL;
    c->liked_ptr = NULL;
    c->liked_idx = NULL;
    c->X = sw__alloc_array((size_t)(a->n_users * a->k), sizeof(float));
    c->Y = sw__alloc_array((size_t)(a->n_items * a->k), sizeof(float));
    if (a->liked_ptr != NULL) {
        c->liked_ptr =
            sw__alloc_array((size_t)(a->liked_rows + 1), sizeof(int64_t));
        c->liked_idx =
            sw__alloc_array((size_t)(nnz ? nnz : 1), sizeof(int32_t));
    }
    if (c->X == NULL || c->Y == NULL ||
        (a->liked_ptr != NULL &&
         (c->liked_ptr == NULL || c->liked_idx == NULL))) {
        als_free(c);
        return sw__fail(err, SW_E_NOMEM, "ALS: out of memory");
    }
    memcpy(c->X, a->X, (size_t)(a->n_users * a->k) * sizeof(float));
    memcpy(c->Y, a->Y, (size_t)(a->n_items * a->k) * sizeof(float));
    if (a->liked_ptr != NULL) {
        memcpy(c->liked_ptr, a->liked_ptr,
               (size_t)(a->liked_rows + 1) * sizeof(int64_t));
        memcpy(c->liked_idx, a->liked_idx, (size_t)nnz * sizeof(int32_t));
    }
    *out = c;
    return SW_OK;
}

/* Score (user, item) pairs given as rows of two columns. */
static sw_rc
als_predict(const sw_als *a, const sw_rows *x, double *out, int64_t n_out,
            sw_err *err)
{
    sw_scratch scratch = {0};
    int64_t i;
    sw_rc rc;

    rc = sw__rows_check_shape(x, 2, err);
    if (rc != SW_OK)
        goto done;
    if (x->layout != SW_DENSE) {
        rc = sw__fail(err, SW_E_INVAL,
                      "ALS predict: rows must be dense "
                      "(user, item) pairs");
        goto done;
    }
    if (n_out != x->n_rows) {
        rc = sw__fail(err, SW_E_SHAPE,
                      "ALS predict: output holds %lld "
                      "values, expected %lld",
                      (long long)n_out, (long long)x->n_rows);
        goto done;
    }
    for (i = 0; i < x->n_rows; i++) {
        sw_row row;
        double u, it;
        float s = 0.0f;
        int64_t j;

        rc = sw__row_get(x, i, &row, &scratch, err);
        if (rc != SW_OK)
            goto done;
        u = row.val[0];
        it = row.val[1];
        if (!(u >= 0 && u < (double)a->n_users && u == floor(u)) ||
            !(it >= 0 && it < (double)a->n_items && it == floor(it))) {
            rc = sw__fail(err, SW_E_INVAL,
                          "row %lld: (user %g, item %g) outside %lld users x "
                          "%lld items",
                          (long long)i, u, it, (long long)a->n_users,
                          (long long)a->n_items);
            goto done;
        }
        /* sequential in factor order: the bits sw_als_recommend gives */
        for (j = 0; j < a->k; j++)
            s += a->X[(int64_t)u * a->k + j] * a->Y[(int64_t)it * a->k + j];
        out[i] = s;
    }
    rc = SW_OK;
done:
    sw__scratch_free(&scratch);
    return rc;
}

/* Layout: u32 explicit, solver, confidence, reg_scaling; f64 reg, alpha;
 * u64 k, cg_steps, seed, iterations, n_users, n_items; f32 X, f32 Y (as
 * u32 bit patterns); u64 liked rows (0: none), then u64 indptr[rows + 1]
 * and u32 indices[nnz]. */
static sw_rc
als_write(const sw_als *a, sw_buf *b, sw_err *err)
{
    const double par[2] = {a->reg, a->alpha};
    int64_t i, n;
    sw_rc rc;

    if ((rc = sw__buf_put_u32(b, (uint32_t)a->explicit_, err)) != SW_OK ||
        (rc = sw__buf_put_u32(b, (uint32_t)a->solver, err)) != SW_OK ||
        (rc = sw__buf_put_u32(b, (uint32_t)a->confidence, err)) != SW_OK ||
        (rc = sw__buf_put_u32(b, (uint32_t)a->reg_scaling, err)) != SW_OK ||
        (rc = sw__buf_put_f64s(b, par, 2, err)) != SW_OK ||
        (rc = sw__buf_put_u64(b, (uint64_t)a->k, err)) != SW_OK ||
        (rc = sw__buf_put_u64(b, (uint64_t)a->cg_steps, err)) != SW_OK ||
        (rc = sw__buf_put_u64(b, a->seed, err)) != SW_OK ||
        (rc = sw__buf_put_u64(b, (uint64_t)a->iterations, err)) != SW_OK ||
        (rc = sw__buf_put_u64(b, (uint64_t)a->n_users, err)) != SW_OK ||
        (rc = sw__buf_put_u64(b, (uint64_t)a->n_items, err)) != SW_OK)
        return rc;
    n = (a->n_users + a->n_items) * a->k;
    for (i = 0; i < n; i++) {
        const float *f =
            i < a->n_users * a->k ? a->X + i : a->Y + (i - a->n_users * a->k);
        uint32_t u;

        memcpy(&u, f, 4);
        if ((rc = sw__buf_put_u32(b, u, err)) != SW_OK)
            return rc;
    }
    /* 0 rows means "no liked items" to the reader: a model of no users
     * writes nothing more (it wrote an indptr the reader did not read) */
    rc = sw__buf_put_u64(b, (uint64_t)(a->liked_ptr ? a->liked_rows : 0), err);
    if (rc != SW_OK || a->liked_ptr == NULL || a->liked_rows == 0)
        return rc;
    for (i = 0; i <= a->liked_rows; i++) {
        if ((rc = sw__buf_put_u64(b, (uint64_t)a->liked_ptr[i], err)) != SW_OK)
            return rc;
    }
    for (i = 0; i < a->liked_ptr[a->liked_rows]; i++) {
        if ((rc = sw__buf_put_u32(b, (uint32_t)a->liked_idx[i], err)) != SW_OK)
            return rc;
    }
    return SW_OK;
}

static sw_rc
als_read(sw_cursor *c, sw_als **out, sw_err *err)
{
    sw_als *a = NULL;
    uint32_t ex, solver, conf, regs;
    uint64_t k, steps, seed, iters, nu, ni, rows;
    double par[2];
    int64_t i, n;
    sw_rc rc;

    *out = NULL;
    a = sw__calloc(1, sizeof(*a));
    if (a == NULL)
        return sw__fail(err, SW_E_NOMEM, "ALS: out of memory");
    if ((rc = sw__cur_u32(c, &ex, err)) != SW_OK ||
        (rc = sw__cur_u32(c, &solver, err)) != SW_OK ||
        (rc = sw__cur_u32(c, &conf, err)) != SW_OK ||
        (rc = sw__cur_u32(c, &regs, err)) != SW_OK ||
        (rc = sw__cur_f64s(c, par, 2, err)) != SW_OK ||
        (rc = sw__cur_u64(c, &k, err)) != SW_OK ||
        (rc = sw__cur_u64(c, &steps, err)) != SW_OK ||
        (rc = sw__cur_u64(c, &seed, err)) != SW_OK ||
        (rc = sw__cur_u64(c, &iters, err)) != SW_OK ||
        (rc = sw__cur_u64(c, &nu, err)) != SW_OK ||
        (rc = sw__cur_u64(c, &ni, err)) != SW_OK)
        goto done;
    if (ex > 1 || solver > 1 || conf > 1 || regs > 1 || !(par[0] >= 0) ||
        !(par[1] > 0) || !isfinite(par[0]) || !isfinite(par[1]) || steps < 1 ||
        steps > 1000 ||
        check_sizes((int64_t)nu, (int64_t)ni, (int64_t)k, err) != SW_OK) {
        rc = sw__fail(err, SW_E_FORMAT, "MODEL: ALS settings out of range");
        goto done;
    }
    a->explicit_ = (int)ex;
    a->solver = (int)solver;
    a->confidence = (int)conf;
    a->reg_scaling = (int)regs;
    a->reg = par[0];
    a->alpha = par[1];
    a->k = (int64_t)k;
    a->cg_steps = (int64_t)steps;
    a->seed = seed;
    a->iterations = (int64_t)iters;
    a->n_users = (int64_t)nu;
    a->n_items = (int64_t)ni;
    n = (a->n_users + a->n_items) * a->k;
    if ((uint64_t)n > (c->len - c->pos) / 4) {
        rc = sw__fail(err, SW_E_FORMAT, "MODEL: truncated in the factors");
        goto done;
    }
    a->X = sw__alloc_array((size_t)(a->n_users * a->k), sizeof(float));
    a->Y = sw__alloc_array((size_t)(a->n_items * a->k), sizeof(float));
    if (a->X == NULL || a->Y == NULL) {
        rc = sw__fail(err, SW_E_NOMEM, "ALS: out of memory");
        goto done;
    }
    for (i = 0; i < n; i++) {
        float *f =
            i < a->n_users * a->k ? a->X + i : a->Y + (i - a->n_users * a->k);
        uint32_t u;

        if ((rc = sw__cur_u32(c, &u, err)) != SW_OK)
            goto done;
        memcpy(f, &u, 4);
        if (!isfinite(*f)) {
            rc = sw__fail(err, SW_E_FORMAT, "MODEL: factor %lld is %g",
                          (long long)i, (double)*f);
            goto done;
        }
    }
    if ((rc = sw__cur_u64(c, &rows, err)) != SW_OK)
        goto done;
    if (rows != 0) {
        if (rows != nu || rows + 1 > (c->len - c->pos) / 8) {
            rc = sw__fail(err, SW_E_FORMAT,
                          "MODEL: liked rows %llu for %llu "
                          "users",
                          (unsigned long long)rows, (unsigned long long)nu);
            goto done;
        }
        a->liked_rows = (int64_t)rows;
        a->liked_ptr = sw__alloc_array((size_t)(rows + 1), sizeof(int64_t));
        if (a->liked_ptr == NULL) {
            rc = sw__fail(err, SW_E_NOMEM, "ALS: out of memory");
            goto done;
        }
        for (i = 0; i <= (int64_t)rows; i++) {
            if ((rc = sw__cur_i64(c, &a->liked_ptr[i], err)) != SW_OK)
                goto done;
            if (a->liked_ptr[i] < (i ? a->liked_ptr[i - 1] : 0) ||
                (i == 0 && a->liked_ptr[0] != 0)) {
                rc = sw__fail(err, SW_E_FORMAT,
                              "MODEL: liked indptr "
                              "decreases");
                goto done;
            }
        }
        n = a->liked_ptr[rows];
        if ((uint64_t)n > (c->len - c->pos) / 4) {
            rc = sw__fail(err, SW_E_FORMAT,
                          "MODEL: truncated in the liked "
                          "items");
            goto done;
        }
        a->liked_idx = sw__alloc_array((size_t)(n ? n : 1), sizeof(int32_t));
        if (a->liked_idx == NULL) {
            rc = sw__fail(err, SW_E_NOMEM, "ALS: out of memory");
            goto done;
        }
        for (i = 0; i < n; i++) {
            uint32_t u;

            if ((rc = sw__cur_u32(c, &u, err)) != SW_OK)
                goto done;
            if (u >= ni) {
                rc = sw__fail(err, SW_E_FORMAT, "MODEL: liked item %u of %llu",
                              u, (unsigned long long)ni);
                goto done;
            }
            a->liked_idx[i] = (int32_t)u;
        }
    }
    *out = a;
    a = NULL;
    rc = SW_OK;
done:
    als_free(a);
    return rc;
}

static void
als_describe(const sw_als *a, FILE *fp)
{
    fprintf(fp, "  learner      ALS, %s feedback, %s solver\n",
            a->explicit_ ? "explicit" : "implicit",
            a->explicit_             ? "Cholesky"
            : a->solver == SOLVER_CG ? "conjugate-gradient"
                                     : "Cholesky");
    fprintf(fp, "  factors      %lld\n", (long long)a->k);
    fprintf(fp, "  users, items %lld x %lld\n", (long long)a->n_users,
            (long long)a->n_items);
    fprintf(fp, "  lambda       %.17g (%s)\n", a->reg,
            a->reg_scaling == REG_NU ? "times n_u" : "fixed");
    if (!a->explicit_)
        fprintf(fp, "  confidence   %s, alpha %.17g\n",
                a->confidence == CONF_LINEAR ? "alpha r" : "1 + alpha r",
                a->alpha);
    fprintf(fp, "  sweeps       %lld (seed %llu)\n", (long long)a->iterations,
            (unsigned long long)a->seed);
    fprintf(fp, "  liked items  %s\n",
            a->liked_ptr ? "kept (recommendations leave them out)"
                         : "not kept");
}

/* Eight (user, item) pairs from a fixed seed, for the golden vectors. */
static sw_rc
als_default_golden(const sw_als *a, sw_rows *x, sw_err *err)
{
    double *data;
    uint64_t s = 0x414c53; /* "ALS" */
    int i;

    memset(x, 0, sizeof(*x));
    data = sw__alloc_array(16, sizeof(double));
    if (data == NULL)
        return sw__fail(err, SW_E_NOMEM, "golden: out of memory");
    for (i = 0; i < 8; i++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        data[2 * i] =
            a->n_users ? (double)((s >> 33) % (uint64_t)a->n_users) : 0;
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        data[2 * i + 1] =
            a->n_items ? (double)((s >> 33) % (uint64_t)a->n_items) : 0;
    }
    x->layout = SW_DENSE;
    x->dtype = SW_F64;
    x->n_rows = a->n_users && a->n_items ? 8 : 0;
    x->n_cols = 2;
    x->row_stride = 2;
    x->data = data;
    return SW_OK;
}

/* ------------------------------------------------------------------ */
/* The ALS kind's methods (sw_model_methods)                            */
/* ------------------------------------------------------------------ */

static void
m_free(void *impl)
{
    als_free(impl);
}

static sw_rc
m_dup(const void *impl, void **out, sw_err *err)
{
    sw_als *c = NULL;
    sw_rc rc = als_dup(impl, &c, err);

    *out = c;
    return rc;
}

static sw_rc
m_predict(const void *impl, const sw_rows *x, double *out, int64_t n_out,
          sw_err *err)
{
    return als_predict(impl, x, out, n_out, err);
}

/* An ALS model scores (user, item) pairs: two features, one output. */
static int64_t
m_n_features(const void *impl)
{
    (void)impl;
    return 2;
}

static int64_t
m_n_outputs(const void *impl)
{
    (void)impl;
    return 1;
}

static int64_t
m_n_classes(const void *impl)
{
    (void)impl;
    return 0;
}

static sw_rc
m_write(const void *impl, sw_buf *b, sw_err *err)
{
    return als_write(impl, b, err);
}

static sw_rc
m_read(sw_cursor *c, void **out, sw_err *err)
{
    sw_als *a = NULL;
    sw_rc rc = als_read(c, &a, err);

    *out = a;
    return rc;
}

static void
m_describe(const void *impl, FILE *fp)
{
    als_describe(impl, fp);
}

static sw_rc
m_default_golden(const void *impl, sw_rows *x, sw_err *err)
{
    return als_default_golden(impl, x, err);
}

const sw_model_methods sw_als_methods = {
    .kind = SW_MODEL_ALS,
    .name = "als",
    .free = m_free,
    .dup = m_dup,
    .predict = m_predict,
    .n_features = m_n_features,
    .n_outputs = m_n_outputs,
    .n_classes = m_n_classes,
    .write = m_write,
    .read = m_read,
    .describe = m_describe,
    .default_golden = m_default_golden,
};
