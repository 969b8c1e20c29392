/* SPDX-License-Identifier: MIT */
/*
 * sw_view.c - borrowed views of caller data, one row at a time.
 *
 * The learners' kernels handle exactly two shapes of row: dense float64 and
 * sparse (float64 value, int32 column). Views in those types are used in
 * place, without a copy; anything else (float32 values, int64 indices) is
 * converted row by row into a scratch buffer the caller owns, so a call
 * allocates at most once however many rows it reads. Column indices are
 * range-checked here, on every row, because a bad index would otherwise
 * become a write outside the weight vector.
 */
#include <math.h>

#include "sw_internal.h"

/* What every view must satisfy before anything reads it: known layout and
 * types, non-negative shape, non-NULL arrays, a row stride that fits. The
 * contents of CSR arrays are not read here. */
static sw_rc
check_frame(const sw_rows *x, sw_err *err)
{
    if (x == NULL)
        return sw__fail(err, SW_E_INVAL, "rows: NULL view");
    if (x->n_rows < 0 || x->n_cols < 0)
        return sw__fail(err, SW_E_SHAPE, "rows: negative shape %lld x %lld",
                        (long long)x->n_rows, (long long)x->n_cols);
    if (x->dtype != SW_F64 && x->dtype != SW_F32)
        return sw__fail(err, SW_E_INVAL, "rows: unknown dtype %d",
                        (int)x->dtype);
    if (x->n_rows > 0 && x->data == NULL)
        return sw__fail(err, SW_E_INVAL, "rows: data is NULL");
    if (x->layout == SW_DENSE) {
        if (x->n_rows > 1 && x->row_stride < x->n_cols)
            return sw__fail(err, SW_E_SHAPE,
                            "rows: row_stride %lld is less than n_cols %lld",
                            (long long)x->row_stride, (long long)x->n_cols);
        return SW_OK;
    }
    if (x->layout != SW_CSR)
        return sw__fail(err, SW_E_INVAL, "rows: unknown layout %d",
                        (int)x->layout);
    if (x->itype != SW_I32 && x->itype != SW_I64)
        return sw__fail(err, SW_E_INVAL, "rows: unknown index type %d",
                        (int)x->itype);
    if (x->indptr == NULL || (x->n_rows > 0 && x->indices == NULL))
        return sw__fail(err, SW_E_INVAL, "rows: CSR indptr/indices is NULL");
    return SW_OK;
}

sw_rc
sw_rows_check(const sw_rows *x, sw_err *err)
{
    int64_t i, k, prev;
    sw_rc rc = check_frame(x, err);

    if (rc != SW_OK || x->layout == SW_DENSE)
        return rc;
    prev = sw__csr_ptr(x, 0);
    if (prev < 0)
        return sw__fail(err, SW_E_FORMAT, "rows: indptr[0] is %lld",
                        (long long)prev);
    for (i = 1; i <= x->n_rows; i++) {
        int64_t next = sw__csr_ptr(x, i);

        if (next < prev)
            return sw__fail(err, SW_E_FORMAT,
                            "rows: indptr decreases at row %lld (%lld < %lld)",
                            (long long)(i - 1), (long long)next,
                            (long long)prev);
        for (k = prev; k < next; k++) {
            int64_t j = sw__csr_col(x, k);

            if (j < 0 || j >= x->n_cols)
                return sw__fail(
                    err, SW_E_INVAL, "row %lld: column %lld outside 0..%lld",
                    (long long)(i - 1), (long long)j, (long long)x->n_cols - 1);
        }
        prev = next;
    }
    return SW_OK;
}

/* The checks every call that reads rows for a model makes up front: the
 * view is well formed and its width fits the model. A CSR view may be
 * narrower than the model (a hashed space read through a smaller matrix).
 * Column indices are checked row by row as sw__row_get() reads them. */
sw_rc
sw__rows_check_shape(const sw_rows *x, int64_t n_features, sw_err *err)
{
    sw_rc rc = check_frame(x, err);

    if (rc != SW_OK)
        return rc;
    if (x->layout == SW_DENSE && x->n_cols != n_features)
        return sw__fail(err, SW_E_SHAPE,
                        "X has %lld features per row, the model expects %lld",
                        (long long)x->n_cols, (long long)n_features);
    if (x->layout == SW_CSR && x->n_cols > n_features)
        return sw__fail(err, SW_E_SHAPE,
                        "X has %lld columns, the model expects at most %lld",
                        (long long)x->n_cols, (long long)n_features);
    return SW_OK;
}

sw_rc
sw__scratch_reserve(sw_scratch *s, int64_t n, sw_err *err)
{
    double *val;
    int32_t *idx;

    if (n <= s->cap)
        return SW_OK;
    if (n < 16)
        n = 16;
    val = sw__realloc_array(s->val, (size_t)n, sizeof(*val));
    if (val == NULL)
        return sw__fail(err, SW_E_NOMEM, "rows: no memory for a %lld-value row",
                        (long long)n);
    s->val = val;
    idx = sw__realloc_array(s->idx, (size_t)n, sizeof(*idx));
    if (idx == NULL)
        return sw__fail(err, SW_E_NOMEM, "rows: no memory for a %lld-value row",
                        (long long)n);
    s->idx = idx;
    s->cap = n;
    return SW_OK;
}

int64_t
sw__rows_max_row(const sw_rows *x)
{
    int64_t i, most = 0;

    if (x->layout == SW_DENSE)
        return x->n_cols;
    for (i = 0; i < x->n_rows; i++) {
        int64_t n = sw__csr_ptr(x, i + 1) - sw__csr_ptr(x, i);

        if (n > most)
            most = n;
    }
    return most;
}

void
sw__scratch_free(sw_scratch *s)
{
    sw__free(s->val);
    sw__free(s->idx);
    s->val = NULL;
    s->idx = NULL;
    s->cap = 0;
}

/* Row i of x as the kernels want it. The row points into x or into
 * scratch, and is valid until the next call with the same scratch. */
sw_rc
sw__row_get(const sw_rows *x, int64_t i, sw_row *row, sw_scratch *scratch,
            sw_err *err)
{
    int64_t start, end, k, n;
    sw_rc rc;

    if (x->layout == SW_DENSE) {
        row->idx = NULL;
        row->n = x->n_cols;
        if (x->dtype == SW_F64) {
            row->val = (const double *)x->data + i * x->row_stride;
            return SW_OK;
        }
        rc = sw__scratch_reserve(scratch, x->n_cols, err);
        if (rc != SW_OK)
            return rc;
        {
            const float *src = (const float *)x->data + i * x->row_stride;

            for (k = 0; k < x->n_cols; k++)
                scratch->val[k] = src[k];
        }
        row->val = scratch->val;
        return SW_OK;
    }

    start = sw__csr_ptr(x, i);
    end = sw__csr_ptr(x, i + 1);
    if (start < 0 || end < start)
        return sw__fail(err, SW_E_FORMAT, "row %lld: bad indptr %lld..%lld",
                        (long long)i, (long long)start, (long long)end);
    n = end - start;
    row->n = n;
    if (x->itype == SW_I32 && x->dtype == SW_F64) {
        const int32_t *ix = (const int32_t *)x->indices + start;

        for (k = 0; k < n; k++) {
            if (ix[k] < 0 || ix[k] >= x->n_cols)
                return sw__fail(err, SW_E_INVAL,
                                "row %lld: column %d outside 0..%lld",
                                (long long)i, ix[k], (long long)x->n_cols - 1);
        }
        row->idx = ix;
        row->val = (const double *)x->data + start;
        return SW_OK;
    }
    rc = sw__scratch_reserve(scratch, n, err);
    if (rc != SW_OK)
        return rc;
    for (k = 0; k < n; k++) {
        int64_t j = sw__csr_col(x, start + k);

        if (j < 0 || j >= x->n_cols)
            return sw__fail(
                err, SW_E_INVAL, "row %lld: column %lld outside 0..%lld",
                (long long)i, (long long)j, (long long)x->n_cols - 1);
        scratch->idx[k] = (int32_t)j;
        scratch->val[k] = x->dtype == SW_F64
                              ? ((const double *)x->data)[start + k]
                              : ((const float *)x->data)[start + k];
    }
    row->idx = scratch->idx;
    row->val = scratch->val;
    return SW_OK;
}

int64_t
sw__row_find_nonfinite(const sw_row *row)
{
    int64_t k;

    for (k = 0; k < row->n; k++) {
        if (!isfinite(row->val[k]))
            return row->idx ? row->idx[k] : k;
    }
    return -1;
}
