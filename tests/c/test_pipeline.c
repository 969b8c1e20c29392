/* SPDX-License-Identifier: MIT */
/*
 * test_pipeline.c - the feature pipeline in C: a hand-worked stream with
 * out-of-order, late and invalid events, a checkpoint round trip, spec
 * errors, and every entry point with its n-th allocation failing.
 */
#include <math.h>
#include <string.h>
#include <unistd.h>

#include "sw_internal.h"
#include "sw_test.h"

static const char *SPEC =
    "{\"events\": {\"time\": \"ts\", \"time_unit\": \"s\","
    " \"fields\": {\"user\": \"str\", \"x\": \"float64\"}},"
    " \"features\": [{\"name\": \"n\", \"op\": \"count\", \"key\": \"user\"},"
    " {\"name\": \"mu\", \"op\": \"mean\", \"key\": \"user\", \"field\": "
    "\"x\"},"
    " {\"name\": \"h\", \"op\": \"hash\", \"fields\": [\"user\"], \"dims\": "
    "8}],"
    " \"watermark\": {\"out_of_orderness\": \"2s\"}}";

/* Every operator with its allocating settings (column names, value
 * lists, rings), for the allocation-failure loop. */
static const char *SPEC_ALL =
    "{\"events\": {\"time\": \"ts\", \"time_unit\": \"s\","
    " \"fields\": {\"user\": \"str\", \"x\": \"float64\"}},"
    " \"features\": ["
    " {\"name\": \"d\", \"op\": \"distinct\", \"key\": \"user\", "
    "\"field\": \"x\", \"window\": {\"session\": \"5s\"}},"
    " {\"name\": \"hv\", \"op\": \"histogram\", \"field\": \"user\", "
    "\"values\": [\"a\", \"b\"]},"
    " {\"name\": \"he\", \"op\": \"histogram\", \"key\": \"user\", "
    "\"field\": \"x\", \"edges\": [2, 4]},"
    " {\"name\": \"hop\", \"op\": \"mean\", \"key\": \"user\", "
    "\"field\": \"x\", \"window\": {\"hopping\": \"6s\", \"every\": "
    "\"2s\"}},"
    " {\"name\": \"day\", \"op\": \"daily_profile\", \"key\": "
    "\"user\", \"days\": 2},"
    " {\"name\": \"z\", \"op\": \"standardize\", \"field\": \"x\"},"
    " {\"name\": \"oh\", \"op\": \"one_hot\", \"field\": \"user\", "
    "\"values\": [\"b\"]},"
    " {\"name\": \"bk\", \"op\": \"bucketize\", \"field\": \"x\", "
    "\"edges\": [1, 5]},"
    " {\"name\": \"lg\", \"op\": \"log1p\", \"field\": \"x\"}],"
    " \"label_join\": {\"key\": \"x\", \"type\": \"user\", "
    "\"prediction\": \"a\", \"outcome\": \"b\", \"within\": \"5s\"},"
    " \"watermark\": {\"out_of_orderness\": \"2s\", \"partitions\": 2}}";

/* ts, user, x for six events: 1 arrives before 0 in event time, 3 is late
 * (9 < 14 - 2), 4 has NaN. */
static const int64_t TS[6] = {10, 8, 12, 9, 13, 14};
static const char USERS[6][4] = {"a", "a", "b", "a", "a", "a"};
static const double XS[6] = {1, 3, 5, 7, NAN, 2};

static sw_batch
batch(int64_t lo, int64_t n, sw_column *cols)
{
    sw_batch b;

    memset(cols, 0, 3 * sizeof(*cols));
    cols[0].name = "ts";
    cols[0].type = SW_COL_I64;
    cols[0].data = TS + lo;
    cols[1].name = "user";
    cols[1].type = SW_COL_STR;
    cols[1].data = USERS[lo];
    cols[1].width = 4;
    cols[2].name = "x";
    cols[2].type = SW_COL_F64;
    cols[2].data = XS + lo;
    b.n_rows = n;
    b.n_columns = 3;
    b.columns = cols;
    return b;
}

static void
test_stream(void)
{
    sw_pipeline *p = NULL;
    sw_result *r = NULL;
    sw_column cols[3];
    sw_batch b = batch(0, 6, cols);
    sw_err err = {0};
    const int64_t *ids;
    const int *why;
    int64_t stats[9];

    CHECK_RC(sw_pipeline_new(SPEC, &p, &err), SW_OK, &err);
    CHECK_RC(sw_result_new(&r, &err), SW_OK, &err);
    CHECK(sw_pipeline_n_dense(p) == 2 && sw_pipeline_sparse_dims(p) == 8);
    CHECK(strcmp(sw_pipeline_column_name(p, 1), "mu") == 0);
    CHECK_RC(sw_pipeline_push(p, &b, r, &err), SW_OK, &err);
    /* bound 14 - 2 = 12: events at 8, 10, 12 are out, in time order */
    CHECK(sw_result_rows(r) == 3);
    CHECK(sw_result_seq(r)[0] == 1 && sw_result_seq(r)[1] == 0 &&
          sw_result_seq(r)[2] == 2);
    CHECK(sw_result_dense(r)[0] == 0 && isnan(sw_result_dense(r)[1]));
    CHECK(sw_result_dense(r)[2] == 1 && sw_result_dense(r)[3] == 3);
    CHECK(sw_result_dense(r)[4] == 0); /* b has no history */
    CHECK(sw_result_late(r, &ids) == 1 && ids[0] == 3);
    CHECK(sw_result_invalid(r, &ids, &why) == 1 && ids[0] == 4 &&
          why[0] == SW_INVALID_NAN);
    CHECK(sw_result_indices(r)[0] == sw_result_indices(r)[1]); /* a, a */
    CHECK_RC(sw_pipeline_flush(p, r, &err), SW_OK, &err);
    CHECK(sw_result_rows(r) == 1 && sw_result_dense(r)[0] == 2 &&
          sw_result_dense(r)[1] == 2); /* a at 14: mean of 3 and 1 */
    sw_pipeline_stats(p, stats);
    CHECK(stats[0] == 4 && stats[1] == 1 && stats[2] == 1 && stats[7] == 1);
    /* the profile of a, and a checkpoint round trip */
    {
        sw_column key[1];
        sw_batch kb;
        double prof[2];
        sw_pipeline *q = NULL;
        size_t len;
        const void *pos;

        memset(key, 0, sizeof(key));
        key[0].name = "user";
        key[0].type = SW_COL_STR;
        key[0].data = "a";
        key[0].width = 1;
        kb.n_rows = 1;
        kb.n_columns = 1;
        kb.columns = key;
        CHECK_RC(sw_pipeline_profile(p, &kb, prof, 2, &err), SW_OK, &err);
        CHECK(prof[0] == 3 && prof[1] == 2);
        CHECK_RC(sw_pipeline_checkpoint(p, "ck.swc", "pos=6", 5, &err), SW_OK,
                 &err);
        CHECK_RC(sw_pipeline_restore("ck.swc", &q, &err), SW_OK, &err);
        pos = sw_pipeline_position(q, &len);
        CHECK(len == 5 && memcmp(pos, "pos=6", 5) == 0);
        CHECK_RC(sw_pipeline_profile(q, &kb, prof, 2, &err), SW_OK, &err);
        CHECK(prof[0] == 3 && prof[1] == 2);
        sw_pipeline_free(q);
        unlink("ck.swc");
    }
    sw_result_free(r);
    sw_pipeline_free(p);
}

static void
test_spec_errors(void)
{
    static const char *const bad[][2] = {
        {"{", "not JSON"},
        {"{\"events\": {\"time\": \"t\", \"fields\": {\"u\": \"str\"}},"
         " \"features\": [{\"name\": \"s\", \"op\": \"sum\", \"key\": \"u\","
         " \"field\": \"v\"}]}",
         "features[0].field: 'v' is not an event field"},
        {"{\"events\": {\"time\": \"t\", \"fields\": {\"u\": \"text\"}},"
         " \"features\": []}",
         "events.fields.u: unknown type 'text'"},
    };
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        sw_pipeline *p = (sw_pipeline *)&p;
        sw_err err = {0};

        CHECK_RC(sw_pipeline_new(bad[i][0], &p, &err), SW_E_INVAL, &err);
        CHECK(p == NULL);
        CHECK(strstr(err.msg, bad[i][1]) != NULL);
        if (strstr(err.msg, bad[i][1]) == NULL)
            fprintf(stderr, "  got '%s'\n", err.msg);
    }
}

static void
test_pipeline_oom(void)
{
    long n, step;

    for (step = 0; step < 8; step++) {
        const char *spec = step < 4 ? SPEC : SPEC_ALL;

        for (n = 0; n < 100000; n++) {
            sw_pipeline *p = NULL, *q = NULL;
            sw_result *r = NULL;
            sw_column cols[3];
            sw_batch b = batch(0, 6, cols);
            long live = sw_alloc_live();
            sw_rc rc;

            if (step % 4 > 0) {
                sw_pipeline_new(spec, &p, NULL);
                sw_result_new(&r, NULL);
            }
            if (step % 4 > 1)
                sw_pipeline_push(p, &b, r, NULL);
            if (step % 4 > 2)
                sw_pipeline_checkpoint(p, "oom.swc", "x", 1, NULL);
            sw_alloc_fail_after(n);
            switch (step % 4) {
            case 0:
                rc = sw_pipeline_new(spec, &p, NULL);
                break;
            case 1:
                rc = sw_pipeline_push(p, &b, r, NULL);
                break;
            case 2:
                rc = sw_pipeline_checkpoint(p, "oom.swc", "x", 1, NULL);
                break;
            default:
                rc = sw_pipeline_restore("oom.swc", &q, NULL);
                break;
            }
            sw_alloc_fail_after(-1);
            sw_pipeline_free(q);
            sw_pipeline_free(p);
            sw_result_free(r);
            if (rc == SW_OK)
                break;
            CHECK(rc == SW_E_NOMEM);
            (void)live;
        }
    }
    unlink("oom.swc");
    CHECK(sw_alloc_live() == 0);
}

/* The SPEC with user private: nothing runs before the secret is set, the
 * rows are those of the plain spec, and a restore takes only the secret
 * the state was hashed with. */
static void
test_privacy(void)
{
    static const char *secret = "0123456789abcdef";
    char spec[1024];
    sw_pipeline *p = NULL, *plain = NULL, *q = NULL;
    sw_result *r = NULL, *r2 = NULL;
    sw_column cols[3];
    sw_batch b = batch(0, 6, cols);
    sw_err err = {0};
    uint64_t h[6], h2[6];
    int64_t i;

    snprintf(spec, sizeof(spec),
             "%.*s, \"privacy\": {\"fields\": "
             "[\"user\"]}}",
             (int)strlen(SPEC) - 1, SPEC);
    CHECK_RC(sw_pipeline_new(spec, &p, &err), SW_OK, &err);
    CHECK_RC(sw_pipeline_new(SPEC, &plain, &err), SW_OK, &err);
    CHECK_RC(sw_result_new(&r, &err), SW_OK, &err);
    CHECK_RC(sw_result_new(&r2, &err), SW_OK, &err);
    CHECK_RC(sw_pipeline_push(p, &b, r, &err), SW_E_INVAL, &err);
    CHECK(strstr(err.msg, "set the secret") != NULL);
    CHECK_RC(sw_pipeline_hash_column(p, &cols[1], 6, h, &err), SW_E_INVAL,
             &err);
    CHECK_RC(sw_pipeline_set_secret(p, secret, 15, &err), SW_E_INVAL, &err);
    CHECK_RC(sw_pipeline_set_secret(p, secret, 16, &err), SW_OK, &err);
    CHECK_RC(sw_pipeline_push(p, &b, r, &err), SW_OK, &err);
    CHECK_RC(sw_pipeline_push(plain, &b, r2, &err), SW_OK, &err);
    CHECK(sw_result_rows(r) == 3 && sw_result_rows(r2) == 3);
    CHECK(memcmp(sw_result_dense(r), sw_result_dense(r2), 6 * sizeof(double)) ==
          0);
    /* the pseudonyms: one per id, unlike the plain hashes */
    CHECK_RC(sw_pipeline_hash_column(p, &cols[1], 6, h, &err), SW_OK, &err);
    CHECK_RC(sw_pipeline_hash_column(plain, &cols[1], 6, h2, &err), SW_OK,
             &err);
    CHECK(h[0] == h[1] && h[0] != h[2] && h[0] != h2[0]);
    CHECK_RC(sw_pipeline_checkpoint(p, "ckp.swc", "", 0, &err), SW_OK, &err);
    CHECK_RC(sw_pipeline_restore("ckp.swc", &q, &err), SW_OK, &err);
    CHECK_RC(sw_pipeline_push(q, &b, r, &err), SW_E_INVAL, &err);
    CHECK_RC(sw_pipeline_set_secret(q, "fedcba9876543210", 16, &err),
             SW_E_INVAL, &err);
    CHECK(strstr(err.msg, "not the secret") != NULL);
    CHECK_RC(sw_pipeline_set_secret(q, secret, 16, &err), SW_OK, &err);
    CHECK_RC(sw_pipeline_flush(q, r, &err), SW_OK, &err);
    CHECK_RC(sw_pipeline_flush(plain, r2, &err), SW_OK, &err);
    CHECK(sw_result_rows(r) == 1 && sw_result_rows(r2) == 1);
    for (i = 0; i < 2; i++)
        CHECK(sw_result_dense(r)[i] == sw_result_dense(r2)[i]);
    unlink("ckp.swc");
    sw_pipeline_free(q);
    sw_pipeline_free(p);
    sw_pipeline_free(plain);
    sw_result_free(r);
    sw_result_free(r2);
}

/* A worked label join: two impressions, the first clicked in time, the
 * second's click after the limit (so it leaves with label 0). */
static void
test_label_join(void)
{
    static const char *spec =
        "{\"events\": {\"time\": \"ts\", \"time_unit\": \"s\","
        " \"fields\": {\"user\": \"str\", \"x\": \"float64\"}},"
        " \"features\": [{\"name\": \"n\", \"op\": \"count\", "
        "\"key\": \"user\"}],"
        " \"label_join\": {\"key\": \"x\", \"type\": \"user\", "
        "\"prediction\": \"a\", \"outcome\": \"b\", \"within\": "
        "\"5s\"}}";
    static const int64_t ts[4] = {0, 1, 3, 20};
    static const char users[4][2] = {"a", "a", "b", "b"};
    static const double xs[4] = {1, 2, 1, 2};
    sw_pipeline *p = NULL;
    sw_result *r = NULL;
    sw_column cols[3];
    sw_batch b;
    sw_err err = {0};
    const double *dense, *label;
    const int64_t *ind, *seq, *t, *oseq;
    int64_t st[3];

    memset(cols, 0, sizeof(cols));
    cols[0].name = "ts";
    cols[0].type = SW_COL_I64;
    cols[0].data = ts;
    cols[1].name = "user";
    cols[1].type = SW_COL_STR;
    cols[1].data = users;
    cols[1].width = 2;
    cols[2].name = "x";
    cols[2].type = SW_COL_F64;
    cols[2].data = xs;
    b.n_rows = 4;
    b.n_columns = 3;
    b.columns = cols;
    CHECK_RC(sw_pipeline_new(spec, &p, &err), SW_OK, &err);
    CHECK_RC(sw_result_new(&r, &err), SW_OK, &err);
    CHECK_RC(sw_pipeline_push(p, &b, r, &err), SW_OK, &err);
    CHECK(sw_result_rows(r) == 4);
    CHECK(sw_result_pairs(r, &dense, &ind, &seq, &t, &label, &oseq) == 2);
    CHECK(seq[0] == 0 && label[0] == 1.0 && oseq[0] == 2 && dense[0] == 0);
    CHECK(seq[1] == 1 && label[1] == 0.0 && oseq[1] == -1 && dense[1] == 1);
    CHECK(t[1] == 1000000);
    sw_pipeline_join_stats(p, st);
    CHECK(st[0] == 1 && st[1] == 1);
    sw_result_free(r);
    sw_pipeline_free(p);
}

void
test_pipeline(void)
{
    test_stream();
    test_label_join();
    test_privacy();
    test_spec_errors();
    test_pipeline_oom();
}
