/* SPDX-License-Identifier: MIT */
/*
 * test_linear.c - PA and SCW updates against values worked out by hand from
 * the papers' formulas (see the file header of csrc/learn/sw_linear.c), and
 * the documented edge cases: zero rows, NaN, unknown classes, unsorted and
 * duplicate sparse columns, growing from binary to multiclass.
 */
#include <math.h>
#include <string.h>

#include "sw_test.h"

static const char *const NO_B[] = {"linear.fit_intercept", "false", NULL};

static void
weights(const sw_model *m, double *w, int64_t n)
{
    sw_err err = {0};

    CHECK_RC(sw_linear_weights(m, w, n, &err), SW_OK, &err);
}

static void
learn1(sw_model *m, const double *x, int64_t d, double y)
{
    sw_rows v = dense_view(x, 1, d);
    sw_err err = {0};

    CHECK_RC(sw_linear_learn(m, &v, &y, 1, NULL, &err), SW_OK, &err);
}

static void
test_pa_binary(void)
{
    const char *pa[] = {"linear.fit_intercept", "false", "pa.variant", "pa",
                        NULL};
    const char *pa1[] = {"linear.fit_intercept",
                         "false",
                         "pa.variant",
                         "pa1",
                         "pa.C",
                         "0.1",
                         NULL};
    const char *pa2[] = {"linear.fit_intercept",
                         "false",
                         "pa.variant",
                         "pa2",
                         "pa.C",
                         "1",
                         NULL};
    const double x[2] = {1, 2};
    double w[2];
    sw_model *m;

    /* loss 1, |x|^2 5: tau = 1/5 */
    m = make_linear(pa, 2, 2);
    learn1(m, x, 2, 1);
    weights(m, w, 2);
    CHECK_NEAR(w[0], 0.2, 1e-15);
    CHECK_NEAR(w[1], 0.4, 1e-15);
    /* now y.w.x = 1: no loss, no change */
    learn1(m, x, 2, 1);
    weights(m, w, 2);
    CHECK_NEAR(w[1], 0.4, 1e-15);
    /* class 0 (y = -1): loss 1 + 1 = 2, tau 2/5, w = 0.2 - 0.4 */
    learn1(m, x, 2, 0);
    weights(m, w, 2);
    CHECK_NEAR(w[0], -0.2, 1e-15);
    sw_model_free(m);

    /* PA-I: tau = min(C, 1/5) = 0.1 */
    m = make_linear(pa1, 2, 2);
    learn1(m, x, 2, 1);
    weights(m, w, 2);
    CHECK_NEAR(w[0], 0.1, 1e-15);
    CHECK_NEAR(w[1], 0.2, 1e-15);
    sw_model_free(m);

    /* PA-II: tau = 1 / (5 + 1/(2C)) = 1/5.5 */
    m = make_linear(pa2, 2, 2);
    learn1(m, x, 2, 1);
    weights(m, w, 2);
    CHECK_NEAR(w[0], 1 / 5.5, 1e-15);
    CHECK_NEAR(w[1], 2 / 5.5, 1e-15);
    sw_model_free(m);
}

static void
test_pa_intercept_and_regression(void)
{
    const char *reg[] = {"linear.task", "regression", "pa.variant", "pa",
                         "pa.epsilon",  "0.5",        NULL};
    const char *pa[] = {"pa.variant", "pa", NULL};
    const double x[2] = {1, 0};
    double w[3];
    sw_model *m;

    /* intercept counts as a feature of value 1: |x|^2 = 2, tau = 1/2 */
    m = make_linear(pa, 2, 2);
    learn1(m, x, 2, 1);
    weights(m, w, 3);
    CHECK_NEAR(w[0], 0.5, 1e-15);
    CHECK_NEAR(w[1], 0.0, 1e-15);
    CHECK_NEAR(w[2], 0.5, 1e-15);
    sw_model_free(m);

    /* regression: error 2, loss 2 - 0.5 = 1.5, |x|^2 = 2: tau = 0.75 */
    m = make_linear(reg, 2, 0);
    learn1(m, x, 2, 2.0);
    weights(m, w, 3);
    CHECK_NEAR(w[0], 0.75, 1e-15);
    CHECK_NEAR(w[2], 0.75, 1e-15);
    /* prediction 1.5: inside the band of 2 +- 0.5, no change */
    learn1(m, x, 2, 1.9);
    weights(m, w, 3);
    CHECK_NEAR(w[0], 0.75, 1e-15);
    /* below the target: sign is negative */
    learn1(m, x, 2, 0.0);
    weights(m, w, 3);
    CHECK_NEAR(w[0], 0.75 - 0.5, 1e-15); /* loss 1, tau 0.5 */
    sw_model_free(m);
}

static void
test_pa_multiclass(void)
{
    const char *pa[] = {"linear.fit_intercept", "false", "pa.variant", "pa",
                        NULL};
    const double x[2] = {1, 1};
    double w[6], s[3];
    sw_rows v = dense_view(x, 1, 2);
    sw_err err = {0};
    sw_model *m;

    /* all scores 0: rival is class 0 (lowest), loss 1, 2|x|^2 = 4 */
    m = make_linear(pa, 2, 3);
    CHECK(sw_model_n_outputs(m) == 3);
    learn1(m, x, 2, 2);
    weights(m, w, 6);
    CHECK_NEAR(w[0], -0.25, 1e-15);
    CHECK_NEAR(w[2], 0.0, 1e-15);
    CHECK_NEAR(w[4], 0.25, 1e-15);
    CHECK_RC(sw_model_predict(m, &v, s, 3, &err), SW_OK, &err);
    CHECK_NEAR(s[2], 0.5, 1e-15);
    CHECK_NEAR(s[0], -0.5, 1e-15);
    /* class 3 does not exist */
    {
        double y = 3;

        CHECK_RC(sw_linear_learn(m, &v, &y, 1, NULL, &err), SW_E_INVAL, &err);
        CHECK(strstr(err.msg, "class 3") != NULL);
    }
    sw_model_free(m);
}

static void
test_scw(void)
{
    const char *s1[] = {"linear.fit_intercept",
                        "false",
                        "linear.algorithm",
                        "scw",
                        "scw.C",
                        "10",
                        "scw.eta",
                        "0.9",
                        NULL};
    const char *s2[] = {"linear.fit_intercept",
                        "false",
                        "linear.algorithm",
                        "scw",
                        "scw.variant",
                        "scw2",
                        "scw.C",
                        "0.5",
                        "scw.eta",
                        "0.8",
                        NULL};
    /* Phi^-1(0.9) and Phi^-1(0.8), from tables of the normal quantile */
    const double phi9 = 1.2815515655446004, phi8 = 0.8416212335729143;
    const double x[2] = {2, 0};
    double w[2], sg[2], phi, zeta, alpha, u, beta, n, gamma, m2, v;
    sw_err err = {0};
    sw_model *m;

    /* SCW-I from zero: m = 0, v = x'x = 4 */
    m = make_linear(s1, 2, 2);
    learn1(m, x, 2, 1);
    weights(m, w, 2);
    CHECK_RC(sw_linear_sigma(m, sg, 2, &err), SW_OK, &err);
    phi = phi9;
    zeta = 1 + phi * phi;
    v = 4;
    alpha = sqrt(v * phi * phi * zeta) / (v * zeta);
    u = pow(-alpha * v * phi + sqrt(alpha * alpha * v * v * phi * phi + 4 * v),
            2) /
        4;
    beta = alpha * phi / (sqrt(u) + v * alpha * phi);
    CHECK_NEAR(w[0], alpha * 2, 1e-13); /* alpha y Sigma x */
    CHECK_NEAR(w[1], 0, 1e-15);
    CHECK_NEAR(sg[0], 1 - beta * 4, 1e-13); /* 1 - beta (Sigma x)_0^2 */
    CHECK_NEAR(sg[1], 1, 1e-15);
    sw_model_free(m);

    /* SCW-II from zero, class 0 (y = -1): m = 0 */
    m = make_linear(s2, 2, 2);
    learn1(m, x, 2, 0);
    weights(m, w, 2);
    CHECK_RC(sw_linear_sigma(m, sg, 2, &err), SW_OK, &err);
    phi = phi8;
    v = 4;
    m2 = 0;
    n = v + 1 / (2 * 0.5);
    gamma = phi *
            sqrt(phi * phi * m2 * m2 * v * v + 4 * n * v * (n + v * phi * phi));
    alpha = (-(2 * m2 * n + phi * phi * m2 * v) + gamma) /
            (2 * (n * n + n * v * phi * phi));
    u = pow(-alpha * v * phi + sqrt(alpha * alpha * v * v * phi * phi + 4 * v),
            2) /
        4;
    beta = alpha * phi / (sqrt(u) + v * alpha * phi);
    CHECK_NEAR(w[0], -alpha * 2, 1e-13);
    CHECK_NEAR(sg[0], 1 - beta * 4, 1e-13);
    sw_model_free(m);

    /* PA keeps no covariance */
    m = make_linear(NO_B, 2, 2);
    CHECK_RC(sw_linear_sigma(m, sg, 2, &err), SW_E_STATE, &err);
    sw_model_free(m);
}

static void
test_edge_cases(void)
{
    const double zero[2] = {0, 0};
    const double rows[6] = {1, 2, NAN, 1, 3, 4};
    double y[3] = {1, 0, 1}, w[2];
    int64_t n_done = -1, n_seen, n_upd;
    sw_rows v = dense_view(rows, 3, 2);
    sw_err err = {0};
    sw_model *m = make_linear(NO_B, 2, 2);

    /* a zero row with no intercept changes nothing */
    learn1(m, zero, 2, 1);
    weights(m, w, 2);
    CHECK(w[0] == 0 && w[1] == 0);
    sw_linear_counts(m, &n_seen, &n_upd);
    CHECK(n_seen == 1 && n_upd == 0);

    /* NaN in row 1, column 0: row 0 learned, then a clear error */
    CHECK_RC(sw_linear_learn(m, &v, y, 3, &n_done, &err), SW_E_NUMERIC, &err);
    CHECK(n_done == 1);
    CHECK(strstr(err.msg, "row 1, column 0") != NULL);
    sw_linear_counts(m, &n_seen, NULL);
    CHECK(n_seen == 2);

    /* regression target NaN */
    {
        const char *reg[] = {"linear.task", "regression", NULL};
        sw_model *r = make_linear(reg, 2, 0);
        double t = NAN;
        sw_rows one = dense_view(rows, 1, 2);

        CHECK_RC(sw_linear_learn(r, &one, &t, 1, NULL, &err), SW_E_NUMERIC,
                 &err);
        sw_model_free(r);
    }
    /* wrong width */
    v = dense_view(rows, 2, 3);
    CHECK_RC(sw_linear_learn(m, &v, y, 2, NULL, &err), SW_E_SHAPE, &err);
    CHECK(strstr(err.msg, "expects 2") != NULL);
    /* targets and rows disagree */
    v = dense_view(rows, 3, 2);
    CHECK_RC(sw_linear_learn(m, &v, y, 2, NULL, &err), SW_E_SHAPE, &err);
    sw_model_free(m);

    /* bad settings */
    {
        sw_conf *conf = NULL;
        sw_model *bad = NULL;

        CHECK_RC(sw_conf_new(&conf, &err), SW_OK, &err);
        CHECK_RC(sw_linear_new(conf, 0, 2, &bad, &err), SW_E_INVAL, &err);
        CHECK(bad == NULL && strstr(err.msg, "n_features") != NULL);
        CHECK_RC(sw_conf_set(conf, "linear.task", "regression", &err), SW_OK,
                 &err);
        CHECK_RC(sw_conf_set(conf, "linear.algorithm", "scw", &err), SW_OK,
                 &err);
        CHECK_RC(sw_linear_new(conf, 4, 0, &bad, &err), SW_E_INVAL, &err);
        CHECK_RC(sw_conf_set(conf, "linear.task", "classification", &err),
                 SW_OK, &err);
        CHECK_RC(sw_conf_set(conf, "scw.covariance", "full", &err), SW_OK,
                 &err);
        CHECK_RC(sw_linear_new(conf, 4096, 2, &bad, &err), SW_E_INVAL, &err);
        CHECK(strstr(err.msg, "full") != NULL);
        sw_conf_free(conf);
    }
}

/* Duplicate and unsorted sparse columns must learn exactly like the summed,
 * sorted row. */
static void
test_sparse_canonical(void)
{
    const char *kinds[][8] = {
        {"pa.variant", "pa2", NULL},
        {"linear.algorithm", "scw", NULL},
    };
    const double val_a[4] = {0.5, 1.0, 0.5, -2.0};
    const int32_t idx_a[4] = {7, 3, 7, 1}; /* 7 twice, unsorted */
    const int64_t ptr_a[2] = {0, 4};
    const double val_b[3] = {-2.0, 1.0, 1.0};
    const int32_t idx_b[3] = {1, 3, 7};
    const int32_t ptr_b[2] = {0, 3};
    double wa[11], wb[11], y = 1;
    int k;

    for (k = 0; k < 2; k++) {
        sw_model *a = make_linear(kinds[k], 10, 2);
        sw_model *b = make_linear(kinds[k], 10, 2);
        sw_rows va, vb;
        int64_t idx64[4];
        sw_err err = {0};
        int i;

        for (i = 0; i < 4; i++)
            idx64[i] = idx_a[i];
        memset(&va, 0, sizeof(va));
        va.layout = SW_CSR;
        va.dtype = SW_F64;
        va.itype = SW_I64;
        va.n_rows = 1;
        va.n_cols = 10;
        va.data = val_a;
        va.indptr = ptr_a;
        va.indices = idx64;
        vb = va;
        vb.itype = SW_I32;
        vb.data = val_b;
        vb.indptr = ptr_b;
        vb.indices = idx_b;
        CHECK_RC(sw_linear_learn(a, &va, &y, 1, NULL, &err), SW_OK, &err);
        CHECK_RC(sw_linear_learn(b, &vb, &y, 1, NULL, &err), SW_OK, &err);
        weights(a, wa, 11);
        weights(b, wb, 11);
        CHECK(memcmp(wa, wb, sizeof(wa)) == 0);
        CHECK(wa[7] != 0);
        sw_model_free(a);
        sw_model_free(b);
    }
}

static void
test_grow_classes(void)
{
    const char *kinds[][4] = {{NULL}, {"linear.algorithm", "scw", NULL}};
    const double x[4] = {1, -2, 3, 0.5};
    double s2[1], s3[3], w4[4 * 4];
    sw_rows v = dense_view(x, 1, 4);
    sw_err err = {0};
    int k;

    for (k = 0; k < 2; k++) {
        sw_model *m = make_linear(kinds[k], 3, 2);
        sw_rows one = dense_view(x, 1, 3);

        learn1(m, x, 3, 1);
        CHECK_RC(sw_model_predict(m, &one, s2, 1, &err), SW_OK, &err);
        CHECK_RC(sw_linear_add_classes(m, 4, &err), SW_OK, &err);
        CHECK(sw_model_n_outputs(m) == 4 && sw_model_n_classes(m) == 4);
        {
            double s4[4];

            CHECK_RC(sw_model_predict(m, &one, s4, 4, &err), SW_OK, &err);
            CHECK(s4[1] == s2[0] && s4[0] == -s2[0]);
            CHECK(s4[2] == 0 && s4[3] == 0);
        }
        /* a new class learns */
        learn1(m, x, 3, 3);
        CHECK_RC(sw_linear_weights(m, w4, 16, &err), SW_OK, &err);
        CHECK(w4[12] != 0);
        CHECK_RC(sw_linear_add_classes(m, 2, &err), SW_OK, &err); /* no-op */
        CHECK(sw_model_n_classes(m) == 4);
        sw_model_free(m);
    }
    (void)v;
    (void)s3;
}

/* float32 rows and int64 CSR give the same scores as float64 dense. */
static void
test_dtypes(void)
{
    const float xf[6] = {1.5f, -2.0f, 0.25f, 0.0f, 3.0f, -1.0f};
    double xd[6], s_f[2], s_d[2], s_c[2], y[2] = {1, 0};
    const int64_t ptr[3] = {0, 3, 5};
    const int64_t idx[5] = {0, 1, 2, 1, 2};
    const double val[5] = {1.5, -2.0, 0.25, 3.0, -1.0};
    sw_rows vf = dense_view(NULL, 2, 3), vd, vc;
    sw_err err = {0};
    sw_model *m = make_linear(NULL, 3, 2);
    int i;

    for (i = 0; i < 6; i++)
        xd[i] = xf[i];
    vf.dtype = SW_F32;
    vf.data = xf;
    vd = dense_view(xd, 2, 3);
    CHECK_RC(sw_linear_learn(m, &vd, y, 2, NULL, &err), SW_OK, &err);
    memset(&vc, 0, sizeof(vc));
    vc.layout = SW_CSR;
    vc.dtype = SW_F64;
    vc.itype = SW_I64;
    vc.n_rows = 2;
    vc.n_cols = 3;
    vc.data = val;
    vc.indptr = ptr;
    vc.indices = idx;
    CHECK_RC(sw_model_predict(m, &vf, s_f, 2, &err), SW_OK, &err);
    CHECK_RC(sw_model_predict(m, &vd, s_d, 2, &err), SW_OK, &err);
    CHECK_RC(sw_model_predict(m, &vc, s_c, 2, &err), SW_OK, &err);
    CHECK(s_f[0] == s_d[0] && s_f[1] == s_d[1]);
    CHECK_NEAR(s_c[0], s_d[0], 1e-15);
    CHECK_NEAR(s_c[1], s_d[1], 1e-15);
    CHECK_RC(sw_rows_check(&vc, &err), SW_OK, &err);
    {
        const int64_t bad_idx[5] = {0, 1, 5, 1, 2};

        vc.indices = bad_idx;
        CHECK_RC(sw_rows_check(&vc, &err), SW_E_INVAL, &err);
        CHECK_RC(sw_model_predict(m, &vc, s_c, 2, &err), SW_E_INVAL, &err);
        CHECK(strstr(err.msg, "column 5") != NULL);
    }
    sw_model_free(m);
}

/* sw_rows_check takes a fast pass and names what is wrong only when that
 * pass finds something: the errors are the row-by-row loop's, in row
 * order, for both index types. */
static void
test_rows_check_names_the_first_fault(void)
{
    const double val[6] = {1, 2, 3, 4, 5, 6};
    const int64_t ok64[4] = {0, 2, 4, 6}, idx64[6] = {0, 2, 1, 2, 0, 1};
    const int64_t dec64[4] = {0, 2, 1, 6}, neg64[4] = {-1, 2, 4, 6};
    const int64_t badcol64[6] = {0, 2, 1, 2, 0, 3};
    const int64_t negcol64[6] = {0, 2, -1, 2, 0, 1};
    const int32_t ok32[4] = {0, 2, 4, 6}, idx32[6] = {0, 2, 1, 2, 0, 1};
    const int32_t dec32[4] = {0, 4, 3, 6}, badcol32[6] = {0, 2, 1, 7, 0, 1};
    /* a bad column in row 0 and indptr decreasing after it: row 0 first */
    const int64_t early64[6] = {0, 9, 1, 2, 0, 1}, late_dec64[4] = {0, 2, 4, 3};
    sw_rows v;
    sw_err err = {0};

    memset(&v, 0, sizeof(v));
    v.layout = SW_CSR;
    v.dtype = SW_F64;
    v.itype = SW_I64;
    v.n_rows = 3;
    v.n_cols = 3;
    v.data = val;
    v.indptr = ok64;
    v.indices = idx64;
    CHECK_RC(sw_rows_check(&v, &err), SW_OK, &err);
    v.indptr = dec64;
    CHECK_RC(sw_rows_check(&v, &err), SW_E_FORMAT, &err);
    CHECK(strstr(err.msg, "indptr decreases at row 1 (1 < 2)") != NULL);
    v.indptr = neg64;
    CHECK_RC(sw_rows_check(&v, &err), SW_E_FORMAT, &err);
    CHECK(strstr(err.msg, "indptr[0] is -1") != NULL);
    v.indptr = ok64;
    v.indices = badcol64;
    CHECK_RC(sw_rows_check(&v, &err), SW_E_INVAL, &err);
    CHECK(strstr(err.msg, "row 2: column 3 outside 0..2") != NULL);
    v.indices = negcol64;
    CHECK_RC(sw_rows_check(&v, &err), SW_E_INVAL, &err);
    CHECK(strstr(err.msg, "row 1: column -1 outside 0..2") != NULL);
    v.indptr = late_dec64;
    v.indices = early64;
    CHECK_RC(sw_rows_check(&v, &err), SW_E_INVAL, &err);
    CHECK(strstr(err.msg, "row 0: column 9") != NULL);
    v.itype = SW_I32;
    v.indptr = ok32;
    v.indices = idx32;
    CHECK_RC(sw_rows_check(&v, &err), SW_OK, &err);
    v.indptr = dec32;
    CHECK_RC(sw_rows_check(&v, &err), SW_E_FORMAT, &err);
    CHECK(strstr(err.msg, "indptr decreases at row 1 (3 < 4)") != NULL);
    v.indptr = ok32;
    v.indices = badcol32;
    CHECK_RC(sw_rows_check(&v, &err), SW_E_INVAL, &err);
    CHECK(strstr(err.msg, "row 1: column 7 outside 0..2") != NULL);
    v.n_rows = 0; /* no rows: indptr[0] alone */
    CHECK_RC(sw_rows_check(&v, &err), SW_OK, &err);
}

/* Prequential: predictions come before learning, metric is running. */
static void
test_prequential(void)
{
    const double x[4] = {1, 0, 0, 1};
    double y[2] = {1, 1}, pred[2], acc[2];
    sw_rows v = dense_view(x, 2, 2);
    sw_err err = {0};
    sw_model *m = make_linear(NO_B, 2, 2);

    CHECK_RC(sw_linear_prequential(m, &v, y, 2, pred, acc, NULL, &err), SW_OK,
             &err);
    CHECK(pred[0] == 0); /* w = 0: decision 0 is class 0 */
    CHECK(pred[1] == 0); /* row 2 is orthogonal to row 1 */
    CHECK(acc[0] == 0 && acc[1] == 0);
    sw_model_free(m);
}

void
test_linear(void)
{
    test_rows_check_names_the_first_fault();
    test_pa_binary();
    test_pa_intercept_and_regression();
    test_pa_multiclass();
    test_scw();
    test_edge_cases();
    test_sparse_canonical();
    test_grow_classes();
    test_dtypes();
    test_prequential();
}
