/* SPDX-License-Identifier: MIT */
/*
 * sw_model_io.c - the .swm model file: write it atomically, read it
 * distrustfully.
 *
 * Layout (all integers little-endian, DESIGN.md section 5):
 *
 *   0    header, 128 bytes      magic, format major/minor, model kind, value
 *                               width, n_features, n_outputs, schema and
 *                               spec hashes, model id, run id, creation
 *                               time, core build id, section count, CRC-32
 *                               of the header
 *   128  section table          32 bytes a section: type, flags, offset,
 *                               length, CRC-32 of the section's bytes
 *        sections               METADATA (JSON), MODEL (kind-specific),
 *                               GOLDEN (rows and their exact outputs), each
 *                               starting on an 8-byte boundary
 *   end  SHA-256 trailer        of every byte before it
 *
 * The per-section checksums are zlib's CRC-32 rather than the CRC32C of
 * DESIGN.md: Debian ships no maintained CRC32C library we would want in the
 * core, and zlib's is the one Python's standard library can check too. The
 * SHA-256 (libsodium) covers the whole file. The reader checks, in order:
 * size, magic, major version, header CRC, that every section lies inside
 * the file, the SHA-256, each section's CRC, the sections' contents, and at
 * last the golden outputs, re-scored and compared bit for bit, so that a
 * file written by a build that computes differently is refused.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <signal.h>
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "sw_internal.h"

#define HEADER_LEN 128
#define ENTRY_LEN 32
#define TRAILER_LEN 32
#define MAX_SECTIONS 64

static const unsigned char magic[8] = {0x89, 'S',  'W',  'M',
                                       '\r', '\n', 0x1a, '\n'};

enum { SEC_METADATA = 1, SEC_MODEL = 2, SEC_GOLDEN = 3, SEC_PIPELINE = 4 };

static const char *
section_name(uint32_t type)
{
    switch (type) {
    case SEC_METADATA:
        return "METADATA";
    case SEC_MODEL:
        return "MODEL";
    case SEC_GOLDEN:
        return "GOLDEN";
    case SEC_PIPELINE:
        return "PIPELINE";
    }
    return "unknown";
}

/* ------------------------------------------------------------------ */
/* Growable output buffer and bounded input cursor                      */
/* ------------------------------------------------------------------ */

sw_rc
sw__buf_put(sw_buf *b, const void *src, size_t n, sw_err *err)
{
    if (n > SIZE_MAX - b->len)
        return sw__fail(err, SW_E_NOMEM, "model file: too large");
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        unsigned char *p;

        while (cap < b->len + n)
            cap = cap > SIZE_MAX / 2 ? b->len + n : cap * 2;
        p = sw__realloc_array(b->p, cap, 1);
        if (p == NULL)
            return sw__fail(err, SW_E_NOMEM,
                            "model file: no memory for %zu bytes", cap);
        b->p = p;
        b->cap = cap;
    }
    if (n > 0)
        memcpy(b->p + b->len, src, n);
    b->len += n;
    return SW_OK;
}

sw_rc
sw__buf_put_u32(sw_buf *b, uint32_t v, sw_err *err)
{
    unsigned char t[4];

    sw__put_le32(t, v);
    return sw__buf_put(b, t, 4, err);
}

sw_rc
sw__buf_put_u64(sw_buf *b, uint64_t v, sw_err *err)
{
    unsigned char t[8];

    sw__put_le64(t, v);
    return sw__buf_put(b, t, 8, err);
}

sw_rc
sw__buf_put_f64s(sw_buf *b, const double *v, size_t n, sw_err *err)
{
    size_t i;
    sw_rc rc;

    for (i = 0; i < n; i++) {
        uint64_t u;

        memcpy(&u, &v[i], 8);
        rc = sw__buf_put_u64(b, u, err);
        if (rc != SW_OK)
            return rc;
    }
    return SW_OK;
}

/* n 64-bit words, little-endian: one copy on a little-endian host. */
sw_rc
sw__buf_put_words(sw_buf *b, const uint64_t *w, size_t n, sw_err *err)
{
    if (n == 0)
        return SW_OK;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    if (n > SIZE_MAX / 8)
        return sw__fail(err, SW_E_NOMEM, "model file: too large");
    return sw__buf_put(b, w, n * 8, err);
#else
    size_t i;
    sw_rc rc;

    for (i = 0; i < n; i++) {
        rc = sw__buf_put_u64(b, w[i], err);
        if (rc != SW_OK)
            return rc;
    }
    return SW_OK;
#endif
}

void
sw__buf_free(sw_buf *b)
{
    sw__free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

static sw_rc
need(sw_cursor *c, size_t n, sw_err *err)
{
    if (n > c->len - c->pos)
        return sw__fail(err, SW_E_FORMAT,
                        "%s: truncated at byte %zu (needs %zu more, has %zu)",
                        c->what, c->pos, n, c->len - c->pos);
    return SW_OK;
}

sw_rc
sw__cur_u32(sw_cursor *c, uint32_t *v, sw_err *err)
{
    sw_rc rc = need(c, 4, err);

    if (rc != SW_OK)
        return rc;
    *v = sw__get_le32(c->p + c->pos);
    c->pos += 4;
    return SW_OK;
}

sw_rc
sw__cur_u64(sw_cursor *c, uint64_t *v, sw_err *err)
{
    sw_rc rc = need(c, 8, err);

    if (rc != SW_OK)
        return rc;
    *v = sw__get_le64(c->p + c->pos);
    c->pos += 8;
    return SW_OK;
}

sw_rc
sw__cur_i64(sw_cursor *c, int64_t *v, sw_err *err)
{
    uint64_t u = 0;
    sw_rc rc = sw__cur_u64(c, &u, err);

    *v = (int64_t)u;
    return rc;
}

sw_rc
sw__cur_f64(sw_cursor *c, double *v, sw_err *err)
{
    uint64_t u = 0;
    sw_rc rc = sw__cur_u64(c, &u, err);

    memcpy(v, &u, 8);
    return rc;
}

sw_rc
sw__cur_words(sw_cursor *c, uint64_t *w, size_t n, sw_err *err)
{
    if (n == 0)
        return SW_OK; /* w may be NULL then (an empty buffer) */
    if (n > (c->len - c->pos) / 8)
        return sw__fail(err, SW_E_FORMAT,
                        "%s: truncated at byte %zu (needs %zu words, has "
                        "room for %zu)",
                        c->what, c->pos, n, (c->len - c->pos) / 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    memcpy(w, c->p + c->pos, n * 8);
    c->pos += n * 8;
#else
    {
        size_t i;

        for (i = 0; i < n; i++) {
            w[i] = sw__get_le64(c->p + c->pos);
            c->pos += 8;
        }
    }
#endif
    return SW_OK;
}

sw_rc
sw__cur_f64s(sw_cursor *c, double *v, size_t n, sw_err *err)
{
    size_t i;
    sw_rc rc;

    if (n > (c->len - c->pos) / 8)
        return sw__fail(err, SW_E_FORMAT,
                        "%s: truncated at byte %zu (needs %zu values, has "
                        "room for %zu)",
                        c->what, c->pos, n, (c->len - c->pos) / 8);
    for (i = 0; i < n; i++) {
        rc = sw__cur_f64(c, &v[i], err);
        if (rc != SW_OK)
            return rc;
    }
    return SW_OK;
}

/* ------------------------------------------------------------------ */
/* Golden rows                                                          */
/* ------------------------------------------------------------------ */

/* splitmix64: the fixed generator of default golden rows. */
static uint64_t
splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);

    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* Eight rows from a fixed seed: a zero row, then seven with values in
 * [-2, 2). Dense up to 4096 features (every weight is exercised), sparse
 * with 32 random columns beyond. */
static sw_rc
default_golden(int64_t n_features, sw_rows *x, sw_err *err)
{
    enum { ROWS = 8, NNZ = 32 };
    uint64_t seed = 0x5357; /* "SW" */
    double *data = NULL;
    int64_t *indptr = NULL, *indices = NULL, i, k;
    int dense = n_features <= 4096;
    int64_t per_row = dense ? n_features : NNZ;

    memset(x, 0, sizeof(*x));
    data = sw__calloc((size_t)(ROWS * per_row), sizeof(double));
    if (data == NULL)
        goto nomem;
    if (!dense) {
        indptr = sw__alloc_array(ROWS + 1, sizeof(int64_t));
        indices = sw__alloc_array((size_t)(ROWS * per_row), sizeof(int64_t));
        if (indptr == NULL || indices == NULL)
            goto nomem;
        indptr[0] = 0;
        indptr[1] = 0; /* the zero row */
    }
    for (i = 1; i < ROWS; i++) {
        for (k = 0; k < per_row; k++) {
            double u = (double)(splitmix64(&seed) >> 11) * 0x1.0p-53;

            data[(dense ? i : i - 1) * per_row + k] = 4.0 * u - 2.0;
            if (!dense)
                indices[(i - 1) * per_row + k] =
                    (int64_t)(splitmix64(&seed) % (uint64_t)n_features);
        }
        if (!dense)
            indptr[i + 1] = indptr[i] + per_row;
    }
    x->layout = dense ? SW_DENSE : SW_CSR;
    x->dtype = SW_F64;
    x->itype = SW_I64;
    x->n_rows = ROWS;
    x->n_cols = n_features;
    x->row_stride = dense ? n_features : 0;
    x->data = data;
    x->indptr = indptr;
    x->indices = indices;
    return SW_OK;
nomem:
    sw__free(data);
    sw__free(indptr);
    sw__free(indices);
    return sw__fail(err, SW_E_NOMEM, "golden: out of memory");
}

/* The golden rows of a model saved without any: its kind's, or eight
 * seeded rows over its features. Owned by the caller (free_rows). */
static sw_rc
default_rows(const sw_model *m, sw_rows *x, sw_err *err)
{
    if (m->methods->default_golden != NULL)
        return m->methods->default_golden(m->u.impl, x, err);
    return default_golden(sw_model_n_features(m), x, err);
}

static void
free_rows(sw_rows *x)
{
    sw__free((void *)x->data);
    sw__free((void *)x->indptr);
    sw__free((void *)x->indices);
    memset(x, 0, sizeof(*x));
}

/* GOLDEN layout: u32 layout, u32 0, u64 n_rows, n_cols, n_outputs; dense:
 * f64 data[n_rows * n_cols]; CSR: u64 nnz, u64 indptr[n_rows + 1],
 * u64 indices[nnz], f64 data[nnz]; then f64 out[n_rows * n_outputs]. */
static sw_rc
write_golden(const sw_model *m, sw_buf *b, sw_err *err)
{
    sw_rows gen, *x;
    double *out = NULL;
    int64_t n_out, i, nnz;
    sw_rc rc;

    memset(&gen, 0, sizeof(gen));
    if (m->golden.data != NULL) {
        x = (sw_rows *)&m->golden;
    } else {
        rc = default_rows(m, &gen, err);
        if (rc != SW_OK)
            return rc;
        x = &gen;
    }
    n_out = x->n_rows * sw_model_n_outputs(m);
    out = sw__alloc_array((size_t)n_out, sizeof(double));
    if (out == NULL) {
        rc = sw__fail(err, SW_E_NOMEM, "golden: out of memory");
        goto done;
    }
    rc = sw_model_predict(m, x, out, n_out, err);
    if (rc != SW_OK)
        goto done;
    if ((rc = sw__buf_put_u32(b, (uint32_t)x->layout, err)) != SW_OK ||
        (rc = sw__buf_put_u32(b, 0, err)) != SW_OK ||
        (rc = sw__buf_put_u64(b, (uint64_t)x->n_rows, err)) != SW_OK ||
        (rc = sw__buf_put_u64(b, (uint64_t)x->n_cols, err)) != SW_OK ||
        (rc = sw__buf_put_u64(b, (uint64_t)sw_model_n_outputs(m), err)) !=
            SW_OK)
        goto done;
    if (x->layout == SW_DENSE) {
        rc = sw__buf_put_f64s(b, x->data, (size_t)(x->n_rows * x->n_cols), err);
    } else {
        const int64_t *indptr = x->indptr, *indices = x->indices;

        nnz = indptr[x->n_rows];
        rc = sw__buf_put_u64(b, (uint64_t)nnz, err);
        for (i = 0; rc == SW_OK && i <= x->n_rows; i++)
            rc = sw__buf_put_u64(b, (uint64_t)indptr[i], err);
        for (i = 0; rc == SW_OK && i < nnz; i++)
            rc = sw__buf_put_u64(b, (uint64_t)indices[i], err);
        if (rc == SW_OK)
            rc = sw__buf_put_f64s(b, x->data, (size_t)nnz, err);
    }
    if (rc == SW_OK)
        rc = sw__buf_put_f64s(b, out, (size_t)n_out, err);
done:
    sw__free(out);
    free_rows(&gen);
    return rc;
}

/* *ok: whether m may carry no golden rows (its kind's defaults have
 * none: it can score nothing yet). */
static sw_rc
no_rows_allowed(const sw_model *m, int *ok, sw_err *err)
{
    sw_rows gen;
    sw_rc rc;

    memset(&gen, 0, sizeof(gen));
    rc = default_rows(m, &gen, err);
    *ok = rc == SW_OK && gen.n_rows == 0;
    free_rows(&gen);
    return rc;
}

/* Read GOLDEN, re-score its rows with m and compare bit for bit. On success
 * the rows move into m, so a re-save keeps them. */
static sw_rc
check_golden(sw_model *m, sw_cursor *c, sw_err *err)
{
    sw_rows x;
    uint32_t layout, pad;
    uint64_t n_rows, n_cols, n_outputs, nnz = 0, i;
    double *data = NULL, *want = NULL, *got = NULL;
    int64_t *indptr = NULL, *indices = NULL;
    size_t n_out;
    int empty_ok = 0;
    sw_rc rc;

    memset(&x, 0, sizeof(x));
    if ((rc = sw__cur_u32(c, &layout, err)) != SW_OK ||
        (rc = sw__cur_u32(c, &pad, err)) != SW_OK ||
        (rc = sw__cur_u64(c, &n_rows, err)) != SW_OK ||
        (rc = sw__cur_u64(c, &n_cols, err)) != SW_OK ||
        (rc = sw__cur_u64(c, &n_outputs, err)) != SW_OK)
        goto done;
    /* at least one row, unless the model can score nothing yet (an ALS
     * model without users or items): then its kind's defaults are none */
    if (n_rows < 1 && (rc = no_rows_allowed(m, &empty_ok, err)) != SW_OK)
        goto done;
    if (layout > 1 || n_rows > 4096 || (n_rows < 1 && !empty_ok) ||
        n_cols != (uint64_t)sw_model_n_features(m) ||
        n_outputs != (uint64_t)sw_model_n_outputs(m)) {
        rc = sw__fail(err, SW_E_FORMAT,
                      "GOLDEN: layout %u, %llu rows x %llu columns, %llu "
                      "outputs do not fit the model (1..4096 rows, %lld "
                      "features, %lld outputs)",
                      layout, (unsigned long long)n_rows,
                      (unsigned long long)n_cols, (unsigned long long)n_outputs,
                      (long long)sw_model_n_features(m),
                      (long long)sw_model_n_outputs(m));
        goto done;
    }
    if (layout == SW_DENSE) {
        if (n_rows > 0 && n_cols > (c->len - c->pos) / 8 / n_rows) {
            rc = sw__fail(err, SW_E_FORMAT, "GOLDEN: truncated in the rows");
            goto done;
        }
        data = sw__alloc_array((size_t)(n_rows * n_cols), sizeof(double));
        if (data == NULL) {
            rc = sw__fail(err, SW_E_NOMEM, "golden: out of memory");
            goto done;
        }
        rc = sw__cur_f64s(c, data, (size_t)(n_rows * n_cols), err);
        if (rc != SW_OK)
            goto done;
    } else {
        rc = sw__cur_u64(c, &nnz, err);
        if (rc != SW_OK)
            goto done;
        if (nnz > (c->len - c->pos) / 16 ||
            n_rows + 1 > (c->len - c->pos) / 8) {
            rc = sw__fail(err, SW_E_FORMAT, "GOLDEN: truncated in the rows");
            goto done;
        }
        indptr = sw__alloc_array((size_t)(n_rows + 1), sizeof(int64_t));
        indices = sw__alloc_array((size_t)nnz, sizeof(int64_t));
        data = sw__alloc_array((size_t)nnz, sizeof(double));
        if (indptr == NULL || indices == NULL || data == NULL) {
            rc = sw__fail(err, SW_E_NOMEM, "golden: out of memory");
            goto done;
        }
        for (i = 0; rc == SW_OK && i <= n_rows; i++)
            rc = sw__cur_i64(c, &indptr[i], err);
        for (i = 0; rc == SW_OK && i < nnz; i++)
            rc = sw__cur_i64(c, &indices[i], err);
        if (rc == SW_OK)
            rc = sw__cur_f64s(c, data, (size_t)nnz, err);
        if (rc != SW_OK)
            goto done;
        if (indptr[n_rows] != (int64_t)nnz) {
            rc = sw__fail(err, SW_E_FORMAT,
                          "GOLDEN: indptr ends at %lld, "
                          "expected %llu",
                          (long long)indptr[n_rows], (unsigned long long)nnz);
            goto done;
        }
    }
    x.layout = (sw_layout)layout;
    x.dtype = SW_F64;
    x.itype = SW_I64;
    x.n_rows = (int64_t)n_rows;
    x.n_cols = (int64_t)n_cols;
    x.row_stride = (int64_t)n_cols;
    x.data = data;
    x.indptr = indptr;
    x.indices = indices;
    rc = sw_rows_check(&x, err);
    if (rc != SW_OK) {
        rc = sw__fail_wrap(err, SW_E_FORMAT, rc, "GOLDEN: ");
        goto done;
    }
    n_out = (size_t)(n_rows * n_outputs);
    want = sw__alloc_array(n_out, sizeof(double));
    got = sw__alloc_array(n_out, sizeof(double));
    if (want == NULL || got == NULL) {
        rc = sw__fail(err, SW_E_NOMEM, "golden: out of memory");
        goto done;
    }
    rc = sw__cur_f64s(c, want, n_out, err);
    if (rc != SW_OK)
        goto done;
    rc = sw_model_predict(m, &x, got, (int64_t)n_out, err);
    if (rc != SW_OK) {
        rc = sw__fail_wrap(err, SW_E_FORMAT, rc, "GOLDEN: re-scoring: ");
        goto done;
    }
    for (i = 0; i < n_out; i++) {
        if (memcmp(&want[i], &got[i], 8) != 0) {
            rc = sw__fail(err, SW_E_FORMAT,
                          "GOLDEN: row %llu output %llu is %.17g, the file "
                          "says %.17g: this build does not reproduce the "
                          "model's scores",
                          (unsigned long long)(i / n_outputs),
                          (unsigned long long)(i % n_outputs), got[i], want[i]);
            goto done;
        }
    }
    sw__model_adopt_golden(m, &x);
    data = NULL;
    indptr = indices = NULL;
    rc = SW_OK;
done:
    sw__free(data);
    sw__free(indptr);
    sw__free(indices);
    sw__free(want);
    sw__free(got);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Writing                                                              */
/* ------------------------------------------------------------------ */

typedef struct section {
    uint32_t type;
    sw_buf body;
} section;

static sw_rc
write_all(int fd, const void *p, size_t n, const char *path, sw_err *err)
{
    const unsigned char *q = p;

    while (n > 0) {
        ssize_t k = write(fd, q, n);

        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return sw__fail(err, SW_E_IO, "%s: %s", path, strerror(errno));
        q += k;
        n -= (size_t)k;
    }
    return SW_OK;
}

/* Write buf to path through a temporary file in the same directory, fsync
 * it, rename it over path and fsync the directory: a crash leaves either
 * the old file or the new one, never a mix. */
sw_rc
sw__write_atomic(const char *path, const unsigned char *buf, size_t len,
                 sw_err *err)
{
    sw_part part = {buf, len};

    return sw__write_atomic_parts(path, &part, 1, err);
}

/* Remove path.tmp.<pid> files whose writer is gone (killed between its
 * open and its rename): nobody else ever cleans them up. A writer that is
 * alive keeps its file. */
static void
remove_stale_tmp(const char *path)
{
    char *dircopy = sw__strdup(path), *basecopy = sw__strdup(path), full[4096];
    const char *dir, *base;
    struct dirent *e;
    size_t n;
    DIR *d;

    if (dircopy == NULL || basecopy == NULL)
        goto done;
    dir = dirname(dircopy);
    base = basename(basecopy);
    n = strlen(base);
    d = opendir(dir);
    while (d != NULL && (e = readdir(d)) != NULL) {
        char *end;
        long pid;

        if (strncmp(e->d_name, base, n) != 0 ||
            strncmp(e->d_name + n, ".tmp.", 5) != 0)
            continue;
        pid = strtol(e->d_name + n + 5, &end, 10);
        if (*end != '\0' || pid <= 0 || pid == (long)getpid() ||
            kill((pid_t)pid, 0) == 0 || errno != ESRCH)
            continue;
        snprintf(full, sizeof(full), "%s/%s", dir, e->d_name);
        unlink(full);
    }
    if (d != NULL)
        closedir(d);
done:
    sw__free(dircopy);
    sw__free(basecopy);
}

sw_rc
sw__write_atomic_parts(const char *path, const sw_part *parts, int n_parts,
                       sw_err *err)
{
    char *tmp = NULL, *dircopy = NULL;
    int fd = -1, dfd, created = 0, i;
    size_t n = strlen(path) + 32;
    sw_rc rc;

    tmp = sw__malloc(n);
    dircopy = sw__strdup(path);
    if (tmp == NULL || dircopy == NULL) {
        rc = sw__fail(err, SW_E_NOMEM, "save: out of memory");
        goto done;
    }
    snprintf(tmp, n, "%s.tmp.%ld", path, (long)getpid());
    remove_stale_tmp(path);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        rc = sw__fail(err, SW_E_IO, "%s: %s", tmp, strerror(errno));
        goto done;
    }
    created = 1;
    for (i = 0; i < n_parts; i++) {
        rc = write_all(fd, parts[i].p, parts[i].len, tmp, err);
        if (rc != SW_OK)
            goto done;
    }
    if (fsync(fd) != 0) {
        rc = sw__fail(err, SW_E_IO, "%s: fsync: %s", tmp, strerror(errno));
        goto done;
    }
    if (close(fd) != 0) {
        fd = -1;
        rc = sw__fail(err, SW_E_IO, "%s: close: %s", tmp, strerror(errno));
        goto done;
    }
    fd = -1;
    if (rename(tmp, path) != 0) {
        rc = sw__fail(err, SW_E_IO, "rename %s to %s: %s", tmp, path,
                      strerror(errno));
        goto done;
    }
    created = 0; /* it is path now */
    dfd = open(dirname(dircopy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)fsync(dfd); /* best effort: some filesystems refuse */
        close(dfd);
    }
    rc = SW_OK;
done:
    if (fd >= 0)
        close(fd);
    if (rc != SW_OK && created)
        unlink(tmp);
    sw__free(tmp);
    sw__free(dircopy);
    return rc;
}

static sw_rc
write_model_section(const sw_model *m, sw_buf *b, sw_err *err)
{
    return m->methods->write(m->u.impl, b, err);
}

/* The bytes of m's .swm file into file (empty on entry). */
static sw_rc
build_file(const sw_model *m, sw_buf *file_out, sw_err *err)
{
    section sec[4];
    sw_buf file = {0}; /* handed to file_out on success */
    unsigned char hdr[HEADER_LEN], ent[ENTRY_LEN], zero[8] = {0};
    unsigned char digest[crypto_hash_sha256_BYTES];
    const char *meta;
    uint64_t off;
    struct timespec ts;
    int i, n_sec = m && m->bundle ? 4 : 3;
    uint64_t spec_hash, schema_hash;
    sw_rc rc;

    memset(sec, 0, sizeof(sec));
    if (m == NULL)
        return sw__fail(err, SW_E_INVAL, "save: NULL argument");
    if (sodium_init() < 0)
        return sw__fail(err, SW_E_INTERNAL, "save: libsodium failed to start");
    sec[0].type = SEC_METADATA;
    sec[1].type = SEC_MODEL;
    sec[2].type = SEC_GOLDEN;
    meta = sw_model_metadata(m);
    if ((rc = sw__buf_put(&sec[0].body, meta, strlen(meta), err)) != SW_OK ||
        (rc = write_model_section(m, &sec[1].body, err)) != SW_OK ||
        (rc = write_golden(m, &sec[2].body, err)) != SW_OK)
        goto done;
    sec[3].type = SEC_PIPELINE;
    if (n_sec == 4 && (rc = sw__bundle_write(m, &sec[3].body, err)) != SW_OK)
        goto done;
    sw_model_pipeline_hashes(m, &spec_hash, &schema_hash);

    memset(hdr, 0, sizeof(hdr));
    memcpy(hdr, magic, 8);
    hdr[8] = SW_FORMAT_MAJOR;
    hdr[10] = SW_FORMAT_MINOR;
    sw__put_le32(hdr + 12, HEADER_LEN);
    sw__put_le32(hdr + 16, (uint32_t)m->kind);
    sw__put_le32(hdr + 20, 8);
    sw__put_le64(hdr + 24, (uint64_t)sw_model_n_features(m));
    sw__put_le64(hdr + 32, (uint64_t)sw_model_n_outputs(m));
    sw__put_le64(hdr + 40, schema_hash); /* 0 for a model without pipeline */
    sw__put_le64(hdr + 48, spec_hash);
    crypto_hash_sha256(digest, sec[1].body.p, sec[1].body.len);
    memcpy(hdr + 56, digest, 16); /* model id: what the MODEL bytes are */
    /* 72: training run id, 16 bytes: set by the tracking layer later */
    clock_gettime(CLOCK_REALTIME, &ts);
    sw__put_le64(hdr + 88, (uint64_t)ts.tv_sec * 1000000u +
                               (uint64_t)(ts.tv_nsec / 1000));
    strncpy((char *)hdr + 96, sw_build_id(), 15);
    sw__put_le32(hdr + 112, (uint32_t)n_sec);
    sw__put_le32(hdr + 124, (uint32_t)crc32(0L, hdr, 124));
    rc = sw__buf_put(&file, hdr, HEADER_LEN, err);
    if (rc != SW_OK)
        goto done;

    off = HEADER_LEN + (uint64_t)n_sec * ENTRY_LEN;
    for (i = 0; i < n_sec; i++) {
        memset(ent, 0, sizeof(ent));
        sw__put_le32(ent, sec[i].type);
        sw__put_le64(ent + 8, off);
        sw__put_le64(ent + 16, sec[i].body.len);
        sw__put_le32(ent + 24, (uint32_t)crc32_z(0L, sec[i].body.p,
                                                 (z_size_t)sec[i].body.len));
        rc = sw__buf_put(&file, ent, ENTRY_LEN, err);
        if (rc != SW_OK)
            goto done;
        off += (sec[i].body.len + 7) & ~(uint64_t)7;
    }
    for (i = 0; i < n_sec; i++) {
        rc = sw__buf_put(&file, sec[i].body.p, sec[i].body.len, err);
        if (rc == SW_OK)
            rc = sw__buf_put(&file, zero, (8 - sec[i].body.len % 8) % 8, err);
        if (rc != SW_OK)
            goto done;
    }
    crypto_hash_sha256(digest, file.p, file.len);
    rc = sw__buf_put(&file, digest, TRAILER_LEN, err);
    if (rc != SW_OK)
        goto done;
    *file_out = file;
    file.p = NULL;
done:
    for (i = 0; i < 4; i++)
        sw__buf_free(&sec[i].body);
    sw__buf_free(&file);
    return rc;
}

sw_rc
sw_model_save(const sw_model *m, const char *path, sw_err *err)
{
    sw_buf file = {0};
    sw_rc rc;

    if (path == NULL)
        return sw__fail(err, SW_E_INVAL, "save: NULL argument");
    rc = build_file(m, &file, err);
    if (rc == SW_OK)
        rc = sw__write_atomic(path, file.p, file.len, err);
    sw__buf_free(&file);
    return rc;
}

sw_rc
sw_model_save_buffer(const sw_model *m, unsigned char **out, size_t *len,
                     sw_err *err)
{
    sw_buf file = {0};
    sw_rc rc;

    if (out == NULL || len == NULL)
        return sw__fail(err, SW_E_INVAL, "save: NULL argument");
    *out = NULL;
    *len = 0;
    rc = build_file(m, &file, err);
    if (rc != SW_OK)
        return rc;
    *out = file.p;
    *len = file.len;
    return SW_OK;
}

void
sw_buffer_free(void *p)
{
    sw__free(p);
}

/* ------------------------------------------------------------------ */
/* Reading                                                              */
/* ------------------------------------------------------------------ */

typedef struct parsed {
    uint32_t major, minor, kind, width, n_sec;
    int64_t n_features, n_outputs;
    uint64_t schema_hash, spec_hash;
    uint64_t created;
    char build[17];
    const unsigned char *model_id;
    struct {
        uint32_t type;
        uint64_t off, len;
        uint32_t crc;
    } sec[MAX_SECTIONS];
} parsed;

/* Check the file's framing: everything but the contents of sections. */
static sw_rc
parse_frame(const unsigned char *p, size_t len, parsed *f, sw_err *err)
{
    unsigned char digest[crypto_hash_sha256_BYTES];
    uint32_t hdr_len, i;
    uint64_t end = 0;

    memset(f, 0, sizeof(*f));
    if (len < HEADER_LEN + TRAILER_LEN)
        return sw__fail(err, SW_E_FORMAT,
                        "truncated: %zu bytes, a .swm file has at least %d",
                        len, HEADER_LEN + TRAILER_LEN);
    if (memcmp(p, magic, 8) != 0)
        return sw__fail(err, SW_E_FORMAT,
                        "not a streamwise model file (bad magic number)");
    f->major = (uint32_t)p[8] | (uint32_t)p[9] << 8;
    f->minor = (uint32_t)p[10] | (uint32_t)p[11] << 8;
    if (f->major != SW_FORMAT_MAJOR)
        return sw__fail(
            err, SW_E_FORMAT, "format %u.%u, this build reads %d.x: %s",
            f->major, f->minor, SW_FORMAT_MAJOR,
            f->major > SW_FORMAT_MAJOR ? "written by a newer streamwise"
                                       : "written by an older streamwise");
    hdr_len = sw__get_le32(p + 12);
    if (hdr_len != HEADER_LEN)
        return sw__fail(err, SW_E_FORMAT, "header: length %u, expected %d",
                        hdr_len, HEADER_LEN);
    if (sw__get_le32(p + 124) != (uint32_t)crc32(0L, p, 124))
        return sw__fail(err, SW_E_FORMAT,
                        "header: CRC mismatch (the header is corrupt)");
    f->kind = sw__get_le32(p + 16);
    f->width = sw__get_le32(p + 20);
    f->n_features = (int64_t)sw__get_le64(p + 24);
    f->n_outputs = (int64_t)sw__get_le64(p + 32);
    f->schema_hash = sw__get_le64(p + 40);
    f->spec_hash = sw__get_le64(p + 48);
    f->model_id = p + 56;
    f->created = sw__get_le64(p + 88);
    memcpy(f->build, p + 96, 16);
    f->build[16] = '\0';
    f->n_sec = sw__get_le32(p + 112);
    if (f->width != 8)
        return sw__fail(err, SW_E_FORMAT, "header: value width %u, expected 8",
                        f->width);
    if (f->n_sec < 1 || f->n_sec > MAX_SECTIONS)
        return sw__fail(err, SW_E_FORMAT, "header: %u sections, expected 1..%d",
                        f->n_sec, MAX_SECTIONS);
    if ((uint64_t)HEADER_LEN + (uint64_t)f->n_sec * ENTRY_LEN >
        len - TRAILER_LEN)
        return sw__fail(err, SW_E_FORMAT,
                        "truncated: the section table needs %llu bytes, the "
                        "file has %zu",
                        (unsigned long long)(HEADER_LEN +
                                             (uint64_t)f->n_sec * ENTRY_LEN +
                                             TRAILER_LEN),
                        len);
    for (i = 0; i < f->n_sec; i++) {
        const unsigned char *e = p + HEADER_LEN + i * ENTRY_LEN;
        uint64_t sec_end;

        f->sec[i].type = sw__get_le32(e);
        f->sec[i].off = sw__get_le64(e + 8);
        f->sec[i].len = sw__get_le64(e + 16);
        f->sec[i].crc = sw__get_le32(e + 24);
        sec_end = f->sec[i].off + f->sec[i].len;
        if (sec_end < f->sec[i].off || f->sec[i].off < HEADER_LEN ||
            sec_end > len - TRAILER_LEN)
            return sw__fail(err, SW_E_FORMAT,
                            "truncated: section %s ends at byte %llu, the "
                            "file has %zu bytes before its checksum",
                            section_name(f->sec[i].type),
                            (unsigned long long)sec_end, len - TRAILER_LEN);
        if (sec_end > end)
            end = sec_end;
    }
    end = (end + 7) & ~(uint64_t)7;
    if (end + TRAILER_LEN != len)
        return sw__fail(err, SW_E_FORMAT,
                        "size: the sections end at byte %llu, so the file "
                        "should have %llu bytes, not %zu (truncated or "
                        "trailing garbage)",
                        (unsigned long long)end,
                        (unsigned long long)(end + TRAILER_LEN), len);
    crypto_hash_sha256(digest, p, len - TRAILER_LEN);
    if (memcmp(digest, p + len - TRAILER_LEN, TRAILER_LEN) != 0)
        return sw__fail(err, SW_E_FORMAT,
                        "SHA-256 mismatch: the file was modified or "
                        "corrupted after it was written");
    for (i = 0; i < f->n_sec; i++) {
        if (f->sec[i].crc !=
            (uint32_t)crc32_z(0L, p + f->sec[i].off, (z_size_t)f->sec[i].len))
            return sw__fail(err, SW_E_FORMAT, "section %s: CRC mismatch",
                            section_name(f->sec[i].type));
    }
    return SW_OK;
}

static int
find_section(const parsed *f, uint32_t type)
{
    uint32_t i;

    for (i = 0; i < f->n_sec; i++) {
        if (f->sec[i].type == type)
            return (int)i;
    }
    return -1;
}

static sw_rc
build_model(const unsigned char *p, const parsed *f, sw_model **out,
            sw_err *err)
{
    const sw_model_methods *mm;
    sw_model *m = NULL;
    void *impl = NULL;
    sw_cursor c;
    int s_model = find_section(f, SEC_MODEL);
    int s_meta = find_section(f, SEC_METADATA);
    int s_gold = find_section(f, SEC_GOLDEN), s_pipe;
    sw_rc rc;

    *out = NULL;
    if (s_model < 0 || s_meta < 0 || s_gold < 0)
        return sw__fail(err, SW_E_FORMAT, "missing section: %s",
                        s_model < 0  ? "MODEL"
                        : s_meta < 0 ? "METADATA"
                                     : "GOLDEN");
    mm = sw__model_methods_of(f->kind);
    if (mm == NULL)
        return sw__fail(err, SW_E_FORMAT,
                        "model kind %u is not known to this build", f->kind);
    c.p = p + f->sec[s_model].off;
    c.len = (size_t)f->sec[s_model].len;
    c.pos = 0;
    c.what = "MODEL";
    rc = mm->read(&c, &impl, err);
    if (rc != SW_OK)
        return rc;
    rc = sw__model_wrap(mm->kind, impl, &m, err);
    if (rc != SW_OK)
        return rc;
    if (c.pos != c.len) {
        rc = sw__fail(err, SW_E_FORMAT, "MODEL: %zu unread bytes at the end",
                      c.len - c.pos);
        goto done;
    }
    if (sw_model_n_features(m) != f->n_features ||
        sw_model_n_outputs(m) != f->n_outputs) {
        rc = sw__fail(err, SW_E_FORMAT,
                      "header says %lld features and %lld outputs, MODEL has "
                      "%lld and %lld",
                      (long long)f->n_features, (long long)f->n_outputs,
                      (long long)sw_model_n_features(m),
                      (long long)sw_model_n_outputs(m));
        goto done;
    }
    m->metadata = sw__malloc((size_t)f->sec[s_meta].len + 1);
    if (m->metadata == NULL) {
        rc = sw__fail(err, SW_E_NOMEM, "load: out of memory");
        goto done;
    }
    memcpy(m->metadata, p + f->sec[s_meta].off, (size_t)f->sec[s_meta].len);
    m->metadata[f->sec[s_meta].len] = '\0';
    if (strlen(m->metadata) != f->sec[s_meta].len) {
        rc = sw__fail(err, SW_E_FORMAT, "METADATA: contains a NUL byte");
        goto done;
    }
    c.p = p + f->sec[s_gold].off;
    c.len = (size_t)f->sec[s_gold].len;
    c.pos = 0;
    c.what = "GOLDEN";
    rc = check_golden(m, &c, err);
    if (rc != SW_OK)
        goto done;
    s_pipe = find_section(f, SEC_PIPELINE);
    if (s_pipe >= 0)
        rc = sw__bundle_read(m, p + f->sec[s_pipe].off,
                             (size_t)f->sec[s_pipe].len, f->spec_hash,
                             f->schema_hash, err);
    else if (f->spec_hash != 0 || f->schema_hash != 0)
        rc = sw__fail(err, SW_E_FORMAT,
                      "header: pipeline hashes but no PIPELINE section");
    if (rc != SW_OK)
        goto done;
    *out = m;
    m = NULL;
    rc = SW_OK;
done:
    sw_model_free(m);
    return rc;
}

sw_rc
sw_model_load_buffer(const void *buf, size_t len, sw_model **out, sw_err *err)
{
    parsed f;
    sw_rc rc;

    *out = NULL;
    if (buf == NULL && len > 0)
        return sw__fail(err, SW_E_INVAL, "load: NULL buffer");
    if (sodium_init() < 0)
        return sw__fail(err, SW_E_INTERNAL, "load: libsodium failed to start");
    rc = parse_frame(buf, len, &f, err);
    if (rc != SW_OK)
        return rc;
    return build_model(buf, &f, out, err);
}

/* Read a whole file into an owned buffer. */
sw_rc
sw__read_file(const char *path, unsigned char **out, size_t *len, sw_err *err)
{
    unsigned char *buf = NULL;
    struct stat st;
    FILE *fp = NULL;
    sw_rc rc;

    *out = NULL;
    *len = 0;
    fp = fopen(path, "rb");
    if (fp == NULL)
        return sw__fail(err, SW_E_IO, "%s: %s", path, strerror(errno));
    if (fstat(fileno(fp), &st) != 0 || !S_ISREG(st.st_mode)) {
        rc = sw__fail(err, SW_E_IO, "%s: not a regular file", path);
        goto done;
    }
    buf = sw__malloc((size_t)st.st_size);
    if (buf == NULL) {
        rc = sw__fail(err, SW_E_NOMEM, "%s: no memory for %lld bytes", path,
                      (long long)st.st_size);
        goto done;
    }
    if (fread(buf, 1, (size_t)st.st_size, fp) != (size_t)st.st_size) {
        rc = sw__fail(err, SW_E_IO, "%s: short read", path);
        goto done;
    }
    *out = buf;
    *len = (size_t)st.st_size;
    buf = NULL;
    rc = SW_OK;
done:
    sw__free(buf);
    fclose(fp);
    return rc;
}

/* Prefix a failure with the path, which callers of load want to see. */
static sw_rc
with_path(sw_rc rc, const char *path, sw_err *err)
{
    char prefix[300];

    if (rc == SW_OK || rc == SW_E_IO)
        return rc;
    snprintf(prefix, sizeof(prefix), "%s: ", path);
    return sw__fail_wrap(err, rc, rc, prefix);
}

sw_rc
sw_model_load(const char *path, sw_model **out, sw_err *err)
{
    unsigned char *buf = NULL;
    size_t len;
    sw_rc rc;

    *out = NULL;
    if (path == NULL)
        return sw__fail(err, SW_E_INVAL, "load: NULL path");
    rc = sw__read_file(path, &buf, &len, err);
    if (rc == SW_OK)
        rc = sw_model_load_buffer(buf, len, out, err);
    sw__free(buf);
    return with_path(rc, path, err);
}

sw_rc
sw_model_inspect(const char *path, FILE *fp, sw_err *err)
{
    unsigned char *buf = NULL;
    sw_model *m = NULL;
    size_t len;
    parsed f;
    uint32_t i;
    sw_rc rc;
    time_t secs;
    char when[64];

    if (sodium_init() < 0)
        return sw__fail(err, SW_E_INTERNAL, "inspect: libsodium failed");
    rc = sw__read_file(path, &buf, &len, err);
    if (rc != SW_OK)
        goto done;
    rc = parse_frame(buf, len, &f, err);
    if (rc != SW_OK)
        goto done;
    secs = (time_t)(f.created / 1000000u);
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", gmtime(&secs));
    fprintf(fp, "%s\n", path);
    fprintf(fp, "  format       %u.%u (this build reads %d.x)\n", f.major,
            f.minor, SW_FORMAT_MAJOR);
    fprintf(fp, "  size         %zu bytes, SHA-256 verified\n", len);
    fprintf(fp, "  kind         %s\n",
            sw__model_methods_of(f.kind) ? sw__model_methods_of(f.kind)->name
                                         : "unknown");
    fprintf(fp, "  features     %lld\n  outputs      %lld\n",
            (long long)f.n_features, (long long)f.n_outputs);
    fprintf(fp, "  model id     ");
    for (i = 0; i < 16; i++)
        fprintf(fp, "%02x", f.model_id[i]);
    fprintf(fp, "\n  created      %s\n  core build   %s\n", when, f.build);
    fprintf(fp, "sections\n");
    for (i = 0; i < f.n_sec; i++)
        fprintf(fp, "  %-9s offset %8llu  length %8llu  crc32 %08x ok\n",
                section_name(f.sec[i].type), (unsigned long long)f.sec[i].off,
                (unsigned long long)f.sec[i].len, f.sec[i].crc);
    rc = build_model(buf, &f, &m, err);
    if (rc != SW_OK)
        goto done;
    fprintf(fp, "metadata\n  %s\n", sw_model_metadata(m));
    fprintf(fp, "model\n");
    m->methods->describe(m->u.impl, fp);
    fprintf(fp, "golden\n  %lld rows re-scored: bit-identical\n",
            (long long)m->golden.n_rows);
    if (m->bundle != NULL)
        sw__bundle_describe(m->bundle, fp);
done:
    sw_model_free(m);
    sw__free(buf);
    return with_path(rc, path, err);
}
