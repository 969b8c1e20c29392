/* SPDX-License-Identifier: MIT */
/*
 * convert.c - Python objects -> the core's borrowed views, and the locks.
 *
 * numpy arrays, scipy CSR matrices and {index: value} dicts become sw_rows
 * views without copies when the dtype and layout already fit; event
 * columns become an sw_batch. What a view borrows is kept alive in a hold
 * until the call returns.
 */
#include "module.h"

void
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

static int64_t
index_at(const void *a, int type, int64_t i)
{
    return type == NPY_INT32 ? ((const int32_t *)a)[i]
                             : ((const int64_t *)a)[i];
}

/* A CSR matrix: any object with indptr, indices, data and shape (scipy's
 * csr_matrix and csr_array), or an (indices, values) pair for one row
 * (indptr_o NULL). */
static int
csr_rows(sw_state *st, PyObject *indptr_o, PyObject *indices_o,
         PyObject *data_o, int64_t n_rows, int64_t n_cols, hold *h, sw_rows *v)
{
    PyArrayObject *indptr = NULL, *indices = NULL, *data;
    int type = NPY_INT64;
    int64_t i;

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
            sw_raise_fmt(st, SW_E_SHAPE, "CSR data must be 1-D, got %d-D",
                         PyArray_NDIM(data));
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
            sw_raise_fmt(st, SW_E_SHAPE,
                         "CSR indptr has %zd entries, expected %lld",
                         (Py_ssize_t)PyArray_DIM(indptr, 0),
                         (long long)n_rows + 1);
            return -1;
        }
        v->indptr = PyArray_DATA(indptr);
    } else {
        h->indptr[0] = 0;
        h->indptr[1] = PyArray_DIM(indices, 0);
        v->indptr = h->indptr;
    }
    if (PyArray_DIM(indices, 0) != PyArray_DIM(data, 0)) {
        sw_raise_fmt(st, SW_E_SHAPE, "CSR indices has %zd entries and data %zd",
                     (Py_ssize_t)PyArray_DIM(indices, 0),
                     (Py_ssize_t)PyArray_DIM(data, 0));
        return -1;
    }
    /* The row boundaries are checked here, once, so that the core can
     * trust every one it reads. */
    if (indptr != NULL && n_rows > 0) {
        int64_t first = index_at(PyArray_DATA(indptr), type, 0);
        int64_t last = index_at(PyArray_DATA(indptr), type, n_rows);

        if (first < 0 || last > PyArray_DIM(indices, 0) || last < first) {
            sw_raise_fmt(st, SW_E_SHAPE,
                         "CSR indptr runs %lld..%lld over %zd entries",
                         (long long)first, (long long)last,
                         (Py_ssize_t)PyArray_DIM(indices, 0));
            return -1;
        }
        for (i = 0; i < n_rows; i++) {
            if (index_at(PyArray_DATA(indptr), type, i + 1) <
                index_at(PyArray_DATA(indptr), type, i)) {
                sw_raise_fmt(st, SW_E_SHAPE, "CSR indptr decreases at row %lld",
                             (long long)i);
                return -1;
            }
        }
    }
    v->layout = SW_CSR;
    v->dtype = PyArray_TYPE(data) == NPY_FLOAT32 ? SW_F32 : SW_F64;
    v->itype = type == NPY_INT32 ? SW_I32 : SW_I64;
    v->n_rows = n_rows;
    v->n_cols = n_cols;
    v->data = PyArray_DATA(data);
    v->indices = PyArray_DATA(indices);
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

/* scipy.sparse input: CSR only (CSC has an indptr too, over columns). */
static int
sparse_rows(sw_state *st, PyObject *x, hold *h, sw_rows *v)
{
    PyObject *indptr = NULL, *indices = NULL, *data = NULL, *shape = NULL;
    PyObject *fmt = PyObject_GetAttrString(x, "format");
    int rc = -1;

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
        int64_t r = shape_at(shape, 0), c = shape_at(shape, 1);

        if (!PyErr_Occurred())
            rc = csr_rows(st, indptr, indices, data, r, c, h, v);
    }
    Py_XDECREF(indptr);
    Py_XDECREF(indices);
    Py_XDECREF(data);
    Py_XDECREF(shape);
    return rc;
}

int
to_rows(sw_state *st, PyObject *x, int64_t n_features, hold *h, sw_rows *v)
{
    PyArrayObject *a;
    int nd;

    memset(h, 0, sizeof(*h));
    if (PyDict_Check(x))
        return dict_row(x, n_features, h, v);
    if (PyTuple_Check(x) && PyTuple_GET_SIZE(x) == 2)
        return csr_rows(st, NULL, PyTuple_GET_ITEM(x, 0),
                        PyTuple_GET_ITEM(x, 1), 1, n_features, h, v);
    if (!PyArray_Check(x) && PyObject_HasAttrString(x, "indptr"))
        return sparse_rows(st, x, h, v);
    a = as_float_array(x);
    h->obj[0] = (PyObject *)a;
    if (a == NULL)
        return -1;
    nd = PyArray_NDIM(a);
    if (nd != 1 && nd != 2) {
        sw_raise_fmt(st, SW_E_SHAPE, "X must be 1-D or 2-D, got %d-D", nd);
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

int
csr_arg(sw_state *st, PyObject *o, hold *h, sw_rows *v, const char *what)
{
    memset(h, 0, sizeof(*h));
    if (!PyObject_HasAttrString(o, "indptr")) {
        PyErr_Format(PyExc_TypeError, "%s must be a scipy.sparse CSR matrix",
                     what);
        return -1;
    }
    return to_rows(st, o, 0, h, v);
}

PyArrayObject *
to_targets(sw_state *st, PyObject *y, int64_t n)
{
    PyArrayObject *a =
        (PyArrayObject *)PyArray_FROM_OTF(y, NPY_FLOAT64, NPY_ARRAY_IN_ARRAY);

    if (a == NULL)
        return NULL;
    if (PyArray_SIZE(a) != n || PyArray_NDIM(a) > 1) {
        sw_raise_fmt(st, SW_E_SHAPE, "y has %zd values (%d-D), X has %lld rows",
                     (Py_ssize_t)PyArray_SIZE(a), PyArray_NDIM(a),
                     (long long)n);
        Py_DECREF(a);
        return NULL;
    }
    return a;
}

PyArrayObject *
opt_array(sw_state *st, PyObject *o, int type, int *bad)
{
    PyArrayObject *a;

    *bad = 0;
    if (o == NULL || o == Py_None)
        return NULL;
    a = (PyArrayObject *)PyArray_FROM_OTF(o, type, NPY_ARRAY_IN_ARRAY);
    if (a == NULL || PyArray_NDIM(a) > 2) {
        if (a != NULL) {
            sw_raise_fmt(st, SW_E_SHAPE, "expected a 1-D or 2-D array, got "
                                         "%d-D",
                         PyArray_NDIM(a));
            Py_DECREF(a);
        }
        *bad = 1;
        return NULL;
    }
    return a;
}

int
batch_arg(sw_state *st, PyObject *list, Py_ssize_t max_cols, sw_batch *b,
          sw_column **cols, PyObject **arrs, Py_ssize_t *n_arrs)
{
    Py_ssize_t n, i;
    int64_t rows = -1;

    *n_arrs = 0;
    *cols = NULL;
    if (!PyList_Check(list)) {
        PyErr_SetString(PyExc_TypeError, "columns must be a list");
        return -1;
    }
    n = PyList_GET_SIZE(list);
    if (n > max_cols) {
        sw_raise_fmt(st, SW_E_INVAL, "%zd columns, at most %zd", n, max_cols);
        return -1;
    }
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
        if (type < SW_COL_I64 || type > SW_COL_STR) {
            sw_raise_fmt(st, SW_E_INVAL,
                         "column '%s': type %d, expected a COL_* code", name,
                         type);
            return -1;
        }
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
            sw_raise_fmt(st, SW_E_SHAPE, "column '%s': expected %lld rows",
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

void
batch_release(sw_column *cols, PyObject **arrs, Py_ssize_t n_arrs)
{
    Py_ssize_t i;

    for (i = 0; i < n_arrs; i++)
        Py_DECREF(arrs[i]);
    PyMem_Free(cols);
}

int
str_pairs(sw_state *st, PyObject *list, const char **out, Py_ssize_t max)
{
    Py_ssize_t i, n;

    if (!PyList_Check(list)) {
        PyErr_SetString(PyExc_TypeError, "expected a list [name, value, ...]");
        return -1;
    }
    n = PyList_GET_SIZE(list);
    if (n % 2 || n > max) {
        sw_raise_fmt(st, SW_E_INVAL,
                     "expected [name, value, ...] of at most %zd strings, "
                     "got %zd",
                     max, n);
        return -1;
    }
    for (i = 0; i < n; i++) {
        out[i] = PyUnicode_AsUTF8(PyList_GET_ITEM(list, i));
        if (out[i] == NULL)
            return -1;
    }
    out[n] = NULL;
    return 0;
}

sw_conf *
conf_from_dict(sw_state *st, PyObject *d)
{
    PyObject *key, *value;
    Py_ssize_t pos = 0;
    sw_conf *conf = NULL;
    sw_err err = {0};

    if (sw_conf_new(&conf, &err) != SW_OK) {
        sw_raise(st, &err);
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
            sw_raise(st, &err);
            return NULL;
        }
    }
    return conf;
}

/* ------------------------------------------------------------------ */
/* Locks                                                                */
/* ------------------------------------------------------------------ */

/* Try without letting go of the GIL (the common, uncontended case); if
 * another thread holds the lock it may need the GIL to finish, so wait
 * with the GIL released. */
void
model_read_lock(ModelObject *self)
{
    if (pthread_rwlock_tryrdlock(&self->lock) != 0) {
        Py_BEGIN_ALLOW_THREADS
        pthread_rwlock_rdlock(&self->lock);
        Py_END_ALLOW_THREADS
    }
}

void
model_write_lock(ModelObject *self)
{
    if (pthread_rwlock_trywrlock(&self->lock) != 0) {
        Py_BEGIN_ALLOW_THREADS
        pthread_rwlock_wrlock(&self->lock);
        Py_END_ALLOW_THREADS
    }
}

void
model_unlock(ModelObject *self)
{
    pthread_rwlock_unlock(&self->lock);
}

void
handle_lock(PyThread_type_lock lock)
{
    if (!PyThread_acquire_lock(lock, NOWAIT_LOCK)) {
        Py_BEGIN_ALLOW_THREADS
        PyThread_acquire_lock(lock, WAIT_LOCK);
        Py_END_ALLOW_THREADS
    }
}

void *
handle_enter(HandleObject *self, const char *what)
{
    handle_lock(self->lock);
    if (self->ptr == NULL) {
        PyThread_release_lock(self->lock);
        sw_raise_fmt(sw_ext_state((PyObject *)self), SW_E_STATE,
                     "%s: closed", what);
        return NULL;
    }
    return self->ptr;
}

void
handle_leave(HandleObject *self)
{
    PyThread_release_lock(self->lock);
}

PyObject *
handle_self(PyObject *self, PyObject *Py_UNUSED(unused))
{
    return Py_NewRef(self);
}

void
handle_dealloc(HandleObject *self, void (*free_fn)(void *))
{
    PyTypeObject *tp = Py_TYPE(self);

    free_fn(self->ptr);
    if (self->lock != NULL)
        PyThread_free_lock(self->lock);
    PyObject_Free(self);
    Py_DECREF(tp);
}

/* A new handle object of type tp around ptr (freed with free_fn if the
 * object cannot be made). */
PyObject *
wrap_handle(PyTypeObject *tp, void *ptr, void (*free_fn)(void *))
{
    HandleObject *self = PyObject_New(HandleObject, tp);

    if (self == NULL) {
        free_fn(ptr);
        return NULL;
    }
    self->ptr = ptr;
    self->lock = PyThread_allocate_lock();
    if (self->lock == NULL) {
        Py_DECREF(self);
        return PyErr_NoMemory();
    }
    return (PyObject *)self;
}

/* close(): free the handle now; later calls raise StateError. */
PyObject *
handle_close(HandleObject *self, void (*free_fn)(void *))
{
    void *p;

    handle_lock(self->lock);
    p = self->ptr;
    self->ptr = NULL;
    PyThread_release_lock(self->lock);
    Py_BEGIN_ALLOW_THREADS
    free_fn(p); /* a consumer leaves its group: may take a moment */
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}
