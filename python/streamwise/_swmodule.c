/* SPDX-License-Identifier: MIT */
/*
 * _swmodule.c - the extension: a translator between Python and the core.
 *
 * Each method parses its arguments, turns numpy arrays, scipy CSR matrices
 * and {index: value} dicts into borrowed sw_rows views (without copies when
 * the dtype already fits), calls the core with the GIL released around long
 * calls, and maps an sw_err to an exception in one place, raise_sw_err().
 * The numerics live in build/libswcore.a, the very archive the runner and
 * the C tests link. Estimators, defaults and conveniences live in Python.
 */
#define PY_SSIZE_T_CLEAN
#define NPY_NO_DEPRECATED_API NPY_1_7_API_VERSION
#include <Python.h>
#include <numpy/arrayobject.h>
#include <pythread.h>
#include <stdio.h>
#include <stdlib.h>

#include "streamwise.h"

/* Calls on at least this many rows release the GIL; below it the release
 * costs more than it frees. */
#define GIL_ROWS 64
#define SW_MAX_COLUMNS 256 /* columns of one event batch */

typedef struct {
    PyTypeObject *Model_Type;
    PyTypeObject *Pipeline_Type;
    PyObject *Error;
    PyObject *exc[SW_RC_COUNT];
} sw_state;

typedef struct {
    PyObject_HEAD sw_model *model;
    PyThread_type_lock lock; /* one call at a time on this handle */
} ModelObject;

static void
raise_sw_err(sw_state *st, const sw_err *err)
{
    if (err->rc == SW_E_NOMEM) {
        PyErr_NoMemory();
        return;
    }
    if ((int)err->rc <= 0 || err->rc >= SW_RC_COUNT) {
        PyErr_Format(st->Error, "%s [%s]", err->msg, sw_rc_name(err->rc));
        return;
    }
    PyErr_Format(st->exc[err->rc], "%s [%s]", err->msg, sw_rc_name(err->rc));
}

/* ------------------------------------------------------------------ */
/* Python objects -> sw_rows                                            */
/* ------------------------------------------------------------------ */

/* What a converted view keeps alive: arrays it borrows from or owns, and
 * buffers for a dict row. Released by hold_release(). */
typedef struct {
    PyObject *obj[3];
    int64_t *idx;
    double *val;
    int64_t indptr[2];
    int64_t small_idx[64];
    double small_val[64];
} hold;

static void
hold_release(hold *h)
{
    int i;

    for (i = 0; i < 3; i++)
        Py_CLEAR(h->obj[i]);
    if (h->idx != h->small_idx)
        PyMem_Free(h->idx);
    if (h->val != h->small_val)
        PyMem_Free(h->val);
    h->idx = NULL;
    h->val = NULL;
}

/* A float64 or float32 array we can read in place, else a float64 copy. */
static PyArrayObject *
as_float_array(PyObject *o)
{
    PyArray_Descr *want;

    if (PyArray_Check(o) && PyArray_TYPE((PyArrayObject *)o) == NPY_FLOAT32)
        want = PyArray_DescrFromType(NPY_FLOAT32);
    else
        want = PyArray_DescrFromType(NPY_FLOAT64);
    return (PyArrayObject *)PyArray_FromAny(
        o, want, 0, 0, NPY_ARRAY_ALIGNED | NPY_ARRAY_NOTSWAPPED, NULL);
}

static PyArrayObject *
as_index_array(PyObject *o, int type)
{
    return (PyArrayObject *)PyArray_FromAny(
        o, PyArray_DescrFromType(type), 1, 1,
        NPY_ARRAY_C_CONTIGUOUS | NPY_ARRAY_ALIGNED | NPY_ARRAY_NOTSWAPPED,
        NULL);
}

/* One sparse row from {index: value}. */
static int
dict_row(PyObject *d, int64_t n_features, hold *h, sw_rows *v)
{
    Py_ssize_t n = PyDict_Size(d), pos = 0, k = 0;
    PyObject *key, *value;

    if (n <= 64) {
        h->idx = h->small_idx;
        h->val = h->small_val;
    } else {
        h->idx = PyMem_Malloc((size_t)n * sizeof(int64_t));
        h->val = PyMem_Malloc((size_t)n * sizeof(double));
        if (h->idx == NULL || h->val == NULL) {
            PyErr_NoMemory();
            return -1;
        }
    }
    while (PyDict_Next(d, &pos, &key, &value)) {
        long long j = PyLong_AsLongLong(key);
        double x;

        if (j == -1 && PyErr_Occurred()) {
            PyErr_Format(PyExc_TypeError,
                         "feature keys must be integer column numbers, got "
                         "%.80R",
                         key);
            return -1;
        }
        x = PyFloat_AsDouble(value);
        if (x == -1.0 && PyErr_Occurred())
            return -1;
        h->idx[k] = j;
        h->val[k] = x;
        k++;
    }
    h->indptr[0] = 0;
    h->indptr[1] = k;
    memset(v, 0, sizeof(*v));
    v->layout = SW_CSR;
    v->dtype = SW_F64;
    v->itype = SW_I64;
    v->n_rows = 1;
    v->n_cols = n_features;
    v->data = h->val;
    v->indptr = h->indptr;
    v->indices = h->idx;
    return 0;
}

/* A CSR matrix: any object with indptr, indices, data and shape (scipy's
 * csr_matrix and csr_array), or an (indices, values) pair for one row. */
static int
csr_rows(PyObject *indptr_o, PyObject *indices_o, PyObject *data_o,
         int64_t n_rows, int64_t n_cols, hold *h, sw_rows *v)
{
    PyArrayObject *indptr = NULL, *indices = NULL, *data;
    int type = NPY_INT64;

    if (indptr_o != NULL && PyArray_Check(indptr_o) &&
        PyArray_Check(indices_o) &&
        PyArray_TYPE((PyArrayObject *)indptr_o) == NPY_INT32 &&
        PyArray_TYPE((PyArrayObject *)indices_o) == NPY_INT32)
        type = NPY_INT32;
    data = as_float_array(data_o);
    h->obj[0] = (PyObject *)data;
    if (data == NULL)
        return -1;
    if (PyArray_NDIM(data) != 1 || !PyArray_IS_C_CONTIGUOUS(data)) {
        PyObject *c = PyArray_NewCopy(data, NPY_CORDER);

        Py_SETREF(h->obj[0], c);
        if (c == NULL)
            return -1;
        data = (PyArrayObject *)c;
        if (PyArray_NDIM(data) != 1) {
            PyErr_SetString(PyExc_ValueError, "CSR data must be 1-D");
            return -1;
        }
    }
    indices = as_index_array(indices_o, type);
    h->obj[1] = (PyObject *)indices;
    if (indices == NULL)
        return -1;
    memset(v, 0, sizeof(*v));
    if (indptr_o != NULL) {
        indptr = as_index_array(indptr_o, type);
        h->obj[2] = (PyObject *)indptr;
        if (indptr == NULL)
            return -1;
        if (PyArray_DIM(indptr, 0) != n_rows + 1) {
            PyErr_Format(
                PyExc_ValueError, "CSR indptr has %zd entries, expected %lld",
                (Py_ssize_t)PyArray_DIM(indptr, 0), (long long)n_rows + 1);
            return -1;
        }
        v->indptr = PyArray_DATA(indptr);
    } else {
        h->indptr[0] = 0;
        h->indptr[1] = PyArray_DIM(indices, 0);
        v->indptr = h->indptr;
    }
    if (PyArray_DIM(indices, 0) != PyArray_DIM(data, 0)) {
        PyErr_Format(PyExc_ValueError,
                     "CSR indices has %zd entries and data %zd",
                     (Py_ssize_t)PyArray_DIM(indices, 0),
                     (Py_ssize_t)PyArray_DIM(data, 0));
        return -1;
    }
    if (indptr != NULL && n_rows > 0) {
        int64_t last = type == NPY_INT32
                           ? ((int32_t *)PyArray_DATA(indptr))[n_rows]
                           : ((int64_t *)PyArray_DATA(indptr))[n_rows];
        int64_t first = type == NPY_INT32
                            ? ((int32_t *)PyArray_DATA(indptr))[0]
                            : ((int64_t *)PyArray_DATA(indptr))[0];

        if (first < 0 || last > PyArray_DIM(indices, 0) || last < first) {
            PyErr_Format(PyExc_ValueError,
                         "CSR indptr runs %lld..%lld over %zd entries",
                         (long long)first, (long long)last,
                         (Py_ssize_t)PyArray_DIM(indices, 0));
            return -1;
        }
    }
    v->layout = SW_CSR;
    v->dtype = PyArray_TYPE(data) == NPY_FLOAT32 ? SW_F32 : SW_F64;
    v->itype = type == NPY_INT32 ? SW_I32 : SW_I64;
    v->n_rows = n_rows;
    v->n_cols = n_cols;
    v->data = PyArray_DATA(data);
    v->indices = PyArray_DATA(indices);
    /* Non-decreasing indptr is checked here, once, so that the core can
     * trust the row boundaries it reads. */
    if (indptr != NULL) {
        int64_t i;

        for (i = 0; i < n_rows; i++) {
            int64_t a = type == NPY_INT32 ? ((const int32_t *)v->indptr)[i]
                                          : ((const int64_t *)v->indptr)[i];
            int64_t b = type == NPY_INT32 ? ((const int32_t *)v->indptr)[i + 1]
                                          : ((const int64_t *)v->indptr)[i + 1];

            if (b < a) {
                PyErr_Format(PyExc_ValueError,
                             "CSR indptr decreases at row %lld", (long long)i);
                return -1;
            }
        }
    }
    return 0;
}

static int64_t
shape_at(PyObject *shape, Py_ssize_t i)
{
    PyObject *item = PySequence_GetItem(shape, i);
    long long v;

    if (item == NULL)
        return -1;
    v = PyLong_AsLongLong(item);
    Py_DECREF(item);
    return v;
}

/* Convert X to a view. n_features is used for dict rows and (indices,
 * values) pairs, whose width is the model's. */
static int
to_rows(PyObject *x, int64_t n_features, hold *h, sw_rows *v)
{
    PyArrayObject *a;
    int nd;

    memset(h, 0, sizeof(*h));
    if (PyDict_Check(x))
        return dict_row(x, n_features, h, v);
    if (PyTuple_Check(x) && PyTuple_GET_SIZE(x) == 2)
        return csr_rows(NULL, PyTuple_GET_ITEM(x, 0), PyTuple_GET_ITEM(x, 1), 1,
                        n_features, h, v);
    if (!PyArray_Check(x) && PyObject_HasAttrString(x, "indptr")) {
        PyObject *indptr = NULL, *indices = NULL, *data = NULL, *shape = NULL;
        PyObject *fmt = PyObject_GetAttrString(x, "format");
        int64_t r = -1, c = -1;
        int rc = -1;

        /* CSC matrices have an indptr too: only CSR is read as rows. */
        if (fmt == NULL) {
            PyErr_Clear();
        } else {
            int is_csr = PyUnicode_Check(fmt) &&
                         PyUnicode_CompareWithASCIIString(fmt, "csr") == 0;

            Py_DECREF(fmt);
            if (!is_csr) {
                PyErr_SetString(PyExc_TypeError,
                                "sparse input must be CSR (call .tocsr())");
                return -1;
            }
        }

        indptr = PyObject_GetAttrString(x, "indptr");
        indices = PyObject_GetAttrString(x, "indices");
        data = PyObject_GetAttrString(x, "data");
        shape = PyObject_GetAttrString(x, "shape");
        if (indptr && indices && data && shape) {
            r = shape_at(shape, 0);
            c = shape_at(shape, 1);
            if (!PyErr_Occurred())
                rc = csr_rows(indptr, indices, data, r, c, h, v);
        }
        Py_XDECREF(indptr);
        Py_XDECREF(indices);
        Py_XDECREF(data);
        Py_XDECREF(shape);
        return rc;
    }
    a = as_float_array(x);
    h->obj[0] = (PyObject *)a;
    if (a == NULL)
        return -1;
    nd = PyArray_NDIM(a);
    if (nd != 1 && nd != 2) {
        PyErr_Format(PyExc_ValueError, "X must be 1-D or 2-D, got %d-D", nd);
        return -1;
    }
    /* Rows must be contiguous and must not overlap (a sliding window view
     * has a row stride below the row length: the core would read past
     * the array); any other row stride will do. */
    if (PyArray_STRIDE(a, nd - 1) != PyArray_ITEMSIZE(a) ||
        (nd == 2 && (PyArray_STRIDE(a, 0) < 0 ||
                     PyArray_STRIDE(a, 0) % PyArray_ITEMSIZE(a) != 0 ||
                     (PyArray_DIM(a, 0) > 1 &&
                      PyArray_STRIDE(a, 0) <
                          PyArray_DIM(a, 1) * PyArray_ITEMSIZE(a))))) {
        PyObject *c = PyArray_NewCopy(a, NPY_CORDER);

        Py_SETREF(h->obj[0], c);
        if (c == NULL)
            return -1;
        a = (PyArrayObject *)c;
    }
    memset(v, 0, sizeof(*v));
    v->layout = SW_DENSE;
    v->dtype = PyArray_TYPE(a) == NPY_FLOAT32 ? SW_F32 : SW_F64;
    v->n_rows = nd == 2 ? PyArray_DIM(a, 0) : 1;
    v->n_cols = PyArray_DIM(a, nd - 1);
    v->row_stride =
        nd == 2 ? PyArray_STRIDE(a, 0) / PyArray_ITEMSIZE(a) : v->n_cols;
    if (v->row_stride < v->n_cols)
        v->row_stride = v->n_cols; /* a single row, or zero rows */
    v->data = PyArray_DATA(a);
    return 0;
}

/* y as a contiguous float64 vector of n values (a scalar is one value). */
static PyArrayObject *
to_targets(PyObject *y, int64_t n)
{
    PyArrayObject *a =
        (PyArrayObject *)PyArray_FROM_OTF(y, NPY_FLOAT64, NPY_ARRAY_IN_ARRAY);

    if (a == NULL)
        return NULL;
    if (PyArray_SIZE(a) != n || PyArray_NDIM(a) > 1) {
        PyErr_Format(
            PyExc_ValueError, "y has %zd values (%d-D), X has %lld rows",
            (Py_ssize_t)PyArray_SIZE(a), PyArray_NDIM(a), (long long)n);
        Py_DECREF(a);
        return NULL;
    }
    return a;
}

/* ------------------------------------------------------------------ */
/* The Model type                                                       */
/* ------------------------------------------------------------------ */

static sw_state *
state_of(PyObject *self)
{
    return PyType_GetModuleState(Py_TYPE(self));
}

/* Take the handle's lock; wait with the GIL released if another thread
 * holds it (it released the GIL for a long call). */
static void
lock_model(ModelObject *self)
{
    if (!PyThread_acquire_lock(self->lock, NOWAIT_LOCK)) {
        Py_BEGIN_ALLOW_THREADS PyThread_acquire_lock(self->lock, WAIT_LOCK);
        Py_END_ALLOW_THREADS
    }
}

static void
unlock_model(ModelObject *self)
{
    PyThread_release_lock(self->lock);
}

static PyObject *
wrap_model(sw_state *st, sw_model *m)
{
    ModelObject *self = PyObject_New(ModelObject, st->Model_Type);

    if (self == NULL) {
        sw_model_free(m);
        return NULL;
    }
    self->model = m;
    self->lock = PyThread_allocate_lock();
    if (self->lock == NULL) {
        Py_DECREF(self);
        return PyErr_NoMemory();
    }
    return (PyObject *)self;
}

static void
Model_dealloc(ModelObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);

    sw_model_free(self->model);
    if (self->lock != NULL)
        PyThread_free_lock(self->lock);
    PyObject_Free(self);
    Py_DECREF(tp);
}

/* learn(X, y) and learn_one(x, y): y holds class numbers for a classifier
 * and values for a regressor. Rows before a failing row stay learned; the
 * exception message names the row and says how many were learned. */
static PyObject *
Model_learn(ModelObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    sw_state *st = state_of((PyObject *)self);
    PyArrayObject *y = NULL;
    PyObject *result = NULL;
    sw_rows v;
    sw_err err = {0};
    int64_t n_done = 0;
    double y1;
    const double *yp;
    hold h;
    sw_rc rc;

    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "learn(X, y) takes 2 arguments");
        return NULL;
    }
    if (to_rows(args[0], sw_model_n_features(self->model), &h, &v) < 0)
        goto done;
    if (v.n_rows == 1 && PyFloat_Check(args[1])) {
        y1 = PyFloat_AS_DOUBLE(args[1]);
        yp = &y1;
    } else if (v.n_rows == 1 && PyLong_Check(args[1])) {
        y1 = PyLong_AsDouble(args[1]);
        if (y1 == -1.0 && PyErr_Occurred())
            goto done;
        yp = &y1;
    } else {
        y = to_targets(args[1], v.n_rows);
        if (y == NULL)
            goto done;
        yp = PyArray_DATA(y);
    }
    lock_model(self);
    if (v.n_rows >= GIL_ROWS) {
        Py_BEGIN_ALLOW_THREADS rc =
            sw_linear_learn(self->model, &v, yp, v.n_rows, &n_done, &err);
        Py_END_ALLOW_THREADS
    } else {
        rc = sw_linear_learn(self->model, &v, yp, v.n_rows, &n_done, &err);
    }
    unlock_model(self);
    if (rc != SW_OK) {
        if (n_done > 0) {
            char msg[sizeof(err.msg)];

            snprintf(msg, sizeof(msg), "%.190s (rows 0..%lld were learned)",
                     err.msg, (long long)n_done - 1);
            memcpy(err.msg, msg, sizeof(msg));
        }
        raise_sw_err(st, &err);
        goto done;
    }
    result = Py_NewRef(Py_None);
done:
    hold_release(&h);
    Py_XDECREF(y);
    return result;
}

/* prequential(X, y) -> (predictions, running metric) */
static PyObject *
Model_prequential(ModelObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    sw_state *st = state_of((PyObject *)self);
    PyArrayObject *y = NULL, *pred = NULL, *metric = NULL;
    PyObject *result = NULL;
    npy_intp n;
    sw_rows v;
    sw_err err = {0};
    hold h;
    sw_rc rc;

    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "prequential(X, y) takes 2 "
                                         "arguments");
        return NULL;
    }
    if (to_rows(args[0], sw_model_n_features(self->model), &h, &v) < 0)
        goto done;
    y = to_targets(args[1], v.n_rows);
    if (y == NULL)
        goto done;
    n = v.n_rows;
    pred = (PyArrayObject *)PyArray_SimpleNew(1, &n, NPY_FLOAT64);
    metric = (PyArrayObject *)PyArray_SimpleNew(1, &n, NPY_FLOAT64);
    if (pred == NULL || metric == NULL)
        goto done;
    lock_model(self);
    Py_BEGIN_ALLOW_THREADS rc = sw_linear_prequential(
        self->model, &v, PyArray_DATA(y), n, PyArray_DATA(pred),
        PyArray_DATA(metric), NULL, &err);
    Py_END_ALLOW_THREADS unlock_model(self);
    if (rc != SW_OK) {
        raise_sw_err(st, &err);
        goto done;
    }
    result = PyTuple_Pack(2, pred, metric);
done:
    hold_release(&h);
    Py_XDECREF(y);
    Py_XDECREF(pred);
    Py_XDECREF(metric);
    return result;
}

/* predict(X) -> (n_rows,) for one output, (n_rows, n_outputs) otherwise.
 * A 1-D array or a dict gives one row: a float, or a 1-D array. */
static PyObject *
Model_predict(ModelObject *self, PyObject *arg)
{
    sw_state *st = state_of((PyObject *)self);
    PyArrayObject *out = NULL;
    PyObject *result = NULL;
    int64_t n_out = sw_model_n_outputs(self->model);
    int one = PyDict_Check(arg) ||
              (PyArray_Check(arg) && PyArray_NDIM((PyArrayObject *)arg) == 1) ||
              (PyTuple_Check(arg) && PyTuple_GET_SIZE(arg) == 2);
    npy_intp dims[2];
    sw_rows v;
    sw_err err = {0};
    hold h;
    sw_rc rc;

    if (to_rows(arg, sw_model_n_features(self->model), &h, &v) < 0)
        goto done;
    if (one && n_out == 1) {
        double s;

        lock_model(self);
        rc = sw_model_predict(self->model, &v, &s, 1, &err);
        unlock_model(self);
        if (rc != SW_OK)
            raise_sw_err(st, &err);
        else
            result = PyFloat_FromDouble(s);
        goto done;
    }
    dims[0] = v.n_rows;
    dims[1] = n_out;
    if (one)
        out = (PyArrayObject *)PyArray_SimpleNew(1, &dims[1], NPY_FLOAT64);
    else
        out = (PyArrayObject *)PyArray_SimpleNew(n_out == 1 ? 1 : 2, dims,
                                                 NPY_FLOAT64);
    if (out == NULL)
        goto done;
    lock_model(self);
    if (v.n_rows >= GIL_ROWS) {
        Py_BEGIN_ALLOW_THREADS rc = sw_model_predict(
            self->model, &v, PyArray_DATA(out), v.n_rows * n_out, &err);
        Py_END_ALLOW_THREADS
    } else {
        rc = sw_model_predict(self->model, &v, PyArray_DATA(out),
                              v.n_rows * n_out, &err);
    }
    unlock_model(self);
    if (rc != SW_OK) {
        raise_sw_err(st, &err);
        goto done;
    }
    result = (PyObject *)out;
    out = NULL;
done:
    hold_release(&h);
    Py_XDECREF(out);
    return result;
}

static PyObject *
Model_add_classes(ModelObject *self, PyObject *arg)
{
    long long n = PyLong_AsLongLong(arg);
    sw_err err = {0};
    sw_rc rc;

    if (n == -1 && PyErr_Occurred())
        return NULL;
    lock_model(self);
    rc = sw_linear_add_classes(self->model, n, &err);
    unlock_model(self);
    if (rc != SW_OK) {
        raise_sw_err(state_of((PyObject *)self), &err);
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
Model_save(ModelObject *self, PyObject *arg)
{
    PyObject *path = NULL;
    sw_err err = {0};
    sw_rc rc;

    if (!PyUnicode_FSConverter(arg, &path))
        return NULL;
    lock_model(self);
    Py_BEGIN_ALLOW_THREADS rc =
        sw_model_save(self->model, PyBytes_AS_STRING(path), &err);
    Py_END_ALLOW_THREADS unlock_model(self);
    Py_DECREF(path);
    if (rc != SW_OK) {
        raise_sw_err(state_of((PyObject *)self), &err);
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
Model_set_metadata(ModelObject *self, PyObject *arg)
{
    const char *json = PyUnicode_AsUTF8(arg);
    sw_err err = {0};
    sw_rc rc;

    if (json == NULL)
        return NULL;
    lock_model(self);
    rc = sw_model_set_metadata(self->model, json, &err);
    unlock_model(self);
    if (rc != SW_OK) {
        raise_sw_err(state_of((PyObject *)self), &err);
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
Model_set_golden(ModelObject *self, PyObject *arg)
{
    sw_rows v;
    sw_err err = {0};
    hold h;
    sw_rc rc;

    if (to_rows(arg, sw_model_n_features(self->model), &h, &v) < 0) {
        hold_release(&h);
        return NULL;
    }
    lock_model(self);
    rc = sw_model_set_golden(self->model, &v, &err);
    unlock_model(self);
    hold_release(&h);
    if (rc != SW_OK) {
        raise_sw_err(state_of((PyObject *)self), &err);
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
Model_copy(ModelObject *self, PyObject *Py_UNUSED(ignored))
{
    sw_model *m = NULL;
    sw_err err = {0};
    sw_rc rc;

    lock_model(self);
    rc = sw_model_dup(self->model, &m, &err);
    unlock_model(self);
    if (rc != SW_OK) {
        raise_sw_err(state_of((PyObject *)self), &err);
        return NULL;
    }
    return wrap_model(state_of((PyObject *)self), m);
}

/* weights as (n_vectors, n_features [+ 1]); sigma likewise (diagonal) or
 * (n_vectors, dim, dim) (full covariance). */
static PyObject *
params_array(ModelObject *self, int want_sigma)
{
    int64_t n_vec = sw_linear_n_vectors(self->model);
    int64_t dim = sw_linear_vector_len(self->model);
    int64_t n_sigma = sw_linear_n_sigma(self->model);
    npy_intp dims[3] = {n_vec, dim, dim};
    int nd = want_sigma && n_sigma > n_vec * dim ? 3 : 2;
    PyArrayObject *a;
    sw_err err = {0};
    sw_rc rc;

    a = (PyArrayObject *)PyArray_SimpleNew(nd, dims, NPY_FLOAT64);
    if (a == NULL)
        return NULL;
    lock_model(self);
    if (want_sigma)
        rc = sw_linear_sigma(self->model, PyArray_DATA(a), n_sigma, &err);
    else
        rc = sw_linear_weights(self->model, PyArray_DATA(a), n_vec * dim, &err);
    unlock_model(self);
    if (rc != SW_OK) {
        Py_DECREF(a);
        raise_sw_err(state_of((PyObject *)self), &err);
        return NULL;
    }
    return (PyObject *)a;
}

static PyObject *
Model_get_weights(ModelObject *self, void *Py_UNUSED(c))
{
    return params_array(self, 0);
}

static PyObject *
Model_get_sigma(ModelObject *self, void *Py_UNUSED(c))
{
    return params_array(self, 1);
}

static PyObject *
Model_get_metadata(ModelObject *self, void *Py_UNUSED(c))
{
    return PyUnicode_FromString(sw_model_metadata(self->model));
}

static PyObject *
Model_get_n_features(ModelObject *self, void *Py_UNUSED(c))
{
    return PyLong_FromLongLong(sw_model_n_features(self->model));
}

static PyObject *
Model_get_n_outputs(ModelObject *self, void *Py_UNUSED(c))
{
    return PyLong_FromLongLong(sw_model_n_outputs(self->model));
}

static PyObject *
Model_get_n_classes(ModelObject *self, void *Py_UNUSED(c))
{
    return PyLong_FromLongLong(sw_model_n_classes(self->model));
}

static PyObject *
Model_get_counts(ModelObject *self, void *Py_UNUSED(c))
{
    int64_t seen, upd;

    sw_linear_counts(self->model, &seen, &upd);
    return Py_BuildValue("LL", (long long)seen, (long long)upd);
}

/* ------------------------------------------------------------------ */
/* ALS                                                                  */
/* ------------------------------------------------------------------ */

/* A CSR argument as a view (scipy matrices; held in h). */
static int
csr_arg(PyObject *o, hold *h, sw_rows *v, const char *what)
{
    memset(h, 0, sizeof(*h));
    if (!PyObject_HasAttrString(o, "indptr")) {
        PyErr_Format(PyExc_TypeError, "%s must be a scipy.sparse CSR matrix",
                     what);
        return -1;
    }
    return to_rows(o, 0, h, v);
}

/* An optional 1-D array of a numpy type, NULL for None. */
static PyArrayObject *
opt_array(PyObject *o, int type, int *err)
{
    PyArrayObject *a;

    *err = 0;
    if (o == NULL || o == Py_None)
        return NULL;
    a = (PyArrayObject *)PyArray_FROM_OTF(o, type, NPY_ARRAY_IN_ARRAY);
    if (a == NULL || PyArray_NDIM(a) > 2) {
        if (a != NULL) {
            PyErr_SetString(PyExc_ValueError, "expected a 1-D or 2-D array");
            Py_DECREF(a);
        }
        *err = 1;
        return NULL;
    }
    return a;
}

/* als_iterate(user_items, item_users, want_loss) -> loss or None */
static PyObject *
Model_als_iterate(ModelObject *self, PyObject *args)
{
    PyObject *ui, *iu, *result = NULL;
    int want_loss;
    hold h1, h2;
    sw_rows v1, v2;
    sw_err err = {0};
    double loss = 0;
    sw_rc rc;

    memset(&h1, 0, sizeof(h1));
    memset(&h2, 0, sizeof(h2));
    if (!PyArg_ParseTuple(args, "OOp", &ui, &iu, &want_loss))
        return NULL;
    if (csr_arg(ui, &h1, &v1, "user_items") < 0 ||
        csr_arg(iu, &h2, &v2, "item_users") < 0)
        goto done;
    lock_model(self);
    Py_BEGIN_ALLOW_THREADS rc =
        sw_als_iterate(self->model, &v1, &v2, want_loss ? &loss : NULL, &err);
    Py_END_ALLOW_THREADS unlock_model(self);
    if (rc != SW_OK) {
        raise_sw_err(state_of((PyObject *)self), &err);
        goto done;
    }
    result = want_loss ? PyFloat_FromDouble(loss) : Py_NewRef(Py_None);
done:
    hold_release(&h1);
    hold_release(&h2);
    return result;
}

static PyObject *
Model_als_info(ModelObject *self, void *Py_UNUSED(c))
{
    return Py_BuildValue("(LLLi)", (long long)sw_als_n_users(self->model),
                         (long long)sw_als_n_items(self->model),
                         (long long)sw_als_n_factors(self->model),
                         sw_als_has_liked(self->model));
}

static PyObject *
Model_gbdt_info(ModelObject *self, void *Py_UNUSED(c))
{
    return Py_BuildValue("(LL)", (long long)sw_gbdt_n_trees(self->model),
                         (long long)sw_gbdt_best_iteration(self->model));
}

/* gbdt_importance(by_gain) -> float64 array (n_features) */
static PyObject *
Model_gbdt_importance(ModelObject *self, PyObject *arg)
{
    int by_gain = PyObject_IsTrue(arg);
    npy_intp n = sw_model_n_features(self->model);
    PyArrayObject *a;
    sw_err err = {0};

    if (by_gain < 0)
        return NULL;
    a = (PyArrayObject *)PyArray_SimpleNew(1, &n, NPY_FLOAT64);
    if (a == NULL)
        return NULL;
    if (sw_gbdt_importance(self->model, by_gain, PyArray_DATA(a), n, &err) !=
        SW_OK) {
        Py_DECREF(a);
        raise_sw_err(state_of((PyObject *)self), &err);
        return NULL;
    }
    return (PyObject *)a;
}

/* gbdt_export_c(dir, name, trees_per_file) -> number of files written */
static PyObject *
Model_gbdt_export_c(ModelObject *self, PyObject *args)
{
    const char *dir, *name;
    long long per_file;
    int n_files = 0;
    sw_err err = {0};
    sw_rc rc;

    if (!PyArg_ParseTuple(args, "ssL", &dir, &name, &per_file))
        return NULL;
    Py_BEGIN_ALLOW_THREADS;
    rc = sw_gbdt_export_c(self->model, dir, name, per_file, &n_files, &err);
    Py_END_ALLOW_THREADS;
    if (rc != SW_OK) {
        raise_sw_err(state_of((PyObject *)self), &err);
        return NULL;
    }
    return PyLong_FromLong(n_files);
}

/* als_factors(side) -> float32 array (rows, k), a copy */
static PyObject *
Model_als_factors(ModelObject *self, PyObject *arg)
{
    int side = PyLong_AsLong(arg) ? 1 : 0;
    npy_intp dims[2];
    PyArrayObject *a;
    sw_err err = {0};
    sw_rc rc;

    if (PyErr_Occurred())
        return NULL;
    dims[0] = side ? sw_als_n_items(self->model) : sw_als_n_users(self->model);
    dims[1] = sw_als_n_factors(self->model);
    a = (PyArrayObject *)PyArray_SimpleNew(2, dims, NPY_FLOAT32);
    if (a == NULL)
        return NULL;
    lock_model(self);
    rc = sw_als_get_factors(self->model, side, PyArray_DATA(a),
                            dims[0] * dims[1], &err);
    unlock_model(self);
    if (rc != SW_OK) {
        Py_DECREF(a);
        raise_sw_err(state_of((PyObject *)self), &err);
        return NULL;
    }
    return (PyObject *)a;
}

/* als_set_factors(side, array) */
static PyObject *
Model_als_set_factors(ModelObject *self, PyObject *args)
{
    int side;
    PyObject *o;
    PyArrayObject *a;
    sw_err err = {0};
    sw_rc rc;

    if (!PyArg_ParseTuple(args, "iO", &side, &o))
        return NULL;
    a = (PyArrayObject *)PyArray_FROM_OTF(o, NPY_FLOAT32, NPY_ARRAY_IN_ARRAY);
    if (a == NULL)
        return NULL;
    lock_model(self);
    rc = sw_als_set_factors(self->model, side, PyArray_DATA(a), PyArray_SIZE(a),
                            &err);
    unlock_model(self);
    Py_DECREF(a);
    if (rc != SW_OK) {
        raise_sw_err(state_of((PyObject *)self), &err);
        return NULL;
    }
    Py_RETURN_NONE;
}

/* als_solve_rows(side, csr) -> float32 (n_rows, k) */
static PyObject *
Model_als_solve_rows(ModelObject *self, PyObject *args)
{
    int side;
    PyObject *o;
    PyArrayObject *out = NULL;
    npy_intp dims[2];
    hold h;
    sw_rows v;
    sw_err err = {0};
    sw_rc rc;

    memset(&h, 0, sizeof(h));
    if (!PyArg_ParseTuple(args, "iO", &side, &o))
        return NULL;
    if (csr_arg(o, &h, &v, "rows") < 0)
        goto done;
    dims[0] = v.n_rows;
    dims[1] = sw_als_n_factors(self->model);
    out = (PyArrayObject *)PyArray_SimpleNew(2, dims, NPY_FLOAT32);
    if (out == NULL)
        goto done;
    lock_model(self);
    Py_BEGIN_ALLOW_THREADS rc = sw_als_solve_rows(
        self->model, side, &v, PyArray_DATA(out), dims[0] * dims[1], &err);
    Py_END_ALLOW_THREADS unlock_model(self);
    if (rc != SW_OK) {
        raise_sw_err(state_of((PyObject *)self), &err);
        Py_CLEAR(out);
    }
done:
    hold_release(&h);
    return (PyObject *)out;
}

/* als_put_rows(side, ids, vecs) */
static PyObject *
Model_als_put_rows(ModelObject *self, PyObject *args)
{
    int side, bad;
    PyObject *ids_o, *vecs_o;
    PyArrayObject *ids = NULL, *vecs = NULL;
    PyObject *result = NULL;
    sw_err err = {0};
    sw_rc rc;

    if (!PyArg_ParseTuple(args, "iOO", &side, &ids_o, &vecs_o))
        return NULL;
    ids = opt_array(ids_o, NPY_INT64, &bad);
    if (bad)
        goto done;
    vecs = opt_array(vecs_o, NPY_FLOAT32, &bad);
    if (bad)
        goto done;
    if (ids == NULL || vecs == NULL ||
        PyArray_SIZE(vecs) !=
            PyArray_SIZE(ids) * sw_als_n_factors(self->model)) {
        PyErr_SetString(PyExc_ValueError,
                        "put_rows: need one factor row per id");
        goto done;
    }
    lock_model(self);
    rc = sw_als_put_rows(self->model, side, PyArray_DATA(ids),
                         PyArray_SIZE(ids), PyArray_DATA(vecs), &err);
    unlock_model(self);
    if (rc != SW_OK) {
        raise_sw_err(state_of((PyObject *)self), &err);
        goto done;
    }
    result = Py_NewRef(Py_None);
done:
    Py_XDECREF(ids);
    Py_XDECREF(vecs);
    return result;
}

static PyObject *
Model_als_set_liked(ModelObject *self, PyObject *o)
{
    hold h;
    sw_rows v;
    sw_err err = {0};
    sw_rc rc;

    if (csr_arg(o, &h, &v, "user_items") < 0) {
        hold_release(&h);
        return NULL;
    }
    lock_model(self);
    rc = sw_als_set_liked(self->model, &v, &err);
    unlock_model(self);
    hold_release(&h);
    if (rc != SW_OK) {
        raise_sw_err(state_of((PyObject *)self), &err);
        return NULL;
    }
    Py_RETURN_NONE;
}

/* als_recommend(ids, vecs, n, flags, liked, exclude, candidates)
 * -> (items int64 (n_q, n), scores float32 (n_q, n)) */
static PyObject *
Model_als_recommend(ModelObject *self, PyObject *args)
{
    PyObject *ids_o, *vecs_o, *liked_o, *excl_o, *cand_o, *result = NULL;
    PyArrayObject *ids = NULL, *vecs = NULL, *excl = NULL, *cand = NULL;
    PyArrayObject *items = NULL, *scores = NULL;
    long long n;
    int flags, bad;
    npy_intp dims[2];
    hold h;
    sw_rows lv;
    sw_err err = {0};
    sw_rc rc;

    memset(&h, 0, sizeof(h));
    if (!PyArg_ParseTuple(args, "OOLiOOO", &ids_o, &vecs_o, &n, &flags,
                          &liked_o, &excl_o, &cand_o))
        return NULL;
    ids = opt_array(ids_o, NPY_INT64, &bad);
    if (bad)
        goto done;
    vecs = opt_array(vecs_o, NPY_FLOAT32, &bad);
    if (bad)
        goto done;
    excl = opt_array(excl_o, NPY_UINT8, &bad);
    if (bad)
        goto done;
    cand = opt_array(cand_o, NPY_INT64, &bad);
    if (bad)
        goto done;
    if (liked_o != Py_None && csr_arg(liked_o, &h, &lv, "user_items") < 0)
        goto done;
    if (excl != NULL && PyArray_SIZE(excl) != sw_als_n_items(self->model)) {
        PyErr_SetString(PyExc_ValueError, "exclude mask must have n_items "
                                          "entries");
        goto done;
    }
    dims[0] =
        ids ? PyArray_SIZE(ids)
            : (vecs ? PyArray_SIZE(vecs) / sw_als_n_factors(self->model) : 0);
    dims[1] = n;
    items = (PyArrayObject *)PyArray_SimpleNew(2, dims, NPY_INT64);
    scores = (PyArrayObject *)PyArray_SimpleNew(2, dims, NPY_FLOAT32);
    if (items == NULL || scores == NULL)
        goto done;
    lock_model(self);
    Py_BEGIN_ALLOW_THREADS rc = sw_als_recommend(
        self->model, ids ? PyArray_DATA(ids) : NULL, dims[0],
        vecs ? PyArray_DATA(vecs) : NULL, n, flags,
        liked_o != Py_None ? &lv : NULL, excl ? PyArray_DATA(excl) : NULL,
        cand ? PyArray_DATA(cand) : NULL, cand ? PyArray_SIZE(cand) : 0,
        PyArray_DATA(items), PyArray_DATA(scores), &err);
    Py_END_ALLOW_THREADS unlock_model(self);
    if (rc != SW_OK) {
        raise_sw_err(state_of((PyObject *)self), &err);
        goto done;
    }
    result = PyTuple_Pack(2, items, scores);
done:
    hold_release(&h);
    Py_XDECREF(ids);
    Py_XDECREF(vecs);
    Py_XDECREF(excl);
    Py_XDECREF(cand);
    Py_XDECREF(items);
    Py_XDECREF(scores);
    return result;
}

/* als_similar(side, ids, n, candidates) -> (ids, scores) */
static PyObject *
Model_als_similar(ModelObject *self, PyObject *args)
{
    PyObject *ids_o, *cand_o, *result = NULL;
    PyArrayObject *ids = NULL, *cand = NULL, *out = NULL, *scores = NULL;
    long long n;
    int side, bad;
    npy_intp dims[2];
    sw_err err = {0};
    sw_rc rc;

    if (!PyArg_ParseTuple(args, "iOLO", &side, &ids_o, &n, &cand_o))
        return NULL;
    ids = opt_array(ids_o, NPY_INT64, &bad);
    if (bad || ids == NULL) {
        if (!bad)
            PyErr_SetString(PyExc_ValueError, "similar: ids required");
        goto done;
    }
    cand = opt_array(cand_o, NPY_INT64, &bad);
    if (bad)
        goto done;
    dims[0] = PyArray_SIZE(ids);
    dims[1] = n;
    out = (PyArrayObject *)PyArray_SimpleNew(2, dims, NPY_INT64);
    scores = (PyArrayObject *)PyArray_SimpleNew(2, dims, NPY_FLOAT32);
    if (out == NULL || scores == NULL)
        goto done;
    lock_model(self);
    Py_BEGIN_ALLOW_THREADS rc = sw_als_similar(
        self->model, side, PyArray_DATA(ids), dims[0], n,
        cand ? PyArray_DATA(cand) : NULL, cand ? PyArray_SIZE(cand) : 0,
        PyArray_DATA(out), PyArray_DATA(scores), &err);
    Py_END_ALLOW_THREADS unlock_model(self);
    if (rc != SW_OK) {
        raise_sw_err(state_of((PyObject *)self), &err);
        goto done;
    }
    result = PyTuple_Pack(2, out, scores);
done:
    Py_XDECREF(ids);
    Py_XDECREF(cand);
    Py_XDECREF(out);
    Py_XDECREF(scores);
    return result;
}

/* ranking_metrics(train or None, test, k) -> (p, map, ndcg, auc, users) */
static PyObject *
Model_ranking_metrics(ModelObject *self, PyObject *args)
{
    PyObject *train_o, *test_o, *result = NULL;
    long long k;
    hold h1, h2;
    sw_rows v1, v2;
    double out[4];
    int64_t n_users = 0;
    sw_err err = {0};
    sw_rc rc;

    memset(&h1, 0, sizeof(h1));
    memset(&h2, 0, sizeof(h2));
    if (!PyArg_ParseTuple(args, "OOL", &train_o, &test_o, &k))
        return NULL;
    if ((train_o != Py_None && csr_arg(train_o, &h1, &v1, "train") < 0) ||
        csr_arg(test_o, &h2, &v2, "test") < 0)
        goto done;
    lock_model(self);
    Py_BEGIN_ALLOW_THREADS rc =
        sw_ranking_metrics(self->model, train_o != Py_None ? &v1 : NULL, &v2, k,
                           out, &n_users, &err);
    Py_END_ALLOW_THREADS unlock_model(self);
    if (rc != SW_OK) {
        raise_sw_err(state_of((PyObject *)self), &err);
        goto done;
    }
    result = Py_BuildValue("(ddddL)", out[0], out[1], out[2], out[3],
                           (long long)n_users);
done:
    hold_release(&h1);
    hold_release(&h2);
    return result;
}

/* Bundles (defined with the pipelines, whose type they take). */
static PyObject *Model_set_pipeline(ModelObject *self, PyObject *args);
static PyObject *Model_set_golden_events(ModelObject *self, PyObject *arg);
static PyObject *Model_predict_features(ModelObject *self, PyObject *args);
static PyObject *Model_get_pipeline(ModelObject *self, void *c);

static PyMethodDef Model_methods[] = {
    {"set_pipeline", (PyCFunction)Model_set_pipeline, METH_VARARGS,
     "set_pipeline(pipeline, inputs, sparse): make the model a bundle."},
    {"set_golden_events", (PyCFunction)Model_set_golden_events, METH_O,
     "set_golden_events(columns): events replayed and checked at load."},
    {"predict_features", (PyCFunction)Model_predict_features, METH_VARARGS,
     "predict_features(pipeline, dense, hashed) -> scores of feature rows."},
    {"learn", (PyCFunction)(void (*)(void))Model_learn, METH_FASTCALL,
     "learn(X, y): learn rows in order (y: class numbers or values)."},
    {"learn_one", (PyCFunction)(void (*)(void))Model_learn, METH_FASTCALL,
     "learn_one(x, y): the same for one row (1-D array or dict)."},
    {"prequential", (PyCFunction)(void (*)(void))Model_prequential,
     METH_FASTCALL,
     "prequential(X, y) -> (predictions, running metric): test, then "
     "train, row by row."},
    {"predict", (PyCFunction)Model_predict, METH_O,
     "predict(X): decision values, per-class scores, or predictions."},
    {"add_classes", (PyCFunction)Model_add_classes, METH_O,
     "add_classes(n): grow a classifier to n classes."},
    {"save", (PyCFunction)Model_save, METH_O, "save(path): write a .swm."},
    {"set_metadata", (PyCFunction)Model_set_metadata, METH_O,
     "set_metadata(json): the METADATA section's text."},
    {"set_golden", (PyCFunction)Model_set_golden, METH_O,
     "set_golden(X): rows whose exact scores the file will carry."},
    {"copy", (PyCFunction)Model_copy, METH_NOARGS, "A deep copy."},
    {"als_iterate", (PyCFunction)Model_als_iterate, METH_VARARGS,
     "als_iterate(user_items, item_users, want_loss) -> loss or None"},
    {"gbdt_importance", (PyCFunction)Model_gbdt_importance, METH_O,
     "gbdt_importance(by_gain) -> per-feature split counts or gains"},
    {"gbdt_export_c", (PyCFunction)Model_gbdt_export_c, METH_VARARGS,
     "gbdt_export_c(dir, name, trees_per_file) -> files written"},
    {"als_factors", (PyCFunction)Model_als_factors, METH_O,
     "als_factors(side) -> float32 (rows, k): 0 users, 1 items"},
    {"als_set_factors", (PyCFunction)Model_als_set_factors, METH_VARARGS,
     "als_set_factors(side, array)"},
    {"als_solve_rows", (PyCFunction)Model_als_solve_rows, METH_VARARGS,
     "als_solve_rows(side, csr) -> float32 (n, k), exact fold-in"},
    {"als_put_rows", (PyCFunction)Model_als_put_rows, METH_VARARGS,
     "als_put_rows(side, ids, vecs): write (and grow)"},
    {"als_set_liked", (PyCFunction)Model_als_set_liked, METH_O,
     "als_set_liked(user_items): keep interactions to leave out"},
    {"als_recommend", (PyCFunction)Model_als_recommend, METH_VARARGS,
     "als_recommend(ids, vecs, n, flags, liked, exclude, candidates)"},
    {"als_similar", (PyCFunction)Model_als_similar, METH_VARARGS,
     "als_similar(side, ids, n, candidates)"},
    {"ranking_metrics", (PyCFunction)Model_ranking_metrics, METH_VARARGS,
     "ranking_metrics(train, test, k) -> (precision, map, ndcg, auc, n)"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Model_getset[] = {
    {"pipeline", (getter)Model_get_pipeline, NULL,
     "(spec JSON, inputs, sparse) of a bundle, or None.", NULL},
    {"weights", (getter)Model_get_weights, NULL,
     "Weights, (n_vectors, n_features [+ intercept]): a copy.", NULL},
    {"sigma", (getter)Model_get_sigma, NULL,
     "SCW variances (diagonal) or covariance matrices (full): a copy.", NULL},
    {"metadata", (getter)Model_get_metadata, NULL, "METADATA JSON.", NULL},
    {"n_features", (getter)Model_get_n_features, NULL, NULL, NULL},
    {"n_outputs", (getter)Model_get_n_outputs, NULL, NULL, NULL},
    {"n_classes", (getter)Model_get_n_classes, NULL, NULL, NULL},
    {"counts", (getter)Model_get_counts, NULL,
     "(rows learned, rows that changed the weights)", NULL},
    {"gbdt_info", (getter)Model_gbdt_info, NULL,
     "(n_trees, best_iteration) of a gbdt model", NULL},
    {"als_info", (getter)Model_als_info, NULL,
     "(n_users, n_items, factors, keeps liked items)", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot Model_slots[] = {
    {Py_tp_dealloc, Model_dealloc},
    {Py_tp_methods, Model_methods},
    {Py_tp_getset, Model_getset},
    {Py_tp_doc, "A core model handle (sw_model); use the estimators."},
    {0, NULL},
};

static PyType_Spec Model_spec = {
    .name = "streamwise._sw.Model",
    .basicsize = sizeof(ModelObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = Model_slots,
};

/* ------------------------------------------------------------------ */
/* Pipelines                                                            */
/* ------------------------------------------------------------------ */

typedef struct {
    PyObject_HEAD sw_pipeline *p;
    sw_result *r;
} PipelineObject;

static PyObject *
wrap_pipeline(sw_state *st, sw_pipeline *p)
{
    PipelineObject *self = PyObject_New(PipelineObject, st->Pipeline_Type);
    sw_err err = {0};

    if (self == NULL) {
        sw_pipeline_free(p);
        return NULL;
    }
    self->p = p;
    self->r = NULL;
    if (sw_result_new(&self->r, &err) != SW_OK) {
        Py_DECREF(self);
        return PyErr_NoMemory();
    }
    return (PyObject *)self;
}

static void
Pipeline_dealloc(PipelineObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);

    sw_pipeline_free(self->p);
    sw_result_free(self->r);
    PyObject_Free(self);
    Py_DECREF(tp);
}

/* The columns of a batch: a list of (name, type, array, width, bad). The
 * arrays are kept in arrs (one reference each) for the call. */
static int
batch_arg(PyObject *list, sw_batch *b, sw_column **cols, PyObject **arrs,
          Py_ssize_t *n_arrs)
{
    Py_ssize_t n, i;
    int64_t rows = -1;

    *n_arrs = 0;
    if (!PyList_Check(list)) {
        PyErr_SetString(PyExc_TypeError, "columns must be a list");
        return -1;
    }
    n = PyList_GET_SIZE(list);
    *cols = PyMem_Calloc((size_t)(n ? n : 1), sizeof(sw_column));
    if (*cols == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (i = 0; i < n; i++) {
        PyObject *t = PyList_GET_ITEM(list, i), *arr_o, *bad_o;
        PyArrayObject *arr, *bad = NULL;
        const char *name;
        int type;
        long long width;

        if (!PyArg_ParseTuple(t, "siOLO", &name, &type, &arr_o, &width, &bad_o))
            return -1;
        arr = (PyArrayObject *)PyArray_FROM_OF(arr_o, NPY_ARRAY_IN_ARRAY);
        if (arr == NULL)
            return -1;
        arrs[(*n_arrs)++] = (PyObject *)arr;
        if (bad_o != Py_None) {
            bad = (PyArrayObject *)PyArray_FROM_OTF(bad_o, NPY_UINT8,
                                                    NPY_ARRAY_IN_ARRAY);
            if (bad == NULL)
                return -1;
            arrs[(*n_arrs)++] = (PyObject *)bad;
        }
        if (rows < 0)
            rows = PyArray_DIM(arr, 0);
        if (PyArray_NDIM(arr) != 1 || PyArray_DIM(arr, 0) != rows ||
            (bad && PyArray_SIZE(bad) != rows)) {
            PyErr_Format(PyExc_ValueError, "column '%s': expected %lld rows",
                         name, (long long)rows);
            return -1;
        }
        (*cols)[i].name = name; /* borrowed from the tuple in the list */
        (*cols)[i].type = (sw_col_type)type;
        (*cols)[i].data = PyArray_DATA(arr);
        (*cols)[i].width = width;
        (*cols)[i].bad = bad ? PyArray_DATA(bad) : NULL;
    }
    b->n_rows = rows < 0 ? 0 : rows;
    b->n_columns = (int)n;
    b->columns = *cols;
    return 0;
}

/* The label join's pairs as (dense, indices, seq, time, label,
 * outcome_seq). */
static PyObject *
pairs_tuple(const sw_pipeline *p, const sw_result *r)
{
    const double *dense, *label;
    const int64_t *ind, *seq, *t, *oseq;
    npy_intp n = sw_result_pairs(r, &dense, &ind, &seq, &t, &label, &oseq);
    npy_intp d[2] = {n, sw_pipeline_n_dense(p)}, nh = 0;
    PyArrayObject *a[6] = {NULL};
    PyObject *out = NULL;
    int i;

    if (n > 0 && sw_pipeline_sparse_dims(p) > 0)
        nh = sw_pipeline_n_hashed(p);
    {
        npy_intp d2[2] = {n, nh};

        a[0] = (PyArrayObject *)PyArray_SimpleNew(2, d, NPY_FLOAT64);
        a[1] = (PyArrayObject *)PyArray_SimpleNew(2, d2, NPY_INT64);
    }
    a[2] = (PyArrayObject *)PyArray_SimpleNew(1, &n, NPY_INT64);
    a[3] = (PyArrayObject *)PyArray_SimpleNew(1, &n, NPY_INT64);
    a[4] = (PyArrayObject *)PyArray_SimpleNew(1, &n, NPY_FLOAT64);
    a[5] = (PyArrayObject *)PyArray_SimpleNew(1, &n, NPY_INT64);
    for (i = 0; i < 6; i++) {
        if (a[i] == NULL)
            goto done;
    }
    if (n > 0) {
        memcpy(PyArray_DATA(a[0]), dense,
               (size_t)(d[0] * d[1]) * sizeof(double));
        memcpy(PyArray_DATA(a[1]), ind, (size_t)(n * nh) * sizeof(int64_t));
        memcpy(PyArray_DATA(a[2]), seq, (size_t)n * sizeof(int64_t));
        memcpy(PyArray_DATA(a[3]), t, (size_t)n * sizeof(int64_t));
        memcpy(PyArray_DATA(a[4]), label, (size_t)n * sizeof(double));
        memcpy(PyArray_DATA(a[5]), oseq, (size_t)n * sizeof(int64_t));
    }
    out = PyTuple_Pack(6, a[0], a[1], a[2], a[3], a[4], a[5]);
done:
    for (i = 0; i < 6; i++)
        Py_XDECREF(a[i]);
    return out;
}

/* The result as (dense, seq, time, indices, late, invalid_seq, reasons,
 * pairs). */
static PyObject *
result_tuple(const sw_pipeline *p, const sw_result *r)
{
    PyObject *pairs;
    npy_intp n = sw_result_rows(r), d2[2] = {n, sw_pipeline_n_dense(p)};
    npy_intp nh = 0, k;
    const int64_t *late, *inv;
    const int *why;
    npy_intp n_late = sw_result_late(r, &late);
    npy_intp n_inv = sw_result_invalid(r, &inv, &why);
    PyArrayObject *a[7] = {NULL};
    PyObject *out = NULL;
    int i;

    if (n > 0)
        nh = (sw_result_indptr(r)[n] - sw_result_indptr(r)[0]) / n;
    {
        npy_intp d3[2] = {n, nh};

        a[0] = (PyArrayObject *)PyArray_SimpleNew(2, d2, NPY_FLOAT64);
        a[1] = (PyArrayObject *)PyArray_SimpleNew(1, &n, NPY_INT64);
        a[2] = (PyArrayObject *)PyArray_SimpleNew(1, &n, NPY_INT64);
        a[3] = (PyArrayObject *)PyArray_SimpleNew(2, d3, NPY_INT64);
        a[4] = (PyArrayObject *)PyArray_SimpleNew(1, &n_late, NPY_INT64);
        a[5] = (PyArrayObject *)PyArray_SimpleNew(1, &n_inv, NPY_INT64);
        a[6] = (PyArrayObject *)PyArray_SimpleNew(1, &n_inv, NPY_INT32);
    }
    for (i = 0; i < 7; i++) {
        if (a[i] == NULL)
            goto done;
    }
    if (n > 0) {
        memcpy(PyArray_DATA(a[0]), sw_result_dense(r),
               (size_t)(d2[0] * d2[1]) * sizeof(double));
        memcpy(PyArray_DATA(a[1]), sw_result_seq(r),
               (size_t)n * sizeof(int64_t));
        memcpy(PyArray_DATA(a[2]), sw_result_time(r),
               (size_t)n * sizeof(int64_t));
        memcpy(PyArray_DATA(a[3]), sw_result_indices(r),
               (size_t)(n * nh) * sizeof(int64_t));
    }
    if (n_late > 0)
        memcpy(PyArray_DATA(a[4]), late, (size_t)n_late * sizeof(int64_t));
    for (k = 0; k < n_inv; k++) {
        ((int64_t *)PyArray_DATA(a[5]))[k] = inv[k];
        ((int32_t *)PyArray_DATA(a[6]))[k] = why[k];
    }
    pairs = pairs_tuple(p, r);
    if (pairs != NULL)
        out = PyTuple_Pack(8, a[0], a[1], a[2], a[3], a[4], a[5], a[6], pairs);
    Py_XDECREF(pairs);
done:
    for (i = 0; i < 7; i++)
        Py_XDECREF(a[i]);
    return out;
}

static PyObject *
Pipeline_push(PipelineObject *self, PyObject *args)
{
    sw_state *st = PyType_GetModuleState(Py_TYPE(self));
    PyObject *arrs[2 * SW_MAX_COLUMNS], *out = NULL, *list;
    Py_ssize_t n_arrs = 0, i;
    sw_column *cols = NULL;
    sw_batch b;
    sw_err err = {0};
    sw_rc rc;
    int part = 0;

    if (!PyArg_ParseTuple(args, "O|i", &list, &part))
        return NULL;

    if (PyList_Check(list) && PyList_GET_SIZE(list) > SW_MAX_COLUMNS) {
        PyErr_Format(PyExc_ValueError, "at most %d columns", SW_MAX_COLUMNS);
        return NULL;
    }
    if (batch_arg(list, &b, &cols, arrs, &n_arrs) < 0)
        goto done;
    Py_BEGIN_ALLOW_THREADS rc =
        sw_pipeline_push_partition(self->p, &b, part, self->r, &err);
    Py_END_ALLOW_THREADS if (rc != SW_OK)
    {
        raise_sw_err(st, &err);
        goto done;
    }
    out = result_tuple(self->p, self->r);
done:
    for (i = 0; i < n_arrs; i++)
        Py_DECREF(arrs[i]);
    PyMem_Free(cols);
    return out;
}

/* ------------------------------------------------------------------ */
/* Bundles: a model and the pipeline it was trained on                  */
/* ------------------------------------------------------------------ */

static PyObject *
Model_set_pipeline(ModelObject *self, PyObject *args)
{
    sw_state *st = state_of((PyObject *)self);
    PyObject *po, *names, *fast = NULL, *out = NULL;
    const char **inputs = NULL;
    Py_ssize_t n, i;
    int sparse;
    sw_err err = {0};
    sw_rc rc;

    if (!PyArg_ParseTuple(args, "O!Op", st->Pipeline_Type, &po, &names,
                          &sparse))
        return NULL;
    fast = PySequence_Fast(names, "inputs must be a list of column names");
    if (fast == NULL)
        return NULL;
    n = PySequence_Fast_GET_SIZE(fast);
    inputs = PyMem_Calloc((size_t)(n ? n : 1), sizeof(char *));
    if (inputs == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (i = 0; i < n; i++) {
        /* borrowed from fast, which lives until done */
        inputs[i] = PyUnicode_AsUTF8(PySequence_Fast_GET_ITEM(fast, i));
        if (inputs[i] == NULL)
            goto done;
    }
    lock_model(self);
    rc = sw_model_set_pipeline(self->model, ((PipelineObject *)po)->p,
                               inputs, (int)n, sparse, &err);
    unlock_model(self);
    if (rc != SW_OK) {
        raise_sw_err(st, &err);
        goto done;
    }
    out = Py_NewRef(Py_None);
done:
    PyMem_Free(inputs);
    Py_XDECREF(fast);
    return out;
}

static PyObject *
Model_set_golden_events(ModelObject *self, PyObject *list)
{
    PyObject *arrs[2 * SW_MAX_COLUMNS], *out = NULL;
    Py_ssize_t n_arrs = 0, i;
    sw_column *cols = NULL;
    sw_batch b;
    sw_err err = {0};
    sw_rc rc;

    if (PyList_Check(list) && PyList_GET_SIZE(list) > SW_MAX_COLUMNS) {
        PyErr_Format(PyExc_ValueError, "at most %d columns", SW_MAX_COLUMNS);
        return NULL;
    }
    if (batch_arg(list, &b, &cols, arrs, &n_arrs) < 0)
        goto done;
    lock_model(self);
    rc = sw_model_set_golden_events(self->model, &b, &err);
    unlock_model(self);
    if (rc != SW_OK) {
        raise_sw_err(state_of((PyObject *)self), &err);
        goto done;
    }
    out = Py_NewRef(Py_None);
done:
    for (i = 0; i < n_arrs; i++)
        Py_DECREF(arrs[i]);
    PyMem_Free(cols);
    return out;
}

static PyObject *
Model_predict_features(ModelObject *self, PyObject *args)
{
    sw_state *st = state_of((PyObject *)self);
    PyObject *po, *d_o, *h_o, *out = NULL;
    PyArrayObject *dense = NULL, *hashed = NULL, *res = NULL;
    const sw_pipeline *p;
    npy_intp dims[2];
    int64_t n;
    sw_err err = {0};
    sw_rc rc;

    if (!PyArg_ParseTuple(args, "O!OO", st->Pipeline_Type, &po, &d_o, &h_o))
        return NULL;
    p = ((PipelineObject *)po)->p;
    dense = (PyArrayObject *)PyArray_FROM_OTF(d_o, NPY_FLOAT64,
                                              NPY_ARRAY_IN_ARRAY);
    hashed = (PyArrayObject *)PyArray_FROM_OTF(h_o, NPY_INT64,
                                               NPY_ARRAY_IN_ARRAY);
    if (dense == NULL || hashed == NULL)
        goto done;
    n = PyArray_NDIM(dense) == 2 ? (int64_t)PyArray_DIM(dense, 0) : -1;
    if (n < 0 || PyArray_DIM(dense, 1) != sw_pipeline_n_dense(p) ||
        PyArray_SIZE(hashed) != n * sw_pipeline_n_hashed(p)) {
        PyErr_Format(st->exc[SW_E_SHAPE],
                     "predict_features: expected dense rows of %d columns and "
                     "%d hashed indices a row [SW_E_SHAPE]",
                     sw_pipeline_n_dense(p), sw_pipeline_n_hashed(p));
        goto done;
    }
    dims[0] = (npy_intp)n;
    dims[1] = (npy_intp)sw_model_n_outputs(self->model);
    res = (PyArrayObject *)PyArray_SimpleNew(dims[1] > 1 ? 2 : 1, dims,
                                             NPY_FLOAT64);
    if (res == NULL)
        goto done;
    Py_BEGIN_ALLOW_THREADS rc = sw_model_predict_features(
        self->model, p, PyArray_DATA(dense), PyArray_DATA(hashed), n,
        PyArray_DATA(res), (int64_t)PyArray_SIZE(res), &err);
    Py_END_ALLOW_THREADS if (rc != SW_OK)
    {
        raise_sw_err(st, &err);
        goto done;
    }
    out = (PyObject *)res;
    res = NULL;
done:
    Py_XDECREF(dense);
    Py_XDECREF(hashed);
    Py_XDECREF(res);
    return out;
}

static PyObject *
Model_get_pipeline(ModelObject *self, void *Py_UNUSED(c))
{
    const char *spec = sw_model_pipeline_spec(self->model);
    const char *const *names;
    PyObject *list;
    int n, i, sparse;

    if (spec == NULL)
        Py_RETURN_NONE;
    n = sw_model_pipeline_inputs(self->model, &names, &sparse);
    list = PyList_New(n);
    for (i = 0; list != NULL && i < n; i++) {
        PyObject *u = PyUnicode_FromString(names[i]);

        if (u == NULL) {
            Py_CLEAR(list);
            break;
        }
        PyList_SET_ITEM(list, i, u);
    }
    if (list == NULL)
        return NULL;
    return Py_BuildValue("(sNO)", spec, list, sparse ? Py_True : Py_False);
}

static PyObject *
Pipeline_flush(PipelineObject *self, PyObject *Py_UNUSED(ignored))
{
    sw_err err = {0};
    sw_rc rc;

    Py_BEGIN_ALLOW_THREADS rc = sw_pipeline_flush(self->p, self->r, &err);
    Py_END_ALLOW_THREADS if (rc != SW_OK)
    {
        raise_sw_err(PyType_GetModuleState(Py_TYPE(self)), &err);
        return NULL;
    }
    return result_tuple(self->p, self->r);
}

static PyObject *
Pipeline_profile(PipelineObject *self, PyObject *list)
{
    sw_state *st = PyType_GetModuleState(Py_TYPE(self));
    PyObject *arrs[2 * SW_MAX_COLUMNS];
    Py_ssize_t n_arrs = 0, i;
    sw_column *cols = NULL;
    sw_batch b;
    npy_intp n = sw_pipeline_n_dense(self->p);
    PyArrayObject *out = NULL;
    sw_err err = {0};

    if (PyList_Check(list) && PyList_GET_SIZE(list) > SW_MAX_COLUMNS) {
        PyErr_Format(PyExc_ValueError, "at most %d columns", SW_MAX_COLUMNS);
        return NULL;
    }
    if (batch_arg(list, &b, &cols, arrs, &n_arrs) < 0)
        goto done;
    out = (PyArrayObject *)PyArray_SimpleNew(1, &n, NPY_FLOAT64);
    if (out == NULL)
        goto done;
    if (sw_pipeline_profile(self->p, &b, PyArray_DATA(out), (int)n, &err) !=
        SW_OK) {
        raise_sw_err(st, &err);
        Py_CLEAR(out);
    }
done:
    for (i = 0; i < n_arrs; i++)
        Py_DECREF(arrs[i]);
    PyMem_Free(cols);
    return (PyObject *)out;
}

static PyObject *
Pipeline_checkpoint_start(PipelineObject *self, PyObject *args)
{
    PyObject *path = NULL;
    Py_buffer pos;
    sw_err err = {0};
    sw_rc rc;

    if (!PyArg_ParseTuple(args, "O&y*", PyUnicode_FSConverter, &path, &pos))
        return NULL;
    rc = sw_pipeline_checkpoint_start(self->p, PyBytes_AS_STRING(path), pos.buf,
                                      (size_t)pos.len, &err);
    PyBuffer_Release(&pos);
    Py_DECREF(path);
    if (rc != SW_OK) {
        raise_sw_err(PyType_GetModuleState(Py_TYPE(self)), &err);
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
Pipeline_checkpoint_wait(PipelineObject *self, PyObject *args)
{
    int block = 1, done = 0;
    sw_err err = {0};
    sw_rc rc;

    if (!PyArg_ParseTuple(args, "|p", &block))
        return NULL;
    Py_BEGIN_ALLOW_THREADS rc =
        sw_pipeline_checkpoint_wait(self->p, block, &done, &err);
    Py_END_ALLOW_THREADS if (rc != SW_OK)
    {
        raise_sw_err(PyType_GetModuleState(Py_TYPE(self)), &err);
        return NULL;
    }
    return PyBool_FromLong(done);
}

static PyObject *
Pipeline_announce_partitions(PipelineObject *self, PyObject *arg)
{
    int n = PyLong_AsLong(arg) > 1 << 20 ? 1 << 20 : (int)PyLong_AsLong(arg);
    sw_err err = {0};

    if (n == -1 && PyErr_Occurred())
        return NULL;
    if (sw_pipeline_announce_partitions(self->p, n, &err) != SW_OK) {
        raise_sw_err(PyType_GetModuleState(Py_TYPE(self)), &err);
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
Pipeline_set_secret(PipelineObject *self, PyObject *arg)
{
    Py_buffer key;
    sw_err err = {0};
    sw_rc rc;

    if (PyObject_GetBuffer(arg, &key, PyBUF_SIMPLE) < 0)
        return NULL;
    rc = sw_pipeline_set_secret(self->p, key.buf, (size_t)key.len, &err);
    PyBuffer_Release(&key);
    if (rc != SW_OK) {
        raise_sw_err(PyType_GetModuleState(Py_TYPE(self)), &err);
        return NULL;
    }
    Py_RETURN_NONE;
}

/* hash_column([(name, type, array, width, bad)]) -> uint64 array */
static PyObject *
Pipeline_hash_column(PipelineObject *self, PyObject *list)
{
    PyObject *arrs[2];
    Py_ssize_t n_arrs = 0, i;
    sw_column *cols = NULL;
    sw_batch b;
    npy_intp n;
    PyArrayObject *out = NULL;
    sw_err err = {0};

    if (!PyList_Check(list) || PyList_GET_SIZE(list) != 1) {
        PyErr_SetString(PyExc_TypeError, "hash_column: one column");
        return NULL;
    }
    if (batch_arg(list, &b, &cols, arrs, &n_arrs) < 0)
        goto done;
    n = (npy_intp)b.n_rows;
    out = (PyArrayObject *)PyArray_SimpleNew(1, &n, NPY_UINT64);
    if (out == NULL)
        goto done;
    if (sw_pipeline_hash_column(self->p, &cols[0], b.n_rows, PyArray_DATA(out),
                                &err) != SW_OK) {
        raise_sw_err(PyType_GetModuleState(Py_TYPE(self)), &err);
        Py_CLEAR(out);
    }
done:
    for (i = 0; i < n_arrs; i++)
        Py_DECREF(arrs[i]);
    PyMem_Free(cols);
    return (PyObject *)out;
}

static PyObject *
Pipeline_checkpoint(PipelineObject *self, PyObject *args)
{
    PyObject *path = NULL;
    Py_buffer pos;
    sw_err err = {0};
    sw_rc rc;

    if (!PyArg_ParseTuple(args, "O&y*", PyUnicode_FSConverter, &path, &pos))
        return NULL;
    Py_BEGIN_ALLOW_THREADS rc = sw_pipeline_checkpoint(
        self->p, PyBytes_AS_STRING(path), pos.buf, (size_t)pos.len, &err);
    Py_END_ALLOW_THREADS PyBuffer_Release(&pos);
    Py_DECREF(path);
    if (rc != SW_OK) {
        raise_sw_err(PyType_GetModuleState(Py_TYPE(self)), &err);
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
Pipeline_get_columns(PipelineObject *self, void *Py_UNUSED(c))
{
    int n = sw_pipeline_n_dense(self->p), j;
    PyObject *list = PyList_New(n);

    for (j = 0; list != NULL && j < n; j++) {
        PyObject *s = PyUnicode_FromString(sw_pipeline_column_name(self->p, j));

        if (s == NULL) {
            Py_CLEAR(list);
            break;
        }
        PyList_SET_ITEM(list, j, s);
    }
    return list;
}

static PyObject *
Pipeline_get_sparse_dims(PipelineObject *self, void *Py_UNUSED(c))
{
    return PyLong_FromLongLong(sw_pipeline_sparse_dims(self->p));
}

static PyObject *
Pipeline_get_stats(PipelineObject *self, void *Py_UNUSED(c))
{
    int64_t s[9], j[3];

    sw_pipeline_stats(self->p, s);
    sw_pipeline_join_stats(self->p, j);
    return Py_BuildValue(
        "{sLsLsLsLsLsLsLsLsLsLsLsLsLsL}", "joined", (long long)j[0],
        "evicted", (long long)sw_pipeline_evicted(self->p), "unmatched",
        (long long)j[1], "arrivals", (long long)sw_pipeline_arrivals(self->p),
        "emitted", (long long)s[0], "late", (long long)s[1], "invalid",
        (long long)s[2], "buffered", (long long)s[3], "keys", (long long)s[4],
        "missing", (long long)s[5], "wrong_type", (long long)s[6], "nan",
        (long long)s[7], "bad_time", (long long)s[8], "oldest_pending",
        (long long)sw_pipeline_oldest_pending(self->p));
}

static PyMethodDef Pipeline_methods[] = {
    {"push", (PyCFunction)Pipeline_push, METH_VARARGS,
     "push(columns, partition=0) -> (dense, seq, time, indices, late, "
     "invalid, reasons)"},
    {"flush", (PyCFunction)Pipeline_flush, METH_NOARGS,
     "flush() -> the same tuple for every buffered event"},
    {"profile", (PyCFunction)Pipeline_profile, METH_O,
     "profile(key columns) -> float64 array of the dense features"},
    {"checkpoint", (PyCFunction)Pipeline_checkpoint, METH_VARARGS,
     "checkpoint(path, position_bytes)"},
    {"checkpoint_start", (PyCFunction)Pipeline_checkpoint_start, METH_VARARGS,
     "checkpoint_start(path, position_bytes): write from a forked child"},
    {"checkpoint_wait", (PyCFunction)Pipeline_checkpoint_wait, METH_VARARGS,
     "checkpoint_wait(block=True) -> whether the background one is done"},
    {"announce_partitions", (PyCFunction)Pipeline_announce_partitions, METH_O,
     "announce_partitions(n): partitions 0..n-1 hold the watermark."},
    {"set_secret", (PyCFunction)Pipeline_set_secret, METH_O,
     "set_secret(bytes): the key of the privacy fields' hashes"},
    {"hash_column", (PyCFunction)Pipeline_hash_column, METH_O,
     "hash_column([column]) -> uint64 hashes the pipeline gives its values"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Pipeline_getset[] = {
    {"columns", (getter)Pipeline_get_columns, NULL, "dense feature names",
     NULL},
    {"sparse_dims", (getter)Pipeline_get_sparse_dims, NULL,
     "columns of the hashed block", NULL},
    {"stats", (getter)Pipeline_get_stats, NULL, "counters", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot Pipeline_slots[] = {
    {Py_tp_dealloc, Pipeline_dealloc},
    {Py_tp_methods, Pipeline_methods},
    {Py_tp_getset, Pipeline_getset},
    {Py_tp_doc, "A core pipeline handle (sw_pipeline); use "
                "streamwise.Pipeline."},
    {0, NULL},
};

static PyType_Spec Pipeline_spec = {
    .name = "streamwise._sw.Pipeline",
    .basicsize = sizeof(PipelineObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = Pipeline_slots,
};

static PyObject *
sw_pipeline_new_py(PyObject *module, PyObject *arg)
{
    sw_state *st = PyModule_GetState(module);
    const char *spec = PyUnicode_AsUTF8(arg);
    sw_pipeline *p = NULL;
    sw_err err = {0};

    if (spec == NULL)
        return NULL;
    if (sw_pipeline_new(spec, &p, &err) != SW_OK) {
        raise_sw_err(st, &err);
        return NULL;
    }
    return wrap_pipeline(st, p);
}

static PyObject *
sw_pipeline_restore_py(PyObject *module, PyObject *arg)
{
    sw_state *st = PyModule_GetState(module);
    PyObject *path = NULL, *obj, *pos;
    sw_pipeline *p = NULL;
    const void *buf;
    size_t len;
    sw_err err = {0};
    sw_rc rc;

    if (!PyUnicode_FSConverter(arg, &path))
        return NULL;
    Py_BEGIN_ALLOW_THREADS rc =
        sw_pipeline_restore(PyBytes_AS_STRING(path), &p, &err);
    Py_END_ALLOW_THREADS Py_DECREF(path);
    if (rc != SW_OK) {
        raise_sw_err(st, &err);
        return NULL;
    }
    buf = sw_pipeline_position(p, &len);
    pos = PyBytes_FromStringAndSize(buf, (Py_ssize_t)len);
    if (pos == NULL) {
        sw_pipeline_free(p);
        return NULL;
    }
    obj = wrap_pipeline(st, p);
    if (obj == NULL) {
        Py_DECREF(pos);
        return NULL;
    }
    return Py_BuildValue("(NN)", obj, pos);
}

/* ------------------------------------------------------------------ */
/* Module functions                                                     */
/* ------------------------------------------------------------------ */

/* A conf with every (name, value) of a dict set; on failure NULL with the
 * exception set. */
static sw_conf *
conf_from_dict(sw_state *st, PyObject *d)
{
    PyObject *key, *value;
    Py_ssize_t pos = 0;
    sw_conf *conf = NULL;
    sw_err err = {0};

    if (sw_conf_new(&conf, &err) != SW_OK) {
        raise_sw_err(st, &err);
        return NULL;
    }
    while (PyDict_Next(d, &pos, &key, &value)) {
        const char *k = PyUnicode_AsUTF8(key), *v = PyUnicode_AsUTF8(value);

        if (k == NULL || v == NULL) {
            sw_conf_free(conf);
            return NULL;
        }
        if (sw_conf_set(conf, k, v, &err) != SW_OK) {
            sw_conf_free(conf);
            raise_sw_err(st, &err);
            return NULL;
        }
    }
    return conf;
}

/* linear_new(conf: dict[str, str], n_features, n_classes) -> Model */
static PyObject *
sw_linear_new_py(PyObject *module, PyObject *args)
{
    sw_state *st = PyModule_GetState(module);
    PyObject *conf_d;
    long long n_features, n_classes;
    sw_conf *conf;
    sw_model *m = NULL;
    sw_err err = {0};
    sw_rc rc;

    if (!PyArg_ParseTuple(args, "O!LL", &PyDict_Type, &conf_d, &n_features,
                          &n_classes))
        return NULL;
    conf = conf_from_dict(st, conf_d);
    if (conf == NULL)
        return NULL;
    rc = sw_linear_new(conf, n_features, n_classes, &m, &err);
    sw_conf_free(conf);
    if (rc != SW_OK) {
        raise_sw_err(st, &err);
        return NULL;
    }
    return wrap_model(st, m);
}

static PyObject *
sw_load_py(PyObject *module, PyObject *arg)
{
    sw_state *st = PyModule_GetState(module);
    PyObject *path = NULL;
    sw_model *m = NULL;
    sw_err err = {0};
    sw_rc rc;

    if (!PyUnicode_FSConverter(arg, &path))
        return NULL;
    Py_BEGIN_ALLOW_THREADS rc =
        sw_model_load(PyBytes_AS_STRING(path), &m, &err);
    Py_END_ALLOW_THREADS Py_DECREF(path);
    if (rc != SW_OK) {
        raise_sw_err(st, &err);
        return NULL;
    }
    return wrap_model(st, m);
}

static PyObject *
sw_inspect_py(PyObject *module, PyObject *arg)
{
    sw_state *st = PyModule_GetState(module);
    PyObject *path = NULL, *text = NULL;
    char *buf = NULL;
    size_t len = 0;
    FILE *fp;
    sw_err err = {0};
    sw_rc rc;

    if (!PyUnicode_FSConverter(arg, &path))
        return NULL;
    fp = open_memstream(&buf, &len);
    if (fp == NULL) {
        Py_DECREF(path);
        return PyErr_NoMemory();
    }
    rc = sw_model_inspect(PyBytes_AS_STRING(path), fp, &err);
    fclose(fp);
    Py_DECREF(path);
    if (rc != SW_OK)
        raise_sw_err(st, &err);
    else
        text = PyUnicode_DecodeUTF8(buf, (Py_ssize_t)len, "replace");
    free(buf); /* open_memstream's buffer comes from malloc */
    return text;
}

/* conf_props() -> [(name, type, default, accepted, doc), ...] */
static PyObject *
sw_conf_props_py(PyObject *module, PyObject *Py_UNUSED(ignored))
{
    static const char *const types[] = {"float", "int", "choice", "bool"};
    PyObject *list = PyList_New(0);
    int i;

    (void)module;
    if (list == NULL)
        return NULL;
    for (i = 0; i < sw_conf_n_props(); i++) {
        const char *name, *def, *doc;
        char range[128];
        sw_prop_type type;
        PyObject *t;

        sw_conf_prop(i, &name, &type, &def, range, sizeof(range), &doc, NULL);
        t = Py_BuildValue("(sssss)", name, types[type], def, range, doc);
        if (t == NULL || PyList_Append(list, t) < 0) {
            Py_XDECREF(t);
            Py_DECREF(list);
            return NULL;
        }
        Py_DECREF(t);
    }
    return list;
}

static PyObject *
sw_build_info_py(PyObject *module, PyObject *Py_UNUSED(ignored))
{
    (void)module;
    return PyUnicode_FromString(sw_build_info());
}

/* als_new(conf: dict[str, str], n_users, n_items) -> Model */
static PyObject *
sw_als_new_py(PyObject *module, PyObject *args)
{
    sw_state *st = PyModule_GetState(module);
    PyObject *conf_d;
    long long n_users, n_items;
    sw_conf *conf;
    sw_model *m = NULL;
    sw_err err = {0};
    sw_rc rc;

    if (!PyArg_ParseTuple(args, "O!LL", &PyDict_Type, &conf_d, &n_users,
                          &n_items))
        return NULL;
    conf = conf_from_dict(st, conf_d);
    if (conf == NULL)
        return NULL;
    rc = sw_als_new(conf, n_users, n_items, &m, &err);
    sw_conf_free(conf);
    if (rc != SW_OK) {
        raise_sw_err(st, &err);
        return NULL;
    }
    return wrap_model(st, m);
}

/* After every round: call the Python progress callable (round, rounds,
 * loss) with the GIL, and stop the fit on Ctrl-C or an exception. */
typedef struct fit_progress {
    PyObject *fn; /* or None */
    int failed;
} fit_progress;

static int
gbdt_progress(void *ctx, int64_t round, int64_t rounds, double loss)
{
    fit_progress *p = ctx;
    PyGILState_STATE g = PyGILState_Ensure();
    int stop = 0;

    if (p->fn != Py_None) {
        PyObject *r = PyObject_CallFunction(p->fn, "LLd", (long long)round,
                                            (long long)rounds, loss);

        if (r == NULL)
            stop = 1;
        Py_XDECREF(r);
    }
    if (!stop && PyErr_CheckSignals() < 0)
        stop = 1;
    p->failed |= stop;
    PyGILState_Release(g);
    return stop;
}

/* gbdt_fit(conf, X, y, X_valid, y_valid, init, rounds, progress) ->
 * (Model, validation losses): X dense float32/float64, NaN missing;
 * X_valid, y_valid, init and progress may be None. */
static PyObject *
sw_gbdt_fit_py(PyObject *module, PyObject *args)
{
    sw_state *st = PyModule_GetState(module);
    PyObject *conf_d, *X_o, *y_o, *Xv_o, *yv_o, *init_o, *result = NULL;
    fit_progress prog = {Py_None, 0};
    PyArrayObject *y = NULL, *yv = NULL, *curve = NULL;
    const sw_model *init = NULL;
    long long rounds;
    sw_conf *conf = NULL;
    sw_model *m = NULL;
    sw_rows xv, xvv;
    hold h, hv;
    npy_intp nr;
    sw_err err = {0};
    sw_rc rc;

    memset(&h, 0, sizeof(h));
    memset(&hv, 0, sizeof(hv));
    if (!PyArg_ParseTuple(args, "O!OOOOOL|O", &PyDict_Type, &conf_d, &X_o, &y_o,
                          &Xv_o, &yv_o, &init_o, &rounds, &prog.fn))
        return NULL;
    if (init_o != Py_None) {
        if (!PyObject_TypeCheck(init_o, st->Model_Type)) {
            PyErr_SetString(PyExc_TypeError, "init must be a Model");
            return NULL;
        }
        init = ((ModelObject *)init_o)->model;
    }
    if (to_rows(X_o, 0, &h, &xv) < 0)
        goto done;
    y = (PyArrayObject *)PyArray_FROM_OTF(y_o, NPY_FLOAT64, NPY_ARRAY_IN_ARRAY);
    if (y == NULL)
        goto done;
    if (PyArray_SIZE(y) != xv.n_rows) {
        PyErr_Format(PyExc_ValueError, "%lld labels for %lld rows",
                     (long long)PyArray_SIZE(y), (long long)xv.n_rows);
        goto done;
    }
    if (Xv_o != Py_None) {
        if (to_rows(Xv_o, 0, &hv, &xvv) < 0)
            goto done;
        yv = (PyArrayObject *)PyArray_FROM_OTF(yv_o, NPY_FLOAT64,
                                               NPY_ARRAY_IN_ARRAY);
        if (yv == NULL)
            goto done;
        if (PyArray_SIZE(yv) != xvv.n_rows) {
            PyErr_Format(PyExc_ValueError,
                         "%lld validation labels for %lld "
                         "rows",
                         (long long)PyArray_SIZE(yv), (long long)xvv.n_rows);
            goto done;
        }
    }
    nr = rounds > 0 ? (npy_intp)rounds : 0;
    curve = (PyArrayObject *)PyArray_SimpleNew(1, &nr, NPY_FLOAT64);
    if (curve == NULL)
        goto done;
    {
        npy_intp k;

        for (k = 0; k < nr; k++)
            ((double *)PyArray_DATA(curve))[k] = NAN;
    }
    if ((conf = conf_from_dict(st, conf_d)) == NULL)
        goto done;
    Py_BEGIN_ALLOW_THREADS rc =
        sw_gbdt_fit(conf, &xv, PyArray_DATA(y), yv ? &xvv : NULL,
                    yv ? PyArray_DATA(yv) : NULL, init, PyArray_DATA(curve),
                    gbdt_progress, &prog, &m, &err);
    Py_END_ALLOW_THREADS if (rc != SW_OK)
    {
        if (!prog.failed || !PyErr_Occurred())
            raise_sw_err(st, &err);
        goto done;
    }
    result = Py_BuildValue("(NO)", wrap_model(st, m), curve);
done:
    sw_conf_free(conf);
    hold_release(&h);
    hold_release(&hv);
    Py_XDECREF(y);
    Py_XDECREF(yv);
    Py_XDECREF(curve);
    return result;
}

/* predict_latency(model, X float64 2-D) -> int64 ns per row: each row
 * scored alone by sw_model_predict, the call sw-serve makes, timed in C
 * (for benchmarks: Python's own overhead is not in it). */
static PyObject *
sw_predict_latency_py(PyObject *module, PyObject *args)
{
    sw_state *st = PyModule_GetState(module);
    PyObject *mo, *xo;
    PyArrayObject *x, *out;
    const sw_model *m;
    npy_intp n, i;
    sw_err err = {0};

    if (!PyArg_ParseTuple(args, "O!O", st->Model_Type, &mo, &xo))
        return NULL;
    m = ((ModelObject *)mo)->model;
    x = (PyArrayObject *)PyArray_FROM_OTF(xo, NPY_FLOAT64, NPY_ARRAY_IN_ARRAY);
    if (x == NULL)
        return NULL;
    if (PyArray_NDIM(x) != 2 || PyArray_DIM(x, 1) != sw_model_n_features(m)) {
        Py_DECREF(x);
        PyErr_SetString(PyExc_ValueError, "X: rows of the model's width");
        return NULL;
    }
    n = PyArray_DIM(x, 0);
    out = (PyArrayObject *)PyArray_SimpleNew(1, &n, NPY_INT64);
    if (out == NULL) {
        Py_DECREF(x);
        return NULL;
    }
    for (i = 0; i < n; i++) {
        struct timespec a, b;
        sw_rows v;
        double s;

        memset(&v, 0, sizeof(v));
        v.layout = SW_DENSE;
        v.dtype = SW_F64;
        v.n_rows = 1;
        v.n_cols = v.row_stride = PyArray_DIM(x, 1);
        v.data = (const double *)PyArray_DATA(x) + i * PyArray_DIM(x, 1);

        clock_gettime(CLOCK_MONOTONIC, &a);
        if (sw_model_predict(m, &v, &s, 1, &err) != SW_OK) {
            Py_DECREF(x);
            Py_DECREF(out);
            raise_sw_err(st, &err);
            return NULL;
        }
        clock_gettime(CLOCK_MONOTONIC, &b);
        ((int64_t *)PyArray_DATA(out))[i] =
            (int64_t)(b.tv_sec - a.tv_sec) * 1000000000 +
            (b.tv_nsec - a.tv_nsec);
    }
    Py_DECREF(x);
    return (PyObject *)out;
}

/* split_random(n, test_fraction, seed) -> uint8 mask */
static PyObject *
sw_split_random_py(PyObject *module, PyObject *args)
{
    long long n;
    double frac;
    unsigned long long seed;
    npy_intp dims[1];
    PyArrayObject *mask;
    sw_err err = {0};

    if (!PyArg_ParseTuple(args, "LdK", &n, &frac, &seed))
        return NULL;
    dims[0] = n < 0 ? 0 : n;
    mask = (PyArrayObject *)PyArray_SimpleNew(1, dims, NPY_UINT8);
    if (mask == NULL)
        return NULL;
    if (sw_split_random(n, frac, seed, PyArray_DATA(mask), &err) != SW_OK) {
        Py_DECREF(mask);
        raise_sw_err(PyModule_GetState(module), &err);
        return NULL;
    }
    return (PyObject *)mask;
}

/* split_leave_k_out(csr, k, seed) -> uint8 mask over its entries */
static PyObject *
sw_split_leave_k_out_py(PyObject *module, PyObject *args)
{
    PyObject *o;
    long long k;
    unsigned long long seed;
    npy_intp dims[1];
    PyArrayObject *mask = NULL;
    hold h;
    sw_rows v;
    sw_err err = {0};

    memset(&h, 0, sizeof(h));
    if (!PyArg_ParseTuple(args, "OLK", &o, &k, &seed))
        return NULL;
    if (csr_arg(o, &h, &v, "matrix") < 0)
        goto done;
    dims[0] = v.itype == SW_I32 ? ((const int32_t *)v.indptr)[v.n_rows]
                                : ((const int64_t *)v.indptr)[v.n_rows];
    mask = (PyArrayObject *)PyArray_SimpleNew(1, dims, NPY_UINT8);
    if (mask == NULL)
        goto done;
    if (sw_split_leave_k_out(&v, k, seed, PyArray_DATA(mask), dims[0], &err) !=
        SW_OK) {
        Py_CLEAR(mask);
        raise_sw_err(PyModule_GetState(module), &err);
    }
done:
    hold_release(&h);
    return (PyObject *)mask;
}

/* registry_resolve(store_dir, ref) -> (path, sha256, version) */
static PyObject *
sw_registry_resolve_py(PyObject *module, PyObject *args)
{
    sw_state *st = PyModule_GetState(module);
    PyObject *dir = NULL;
    const char *ref;
    char path[4096], sha[65];
    int64_t version = 0;
    sw_err err = {0};
    sw_rc rc;

    if (!PyArg_ParseTuple(args, "O&s", PyUnicode_FSConverter, &dir, &ref))
        return NULL;
    Py_BEGIN_ALLOW_THREADS rc = sw_registry_resolve(
        PyBytes_AS_STRING(dir), ref, path, sizeof(path), sha, &version, &err);
    Py_END_ALLOW_THREADS Py_DECREF(dir);
    if (rc != SW_OK) {
        raise_sw_err(st, &err);
        return NULL;
    }
    return Py_BuildValue("(O&sL)", PyUnicode_DecodeFSDefault, path, sha,
                         (long long)version);
}

/* a NULL-terminated char* array from a list of str (borrowed UTF-8) */
static int
str_pairs(PyObject *list, const char **out, Py_ssize_t max)
{
    Py_ssize_t i, n;

    if (!PyList_Check(list) || PyList_GET_SIZE(list) % 2 ||
        PyList_GET_SIZE(list) > max) {
        PyErr_SetString(PyExc_ValueError, "expected [name, value, ...]");
        return -1;
    }
    n = PyList_GET_SIZE(list);
    for (i = 0; i < n; i++) {
        out[i] = PyUnicode_AsUTF8(PyList_GET_ITEM(list, i));
        if (out[i] == NULL)
            return -1;
    }
    out[n] = NULL;
    return 0;
}

/* Kafka replay: a capsule around an sw_kafka_source. */
#define KAFKA_CAPSULE "streamwise.kafka_source"

static void
kafka_capsule_free(PyObject *cap)
{
    sw_kafka_source_free(PyCapsule_GetPointer(cap, KAFKA_CAPSULE));
}

static PyObject *
sw_kafka_open_py(PyObject *module, PyObject *args)
{
    sw_state *st = PyModule_GetState(module);
    const char *bootstrap, *topic, *conf[129] = {NULL};
    PyObject *parts_o, *conf_o;
    int sk, tk;
    long long sv, tv, timeout;
    int32_t parts[4096];
    int n = 0;
    Py_ssize_t i;
    sw_kafka_source *src = NULL;
    sw_err err = {0};
    sw_rc rc;

    if (!PyArg_ParseTuple(args, "ssOiLiLLO!", &bootstrap, &topic, &parts_o, &sk,
                          &sv, &tk, &tv, &timeout, &PyList_Type, &conf_o))
        return NULL;
    if (str_pairs(conf_o, conf, 128) < 0)
        return NULL;
    if (parts_o != Py_None) {
        PyObject *seq = PySequence_Fast(parts_o, "partitions: a list");

        if (seq == NULL)
            return NULL;
        if (PySequence_Fast_GET_SIZE(seq) > 4096) {
            Py_DECREF(seq);
            PyErr_SetString(PyExc_ValueError, "at most 4096 partitions");
            return NULL;
        }
        for (i = 0; i < PySequence_Fast_GET_SIZE(seq); i++)
            parts[n++] =
                (int32_t)PyLong_AsLong(PySequence_Fast_GET_ITEM(seq, i));
        Py_DECREF(seq);
        if (PyErr_Occurred())
            return NULL;
    }
    Py_BEGIN_ALLOW_THREADS rc = sw_kafka_source_open(
        bootstrap, topic, parts_o == Py_None ? NULL : parts, n, sk, sv, tk, tv,
        timeout, conf, &src, &err);
    Py_END_ALLOW_THREADS if (rc != SW_OK)
    {
        raise_sw_err(st, &err);
        return NULL;
    }
    return PyCapsule_New(src, KAFKA_CAPSULE, kafka_capsule_free);
}

/* kafka_subscribe(bootstrap, topic, group, wait_ms, [key, value, ...]) ->
 * source (live, in a consumer group) */
static PyObject *
sw_kafka_subscribe_py(PyObject *module, PyObject *args)
{
    const char *bootstrap, *topic, *group, *conf[129] = {NULL};
    PyObject *conf_o;
    long long wait;
    sw_kafka_source *src = NULL;
    sw_err err = {0};
    sw_rc rc;

    if (!PyArg_ParseTuple(args, "sssLO!", &bootstrap, &topic, &group, &wait,
                          &PyList_Type, &conf_o))
        return NULL;
    if (str_pairs(conf_o, conf, 128) < 0)
        return NULL;
    Py_BEGIN_ALLOW_THREADS rc = sw_kafka_source_subscribe(
        bootstrap, topic, group, wait, conf, &src, &err);
    Py_END_ALLOW_THREADS if (rc != SW_OK)
    {
        raise_sw_err(PyModule_GetState(module), &err);
        return NULL;
    }
    return PyCapsule_New(src, KAFKA_CAPSULE, kafka_capsule_free);
}

static PyObject *
sw_kafka_start_at_py(PyObject *module, PyObject *args)
{
    PyObject *cap;
    sw_kafka_source *src;
    int part;
    long long off;
    sw_err err = {0};

    if (!PyArg_ParseTuple(args, "OiL", &cap, &part, &off))
        return NULL;
    src = PyCapsule_GetPointer(cap, KAFKA_CAPSULE);
    if (src == NULL)
        return NULL;
    if (sw_kafka_source_start_at(src, part, off, &err) != SW_OK) {
        raise_sw_err(PyModule_GetState(module), &err);
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
sw_kafka_commit_py(PyObject *module, PyObject *cap)
{
    sw_kafka_source *src = PyCapsule_GetPointer(cap, KAFKA_CAPSULE);
    sw_err err = {0};
    sw_rc rc;

    if (src == NULL)
        return NULL;
    Py_BEGIN_ALLOW_THREADS rc = sw_kafka_source_commit(src, &err);
    Py_END_ALLOW_THREADS if (rc != SW_OK)
    {
        raise_sw_err(PyModule_GetState(module), &err);
        return NULL;
    }
    Py_RETURN_NONE;
}

/* Read the next batch of (source, max) into the source; its size, or -1
 * with the exception set. */
static int64_t
kafka_read(PyObject *module, PyObject *args, sw_kafka_source **src)
{
    PyObject *cap;
    long long max;
    int64_t count;
    sw_err err = {0};
    sw_rc rc;

    if (!PyArg_ParseTuple(args, "OL", &cap, &max))
        return -1;
    *src = PyCapsule_GetPointer(cap, KAFKA_CAPSULE);
    if (*src == NULL)
        return -1;
    Py_BEGIN_ALLOW_THREADS rc = sw_kafka_source_next(*src, max, &count, &err);
    Py_END_ALLOW_THREADS if (rc != SW_OK)
    {
        raise_sw_err(PyModule_GetState(module), &err);
        return -1;
    }
    return count;
}

/* next(capsule, max) -> (partition, offset, timestamp_ms, keys, values) */
static PyObject *
sw_kafka_next_py(PyObject *module, PyObject *args)
{
    PyObject *out = NULL;
    sw_kafka_source *src;
    int64_t count = kafka_read(module, args, &src);
    const int32_t *part;
    const int64_t *off, *ts, *ka, *kl, *va, *vl;
    const unsigned char *bytes;
    PyArrayObject *a[5] = {NULL};
    npy_intp n, i;
    int k;

    if (count < 0)
        return NULL;
    sw_kafka_source_batch(src, &part, &off, &ts, &bytes, &ka, &kl, &va, &vl);
    n = (npy_intp)count;
    a[0] = (PyArrayObject *)PyArray_SimpleNew(1, &n, NPY_INT32);
    a[1] = (PyArrayObject *)PyArray_SimpleNew(1, &n, NPY_INT64);
    a[2] = (PyArrayObject *)PyArray_SimpleNew(1, &n, NPY_INT64);
    a[3] = (PyArrayObject *)PyArray_SimpleNew(1, &n, NPY_OBJECT);
    a[4] = (PyArrayObject *)PyArray_SimpleNew(1, &n, NPY_OBJECT);
    for (k = 0; k < 5; k++) {
        if (a[k] == NULL)
            goto done;
    }
    if (n > 0) {
        memcpy(PyArray_DATA(a[0]), part, (size_t)n * sizeof(int32_t));
        memcpy(PyArray_DATA(a[1]), off, (size_t)n * sizeof(int64_t));
        memcpy(PyArray_DATA(a[2]), ts, (size_t)n * sizeof(int64_t));
    }
    for (i = 0; i < n; i++) {
        PyObject *key =
            kl[i] < 0
                ? Py_NewRef(Py_None)
                : PyBytes_FromStringAndSize((const char *)bytes + ka[i], kl[i]);
        PyObject *val =
            vl[i] < 0
                ? Py_NewRef(Py_None)
                : PyBytes_FromStringAndSize((const char *)bytes + va[i], vl[i]);

        if (key == NULL || val == NULL) {
            Py_XDECREF(key);
            Py_XDECREF(val);
            goto done;
        }
        ((PyObject **)PyArray_DATA(a[3]))[i] = key; /* steals */
        ((PyObject **)PyArray_DATA(a[4]))[i] = val;
    }
    out = PyTuple_Pack(5, a[0], a[1], a[2], a[3], a[4]);
done:
    for (k = 0; k < 5; k++)
        Py_XDECREF(a[k]);
    return out;
}

#define DECODER_CAPSULE "streamwise.json_decoder"

static void
decoder_capsule_free(PyObject *cap)
{
    sw_json_decoder_free(PyCapsule_GetPointer(cap, DECODER_CAPSULE));
}

static PyObject *
sw_json_decoder_py(PyObject *module, PyObject *arg)
{
    sw_state *st = PyModule_GetState(module);
    const char *schema = PyUnicode_AsUTF8(arg);
    sw_json_decoder *d = NULL;
    sw_err err = {0};

    if (schema == NULL)
        return NULL;
    if (sw_json_decoder_new(schema, &d, &err) != SW_OK) {
        raise_sw_err(st, &err);
        return NULL;
    }
    return PyCapsule_New(d, DECODER_CAPSULE, decoder_capsule_free);
}

/* decoder_avro(decoder, reader_schema_json, framing, [(id, writer_json)]):
 * the decoder reads Avro records from now on. */
static PyObject *
sw_decoder_avro_py(PyObject *module, PyObject *args)
{
    PyObject *dcap, *writers;
    const char *reader;
    int framing;
    sw_json_decoder *d;
    sw_err err = {0};
    Py_ssize_t i;

    if (!PyArg_ParseTuple(args, "OsiO!", &dcap, &reader, &framing, &PyList_Type,
                          &writers) ||
        (d = PyCapsule_GetPointer(dcap, DECODER_CAPSULE)) == NULL)
        return NULL;
    if (sw_json_decoder_set_avro(d, reader, framing, &err) != SW_OK) {
        raise_sw_err(PyModule_GetState(module), &err);
        return NULL;
    }
    for (i = 0; i < PyList_GET_SIZE(writers); i++) {
        int id;
        const char *w;

        if (!PyArg_ParseTuple(PyList_GET_ITEM(writers, i), "is", &id, &w))
            return NULL;
        if (sw_json_decoder_add_avro_writer(d, id, w, &err) != SW_OK) {
            raise_sw_err(PyModule_GetState(module), &err);
            return NULL;
        }
    }
    Py_RETURN_NONE;
}

/* kafka_decode(source, decoder) -> ({field: array} plus partition, offset,
 * timestamp of the decoded rows, [(partition, offset, reason, value)]):
 * the source's last batch through the decoder, without making a bytes
 * object of any good message. */
static PyObject *
sw_kafka_decode_py(PyObject *module, PyObject *args)
{
    static const int np_type[7] = {NPY_INT64,   NPY_INT32,   NPY_INT8,
                                   NPY_FLOAT64, NPY_FLOAT32, NPY_BOOL,
                                   NPY_OBJECT};
    sw_state *st = PyModule_GetState(module);
    PyObject *cap, *dcap, *cols = NULL, *deadl = NULL, *out = NULL;
    sw_kafka_source *src;
    sw_json_decoder *d;
    const int32_t *part;
    const int64_t *off, *ts, *ka, *kl, *va, *vl, *rows, *drow;
    const int *why;
    const unsigned char *bytes;
    int64_t n_rows, n_dead, n, k;
    npy_intp nr;
    sw_err err = {0};
    sw_rc rc;
    int i;

    if (!PyArg_ParseTuple(args, "OO", &cap, &dcap))
        return NULL;
    src = PyCapsule_GetPointer(cap, KAFKA_CAPSULE);
    d = PyCapsule_GetPointer(dcap, DECODER_CAPSULE);
    if (src == NULL || d == NULL)
        return NULL;
    sw_kafka_source_batch(src, &part, &off, &ts, &bytes, &ka, &kl, &va, &vl);
    n = sw_kafka_source_count(src);
    Py_BEGIN_ALLOW_THREADS rc =
        sw_json_decode(d, bytes, va, vl, ts, n, &n_rows, &err);
    Py_END_ALLOW_THREADS if (rc != SW_OK)
    {
        raise_sw_err(st, &err);
        return NULL;
    }
    rows = sw_json_decoder_rows(d);
    nr = (npy_intp)n_rows;
    cols = PyDict_New();
    if (cols == NULL)
        goto fail;
    for (i = 0; i < sw_json_decoder_n_fields(d); i++) {
        const char *name;
        int type;
        const double *num;
        const int64_t *ints, *sat, *slen;
        PyArrayObject *a;

        sw_json_decoder_field(d, i, &name, &type, &num, &ints, &sat, &slen);
        a = (PyArrayObject *)PyArray_SimpleNew(1, &nr, np_type[type]);
        if (a == NULL)
            goto fail;
        for (k = 0; k < n_rows; k++) {
            void *dst = PyArray_GETPTR1(a, k);

            switch (type) {
            case SW_COL_I64:
                *(int64_t *)dst = ints[k];
                break;
            case SW_COL_I32:
                *(int32_t *)dst = (int32_t)ints[k];
                break;
            case SW_COL_I8:
                *(int8_t *)dst = (int8_t)ints[k];
                break;
            case SW_COL_BOOL:
                *(npy_bool *)dst = ints[k] != 0;
                break;
            case SW_COL_F64:
                *(double *)dst = num[k];
                break;
            case SW_COL_F32:
                *(float *)dst = (float)num[k];
                break;
            default: {
                PyObject *u = PyUnicode_DecodeUTF8(
                    (const char *)sw_json_decoder_strings(d) + sat[k], slen[k],
                    "replace");

                if (u == NULL) {
                    Py_DECREF(a);
                    goto fail;
                }
                *(PyObject **)dst = u;
            }
            }
        }
        rc = PyDict_SetItemString(cols, name, (PyObject *)a) < 0;
        Py_DECREF(a);
        if (rc)
            goto fail;
    }
    {
        PyArrayObject *a[3];
        const char *names[3] = {"partition", "offset", "timestamp"};

        a[0] = (PyArrayObject *)PyArray_SimpleNew(1, &nr, NPY_INT32);
        a[1] = (PyArrayObject *)PyArray_SimpleNew(1, &nr, NPY_INT64);
        a[2] = (PyArrayObject *)PyArray_SimpleNew(1, &nr, NPY_INT64);
        for (k = 0; k < n_rows && a[0] && a[1] && a[2]; k++) {
            ((int32_t *)PyArray_DATA(a[0]))[k] = part[rows[k]];
            ((int64_t *)PyArray_DATA(a[1]))[k] = off[rows[k]];
            ((int64_t *)PyArray_DATA(a[2]))[k] = ts[rows[k]];
        }
        for (i = 0; i < 3; i++) {
            int bad = a[i] == NULL ||
                      PyDict_SetItemString(cols, names[i], (PyObject *)a[i]);

            Py_XDECREF(a[i]);
            if (bad)
                goto fail;
        }
    }
    n_dead = sw_json_decoder_dead(d, &drow, &why);
    deadl = PyList_New((Py_ssize_t)n_dead);
    for (k = 0; deadl != NULL && k < n_dead; k++) {
        int64_t m = drow[k];
        PyObject *t = Py_BuildValue(
            "(iLsy#)", part[m], (long long)off[m], sw_dead_reasons[why[k]],
            vl[m] < 0 ? "" : (const char *)bytes + va[m],
            (Py_ssize_t)(vl[m] < 0 ? 0 : vl[m]));

        if (t == NULL)
            goto fail;
        PyList_SET_ITEM(deadl, k, t);
    }
    if (deadl == NULL)
        goto fail;
    out = PyTuple_Pack(2, cols, deadl);
fail:
    Py_XDECREF(cols);
    Py_XDECREF(deadl);
    return out;
}

/* kafka_fetch(source, max) -> count: read a batch, leave it in C */
static PyObject *
sw_kafka_fetch_py(PyObject *module, PyObject *args)
{
    sw_kafka_source *src;
    int64_t count = kafka_read(module, args, &src);

    return count < 0 ? NULL : PyLong_FromLongLong((long long)count);
}

#define SINK_CAPSULE "streamwise.kafka_sink"

static void
sink_capsule_free(PyObject *cap)
{
    sw_kafka_sink_free(PyCapsule_GetPointer(cap, SINK_CAPSULE));
}

static PyObject *
sw_kafka_sink_open_py(PyObject *module, PyObject *args)
{
    const char *bootstrap, *topic, *conf[129];
    PyObject *conf_o;
    sw_kafka_sink *s = NULL;
    sw_err err = {0};
    sw_rc rc;

    if (!PyArg_ParseTuple(args, "ssO", &bootstrap, &topic, &conf_o) ||
        str_pairs(conf_o, conf, 128) < 0)
        return NULL;
    Py_BEGIN_ALLOW_THREADS rc =
        sw_kafka_sink_open(bootstrap, topic, conf, &s, &err);
    Py_END_ALLOW_THREADS if (rc != SW_OK)
    {
        raise_sw_err(PyModule_GetState(module), &err);
        return NULL;
    }
    return PyCapsule_New(s, SINK_CAPSULE, sink_capsule_free);
}

/* kafka_sink_send(sink, values, keys|None, timestamps|None, partition,
 * [header, value, ...]): values and keys are sequences of bytes (None: a
 * null key), timestamps an int64 array of ms or None. */
static PyObject *
sw_kafka_sink_send_py(PyObject *module, PyObject *args)
{
    PyObject *cap, *vals, *keys, *ts_o, *hdr_o, *vs = NULL, *ks = NULL;
    PyArrayObject *ts = NULL;
    const char *hdr[65];
    int partition;
    sw_kafka_sink *s;
    sw_err err = {0};
    Py_ssize_t i, n;
    sw_rc rc = SW_OK;

    if (!PyArg_ParseTuple(args, "OOOOiO", &cap, &vals, &keys, &ts_o, &partition,
                          &hdr_o) ||
        str_pairs(hdr_o, hdr, 64) < 0)
        return NULL;
    s = PyCapsule_GetPointer(cap, SINK_CAPSULE);
    if (s == NULL)
        return NULL;
    vs = PySequence_Fast(vals, "values: a sequence of bytes");
    if (vs == NULL)
        return NULL;
    n = PySequence_Fast_GET_SIZE(vs);
    if (keys != Py_None &&
        ((ks = PySequence_Fast(keys, "keys: a sequence")) == NULL ||
         PySequence_Fast_GET_SIZE(ks) != n)) {
        if (ks != NULL)
            PyErr_SetString(PyExc_ValueError, "keys and values differ in "
                                              "length");
        goto done;
    }
    if (ts_o != Py_None) {
        ts = (PyArrayObject *)PyArray_FROM_OTF(ts_o, NPY_INT64,
                                               NPY_ARRAY_IN_ARRAY);
        if (ts == NULL)
            goto done;
        if (PyArray_SIZE(ts) != n) {
            PyErr_SetString(PyExc_ValueError, "timestamps and values differ "
                                              "in length");
            goto done;
        }
    }
    for (i = 0; i < n && rc == SW_OK; i++) {
        PyObject *v = PySequence_Fast_GET_ITEM(vs, i);
        PyObject *k = ks ? PySequence_Fast_GET_ITEM(ks, i) : Py_None;
        char *vb = NULL, *kb = NULL;
        Py_ssize_t vl = 0, kl = 0;

        if (PyBytes_AsStringAndSize(v, &vb, &vl) < 0 ||
            (k != Py_None && PyBytes_AsStringAndSize(k, &kb, &kl) < 0))
            goto done;
        rc = sw_kafka_sink_send(s, kb, (size_t)kl, vb, (size_t)vl, partition,
                                ts ? ((const int64_t *)PyArray_DATA(ts))[i] : 0,
                                hdr[0] ? hdr : NULL, &err);
    }
    if (rc != SW_OK)
        raise_sw_err(PyModule_GetState(module), &err);
done:
    Py_XDECREF(vs);
    Py_XDECREF(ks);
    Py_XDECREF(ts);
    if (PyErr_Occurred())
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
sw_kafka_sink_flush_py(PyObject *module, PyObject *args)
{
    PyObject *cap;
    long long timeout;
    sw_kafka_sink *s;
    sw_err err = {0};
    sw_rc rc;
    int64_t st[3];

    if (!PyArg_ParseTuple(args, "OL", &cap, &timeout))
        return NULL;
    s = PyCapsule_GetPointer(cap, SINK_CAPSULE);
    if (s == NULL)
        return NULL;
    Py_BEGIN_ALLOW_THREADS rc = sw_kafka_sink_flush(s, timeout, &err);
    Py_END_ALLOW_THREADS if (rc != SW_OK)
    {
        raise_sw_err(PyModule_GetState(module), &err);
        return NULL;
    }
    sw_kafka_sink_stats(s, st);
    return Py_BuildValue("(LLL)", (long long)st[0], (long long)st[1],
                         (long long)st[2]);
}

/* slice(capsule) -> [(partition, start, stop, next)] */
static PyObject *
sw_kafka_slice_py(PyObject *module, PyObject *cap)
{
    sw_kafka_source *src = PyCapsule_GetPointer(cap, KAFKA_CAPSULE);
    const int32_t *part;
    const int64_t *start, *stop, *next;
    PyObject *list;
    int n, i;

    (void)module;
    if (src == NULL)
        return NULL;
    n = sw_kafka_source_slice(src, &part, &start, &stop, &next);
    list = PyList_New(n);
    for (i = 0; list != NULL && i < n; i++) {
        PyObject *t = Py_BuildValue("(iLLL)", part[i], (long long)start[i],
                                    (long long)stop[i], (long long)next[i]);

        if (t == NULL) {
            Py_CLEAR(list);
            break;
        }
        PyList_SET_ITEM(list, i, t);
    }
    return list;
}

/* HDF5 event datasets: a capsule around an sw_h5_source; the writer's
 * capsule holds a box, so that close can leave it empty. */
#define H5SRC_CAPSULE "streamwise.h5_source"
#define H5W_CAPSULE "streamwise.h5_writer"

typedef struct {
    sw_h5_writer *w;
} h5w_box;

static void
h5src_capsule_free(PyObject *cap)
{
    sw_h5_source_free(PyCapsule_GetPointer(cap, H5SRC_CAPSULE));
}

static void
h5w_capsule_free(PyObject *cap)
{
    h5w_box *b = PyCapsule_GetPointer(cap, H5W_CAPSULE);

    if (b != NULL)
        sw_h5_writer_free(b->w); /* never closed: abandoned */
    PyMem_Free(b);
}

/* h5_open(path, type, by_time, start, stop) -> source */
static PyObject *
sw_h5_open_py(PyObject *module, PyObject *args)
{
    PyObject *path_o;
    const char *type;
    int by_time;
    long long start, stop;
    sw_h5_source *src = NULL;
    sw_err err = {0};
    sw_rc rc;

    if (!PyArg_ParseTuple(args, "O&siLL", PyUnicode_FSConverter, &path_o, &type,
                          &by_time, &start, &stop))
        return NULL;
    Py_BEGIN_ALLOW_THREADS rc = sw_h5_source_open(
        PyBytes_AS_STRING(path_o), type, by_time, start, stop, &src, &err);
    Py_END_ALLOW_THREADS Py_DECREF(path_o);
    if (rc != SW_OK) {
        raise_sw_err(PyModule_GetState(module), &err);
        return NULL;
    }
    return PyCapsule_New(src, H5SRC_CAPSULE, h5src_capsule_free);
}

static sw_h5_source *
h5src_arg(PyObject *args, long long *max)
{
    PyObject *cap;

    if (!PyArg_ParseTuple(args, "OL", &cap, max))
        return NULL;
    return PyCapsule_GetPointer(cap, H5SRC_CAPSULE);
}

/* h5_next(source, max) -> {column: array} (empty arrays once done) */
static PyObject *
sw_h5_next_py(PyObject *module, PyObject *args)
{
    static const int np_type[7] = {NPY_INT64,   NPY_INT32,   NPY_INT8,
                                   NPY_FLOAT64, NPY_FLOAT32, NPY_BOOL,
                                   NPY_STRING};
    long long max;
    sw_h5_source *src = h5src_arg(args, &max);
    const sw_batch *b;
    PyObject *cols;
    int64_t count;
    npy_intp n;
    sw_err err = {0};
    sw_rc rc;
    int i;

    if (src == NULL)
        return NULL;
    Py_BEGIN_ALLOW_THREADS rc = sw_h5_source_next(src, max, &count, &err);
    Py_END_ALLOW_THREADS if (rc != SW_OK)
    {
        raise_sw_err(PyModule_GetState(module), &err);
        return NULL;
    }
    b = sw_h5_source_batch(src);
    n = (npy_intp)count;
    if ((cols = PyDict_New()) == NULL)
        return NULL;
    for (i = 0; i < b->n_columns; i++) {
        const sw_column *c = &b->columns[i];
        int t = np_type[c->type];
        size_t size = c->type == SW_COL_STR ? (size_t)c->width
                      : c->type == SW_COL_I64 || c->type == SW_COL_F64 ? 8
                      : c->type == SW_COL_I32 || c->type == SW_COL_F32 ? 4
                                                                       : 1;
        PyObject *a =
            PyArray_New(&PyArray_Type, 1, &n, t, NULL, NULL,
                        c->type == SW_COL_STR ? (int)c->width : 0, 0, NULL);
        int bad;

        if (a == NULL) {
            Py_DECREF(cols);
            return NULL;
        }
        if (n > 0)
            memcpy(PyArray_DATA((PyArrayObject *)a), c->data, (size_t)n * size);
        bad = PyDict_SetItemString(cols, c->name, a) < 0;
        Py_DECREF(a);
        if (bad) {
            Py_DECREF(cols);
            return NULL;
        }
    }
    return cols;
}

/* h5_drain(source, max) -> rows: read to the end in C, keeping nothing
 * (what the C path costs, for benchmarks). */
static PyObject *
sw_h5_drain_py(PyObject *module, PyObject *args)
{
    long long max;
    sw_h5_source *src = h5src_arg(args, &max);
    int64_t count = 0, total = 0;
    sw_err err = {0};
    sw_rc rc = SW_OK;

    if (src == NULL)
        return NULL;
    Py_BEGIN_ALLOW_THREADS do
    {
        rc = sw_h5_source_next(src, max, &count, &err);
        total += count;
    }
    while (rc == SW_OK && count > 0)
        ;
    Py_END_ALLOW_THREADS if (rc != SW_OK)
    {
        raise_sw_err(PyModule_GetState(module), &err);
        return NULL;
    }
    return PyLong_FromLongLong((long long)total);
}

/* h5_info(source) -> (dataset, schema, provenance, rows, start, stop,
 * next) */
static PyObject *
sw_h5_info_py(PyObject *module, PyObject *cap)
{
    sw_h5_source *src = PyCapsule_GetPointer(cap, H5SRC_CAPSULE);
    int64_t a, b, c;

    (void)module;
    if (src == NULL)
        return NULL;
    sw_h5_source_slice(src, &a, &b, &c);
    return Py_BuildValue("(sssLLLL)", sw_h5_source_dataset(src),
                         sw_h5_source_schema(src), sw_h5_source_provenance(src),
                         (long long)sw_h5_source_rows(src), (long long)a,
                         (long long)b, (long long)c);
}

static PyObject *
sw_h5_sha256_py(PyObject *module, PyObject *cap)
{
    sw_h5_source *src = PyCapsule_GetPointer(cap, H5SRC_CAPSULE);
    char hex[65];
    sw_err err = {0};
    sw_rc rc;

    if (src == NULL)
        return NULL;
    Py_BEGIN_ALLOW_THREADS rc = sw_h5_source_sha256(src, hex, &err);
    Py_END_ALLOW_THREADS if (rc != SW_OK)
    {
        raise_sw_err(PyModule_GetState(module), &err);
        return NULL;
    }
    return PyUnicode_FromString(hex);
}

/* h5_writer(path) -> writer */
static PyObject *
sw_h5_writer_py(PyObject *module, PyObject *arg)
{
    PyObject *path_o, *cap;
    h5w_box *b;
    sw_err err = {0};
    sw_rc rc;

    if (!PyUnicode_FSConverter(arg, &path_o))
        return NULL;
    if ((b = PyMem_Calloc(1, sizeof(*b))) == NULL) {
        Py_DECREF(path_o);
        return PyErr_NoMemory();
    }
    Py_BEGIN_ALLOW_THREADS rc =
        sw_h5_writer_open(PyBytes_AS_STRING(path_o), &b->w, &err);
    Py_END_ALLOW_THREADS Py_DECREF(path_o);
    if (rc != SW_OK) {
        PyMem_Free(b);
        raise_sw_err(PyModule_GetState(module), &err);
        return NULL;
    }
    cap = PyCapsule_New(b, H5W_CAPSULE, h5w_capsule_free);
    if (cap == NULL) {
        sw_h5_writer_free(b->w);
        PyMem_Free(b);
    }
    return cap;
}

static h5w_box *
h5w_arg(PyObject *cap)
{
    h5w_box *b = PyCapsule_GetPointer(cap, H5W_CAPSULE);

    if (b != NULL && b->w == NULL) {
        PyErr_SetString(PyExc_ValueError, "hdf5 writer: already closed");
        return NULL;
    }
    return b;
}

/* h5_table(writer, type, schema_json, provenance_json, gzip_level,
 * chunk_rows) -> table index */
static PyObject *
sw_h5_table_py(PyObject *module, PyObject *args)
{
    PyObject *cap;
    const char *type, *schema, *prov;
    int level, table = -1;
    long long chunk;
    h5w_box *b;
    sw_err err = {0};

    if (!PyArg_ParseTuple(args, "OsssiL", &cap, &type, &schema, &prov, &level,
                          &chunk) ||
        (b = h5w_arg(cap)) == NULL)
        return NULL;
    if (sw_h5_writer_table(b->w, type, schema, prov, level, chunk, &table,
                           &err) != SW_OK) {
        raise_sw_err(PyModule_GetState(module), &err);
        return NULL;
    }
    return PyLong_FromLong(table);
}

/* h5_append(writer, table, [(name, type, array, width, bad)]) */
static PyObject *
sw_h5_append_py(PyObject *module, PyObject *args)
{
    PyObject *cap, *list, *arrs[2 * 1024 + 2];
    sw_column *cols = NULL;
    Py_ssize_t n_arrs = 0, i;
    sw_batch batch;
    h5w_box *b;
    int table;
    sw_err err = {0};
    sw_rc rc = SW_OK;

    if (!PyArg_ParseTuple(args, "OiO!", &cap, &table, &PyList_Type, &list) ||
        (b = h5w_arg(cap)) == NULL)
        return NULL;
    if (PyList_GET_SIZE(list) > 1024) {
        PyErr_SetString(PyExc_ValueError, "hdf5 writer: too many columns");
        return NULL;
    }
    if (batch_arg(list, &batch, &cols, arrs, &n_arrs) == 0) {
        Py_BEGIN_ALLOW_THREADS rc =
            sw_h5_writer_append(b->w, table, &batch, &err);
        Py_END_ALLOW_THREADS
    } else
        rc = SW_E_INTERNAL; /* the Python exception is set */
    for (i = 0; i < n_arrs; i++)
        Py_DECREF(arrs[i]);
    PyMem_Free(cols);
    if (rc != SW_OK) {
        if (!PyErr_Occurred())
            raise_sw_err(PyModule_GetState(module), &err);
        return NULL;
    }
    Py_RETURN_NONE;
}

/* h5_close(writer): flush, sync and rename into place */
static PyObject *
sw_h5_close_py(PyObject *module, PyObject *cap)
{
    h5w_box *b = h5w_arg(cap);
    sw_err err = {0};
    sw_rc rc;

    if (b == NULL)
        return NULL;
    Py_BEGIN_ALLOW_THREADS rc = sw_h5_writer_close(b->w, &err);
    Py_END_ALLOW_THREADS b->w = NULL; /* freed by close either way */
    if (rc != SW_OK) {
        raise_sw_err(PyModule_GetState(module), &err);
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
sw_build_id_py(PyObject *module, PyObject *Py_UNUSED(ignored))
{
    (void)module;
    return PyUnicode_FromString(sw_build_id());
}

static PyMethodDef sw_functions[] = {
    {"linear_new", sw_linear_new_py, METH_VARARGS,
     "linear_new(conf, n_features, n_classes) -> Model"},
    {"load", sw_load_py, METH_O, "load(path) -> Model (verified)"},
    {"pipeline_new", sw_pipeline_new_py, METH_O,
     "pipeline_new(spec_json) -> Pipeline"},
    {"kafka_open", sw_kafka_open_py, METH_VARARGS,
     "kafka_open(bootstrap, topic, partitions, start_kind, start, stop_kind, "
     "stop, timeout_ms, [key, value, ...]) -> source"},
    {"kafka_subscribe", sw_kafka_subscribe_py, METH_VARARGS,
     "kafka_subscribe(bootstrap, topic, group, wait_ms, [key, value, ...]) "
     "-> source"},
    {"kafka_start_at", sw_kafka_start_at_py, METH_VARARGS,
     "kafka_start_at(source, partition, offset): where it resumes"},
    {"kafka_commit", sw_kafka_commit_py, METH_O,
     "kafka_commit(source): commit the offsets after the last batch"},
    {"kafka_next", sw_kafka_next_py, METH_VARARGS,
     "kafka_next(source, max) -> (partition, offset, timestamp_ms, keys, "
     "values)"},
    {"kafka_fetch", sw_kafka_fetch_py, METH_VARARGS,
     "kafka_fetch(source, max) -> count (the batch stays in C)"},
    {"kafka_sink_open", sw_kafka_sink_open_py, METH_VARARGS,
     "kafka_sink_open(bootstrap, topic, [key, value, ...]) -> sink"},
    {"kafka_sink_send", sw_kafka_sink_send_py, METH_VARARGS,
     "kafka_sink_send(sink, values, keys, timestamps, partition, headers)"},
    {"kafka_sink_flush", sw_kafka_sink_flush_py, METH_VARARGS,
     "kafka_sink_flush(sink, timeout_ms) -> (sent, acked, failed)"},
    {"json_decoder", sw_json_decoder_py, METH_O,
     "json_decoder(events_schema_json) -> decoder"},
    {"decoder_avro", sw_decoder_avro_py, METH_VARARGS,
     "decoder_avro(decoder, reader_schema, framing, [(id, writer_schema)])"},
    {"kafka_decode", sw_kafka_decode_py, METH_VARARGS,
     "kafka_decode(source, decoder) -> (columns, dead letters)"},
    {"kafka_slice", sw_kafka_slice_py, METH_O,
     "kafka_slice(source) -> [(partition, start, stop, next)]"},
    {"h5_open", sw_h5_open_py, METH_VARARGS,
     "h5_open(path, type, by_time, start, stop) -> source"},
    {"h5_next", sw_h5_next_py, METH_VARARGS,
     "h5_next(source, max) -> {column: array}"},
    {"h5_drain", sw_h5_drain_py, METH_VARARGS,
     "h5_drain(source, max) -> rows read in C, kept nowhere"},
    {"h5_info", sw_h5_info_py, METH_O,
     "h5_info(source) -> (dataset, schema, provenance, rows, start, stop, "
     "next)"},
    {"h5_sha256", sw_h5_sha256_py, METH_O, "h5_sha256(source) -> hex"},
    {"h5_writer", sw_h5_writer_py, METH_O, "h5_writer(path) -> writer"},
    {"h5_table", sw_h5_table_py, METH_VARARGS,
     "h5_table(writer, type, schema, provenance, gzip_level, chunk_rows) -> "
     "table"},
    {"h5_append", sw_h5_append_py, METH_VARARGS,
     "h5_append(writer, table, columns)"},
    {"h5_close", sw_h5_close_py, METH_O, "h5_close(writer)"},
    {"pipeline_restore", sw_pipeline_restore_py, METH_O,
     "pipeline_restore(path) -> (Pipeline, position bytes)"},
    {"als_new", sw_als_new_py, METH_VARARGS,
     "als_new(conf, n_users, n_items) -> Model"},
    {"gbdt_fit", sw_gbdt_fit_py, METH_VARARGS,
     "gbdt_fit(conf, X, y, X_valid, y_valid, init, rounds[, progress]) -> "
     "(Model, validation losses)"},
    {"predict_latency", sw_predict_latency_py, METH_VARARGS,
     "predict_latency(model, X) -> ns per row, each scored alone in C "
     "(one output per row)"},
    {"split_random", sw_split_random_py, METH_VARARGS,
     "split_random(n, test_fraction, seed) -> uint8 mask"},
    {"split_leave_k_out", sw_split_leave_k_out_py, METH_VARARGS,
     "split_leave_k_out(csr, k, seed) -> uint8 mask"},
    {"inspect", sw_inspect_py, METH_O, "inspect(path) -> str"},
    {"conf_props", sw_conf_props_py, METH_NOARGS,
     "The property table: [(name, type, default, accepted, doc)]"},
    {"build_info", sw_build_info_py, METH_NOARGS, "sw_build_info()"},
    {"build_id", sw_build_id_py, METH_NOARGS, "sw_build_id()"},
    {"registry_resolve", sw_registry_resolve_py, METH_VARARGS,
     "registry_resolve(store_dir, ref) -> (path, sha256, version), by the "
     "C lookup the runner uses"},
    {NULL, NULL, 0, NULL},
};

/* ------------------------------------------------------------------ */
/* Module state and multi-phase init                                    */
/* ------------------------------------------------------------------ */

static int
add_exceptions(PyObject *m, sw_state *st)
{
    static const struct {
        sw_rc rc;
        const char *name;
        const char *doc;
    } table[] = {
        {SW_E_INVAL, "InvalidArgument", "A bad argument or setting."},
        {SW_E_SHAPE, "ShapeError", "Array shapes disagree."},
        {SW_E_STATE, "StateError", "Not allowed in this state."},
        {SW_E_IO, "IOError", "A file operation failed."},
        {SW_E_FORMAT, "FormatError", "Malformed, corrupt or too new data."},
        {SW_E_NUMERIC, "NumericError", "NaN, infinity or overflow."},
        {SW_E_UNSUPPORTED, "UnsupportedError", "Not in this build."},
        {SW_E_SOURCE, "SourceError", "A data source failed."},
        {SW_E_INTERNAL, "InternalError", "A bug in streamwise."},
    };
    size_t i;

    st->Error = PyErr_NewExceptionWithDoc(
        "streamwise.Error", "Base of streamwise's errors.", NULL, NULL);
    if (st->Error == NULL || PyModule_AddObjectRef(m, "Error", st->Error) < 0)
        return -1;
    for (i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        PyObject *builtin, *bases, *exc;
        char qual[64];

        switch (table[i].rc) {
        case SW_E_IO:
        case SW_E_SOURCE:
            builtin = PyExc_OSError;
            break;
        case SW_E_STATE:
        case SW_E_INTERNAL:
            builtin = PyExc_RuntimeError;
            break;
        case SW_E_UNSUPPORTED:
            builtin = PyExc_NotImplementedError;
            break;
        default:
            builtin = PyExc_ValueError;
        }
        bases = PyTuple_Pack(2, st->Error, builtin);
        if (bases == NULL)
            return -1;
        snprintf(qual, sizeof(qual), "streamwise.%s", table[i].name);
        exc = PyErr_NewExceptionWithDoc(qual, table[i].doc, bases, NULL);
        Py_DECREF(bases);
        if (exc == NULL)
            return -1;
        st->exc[table[i].rc] = exc;
        if (PyModule_AddObjectRef(m, table[i].name, exc) < 0)
            return -1;
    }
    return 0;
}

static int
sw_exec(PyObject *m)
{
    sw_state *st = PyModule_GetState(m);

    import_array1(-1);
    if (sw_version() != SW_VERSION) {
        PyErr_Format(PyExc_ImportError, "streamwise core %x, header %x",
                     sw_version(), SW_VERSION);
        return -1;
    }
    if (add_exceptions(m, st) < 0)
        return -1;
    st->Model_Type =
        (PyTypeObject *)PyType_FromModuleAndSpec(m, &Model_spec, NULL);
    if (st->Model_Type == NULL || PyModule_AddType(m, st->Model_Type) < 0)
        return -1;
    st->Pipeline_Type =
        (PyTypeObject *)PyType_FromModuleAndSpec(m, &Pipeline_spec, NULL);
    if (st->Pipeline_Type == NULL || PyModule_AddType(m, st->Pipeline_Type) < 0)
        return -1;
    if (PyModule_AddIntConstant(m, "C_VERSION", sw_version()) < 0 ||
        PyModule_AddIntConstant(m, "FORMAT_MAJOR", SW_FORMAT_MAJOR) < 0 ||
        PyModule_AddIntConstant(m, "FORMAT_MINOR", SW_FORMAT_MINOR) < 0)
        return -1;
    return PyModule_AddStringConstant(m, "__version__", sw_version_str());
}

static int
sw_traverse(PyObject *m, visitproc visit, void *arg)
{
    sw_state *st = PyModule_GetState(m);
    int i;

    Py_VISIT(st->Model_Type);
    Py_VISIT(st->Pipeline_Type);
    Py_VISIT(st->Error);
    for (i = 0; i < SW_RC_COUNT; i++)
        Py_VISIT(st->exc[i]);
    return 0;
}

static int
sw_clear(PyObject *m)
{
    sw_state *st = PyModule_GetState(m);
    int i;

    Py_CLEAR(st->Model_Type);
    Py_CLEAR(st->Pipeline_Type);
    Py_CLEAR(st->Error);
    for (i = 0; i < SW_RC_COUNT; i++)
        Py_CLEAR(st->exc[i]);
    return 0;
}

static void
sw_free_module(void *m)
{
    sw_clear((PyObject *)m);
}

static PyModuleDef_Slot sw_slots[] = {
    {Py_mod_exec, sw_exec},
    {0, NULL},
};

static struct PyModuleDef sw_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "streamwise._sw",
    .m_doc = "C core of streamwise; use the streamwise package instead.",
    .m_size = sizeof(sw_state),
    .m_methods = sw_functions,
    .m_slots = sw_slots,
    .m_traverse = sw_traverse,
    .m_clear = sw_clear,
    .m_free = sw_free_module,
};

PyMODINIT_FUNC
PyInit__sw(void)
{
    return PyModuleDef_Init(&sw_module);
}
