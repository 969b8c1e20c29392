/* SPDX-License-Identifier: MIT */
/*
 * sw_linear.c - the online linear learners: passive-aggressive and soft
 * confidence-weighted, for binary and multiclass classification, and PA
 * for epsilon-insensitive regression.
 *
 * Passive-aggressive: K. Crammer, O. Dekel, J. Keshet, S. Shalev-Shwartz,
 * Y. Singer, "Online Passive-Aggressive Algorithms", JMLR 7 (2006).
 *   binary        loss l = max(0, 1 - y w.x)                       (Eq. 2)
 *   step tau      PA l/|x|^2, PA-I min(C, l/|x|^2),
 *                 PA-II l/(|x|^2 + 1/(2C))                  (Eqs. 6, 7, 8)
 *   update        w += tau y x                                      (Eq. 5)
 *   regression    l = max(0, |w.x - y| - epsilon),
 *                 w += sign(y - w.x) tau x                 (Sec. 4, Fig. 1)
 *   multiclass    max-score violation r = argmax_{s != y} w_s.x, l = max(0,
 *                 1 - (w_y.x - w_r.x)), |Phi(x,y) - Phi(x,r)|^2 = 2|x|^2,
 *                 w_y += tau x, w_r -= tau x        (Sec. 7, multi-vector)
 *
 * Soft confidence-weighted: J. Wang, P. Zhao, S. C. H. Hoi, "Exact Soft
 * Confidence-Weighted Learning", ICML 2012; LIBOL manual, Algorithm 13.
 * Symbols as in the paper: mu (here w), Sigma (here sigma), phi =
 * Phi^-1(eta), psi = 1 + phi^2/2, zeta = 1 + phi^2, m = y mu.x,
 * v = x' Sigma x.
 *   loss          l = max(0, phi sqrt(v) - m)
 *   SCW-I         alpha = min(C, max(0, (-m psi + sqrt(m^2 phi^4/4
 *                         + v phi^2 zeta)) / (v zeta)))          (Prop. 1)
 *   SCW-II        n = v + 1/(2C), gamma = phi sqrt(phi^2 m^2 v^2
 *                         + 4 n v (n + v phi^2)),
 *                 alpha = max(0, (-(2 m n + phi^2 m v) + gamma)
 *                         / (2 (n^2 + n v phi^2)))                (Prop. 2)
 *   both          u = (-alpha v phi + sqrt(alpha^2 v^2 phi^2 + 4v))^2 / 4,
 *                 beta = alpha phi / (sqrt(u) + v alpha phi),
 *                 mu += alpha y Sigma x, Sigma -= beta Sigma x x' Sigma
 *   (LIBOL's SCW2.m writes phi^4 m^2 v * 2 and n + v phi * 2 where the
 *   paper squares; this file follows the paper, and the tests check it
 *   against python/streamwise/reference.py.)
 *   multiclass    as PA: r = argmax_{s != y} mu_s.x, m = mu_y.x - mu_r.x,
 *                 v = x' Sigma_y x + x' Sigma_r x, mu_y += alpha Sigma_y x,
 *                 mu_r -= alpha Sigma_r x, and each Sigma shrinks by beta
 *                 (Crammer, Dredze, Kulesza 2009, single constraint, with
 *                 the block-diagonal covariance a diagonal one implies).
 * Diagonal covariance keeps one variance per weight, so Sigma x x' Sigma
 * shrinks weight j by beta sigma_j^2 x_j^2; full covariance keeps the
 * (dim x dim) matrix and costs O(dim^2) a row.
 *
 * Documented edge cases: a row whose norm is zero (no intercept, all zeros)
 * carries no information and changes nothing; a row with NaN or infinity
 * stops the call with SW_E_NUMERIC before it is applied. Dot products use
 * four accumulators combined in a fixed order, so every host (Python, the
 * runner, the tests) computes the same bits; no -ffast-math.
 */
#include <math.h>
#include <stdlib.h>

#include "sw_internal.h"

static void lin_free(sw_linear *lin);

enum { TASK_CLASSIFY = 0, TASK_REGRESS = 1 };
enum { ALGO_PA = 0, ALGO_SCW = 1 };
enum { PA_PLAIN = 0, PA_1 = 1, PA_2 = 2 };
enum { SCW_1 = 0, SCW_2 = 1 };

#define MAX_FEATURES INT32_MAX
#define MAX_FULL_DIM 2048

struct sw_linear {
    int task;
    int algo;
    int variant;   /* PA_* or SCW_* */
    int full;      /* SCW with full covariance */
    int intercept; /* weight dim-1 is the intercept (x_dim-1 = 1) */
    double C, epsilon, eta, a;
    double phi; /* SCW: Phi^-1(eta), stored so replays match */
    int64_t n_features;
    int64_t dim; /* n_features + intercept */
    int64_t n_classes;
    int64_t n_vec; /* 1 (binary, regression) or n_classes */
    /* pair (diagonal SCW): weight j of vector v and its variance side by
     * side, w[2(v dim + j)] and sigma[2(v dim + j)], sigma = w + 1 in one
     * allocation: a column's two numbers in one cache line (apart, SCW-I
     * on hashed 2^20 columns learned 2.4 times slower than on 2^16, PA-I
     * no slower). Otherwise w[v dim + j], and sigma apart. */
    int pair;
    double *w;     /* n_vec * dim (twice that with pair) */
    double *sigma; /* SCW: n_vec * dim, or n_vec * dim * dim (full) */
    int64_t n_seen;
    int64_t n_updates;
};

/* ------------------------------------------------------------------ */
/* Kernels                                                              */
/* ------------------------------------------------------------------ */

static double
dot_dense(const double *w, const double *x, int64_t n)
{
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    int64_t k = 0;

    for (; k + 4 <= n; k += 4) {
        s0 += w[k] * x[k];
        s1 += w[k + 1] * x[k + 1];
        s2 += w[k + 2] * x[k + 2];
        s3 += w[k + 3] * x[k + 3];
    }
    for (; k < n; k++)
        s0 += w[k] * x[k];
    return (s0 + s1) + (s2 + s3);
}

/* sh: weight j at w[j << sh] (see sw_linear.pair); inlined with a
 * constant sh, so each caller's loop has no shift it does not need. */
static inline double
dot_sparse_at(const double *w, const double *val, const int32_t *idx,
              int64_t n, int sh)
{
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    int64_t k = 0;

    for (; k + 4 <= n; k += 4) {
        s0 += w[(int64_t)idx[k] << sh] * val[k];
        s1 += w[(int64_t)idx[k + 1] << sh] * val[k + 1];
        s2 += w[(int64_t)idx[k + 2] << sh] * val[k + 2];
        s3 += w[(int64_t)idx[k + 3] << sh] * val[k + 3];
    }
    for (; k < n; k++)
        s0 += w[(int64_t)idx[k] << sh] * val[k];
    return (s0 + s1) + (s2 + s3);
}

static double
dot_sparse(const double *w, const double *val, const int32_t *idx, int64_t n)
{
    return dot_sparse_at(w, val, idx, n, 0);
}

/* dot_dense over weights side by side with their variances: the same
 * sums in the same order. */
static double
dot_dense_pair(const double *w, const double *x, int64_t n)
{
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    int64_t k = 0;

    for (; k + 4 <= n; k += 4) {
        s0 += w[2 * k] * x[k];
        s1 += w[2 * k + 2] * x[k + 1];
        s2 += w[2 * k + 4] * x[k + 2];
        s3 += w[2 * k + 6] * x[k + 3];
    }
    for (; k < n; k++)
        s0 += w[2 * k] * x[k];
    return (s0 + s1) + (s2 + s3);
}

/* w.x including the intercept, for one weight vector of lin->dim values. */
static double
row_dot(const sw_linear *lin, const double *w, const sw_row *x)
{
    double s;

    if (lin->pair)
        s = x->idx ? dot_sparse_at(w, x->val, x->idx, x->n, 1)
                   : dot_dense_pair(w, x->val, x->n);
    else
        s = x->idx ? dot_sparse(w, x->val, x->idx, x->n)
                   : dot_dense(w, x->val, x->n);
    return lin->intercept ? s + w[lin->n_features << lin->pair] : s;
}

/* sum_j s_j x_j^2 (with s = x: |x|^2 is row_dot(x, x^2)), including the
 * intercept's x = 1. s == NULL means all ones. */
static double
row_wsq(const sw_linear *lin, const double *s, const sw_row *x)
{
    double s0 = 0, s1 = 0;
    int64_t k = 0;

    for (; k + 2 <= x->n; k += 2) {
        double a = x->val[k] * x->val[k], b = x->val[k + 1] * x->val[k + 1];
        int64_t ja = (x->idx ? x->idx[k] : k) << lin->pair;
        int64_t jb = (x->idx ? x->idx[k + 1] : k + 1) << lin->pair;

        s0 += s ? s[ja] * a : a;
        s1 += s ? s[jb] * b : b;
    }
    for (; k < x->n; k++) {
        double a = x->val[k] * x->val[k];

        s0 += s ? s[(x->idx ? x->idx[k] : k) << lin->pair] * a : a;
    }
    s0 += s1;
    if (lin->intercept)
        s0 += s ? s[lin->n_features << lin->pair] : 1.0;
    return s0;
}

/* w += c * x (intercept included); PA, whose weights are never paired. */
static void
row_axpy(const sw_linear *lin, double *w, double c, const sw_row *x)
{
    int64_t k;

    if (x->idx != NULL) {
        for (k = 0; k < x->n; k++)
            w[x->idx[k]] += c * x->val[k];
    } else {
        for (k = 0; k < x->n; k++)
            w[k] += c * x->val[k];
    }
    if (lin->intercept)
        w[lin->n_features] += c;
}

/* Diagonal SCW step for one vector: mu += c Sigma x, Sigma -= beta
 * (Sigma x)^2 elementwise. */
static void
row_scw_diag(const sw_linear *lin, double *mu, double *sg, double c,
             double beta, const sw_row *x)
{
    int64_t k;

    for (k = 0; k < x->n; k++) {
        int64_t j = (x->idx ? x->idx[k] : k) << lin->pair;
        double sx = sg[j] * x->val[k];

        mu[j] += c * sx;
        sg[j] -= beta * sx * sx;
    }
    if (lin->intercept) {
        int64_t j = lin->n_features << lin->pair;

        mu[j] += c * sg[j];
        sg[j] -= beta * sg[j] * sg[j];
    }
}

/* g = Sigma x for a full (dim x dim, symmetric) Sigma; returns x' Sigma x. */
static double
full_sigma_x(const sw_linear *lin, const double *sg, const sw_row *x, double *g)
{
    int64_t dim = lin->dim, i, k;
    double v = 0;

    for (i = 0; i < dim; i++) {
        const double *row = sg + i * dim;
        double s = x->idx ? dot_sparse(row, x->val, x->idx, x->n)
                          : dot_dense(row, x->val, x->n);

        g[i] = lin->intercept ? s + row[lin->n_features] : s;
    }
    if (x->idx != NULL) {
        for (k = 0; k < x->n; k++)
            v += g[x->idx[k]] * x->val[k];
    } else {
        v = dot_dense(g, x->val, x->n);
    }
    if (lin->intercept)
        v += g[lin->n_features];
    return v;
}

/* mu += c g, Sigma -= beta g g' for a full Sigma. */
static void
full_update(const sw_linear *lin, double *mu, double *sg, double c, double beta,
            const double *g)
{
    int64_t dim = lin->dim, i, j;

    for (i = 0; i < dim; i++) {
        mu[i] += c * g[i];
        if (g[i] == 0)
            continue;
        for (j = 0; j < dim; j++)
            sg[i * dim + j] -= beta * g[i] * g[j];
    }
}

/* ------------------------------------------------------------------ */
/* Step sizes                                                           */
/* ------------------------------------------------------------------ */

/* PA step for loss l and squared norm q (q > 0). */
static double
pa_tau(const sw_linear *lin, double l, double q)
{
    switch (lin->variant) {
    case PA_PLAIN:
        return l / q;
    case PA_1:
        return fmin(lin->C, l / q);
    default:
        return l / (q + 1.0 / (2.0 * lin->C));
    }
}

/* SCW alpha and beta for margin m and variance v (v > 0). Returns 0 with
 * no step when alpha <= 0. */
static int
scw_step(const sw_linear *lin, double m, double v, double *alpha, double *beta)
{
    double phi = lin->phi, phi2 = phi * phi;
    double psi = 1.0 + phi2 / 2.0, zeta = 1.0 + phi2;
    double al, u;

    if (lin->variant == SCW_1) {
        al = (-m * psi + sqrt(m * m * phi2 * phi2 / 4.0 + v * phi2 * zeta)) /
             (v * zeta);
        al = fmin(lin->C, fmax(0.0, al));
    } else {
        double n = v + 1.0 / (2.0 * lin->C);
        double gamma =
            phi * sqrt(phi2 * m * m * v * v + 4.0 * n * v * (n + v * phi2));

        al = (-(2.0 * m * n + phi2 * m * v) + gamma) /
             (2.0 * (n * n + n * v * phi2));
        al = fmax(0.0, al);
    }
    if (!(al > 0.0))
        return 0;
    u = -al * v * phi + sqrt(al * al * v * v * phi2 + 4.0 * v);
    u = u * u / 4.0;
    *alpha = al;
    *beta = al * phi / (sqrt(u) + v * al * phi);
    return 1;
}

/* Inverse of the standard normal CDF for p in (0.5, 1), by Newton's method
 * on 0.5 erfc(-x / sqrt 2) from x = 0: the CDF is concave there, so the
 * iterates rise monotonically to the root. Used once per learner; the
 * result is stored in the model so a replay elsewhere uses the same phi. */
static double
norm_ppf(double p)
{
    double x = 0.0;
    int i;

    for (i = 0; i < 200; i++) {
        double cdf = 0.5 * erfc(-x / sqrt(2.0));
        double pdf = exp(-0.5 * x * x) / sqrt(2.0 * 3.14159265358979323846);
        double step = (cdf - p) / pdf;

        x -= step;
        if (fabs(step) <= 1e-15 * fmax(1.0, fabs(x)))
            break;
    }
    return x;
}

/* ------------------------------------------------------------------ */
/* Construction                                                         */
/* ------------------------------------------------------------------ */

static int64_t
vectors_for(int task, int64_t n_classes)
{
    return task == TASK_CLASSIFY && n_classes > 2 ? n_classes : 1;
}

static int64_t
sigma_len(const sw_linear *lin, int64_t n_vec)
{
    if (lin->algo != ALGO_SCW)
        return 0;
    return lin->full ? n_vec * lin->dim * lin->dim : n_vec * lin->dim;
}

/* Vector v's weights and its covariance block (see sw_linear.pair). */
static double *
w_of(const sw_linear *lin, int64_t v)
{
    return lin->w + ((v * lin->dim) << lin->pair);
}

static double *
sigma_of(const sw_linear *lin, int64_t v)
{
    return lin->sigma +
           (lin->full ? v * lin->dim * lin->dim : (v * lin->dim) << lin->pair);
}

/* Fresh covariances for vectors v0 .. v0 + n_vec - 1: a on the diagonal. */
static void
init_sigma(const sw_linear *lin, int64_t v0, int64_t n_vec)
{
    int64_t v, i;

    for (v = v0; v < v0 + n_vec; v++) {
        double *sg = sigma_of(lin, v);

        if (!lin->full) {
            for (i = 0; i < lin->dim; i++)
                sg[i << lin->pair] = lin->a;
            continue;
        }
        memset(sg, 0, (size_t)(lin->dim * lin->dim) * sizeof(*sg));
        for (i = 0; i < lin->dim; i++)
            sg[i * lin->dim + i] = lin->a;
    }
}

/* Weights and variances of lin (pair: one allocation). */
static void
free_params(sw_linear *lin)
{
    sw__free(lin->w);
    if (!lin->pair)
        sw__free(lin->sigma);
    lin->w = lin->sigma = NULL;
}

static sw_rc
alloc_params(sw_linear *lin, sw_err *err)
{
    size_t n_w = (size_t)(lin->n_vec * lin->dim);
    size_t n_s = (size_t)sigma_len(lin, lin->n_vec);

    lin->pair = lin->algo == ALGO_SCW && !lin->full;
    lin->w = sw__calloc(n_w << lin->pair, sizeof(double));
    if (lin->w == NULL)
        return sw__fail(err, SW_E_NOMEM, "linear: no memory for %zu weights",
                        n_w);
    if (lin->pair) {
        lin->sigma = lin->w + 1;
    } else if (n_s > 0) {
        lin->sigma = sw__alloc_array(n_s, sizeof(double));
        if (lin->sigma == NULL)
            return sw__fail(err, SW_E_NOMEM,
                            "linear: no memory for %zu variances", n_s);
    }
    return SW_OK;
}

/* Check the settings of a learner, whether they come from a conf or from a
 * model file; the messages name the property. */
static sw_rc
check_settings(const sw_linear *lin, sw_err *err)
{
    if (lin->task != TASK_CLASSIFY && lin->task != TASK_REGRESS)
        return sw__fail(err, SW_E_INVAL, "linear.task: unknown task %d",
                        lin->task);
    if (lin->algo != ALGO_PA && lin->algo != ALGO_SCW)
        return sw__fail(err, SW_E_INVAL, "linear.algorithm: unknown %d",
                        lin->algo);
    if (lin->algo == ALGO_SCW && lin->task == TASK_REGRESS)
        return sw__fail(err, SW_E_INVAL,
                        "linear.algorithm: scw is a classifier; regression "
                        "needs linear.algorithm=pa");
    if (lin->variant < 0 || lin->variant > (lin->algo == ALGO_PA ? 2 : 1))
        return sw__fail(err, SW_E_INVAL, "%s.variant: unknown variant %d",
                        lin->algo == ALGO_PA ? "pa" : "scw", lin->variant);
    if (!(lin->C > 0) || !isfinite(lin->C))
        return sw__fail(err, SW_E_INVAL, "%s.C: %g, expected > 0",
                        lin->algo == ALGO_PA ? "pa" : "scw", lin->C);
    if (!(lin->epsilon >= 0) || !isfinite(lin->epsilon))
        return sw__fail(err, SW_E_INVAL, "pa.epsilon: %g, expected >= 0",
                        lin->epsilon);
    if (lin->algo == ALGO_SCW &&
        (!(lin->eta > 0.5 && lin->eta < 1) || !(lin->a > 0) ||
         !isfinite(lin->a) || !(lin->phi > 0) || !isfinite(lin->phi)))
        return sw__fail(err, SW_E_INVAL,
                        "scw: eta %g (expected 0.5 < eta < 1), a %g "
                        "(expected > 0), phi %g",
                        lin->eta, lin->a, lin->phi);
    if (lin->n_features < 1 || lin->n_features > MAX_FEATURES)
        return sw__fail(err, SW_E_INVAL, "n_features: %lld, expected 1..%lld",
                        (long long)lin->n_features, (long long)MAX_FEATURES);
    if (lin->full && lin->dim > MAX_FULL_DIM)
        return sw__fail(err, SW_E_INVAL,
                        "scw.covariance=full: %lld weights, at most %d; use "
                        "diag",
                        (long long)lin->dim, MAX_FULL_DIM);
    if (lin->n_classes < 0 ||
        (lin->task == TASK_REGRESS && lin->n_classes != 0))
        return sw__fail(err, SW_E_INVAL, "n_classes: %lld for a %s",
                        (long long)lin->n_classes,
                        lin->task == TASK_REGRESS ? "regressor" : "classifier");
    if (lin->n_classes > 1000000 ||
        lin->n_vec > INT64_MAX / 8 / lin->dim / (lin->full ? lin->dim : 1))
        return sw__fail(err, SW_E_INVAL, "n_classes: %lld is too many",
                        (long long)lin->n_classes);
    return SW_OK;
}

sw_rc
sw_linear_new(const sw_conf *conf, int64_t n_features, int64_t n_classes,
              sw_model **out, sw_err *err)
{
    sw_linear *lin = NULL;
    sw_rc rc;

    *out = NULL;
    if (conf == NULL)
        return sw__fail(err, SW_E_INVAL, "sw_linear_new: conf is NULL");
    lin = sw__calloc(1, sizeof(*lin));
    if (lin == NULL) {
        rc = sw__fail(err, SW_E_NOMEM, "linear: out of memory");
        goto done;
    }
    lin->task = sw__conf_choice(conf, "linear.task");
    lin->algo = sw__conf_choice(conf, "linear.algorithm");
    lin->intercept = sw__conf_choice(conf, "linear.fit_intercept");
    if (lin->algo == ALGO_PA) {
        lin->variant = sw__conf_choice(conf, "pa.variant");
        lin->C = sw__conf_num(conf, "pa.C");
    } else {
        lin->variant = sw__conf_choice(conf, "scw.variant");
        lin->C = sw__conf_num(conf, "scw.C");
        lin->full = sw__conf_choice(conf, "scw.covariance") == 1;
    }
    lin->epsilon = sw__conf_num(conf, "pa.epsilon");
    lin->eta = sw__conf_num(conf, "scw.eta");
    lin->a = sw__conf_num(conf, "scw.a");
    lin->phi = lin->algo == ALGO_SCW ? norm_ppf(lin->eta) : 0.0;
    lin->n_features = n_features;
    lin->dim = n_features + lin->intercept;
    lin->n_classes = lin->task == TASK_CLASSIFY ? n_classes : 0;
    if (lin->task == TASK_REGRESS && n_classes > 0) {
        rc = sw__fail(err, SW_E_INVAL,
                      "n_classes: %lld, but linear.task is regression",
                      (long long)n_classes);
        goto done;
    }
    lin->n_vec = vectors_for(lin->task, lin->n_classes);
    rc = check_settings(lin, err);
    if (rc != SW_OK)
        goto done;
    rc = alloc_params(lin, err);
    if (rc != SW_OK)
        goto done;
    if (lin->sigma != NULL)
        init_sigma(lin, 0, lin->n_vec);
    rc = sw__model_wrap(SW_MODEL_LINEAR, lin, out, err);
    lin = NULL; /* the model's now, or freed */
done:
    lin_free(lin);
    return rc;
}

static void
lin_free(sw_linear *lin)
{
    if (lin == NULL)
        return;
    free_params(lin);
    sw__free(lin);
}

static sw_rc
lin_dup(const sw_linear *lin, sw_linear **out, sw_err *err)
{
    sw_linear *c = NULL;
    sw_rc rc;

    *out = NULL;
    c = sw__malloc(sizeof(*c));
    if (c == NULL)
        return sw__fail(err, SW_E_NOMEM, "linear: out of memory");
    *c = *lin;
    c->w = NULL;
    c->sigma = NULL;
    rc = alloc_params(c, err);
    if (rc != SW_OK) {
        lin_free(c);
        return rc;
    }
    memcpy(c->w, lin->w,
           (size_t)((lin->n_vec * lin->dim) << lin->pair) * sizeof(double));
    if (c->sigma != NULL && !c->pair)
        memcpy(c->sigma, lin->sigma,
               (size_t)sigma_len(lin, lin->n_vec) * sizeof(double));
    *out = c;
    return SW_OK;
}

static sw_linear *
linear_of(const sw_model *m)
{
    return m != NULL && m->kind == SW_MODEL_LINEAR ? m->u.linear : NULL;
}

sw_rc
sw_linear_add_classes(sw_model *m, int64_t n_classes, sw_err *err)
{
    sw_linear *lin = linear_of(m), grown;
    int64_t old_vec, v;
    sw_rc rc;

    if (lin == NULL)
        return sw__fail(err, SW_E_INVAL, "add_classes: not a linear model");
    if (lin->task != TASK_CLASSIFY)
        return sw__fail(err, SW_E_STATE,
                        "add_classes: a regressor has no "
                        "classes");
    if (n_classes <= lin->n_classes)
        return SW_OK;
    grown = *lin;
    grown.n_classes = n_classes;
    grown.n_vec = vectors_for(lin->task, n_classes);
    grown.w = NULL;
    grown.sigma = NULL;
    rc = check_settings(&grown, err);
    if (rc != SW_OK)
        return rc;
    if (grown.n_vec == lin->n_vec) { /* still binary: nothing to move */
        lin->n_classes = n_classes;
        return SW_OK;
    }
    rc = alloc_params(&grown, err);
    if (rc != SW_OK) {
        free_params(&grown);
        return rc;
    }
    old_vec = lin->n_vec;
    if (old_vec == 1) {
        /* binary w becomes w_0 = -w, w_1 = w: same argmax as sign(w.x) */
        for (v = 0; v < lin->dim; v++) {
            w_of(&grown, 0)[v << grown.pair] = -lin->w[v << lin->pair];
            w_of(&grown, 1)[v << grown.pair] = lin->w[v << lin->pair];
        }
        if (grown.sigma != NULL) {
            int64_t blk = sigma_len(lin, 1);

            for (v = 0; v < blk; v++)
                sigma_of(&grown, 0)[v << grown.pair] =
                    sigma_of(&grown, 1)[v << grown.pair] =
                        lin->sigma[v << lin->pair];
            init_sigma(&grown, 2, grown.n_vec - 2);
        }
    } else {
        /* paired, the weights' copy holds the variances too */
        memcpy(grown.w, lin->w,
               (size_t)((old_vec * lin->dim) << lin->pair) * sizeof(double));
        if (grown.sigma != NULL) {
            if (!grown.pair)
                memcpy(grown.sigma, lin->sigma,
                       (size_t)(old_vec * sigma_len(lin, 1)) *
                           sizeof(double));
            init_sigma(&grown, old_vec, grown.n_vec - old_vec);
        }
    }
    free_params(lin);
    *lin = grown;
    return SW_OK;
}

/* ------------------------------------------------------------------ */
/* Prediction                                                           */
/* ------------------------------------------------------------------ */

/* Scores of one row: n_vec values into out. */
static void
row_scores(const sw_linear *lin, const sw_row *x, double *out)
{
    int64_t v;

    for (v = 0; v < lin->n_vec; v++)
        out[v] = row_dot(lin, w_of(lin, v), x);
}

static sw_rc
nonfinite_error(const sw_row *x, int64_t i, sw_err *err)
{
    int64_t j = sw__row_find_nonfinite(x);

    if (j >= 0)
        return sw__fail(err, SW_E_NUMERIC,
                        "row %lld, column %lld: value is NaN or infinite",
                        (long long)i, (long long)j);
    return sw__fail(err, SW_E_NUMERIC,
                    "row %lld: the score overflowed (values too large)",
                    (long long)i);
}

static sw_rc
lin_predict(const sw_linear *lin, const sw_rows *x, double *out,
            int64_t n_out, sw_err *err)
{
    sw_scratch scratch = {0};
    int64_t i, v;
    sw_rc rc;

    rc = sw__rows_check_shape(x, lin->n_features, err);
    if (rc != SW_OK)
        goto done;
    if (n_out != x->n_rows * lin->n_vec) {
        rc = sw__fail(err, SW_E_SHAPE,
                      "predict: output holds %lld values, "
                      "expected %lld",
                      (long long)n_out, (long long)(x->n_rows * lin->n_vec));
        goto done;
    }
    for (i = 0; i < x->n_rows; i++) {
        sw_row row;

        rc = sw__row_get(x, i, &row, &scratch, err);
        if (rc != SW_OK)
            goto done;
        row_scores(lin, &row, out + i * lin->n_vec);
        for (v = 0; v < lin->n_vec; v++) {
            if (!isfinite(out[i * lin->n_vec + v])) {
                rc = nonfinite_error(&row, i, err);
                goto done;
            }
        }
    }
    rc = SW_OK;
done:
    sw__scratch_free(&scratch);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Learning                                                             */
/* ------------------------------------------------------------------ */

/* Work buffers of one learn call, allocated once per call. */
typedef struct entry {
    int32_t j;
    int32_t pad;
    double v;
} entry;

/* Work buffers of one learn call. All are sized before the first row is
 * learned, so that running out of memory can only happen while the model
 * is still untouched. */
typedef struct work {
    sw_scratch get;   /* dtype conversion of rows */
    sw_scratch canon; /* sorted, duplicate-free copies of sparse rows */
    entry *sort;      /* sorting space for canonical_row */
    double *scores;   /* n_vec */
    double *g;        /* full covariance: 2 * dim */
} work;

static void
work_free(work *wk)
{
    sw__scratch_free(&wk->get);
    sw__scratch_free(&wk->canon);
    sw__free(wk->sort);
    sw__free(wk->scores);
    sw__free(wk->g);
}

static sw_rc
work_alloc(work *wk, const sw_linear *lin, const sw_rows *x, sw_err *err)
{
    int64_t most = sw__rows_max_row(x);
    sw_rc rc;

    wk->scores = sw__alloc_array((size_t)lin->n_vec, sizeof(double));
    if (wk->scores == NULL)
        return sw__fail(err, SW_E_NOMEM, "learn: out of memory");
    if (lin->full) {
        wk->g = sw__alloc_array((size_t)(2 * lin->dim), sizeof(double));
        if (wk->g == NULL)
            return sw__fail(err, SW_E_NOMEM, "learn: out of memory");
    }
    if (x->layout == SW_DENSE && x->dtype == SW_F64)
        return SW_OK;
    rc = sw__scratch_reserve(&wk->get, most, err);
    if (rc != SW_OK || x->layout == SW_DENSE)
        return rc;
    rc = sw__scratch_reserve(&wk->canon, most, err);
    if (rc != SW_OK)
        return rc;
    wk->sort = sw__alloc_array((size_t)(most ? most : 1), sizeof(entry));
    if (wk->sort == NULL)
        return sw__fail(err, SW_E_NOMEM, "learn: out of memory");
    return SW_OK;
}

static int
cmp_entry(const void *a, const void *b)
{
    int32_t x = ((const int32_t *)a)[0], y = ((const int32_t *)b)[0];

    return (x > y) - (x < y);
}

/* Norms and covariance updates need each column once: a sparse row with
 * repeated or unsorted columns is summed into a sorted copy in wk->canon.
 * Canonical rows (strictly increasing columns, the common case) are used
 * as they are. Allocates nothing: work_alloc sized the buffers. */
static void
canonical_row(sw_row *x, work *wk)
{
    sw_scratch *s = &wk->canon;
    entry *tmp = wk->sort;
    int64_t k, n = 0;

    if (x->idx == NULL)
        return;
    for (k = 1; k < x->n; k++) {
        if (x->idx[k] <= x->idx[k - 1])
            break;
    }
    if (k >= x->n)
        return;
    for (k = 0; k < x->n; k++) {
        tmp[k].j = x->idx[k];
        tmp[k].pad = 0;
        tmp[k].v = x->val[k];
    }
    qsort(tmp, (size_t)x->n, sizeof(*tmp), cmp_entry);
    for (k = 0; k < x->n; k++) {
        if (n > 0 && s->idx[n - 1] == tmp[k].j) {
            s->val[n - 1] += tmp[k].v;
        } else {
            s->idx[n] = tmp[k].j;
            s->val[n] = tmp[k].v;
            n++;
        }
    }
    x->idx = s->idx;
    x->val = s->val;
    x->n = n;
}

/* Index of the best-scoring class other than y (ties: the lowest). */
static int64_t
rival(const double *scores, int64_t n, int64_t y)
{
    int64_t r = -1, k;

    for (k = 0; k < n; k++) {
        if (k != y && (r < 0 || scores[k] > scores[r]))
            r = k;
    }
    return r;
}

static int64_t
argmax(const double *scores, int64_t n)
{
    int64_t r = 0, k;

    for (k = 1; k < n; k++) {
        if (scores[k] > scores[r])
            r = k;
    }
    return r;
}

/* The prediction of one row from its scores: class number or value. */
static double
decide(const sw_linear *lin, const double *scores)
{
    if (lin->task == TASK_REGRESS)
        return scores[0];
    if (lin->n_vec == 1)
        return lin->n_classes >= 2 && scores[0] > 0 ? 1.0 : 0.0;
    return (double)argmax(scores, lin->n_vec);
}

/* Learn one row whose scores are already in wk->scores. The row has been
 * checked for non-finite values. Returns SW_E_NUMERIC (nothing applied) if
 * the step itself would not be finite. */
static sw_rc
learn_row(sw_linear *lin, const sw_row *x, double y, int64_t i, work *wk,
          sw_err *err)
{
    const double *s = wk->scores;
    int64_t yc = 0, r = 0;
    int binary = lin->task == TASK_CLASSIFY && lin->n_vec == 1;
    int multi = lin->task == TASK_CLASSIFY && lin->n_vec > 1;
    double sign = 1.0, m, q, v;

    if (lin->task == TASK_CLASSIFY) {
        yc = (int64_t)y;
        if (binary)
            sign = yc == 1 ? 1.0 : -1.0;
        else
            r = rival(s, lin->n_vec, yc);
    }

    if (lin->algo == ALGO_PA) {
        double l, tau;

        if (lin->task == TASK_REGRESS) {
            double e = y - s[0];

            l = fabs(e) - lin->epsilon;
            sign = e >= 0 ? 1.0 : -1.0;
        } else {
            m = binary ? sign * s[0] : s[yc] - s[r];
            l = 1.0 - m;
        }
        if (!(l > 0.0))
            return SW_OK;
        q = row_wsq(lin, NULL, x);
        if (!isfinite(q))
            return sw__fail(err, SW_E_NUMERIC,
                            "row %lld: |x|^2 overflowed (values too large)",
                            (long long)i);
        if (q == 0.0) /* no information in a zero row */
            return SW_OK;
        tau = pa_tau(lin, l, multi ? 2.0 * q : q);
        if (!isfinite(tau))
            return sw__fail(err, SW_E_NUMERIC, "row %lld: step overflowed",
                            (long long)i);
        if (multi) {
            row_axpy(lin, w_of(lin, yc), tau, x);
            row_axpy(lin, w_of(lin, r), -tau, x);
        } else {
            row_axpy(lin, lin->w, sign * tau, x);
        }
        lin->n_updates++;
        return SW_OK;
    }

    /* SCW */
    {
        double alpha, beta, vy, vr = 0;
        double *sy, *sr = NULL;
        int64_t vec_y = multi ? yc : 0;

        sy = sigma_of(lin, vec_y);
        if (multi)
            sr = sigma_of(lin, r);
        if (lin->full) {
            vy = full_sigma_x(lin, sy, x, wk->g);
            if (multi)
                vr = full_sigma_x(lin, sr, x, wk->g + lin->dim);
        } else {
            vy = row_wsq(lin, sy, x);
            if (multi)
                vr = row_wsq(lin, sr, x);
        }
        v = vy + vr;
        m = multi ? s[yc] - s[r] : sign * s[0];
        if (!isfinite(v))
            return sw__fail(err, SW_E_NUMERIC,
                            "row %lld: x' Sigma x overflowed", (long long)i);
        if (!(v > 0.0) || !(lin->phi * sqrt(v) - m > 0.0))
            return SW_OK;
        if (!scw_step(lin, m, v, &alpha, &beta))
            return SW_OK;
        if (!isfinite(alpha) || !isfinite(beta))
            return sw__fail(err, SW_E_NUMERIC, "row %lld: step overflowed",
                            (long long)i);
        if (lin->full) {
            full_update(lin, w_of(lin, vec_y), sy,
                        multi ? alpha : sign * alpha, beta, wk->g);
            if (multi)
                full_update(lin, w_of(lin, r), sr, -alpha, beta,
                            wk->g + lin->dim);
        } else {
            row_scw_diag(lin, w_of(lin, vec_y), sy,
                         multi ? alpha : sign * alpha, beta, x);
            if (multi)
                row_scw_diag(lin, w_of(lin, r), sr, -alpha, beta, x);
        }
        lin->n_updates++;
    }
    return SW_OK;
}

/* The loop behind learn and prequential: pred, scores and metric may be
 * NULL; scores takes n_vec values a row. */
static sw_rc
learn_rows(sw_model *m, const sw_rows *x, const double *y, int64_t n_y,
           double *pred, double *scores, double *metric, int64_t *n_done,
           sw_err *err)
{
    sw_linear *lin = linear_of(m);
    work wk = {0};
    double hits = 0, abs_err = 0;
    int64_t i;
    sw_rc rc;

    if (n_done != NULL)
        *n_done = 0;
    if (lin == NULL)
        return sw__fail(err, SW_E_INVAL, "learn: not a linear model");
    rc = sw__rows_check_shape(x, lin->n_features, err);
    if (rc != SW_OK)
        goto done;
    if (n_y != x->n_rows) {
        rc = sw__fail(err, SW_E_SHAPE, "learn: %lld rows but %lld targets",
                      (long long)x->n_rows, (long long)n_y);
        goto done;
    }
    if (y == NULL && n_y > 0) {
        rc = sw__fail(err, SW_E_INVAL, "learn: y is NULL");
        goto done;
    }
    rc = work_alloc(&wk, lin, x, err);
    if (rc != SW_OK)
        goto done;
    for (i = 0; i < x->n_rows; i++) {
        sw_row row;
        double yi = y[i], p;
        int64_t v;

        if (lin->task == TASK_CLASSIFY) {
            if (!(yi >= 0) || yi != floor(yi) || yi >= (double)lin->n_classes) {
                rc = sw__fail(err, SW_E_INVAL,
                              "row %lld: class %g, expected 0..%lld",
                              (long long)i, yi, (long long)lin->n_classes - 1);
                goto done;
            }
        } else if (!isfinite(yi)) {
            rc = sw__fail(err, SW_E_NUMERIC, "row %lld: target is %g",
                          (long long)i, yi);
            goto done;
        }
        rc = sw__row_get(x, i, &row, &wk.get, err);
        if (rc != SW_OK)
            goto done;
        canonical_row(&row, &wk);
        row_scores(lin, &row, wk.scores);
        for (v = 0; v < lin->n_vec; v++) {
            if (!isfinite(wk.scores[v])) {
                rc = nonfinite_error(&row, i, err);
                goto done;
            }
        }
        p = decide(lin, wk.scores);
        if (scores != NULL) /* the scores the prediction was made on */
            memcpy(scores + i * lin->n_vec, wk.scores,
                   (size_t)lin->n_vec * sizeof(double));
        rc = learn_row(lin, &row, yi, i, &wk, err);
        if (rc != SW_OK)
            goto done;
        lin->n_seen++;
        if (pred != NULL)
            pred[i] = p;
        if (metric != NULL) {
            if (lin->task == TASK_REGRESS) {
                abs_err += fabs(yi - p);
                metric[i] = abs_err / (double)(i + 1);
            } else {
                hits += p == yi;
                metric[i] = hits / (double)(i + 1);
            }
        }
        if (n_done != NULL)
            *n_done = i + 1;
    }
    rc = SW_OK;
done:
    work_free(&wk);
    return rc;
}

sw_rc
sw_linear_learn(sw_model *m, const sw_rows *x, const double *y, int64_t n_y,
                int64_t *n_done, sw_err *err)
{
    return learn_rows(m, x, y, n_y, NULL, NULL, NULL, n_done, err);
}

sw_rc
sw_linear_prequential(sw_model *m, const sw_rows *x, const double *y,
                      int64_t n_y, double *pred, double *metric,
                      int64_t *n_done, sw_err *err)
{
    if (pred == NULL) {
        if (n_done != NULL)
            *n_done = 0;
        return sw__fail(err, SW_E_INVAL, "prequential: pred is NULL");
    }
    return learn_rows(m, x, y, n_y, pred, NULL, metric, n_done, err);
}

sw_rc
sw_linear_prequential_scores(sw_model *m, const sw_rows *x, const double *y,
                             int64_t n_y, double *pred, double *scores,
                             int64_t n_scores, double *metric,
                             int64_t *n_done, sw_err *err)
{
    const sw_linear *lin = linear_of(m);

    if (n_done != NULL)
        *n_done = 0;
    if (pred == NULL)
        return sw__fail(err, SW_E_INVAL, "prequential: pred is NULL");
    if (lin != NULL && scores != NULL && n_scores != lin->n_vec)
        return sw__fail(err, SW_E_SHAPE,
                        "prequential: %lld scores a row, the model has %lld",
                        (long long)n_scores, (long long)lin->n_vec);
    return learn_rows(m, x, y, n_y, pred, scores, metric, n_done, err);
}

/* ------------------------------------------------------------------ */
/* Accessors                                                            */
/* ------------------------------------------------------------------ */

void
sw_linear_counts(const sw_model *m, int64_t *n_seen, int64_t *n_updates)
{
    const sw_linear *lin = linear_of(m);

    if (n_seen != NULL)
        *n_seen = lin ? lin->n_seen : 0;
    if (n_updates != NULL)
        *n_updates = lin ? lin->n_updates : 0;
}

int64_t
sw_linear_n_vectors(const sw_model *m)
{
    const sw_linear *lin = linear_of(m);

    return lin ? lin->n_vec : 0;
}

int64_t
sw_linear_vector_len(const sw_model *m)
{
    const sw_linear *lin = linear_of(m);

    return lin ? lin->dim : 0;
}

int64_t
sw_linear_n_sigma(const sw_model *m)
{
    const sw_linear *lin = linear_of(m);

    return lin ? sigma_len(lin, lin->n_vec) : 0;
}

sw_rc
sw_linear_weights(const sw_model *m, double *w, int64_t n_w, sw_err *err)
{
    const sw_linear *lin = linear_of(m);
    int64_t k;

    if (lin == NULL)
        return sw__fail(err, SW_E_INVAL, "weights: not a linear model");
    if (n_w != lin->n_vec * lin->dim)
        return sw__fail(err, SW_E_SHAPE, "weights: %lld values, expected %lld",
                        (long long)n_w, (long long)(lin->n_vec * lin->dim));
    for (k = 0; k < n_w; k++)
        w[k] = lin->w[k << lin->pair];
    return SW_OK;
}

sw_rc
sw_linear_sigma(const sw_model *m, double *sigma, int64_t n_sigma, sw_err *err)
{
    const sw_linear *lin = linear_of(m);
    int64_t k;

    if (lin == NULL)
        return sw__fail(err, SW_E_INVAL, "sigma: not a linear model");
    if (lin->sigma == NULL)
        return sw__fail(err, SW_E_STATE, "sigma: PA keeps no covariance");
    if (n_sigma != sigma_len(lin, lin->n_vec))
        return sw__fail(err, SW_E_SHAPE, "sigma: %lld values, expected %lld",
                        (long long)n_sigma,
                        (long long)sigma_len(lin, lin->n_vec));
    for (k = 0; k < n_sigma; k++)
        sigma[k] = lin->sigma[k << lin->pair];
    return SW_OK;
}

static int64_t
lin_n_features(const sw_linear *lin)
{
    return lin->n_features;
}

static int64_t
lin_n_outputs(const sw_linear *lin)
{
    return lin->n_vec;
}

static int64_t
lin_n_classes(const sw_linear *lin)
{
    return lin->n_classes;
}

/* ------------------------------------------------------------------ */
/* The MODEL section                                                    */
/* ------------------------------------------------------------------ */

/* n doubles v[k << sh] (see sw_linear.pair): the file holds the weights,
 * then the variances, whatever the layout in memory. */
static sw_rc
put_f64s_at(sw_buf *b, const double *v, uint64_t n, int sh, sw_err *err)
{
    uint64_t k;
    sw_rc rc = SW_OK;

    if (sh == 0)
        return n ? sw__buf_put_f64s(b, v, n, err) : SW_OK;
    for (k = 0; k < n && rc == SW_OK; k++)
        rc = sw__buf_put_f64s(b, v + (k << sh), 1, err);
    return rc;
}

static sw_rc
cur_f64s_at(sw_cursor *c, double *v, uint64_t n, int sh, sw_err *err)
{
    uint64_t k;
    sw_rc rc = SW_OK;

    if (sh == 0)
        return n ? sw__cur_f64s(c, v, n, err) : SW_OK;
    for (k = 0; k < n && rc == SW_OK; k++)
        rc = sw__cur_f64(c, v + (k << sh), err);
    return rc;
}

/* Layout (little-endian): u32 task, algo, variant, flags (1 intercept,
 * 2 full covariance); f64 C, epsilon, eta, a, phi; i64 n_features,
 * n_classes, n_seen, n_updates; u64 n_w, f64 w[n_w]; u64 n_sigma,
 * f64 sigma[n_sigma]. */
static sw_rc
lin_write(const sw_linear *lin, sw_buf *b, sw_err *err)
{
    const double par[5] = {lin->C, lin->epsilon, lin->eta, lin->a, lin->phi};
    uint64_t n_w = (uint64_t)(lin->n_vec * lin->dim);
    uint64_t n_s = (uint64_t)sigma_len(lin, lin->n_vec);
    sw_rc rc;

    if ((rc = sw__buf_put_u32(b, (uint32_t)lin->task, err)) != SW_OK ||
        (rc = sw__buf_put_u32(b, (uint32_t)lin->algo, err)) != SW_OK ||
        (rc = sw__buf_put_u32(b, (uint32_t)lin->variant, err)) != SW_OK ||
        (rc = sw__buf_put_u32(b, (uint32_t)(lin->intercept | lin->full << 1),
                              err)) != SW_OK ||
        (rc = sw__buf_put_f64s(b, par, 5, err)) != SW_OK ||
        (rc = sw__buf_put_u64(b, (uint64_t)lin->n_features, err)) != SW_OK ||
        (rc = sw__buf_put_u64(b, (uint64_t)lin->n_classes, err)) != SW_OK ||
        (rc = sw__buf_put_u64(b, (uint64_t)lin->n_seen, err)) != SW_OK ||
        (rc = sw__buf_put_u64(b, (uint64_t)lin->n_updates, err)) != SW_OK ||
        (rc = sw__buf_put_u64(b, n_w, err)) != SW_OK ||
        (rc = put_f64s_at(b, lin->w, n_w, lin->pair, err)) != SW_OK ||
        (rc = sw__buf_put_u64(b, n_s, err)) != SW_OK)
        return rc;
    return put_f64s_at(b, lin->sigma, n_s, lin->pair, err);
}

static sw_rc
lin_read(sw_cursor *c, sw_linear **out, sw_err *err)
{
    sw_linear *lin = NULL;
    uint32_t task, algo, variant, flags;
    uint64_t n_w, n_s;
    sw_rc rc;

    *out = NULL;
    lin = sw__calloc(1, sizeof(*lin));
    if (lin == NULL) {
        rc = sw__fail(err, SW_E_NOMEM, "linear: out of memory");
        goto done;
    }
    if ((rc = sw__cur_u32(c, &task, err)) != SW_OK ||
        (rc = sw__cur_u32(c, &algo, err)) != SW_OK ||
        (rc = sw__cur_u32(c, &variant, err)) != SW_OK ||
        (rc = sw__cur_u32(c, &flags, err)) != SW_OK ||
        (rc = sw__cur_f64(c, &lin->C, err)) != SW_OK ||
        (rc = sw__cur_f64(c, &lin->epsilon, err)) != SW_OK ||
        (rc = sw__cur_f64(c, &lin->eta, err)) != SW_OK ||
        (rc = sw__cur_f64(c, &lin->a, err)) != SW_OK ||
        (rc = sw__cur_f64(c, &lin->phi, err)) != SW_OK ||
        (rc = sw__cur_i64(c, &lin->n_features, err)) != SW_OK ||
        (rc = sw__cur_i64(c, &lin->n_classes, err)) != SW_OK ||
        (rc = sw__cur_i64(c, &lin->n_seen, err)) != SW_OK ||
        (rc = sw__cur_i64(c, &lin->n_updates, err)) != SW_OK ||
        (rc = sw__cur_u64(c, &n_w, err)) != SW_OK)
        goto done;
    if (task > 1 || algo > 1 || variant > 2 || flags > 3) {
        rc = sw__fail(err, SW_E_FORMAT,
                      "MODEL: unknown linear settings task %u algo %u "
                      "variant %u flags %u",
                      task, algo, variant, flags);
        goto done;
    }
    lin->task = (int)task;
    lin->algo = (int)algo;
    lin->variant = (int)variant;
    lin->intercept = flags & 1;
    lin->full = (flags >> 1) & 1;
    lin->dim = lin->n_features + lin->intercept;
    lin->n_vec = vectors_for(lin->task, lin->n_classes);
    if (lin->algo == ALGO_PA)
        lin->full = 0;
    rc = check_settings(lin, err);
    if (rc != SW_OK) {
        rc = sw__fail_wrap(err, SW_E_FORMAT, rc, "MODEL: ");
        goto done;
    }
    if (lin->n_seen < 0 || lin->n_updates < 0 ||
        n_w != (uint64_t)(lin->n_vec * lin->dim)) {
        rc = sw__fail(err, SW_E_FORMAT,
                      "MODEL: %llu weights, expected %lld for %lld features",
                      (unsigned long long)n_w,
                      (long long)(lin->n_vec * lin->dim),
                      (long long)lin->n_features);
        goto done;
    }
    /* The weights must be there before we allocate for them, so that a
     * corrupt count cannot ask for terabytes. */
    if (n_w > (c->len - c->pos) / 8) {
        rc = sw__fail(err, SW_E_FORMAT, "MODEL: truncated in the weights");
        goto done;
    }
    rc = alloc_params(lin, err);
    if (rc != SW_OK)
        goto done;
    if ((rc = cur_f64s_at(c, lin->w, n_w, lin->pair, err)) != SW_OK ||
        (rc = sw__cur_u64(c, &n_s, err)) != SW_OK)
        goto done;
    if (n_s != (uint64_t)sigma_len(lin, lin->n_vec)) {
        rc = sw__fail(err, SW_E_FORMAT, "MODEL: %llu variances, expected %lld",
                      (unsigned long long)n_s,
                      (long long)sigma_len(lin, lin->n_vec));
        goto done;
    }
    if ((rc = cur_f64s_at(c, lin->sigma, n_s, lin->pair, err)) != SW_OK)
        goto done;
    *out = lin;
    lin = NULL;
    rc = SW_OK;
done:
    lin_free(lin);
    return rc;
}

static void
lin_describe(const sw_linear *lin, FILE *fp)
{
    static const char *const pa_names[] = {"PA", "PA-I", "PA-II"};
    static const char *const scw_names[] = {"SCW-I", "SCW-II"};
    double norm = 0;
    int64_t k;

    for (k = 0; k < lin->n_vec * lin->dim; k++)
        norm += lin->w[k << lin->pair] * lin->w[k << lin->pair];
    fprintf(fp, "  learner      %s %s%s\n",
            lin->algo == ALGO_PA ? pa_names[lin->variant]
                                 : scw_names[lin->variant],
            lin->task == TASK_REGRESS ? "regressor" : "classifier",
            lin->full               ? " (full covariance)"
            : lin->algo == ALGO_SCW ? " (diagonal covariance)"
                                    : "");
    fprintf(fp, "  C            %.17g\n", lin->C);
    if (lin->task == TASK_REGRESS)
        fprintf(fp, "  epsilon      %.17g\n", lin->epsilon);
    if (lin->algo == ALGO_SCW)
        fprintf(fp, "  eta, phi, a  %.17g, %.17g, %.17g\n", lin->eta, lin->phi,
                lin->a);
    fprintf(fp, "  features     %lld%s\n", (long long)lin->n_features,
            lin->intercept ? " + intercept" : "");
    if (lin->task == TASK_CLASSIFY)
        fprintf(fp, "  classes      %lld (%lld weight vector%s)\n",
                (long long)lin->n_classes, (long long)lin->n_vec,
                lin->n_vec == 1 ? "" : "s");
    fprintf(fp, "  rows learned %lld (%lld updates)\n", (long long)lin->n_seen,
            (long long)lin->n_updates);
    fprintf(fp, "  |w|          %.6g\n", sqrt(norm));
}

/* ------------------------------------------------------------------ */
/* The linear kind's methods (sw_model_methods)                         */
/* ------------------------------------------------------------------ */

static void
m_free(void *impl)
{
    lin_free(impl);
}

static sw_rc
m_dup(const void *impl, void **out, sw_err *err)
{
    sw_linear *c = NULL;
    sw_rc rc = lin_dup(impl, &c, err);

    *out = c;
    return rc;
}

static sw_rc
m_predict(const void *impl, const sw_rows *x, double *out, int64_t n_out,
          sw_err *err)
{
    return lin_predict(impl, x, out, n_out, err);
}

static int64_t
m_n_features(const void *impl)
{
    return lin_n_features(impl);
}

static int64_t
m_n_outputs(const void *impl)
{
    return lin_n_outputs(impl);
}

static int64_t
m_n_classes(const void *impl)
{
    return lin_n_classes(impl);
}

static sw_rc
m_write(const void *impl, sw_buf *b, sw_err *err)
{
    return lin_write(impl, b, err);
}

static sw_rc
m_read(sw_cursor *c, void **out, sw_err *err)
{
    sw_linear *lin = NULL;
    sw_rc rc = lin_read(c, &lin, err);

    *out = lin;
    return rc;
}

static void
m_describe(const void *impl, FILE *fp)
{
    lin_describe(impl, fp);
}

const sw_model_methods sw_linear_methods = {
    .kind = SW_MODEL_LINEAR,
    .name = "linear",
    .free = m_free,
    .dup = m_dup,
    .predict = m_predict,
    .n_features = m_n_features,
    .n_outputs = m_n_outputs,
    .n_classes = m_n_classes,
    .write = m_write,
    .read = m_read,
    .describe = m_describe,
    .default_golden = NULL,
};
