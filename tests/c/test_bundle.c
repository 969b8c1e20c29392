/* SPDX-License-Identifier: MIT */
/*
 * test_bundle.c - a model that carries its pipeline: the file round trip
 * keeps spec, inputs and golden events and re-scores them at load; the one
 * feature-row-to-model-row function scores a result and its copy alike;
 * arrival emission processes in arrival order; every allocation of the
 * bundle's calls may fail without a leak.
 */
#include <string.h>
#include <unistd.h>

#include "pipeline/sw_pipeline_int.h"
#include "sw_test.h"

static const char *const spec =
    "{\"events\": {\"time\": \"ts\", \"fields\": {\"user\": \"str\", "
    "\"price\": \"float64\"}}, \"features\": ["
    "{\"name\": \"n\", \"op\": \"count\", \"key\": \"user\"},"
    "{\"name\": \"mu\", \"op\": \"mean\", \"key\": \"user\", "
    "\"field\": \"price\", \"default\": -1},"
    "{\"name\": \"p\", \"op\": \"value\", \"field\": \"price\"},"
    "{\"name\": \"h\", \"op\": \"hash\", \"fields\": [\"user\"], "
    "\"dims\": 16}], \"emission\": \"arrival\", "
    "\"watermark\": {\"out_of_orderness\": \"5s\"}}";

#define N_EV 12

typedef struct events {
    int64_t ts[N_EV];
    char user[N_EV][4];
    double price[N_EV];
    sw_column cols[3];
    sw_batch b;
} events;

static void
make_events(events *e)
{
    int i;

    memset(e, 0, sizeof(*e));
    for (i = 0; i < N_EV; i++) {
        /* times go back now and then: arrival order must still rule */
        e->ts[i] = 1000 * i - (i % 3 == 2 ? 2500 : 0) + 10000;
        e->user[i][0] = 'a' + (char)(i % 3);
        e->price[i] = 1.5 * i;
    }
    e->cols[0] = (sw_column){"ts", SW_COL_I64, e->ts, 0, NULL};
    e->cols[1] = (sw_column){"user", SW_COL_STR, e->user, 4, NULL};
    e->cols[2] = (sw_column){"price", SW_COL_F64, e->price, 0, NULL};
    e->b.n_rows = N_EV;
    e->b.n_columns = 3;
    e->b.columns = e->cols;
}

/* A linear model over inputs (n, mu, p) + the 16 hashed columns, taught
 * on the events' rows so that its weights are not zero. */
static sw_model *
trained(sw_pipeline *p, const sw_result *r)
{
    const char *kv[] = {"linear.algorithm", "pa", NULL};
    sw_model *m = make_linear(kv, 3 + 16, 2);
    double y[N_EV];
    int64_t i, n = sw_result_rows(r), ind[N_EV * 4], ptr[N_EV + 1];
    double val[N_EV * 4];
    sw_rows x;

    for (i = 0; i < n; i++) {
        const double *d = sw_result_dense(r) + i * 3;

        ptr[i] = i * 4;
        val[i * 4] = d[0];
        val[i * 4 + 1] = d[1];
        val[i * 4 + 2] = d[2];
        val[i * 4 + 3] = 1.0;
        ind[i * 4] = 0;
        ind[i * 4 + 1] = 1;
        ind[i * 4 + 2] = 2;
        ind[i * 4 + 3] = 3 + sw_result_indices(r)[i];
        y[i] = (double)(i % 2);
    }
    ptr[n] = n * 4;
    memset(&x, 0, sizeof(x));
    x.layout = SW_CSR;
    x.dtype = SW_F64;
    x.itype = SW_I64;
    x.n_rows = n;
    x.n_cols = 19;
    x.data = val;
    x.indptr = ptr;
    x.indices = ind;
    sw_linear_learn(m, &x, y, n, NULL, NULL);
    (void)p;
    return m;
}

typedef struct ctx {
    model_case mc; /* first: the shared model ops take the ctx */
    sw_pipeline *p;
    events *ev;
} ctx;

static const char *const inputs[] = {"n", "mu", "p"};

static sw_rc
op_set_pipeline(void *v, sw_err *err)
{
    ctx *c = v;

    return sw_model_set_pipeline(c->mc.m, c->p, inputs, 3, 1, err);
}

static sw_rc
op_set_golden_events(void *v, sw_err *err)
{
    ctx *c = v;

    return sw_model_set_golden_events(c->mc.m, &c->ev->b, err);
}

void
test_bundle(void)
{
    const char *path = "bundle.swm";
    sw_pipeline *p = NULL;
    sw_result *r = NULL;
    sw_model *m = NULL, *back = NULL;
    sw_err err = {0};
    events ev;
    double a[N_EV], b[N_EV], dense[N_EV * 3];
    int64_t hashed[N_EV], n, i;
    uint64_t sh, sc;
    const char *const *names;
    int sparse;
    ctx c;

    make_events(&ev);
    CHECK_RC(sw_pipeline_new(spec, &p, &err), SW_OK, &err);
    CHECK(sw_pipeline_arrival(p) == 1);
    CHECK_RC(sw_result_new(&r, &err), SW_OK, &err);
    CHECK_RC(sw_pipeline_push(p, &ev.b, r, &err), SW_OK, &err);
    n = sw_result_rows(r);
    /* arrival: every event out of its own push, in arrival order, though
     * times went back */
    CHECK(n == N_EV);
    for (i = 0; i < n; i++)
        CHECK(sw_result_seq(r)[i] == i);
    /* value passes the price; default replaces the first event's NaN */
    CHECK(sw_result_dense(r)[2] == 0.0 && sw_result_dense(r)[1] == -1.0);
    CHECK(sw_result_dense(r)[3 * 3 + 1] == 0.0); /* a: mean of 0.0 */

    m = trained(p, r);
    CHECK_RC(sw_model_predict_result(m, p, r, a, n, &err), SW_E_STATE, &err);
    CHECK_RC(sw_model_set_pipeline(m, p, inputs, 2, 1, &err), SW_E_SHAPE,
             &err);
    {
        const char *bad[] = {"n", "nope", "p"};

        CHECK_RC(sw_model_set_pipeline(m, p, bad, 3, 1, &err), SW_E_INVAL,
                 &err);
    }
    CHECK_RC(sw_model_set_pipeline(m, p, inputs, 3, 1, &err), SW_OK, &err);
    CHECK_RC(sw_model_set_golden_events(m, &ev.b, &err), SW_OK, &err);
    CHECK_RC(sw_model_predict_result(m, p, r, a, n, &err), SW_OK, &err);
    /* the same rows held elsewhere score the same bits */
    memcpy(dense, sw_result_dense(r), sizeof(dense));
    memcpy(hashed, sw_result_indices(r), sizeof(hashed));
    CHECK_RC(sw_model_predict_features(m, p, dense, hashed, n, b, n, &err),
             SW_OK, &err);
    CHECK(memcmp(a, b, sizeof(a)) == 0);
    hashed[0] = 16;
    CHECK_RC(sw_model_predict_features(m, p, dense, hashed, n, b, n, &err),
             SW_E_INVAL, &err);

    CHECK_RC(sw_model_save(m, path, &err), SW_OK, &err);
    CHECK_RC(sw_model_load(path, &back, &err), SW_OK, &err);
    if (back != NULL) {
        sw_model_pipeline_hashes(back, &sh, &sc);
        CHECK(sh == sw_pipeline_spec_hash(p) && sh != 0 && sc != 0);
        CHECK(sw_model_pipeline_inputs(back, &names, &sparse) == 3);
        CHECK(sparse == 1 && !strcmp(names[1], "mu"));
        CHECK(strstr(sw_model_pipeline_spec(back), "emission") == NULL);
        CHECK_RC(sw_model_predict_result(back, p, r, b, n, &err), SW_OK,
                 &err);
        CHECK(memcmp(a, b, sizeof(a)) == 0);
    }
    sw_model_free(back);
    back = NULL;
    {
        /* a watermark pipeline of the same spec computes the same
         * features: the bundle takes it; another spec it refuses */
        sw_pipeline *q = NULL;
        char other[1024];
        const char *at = strstr(spec, "\"default\": -1");

        snprintf(other, sizeof(other), "%.*s\"default\": -2%s",
                 (int)(at - spec), spec, at + strlen("\"default\": -1"));
        CHECK_RC(sw_pipeline_new(other, &q, &err), SW_OK, &err);
        CHECK_RC(sw_model_predict_result(m, q, r, b, n, &err), SW_E_INVAL,
                 &err);
        CHECK(strstr(err.msg, "not the one the model was trained on") != NULL);
        sw_pipeline_free(q);
    }

    memset(&c, 0, sizeof(c));
    c.p = p;
    c.ev = &ev;
    c.mc.path = path;
    c.mc.m = trained(p, r);
    oom_loop("bundle set_pipeline", op_set_pipeline, &c);
    oom_loop("bundle set_golden_events", op_set_golden_events, &c);
    oom_loop("bundle save", op_model_save, &c);
    oom_loop("bundle save_buffer", op_model_buffer, &c);
    oom_loop("bundle load", op_model_load, &c);
    oom_loop("bundle dup", op_model_dup, &c);
    sw_model_free(c.mc.m);
    sw_model_free(m);
    sw_result_free(r);
    sw_pipeline_free(p);
    unlink(path);
    CHECK(sw__alloc_live() == 0);
}

/* A checkpoint is checksummed, not signed: one written from a state no
 * update could make (crafted, or a bug) must be refused on restore, not
 * trusted into hll_add's stack array or a window's negative index. */
void
test_crafted_checkpoints(void)
{
    static const char *const spec2 =
        "{\"events\": {\"time\": \"ts\", \"fields\": {\"user\": \"str\", "
        "\"item\": \"int64\"}}, \"features\": ["
        "{\"name\": \"d\", \"op\": \"distinct\", \"key\": \"user\", "
        "\"field\": \"item\"},"
        "{\"name\": \"h\", \"op\": \"count\", \"key\": \"user\", "
        "\"window\": {\"hopping\": \"1h\", \"every\": \"10m\"}}],"
        "\"watermark\": {\"out_of_orderness\": \"1h\"}}";
    int64_t ts[4] = {1000, 2000, 3000, 4000}, item[4] = {1, 2, 3, 4};
    char user[4][2] = {"a", "a", "b", "a"};
    sw_column cols[3] = {{"ts", SW_COL_I64, ts, 0, NULL},
                         {"user", SW_COL_STR, user, 2, NULL},
                         {"item", SW_COL_I64, item, 0, NULL}};
    sw_batch b = {4, 3, cols};
    sw_pipeline *p = NULL, *q = NULL;
    sw_result *r = NULL;
    sw_err err = {0};
    uint64_t *e, saved;
    int64_t t_saved;

    CHECK_RC(sw_pipeline_new(spec2, &p, &err), SW_OK, &err);
    CHECK_RC(sw_result_new(&r, &err), SW_OK, &err);
    CHECK_RC(sw_pipeline_push(p, &b, r, &err), SW_OK, &err);
    CHECK_RC(sw_pipeline_flush(p, r, &err), SW_OK, &err);
    CHECK_RC(sw_pipeline_push(p, &b, r, &err), SW_OK, &err); /* buffered */
    CHECK(p->n_pend == 4);
    CHECK_RC(sw_pipeline_checkpoint(p, "crafted.swc", NULL, 0, &err), SW_OK,
             &err);
    CHECK_RC(sw_pipeline_restore("crafted.swc", &q, &err), SW_OK, &err);
    sw_pipeline_free(q);
    q = NULL;
    /* an exact distinct count of 255 values in a 16-word state */
    e = kt_entry(&p->tables[0], 0);
    saved = e[2];
    e[2] = ((uint64_t)0xff << 56) | 255;
    CHECK_RC(sw_pipeline_checkpoint(p, "crafted.swc", NULL, 0, &err), SW_OK,
             &err);
    CHECK_RC(sw_pipeline_restore("crafted.swc", &q, &err), SW_E_FORMAT, &err);
    CHECK(q == NULL && strstr(err.msg, "distinct count") != NULL);
    e[2] = saved;
    /* a buffered event before 1970 */
    t_saved = ((int64_t *)p->pend)[0];
    ((int64_t *)p->pend)[0] = -3600000000LL;
    CHECK_RC(sw_pipeline_checkpoint(p, "crafted.swc", NULL, 0, &err), SW_OK,
             &err);
    CHECK_RC(sw_pipeline_restore("crafted.swc", &q, &err), SW_E_FORMAT, &err);
    CHECK(q == NULL && strstr(err.msg, "buffered event 0 has time") != NULL);
    ((int64_t *)p->pend)[0] = t_saved;
    /* a key last seen near INT64_MIN (fuzz_checkpoint: a ttl's "now -
     * last seen" overflowed) */
    e = kt_entry(&p->tables[0], 0);
    saved = e[1];
    e[1] = (uint64_t)(INT64_MIN + 34000000);
    CHECK_RC(sw_pipeline_checkpoint(p, "crafted.swc", NULL, 0, &err), SW_OK,
             &err);
    CHECK_RC(sw_pipeline_restore("crafted.swc", &q, &err), SW_E_FORMAT, &err);
    CHECK(q == NULL && strstr(err.msg, "last seen at") != NULL);
    e[1] = saved;
    /* a clock past 9999 */
    t_saved = p->max_t;
    p->max_t = INT64_MAX - 5;
    CHECK_RC(sw_pipeline_checkpoint(p, "crafted.swc", NULL, 0, &err), SW_OK,
             &err);
    CHECK_RC(sw_pipeline_restore("crafted.swc", &q, &err), SW_E_FORMAT, &err);
    CHECK(q == NULL && strstr(err.msg, "clock") != NULL);
    p->max_t = t_saved;
    CHECK_RC(sw_pipeline_checkpoint(p, "crafted.swc", NULL, 0, &err), SW_OK,
             &err);
    CHECK_RC(sw_pipeline_restore("crafted.swc", &q, &err), SW_OK, &err);
    sw_pipeline_free(q);
    sw_result_free(r);
    sw_pipeline_free(p);
    unlink("crafted.swc");
    CHECK(sw__alloc_live() == 0);
}
