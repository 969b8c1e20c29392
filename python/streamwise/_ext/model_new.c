/* SPDX-License-Identifier: MIT */
/*
 * model_new.c - the module functions that make a Model: linear_new,
 * als_new, gbdt_fit (with its progress callback), load and load_buffer;
 * and the two that read one without keeping it: inspect and
 * predict_latency.
 */
#include "module.h"

#include <time.h>

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
        sw_raise(st, &err);
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
    Py_BEGIN_ALLOW_THREADS
    rc = sw_model_load(PyBytes_AS_STRING(path), &m, &err);
    Py_END_ALLOW_THREADS
    Py_DECREF(path);
    if (rc != SW_OK) {
        sw_raise(st, &err);
        return NULL;
    }
    return wrap_model(st, m);
}

/* load_buffer(bytes) -> Model, verified as load() verifies a file */
static PyObject *
sw_load_buffer_py(PyObject *module, PyObject *arg)
{
    sw_state *st = PyModule_GetState(module);
    sw_model *m = NULL;
    Py_buffer buf;
    sw_err err = {0};
    sw_rc rc;

    if (PyObject_GetBuffer(arg, &buf, PyBUF_SIMPLE) < 0)
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    rc = sw_model_load_buffer(buf.buf, (size_t)buf.len, &m, &err);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&buf);
    if (rc != SW_OK) {
        sw_raise(st, &err);
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
        sw_raise(st, &err);
    else
        text = PyUnicode_DecodeUTF8(buf, (Py_ssize_t)len, "replace");
    free(buf); /* open_memstream's buffer comes from malloc */
    return text;
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
        sw_raise(st, &err);
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

/* gbdt_fit(conf, X, y, X_valid, y_valid, init, rounds, progress,
 * row_ids, coll) -> (Model, validation losses): X dense float32/float64,
 * NaN missing; X_valid, y_valid, init and progress may be None. row_ids
 * (int64) and coll (a Collective): this rank's part of a distributed fit
 * (sw_gbdt_fit_shard); None for a fit alone. */
static PyObject *
sw_gbdt_fit_py(PyObject *module, PyObject *args)
{
    sw_state *st = PyModule_GetState(module);
    PyObject *conf_d, *X_o, *y_o, *Xv_o, *yv_o, *init_o, *result = NULL;
    PyObject *ids_o = Py_None, *coll_o = Py_None;
    fit_progress prog = {Py_None, 0};
    PyArrayObject *y = NULL, *yv = NULL, *curve = NULL, *ids = NULL;
    HandleObject *coll_h = NULL;
    sw_coll *coll = NULL;
    const sw_model *init = NULL;
    ModelObject *init_m = NULL;
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
    if (!PyArg_ParseTuple(args, "O!OOOOOL|OOO", &PyDict_Type, &conf_d, &X_o,
                          &y_o, &Xv_o, &yv_o, &init_o, &rounds, &prog.fn,
                          &ids_o, &coll_o))
        return NULL;
    if (coll_o != Py_None &&
        !PyObject_TypeCheck(coll_o, st->Collective_Type)) {
        PyErr_SetString(PyExc_TypeError, "coll must be a Collective");
        return NULL;
    }
    if (init_o != Py_None) {
        if (!PyObject_TypeCheck(init_o, st->Model_Type)) {
            PyErr_SetString(PyExc_TypeError, "init must be a Model");
            return NULL;
        }
        init_m = (ModelObject *)init_o;
        init = init_m->model;
    }
    if (to_rows(st, X_o, 0, &h, &xv) < 0)
        goto done;
    y = (PyArrayObject *)PyArray_FROM_OTF(y_o, NPY_FLOAT64, NPY_ARRAY_IN_ARRAY);
    if (y == NULL)
        goto done;
    if (PyArray_SIZE(y) != xv.n_rows) {
        sw_raise_fmt(st, SW_E_SHAPE, "%lld labels for %lld rows",
                     (long long)PyArray_SIZE(y), (long long)xv.n_rows);
        goto done;
    }
    if (ids_o != Py_None) {
        ids = (PyArrayObject *)PyArray_FROM_OTF(ids_o, NPY_INT64,
                                                NPY_ARRAY_IN_ARRAY);
        if (ids == NULL)
            goto done;
        if (PyArray_SIZE(ids) != xv.n_rows) {
            sw_raise_fmt(st, SW_E_SHAPE, "%lld row ids for %lld rows",
                         (long long)PyArray_SIZE(ids), (long long)xv.n_rows);
            goto done;
        }
    }
    if (Xv_o != Py_None) {
        if (to_rows(st, Xv_o, 0, &hv, &xvv) < 0)
            goto done;
        yv = (PyArrayObject *)PyArray_FROM_OTF(yv_o, NPY_FLOAT64,
                                               NPY_ARRAY_IN_ARRAY);
        if (yv == NULL)
            goto done;
        if (PyArray_SIZE(yv) != xvv.n_rows) {
            sw_raise_fmt(st, SW_E_SHAPE, "%lld validation labels for %lld rows",
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
    if (coll_o != Py_None) {
        coll_h = (HandleObject *)coll_o;
        if ((coll = handle_enter(coll_h, "collective")) == NULL) {
            coll_h = NULL;
            goto done;
        }
    }
    if (init_m != NULL)
        model_read_lock(init_m); /* continued training reads it */
    Py_BEGIN_ALLOW_THREADS
    rc = sw_gbdt_fit_shard(conf, &xv, PyArray_DATA(y),
                           ids ? PyArray_DATA(ids) : NULL, coll,
                           yv ? &xvv : NULL, yv ? PyArray_DATA(yv) : NULL,
                           init, PyArray_DATA(curve), gbdt_progress, &prog, &m,
                           &err);
    Py_END_ALLOW_THREADS
    if (init_m != NULL)
        model_unlock(init_m);
    if (coll_h != NULL) {
        handle_leave(coll_h);
        coll_h = NULL;
    }
    if (rc != SW_OK) {
        if (!prog.failed || !PyErr_Occurred())
            sw_raise(st, &err);
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
    Py_XDECREF(ids);
    if (coll_h != NULL)
        handle_leave(coll_h);
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
        sw_raise_fmt(st, SW_E_SHAPE, "X: rows of %lld columns expected",
                     (long long)sw_model_n_features(m));
        return NULL;
    }
    n = PyArray_DIM(x, 0);
    out = (PyArrayObject *)PyArray_SimpleNew(1, &n, NPY_INT64);
    if (out == NULL) {
        Py_DECREF(x);
        return NULL;
    }
    model_read_lock((ModelObject *)mo);
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
            model_unlock((ModelObject *)mo);
            Py_DECREF(x);
            Py_DECREF(out);
            sw_raise(st, &err);
            return NULL;
        }
        clock_gettime(CLOCK_MONOTONIC, &b);
        ((int64_t *)PyArray_DATA(out))[i] =
            (int64_t)(b.tv_sec - a.tv_sec) * 1000000000 +
            (b.tv_nsec - a.tv_nsec);
    }
    model_unlock((ModelObject *)mo);
    Py_DECREF(x);
    return (PyObject *)out;
}

static PyMethodDef model_functions[] = {
    {"linear_new", sw_linear_new_py, METH_VARARGS,
     "linear_new(conf, n_features, n_classes) -> Model"},
    {"als_new", sw_als_new_py, METH_VARARGS,
     "als_new(conf, n_users, n_items) -> Model"},
    {"gbdt_fit", sw_gbdt_fit_py, METH_VARARGS,
     "gbdt_fit(conf, X, y, X_valid, y_valid, init, rounds[, progress, "
     "row_ids, coll]) -> (Model, validation losses)"},
    {"load", sw_load_py, METH_O, "load(path) -> Model (verified)"},
    {"load_buffer", sw_load_buffer_py, METH_O,
     "load_buffer(bytes) -> Model (verified as load verifies a file)"},
    {"inspect", sw_inspect_py, METH_O, "inspect(path) -> str"},
    {"predict_latency", sw_predict_latency_py, METH_VARARGS,
     "predict_latency(model, X) -> ns per row, each scored alone in C "
     "(one output per row)"},
    {NULL, NULL, 0, NULL},
};

int
sw_ext_model_new_setup(PyObject *m, sw_state *st)
{
    (void)st;
    return PyModule_AddFunctions(m, model_functions);
}
