/* SPDX-License-Identifier: MIT */
/*
 * test_pipeline.c - the feature pipeline in C: a hand-worked stream with
 * out-of-order, late and invalid events, a checkpoint round trip, spec
 * errors, and every entry point with its n-th allocation failing.
 */
#include <math.h>
#include <string.h>
#include <unistd.h>

#include <stdlib.h>

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
    sw_pipeline_stats stats;

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
    sw_pipeline_get_stats(p, &stats);
    CHECK(stats.emitted == 4 && stats.late == 1 && stats.invalid == 1 &&
          stats.invalid_by[SW_INVALID_NAN] == 1);
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
            long live = sw__alloc_live();
            sw_rc rc;

            if (step % 4 > 0) {
                sw_pipeline_new(spec, &p, NULL);
                sw_result_new(&r, NULL);
            }
            if (step % 4 > 1)
                sw_pipeline_push(p, &b, r, NULL);
            if (step % 4 > 2)
                sw_pipeline_checkpoint(p, "oom.swc", "x", 1, NULL);
            sw__alloc_fail_after(n);
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
            sw__alloc_fail_after(-1);
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
    CHECK(sw__alloc_live() == 0);
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
    sw_pipeline_stats st;

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
    sw_pipeline_get_stats(p, &st);
    CHECK(st.joined == 1 && st.unmatched == 1);
    sw_result_free(r);
    sw_pipeline_free(p);
}

/* Changelog records collected by the callback. */
typedef struct records {
    int n;
    unsigned char key[64][12];
    unsigned char *val[64];
    size_t len[64];
} records;

static sw_rc
collect(void *opaque, const void *key, size_t key_len, const void *value,
        size_t value_len, sw_err *err)
{
    records *c = opaque;

    if (c->n == 64 || key_len != 12)
        return sw__fail(err, SW_E_INVAL, "collect: %zu", key_len);
    memcpy(c->key[c->n], key, 12);
    c->val[c->n] = NULL;
    if (value != NULL) {
        c->val[c->n] = malloc(value_len);
        memcpy(c->val[c->n], value, value_len);
    }
    c->len[c->n++] = value_len;
    return SW_OK;
}

static void
records_free(records *c)
{
    int i;

    for (i = 0; i < c->n; i++)
        free(c->val[i]);
    c->n = 0;
}

static void
apply_records(sw_pipeline *p, const records *c, sw_rc want, sw_err *err)
{
    const void *k[64], *v[64];
    size_t kl[64];
    int i;

    for (i = 0; i < c->n; i++) {
        k[i] = c->key[i];
        kl[i] = 12;
        v[i] = c->val[i];
    }
    CHECK_RC(sw_pipeline_apply_changes(p, c->n, k, kl, v, c->len, err), want,
             err);
}

/* A snapshot plus the changes after it, then the last meta record, give
 * back the pipeline that made them; hostile records are refused. */
static void
test_changes(void)
{
    sw_pipeline *p = NULL, *q = NULL, *m = NULL, *other = NULL;
    sw_result *r = NULL, *r2 = NULL;
    sw_column cols[3];
    sw_batch b;
    sw_err err = {0};
    records c1 = {0}, c2 = {0};
    unsigned char *meta = NULL;
    size_t len = 0, plen;
    const void *pos;
    sw_pipeline_stats st, st2;

    CHECK_RC(sw_pipeline_new(SPEC, &p, &err), SW_OK, &err);
    CHECK_RC(sw_result_new(&r, &err), SW_OK, &err);
    CHECK_RC(sw_result_new(&r2, &err), SW_OK, &err);
    CHECK_RC(sw_pipeline_track_changes(p, 1, &err), SW_OK, &err);
    b = batch(0, 3, cols);
    CHECK_RC(sw_pipeline_push(p, &b, r, &err), SW_OK, &err);
    CHECK_RC(sw_pipeline_changes(p, collect, &c1, &err), SW_OK, &err);
    /* a at 8 and 10 are out (the watermark holds b at 12): one key */
    CHECK(c1.n == 1 && c1.len[0] > 8);
    records_free(&c1);
    CHECK_RC(sw_pipeline_changes(p, collect, &c1, &err), SW_OK, &err);
    CHECK(c1.n == 0); /* handed out once */
    CHECK_RC(sw_pipeline_checkpoint(p, "snap.swc", "pos1", 4, &err), SW_OK,
             &err);
    b = batch(3, 3, cols);
    CHECK_RC(sw_pipeline_push(p, &b, r, &err), SW_OK, &err);
    CHECK_RC(sw_pipeline_changes(p, collect, &c2, &err), SW_OK, &err);
    CHECK(c2.n == 1); /* b at 12 released; a at 14 still buffered */
    CHECK_RC(sw_pipeline_save_meta(p, "pos2", 4, &meta, &len, &err), SW_OK,
             &err);
    /* restore: the snapshot, the changes, the meta record over them */
    CHECK_RC(sw_pipeline_restore("snap.swc", &q, &err), SW_OK, &err);
    apply_records(q, &c2, SW_OK, &err);
    CHECK_RC(sw_pipeline_restore_buffer(meta, len, &m, &err), SW_OK, &err);
    CHECK_RC(sw_pipeline_take_tables(m, q, &err), SW_OK, &err);
    pos = sw_pipeline_position(m, &plen);
    CHECK(plen == 4 && memcmp(pos, "pos2", 4) == 0);
    sw_pipeline_get_stats(p, &st);
    sw_pipeline_get_stats(m, &st2);
    CHECK(memcmp(&st, &st2, sizeof(st)) == 0);
    CHECK_RC(sw_pipeline_flush(p, r, &err), SW_OK, &err);
    CHECK_RC(sw_pipeline_flush(m, r2, &err), SW_OK, &err);
    CHECK(sw_result_rows(r) == 1 && sw_result_rows(r2) == 1 &&
          memcmp(sw_result_dense(r), sw_result_dense(r2),
                 2 * sizeof(double)) == 0);
    /* a record applied twice is the same state */
    apply_records(m, &c2, SW_OK, &err);
    /* hostile records: each named, none half-applied into a crash */
    {
        records bad = {0};
        unsigned char v[256] = {0};

        memcpy(bad.key[0], c2.key[0], 12);
        bad.key[0][0] = 9; /* table 9 */
        bad.val[0] = v;
        bad.len[0] = 32;
        bad.n = 1;
        apply_records(m, &bad, SW_E_FORMAT, &err);
        CHECK(strstr(err.msg, "table 9") != NULL);
        bad.key[0][0] = 0;
        bad.len[0] = c2.len[0] - 8;
        apply_records(m, &bad, SW_E_FORMAT, &err);
        CHECK(strstr(err.msg, "bytes of state for table 0, expected") !=
              NULL);
        v[7] = 0x80; /* a negative time */
        bad.len[0] = c2.len[0];
        apply_records(m, &bad, SW_E_FORMAT, &err);
        CHECK(strstr(err.msg, "a state no update could have made") != NULL);
        /* a tombstone drops the key */
        bad.val[0] = NULL;
        bad.len[0] = 0;
        apply_records(m, &bad, SW_OK, &err);
        sw_pipeline_get_stats(m, &st2);
        CHECK(st2.keys == st.keys - 1);
    }
    meta[20] ^= 1;
    CHECK_RC(sw_pipeline_restore_buffer(meta, len, &other, &err),
             SW_E_FORMAT, &err);
    CHECK(strstr(err.msg, "checksum") != NULL);
    CHECK_RC(sw_pipeline_new(SPEC_ALL, &other, &err), SW_OK, &err);
    CHECK_RC(sw_pipeline_take_tables(other, m, &err), SW_E_INVAL, &err);
    CHECK(strstr(err.msg, "another spec") != NULL);
    records_free(&c2);
    sw_buffer_free(meta);
    sw_pipeline_free(other);
    sw_pipeline_free(q);
    sw_pipeline_free(m);
    sw_pipeline_free(p);
    sw_result_free(r);
    sw_result_free(r2);
    unlink("snap.swc");
}

/* Detached rows are the result's (the same values, r without them), a
 * push after it makes new ones, an attached block is written into, and
 * wrong uses are refused or freed; none of it leaks under the fault loop. */
static void
test_detach(void)
{
    sw_pipeline *p = NULL, *q = NULL;
    sw_result *r = NULL, *r2 = NULL;
    sw_rowbuf *a = NULL, *c = NULL;
    const double *ad;
    sw_column cols[3];
    sw_batch b = batch(0, 6, cols);
    sw_err err = {0};
    double want[8];
    long n;

    CHECK_RC(sw_pipeline_new(SPEC, &p, &err), SW_OK, &err);
    CHECK_RC(sw_result_new(&r, &err), SW_OK, &err);
    CHECK_RC(sw_result_detach(r, &a, &err), SW_E_STATE, &err);
    CHECK(a == NULL && strstr(err.msg, "no rows") != NULL);
    CHECK_RC(sw_pipeline_push(p, &b, r, &err), SW_OK, &err);
    CHECK(sw_result_rows(r) == 3);
    memcpy(want, sw_result_dense(r), 6 * sizeof(double));
    CHECK_RC(sw_result_detach(r, &a, &err), SW_OK, &err);
    CHECK(sw_result_dense(r) == NULL && sw_result_rows(r) == 3);
    CHECK(memcmp(sw_rowbuf_dense(a), want, 6 * sizeof(double)) == 0);
    CHECK(sw_rowbuf_seq(a)[0] == 1 && sw_rowbuf_time(a)[2] == 12000000);
    /* the flush makes rows anew; the block given back is used next */
    CHECK_RC(sw_pipeline_flush(p, r, &err), SW_OK, &err);
    CHECK(sw_result_rows(r) == 1 && sw_result_dense(r)[0] == 2);
    ad = sw_rowbuf_dense(a);
    sw_result_attach(r, a);
    CHECK(sw_result_rows(r) == 0 && sw_result_dense(r) == ad);
    b = batch(0, 6, cols);
    CHECK_RC(sw_pipeline_push(p, &b, r, &err), SW_OK, &err);
    /* the events again: all late but the one at the watermark */
    CHECK(sw_result_dense(r) == ad && sw_result_rows(r) == 1);
    sw_result_attach(r, NULL);
    /* a block of another width (SPEC_ALL's rows) is freed, not used */
    CHECK_RC(sw_pipeline_new(SPEC_ALL, &q, &err), SW_OK, &err);
    CHECK_RC(sw_result_new(&r2, &err), SW_OK, &err);
    b = batch(0, 6, cols);
    CHECK_RC(sw_pipeline_push(q, &b, r2, &err), SW_OK, &err);
    CHECK(sw_pipeline_n_dense(q) != sw_pipeline_n_dense(p));
    CHECK_RC(sw_result_detach(r2, &c, &err), SW_OK, &err);
    sw_result_attach(r, c);
    CHECK(sw_result_dense(r) == ad);
    sw_pipeline_free(q);
    sw_result_free(r2);
    sw_pipeline_free(p);
    sw_result_free(r);
    /* a detach that cannot allocate leaves r with its rows */
    for (n = 0; n < 100; n++) {
        CHECK_RC(sw_pipeline_new(SPEC, &p, &err), SW_OK, &err);
        CHECK_RC(sw_result_new(&r, &err), SW_OK, &err);
        b = batch(0, 6, cols);
        CHECK_RC(sw_pipeline_push(p, &b, r, &err), SW_OK, &err);
        sw__alloc_fail_after(n);
        if (sw_result_detach(r, &a, NULL) == SW_OK) {
            sw__alloc_fail_after(-1);
            sw_rowbuf_free(a);
            sw_pipeline_free(p);
            sw_result_free(r);
            break;
        }
        sw__alloc_fail_after(-1);
        CHECK(a == NULL && sw_result_dense(r) != NULL &&
              memcmp(sw_result_dense(r), want, 6 * sizeof(double)) == 0);
        sw_pipeline_free(p);
        sw_result_free(r);
    }
    CHECK(sw__alloc_live() == 0);
}

/* One walk of the events entry: the spec compiler and an io adapter give
 * the same message for the same mistake (after their own prefix), and the
 * adapter alone asks for an int64 time column, saying why. */
static void
test_events_schema(void)
{
    static const char *bad[][2] = {
        {"\"fields\": {\"u\": \"text\"}",
         "fields.u: unknown type 'text' (int64, int32, int8, float64, "
         "float32, bool, str)"},
        {"\"time_unit\": \"minutes\", \"fields\": {\"u\": \"str\"}",
         "time_unit: 'minutes', expected us, ms, s or ns"},
        {"\"fields\": {}", "fields: expected {name: type} with at least one"},
    };
    char spec[640], schema[256];
    sw_pipeline *p = NULL;
    sw_json_decoder *d = NULL;
    sw_err e1 = {0}, e2 = {0};
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(schema, sizeof(schema), "{\"time\": \"ts\", %s}",
                 bad[i][0]);
        snprintf(spec, sizeof(spec),
                 "{\"events\": %s, \"features\": [{\"name\": \"n\", "
                 "\"op\": \"count\", \"key\": \"u\"}]}",
                 schema);
        CHECK_RC(sw_pipeline_new(spec, &p, &e1), SW_E_INVAL, &e1);
        CHECK_RC(sw_json_decoder_new(schema, &d, &e2), SW_E_INVAL, &e2);
        CHECK(strncmp(e1.msg, "events.", 7) == 0 &&
              strncmp(e2.msg, "schema.", 7) == 0);
        CHECK(strstr(e1.msg, bad[i][1]) != NULL &&
              strcmp(e1.msg + 7, e2.msg + 7) == 0);
        if (strcmp(e1.msg + 7, e2.msg + 7) != 0)
            fprintf(stderr, "  '%s' against '%s'\n", e1.msg, e2.msg);
    }
    /* a float time column: the pipeline takes it, an adapter says why not */
    snprintf(schema, sizeof(schema),
             "{\"time\": \"ts\", \"fields\": {\"ts\": \"float64\", "
             "\"u\": \"str\"}}");
    snprintf(spec, sizeof(spec),
             "{\"events\": %s, \"features\": [{\"name\": \"n\", "
             "\"op\": \"count\", \"key\": \"u\"}]}",
             schema);
    CHECK_RC(sw_pipeline_new(spec, &p, &e1), SW_OK, &e1);
    sw_pipeline_free(p);
    CHECK_RC(sw_json_decoder_new(schema, &d, &e2), SW_E_INVAL, &e2);
    CHECK(strstr(e2.msg, "schema.fields.ts: the time field must be int64") !=
          NULL);
}

void
test_pipeline(void)
{
    test_stream();
    test_events_schema();
    test_detach();
    test_changes();
    test_label_join();
    test_privacy();
    test_spec_errors();
    test_pipeline_oom();
}
