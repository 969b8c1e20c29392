/* SPDX-License-Identifier: MIT */
/*
 * test_oom.c - every public function with its n-th allocation failing in
 * turn: each failure must be SW_E_NOMEM, with OUT parameters NULL, nothing
 * leaked, and the object the call works on unchanged.
 */
#include <math.h>
#include <string.h>
#include <unistd.h>

#include "sw_internal.h"
#include "sw_test.h"

/* Run op with the n-th allocation failing for n = 0, 1, ... until it
 * succeeds. before/after snapshots let a case check "unchanged". */
void
oom_loop(const char *what, op_fn op, void *ctx)
{
    long n;

    for (n = 0; n < 100000; n++) {
        long live = sw__alloc_live();
        sw_err err = {0};
        sw_rc rc;

        sw__alloc_fail_after(n);
        rc = op(ctx, &err);
        sw__alloc_fail_after(-1);
        if (rc == SW_OK)
            return;
        if (rc != SW_E_NOMEM || sw__alloc_live() != live) {
            sw_test_failed++;
            fprintf(stderr, "oom %s: allocation %ld: %s (%s), %ld leaked\n",
                    what, n, sw_rc_name(rc), err.msg, sw__alloc_live() - live);
            return;
        }
        sw_test_passed++;
    }
}

typedef struct ctx {
    model_case mc; /* first: the shared model ops take the ctx */
    sw_conf *conf;
    sw_model *out;
    sw_rows x;
    double y[6];
    double pred[6 * 3];
    double w_before[64];
    int64_t n_classes;
    double gx[60 * 3], gy[60]; /* the GBDT case's rows */
} ctx;

static sw_rc
op_conf_new(void *p, sw_err *err)
{
    ctx *c = p;
    sw_conf *conf = (sw_conf *)&conf;
    sw_rc rc = sw_conf_new(&conf, err);

    if (rc != SW_OK && conf != NULL)
        return SW_E_INTERNAL; /* OUT must be NULL on failure */
    sw_conf_free(conf);
    (void)c;
    return rc;
}

static sw_rc
op_conf_dup(void *p, sw_err *err)
{
    ctx *c = p;
    sw_conf *copy = (sw_conf *)&copy;
    sw_rc rc = sw_conf_dup(c->conf, &copy, err);

    if (rc != SW_OK && copy != NULL)
        return SW_E_INTERNAL;
    sw_conf_free(copy);
    return rc;
}

static sw_rc
op_linear_new(void *p, sw_err *err)
{
    ctx *c = p;
    sw_model *m = (sw_model *)&m;
    sw_rc rc = sw_linear_new(c->conf, 4, 3, &m, err);

    if (rc != SW_OK && m != NULL)
        return SW_E_INTERNAL;
    sw_model_free(m);
    return rc;
}

/* Learning is checked for "unchanged": on failure the weights are what
 * they were before the call. */
static sw_rc
op_learn(void *p, sw_err *err)
{
    ctx *c = p;
    int64_t nw = sw_linear_n_vectors(c->mc.m) * 5;
    double w[64];
    sw_rc rc;

    sw_linear_weights(c->mc.m, c->w_before, nw, NULL);
    rc = sw_linear_learn(c->mc.m, &c->x, c->y, c->x.n_rows, NULL, err);
    if (rc != SW_OK) {
        sw_linear_weights(c->mc.m, w, nw, NULL);
        if (memcmp(w, c->w_before, (size_t)nw * sizeof(double)) != 0)
            return SW_E_INTERNAL;
    }
    return rc;
}

static sw_rc
op_prequential(void *p, sw_err *err)
{
    ctx *c = p;

    return sw_linear_prequential(c->mc.m, &c->x, c->y, c->x.n_rows, c->pred, NULL,
                                 NULL, err);
}

static sw_rc
op_predict(void *p, sw_err *err)
{
    ctx *c = p;

    return sw_model_predict(c->mc.m, &c->x, c->pred,
                            c->x.n_rows * sw_model_n_outputs(c->mc.m), err);
}

static sw_rc
op_add_classes(void *p, sw_err *err)
{
    ctx *c = p;
    int64_t before = sw_model_n_classes(c->mc.m);
    sw_rc rc = sw_linear_add_classes(c->mc.m, 5, err);

    if (rc != SW_OK && sw_model_n_classes(c->mc.m) != before)
        return SW_E_INTERNAL;
    return rc;
}

static sw_rc
op_set_golden(void *p, sw_err *err)
{
    ctx *c = p;

    return sw_model_set_golden(c->mc.m, &c->x, err);
}

sw_rc
op_model_save(void *p, sw_err *err)
{
    model_case *c = p;

    return sw_model_save(c->m, c->path, err);
}

sw_rc
op_model_load(void *p, sw_err *err)
{
    model_case *c = p;
    sw_model *m = (sw_model *)&m;
    sw_rc rc = sw_model_load(c->path, &m, err);

    if (rc != SW_OK && m != NULL)
        return SW_E_INTERNAL; /* OUT must be NULL on failure */
    sw_model_free(m);
    return rc;
}

/* Save to memory and read it back, as pickling does. */
sw_rc
op_model_buffer(void *p, sw_err *err)
{
    model_case *c = p;
    unsigned char *buf = (unsigned char *)&buf;
    size_t len = 1;
    sw_model *m = (sw_model *)&m;
    sw_rc rc = sw_model_save_buffer(c->m, &buf, &len, err);

    if (rc != SW_OK)
        return buf == NULL && len == 0 ? rc : SW_E_INTERNAL;
    rc = sw_model_load_buffer(buf, len, &m, err);
    sw_buffer_free(buf);
    if (rc != SW_OK && m != NULL)
        return SW_E_INTERNAL;
    sw_model_free(m);
    return rc;
}

static sw_rc
op_inspect(void *p, sw_err *err)
{
    ctx *c = p;
    FILE *fp = fopen("/dev/null", "w");
    sw_rc rc = sw_model_inspect(c->mc.path, fp, err);

    fclose(fp);
    return rc;
}

sw_rc
op_model_dup(void *p, sw_err *err)
{
    model_case *c = p;
    sw_model *m = (sw_model *)&m;
    sw_rc rc = sw_model_dup(c->m, &m, err);

    if (rc != SW_OK && m != NULL)
        return SW_E_INTERNAL;
    sw_model_free(m);
    return rc;
}

static sw_rc
op_set_metadata(void *p, sw_err *err)
{
    ctx *c = p;

    return sw_model_set_metadata(c->mc.m, "{\"a\": 1}", err);
}

/* Growing a big block keeps its bytes and reads zeros past them; a failed
 * growth leaves the block as it was. Sizes cross the small/big line and
 * then stay big, where the pages move instead of being copied. */
static void
test_realloc_big(void)
{
    size_t sizes[] = {1000, 3u << 20, 5u << 20, 9u << 20, 40u << 20}, i, k;
    unsigned char *p = sw__calloc_big(sizes[0]), *q;

    CHECK(p != NULL);
    memset(p, 0xA5, sizes[0]);
    for (k = 1; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
        sw__alloc_fail_after(0);
        q = sw__realloc_big(p, sizes[k - 1], sizes[k]);
        sw__alloc_fail_after(-1);
        CHECK(q == NULL);
        CHECK(p[0] == 0xA5 && p[sizes[k - 1] - 1] == 0xA5);
        q = sw__realloc_big(p, sizes[k - 1], sizes[k]);
        CHECK(q != NULL);
        if (q == NULL)
            break;
        p = q;
        for (i = 0; i < sizes[k - 1]; i += 4093)
            CHECK(p[i] == 0xA5);
        for (i = sizes[k - 1]; i < sizes[k]; i += 4093)
            CHECK(p[i] == 0);
        CHECK(p[sizes[k] - 1] == 0);
        memset(p, 0xA5, sizes[k]);
    }
    sw__free_big(p, sizes[k - 1]);
    CHECK(sw__alloc_live() == 0);
}

/* ---- the JSON decoder and a GBDT fit under the fault loop ---------- */

static sw_rc
op_decoder(void *p, sw_err *err)
{
    static const char *schema =
        "{\"time\": \"ts\", \"time_unit\": \"ms\", \"fields\": "
        "{\"user\": \"str\", \"x\": \"float64\", \"n\": \"int64\"}}";
    static const char msgs[] =
        "{\"ts\": 5, \"user\": \"ann\", \"x\": 1.5, \"n\": 3}"
        "{\"ts\": 6, \"user\": \"bob\", \"x\": -2, \"n\": 4}"
        "not json";
    int64_t at[3] = {0, 42, 83}, len[3] = {42, 41, 8}, rows = 0;
    sw_json_decoder *d = (sw_json_decoder *)&d;
    sw_rc rc;

    (void)p;
    rc = sw_json_decoder_new(schema, &d, err);
    if (rc != SW_OK)
        return d == NULL ? rc : SW_E_INTERNAL;
    rc = sw_json_decode(d, (const unsigned char *)msgs, at, len, NULL, 3, &rows,
                        err);
    if (rc == SW_OK && rows != 2)
        rc = SW_E_INTERNAL;
    sw_json_decoder_free(d);
    return rc;
}

static sw_rc
op_gbdt_fit(void *p, sw_err *err)
{
    ctx *c = p;
    sw_model *m = (sw_model *)&m;
    sw_rc rc = sw_gbdt_fit(c->conf, &c->x, c->gy, NULL, NULL, NULL, NULL,
                           NULL, NULL, &m, err);

    if (rc != SW_OK)
        return m == NULL ? rc : SW_E_INTERNAL;
    sw_model_free(m);
    return rc;
}

static void
test_oom_decoder_gbdt(void)
{
    ctx c;
    int i;

    memset(&c, 0, sizeof(c));
    oom_loop("json decoder", op_decoder, &c);
    for (i = 0; i < 60; i++) {
        c.gx[i * 3] = i % 7;
        c.gx[i * 3 + 1] = i % 5 == 0 ? NAN : (double)(i % 11) / 3;
        c.gx[i * 3 + 2] = -i;
        c.gy[i] = (i % 7) + (i % 11) / 3 > 5;
    }
    c.x.layout = SW_DENSE;
    c.x.dtype = SW_F64;
    c.x.n_rows = 60;
    c.x.n_cols = c.x.row_stride = 3;
    c.x.data = c.gx;
    sw_conf_new(&c.conf, NULL);
    sw_conf_set(c.conf, "gbdt.n_estimators", "3", NULL);
    sw_conf_set(c.conf, "gbdt.min_data_in_leaf", "2", NULL);
    sw_conf_set(c.conf, "gbdt.bagging_fraction", "0.8", NULL);
    oom_loop("gbdt fit", op_gbdt_fit, &c);
    sw_conf_set(c.conf, "gbdt.threads", "2", NULL);
    oom_loop("gbdt fit, 2 threads", op_gbdt_fit, &c);
    sw_conf_free(c.conf);
}

void
test_oom(void)
{
    /* float32 rows force a conversion buffer; CSR with unsorted columns
     * forces the canonical copy, so both allocations are exercised. */
    static const float xf[6 * 4] = {1, 2, 0, -1, 0.5f, 0, 3, 1, -1, -1, 2,  0,
                                    1, 0, 0, 0,  2,    1, 1, 1, 0,  3,  -2, 1};
    static const double val[4] = {1.0, 2.0, 0.5, -1.0};
    static const int64_t idx[4] = {3, 1, 3, 0};
    static const int64_t ptr[7] = {0, 2, 4, 4, 4, 4, 4};
    const char *kinds[][6] = {
        {"linear.algorithm", "scw", NULL},
        {"linear.algorithm", "scw", "scw.covariance", "full", NULL},
        {"pa.variant", "pa2", NULL},
    };
    ctx c;
    int k, layout;

    memset(&c, 0, sizeof(c));
    c.mc.path = "oom.swm";
    sw_conf_new(&c.conf, NULL);
    oom_loop("conf_new", op_conf_new, &c);
    oom_loop("conf_dup", op_conf_dup, &c);
    oom_loop("linear_new", op_linear_new, &c);
    sw_conf_free(c.conf);
    c.conf = NULL;

    for (k = 0; k < 3; k++) {
        for (layout = 0; layout < 2; layout++) {
            int i;

            memset(&c.x, 0, sizeof(c.x));
            c.x.n_rows = 6;
            c.x.n_cols = 4;
            if (layout == 0) {
                c.x.layout = SW_DENSE;
                c.x.dtype = SW_F32;
                c.x.row_stride = 4;
                c.x.data = xf;
            } else {
                c.x.layout = SW_CSR;
                c.x.dtype = SW_F64;
                c.x.itype = SW_I64;
                c.x.data = val;
                c.x.indptr = ptr;
                c.x.indices = idx;
            }
            for (i = 0; i < 6; i++)
                c.y[i] = i % 3;
            c.mc.m = make_linear(kinds[k], 4, 3);
            oom_loop("learn", op_learn, &c);
            oom_loop("prequential", op_prequential, &c);
            oom_loop("predict", op_predict, &c);
            oom_loop("set_metadata", op_set_metadata, &c);
            oom_loop("set_golden", op_set_golden, &c);
            oom_loop("save", op_model_save, &c);
            oom_loop("save_buffer", op_model_buffer, &c);
            oom_loop("load", op_model_load, &c);
            oom_loop("inspect", op_inspect, &c);
            oom_loop("dup", op_model_dup, &c);
            oom_loop("add_classes", op_add_classes, &c);
            sw_model_free(c.mc.m);
        }
    }
    /* binary to multiclass growth moves the weights: its allocations too */
    c.mc.m = make_linear(kinds[0], 4, 2);
    oom_loop("add_classes binary", op_add_classes, &c);
    CHECK(sw_model_n_classes(c.mc.m) == 5);
    sw_model_free(c.mc.m);
    unlink(c.mc.path);
    CHECK(sw__alloc_live() == 0);
    test_realloc_big();
    test_oom_decoder_gbdt();
    CHECK(sw__alloc_live() == 0);
}
