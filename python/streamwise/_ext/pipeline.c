/* SPDX-License-Identifier: MIT */
/*
 * pipeline.c - the Pipeline type (sw_pipeline): push event columns, get
 * feature rows, checkpoints; and pipeline_new / pipeline_restore.
 *
 * A pipeline is changed by every push and reuses one sw_result for its
 * output, so its calls take the object's lock: one at a time.
 *
 * The feature rows of a push are not copied: the result's row arrays are
 * detached (sw_result_detach) into a RowBuffer, the base of the numpy
 * arrays returned over them. When those arrays are gone, the block goes
 * back to its pipeline as the spare the next push writes into; a loop
 * that drops each result so reuses the same pages instead of fresh ones
 * the kernel must clear (a million rows of ten features are 80 MB).
 */
#include "module.h"

typedef struct {
    PyObject_HEAD
    sw_rowbuf *buf;
    rows_pool *pool;
} RowBufferObject;

static void
pool_release(rows_pool *pool)
{
    if (pool != NULL && --pool->refs == 0) {
        sw_rowbuf_free(pool->spare);
        PyMem_Free(pool);
    }
}

static void
RowBuffer_dealloc(RowBufferObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    rows_pool *pool = self->pool;

    /* the pipeline still there (its reference and this one) and no spare
     * yet: keep the block for its next push */
    if (pool != NULL && pool->refs > 1 && pool->spare == NULL)
        pool->spare = self->buf;
    else
        sw_rowbuf_free(self->buf);
    pool_release(pool);
    PyObject_Free(self);
    Py_DECREF(tp);
}

static PyType_Slot RowBuffer_slots[] = {
    {Py_tp_dealloc, RowBuffer_dealloc},
    {Py_tp_doc, "The memory under a pipeline result's arrays."},
    {0, NULL},
};

static PyType_Spec RowBuffer_spec = {
    .name = "streamwise._sw.RowBuffer",
    .basicsize = sizeof(RowBufferObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = RowBuffer_slots,
};

/* An array of n rows (of width columns when nd is 2) of type over data,
 * which owner (a RowBuffer) keeps alive. */
static PyArrayObject *
rows_array(PyObject *owner, void *data, int nd, npy_intp n, npy_intp width,
           int type)
{
    npy_intp dims[2] = {n, width};
    PyArrayObject *a =
        (PyArrayObject *)PyArray_SimpleNewFromData(nd, dims, type, data);

    if (a == NULL)
        return NULL;
    Py_INCREF(owner);
    if (PyArray_SetBaseObject(a, owner) < 0) { /* steals owner */
        Py_DECREF(a);
        return NULL;
    }
    return a;
}

PyObject *
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
    self->pool = PyMem_Calloc(1, sizeof(rows_pool));
    if (self->pool != NULL)
        self->pool->refs = 1;
    self->lock = PyThread_allocate_lock();
    if (self->lock == NULL || self->pool == NULL ||
        sw_result_new(&self->r, &err) != SW_OK) {
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
    pool_release(self->pool);
    if (self->lock != NULL)
        PyThread_free_lock(self->lock);
    PyObject_Free(self);
    Py_DECREF(tp);
}

static void
lock_pipeline(PipelineObject *self)
{
    handle_lock(self->lock);
}

static void
unlock_pipeline(PipelineObject *self)
{
    PyThread_release_lock(self->lock);
}

static PyObject *
Pipeline_repr(PipelineObject *self)
{
    return PyUnicode_FromFormat("<streamwise._sw.Pipeline %d dense columns, "
                                "%lld hashed dims>",
                                sw_pipeline_n_dense(self->p),
                                (long long)sw_pipeline_sparse_dims(self->p));
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
 * pairs); the rows detached from r into arrays of their own. */
static PyObject *
result_tuple(PipelineObject *self, sw_state *st)
{
    const sw_pipeline *p = self->p;
    sw_result *r = self->r;
    PyObject *owner = NULL;
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
    if (n > 0) {
        RowBufferObject *b =
            PyObject_New(RowBufferObject, st->RowBuffer_Type);
        sw_rowbuf *buf;
        sw_err err = {0};

        if (b == NULL)
            goto done;
        b->buf = NULL;
        b->pool = NULL;
        owner = (PyObject *)b;
        if (sw_result_detach(r, &b->buf, &err) != SW_OK) {
            sw_raise(st, &err);
            goto done;
        }
        b->pool = self->pool;
        self->pool->refs++;
        buf = b->buf;
        a[0] = rows_array(owner, sw_rowbuf_dense(buf), 2, n, d2[1],
                          NPY_FLOAT64);
        a[1] = rows_array(owner, sw_rowbuf_seq(buf), 1, n, 0, NPY_INT64);
        a[2] = rows_array(owner, sw_rowbuf_time(buf), 1, n, 0, NPY_INT64);
    } else {
        a[0] = (PyArrayObject *)PyArray_SimpleNew(2, d2, NPY_FLOAT64);
        a[1] = (PyArrayObject *)PyArray_SimpleNew(1, &n, NPY_INT64);
        a[2] = (PyArrayObject *)PyArray_SimpleNew(1, &n, NPY_INT64);
    }
    {
        npy_intp d3[2] = {n, nh};

        a[3] = (PyArrayObject *)PyArray_SimpleNew(2, d3, NPY_INT64);
        a[4] = (PyArrayObject *)PyArray_SimpleNew(1, &n_late, NPY_INT64);
        a[5] = (PyArrayObject *)PyArray_SimpleNew(1, &n_inv, NPY_INT64);
        a[6] = (PyArrayObject *)PyArray_SimpleNew(1, &n_inv, NPY_INT32);
    }
    for (i = 0; i < 7; i++) {
        if (a[i] == NULL)
            goto done;
    }
    if (n > 0)
        memcpy(PyArray_DATA(a[3]), sw_result_indices(r),
               (size_t)(n * nh) * sizeof(int64_t));
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
    Py_XDECREF(owner);
    return out;
}

/* The spare block of rows, if a dropped result gave one back, for the
 * push about to run (the GIL and the pipeline's lock held). */
static void
take_spare(PipelineObject *self)
{
    if (self->pool->spare != NULL) {
        sw_result_attach(self->r, self->pool->spare);
        self->pool->spare = NULL;
    }
}

/* push(columns, partition=0) -> result tuple */
static PyObject *
Pipeline_push(PipelineObject *self, PyObject *args)
{
    sw_state *st = sw_ext_state((PyObject *)self);
    PyObject *arrs[2 * SW_MAX_COLUMNS], *out = NULL, *list;
    Py_ssize_t n_arrs = 0;
    sw_column *cols = NULL;
    sw_batch b;
    sw_err err = {0};
    sw_rc rc;
    int part = 0;

    if (!PyArg_ParseTuple(args, "O|i", &list, &part))
        return NULL;
    if (batch_arg(st, list, SW_MAX_COLUMNS, &b, &cols, arrs, &n_arrs) < 0)
        goto done;
    lock_pipeline(self);
    take_spare(self);
    Py_BEGIN_ALLOW_THREADS
    rc = sw_pipeline_push_partition(self->p, &b, part, self->r, &err);
    Py_END_ALLOW_THREADS
    if (rc != SW_OK)
        sw_raise(st, &err);
    else
        out = result_tuple(self, st);
    unlock_pipeline(self);
done:
    batch_release(cols, arrs, n_arrs);
    return out;
}

static PyObject *
Pipeline_flush(PipelineObject *self, PyObject *Py_UNUSED(ignored))
{
    PyObject *out = NULL;
    sw_err err = {0};
    sw_rc rc;

    lock_pipeline(self);
    take_spare(self);
    Py_BEGIN_ALLOW_THREADS
    rc = sw_pipeline_flush(self->p, self->r, &err);
    Py_END_ALLOW_THREADS
    if (rc != SW_OK)
        sw_raise(sw_ext_state((PyObject *)self), &err);
    else
        out = result_tuple(self, sw_ext_state((PyObject *)self));
    unlock_pipeline(self);
    return out;
}

/* profile(key columns) -> float64 array of the dense features */
static PyObject *
Pipeline_profile(PipelineObject *self, PyObject *list)
{
    sw_state *st = sw_ext_state((PyObject *)self);
    PyObject *arrs[2 * SW_MAX_COLUMNS];
    Py_ssize_t n_arrs = 0;
    sw_column *cols = NULL;
    sw_batch b;
    npy_intp n = sw_pipeline_n_dense(self->p);
    PyArrayObject *out = NULL;
    sw_err err = {0};
    sw_rc rc;

    if (batch_arg(st, list, SW_MAX_COLUMNS, &b, &cols, arrs, &n_arrs) < 0)
        goto done;
    out = (PyArrayObject *)PyArray_SimpleNew(1, &n, NPY_FLOAT64);
    if (out == NULL)
        goto done;
    lock_pipeline(self);
    rc = sw_pipeline_profile(self->p, &b, PyArray_DATA(out), (int)n, &err);
    unlock_pipeline(self);
    if (rc != SW_OK) {
        sw_raise(st, &err);
        Py_CLEAR(out);
    }
done:
    batch_release(cols, arrs, n_arrs);
    return (PyObject *)out;
}

/* checkpoint(path, position) writes in this thread; checkpoint_start
 * forks a child to write it and returns at once. */
static PyObject *
checkpoint_common(PipelineObject *self, PyObject *args, int background)
{
    PyObject *path = NULL;
    Py_buffer pos;
    sw_err err = {0};
    sw_rc rc;

    if (!PyArg_ParseTuple(args, "O&y*", PyUnicode_FSConverter, &path, &pos))
        return NULL;
    lock_pipeline(self);
    if (background) {
        rc = sw_pipeline_checkpoint_start(self->p, PyBytes_AS_STRING(path),
                                          pos.buf, (size_t)pos.len, &err);
    } else {
        Py_BEGIN_ALLOW_THREADS
        rc = sw_pipeline_checkpoint(self->p, PyBytes_AS_STRING(path), pos.buf,
                                    (size_t)pos.len, &err);
        Py_END_ALLOW_THREADS
    }
    unlock_pipeline(self);
    PyBuffer_Release(&pos);
    Py_DECREF(path);
    return none_or_raise((PyObject *)self, rc, &err);
}

static PyObject *
Pipeline_checkpoint(PipelineObject *self, PyObject *args)
{
    return checkpoint_common(self, args, 0);
}

static PyObject *
Pipeline_checkpoint_start(PipelineObject *self, PyObject *args)
{
    return checkpoint_common(self, args, 1);
}

static PyObject *
Pipeline_checkpoint_wait(PipelineObject *self, PyObject *args)
{
    int block = 1, done = 0;
    sw_err err = {0};
    sw_rc rc;

    if (!PyArg_ParseTuple(args, "|p", &block))
        return NULL;
    lock_pipeline(self);
    Py_BEGIN_ALLOW_THREADS
    rc = sw_pipeline_checkpoint_wait(self->p, block, &done, &err);
    Py_END_ALLOW_THREADS
    unlock_pipeline(self);
    if (rc != SW_OK) {
        sw_raise(sw_ext_state((PyObject *)self), &err);
        return NULL;
    }
    return PyBool_FromLong(done);
}

static PyObject *
Pipeline_announce_partitions(PipelineObject *self, PyObject *arg)
{
    long v = PyLong_AsLong(arg);
    int n = v > 1 << 20 ? 1 << 20 : (int)v;
    sw_err err = {0};
    sw_rc rc;

    if (v == -1 && PyErr_Occurred())
        return NULL;
    lock_pipeline(self);
    rc = sw_pipeline_announce_partitions(self->p, n, &err);
    unlock_pipeline(self);
    return none_or_raise((PyObject *)self, rc, &err);
}

static PyObject *
Pipeline_set_secret(PipelineObject *self, PyObject *arg)
{
    Py_buffer key;
    sw_err err = {0};
    sw_rc rc;

    if (PyObject_GetBuffer(arg, &key, PyBUF_SIMPLE) < 0)
        return NULL;
    lock_pipeline(self);
    rc = sw_pipeline_set_secret(self->p, key.buf, (size_t)key.len, &err);
    unlock_pipeline(self);
    PyBuffer_Release(&key);
    return none_or_raise((PyObject *)self, rc, &err);
}

/* hash_column([(name, type, array, width, bad)]) -> uint64 array */
static PyObject *
Pipeline_hash_column(PipelineObject *self, PyObject *list)
{
    sw_state *st = sw_ext_state((PyObject *)self);
    PyObject *arrs[2];
    Py_ssize_t n_arrs = 0;
    sw_column *cols = NULL;
    sw_batch b;
    npy_intp n;
    PyArrayObject *out = NULL;
    sw_err err = {0};
    sw_rc rc;

    if (!PyList_Check(list) || PyList_GET_SIZE(list) != 1) {
        PyErr_SetString(PyExc_TypeError, "hash_column: one column");
        return NULL;
    }
    if (batch_arg(st, list, 1, &b, &cols, arrs, &n_arrs) < 0)
        goto done;
    n = (npy_intp)b.n_rows;
    out = (PyArrayObject *)PyArray_SimpleNew(1, &n, NPY_UINT64);
    if (out == NULL)
        goto done;
    lock_pipeline(self);
    rc = sw_pipeline_hash_column(self->p, &cols[0], b.n_rows,
                                 PyArray_DATA(out), &err);
    unlock_pipeline(self);
    if (rc != SW_OK) {
        sw_raise(st, &err);
        Py_CLEAR(out);
    }
done:
    batch_release(cols, arrs, n_arrs);
    return (PyObject *)out;
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
    sw_pipeline_stats s;
    int64_t evicted, arrivals, oldest, bytes;

    lock_pipeline(self);
    sw_pipeline_get_stats(self->p, &s);
    evicted = sw_pipeline_evicted(self->p);
    bytes = sw_pipeline_state_bytes(self->p);
    arrivals = sw_pipeline_arrivals(self->p);
    oldest = sw_pipeline_oldest_pending(self->p);
    unlock_pipeline(self);
    return Py_BuildValue(
        "{sLsLsLsLsLsLsLsLsLsLsLsLsLsLsL}", "joined", (long long)s.joined,
        "evicted", (long long)evicted, "unmatched", (long long)s.unmatched,
        "arrivals", (long long)arrivals, "emitted", (long long)s.emitted,
        "late", (long long)s.late, "invalid", (long long)s.invalid,
        "buffered", (long long)s.buffered, "keys", (long long)s.keys,
        "missing", (long long)s.invalid_by[SW_INVALID_MISSING], "wrong_type",
        (long long)s.invalid_by[SW_INVALID_TYPE], "nan",
        (long long)s.invalid_by[SW_INVALID_NAN], "bad_time",
        (long long)s.invalid_by[SW_INVALID_TIME], "oldest_pending",
        (long long)oldest, "state_bytes", (long long)bytes);
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
    {Py_tp_repr, Pipeline_repr},
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
        sw_raise(st, &err);
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
    Py_BEGIN_ALLOW_THREADS
    rc = sw_pipeline_restore(PyBytes_AS_STRING(path), &p, &err);
    Py_END_ALLOW_THREADS
    Py_DECREF(path);
    if (rc != SW_OK) {
        sw_raise(st, &err);
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

static PyMethodDef pipeline_functions[] = {
    {"pipeline_new", sw_pipeline_new_py, METH_O,
     "pipeline_new(spec_json) -> Pipeline"},
    {"pipeline_restore", sw_pipeline_restore_py, METH_O,
     "pipeline_restore(path) -> (Pipeline, position bytes)"},
    {NULL, NULL, 0, NULL},
};

int
sw_ext_pipeline_setup(PyObject *m, sw_state *st)
{
    if (sw_ext_add_type(m, &Pipeline_spec, &st->Pipeline_Type) < 0 ||
        sw_ext_add_type(m, &RowBuffer_spec, &st->RowBuffer_Type) < 0)
        return -1;
    return PyModule_AddFunctions(m, pipeline_functions);
}
