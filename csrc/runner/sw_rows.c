/* SPDX-License-Identifier: MIT */
/*
 * sw_rows.c - sw-serve's row streams: lines of CSV (with an optional
 * header of names), LIBSVM or ALS user ids read from a file descriptor,
 * scored in batches, one output line per input line. A bad line gets its
 * line number and reason on the log and an empty output line, and the
 * rest carry on. Kept apart from sw-serve's main so the fuzzers
 * (tests/fuzz/fuzz_rows.c) drive the same parsers.
 */
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "sw_rows.h"

#define BATCH 256

/* Input lines read with read(2), so that the runner knows when no more
 * input is waiting: a batch is then answered at once, and a long-running
 * filter never holds answers back for lines that have not come. */
typedef struct lines {
    int fd;
    char *buf;
    size_t cap, start, end;
    int eof, error;
    FILE *log; /* where bad lines are told */
} lines;

/* Whether a whole line (or the end of input) can be had without waiting. */
static int
lines_ready(lines *L)
{
    struct pollfd pfd = {L->fd, POLLIN, 0};

    if (L->eof || memchr(L->buf + L->start, '\n', L->end - L->start))
        return 1;
    return poll(&pfd, 1, 0) > 0;
}

/* The next line, NUL-terminated in place, without its line end; its
 * length, or -1 at the end of input or on a read error (L->error). */
static ssize_t
lines_next(lines *L, char **line)
{
    for (;;) {
        char *nl = L->end > L->start
                       ? memchr(L->buf + L->start, '\n', L->end - L->start)
                       : NULL;
        ssize_t k;

        if (nl != NULL || (L->eof && L->end > L->start)) {
            size_t len = nl ? (size_t)(nl - (L->buf + L->start))
                            : L->end - L->start;

            *line = L->buf + L->start;
            (*line)[len] = '\0';
            L->start += len + (nl != NULL);
            return (ssize_t)len;
        }
        if (L->eof)
            return -1;
        if (L->start > 0) {
            memmove(L->buf, L->buf + L->start, L->end - L->start);
            L->end -= L->start;
            L->start = 0;
        }
        if (L->end + 1 >= L->cap) {
            size_t c = L->cap ? 2 * L->cap : 65536;
            char *b = realloc(L->buf, c);

            if (b == NULL) {
                L->error = ENOMEM;
                return -1;
            }
            L->buf = b;
            L->cap = c;
        }
        k = read(L->fd, L->buf + L->end, L->cap - L->end - 1);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0) {
            L->error = errno;
            return -1;
        }
        if (k == 0)
            L->eof = 1;
        L->end += (size_t)k;
    }
}

typedef struct batch {
    int64_t n_features;
    int64_t n_lines; /* lines in this batch, good or bad */
    int64_t n_rows;  /* good rows */
    int good[BATCH]; /* 1 if line k became row */
    double *dense;   /* BATCH * n_features (csv) */
    int64_t indptr[BATCH + 1];
    int64_t *indices; /* libsvm */
    double *values;
    int64_t nnz, cap;
    double *out; /* BATCH * n_outputs */
    double *densified; /* libsvm rows for a model that takes dense rows */
    long long first_line; /* the input line number of line 0 */
    FILE *log;
} batch;

/* --recommend: one user id a line in, "item:score,..." out (the model's
 * kept interactions left out). Scores are float32, printed with %.9g,
 * which parses back to the same float. */
static sw_rc
recommend_stream(const sw_model *m, int64_t n, lines *in, FILE *out,
                 long long *n_bad, sw_err *err)
{
    int64_t ids[BATCH], *items = NULL, k, j;
    int good[BATCH], n_lines = 0, n_ids = 0, i;
    float *scores = NULL;
    char *line = NULL, *end;
    ssize_t len;
    long long lineno = 0;
    int flags = sw_als_has_liked(m) ? SW_REC_FILTER_LIKED : 0, idle;
    sw_rc rc = SW_OK;

    items = malloc((size_t)(BATCH * n) * sizeof(*items));
    scores = malloc((size_t)(BATCH * n) * sizeof(*scores));
    if (items == NULL || scores == NULL) {
        err->rc = rc = SW_E_NOMEM;
        snprintf(err->msg, sizeof(err->msg), "out of memory for a batch");
        goto done;
    }
    for (;;) {
        len = lines_next(in, &line);
        if (len >= 0) {
            long long id;

            lineno++;
            while (len > 0 && line[len - 1] == '\r')
                line[--len] = '\0';
            id = strtoll(line, &end, 10);
            if (len == 0 || *end != '\0' || id < 0 || id >= sw_als_n_users(m)) {
                fprintf(in->log,
                        "sw-serve: line %lld: '%.40s' is not a user "
                        "id (0..%lld)\n",
                        lineno, line, (long long)sw_als_n_users(m) - 1);
                (*n_bad)++;
                good[n_lines++] = 0;
            } else {
                good[n_lines++] = 1;
                ids[n_ids++] = id;
            }
        }
        idle = n_lines > 0 && len >= 0 && !lines_ready(in);
        if (n_lines == BATCH || (len < 0 && n_lines > 0) || idle) {
            if (n_ids > 0) {
                rc = sw_als_recommend(m, ids, n_ids, NULL, n, flags, NULL, NULL,
                                      NULL, 0, items, scores, err);
                if (rc != SW_OK)
                    goto done;
            }
            for (i = 0, k = 0; i < n_lines; i++) {
                if (good[i]) {
                    for (j = 0; j < n && items[k * n + j] >= 0; j++)
                        fprintf(out, j ? ",%lld:%.9g" : "%lld:%.9g",
                                (long long)items[k * n + j],
                                (double)scores[k * n + j]);
                    k++;
                }
                fputc('\n', out);
            }
            n_lines = n_ids = 0;
            if (idle)
                fflush(out); /* nothing else is waiting: answer now */
        }
        if (len < 0)
            break;
    }
    if (in->error) {
        err->rc = rc = SW_E_IO;
        snprintf(err->msg, sizeof(err->msg), "reading stdin: %s",
                 strerror(in->error));
    }
done:
    free(items);
    free(scores);
    return rc;
}

/* Parse one CSV line into row (n_features values). Returns NULL or why.
 * missing_ok (tree models, which route missing values): an empty field or
 * "nan" is NaN. */
static const char *
parse_csv(char *line, double *row, int64_t n_features, int missing_ok,
          char *why, size_t why_len)
{
    char *p = line, *end;
    int64_t j = 0;

    for (;;) {
        double v;

        while (*p == ' ' || *p == '\t')
            p++;
        if (j >= n_features) {
            snprintf(why, why_len,
                     "more than %lld values; the model expects "
                     "%lld",
                     (long long)n_features, (long long)n_features);
            return why;
        }
        errno = 0;
        v = strtod(p, &end);
        if (end == p && missing_ok && (*p == ',' || *p == '\0')) {
            v = NAN;
        } else if (end == p) {
            snprintf(why, why_len, "column %lld: '%.20s' is not a number",
                     (long long)j, p);
            return why;
        } else if ((v != v && !missing_ok) || isinf(v) || errno == ERANGE) {
            snprintf(why, why_len, "column %lld: %.20s is not a finite number",
                     (long long)j, p);
            return why;
        }
        row[j++] = v;
        p = end;
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p == ',') {
            p++;
            continue;
        }
        if (*p == '\0')
            break;
        snprintf(why, why_len, "column %lld: unexpected '%c'", (long long)j - 1,
                 *p);
        return why;
    }
    if (j != n_features) {
        snprintf(why, why_len, "%lld values, the model expects %lld",
                 (long long)j, (long long)n_features);
        return why;
    }
    return NULL;
}

static int
grow_sparse(batch *b, int64_t need)
{
    int64_t cap = b->cap ? b->cap : 1024;
    int64_t *ix;
    double *vx;

    while (cap < need)
        cap *= 2;
    ix = realloc(b->indices, (size_t)cap * sizeof(*ix));
    if (ix == NULL)
        return -1;
    b->indices = ix;
    vx = realloc(b->values, (size_t)cap * sizeof(*vx));
    if (vx == NULL)
        return -1;
    b->values = vx;
    b->cap = cap;
    return 0;
}

/* Parse 'label idx:val ...' appending entries to the batch. */
static const char *
parse_libsvm(char *line, batch *b, int zero_based, char *why, size_t why_len)
{
    char *p = line, *end;
    int64_t start = b->nnz;

    strtod(p, &end); /* the label: ignored, but must be there */
    if (end == p) {
        snprintf(why, why_len, "no label at the start of the line");
        return why;
    }
    p = end;
    for (;;) {
        long long idx;
        double v;

        while (*p == ' ' || *p == '\t')
            p++;
        if (*p == '\0' || *p == '#')
            break;
        errno = 0;
        idx = strtoll(p, &end, 10);
        if (end == p || *end != ':') {
            snprintf(why, why_len, "'%.20s' is not idx:value", p);
            goto bad;
        }
        idx -= zero_based ? 0 : 1;
        if (idx < 0 || idx >= b->n_features || errno == ERANGE) {
            snprintf(why, why_len, "column %.20s is outside %d..%lld", p,
                     zero_based ? 0 : 1,
                     (long long)b->n_features - (zero_based ? 1 : 0));
            goto bad;
        }
        p = end + 1;
        v = strtod(p, &end);
        if (end == p || !isfinite(v)) {
            snprintf(why, why_len,
                     "column %lld: '%.20s' is not a finite "
                     "number",
                     idx, p);
            goto bad;
        }
        if (b->nnz >= b->cap && grow_sparse(b, b->nnz + 1) != 0) {
            snprintf(why, why_len, "out of memory");
            goto bad;
        }
        b->indices[b->nnz] = idx;
        b->values[b->nnz] = v;
        b->nnz++;
        p = end;
    }
    return NULL;
bad:
    b->nnz = start;
    return why;
}

/* Score the good rows of the batch and print one line per input line.
 * When the batch as a whole is refused (an ALS id out of range, a row the
 * model cannot take), its rows are scored one by one, so that only the
 * bad ones lose their answer: each gets its line number and reason on
 * the log and an empty output line, as a row that did not parse. */
static sw_rc
flush(const sw_model *m, batch *b, int fmt, FILE *out, long long *n_bad,
      sw_err *err)
{
    int64_t n_out = sw_model_n_outputs(m), k, r = 0, c, i, j;
    int dense_only = sw_model_kind_of(m) != SW_MODEL_LINEAR;
    unsigned char ok[BATCH];
    sw_rows x;
    sw_rc rc = SW_OK;

    memset(&x, 0, sizeof(x));
    x.dtype = SW_F64;
    x.n_rows = b->n_rows;
    x.n_cols = b->n_features;
    if (fmt == SW_ROWS_LIBSVM && dense_only) {
        /* trees and ALS take dense rows: an absent column is 0, as
         * LIBSVM means it */
        if (b->densified == NULL)
            b->densified = malloc((size_t)(BATCH * b->n_features) *
                                  sizeof(double));
        if (b->densified == NULL) {
            err->rc = SW_E_NOMEM;
            snprintf(err->msg, sizeof(err->msg), "out of memory for a batch");
            return SW_E_NOMEM;
        }
        memset(b->densified, 0,
               (size_t)(b->n_rows * b->n_features) * sizeof(double));
        for (i = 0; i < b->n_rows; i++)
            for (j = b->indptr[i]; j < b->indptr[i + 1]; j++)
                b->densified[i * b->n_features + b->indices[j]] +=
                    b->values[j];
        fmt = SW_ROWS_CSV;
        x.data = b->densified;
    }
    if (fmt == SW_ROWS_CSV) {
        x.layout = SW_DENSE;
        x.row_stride = b->n_features;
        if (x.data == NULL)
            x.data = b->dense;
    } else {
        x.layout = SW_CSR;
        x.itype = SW_I64;
        x.indptr = b->indptr;
        x.indices = b->indices;
        x.data = b->values;
    }
    memset(ok, 1, sizeof(ok));
    if (b->n_rows > 0)
        rc = sw_model_predict(m, &x, b->out, b->n_rows * n_out, err);
    if (rc == SW_E_NOMEM)
        return rc;
    if (rc != SW_OK) {
        for (i = 0; i < b->n_rows; i++) {
            sw_rows one = x;
            int64_t ptr[2];
            sw_err e1 = {0};

            one.n_rows = 1;
            if (x.layout == SW_DENSE) {
                one.data = (const double *)x.data + i * x.row_stride;
            } else {
                ptr[0] = 0;
                ptr[1] = b->indptr[i + 1] - b->indptr[i];
                one.indptr = ptr;
                one.indices = b->indices + b->indptr[i];
                one.data = b->values + b->indptr[i];
            }
            if (sw_model_predict(m, &one, b->out + i * n_out, n_out, &e1) ==
                SW_OK)
                continue;
            ok[i] = 0;
            for (k = 0, r = -1; k < b->n_lines && r < i; k++)
                r += b->good[k];
            fprintf(b->log, "sw-serve: line %lld: %s\n",
                    b->first_line + k - 1, e1.msg);
            (*n_bad)++;
        }
        r = 0;
    }
    for (k = 0; k < b->n_lines; k++) {
        if (b->good[k]) {
            for (c = 0; ok[r] && c < n_out; c++)
                fprintf(out, c ? ",%.17g" : "%.17g", b->out[r * n_out + c]);
            r++;
        }
        fputc('\n', out);
    }
    b->n_lines = b->n_rows = b->nnz = 0;
    b->indptr[0] = 0;
    return SW_OK;
}

/* A CSV header (pandas' to_csv writes one): the model's features by name
 * among its columns. perm[j]: the column of feature j; n_cols: the
 * columns a row has. */
typedef struct header {
    int64_t n_cols;
    int64_t *perm;
    double *row; /* n_cols values of the row being read */
} header;

/* Whether line 1 is a header: some field of it is not a number. */
static int
is_header(const char *line)
{
    const char *p = line;

    for (;;) {
        char *end;

        while (*p == ' ' || *p == '\t')
            p++;
        strtod(p, &end);
        if (end == p && *p != ',' && *p != '\0')
            return 1; /* text: a name */
        p = strchr(end, ',');
        if (p == NULL)
            return 0;
        p++;
    }
}

/* The header's columns matched to the model's feature names (the
 * metadata's "feature_names"), or, without names, taken in order when
 * there are as many as the model's features. */
static sw_rc
read_header(const sw_model *m, char *line, header *h, sw_err *err)
{
    json_t *meta = json_loads(sw_model_metadata(m) ? sw_model_metadata(m)
                                                   : "{}",
                              0, NULL);
    json_t *names = json_object_get(meta, "feature_names");
    int64_t n_feat = sw_model_n_features(m), j, c;
    char *cols[4096], *p = line;
    sw_rc rc = SW_OK;

    h->n_cols = 0;
    while (p != NULL && h->n_cols < 4096) {
        char *comma = strchr(p, ','), *e;

        if (comma != NULL)
            *comma = '\0';
        while (*p == ' ' || *p == '\t' || *p == '"')
            p++;
        e = p + strlen(p);
        while (e > p && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '"'))
            *--e = '\0';
        cols[h->n_cols++] = p;
        p = comma ? comma + 1 : NULL;
    }
    h->perm = malloc((size_t)n_feat * sizeof(int64_t));
    h->row = malloc((size_t)h->n_cols * sizeof(double));
    if (h->perm == NULL || h->row == NULL) {
        json_decref(meta);
        err->rc = SW_E_NOMEM;
        snprintf(err->msg, sizeof(err->msg), "out of memory for a header");
        return SW_E_NOMEM;
    }
    if (!json_is_array(names) || (int64_t)json_array_size(names) != n_feat) {
        if (h->n_cols != n_feat)
            rc = SW_E_INVAL;
        for (j = 0; j < n_feat; j++)
            h->perm[j] = j;
        if (rc != SW_OK)
            snprintf(err->msg, sizeof(err->msg),
                     "line 1: a header of %lld columns; the model keeps no "
                     "feature names, so it takes %lld columns in order",
                     (long long)h->n_cols, (long long)n_feat);
    }
    for (j = 0; rc == SW_OK && json_is_array(names) &&
                (int64_t)json_array_size(names) == n_feat && j < n_feat;
         j++) {
        const char *want = json_string_value(json_array_get(names, j));

        for (c = 0; want != NULL && c < h->n_cols && strcmp(cols[c], want);
             c++)
            ;
        if (want == NULL || c == h->n_cols) {
            rc = SW_E_INVAL;
            snprintf(err->msg, sizeof(err->msg),
                     "line 1: the header has no column '%.100s', a feature "
                     "of the model (columns are matched to the model's "
                     "feature names, in any order)",
                     want ? want : "?");
        } else {
            h->perm[j] = c;
        }
    }
    json_decref(meta);
    err->rc = rc;
    return rc;
}

static sw_rc
score_stream(const sw_model *m, int fmt, int zero_based, lines *in, FILE *out,
             long long *n_bad, sw_err *err)
{
    batch b;
    header hd = {0, NULL, NULL};
    char *line = NULL, why[200];
    ssize_t len;
    long long lineno = 0;
    sw_rc rc = SW_OK;

    memset(&b, 0, sizeof(b));
    b.log = in->log;
    b.n_features = sw_model_n_features(m);
    b.out = malloc((size_t)(BATCH * sw_model_n_outputs(m)) * sizeof(double));
    if (fmt == SW_ROWS_CSV)
        b.dense = malloc((size_t)(BATCH * b.n_features) * sizeof(double));
    /* allocated before the first entry: a batch of label-only lines (all
     * columns 0) is rows of nothing, not a NULL array the model refuses */
    if (b.out == NULL || (fmt == SW_ROWS_CSV && b.dense == NULL) ||
        (fmt == SW_ROWS_LIBSVM && grow_sparse(&b, 1024) != 0)) {
        rc = SW_E_NOMEM;
        snprintf(err->msg, sizeof(err->msg), "out of memory for a batch");
        err->rc = rc;
        goto done;
    }
    while ((len = lines_next(in, &line)) >= 0) {
        const char *bad;

        lineno++;
        if (b.n_lines == 0)
            b.first_line = lineno;
        while (len > 0 && line[len - 1] == '\r')
            line[--len] = '\0';
        if (lineno == 1 && fmt == SW_ROWS_CSV && len > 0 && is_header(line)) {
            /* column names, not a row: no output line for it */
            if ((rc = read_header(m, line, &hd, err)) != SW_OK)
                goto done;
            continue;
        }
        if (len == 0) {
            bad = "empty line";
        } else if (fmt == SW_ROWS_CSV && hd.perm != NULL) {
            double *row = b.dense + b.n_rows * b.n_features;
            int64_t j;

            bad = parse_csv(line, hd.row, hd.n_cols,
                            sw_model_kind_of(m) == SW_MODEL_GBDT, why,
                            sizeof(why));
            for (j = 0; bad == NULL && j < b.n_features; j++)
                row[j] = hd.row[hd.perm[j]];
        } else if (fmt == SW_ROWS_CSV) {
            bad = parse_csv(line, b.dense + b.n_rows * b.n_features,
                            b.n_features, sw_model_kind_of(m) == SW_MODEL_GBDT,
                            why, sizeof(why));
        } else {
            bad = parse_libsvm(line, &b, zero_based, why, sizeof(why));
        }
        if (bad != NULL) {
            fprintf(in->log, "sw-serve: line %lld: %s\n", lineno, bad);
            (*n_bad)++;
            b.good[b.n_lines++] = 0;
        } else {
            b.good[b.n_lines++] = 1;
            b.n_rows++;
            b.indptr[b.n_rows] = b.nnz;
        }
        if (b.n_lines == BATCH || !lines_ready(in)) {
            int idle = b.n_lines < BATCH;

            rc = flush(m, &b, fmt, out, n_bad, err);
            if (rc != SW_OK)
                goto done;
            if (idle)
                fflush(out); /* nothing else is waiting: answer now */
        }
    }
    if (in->error) {
        rc = SW_E_IO;
        snprintf(err->msg, sizeof(err->msg), "reading stdin: %s",
                 strerror(in->error));
        err->rc = rc;
        goto done;
    }
    rc = flush(m, &b, fmt, out, n_bad, err);
done:
    free(hd.perm);
    free(hd.row);
    free(b.dense);
    free(b.densified);
    free(b.indices);
    free(b.values);
    free(b.out);
    return rc;
}

sw_rc
sw__rows_score(const sw_model *m, int fmt, int zero_based, int fd, FILE *out,
               FILE *log, long long *n_bad, sw_err *err)
{
    lines in = {fd, NULL, 0, 0, 0, 0, 0, log};
    sw_rc rc = score_stream(m, fmt, zero_based, &in, out, n_bad, err);

    free(in.buf);
    return rc;
}

sw_rc
sw__rows_recommend(const sw_model *m, int64_t n, int fd, FILE *out, FILE *log,
                   long long *n_bad, sw_err *err)
{
    lines in = {fd, NULL, 0, 0, 0, 0, 0, log};
    sw_rc rc = recommend_stream(m, n, &in, out, n_bad, err);

    free(in.buf);
    return rc;
}
