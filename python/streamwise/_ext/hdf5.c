/* SPDX-License-Identifier: MIT */
/*
 * hdf5.c - H5Source (sw_h5_source: replay an event table of an HDF5
 * dataset) and H5Writer (sw_h5_writer: write one, renamed into place on
 * close), with h5_open and h5_writer to make them.
 */
#include "module.h"

static void
source_free(void *p)
{
    sw_h5_source_free(p);
}

/* A writer collected or closed by an exception is abandoned: its
 * temporary file is removed and nothing appears at the path. */
static void
writer_free(void *p)
{
    sw_h5_writer_free(p);
}

/* ------------------------------------------------------------------ */
/* H5Source                                                             */
/* ------------------------------------------------------------------ */

static void
H5Source_dealloc(HandleObject *self)
{
    handle_dealloc(self, source_free);
}

static PyObject *
H5Source_close(HandleObject *self, PyObject *Py_UNUSED(ignored))
{
    return handle_close(self, source_free);
}

static PyObject *
H5Source_repr(HandleObject *self)
{
    sw_h5_source *s = self->ptr;

    if (s == NULL)
        return PyUnicode_FromString("<streamwise._sw.H5Source closed>");
    return PyUnicode_FromFormat("<streamwise._sw.H5Source %s, %lld rows>",
                                sw_h5_source_dataset(s),
                                (long long)sw_h5_source_rows(s));
}

/* next(max) -> {column: array} (empty arrays once done) */
static PyObject *
H5Source_next(HandleObject *self, PyObject *arg)
{
    static const int np_type[SW_COL_STR + 1] = {
        NPY_INT64, NPY_INT32, NPY_INT8, NPY_FLOAT64,
        NPY_FLOAT32, NPY_BOOL, NPY_STRING};
    long long max = PyLong_AsLongLong(arg);
    sw_h5_source *src;
    const sw_batch *b;
    PyObject *cols = NULL;
    int64_t count = 0;
    npy_intp n;
    sw_err err = {0};
    sw_rc rc;
    int i;

    if (max == -1 && PyErr_Occurred())
        return NULL;
    if ((src = handle_enter(self, "hdf5 source")) == NULL)
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    rc = sw_h5_source_next(src, max, &count, &err);
    Py_END_ALLOW_THREADS
    if (rc != SW_OK) {
        sw_raise(sw_ext_state((PyObject *)self), &err);
        goto done;
    }
    b = sw_h5_source_batch(src);
    n = (npy_intp)count;
    if ((cols = PyDict_New()) == NULL)
        goto done;
    for (i = 0; i < b->n_columns; i++) {
        const sw_column *c = &b->columns[i];
        size_t size = c->type == SW_COL_STR ? (size_t)c->width
                      : c->type == SW_COL_I64 || c->type == SW_COL_F64 ? 8
                      : c->type == SW_COL_I32 || c->type == SW_COL_F32 ? 4
                                                                       : 1;
        PyObject *a = PyArray_New(
            &PyArray_Type, 1, &n, np_type[c->type], NULL, NULL,
            c->type == SW_COL_STR ? (int)c->width : 0, 0, NULL);
        int bad;

        if (a == NULL) {
            Py_CLEAR(cols);
            goto done;
        }
        if (n > 0)
            memcpy(PyArray_DATA((PyArrayObject *)a), c->data, (size_t)n * size);
        bad = PyDict_SetItemString(cols, c->name, a) < 0;
        Py_DECREF(a);
        if (bad) {
            Py_CLEAR(cols);
            goto done;
        }
    }
done:
    handle_leave(self);
    return cols;
}

/* drain(max) -> rows: read to the end in C, keeping nothing (what the C
 * path costs, for benchmarks) */
static PyObject *
H5Source_drain(HandleObject *self, PyObject *arg)
{
    long long max = PyLong_AsLongLong(arg);
    sw_h5_source *src;
    int64_t count = 0, total = 0;
    sw_err err = {0};
    sw_rc rc = SW_OK;

    if (max == -1 && PyErr_Occurred())
        return NULL;
    if ((src = handle_enter(self, "hdf5 source")) == NULL)
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    do {
        rc = sw_h5_source_next(src, max, &count, &err);
        total += count;
    } while (rc == SW_OK && count > 0);
    Py_END_ALLOW_THREADS
    handle_leave(self);
    if (rc != SW_OK) {
        sw_raise(sw_ext_state((PyObject *)self), &err);
        return NULL;
    }
    return PyLong_FromLongLong((long long)total);
}

/* info() -> (dataset, schema, provenance, rows, start, stop, next) */
static PyObject *
H5Source_info(HandleObject *self, PyObject *Py_UNUSED(ignored))
{
    sw_h5_source *src;
    int64_t a, b, c;
    PyObject *r;

    if ((src = handle_enter(self, "hdf5 source")) == NULL)
        return NULL;
    sw_h5_source_slice(src, &a, &b, &c);
    r = Py_BuildValue("(sssLLLL)", sw_h5_source_dataset(src),
                      sw_h5_source_schema(src), sw_h5_source_provenance(src),
                      (long long)sw_h5_source_rows(src), (long long)a,
                      (long long)b, (long long)c);
    handle_leave(self);
    return r;
}

/* sha256() -> hex digest of the file */
static PyObject *
H5Source_sha256(HandleObject *self, PyObject *Py_UNUSED(ignored))
{
    sw_h5_source *src;
    char hex[65];
    sw_err err = {0};
    sw_rc rc;

    if ((src = handle_enter(self, "hdf5 source")) == NULL)
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    rc = sw_h5_source_sha256(src, hex, &err);
    Py_END_ALLOW_THREADS
    handle_leave(self);
    if (rc != SW_OK) {
        sw_raise(sw_ext_state((PyObject *)self), &err);
        return NULL;
    }
    return PyUnicode_FromString(hex);
}

static PyMethodDef H5Source_methods[] = {
    {"next", (PyCFunction)H5Source_next, METH_O,
     "next(max) -> {column: array}"},
    {"drain", (PyCFunction)H5Source_drain, METH_O,
     "drain(max) -> rows read in C, kept nowhere"},
    {"info", (PyCFunction)H5Source_info, METH_NOARGS,
     "info() -> (dataset, schema, provenance, rows, start, stop, next)"},
    {"sha256", (PyCFunction)H5Source_sha256, METH_NOARGS,
     "sha256() -> hex digest of the file"},
    {"close", (PyCFunction)H5Source_close, METH_NOARGS, "close()"},
    {"__enter__", handle_self, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)H5Source_close, METH_VARARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot H5Source_slots[] = {
    {Py_tp_dealloc, H5Source_dealloc},
    {Py_tp_repr, H5Source_repr},
    {Py_tp_methods, H5Source_methods},
    {Py_tp_doc, "An HDF5 event table replay (sw_h5_source); use "
                "streamwise.replay.hdf5."},
    {0, NULL},
};

static PyType_Spec H5Source_spec = {
    .name = "streamwise._sw.H5Source",
    .basicsize = sizeof(HandleObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = H5Source_slots,
};

/* h5_open(path, type, by, start, stop) -> H5Source; by is H5_BY_ROW or
 * H5_BY_TIME */
static PyObject *
sw_h5_open_py(PyObject *module, PyObject *args)
{
    sw_state *st = PyModule_GetState(module);
    PyObject *path_o;
    const char *type;
    int by;
    long long start, stop;
    sw_h5_source *src = NULL;
    sw_err err = {0};
    sw_rc rc;

    if (!PyArg_ParseTuple(args, "O&siLL", PyUnicode_FSConverter, &path_o, &type,
                          &by, &start, &stop))
        return NULL;
    if (by != SW_H5_BY_ROW && by != SW_H5_BY_TIME) {
        Py_DECREF(path_o);
        return sw_raise_fmt(st, SW_E_INVAL,
                            "h5_open: range kind %d, H5_BY_ROW or H5_BY_TIME "
                            "expected",
                            by);
    }
    Py_BEGIN_ALLOW_THREADS
    rc = sw_h5_source_open(PyBytes_AS_STRING(path_o), type, (sw_h5_range)by,
                           start, stop, &src, &err);
    Py_END_ALLOW_THREADS
    Py_DECREF(path_o);
    if (rc != SW_OK) {
        sw_raise(st, &err);
        return NULL;
    }
    return wrap_handle(st->H5Source_Type, src, source_free);
}

/* ------------------------------------------------------------------ */
/* H5Writer                                                             */
/* ------------------------------------------------------------------ */

static void
H5Writer_dealloc(HandleObject *self)
{
    handle_dealloc(self, writer_free);
}

static PyObject *
H5Writer_repr(HandleObject *self)
{
    return PyUnicode_FromFormat("<streamwise._sw.H5Writer%s>",
                                self->ptr ? "" : " closed");
}

/* table(type, schema_json, provenance_json, gzip_level, chunk_rows) ->
 * table index */
static PyObject *
H5Writer_table(HandleObject *self, PyObject *args)
{
    const char *type, *schema, *prov;
    int level, table = -1;
    long long chunk;
    sw_h5_writer *w;
    sw_err err = {0};
    sw_rc rc;

    if (!PyArg_ParseTuple(args, "sssiL", &type, &schema, &prov, &level,
                          &chunk))
        return NULL;
    if ((w = handle_enter(self, "hdf5 writer")) == NULL)
        return NULL;
    rc = sw_h5_writer_table(w, type, schema, prov, level, chunk, &table, &err);
    handle_leave(self);
    if (rc != SW_OK) {
        sw_raise(sw_ext_state((PyObject *)self), &err);
        return NULL;
    }
    return PyLong_FromLong(table);
}

#define H5_MAX_COLUMNS 1024

/* append(table, [(name, type, array, width, bad)]) */
static PyObject *
H5Writer_append(HandleObject *self, PyObject *args)
{
    sw_state *st = sw_ext_state((PyObject *)self);
    PyObject *list, *arrs[2 * H5_MAX_COLUMNS];
    sw_column *cols = NULL;
    Py_ssize_t n_arrs = 0;
    sw_batch batch;
    sw_h5_writer *w;
    int table;
    sw_err err = {0};
    sw_rc rc;

    if (!PyArg_ParseTuple(args, "iO", &table, &list))
        return NULL;
    if (batch_arg(st, list, H5_MAX_COLUMNS, &batch, &cols, arrs, &n_arrs) < 0) {
        batch_release(cols, arrs, n_arrs);
        return NULL;
    }
    if ((w = handle_enter(self, "hdf5 writer")) == NULL) {
        batch_release(cols, arrs, n_arrs);
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    rc = sw_h5_writer_append(w, table, &batch, &err);
    Py_END_ALLOW_THREADS
    handle_leave(self);
    batch_release(cols, arrs, n_arrs);
    if (rc != SW_OK) {
        sw_raise(st, &err);
        return NULL;
    }
    Py_RETURN_NONE;
}

/* close(): flush, sync and rename into place. The writer is freed either
 * way; a failure leaves nothing at the path. */
static PyObject *
H5Writer_close(HandleObject *self, PyObject *Py_UNUSED(ignored))
{
    sw_h5_writer *w;
    sw_err err = {0};
    sw_rc rc;

    if ((w = handle_enter(self, "hdf5 writer")) == NULL)
        return NULL;
    self->ptr = NULL; /* close frees it, whatever it returns */
    Py_BEGIN_ALLOW_THREADS
    rc = sw_h5_writer_close(w, &err);
    Py_END_ALLOW_THREADS
    handle_leave(self);
    return none_or_raise((PyObject *)self, rc, &err);
}

/* abandon(): free without writing anything at the path */
static PyObject *
H5Writer_abandon(HandleObject *self, PyObject *Py_UNUSED(ignored))
{
    return handle_close(self, writer_free);
}

/* A with block commits the file when it ends normally and abandons it
 * when it ends by an exception. */
static PyObject *
H5Writer_exit(HandleObject *self, PyObject *args)
{
    PyObject *type = Py_None, *value = Py_None, *tb = Py_None;

    if (!PyArg_UnpackTuple(args, "__exit__", 0, 3, &type, &value, &tb))
        return NULL;
    if (type != Py_None)
        return H5Writer_abandon(self, NULL);
    if (self->ptr == NULL)
        Py_RETURN_NONE; /* closed in the block already */
    return H5Writer_close(self, NULL);
}

static PyMethodDef H5Writer_methods[] = {
    {"table", (PyCFunction)H5Writer_table, METH_VARARGS,
     "table(type, schema, provenance, gzip_level, chunk_rows) -> table"},
    {"append", (PyCFunction)H5Writer_append, METH_VARARGS,
     "append(table, columns)"},
    {"close", (PyCFunction)H5Writer_close, METH_NOARGS,
     "close(): flush, sync and rename into place"},
    {"abandon", (PyCFunction)H5Writer_abandon, METH_NOARGS,
     "abandon(): free it, writing nothing at the path"},
    {"__enter__", handle_self, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)H5Writer_exit, METH_VARARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot H5Writer_slots[] = {
    {Py_tp_dealloc, H5Writer_dealloc},
    {Py_tp_repr, H5Writer_repr},
    {Py_tp_methods, H5Writer_methods},
    {Py_tp_doc, "An HDF5 event dataset being written (sw_h5_writer); use "
                "streamwise.hdf5.EventWriter."},
    {0, NULL},
};

static PyType_Spec H5Writer_spec = {
    .name = "streamwise._sw.H5Writer",
    .basicsize = sizeof(HandleObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = H5Writer_slots,
};

/* h5_writer(path) -> H5Writer */
static PyObject *
sw_h5_writer_py(PyObject *module, PyObject *arg)
{
    sw_state *st = PyModule_GetState(module);
    PyObject *path_o;
    sw_h5_writer *w = NULL;
    sw_err err = {0};
    sw_rc rc;

    if (!PyUnicode_FSConverter(arg, &path_o))
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    rc = sw_h5_writer_open(PyBytes_AS_STRING(path_o), &w, &err);
    Py_END_ALLOW_THREADS
    Py_DECREF(path_o);
    if (rc != SW_OK) {
        sw_raise(st, &err);
        return NULL;
    }
    return wrap_handle(st->H5Writer_Type, w, writer_free);
}

static PyMethodDef hdf5_functions[] = {
    {"h5_open", sw_h5_open_py, METH_VARARGS,
     "h5_open(path, type, by, start, stop) -> H5Source"},
    {"h5_writer", sw_h5_writer_py, METH_O, "h5_writer(path) -> H5Writer"},
    {NULL, NULL, 0, NULL},
};

int
sw_ext_hdf5_setup(PyObject *m, sw_state *st)
{
    if (sw_ext_add_type(m, &H5Source_spec, &st->H5Source_Type) < 0 ||
        sw_ext_add_type(m, &H5Writer_spec, &st->H5Writer_Type) < 0)
        return -1;
    return PyModule_AddFunctions(m, hdf5_functions);
}
