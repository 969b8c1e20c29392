/* SPDX-License-Identifier: MIT */
/*
 * coll.c - the Collective type (sw_coll): one rank's end of the ring of a
 * distributed fit, over two sockets the caller connected
 * (streamwise.dask does, through Dask). gbdt_fit takes one; its own calls
 * are here for tests and for whoever builds another distributed learner.
 * Every call releases the GIL: a Dask worker's event loop keeps
 * answering heartbeats while a rank waits for its neighbours.
 */
#include "module.h"

static void
coll_free(void *p)
{
    sw_coll_free(p);
}

static void
Collective_dealloc(HandleObject *self)
{
    handle_dealloc(self, coll_free);
}

static PyObject *
Collective_close(HandleObject *self, PyObject *Py_UNUSED(ignored))
{
    return handle_close(self, coll_free);
}

static PyObject *
Collective_repr(HandleObject *self)
{
    sw_coll *c = self->ptr;

    if (c == NULL)
        return PyUnicode_FromString("<streamwise._sw.Collective closed>");
    return PyUnicode_FromFormat("<streamwise._sw.Collective rank %d of %d>",
                                sw_coll_rank(c), sw_coll_size(c));
}

/* The reductions work in place on a contiguous, writable array. */
static PyObject *
reduce(HandleObject *self, PyObject *arg, int type)
{
    sw_state *st = sw_ext_state((PyObject *)self);
    PyArrayObject *a;
    sw_coll *c;
    sw_err err = {0};
    sw_rc rc;

    if (!PyArray_Check(arg) || PyArray_TYPE((PyArrayObject *)arg) != type ||
        !PyArray_ISCARRAY((PyArrayObject *)arg))
        return sw_raise_fmt(st, SW_E_INVAL,
                            "a contiguous, writable %s array expected",
                            type == NPY_INT64 ? "int64" : "float64");
    a = (PyArrayObject *)arg;
    if ((c = handle_enter(self, "collective")) == NULL)
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    if (type == NPY_INT64)
        rc = sw_coll_sum_i64(c, PyArray_DATA(a), PyArray_SIZE(a), &err);
    else
        rc = sw_coll_max_f64(c, PyArray_DATA(a), PyArray_SIZE(a), &err);
    Py_END_ALLOW_THREADS
    handle_leave(self);
    return none_or_raise((PyObject *)self, rc, &err);
}

static PyObject *
Collective_sum(HandleObject *self, PyObject *arg)
{
    return reduce(self, arg, NPY_INT64);
}

static PyObject *
Collective_max(HandleObject *self, PyObject *arg)
{
    return reduce(self, arg, NPY_FLOAT64);
}

/* gather(bytes) -> [every rank's bytes, rank order] */
static PyObject *
Collective_gather(HandleObject *self, PyObject *arg)
{
    sw_state *st = sw_ext_state((PyObject *)self);
    int64_t lens[SW_COLL_MAX_RANKS], at = 0;
    Py_buffer b;
    void *all = NULL;
    PyObject *out = NULL;
    sw_coll *c;
    sw_err err = {0};
    sw_rc rc;
    int k, size;

    if (PyObject_GetBuffer(arg, &b, PyBUF_SIMPLE) < 0)
        return NULL;
    if ((c = handle_enter(self, "collective")) == NULL) {
        PyBuffer_Release(&b);
        return NULL;
    }
    size = sw_coll_size(c);
    Py_BEGIN_ALLOW_THREADS
    rc = sw_coll_gather(c, b.buf, (int64_t)b.len, &all, lens, &err);
    Py_END_ALLOW_THREADS
    handle_leave(self);
    PyBuffer_Release(&b);
    if (rc != SW_OK) {
        sw_raise(st, &err);
        return NULL;
    }
    if ((out = PyList_New(size)) == NULL)
        goto done;
    for (k = 0; k < size; k++) {
        PyObject *s =
            PyBytes_FromStringAndSize((char *)all + at, (Py_ssize_t)lens[k]);

        if (s == NULL) {
            Py_CLEAR(out);
            goto done;
        }
        PyList_SET_ITEM(out, k, s);
        at += lens[k];
    }
done:
    sw_buffer_free(all);
    return out;
}

/* stats -> {"calls", "bytes_sent", "bytes_received", "seconds"} */
static PyObject *
Collective_stats(HandleObject *self, void *Py_UNUSED(closure))
{
    sw_coll_stats s;
    sw_coll *c;

    if ((c = handle_enter(self, "collective")) == NULL)
        return NULL;
    sw_coll_get_stats(c, &s);
    handle_leave(self);
    return Py_BuildValue("{s:L,s:L,s:L,s:d}", "calls", (long long)s.calls,
                         "bytes_sent", (long long)s.bytes_sent,
                         "bytes_received", (long long)s.bytes_received,
                         "seconds", s.seconds);
}

static PyObject *
Collective_rank(HandleObject *self, void *Py_UNUSED(closure))
{
    sw_coll *c;
    int r;

    if ((c = handle_enter(self, "collective")) == NULL)
        return NULL;
    r = sw_coll_rank(c);
    handle_leave(self);
    return PyLong_FromLong(r);
}

static PyObject *
Collective_size(HandleObject *self, void *Py_UNUSED(closure))
{
    sw_coll *c;
    int r;

    if ((c = handle_enter(self, "collective")) == NULL)
        return NULL;
    r = sw_coll_size(c);
    handle_leave(self);
    return PyLong_FromLong(r);
}

static PyMethodDef Collective_methods[] = {
    {"sum_i64", (PyCFunction)Collective_sum, METH_O,
     "sum_i64(int64 array): replaced in place by its sum over the ranks"},
    {"max_f64", (PyCFunction)Collective_max, METH_O,
     "max_f64(float64 array): replaced in place by its maximum over the "
     "ranks"},
    {"gather", (PyCFunction)Collective_gather, METH_O,
     "gather(bytes) -> every rank's bytes, in rank order"},
    {"close", (PyCFunction)Collective_close, METH_NOARGS, "close()"},
    {"__enter__", handle_self, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)Collective_close, METH_VARARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Collective_getset[] = {
    {"stats", (getter)Collective_stats, NULL,
     "calls, bytes sent and received, seconds in calls", NULL},
    {"rank", (getter)Collective_rank, NULL, NULL, NULL},
    {"size", (getter)Collective_size, NULL, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot Collective_slots[] = {
    {Py_tp_dealloc, Collective_dealloc},
    {Py_tp_repr, Collective_repr},
    {Py_tp_methods, Collective_methods},
    {Py_tp_getset, Collective_getset},
    {Py_tp_doc, "One rank of a distributed fit (sw_coll)."},
    {0, NULL},
};

static PyType_Spec Collective_spec = {
    .name = "streamwise._sw.Collective",
    .basicsize = sizeof(HandleObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = Collective_slots,
};

/* collective(rank, size, fd_prev, fd_next, timeout_ms) -> Collective */
static PyObject *
sw_collective_py(PyObject *module, PyObject *args)
{
    sw_state *st = PyModule_GetState(module);
    int rank, size, fd_prev, fd_next, timeout_ms;
    sw_coll *c = NULL;
    sw_err err = {0};
    sw_rc rc;

    if (!PyArg_ParseTuple(args, "iiiii", &rank, &size, &fd_prev, &fd_next,
                          &timeout_ms))
        return NULL;
    /* the greeting waits on the neighbours */
    Py_BEGIN_ALLOW_THREADS
    rc = sw_coll_new(rank, size, fd_prev, fd_next, timeout_ms, &c, &err);
    Py_END_ALLOW_THREADS
    if (rc != SW_OK) {
        sw_raise(st, &err);
        return NULL;
    }
    return wrap_handle(st->Collective_Type, c, coll_free);
}

static PyMethodDef coll_functions[] = {
    {"collective", sw_collective_py, METH_VARARGS,
     "collective(rank, size, fd_prev, fd_next, timeout_ms) -> Collective: "
     "fd_next connected to the next rank's fd_prev"},
    {NULL, NULL, 0, NULL},
};

int
sw_ext_coll_setup(PyObject *m, sw_state *st)
{
    if (sw_ext_add_type(m, &Collective_spec, &st->Collective_Type) < 0)
        return -1;
    return PyModule_AddFunctions(m, coll_functions);
}
