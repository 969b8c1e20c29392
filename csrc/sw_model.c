/* SPDX-License-Identifier: MIT */
/*
 * sw_model.c - the sw_model handle: one type for everything that predicts.
 *
 * The runner and the extension score any kind of model through this file,
 * which calls the kind's methods (sw_model_methods, defined by each
 * learner) and knows no kind itself. The handle also carries what travels
 * with a model in its file: the metadata JSON and the golden rows whose
 * exact outputs are re-checked whenever the file is loaded.
 */
#include <math.h>

#include "sw_internal.h"

void
sw_model_free(sw_model *m)
{
    if (m == NULL)
        return;
    if (m->methods != NULL)
        m->methods->free(m->u.impl);
    sw__free(m->metadata);
    sw__bundle_free(m->bundle);
    sw__free((void *)m->golden.data);
    sw__free((void *)m->golden.indptr);
    sw__free((void *)m->golden.indices);
    sw__free(m);
}

/* The one table of kinds, indexed by the numbers the file format and
 * sw_model_kind freeze. */
const sw_model_methods *
sw__model_methods_of(uint32_t kind)
{
    static const sw_model_methods *const kinds[] = {
        [SW_MODEL_LINEAR] = &sw_linear_methods,
        [SW_MODEL_ALS] = &sw_als_methods,
        [SW_MODEL_GBDT] = &sw_gbdt_methods,
    };

    return kind < sizeof(kinds) / sizeof(kinds[0]) ? kinds[kind] : NULL;
}

sw_rc
sw__model_wrap(sw_model_kind kind, void *impl, sw_model **out, sw_err *err)
{
    const sw_model_methods *mm = sw__model_methods_of(kind);
    sw_model *m;

    *out = NULL;
    SW_ASSERT(mm != NULL);
    m = sw__calloc(1, sizeof(*m));
    if (m == NULL) {
        mm->free(impl);
        return sw__fail(err, SW_E_NOMEM, "%s: out of memory", mm->name);
    }
    m->kind = kind;
    m->methods = mm;
    m->u.impl = impl;
    *out = m;
    return SW_OK;
}

sw_model_kind
sw_model_kind_of(const sw_model *m)
{
    return m->kind;
}

int64_t
sw_model_n_features(const sw_model *m)
{
    return m->methods->n_features(m->u.impl);
}

int64_t
sw_model_n_outputs(const sw_model *m)
{
    return m->methods->n_outputs(m->u.impl);
}

int64_t
sw_model_n_classes(const sw_model *m)
{
    return m->methods->n_classes(m->u.impl);
}

sw_rc
sw_model_predict(const sw_model *m, const sw_rows *x, double *out,
                 int64_t n_out, sw_err *err)
{
    if (m == NULL || x == NULL || (out == NULL && n_out > 0))
        return sw__fail(err, SW_E_INVAL, "predict: NULL argument");
    return m->methods->predict(m->u.impl, x, out, n_out, err);
}

sw_rc
sw_model_set_metadata(sw_model *m, const char *json, sw_err *err)
{
    char *copy;

    if (m == NULL || json == NULL)
        return sw__fail(err, SW_E_INVAL, "set_metadata: NULL argument");
    copy = sw__strdup(json);
    if (copy == NULL)
        return sw__fail(err, SW_E_NOMEM, "set_metadata: out of memory");
    sw__free(m->metadata);
    m->metadata = copy;
    return SW_OK;
}

const char *
sw_model_metadata(const sw_model *m)
{
    return m->metadata ? m->metadata : "{}";
}

/* Copy rows x into an owned view: dense float64 stays dense, anything
 * sparse becomes CSR with float64 values and int64 indices. */
static sw_rc
copy_rows(const sw_rows *x, sw_rows *dst, sw_err *err)
{
    sw_scratch scratch = {0};
    double *data = NULL;
    int64_t *indptr = NULL, *indices = NULL, nnz = 0, i, k;
    sw_row row;
    sw_rc rc;

    memset(dst, 0, sizeof(*dst));
    rc = sw_rows_check(x, err);
    if (rc != SW_OK)
        goto done;
    if (x->layout == SW_DENSE) {
        data = sw__alloc_array((size_t)(x->n_rows * x->n_cols), sizeof(double));
        if (data == NULL && x->n_rows * x->n_cols > 0) {
            rc = sw__fail(err, SW_E_NOMEM, "golden: out of memory");
            goto done;
        }
        for (i = 0; i < x->n_rows; i++) {
            rc = sw__row_get(x, i, &row, &scratch, err);
            if (rc != SW_OK)
                goto done;
            memcpy(data + i * x->n_cols, row.val,
                   (size_t)x->n_cols * sizeof(double));
        }
        dst->layout = SW_DENSE;
        dst->row_stride = x->n_cols;
    } else {
        indptr = sw__alloc_array((size_t)(x->n_rows + 1), sizeof(int64_t));
        if (indptr == NULL) {
            rc = sw__fail(err, SW_E_NOMEM, "golden: out of memory");
            goto done;
        }
        indptr[0] = 0;
        for (i = 0; i < x->n_rows; i++) {
            rc = sw__row_get(x, i, &row, &scratch, err);
            if (rc != SW_OK)
                goto done;
            nnz += row.n;
            indptr[i + 1] = nnz;
        }
        data = sw__alloc_array((size_t)nnz, sizeof(double));
        indices = sw__alloc_array((size_t)nnz, sizeof(int64_t));
        if (data == NULL || indices == NULL) {
            rc = sw__fail(err, SW_E_NOMEM, "golden: out of memory");
            goto done;
        }
        for (i = 0; i < x->n_rows; i++) {
            rc = sw__row_get(x, i, &row, &scratch, err);
            if (rc != SW_OK)
                goto done;
            for (k = 0; k < row.n; k++) {
                data[indptr[i] + k] = row.val[k];
                indices[indptr[i] + k] = row.idx[k];
            }
        }
        dst->layout = SW_CSR;
        dst->itype = SW_I64;
    }
    dst->dtype = SW_F64;
    dst->n_rows = x->n_rows;
    dst->n_cols = x->n_cols;
    dst->data = data;
    dst->indptr = indptr;
    dst->indices = indices;
    data = NULL;
    indptr = indices = NULL;
    rc = SW_OK;
done:
    sw__scratch_free(&scratch);
    sw__free(data);
    sw__free(indptr);
    sw__free(indices);
    return rc;
}

static void
free_rows(sw_rows *x)
{
    sw__free((void *)x->data);
    sw__free((void *)x->indptr);
    sw__free((void *)x->indices);
    memset(x, 0, sizeof(*x));
}

sw_rc
sw_model_set_golden(sw_model *m, const sw_rows *x, sw_err *err)
{
    sw_rows copy;
    sw_rc rc;

    if (m == NULL || x == NULL)
        return sw__fail(err, SW_E_INVAL, "set_golden: NULL argument");
    rc = sw__rows_check_shape(x, sw_model_n_features(m), err);
    if (rc != SW_OK)
        return rc;
    if (x->n_rows < 1 || x->n_rows > 4096)
        return sw__fail(err, SW_E_INVAL,
                        "set_golden: %lld rows, expected "
                        "1..4096",
                        (long long)x->n_rows);
    rc = copy_rows(x, &copy, err);
    if (rc != SW_OK)
        return rc;
    free_rows(&m->golden);
    m->golden = copy;
    return SW_OK;
}

/* Take the golden rows from src, leaving src empty. For the reader. */
void
sw__model_adopt_golden(sw_model *m, sw_rows *src)
{
    free_rows(&m->golden);
    m->golden = *src;
    memset(src, 0, sizeof(*src));
}

sw_rc
sw_model_dup(const sw_model *m, sw_model **out, sw_err *err)
{
    sw_model *c = NULL;
    sw_rc rc;

    *out = NULL;
    if (m == NULL)
        return sw__fail(err, SW_E_INVAL, "dup: NULL model");
    c = sw__calloc(1, sizeof(*c));
    if (c == NULL)
        return sw__fail(err, SW_E_NOMEM, "dup: out of memory");
    c->kind = m->kind;
    rc = m->methods->dup(m->u.impl, &c->u.impl, err);
    if (rc != SW_OK)
        goto done;
    c->methods = m->methods; /* set once there is an impl to free */
    if (m->metadata != NULL) {
        c->metadata = sw__strdup(m->metadata);
        if (c->metadata == NULL) {
            rc = sw__fail(err, SW_E_NOMEM, "dup: out of memory");
            goto done;
        }
    }
    if (m->golden.data != NULL) {
        rc = copy_rows(&m->golden, &c->golden, err);
        if (rc != SW_OK)
            goto done;
    }
    rc = sw__bundle_dup(m->bundle, &c->bundle, err);
    if (rc != SW_OK)
        goto done;
    *out = c;
    c = NULL;
    rc = SW_OK;
done:
    sw_model_free(c);
    return rc;
}
