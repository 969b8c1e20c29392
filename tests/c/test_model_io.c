/* SPDX-License-Identifier: MIT */
/*
 * test_model_io.c - the .swm file: save -> load is bit-exact; every
 * truncated prefix, flipped bit, future major version and foreign file is
 * refused with SW_E_FORMAT, a message naming the problem, and no leak.
 */
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "sw_internal.h"
#include "sw_test.h"

static unsigned char *
read_all(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    unsigned char *buf;
    long n;

    if (fp == NULL)
        return NULL;
    fseek(fp, 0, SEEK_END);
    n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    buf = malloc((size_t)n);
    if (buf != NULL && fread(buf, 1, (size_t)n, fp) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(fp);
    *len = (size_t)n;
    return buf;
}

/* A trained multiclass SCW model with metadata, and one PA regressor. */
static sw_model *
trained(int kind)
{
    const char *scw[] = {"linear.algorithm", "scw", NULL};
    const char *reg[] = {"linear.task", "regression", NULL};
    double x[40 * 5], y[40];
    uint64_t s = 42;
    sw_rows v;
    sw_err err = {0};
    sw_model *m = kind == 0 ? make_linear(scw, 5, 3) : make_linear(reg, 5, 0);
    int i;

    for (i = 0; i < 40 * 5; i++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        x[i] = (double)(s >> 11) * 0x1.0p-53 - 0.5;
    }
    for (i = 0; i < 40; i++)
        y[i] = kind == 0 ? (double)(i % 3) : x[i * 5] * 3 - x[i * 5 + 1];
    v = dense_view(x, 40, 5);
    CHECK_RC(sw_linear_learn(m, &v, y, 40, NULL, &err), SW_OK, &err);
    CHECK_RC(sw_model_set_metadata(m, "{\"class\": \"test\"}", &err), SW_OK,
             &err);
    return m;
}

static void
test_round_trip(void)
{
    const char *path = "roundtrip.swm";
    double x[3 * 5] = {0.1, -0.2, 0.3,   0.4, 0.5, 1, 2, 3,
                       4,   5,    -1e-3, 7,   0,   0, 1};
    double a[9], b[9], wa[18], wb[18];
    sw_rows v = dense_view(x, 3, 5);
    sw_err err = {0};
    int kind;

    for (kind = 0; kind < 2; kind++) {
        sw_model *m = trained(kind), *r = NULL;
        int64_t n = 3 * sw_model_n_outputs(m), nw;

        CHECK_RC(sw_model_save(m, path, &err), SW_OK, &err);
        CHECK_RC(sw_model_load(path, &r, &err), SW_OK, &err);
        if (r == NULL) {
            sw_model_free(m);
            continue;
        }
        CHECK(sw_model_n_outputs(r) == sw_model_n_outputs(m));
        CHECK(strcmp(sw_model_metadata(r), "{\"class\": \"test\"}") == 0);
        CHECK_RC(sw_model_predict(m, &v, a, n, &err), SW_OK, &err);
        CHECK_RC(sw_model_predict(r, &v, b, n, &err), SW_OK, &err);
        CHECK(memcmp(a, b, (size_t)n * sizeof(double)) == 0);
        nw = sw_linear_n_vectors(m) * 6;
        CHECK_RC(sw_linear_weights(m, wa, nw, &err), SW_OK, &err);
        CHECK_RC(sw_linear_weights(r, wb, nw, &err), SW_OK, &err);
        CHECK(memcmp(wa, wb, (size_t)nw * sizeof(double)) == 0);
        /* the loaded model keeps learning exactly like the original */
        {
            double y = kind == 0 ? 2 : 0.5;
            sw_rows one = dense_view(x, 1, 5);

            CHECK_RC(sw_linear_learn(m, &one, &y, 1, NULL, &err), SW_OK, &err);
            CHECK_RC(sw_linear_learn(r, &one, &y, 1, NULL, &err), SW_OK, &err);
            CHECK_RC(sw_linear_weights(m, wa, nw, &err), SW_OK, &err);
            CHECK_RC(sw_linear_weights(r, wb, nw, &err), SW_OK, &err);
            CHECK(memcmp(wa, wb, (size_t)nw * sizeof(double)) == 0);
        }
        sw_model_free(r);
        sw_model_free(m);
    }
    /* explicit golden rows survive a save -> load -> save */
    {
        sw_model *m = trained(0), *r = NULL, *r2 = NULL;

        CHECK_RC(sw_model_set_golden(m, &v, &err), SW_OK, &err);
        CHECK_RC(sw_model_save(m, path, &err), SW_OK, &err);
        CHECK_RC(sw_model_load(path, &r, &err), SW_OK, &err);
        CHECK_RC(sw_model_save(r, path, &err), SW_OK, &err);
        CHECK_RC(sw_model_load(path, &r2, &err), SW_OK, &err);
        sw_model_free(r2);
        sw_model_free(r);
        sw_model_free(m);
    }
    /* sparse default golden rows for a wide model */
    {
        const char *wide[] = {"linear.algorithm", "scw", NULL};
        sw_model *m = make_linear(wide, 1 << 20, 2), *r = NULL;

        CHECK_RC(sw_model_save(m, path, &err), SW_OK, &err);
        CHECK_RC(sw_model_load(path, &r, &err), SW_OK, &err);
        sw_model_free(r);
        sw_model_free(m);
    }
    unlink(path);
}

/* Re-seal a modified file: header CRC and SHA-256 trailer made valid, so
 * the reader's later checks are the ones that must catch the change. */
static void
reseal(unsigned char *buf, size_t len)
{
    sw__put_le32(buf + 124, (uint32_t)crc32(0L, buf, 124));
    crypto_hash_sha256(buf + len - 32, buf, len - 32);
}

static void
expect_format_error(const unsigned char *buf, size_t len, const char *needle)
{
    sw_model *m = (sw_model *)&m; /* must be cleared to NULL */
    long live = sw__alloc_live();
    sw_err err = {0};

    CHECK_RC(sw_model_load_buffer(buf, len, &m, &err), SW_E_FORMAT, &err);
    CHECK(m == NULL);
    CHECK(sw__alloc_live() == live);
    if (needle != NULL && strstr(err.msg, needle) == NULL) {
        sw_test_failed++;
        fprintf(stderr, "  message '%s' lacks '%s'\n", err.msg, needle);
    }
}

static void
test_corrupt_files(void)
{
    const char *path = "corrupt.swm";
    unsigned char *buf, *copy;
    size_t len, i;
    sw_err err = {0};
    sw_model *m = trained(0);

    CHECK_RC(sw_model_save(m, path, &err), SW_OK, &err);
    sw_model_free(m);
    buf = read_all(path, &len);
    CHECK(buf != NULL && len > 200);
    if (buf == NULL)
        return;
    copy = malloc(len);

    /* every truncated prefix */
    for (i = 0; i < len; i++)
        expect_format_error(buf, i, i < 160 ? "truncated" : NULL);

    /* a flipped bit anywhere */
    for (i = 0; i < len; i += 7) {
        memcpy(copy, buf, len);
        copy[i] ^= 0x10;
        expect_format_error(copy, len, NULL);
    }
    /* in the body: the SHA-256 catches it */
    memcpy(copy, buf, len);
    copy[len / 2] ^= 1;
    expect_format_error(copy, len, "SHA-256");
    /* in the header: the header CRC */
    memcpy(copy, buf, len);
    copy[30] ^= 1;
    expect_format_error(copy, len, "header: CRC");
    /* a section changed and the file re-sealed: the section CRC */
    memcpy(copy, buf, len);
    copy[len - 40] ^= 1;
    reseal(copy, len);
    expect_format_error(copy, len, "CRC mismatch");

    /* a future major version, otherwise valid */
    memcpy(copy, buf, len);
    copy[8] = 2;
    reseal(copy, len);
    expect_format_error(copy, len, "format 2.0, this build reads 1.x");
    /* a newer minor version is read */
    memcpy(copy, buf, len);
    copy[10] = 7;
    reseal(copy, len);
    {
        sw_model *r = NULL;

        CHECK_RC(sw_model_load_buffer(copy, len, &r, &err), SW_OK, &err);
        sw_model_free(r);
    }
    /* not a model file at all */
    expect_format_error(
        (const unsigned char *)"hello, world, this is not a "
                               "model file, not at all......"
                               "................................"
                               "................................"
                               "................................"
                               "................................",
        200, "bad magic");
    /* trailing garbage */
    {
        unsigned char *longer = malloc(len + 8);

        memcpy(longer, buf, len);
        memset(longer + len, 0, 8);
        expect_format_error(longer, len + 8, "trailing");
        free(longer);
    }
    /* a missing file is an I/O error naming the path */
    {
        sw_model *r = NULL;

        CHECK_RC(sw_model_load("no/such/file.swm", &r, &err), SW_E_IO, &err);
        CHECK(strstr(err.msg, "no/such/file.swm") != NULL);
    }
    free(copy);
    free(buf);
    unlink(path);
}

/* A golden output that no longer matches the model is refused: simulate a
 * build that computes differently by changing one stored output. */
static void
test_golden_mismatch(void)
{
    const char *path = "golden.swm";
    unsigned char *buf;
    size_t len;
    sw_err err = {0};
    sw_model *m = trained(1);
    double v;
    uint64_t u;

    CHECK_RC(sw_model_save(m, path, &err), SW_OK, &err);
    sw_model_free(m);
    buf = read_all(path, &len);
    if (buf == NULL)
        return;
    /* The GOLDEN section is last; its last 8 bytes before padding and
     * trailer are the last output (8 rows x 1 output, 8-byte aligned). */
    u = sw__get_le64(buf + len - 32 - 8);
    memcpy(&v, &u, 8);
    v = nextafter(v, 1e300);
    memcpy(&u, &v, 8);
    sw__put_le64(buf + len - 32 - 8, u);
    {
        /* fix the section CRC too: find the GOLDEN entry (type 3) */
        uint32_t n_sec = sw__get_le32(buf + 112), k;

        for (k = 0; k < n_sec; k++) {
            unsigned char *e = buf + 128 + 32 * k;

            if (sw__get_le32(e) == 3)
                sw__put_le32(e + 24,
                             (uint32_t)crc32(0L, buf + sw__get_le64(e + 8),
                                             (uInt)sw__get_le64(e + 16)));
        }
    }
    reseal(buf, len);
    expect_format_error(buf, len, "GOLDEN: row 7 output 0");
    free(buf);
    unlink(path);
}

static void
test_inspect(void)
{
    const char *path = "inspect.swm";
    char *text = NULL;
    size_t text_len = 0;
    FILE *fp;
    sw_err err = {0};
    sw_model *m = trained(0);

    CHECK_RC(sw_model_save(m, path, &err), SW_OK, &err);
    sw_model_free(m);
    fp = open_memstream(&text, &text_len);
    CHECK_RC(sw_model_inspect(path, fp, &err), SW_OK, &err);
    fclose(fp);
    CHECK(text != NULL && strstr(text, "SCW-I classifier") != NULL);
    CHECK(text != NULL && strstr(text, "classes      3") != NULL);
    CHECK(text != NULL && strstr(text, "bit-identical") != NULL);
    free(text);
    unlink(path);
}

/* Models written by an earlier build (tests/make_fixtures.py) must still
 * load: same format, and their golden outputs reproduced bit for bit. */
static void
test_fixtures(void)
{
    static const char *const names[] = {
        "data/pa1_binary.swm", "data/scw2_multiclass.swm",
        "data/scw1_full_binary.swm", "data/pa2_regression.swm"};
    static const int64_t outputs[] = {1, 3, 1, 1};
    size_t i;

    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        sw_model *m = NULL;
        sw_err err = {0};

        CHECK_RC(sw_model_load(names[i], &m, &err), SW_OK, &err);
        if (m == NULL)
            continue;
        CHECK(sw_model_n_features(m) == 6);
        CHECK(sw_model_n_outputs(m) == outputs[i]);
        sw_model_free(m);
    }
}

/* sw_model_save_buffer gives the bytes sw_model_save writes: the same
 * file but for the creation time (header bytes 88..96) and the two
 * checksums over it (header CRC at 124, SHA-256 trailer); sw_model_load_buffer reads them back bit-exact. */
static void
test_buffer(void)
{
    const char *path = "buffer.swm";
    double x[5] = {0.1, -0.2, 0.3, 0.4, 0.5}, a[3], b[3];
    sw_rows v = dense_view(x, 1, 5);
    unsigned char *buf = (unsigned char *)&buf, *file;
    size_t len = 1, flen = 0;
    sw_model *m = trained(0), *r = NULL;
    sw_err err = {0};

    CHECK_RC(sw_model_save_buffer(NULL, &buf, &len, &err), SW_E_INVAL, &err);
    CHECK(buf == NULL && len == 0);
    CHECK_RC(sw_model_save(m, path, &err), SW_OK, &err);
    CHECK_RC(sw_model_save_buffer(m, &buf, &len, &err), SW_OK, &err);
    file = read_all(path, &flen);
    CHECK(file != NULL && buf != NULL && flen == len && len > 128 + 32);
    if (file != NULL && buf != NULL && flen == len) {
        CHECK(memcmp(file, buf, 88) == 0);
        CHECK(memcmp(file + 96, buf + 96, 124 - 96) == 0);
        CHECK(memcmp(file + 128, buf + 128, len - 128 - 32) == 0);
    }
    CHECK_RC(sw_model_load_buffer(buf, len, &r, &err), SW_OK, &err);
    if (r != NULL) {
        CHECK_RC(sw_model_predict(m, &v, a, 3, &err), SW_OK, &err);
        CHECK_RC(sw_model_predict(r, &v, b, 3, &err), SW_OK, &err);
        CHECK(memcmp(a, b, sizeof(a)) == 0);
    }
    free(file);
    sw_buffer_free(buf);
    sw_buffer_free(NULL);
    sw_model_free(r);
    sw_model_free(m);
    unlink(path);
}

void
test_model_io(void)
{
    test_fixtures();
    test_round_trip();
    test_buffer();
    test_corrupt_files();
    test_golden_mismatch();
    test_inspect();
}
