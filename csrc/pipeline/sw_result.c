/* SPDX-License-Identifier: MIT */
/*
 * sw_result.c - the results of push and flush: rows (dense features,
 * hashed indices, arrival numbers, times), the late and invalid events
 * with their reasons, and the label join's pairs; a caller-owned handle
 * the pipeline reuses, growing it as batches need.
 */
#include <stdlib.h>
#include <string.h>

#include "sw_pipeline_int.h"

sw_rc
sw_result_new(sw_result **out, sw_err *err)
{
    *out = sw__calloc(1, sizeof(sw_result));
    return *out ? SW_OK : sw__fail(err, SW_E_NOMEM, "result: out of memory");
}

/* The three row arrays of a result or of a detached block. */
static void
free_rows(double *dense, int64_t *seq, int64_t *t)
{
    sw__free(dense);
    sw__free(seq);
    sw__free(t);
}

void
sw_result_free(sw_result *r)
{
    if (r == NULL)
        return;
    free_rows(r->dense, r->seq, r->t);
    sw__free(r->indptr);
    sw__free(r->indices);
    sw__free(r->late);
    sw__free(r->inv);
    sw__free(r->inv_reason);
    sw__free(r->jdense);
    sw__free(r->jlabel);
    sw__free(r->jind);
    sw__free(r->jseq);
    sw__free(r->jt);
    sw__free(r->joseq);
    sw__free(r);
}

void
sw__result_reset(sw_result *r, const sw_pipeline *p)
{
    r->n = r->n_late = r->n_inv = r->jn = 0;
    r->n_dense = p->n_dense;
    r->n_hash = p->n_hash;
}

/* The next capacity from cap (0: none yet) for need rows. */
static int64_t
grown(int64_t cap, int64_t need)
{
    cap = cap ? cap : 256;
    while (cap < need)
        cap *= 2;
    return cap;
}

/* Room for n more rows; allocation failures leave r as it was. The row
 * arrays (dense, seq, t) have their own capacity: they may have been
 * detached, or attached with another. */
sw_rc
sw__result_room(sw_result *r, int64_t n, sw_err *err)
{
    int64_t cap;
    void *a, *b, *c, *d, *e;

    if (r->n + n > r->cap_rows || r->dense == NULL) {
        cap = grown(r->dense ? r->cap_rows : 0, r->n + n);
        a = sw__realloc_array(r->dense, (size_t)cap,
                              (size_t)(r->n_dense ? r->n_dense : 1) *
                                  sizeof(double));
        if (a == NULL)
            goto nomem;
        r->dense = a;
        b = sw__realloc_array(r->seq, (size_t)cap, sizeof(int64_t));
        if (b == NULL)
            goto nomem;
        r->seq = b;
        c = sw__realloc_array(r->t, (size_t)cap, sizeof(int64_t));
        if (c == NULL)
            goto nomem;
        r->t = c;
        r->cap_rows = cap;
    }
    if (r->n + n <= r->cap && r->indptr != NULL)
        return SW_OK;
    cap = grown(r->cap, r->n + n);
    d = sw__realloc_array(r->indptr, (size_t)cap + 1, sizeof(int64_t));
    if (d == NULL)
        goto nomem;
    r->indptr = d;
    e = sw__realloc_array(r->indices, (size_t)cap,
                          (size_t)(r->n_hash ? r->n_hash : 1) *
                              sizeof(int64_t));
    if (e == NULL)
        goto nomem;
    r->indices = e;
    r->cap = cap;
    return SW_OK;
nomem:
    return sw__fail(err, SW_E_NOMEM, "result: no memory for %lld rows",
                    (long long)(r->n + n));
}

/* A detached block of rows: the arrays sw__result_room() made, with room
 * for cap rows of n_dense features. */
struct sw_rowbuf {
    double *dense;
    int64_t *seq, *t;
    int64_t cap;
    int n_dense;
};

sw_rc
sw_result_detach(sw_result *r, sw_rowbuf **out, sw_err *err)
{
    sw_rowbuf *b;

    *out = NULL;
    if (r->dense == NULL)
        return sw__fail(err, SW_E_STATE, "result: no rows to detach");
    b = sw__malloc(sizeof(*b));
    if (b == NULL)
        return sw__fail(err, SW_E_NOMEM, "result: out of memory");
    b->dense = r->dense;
    b->seq = r->seq;
    b->t = r->t;
    b->cap = r->cap_rows;
    b->n_dense = r->n_dense;
    r->dense = NULL;
    r->seq = r->t = NULL;
    r->cap_rows = 0;
    *out = b;
    return SW_OK;
}

void
sw_result_attach(sw_result *r, sw_rowbuf *rows)
{
    if (rows == NULL)
        return;
    if (rows->n_dense != r->n_dense && r->n_dense != 0) {
        sw_rowbuf_free(rows); /* another layout: of no use here */
        return;
    }
    free_rows(r->dense, r->seq, r->t);
    r->dense = rows->dense;
    r->seq = rows->seq;
    r->t = rows->t;
    r->cap_rows = rows->cap;
    r->n = 0; /* the rows r held are gone */
    sw__free(rows);
}

double *
sw_rowbuf_dense(sw_rowbuf *rows)
{
    return rows->dense;
}

int64_t *
sw_rowbuf_seq(sw_rowbuf *rows)
{
    return rows->seq;
}

int64_t *
sw_rowbuf_time(sw_rowbuf *rows)
{
    return rows->t;
}

void
sw_rowbuf_free(sw_rowbuf *rows)
{
    if (rows == NULL)
        return;
    free_rows(rows->dense, rows->seq, rows->t);
    sw__free(rows);
}

sw_rc
sw__result_push_id(int64_t **arr, int64_t *n, int64_t *cap, int **reasons,
                   int reason, int64_t seq, sw_err *err)
{
    if (*n == *cap) {
        int64_t c = *cap ? *cap * 2 : 64;
        int64_t *a = sw__realloc_array(*arr, (size_t)c, sizeof(int64_t));

        if (a == NULL)
            return sw__fail(err, SW_E_NOMEM, "result: out of memory");
        *arr = a;
        if (reasons != NULL) {
            int *b = sw__realloc_array(*reasons, (size_t)c, sizeof(int));

            if (b == NULL)
                return sw__fail(err, SW_E_NOMEM, "result: out of memory");
            *reasons = b;
        }
        *cap = c;
    }
    (*arr)[*n] = seq;
    if (reasons != NULL)
        (*reasons)[*n] = reason;
    (*n)++;
    return SW_OK;
}

int64_t
sw_result_rows(const sw_result *r)
{
    return r->n;
}

const double *
sw_result_dense(const sw_result *r)
{
    return r->dense;
}

const int64_t *
sw_result_seq(const sw_result *r)
{
    return r->seq;
}

const int64_t *
sw_result_time(const sw_result *r)
{
    return r->t;
}

const int64_t *
sw_result_indptr(const sw_result *r)
{
    return r->indptr;
}

const int64_t *
sw_result_indices(const sw_result *r)
{
    return r->indices;
}

int64_t
sw_result_late(const sw_result *r, const int64_t **seq)
{
    *seq = r->late;
    return r->n_late;
}

int64_t
sw_result_invalid(const sw_result *r, const int64_t **seq, const int **reason)
{
    *seq = r->inv;
    *reason = r->inv_reason;
    return r->n_inv;
}

int64_t
sw_result_pairs(const sw_result *r, const double **dense,
                const int64_t **indices, const int64_t **seq, const int64_t **t,
                const double **label, const int64_t **outcome_seq)
{
    *dense = r->jdense;
    *indices = r->jind;
    *seq = r->jseq;
    *t = r->jt;
    *label = r->jlabel;
    *outcome_seq = r->joseq;
    return r->jn;
}
