/* SPDX-License-Identifier: MIT */
/*
 * test_als.c - ALS in C: an explicit problem with a known exact fit, the
 * same factors at any thread count, recommendation order, the model file,
 * and every ALS entry point with its n-th allocation failing.
 */
#include <math.h>
#include <string.h>
#include <unistd.h>

#include "sw_internal.h"
#include "sw_test.h"

/* A 6 x 5 rank-1 rating matrix r_ui = a_u b_i with a few entries missing,
 * as CSR (and its transpose). */
static const double A_[6] = {1, 2, 3, 1.5, 2.5, 0.5};
static const double B_[5] = {1, 2, 1.5, 0.5, 3};
static int64_t ptr[7], col[30], tptr[6], tcol[30];
static double val[30], tval[30];

static void
build(sw_rows *R, sw_rows *RT)
{
    int64_t u, i, n = 0, t = 0;

    ptr[0] = 0;
    for (u = 0; u < 6; u++) {
        for (i = 0; i < 5; i++) {
            if ((u + i) % 4 == 3)
                continue; /* missing */
            col[n] = i;
            val[n++] = A_[u] * B_[i];
        }
        ptr[u + 1] = n;
    }
    tptr[0] = 0;
    for (i = 0; i < 5; i++) {
        for (u = 0; u < 6; u++) {
            if ((u + i) % 4 == 3)
                continue;
            tcol[t] = u;
            tval[t++] = A_[u] * B_[i];
        }
        tptr[i + 1] = t;
    }
    memset(R, 0, sizeof(*R));
    R->layout = SW_CSR;
    R->dtype = SW_F64;
    R->itype = SW_I64;
    R->n_rows = 6;
    R->n_cols = 5;
    R->data = val;
    R->indptr = ptr;
    R->indices = col;
    *RT = *R;
    RT->n_rows = 5;
    RT->n_cols = 6;
    RT->data = tval;
    RT->indptr = tptr;
    RT->indices = tcol;
}

static sw_model *
make_als(const char *const *kv)
{
    sw_conf *conf = NULL;
    sw_model *m = NULL;
    sw_err err = {0};

    sw_conf_new(&conf, NULL);
    for (; kv && kv[0]; kv += 2)
        CHECK_RC(sw_conf_set(conf, kv[0], kv[1], &err), SW_OK, &err);
    CHECK_RC(sw_als_new(conf, 6, 5, &m, &err), SW_OK, &err);
    sw_conf_free(conf);
    return m;
}

static void
test_explicit_rank1(void)
{
    const char *kv[] = {"als.explicit",       "true", "als.factors", "1",
                        "als.regularization", "1e-9", NULL};
    sw_model *m = make_als(kv);
    sw_rows R, RT;
    sw_err err = {0};
    double loss = 1, pair[2] = {4, 4}, score;
    sw_rows p;
    int it;

    build(&R, &RT);
    for (it = 0; it < 30; it++)
        CHECK_RC(sw_als_iterate(m, &R, &RT, &loss, &err), SW_OK, &err);
    CHECK(loss < 1e-6);
    if (!(loss < 1e-6))
        fprintf(stderr, "  rank-1 loss %g\n", loss);
    /* a missing entry (4, 4)... (4 + 4) % 4 == 0, present; (0, 3) missing */
    pair[0] = 0;
    pair[1] = 3;
    memset(&p, 0, sizeof(p));
    p.layout = SW_DENSE;
    p.dtype = SW_F64;
    p.n_rows = 1;
    p.n_cols = 2;
    p.row_stride = 2;
    p.data = pair;
    CHECK_RC(sw_model_predict(m, &p, &score, 1, &err), SW_OK, &err);
    CHECK_NEAR(score, A_[0] * B_[3], 1e-3); /* recovered, not seen */
    pair[0] = 7;
    CHECK_RC(sw_model_predict(m, &p, &score, 1, &err), SW_E_INVAL, &err);
    sw_model_free(m);
}

static void
test_threads_and_recommend(void)
{
    const char *one[] = {"als.factors", "3", "als.threads", "1", NULL};
    const char *three[] = {"als.factors", "3", "als.threads", "3", NULL};
    sw_model *a = make_als(one), *b = make_als(three);
    sw_rows R, RT;
    sw_err err = {0};
    float fa[18], fb[18], sc[4], si[8];
    int64_t ids[2] = {0, 5}, items[8], sim[4], it;

    build(&R, &RT);
    for (it = 0; it < 3; it++) {
        CHECK_RC(sw_als_iterate(a, &R, &RT, NULL, &err), SW_OK, &err);
        CHECK_RC(sw_als_iterate(b, &R, &RT, NULL, &err), SW_OK, &err);
    }
    CHECK_RC(sw_als_get_factors(a, 0, fa, 18, &err), SW_OK, &err);
    CHECK_RC(sw_als_get_factors(b, 0, fb, 18, &err), SW_OK, &err);
    CHECK(memcmp(fa, fb, sizeof(fa)) == 0);
    /* user 0 misses item 3 only: with its liked items left out, item 3
     * comes first and the rest is padding */
    CHECK_RC(sw_als_set_liked(a, &R, &err), SW_OK, &err);
    CHECK_RC(sw_als_recommend(a, ids, 2, NULL, 4, SW_REC_FILTER_LIKED, NULL,
                              NULL, NULL, 0, items, si, &err),
             SW_OK, &err);
    CHECK(items[0] == 3 && items[1] == -1 && isinf(si[1]));
    CHECK_RC(sw_als_similar(a, 1, ids, 1, 4, NULL, 0, sim, sc, &err), SW_OK,
             &err);
    CHECK(sim[0] == 0 && fabs(sc[0] - 1.0f) < 1e-5);
    ids[0] = 6;
    CHECK_RC(sw_als_recommend(a, ids, 1, NULL, 4, 0, NULL, NULL, NULL, 0, items,
                              si, &err),
             SW_E_INVAL, &err);
    /* the model file round trip keeps the factors and the liked rows */
    {
        sw_model *r = NULL;
        float fr[18];

        CHECK_RC(sw_model_save(a, "als.swm", &err), SW_OK, &err);
        CHECK_RC(sw_model_load("als.swm", &r, &err), SW_OK, &err);
        CHECK_RC(sw_als_get_factors(r, 0, fr, 18, &err), SW_OK, &err);
        CHECK(memcmp(fa, fr, sizeof(fa)) == 0);
        CHECK(sw_als_has_liked(r));
        sw_model_free(r);
        unlink("als.swm");
    }
    sw_model_free(a);
    sw_model_free(b);
}

/* Every ALS entry point with its n-th allocation failing: SW_E_NOMEM and
 * nothing leaked. */
typedef sw_rc (*als_op)(sw_model *m, const sw_rows *R, const sw_rows *RT,
                        sw_err *err);

static sw_rc
op_iterate(sw_model *m, const sw_rows *R, const sw_rows *RT, sw_err *err)
{
    double loss;

    return sw_als_iterate(m, R, RT, &loss, err);
}

static sw_rc
op_cholesky(sw_model *m, const sw_rows *R, const sw_rows *RT, sw_err *err)
{
    float out[6 * 3];

    (void)RT;
    return sw_als_solve_rows(m, 0, R, out, 18, err);
}

static sw_rc
op_recommend(sw_model *m, const sw_rows *R, const sw_rows *RT, sw_err *err)
{
    int64_t ids[3] = {0, 1, 2}, items[12];
    float sc[12];

    (void)RT;
    int64_t cand[3] = {4, 0, 2};
    unsigned char excl[5] = {0, 1, 0, 0, 0};
    sw_rc rc = sw_als_recommend(m, ids, 3, NULL, 4, 0, NULL, excl, NULL, 0,
                                items, sc, err);

    (void)R;
    if (rc == SW_OK)
        rc = sw_als_recommend(m, ids, 3, NULL, 4, 0, NULL, NULL, cand, 3, items,
                              sc, err);
    return rc;
}

static sw_rc
op_similar(sw_model *m, const sw_rows *R, const sw_rows *RT, sw_err *err)
{
    int64_t ids[2] = {0, 1}, out[6];
    float sc[6];

    (void)R;
    (void)RT;
    return sw_als_similar(m, 1, ids, 2, 3, NULL, 0, out, sc, err);
}

static sw_rc
op_metrics(sw_model *m, const sw_rows *R, const sw_rows *RT, sw_err *err)
{
    double out[4];

    (void)RT;
    return sw_ranking_metrics(m, NULL, R, 3, out, NULL, err);
}

static sw_rc
op_liked(sw_model *m, const sw_rows *R, const sw_rows *RT, sw_err *err)
{
    (void)RT;
    return sw_als_set_liked(m, R, err);
}

static sw_rc
op_put(sw_model *m, const sw_rows *R, const sw_rows *RT, sw_err *err)
{
    int64_t ids[1] = {9};
    float v[3] = {1, 2, 3};

    (void)R;
    (void)RT;
    return sw_als_put_rows(m, 1, ids, 1, v, err);
}

static sw_rc
op_leave_out(sw_model *m, const sw_rows *R, const sw_rows *RT, sw_err *err)
{
    unsigned char mask[30];

    (void)m;
    (void)RT;
    return sw_split_leave_k_out(R, 1, 3, mask, ptr[6], err);
}

static void
test_als_oom(void)
{
    static const struct {
        const char *name;
        als_op op;
    } ops[] = {{"iterate", op_iterate},     {"solve_rows", op_cholesky},
               {"recommend", op_recommend}, {"similar", op_similar},
               {"metrics", op_metrics},     {"set_liked", op_liked},
               {"put_rows", op_put},        {"leave_k_out", op_leave_out}};
    const char *kv[] = {"als.factors", "3", "als.threads", "2", NULL};
    sw_rows R, RT;
    size_t o;

    build(&R, &RT);
    for (o = 0; o < sizeof(ops) / sizeof(ops[0]); o++) {
        long n;

        for (n = 0; n < 10000; n++) {
            sw_model *m = make_als(kv);
            long live = sw__alloc_live();
            sw_err err = {0};
            sw_rc rc;

            sw__alloc_fail_after(n);
            rc = ops[o].op(m, &R, &RT, &err);
            sw__alloc_fail_after(-1);
            sw_model_free(m);
            if (rc == SW_OK)
                break;
            if (rc != SW_E_NOMEM) {
                sw_test_failed++;
                fprintf(stderr, "oom als %s: allocation %ld: %s (%s)\n",
                        ops[o].name, n, sw_rc_name(rc), err.msg);
                break;
            }
            (void)live;
            sw_test_passed++;
        }
    }
    /* sw_als_new itself */
    {
        sw_conf *conf = NULL;
        long n;

        sw_conf_new(&conf, NULL);
        for (n = 0; n < 100; n++) {
            sw_model *m = (sw_model *)&m;
            long live = sw__alloc_live();
            sw_rc rc;

            sw__alloc_fail_after(n);
            rc = sw_als_new(conf, 6, 5, &m, NULL);
            sw__alloc_fail_after(-1);
            if (rc == SW_OK) {
                sw_model_free(m);
                break;
            }
            CHECK(rc == SW_E_NOMEM && m == NULL && sw__alloc_live() == live);
        }
        sw_conf_free(conf);
    }
    CHECK(sw__alloc_live() == 0);
}

void
test_als(void)
{
    test_explicit_rank1();
    test_threads_and_recommend();
    test_als_oom();
}
