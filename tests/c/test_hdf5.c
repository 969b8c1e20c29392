/* SPDX-License-Identifier: MIT */
/*
 * test_hdf5.c - HDF5 event datasets: what is written reads back byte for
 * byte by row and by time range, and every bad file or batch is refused
 * with an error that names the problem.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sw_internal.h"
#include "sw_test.h"

#define N 10000
#define PATH "/tmp/sw-test-hdf5.h5"

static const char *SCHEMA =
    "{\"time\": \"ts\", \"time_unit\": \"ms\", \"fields\": {\"user\": "
    "\"str\", \"item\": \"int32\", \"price\": \"float64\", \"w\": "
    "\"float32\", \"n\": \"int8\", \"click\": \"bool\"}}";

static int64_t ts[N];
static char user[N][8];
static int32_t item[N];
static double price[N];
static float w[N];
static int8_t cnt[N];
static unsigned char click[N];

static void
fill(void)
{
    uint64_t x = 42;
    int i;

    for (i = 0; i < N; i++) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        ts[i] = 1600000000000LL + i * 7 + (int64_t)(x >> 62); /* sorted */
        memset(user[i], 0, sizeof(user[i]));
        snprintf(user[i], sizeof(user[i]), "u%d", (int)(x >> 50) % 997);
        item[i] = (int32_t)(x >> 40) % 1000;
        price[i] = (double)(x >> 11) / 9007199254740992.0;
        w[i] = (float)price[i];
        cnt[i] = (int8_t)(x >> 33);
        click[i] = (x >> 20) & 1;
    }
}

static sw_batch
batch_of(sw_column *c, int64_t from, int64_t n)
{
    sw_batch b = {n, 7, c};

    c[0] = (sw_column){"user", SW_COL_STR, user[from], 8, NULL};
    c[1] = (sw_column){"item", SW_COL_I32, item + from, 0, NULL};
    c[2] = (sw_column){"price", SW_COL_F64, price + from, 0, NULL};
    c[3] = (sw_column){"w", SW_COL_F32, w + from, 0, NULL};
    c[4] = (sw_column){"n", SW_COL_I8, cnt + from, 0, NULL};
    c[5] = (sw_column){"click", SW_COL_BOOL, click + from, 0, NULL};
    c[6] = (sw_column){"ts", SW_COL_I64, ts + from, 0, NULL};
    return b;
}

static int
write_file(int level, sw_err *err)
{
    sw_h5_writer *wr = NULL;
    sw_column c[7];
    sw_batch b;
    int t = -1;

    if (sw_h5_writer_open(PATH, &wr, err) != SW_OK ||
        sw_h5_writer_table(wr, "click", SCHEMA, "{\"source\": \"test\"}", level,
                           4096, &t, err) != SW_OK)
        goto fail;
    /* uneven batches, so chunks fill across appends */
    b = batch_of(c, 0, 3000);
    if (sw_h5_writer_append(wr, t, &b, err) != SW_OK)
        goto fail;
    b = batch_of(c, 3000, 1);
    if (sw_h5_writer_append(wr, t, &b, err) != SW_OK)
        goto fail;
    b = batch_of(c, 3001, N - 3001);
    if (sw_h5_writer_append(wr, t, &b, err) != SW_OK)
        goto fail;
    return sw_h5_writer_close(wr, err) == SW_OK;
fail:
    sw_h5_writer_free(wr);
    return 0;
}

/* Read [from, to) of the table through batches of max and compare. */
static int64_t
read_compare(sw_h5_source *s, int64_t from, int64_t max)
{
    int64_t row = from, count;
    sw_err err = {0};

    for (;;) {
        const sw_batch *b;
        int i, ok = 1;

        if (sw_h5_source_next(s, max, &count, &err) != SW_OK) {
            fprintf(stderr, "read: %s\n", err.msg);
            return -1;
        }
        if (count == 0)
            return row;
        b = sw_h5_source_batch(s);
        for (i = 0; i < b->n_columns; i++) {
            const sw_column *c = &b->columns[i];
            const void *want =
                !strcmp(c->name, "user")    ? (const void *)user[row]
                : !strcmp(c->name, "item")  ? (const void *)(item + row)
                : !strcmp(c->name, "price") ? (const void *)(price + row)
                : !strcmp(c->name, "w")     ? (const void *)(w + row)
                : !strcmp(c->name, "n")     ? (const void *)(cnt + row)
                : !strcmp(c->name, "click") ? (const void *)(click + row)
                                            : (const void *)(ts + row);
            size_t size = c->type == SW_COL_STR                            ? 8
                          : c->type == SW_COL_I64 || c->type == SW_COL_F64 ? 8
                          : c->type == SW_COL_I32 || c->type == SW_COL_F32 ? 4
                                                                           : 1;

            ok &= memcmp(c->data, want, (size_t)count * size) == 0;
        }
        CHECK(ok);
        CHECK(b->n_columns == 7 && b->n_rows == count);
        row += count;
    }
}

static void
test_round_trip(int level)
{
    sw_h5_source *s = NULL;
    sw_err err = {0};
    int64_t a, b, c;
    char hex[65];

    CHECK(write_file(level, &err));
    CHECK_RC(sw_h5_source_open(PATH, "click", 0, 0, -1, &s, &err), SW_OK, &err);
    if (s == NULL)
        return;
    CHECK(sw_h5_source_rows(s) == N);
    CHECK(strcmp(sw_h5_source_dataset(s), "/events/click") == 0);
    CHECK(strstr(sw_h5_source_provenance(s), "test") != NULL);
    CHECK(read_compare(s, 0, 777) == N);
    sw_h5_source_slice(s, &a, &b, &c);
    CHECK(a == 0 && b == N && c == N);
    CHECK_RC(sw_h5_source_sha256(s, hex, &err), SW_OK, &err);
    CHECK(strlen(hex) == 64);
    sw_h5_source_free(s);

    /* a row range */
    CHECK_RC(sw_h5_source_open(PATH, "click", 0, 1234, 5678, &s, &err), SW_OK,
             &err);
    CHECK(read_compare(s, 1234, 1000) == 5678);
    sw_h5_source_free(s);

    /* a time range: exactly the rows with start <= t < stop */
    {
        int64_t lo = ts[2500], hi = ts[7000] + 1, first = 0, last = 0;

        while (ts[first] < lo)
            first++;
        while (last < N && ts[last] < hi)
            last++;
        CHECK_RC(sw_h5_source_open(PATH, "click", 1, lo, hi, &s, &err), SW_OK,
                 &err);
        sw_h5_source_slice(s, &a, &b, &c);
        CHECK(a == first && b == last);
        CHECK(read_compare(s, first, 4096) == last);
        sw_h5_source_free(s);
        /* before the first event and after the last */
        CHECK_RC(sw_h5_source_open(PATH, "click", 1, 0, ts[0], &s, &err), SW_OK,
                 &err);
        sw_h5_source_slice(s, &a, &b, &c);
        CHECK(a == 0 && b == 0);
        sw_h5_source_free(s);
        CHECK_RC(sw_h5_source_open(PATH, "click", 1, ts[N - 1] + 1, INT64_MAX,
                                   &s, &err),
                 SW_OK, &err);
        sw_h5_source_slice(s, &a, &b, &c);
        CHECK(a == N && b == N);
        sw_h5_source_free(s);
    }
}

static void
test_bad_batches(void)
{
    sw_h5_writer *wr = NULL;
    sw_err err = {0};
    sw_column c[7];
    sw_batch b;
    int64_t back[2] = {5, 4};
    char longer[2][16] = {"ok", "much-too-long"};
    int t;

    unlink(PATH);
    CHECK_RC(sw_h5_writer_open(PATH, &wr, &err), SW_OK, &err);
    CHECK_RC(sw_h5_writer_table(wr, "click", SCHEMA, NULL, 4, 0, &t, &err),
             SW_OK, &err);
    CHECK_RC(sw_h5_writer_table(wr, "click", SCHEMA, NULL, 4, 0, &t, &err),
             SW_E_INVAL, &err);
    CHECK_RC(sw_h5_writer_table(wr, "a/b", SCHEMA, NULL, 4, 0, &t, &err),
             SW_E_INVAL, &err);
    CHECK_RC(
        sw_h5_writer_table(wr, "x", "{\"fields\": {}}", NULL, 4, 0, &t, &err),
        SW_E_INVAL, &err);
    b = batch_of(c, 0, 2);
    c[6].data = back;
    CHECK_RC(sw_h5_writer_append(wr, 0, &b, &err), SW_E_INVAL, &err);
    CHECK(strstr(err.msg, "goes back at row 1") != NULL);
    b = batch_of(c, 0, 2);
    b.n_columns = 6; /* no time column */
    CHECK_RC(sw_h5_writer_append(wr, 0, &b, &err), SW_E_INVAL, &err);
    CHECK(strstr(err.msg, "'ts' missing") != NULL);
    b = batch_of(c, 0, 2);
    c[1].type = SW_COL_I64;
    CHECK_RC(sw_h5_writer_append(wr, 0, &b, &err), SW_E_INVAL, &err);
    CHECK(strstr(err.msg, "'item' is int64, the schema says int32") != NULL);
    b = batch_of(c, 0, 2);
    CHECK_RC(sw_h5_writer_append(wr, 0, &b, &err), SW_OK, &err);
    /* the first batch set the string width to 8 */
    b = batch_of(c, 2, 2);
    c[0].data = longer;
    c[0].width = 16;
    CHECK_RC(sw_h5_writer_append(wr, 0, &b, &err), SW_E_INVAL, &err);
    CHECK(strstr(err.msg, "row 3") != NULL);
    /* a time before the last batch's */
    b = batch_of(c, 0, 1);
    CHECK_RC(sw_h5_writer_append(wr, 0, &b, &err), SW_E_INVAL, &err);
    /* abandoned: nothing appears at the path, no temporary file remains */
    sw_h5_writer_free(wr);
    CHECK(access(PATH, F_OK) != 0);
    {
        char tmp[128];

        snprintf(tmp, sizeof(tmp), "%s.tmp-%ld", PATH, (long)getpid());
        CHECK(access(tmp, F_OK) != 0);
    }
}

/* Copy PATH to dst, changing it: truncate to keep bytes, or flip one byte
 * at flip. */
static void
damaged_copy(const char *dst, long keep, long flip)
{
    FILE *in = fopen(PATH, "rb"), *out = fopen(dst, "wb");
    long i = 0;
    int ch;

    while (in && out && (ch = fgetc(in)) != EOF && (keep < 0 || i < keep)) {
        fputc(i == flip ? ch ^ 0x5a : ch, out);
        i++;
    }
    if (in)
        fclose(in);
    if (out)
        fclose(out);
}

static long
file_size(const char *p)
{
    FILE *f = fopen(p, "rb");
    long n;

    if (f == NULL)
        return -1;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fclose(f);
    return n;
}

static void
test_bad_files(void)
{
    const char *bad = "/tmp/sw-test-hdf5-bad.h5";
    sw_h5_source *s = NULL;
    sw_err err = {0};
    int64_t count;
    long size;

    CHECK(write_file(0, &err));
    size = file_size(PATH);
    CHECK_RC(sw_h5_source_open(PATH, "view", 0, 0, -1, &s, &err), SW_E_INVAL,
             &err);
    CHECK(strstr(err.msg, "tables: click") != NULL);
    CHECK_RC(sw_h5_source_open("/nonexistent.h5", "click", 0, 0, -1, &s, &err),
             SW_E_IO, &err);
    CHECK_RC(sw_h5_source_open(PATH, "click", 0, 10, 5, &s, &err), SW_E_INVAL,
             &err);
    /* truncated */
    damaged_copy(bad, size / 2, -1);
    CHECK_RC(sw_h5_source_open(bad, "click", 0, 0, -1, &s, &err), SW_E_FORMAT,
             &err);
    CHECK(strstr(err.msg, "truncated") != NULL);
    /* not HDF5 at all */
    damaged_copy(bad, 0, -1);
    CHECK_RC(sw_h5_source_open(bad, "click", 0, 0, -1, &s, &err), SW_E_FORMAT,
             &err);
    /* a flipped byte in the last data chunk: Fletcher-32 refuses it */
    damaged_copy(bad, -1, size - 100);
    if (sw_h5_source_open(bad, "click", 0, 0, -1, &s, &err) == SW_OK) {
        sw_rc rc;

        do
            rc = sw_h5_source_next(s, 100000, &count, &err);
        while (rc == SW_OK && count > 0);
        CHECK(rc == SW_E_FORMAT);
        CHECK(strstr(err.msg, "rows") != NULL);
        sw_h5_source_free(s);
    } else {
        CHECK(err.rc == SW_E_FORMAT);
    }
    unlink(bad);
}

/* Out of memory at every allocation of open + read: an error, no leak. */
static void
test_h5_oom(void)
{
    long live = sw__alloc_live(), k;
    int done = 0;

    for (k = 0; k < 200 && !done; k++) {
        sw_h5_source *s = NULL;
        sw_err err = {0};
        int64_t count;
        sw_rc rc;

        sw__alloc_fail_after(k);
        rc = sw_h5_source_open(PATH, "click", 1, ts[10], ts[9000], &s, &err);
        while (rc == SW_OK) {
            rc = sw_h5_source_next(s, 4096, &count, &err);
            if (count == 0)
                break;
        }
        sw__alloc_fail_after(-1);
        done = rc == SW_OK;
        CHECK(rc == SW_OK || rc == SW_E_NOMEM);
        if (rc != SW_OK && rc != SW_E_NOMEM)
            fprintf(stderr, "oom at %ld: %s\n", k, err.msg);
        sw_h5_source_free(s);
        CHECK(sw__alloc_live() == live);
    }
    CHECK(done);
}

void
test_hdf5(void)
{
    sw_err err = {0};
    sw_h5_writer *wr = NULL;

    if (sw_h5_writer_open(PATH, &wr, &err) == SW_E_UNSUPPORTED) {
        fprintf(stderr, "hdf5: not built, suite not run\n");
        return;
    }
    sw_h5_writer_free(wr);
    fill();
    test_round_trip(0);
    test_round_trip(4);
    test_bad_batches();
    test_bad_files();
    test_h5_oom();
    unlink(PATH);
}
