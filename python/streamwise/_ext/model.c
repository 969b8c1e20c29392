/* SPDX-License-Identifier: MIT */
/*
 * model.c - the Model type (sw_model): every learner's verbs, bundles and
 * pickling. The functions that make a model are in model_new.c.
 *
 * Lock policy: the header's. Calls that only read the model (predict,
 * save, copy, factors, recommendations, getters) take the read lock and
 * run in parallel with the GIL released; calls that change it (learn,
 * add_classes, set_*, als_iterate, put_rows) take the write lock.
 */
#include "module.h"

PyObject *
wrap_model(sw_state *st, sw_model *m)
{
    ModelObject *self = PyObject_New(ModelObject, st->Model_Type);

    if (self == NULL) {
        sw_model_free(m);
        return NULL;
    }
    self->model = m;
    self->lock_ok = pthread_rwlock_init(&self->lock, NULL) == 0;
    if (!self->lock_ok) {
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
    if (self->lock_ok)
        pthread_rwlock_destroy(&self->lock);
    PyObject_Free(self);
    Py_DECREF(tp);
}

static const char *
kind_name(const sw_model *m)
{
    switch (sw_model_kind_of(m)) {
    case SW_MODEL_LINEAR:
        return "linear";
    case SW_MODEL_ALS:
        return "als";
    case SW_MODEL_GBDT:
        return "gbdt";
    }
    return "?";
}

static PyObject *
Model_repr(ModelObject *self)
{
    PyObject *r;

    model_read_lock(self);
    r = PyUnicode_FromFormat("<streamwise._sw.Model %s, %lld features, %lld "
                             "outputs%s>",
                             kind_name(self->model),
                             (long long)sw_model_n_features(self->model),
                             (long long)sw_model_n_outputs(self->model),
                             sw_model_pipeline_spec(self->model) ? ", bundle"
                                                                 : "");
    model_unlock(self);
    return r;
}

/* to_bytes() -> the .swm file's bytes, as save() would write them */
static PyObject *
Model_to_bytes(ModelObject *self, PyObject *Py_UNUSED(ignored))
{
    unsigned char *buf = NULL;
    size_t len = 0;
    PyObject *out;
    sw_err err = {0};
    sw_rc rc;

    model_read_lock(self);
    Py_BEGIN_ALLOW_THREADS
    rc = sw_model_save_buffer(self->model, &buf, &len, &err);
    Py_END_ALLOW_THREADS
    model_unlock(self);
    if (rc != SW_OK) {
        sw_raise(sw_ext_state((PyObject *)self), &err);
        return NULL;
    }
    out = PyBytes_FromStringAndSize((const char *)buf, (Py_ssize_t)len);
    sw_buffer_free(buf);
    return out;
}

/* Pickling, once for every estimator that holds a Model: the model
 * travels as its file's bytes and is verified (checksums, golden vectors)
 * when it is unpickled, as load() verifies a file. */
static PyObject *
Model_reduce(ModelObject *self, PyObject *Py_UNUSED(ignored))
{
    PyObject *mod = PyType_GetModule(Py_TYPE(self)), *fn, *bytes;

    if (mod == NULL)
        return NULL;
    fn = PyObject_GetAttrString(mod, "load_buffer");
    if (fn == NULL)
        return NULL;
    bytes = Model_to_bytes(self, NULL);
    if (bytes == NULL) {
        Py_DECREF(fn);
        return NULL;
    }
    return Py_BuildValue("(N(N))", fn, bytes);
}

/* learn(X, y) and learn_one(x, y): y holds class numbers for a classifier
 * and values for a regressor. Rows before a failing row stay learned; the
 * exception message names the row and says how many were learned. */
static PyObject *
Model_learn(ModelObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    sw_state *st = sw_ext_state((PyObject *)self);
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
    if (to_rows(st, args[0], sw_model_n_features(self->model), &h, &v) < 0)
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
        y = to_targets(st, args[1], v.n_rows);
        if (y == NULL)
            goto done;
        yp = PyArray_DATA(y);
    }
    model_write_lock(self);
    if (v.n_rows >= GIL_ROWS) {
        Py_BEGIN_ALLOW_THREADS
        rc = sw_linear_learn(self->model, &v, yp, v.n_rows, &n_done, &err);
        Py_END_ALLOW_THREADS
    } else {
        rc = sw_linear_learn(self->model, &v, yp, v.n_rows, &n_done, &err);
    }
    model_unlock(self);
    if (rc != SW_OK) {
        if (n_done > 0) {
            char msg[sizeof(err.msg)];

            snprintf(msg, sizeof(msg), "%.190s (rows 0..%lld were learned)",
                     err.msg, (long long)n_done - 1);
            memcpy(err.msg, msg, sizeof(msg));
        }
        sw_raise(st, &err);
        goto done;
    }
    result = Py_NewRef(Py_None);
done:
    hold_release(&h);
    Py_XDECREF(y);
    return result;
}

/* prequential(X, y[, scores]) -> (predictions, running metric[,
 * scores before learning, (n, n_vectors)]) */
static PyObject *
Model_prequential(ModelObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    sw_state *st = sw_ext_state((PyObject *)self);
    PyArrayObject *y = NULL, *pred = NULL, *metric = NULL, *scores = NULL;
    PyObject *result = NULL;
    npy_intp n, dims[2];
    int want_scores = 0;
    sw_rows v;
    sw_err err = {0};
    hold h;
    sw_rc rc;

    if (nargs != 2 && nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "prequential(X, y[, scores]) "
                                         "takes 2 or 3 arguments");
        return NULL;
    }
    if (nargs == 3 && (want_scores = PyObject_IsTrue(args[2])) < 0)
        return NULL;
    if (to_rows(st, args[0], sw_model_n_features(self->model), &h, &v) < 0)
        goto done;
    y = to_targets(st, args[1], v.n_rows);
    if (y == NULL)
        goto done;
    n = v.n_rows;
    pred = (PyArrayObject *)PyArray_SimpleNew(1, &n, NPY_FLOAT64);
    metric = (PyArrayObject *)PyArray_SimpleNew(1, &n, NPY_FLOAT64);
    if (pred == NULL || metric == NULL)
        goto done;
    if (want_scores) {
        dims[0] = n;
        dims[1] = (npy_intp)sw_linear_n_vectors(self->model);
        scores = (PyArrayObject *)PyArray_SimpleNew(2, dims, NPY_FLOAT64);
        if (scores == NULL)
            goto done;
    }
    model_write_lock(self);
    Py_BEGIN_ALLOW_THREADS
    rc = sw_linear_prequential_scores(
        self->model, &v, PyArray_DATA(y), n, PyArray_DATA(pred),
        scores != NULL ? PyArray_DATA(scores) : NULL,
        scores != NULL ? (int64_t)dims[1] : 0, PyArray_DATA(metric), NULL,
        &err);
    Py_END_ALLOW_THREADS
    model_unlock(self);
    if (rc != SW_OK) {
        sw_raise(st, &err);
        goto done;
    }
    result = scores != NULL ? PyTuple_Pack(3, pred, metric, scores)
                            : PyTuple_Pack(2, pred, metric);
done:
    hold_release(&h);
    Py_XDECREF(y);
    Py_XDECREF(pred);
    Py_XDECREF(metric);
    Py_XDECREF(scores);
    return result;
}

/* predict(X) -> (n_rows,) for one output, (n_rows, n_outputs) otherwise.
 * A 1-D array or a dict gives one row: a float, or a 1-D array. */
static PyObject *
Model_predict(ModelObject *self, PyObject *arg)
{
    sw_state *st = sw_ext_state((PyObject *)self);
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

    if (to_rows(st, arg, sw_model_n_features(self->model), &h, &v) < 0)
        goto done;
    if (one && n_out == 1) {
        double s;

        model_read_lock(self);
        rc = sw_model_predict(self->model, &v, &s, 1, &err);
        model_unlock(self);
        if (rc != SW_OK)
            sw_raise(st, &err);
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
    model_read_lock(self);
    if (v.n_rows >= GIL_ROWS) {
        Py_BEGIN_ALLOW_THREADS
        rc = sw_model_predict(
            self->model, &v, PyArray_DATA(out), v.n_rows * n_out, &err);
        Py_END_ALLOW_THREADS
    } else {
        rc = sw_model_predict(self->model, &v, PyArray_DATA(out),
                              v.n_rows * n_out, &err);
    }
    model_unlock(self);
    if (rc != SW_OK) {
        sw_raise(st, &err);
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
    model_write_lock(self);
    rc = sw_linear_add_classes(self->model, n, &err);
    model_unlock(self);
    return none_or_raise((PyObject *)self, rc, &err);
}

static PyObject *
Model_save(ModelObject *self, PyObject *arg)
{
    PyObject *path = NULL;
    sw_err err = {0};
    sw_rc rc;

    if (!PyUnicode_FSConverter(arg, &path))
        return NULL;
    model_read_lock(self);
    Py_BEGIN_ALLOW_THREADS
    rc = sw_model_save(self->model, PyBytes_AS_STRING(path), &err);
    Py_END_ALLOW_THREADS
    model_unlock(self);
    Py_DECREF(path);
    return none_or_raise((PyObject *)self, rc, &err);
}

static PyObject *
Model_set_metadata(ModelObject *self, PyObject *arg)
{
    const char *json = PyUnicode_AsUTF8(arg);
    sw_err err = {0};
    sw_rc rc;

    if (json == NULL)
        return NULL;
    model_write_lock(self);
    rc = sw_model_set_metadata(self->model, json, &err);
    model_unlock(self);
    return none_or_raise((PyObject *)self, rc, &err);
}

static PyObject *
Model_set_golden(ModelObject *self, PyObject *arg)
{
    sw_state *st = sw_ext_state((PyObject *)self);
    sw_rows v;
    sw_err err = {0};
    hold h;
    sw_rc rc;

    if (to_rows(st, arg, sw_model_n_features(self->model), &h, &v) < 0) {
        hold_release(&h);
        return NULL;
    }
    model_write_lock(self);
    rc = sw_model_set_golden(self->model, &v, &err);
    model_unlock(self);
    hold_release(&h);
    return none_or_raise((PyObject *)self, rc, &err);
}

static PyObject *
Model_copy(ModelObject *self, PyObject *Py_UNUSED(ignored))
{
    sw_model *m = NULL;
    sw_err err = {0};
    sw_rc rc;

    model_read_lock(self);
    rc = sw_model_dup(self->model, &m, &err);
    model_unlock(self);
    if (rc != SW_OK) {
        sw_raise(sw_ext_state((PyObject *)self), &err);
        return NULL;
    }
    return wrap_model(sw_ext_state((PyObject *)self), m);
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
    model_read_lock(self);
    if (want_sigma)
        rc = sw_linear_sigma(self->model, PyArray_DATA(a), n_sigma, &err);
    else
        rc = sw_linear_weights(self->model, PyArray_DATA(a), n_vec * dim, &err);
    model_unlock(self);
    if (rc != SW_OK) {
        Py_DECREF(a);
        sw_raise(sw_ext_state((PyObject *)self), &err);
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
    PyObject *r;

    model_read_lock(self); /* set_metadata frees the old text */
    r = PyUnicode_FromString(sw_model_metadata(self->model));
    model_unlock(self);
    return r;
}

/* The sizes change as a model learns (add_classes, put_rows): read them
 * under the lock like any other part of the model. */
static PyObject *
size_getter(ModelObject *self, int64_t (*size)(const sw_model *))
{
    int64_t v;

    model_read_lock(self);
    v = size(self->model);
    model_unlock(self);
    return PyLong_FromLongLong((long long)v);
}

static PyObject *
Model_get_n_features(ModelObject *self, void *Py_UNUSED(c))
{
    return size_getter(self, sw_model_n_features);
}

static PyObject *
Model_get_n_outputs(ModelObject *self, void *Py_UNUSED(c))
{
    return size_getter(self, sw_model_n_outputs);
}

static PyObject *
Model_get_n_classes(ModelObject *self, void *Py_UNUSED(c))
{
    return size_getter(self, sw_model_n_classes);
}

static PyObject *
Model_get_counts(ModelObject *self, void *Py_UNUSED(c))
{
    int64_t seen, upd;

    model_read_lock(self);
    sw_linear_counts(self->model, &seen, &upd);
    model_unlock(self);
    return Py_BuildValue("LL", (long long)seen, (long long)upd);
}

/* ------------------------------------------------------------------ */
/* als_iterate(user_items, item_users, want_loss) -> loss or None */
static PyObject *
Model_als_iterate(ModelObject *self, PyObject *args)
{
    sw_state *st = sw_ext_state((PyObject *)self);
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
    if (csr_arg(st, ui, &h1, &v1, "user_items") < 0 ||
        csr_arg(st, iu, &h2, &v2, "item_users") < 0)
        goto done;
    model_write_lock(self);
    Py_BEGIN_ALLOW_THREADS
    rc = sw_als_iterate(self->model, &v1, &v2, want_loss ? &loss : NULL, &err);
    Py_END_ALLOW_THREADS
    model_unlock(self);
    if (rc != SW_OK) {
        sw_raise(sw_ext_state((PyObject *)self), &err);
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
    PyObject *r;

    model_read_lock(self);
    r = Py_BuildValue("(LLLi)", (long long)sw_als_n_users(self->model),
                      (long long)sw_als_n_items(self->model),
                      (long long)sw_als_n_factors(self->model),
                      sw_als_has_liked(self->model));
    model_unlock(self);
    return r;
}

static PyObject *
Model_gbdt_info(ModelObject *self, void *Py_UNUSED(c))
{
    return Py_BuildValue("(LL)", (long long)sw_gbdt_n_trees(self->model),
                         (long long)sw_gbdt_best_iteration(self->model));
}

/* gbdt_raw(X, first, n_trees) -> float64 (n_rows,) or (n_rows, K): the raw
 * scores of trees first .. first + n_trees - 1 */
static PyObject *
Model_gbdt_raw(ModelObject *self, PyObject *args)
{
    sw_state *st = sw_ext_state((PyObject *)self);
    PyObject *x, *result = NULL;
    PyArrayObject *out = NULL;
    long long first, n_trees;
    int64_t k = sw_model_n_outputs(self->model);
    npy_intp dims[2];
    sw_rows v;
    sw_err err = {0};
    hold h;
    sw_rc rc;

    if (!PyArg_ParseTuple(args, "OLL:gbdt_raw", &x, &first, &n_trees))
        return NULL;
    if (to_rows(st, x, sw_model_n_features(self->model), &h, &v) < 0)
        goto done;
    dims[0] = v.n_rows;
    dims[1] = k;
    out = (PyArrayObject *)PyArray_SimpleNew(k == 1 ? 1 : 2, dims,
                                             NPY_FLOAT64);
    if (out == NULL)
        goto done;
    model_read_lock(self);
    Py_BEGIN_ALLOW_THREADS
    rc = sw_gbdt_predict_raw(self->model, &v, first, n_trees,
                             PyArray_DATA(out), v.n_rows * k, &err);
    Py_END_ALLOW_THREADS
    model_unlock(self);
    if (rc != SW_OK) {
        sw_raise(st, &err);
        goto done;
    }
    result = (PyObject *)out;
    out = NULL;
done:
    hold_release(&h);
    Py_XDECREF(out);
    return result;
}

/* gbdt_importance(by_gain) -> float64 array (n_features) */
static PyObject *
Model_gbdt_importance(ModelObject *self, PyObject *arg)
{
    int by_gain = PyObject_IsTrue(arg);
    npy_intp n = sw_model_n_features(self->model);
    PyArrayObject *a;
    sw_err err = {0};
    sw_rc rc;

    if (by_gain < 0)
        return NULL;
    a = (PyArrayObject *)PyArray_SimpleNew(1, &n, NPY_FLOAT64);
    if (a == NULL)
        return NULL;
    model_read_lock(self);
    rc = sw_gbdt_importance(self->model,
                            by_gain ? SW_IMPORTANCE_GAIN : SW_IMPORTANCE_SPLITS,
                            PyArray_DATA(a), n, &err);
    model_unlock(self);
    if (rc != SW_OK) {
        Py_DECREF(a);
        sw_raise(sw_ext_state((PyObject *)self), &err);
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
    model_read_lock(self);
    Py_BEGIN_ALLOW_THREADS
    rc = sw_gbdt_export_c(self->model, dir, name, per_file, &n_files, &err);
    Py_END_ALLOW_THREADS
    model_unlock(self);
    if (rc != SW_OK) {
        sw_raise(sw_ext_state((PyObject *)self), &err);
        return NULL;
    }
    return PyLong_FromLong(n_files);
}

/* als_factors(side) -> float32 array (rows, k), a copy */
static PyObject *
Model_als_factors(ModelObject *self, PyObject *arg)
{
    sw_side side = PyLong_AsLong(arg) ? SW_ITEMS : SW_USERS;
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
    model_read_lock(self);
    rc = sw_als_get_factors(self->model, side, PyArray_DATA(a),
                            dims[0] * dims[1], &err);
    model_unlock(self);
    if (rc != SW_OK) {
        Py_DECREF(a);
        sw_raise(sw_ext_state((PyObject *)self), &err);
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
    model_write_lock(self);
    rc = sw_als_set_factors(self->model, side, PyArray_DATA(a), PyArray_SIZE(a),
                            &err);
    model_unlock(self);
    Py_DECREF(a);
    return none_or_raise((PyObject *)self, rc, &err);
}

/* als_solve_rows(side, csr) -> float32 (n_rows, k) */
static PyObject *
Model_als_solve_rows(ModelObject *self, PyObject *args)
{
    sw_state *st = sw_ext_state((PyObject *)self);
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
    if (csr_arg(st, o, &h, &v, "rows") < 0)
        goto done;
    dims[0] = v.n_rows;
    dims[1] = sw_als_n_factors(self->model);
    out = (PyArrayObject *)PyArray_SimpleNew(2, dims, NPY_FLOAT32);
    if (out == NULL)
        goto done;
    model_read_lock(self);
    Py_BEGIN_ALLOW_THREADS
    rc = sw_als_solve_rows(
        self->model, side, &v, PyArray_DATA(out), dims[0] * dims[1], &err);
    Py_END_ALLOW_THREADS
    model_unlock(self);
    if (rc != SW_OK) {
        sw_raise(sw_ext_state((PyObject *)self), &err);
        Py_CLEAR(out);
    }
done:
    hold_release(&h);
    return (PyObject *)out;
}

/* als_solve_block(csr, other, factors) -> float32 (n_rows, k): the
 * block's new factors (a distributed sweep's share; factors is not
 * changed) */
static PyObject *
Model_als_solve_block(ModelObject *self, PyObject *args)
{
    sw_state *st = sw_ext_state((PyObject *)self);
    PyObject *o, *other_o, *fac_o;
    PyArrayObject *other = NULL, *out = NULL;
    hold h;
    sw_rows v;
    sw_err err = {0};
    sw_rc rc;
    int64_t k = sw_als_n_factors(self->model);

    memset(&h, 0, sizeof(h));
    if (!PyArg_ParseTuple(args, "OOO", &o, &other_o, &fac_o))
        return NULL;
    if (csr_arg(st, o, &h, &v, "rows") < 0)
        goto done;
    other = (PyArrayObject *)PyArray_FROM_OTF(other_o, NPY_FLOAT32,
                                              NPY_ARRAY_IN_ARRAY);
    /* a fresh copy: the solve writes the new factors over it */
    out = (PyArrayObject *)PyArray_FROM_OTF(
        fac_o, NPY_FLOAT32, NPY_ARRAY_IN_ARRAY | NPY_ARRAY_ENSURECOPY);
    if (other == NULL || out == NULL)
        goto fail;
    if (PyArray_NDIM(other) != 2 || PyArray_DIM(other, 1) != k ||
        PyArray_NDIM(out) != 2 || PyArray_DIM(out, 1) != k) {
        sw_raise_fmt(st, SW_E_SHAPE,
                     "als_solve_block: factors must be (n, %lld) arrays",
                     (long long)k);
        goto fail;
    }
    model_read_lock(self);
    Py_BEGIN_ALLOW_THREADS
    rc = sw_als_solve_block(self->model, &v, PyArray_DATA(other),
                            PyArray_DIM(other, 0), PyArray_DATA(out),
                            PyArray_SIZE(out), &err);
    Py_END_ALLOW_THREADS
    model_unlock(self);
    if (rc == SW_OK)
        goto done;
    sw_raise(st, &err);
fail:
    Py_CLEAR(out);
done:
    Py_XDECREF(other);
    hold_release(&h);
    return (PyObject *)out;
}

/* als_put_rows(side, ids, vecs) */
static PyObject *
Model_als_put_rows(ModelObject *self, PyObject *args)
{
    sw_state *st = sw_ext_state((PyObject *)self);
    int side, bad;
    PyObject *ids_o, *vecs_o;
    PyArrayObject *ids = NULL, *vecs = NULL;
    PyObject *result = NULL;
    sw_err err = {0};
    sw_rc rc;

    if (!PyArg_ParseTuple(args, "iOO", &side, &ids_o, &vecs_o))
        return NULL;
    ids = opt_array(st, ids_o, NPY_INT64, &bad);
    if (bad)
        goto done;
    vecs = opt_array(st, vecs_o, NPY_FLOAT32, &bad);
    if (bad)
        goto done;
    if (ids == NULL || vecs == NULL ||
        PyArray_SIZE(vecs) !=
            PyArray_SIZE(ids) * sw_als_n_factors(self->model)) {
        sw_raise_fmt(st, SW_E_SHAPE, "put_rows: need one factor row per id");
        goto done;
    }
    model_write_lock(self);
    rc = sw_als_put_rows(self->model, side, PyArray_DATA(ids),
                         PyArray_SIZE(ids), PyArray_DATA(vecs), &err);
    model_unlock(self);
    result = none_or_raise((PyObject *)self, rc, &err);
done:
    Py_XDECREF(ids);
    Py_XDECREF(vecs);
    return result;
}

static PyObject *
Model_als_set_liked(ModelObject *self, PyObject *o)
{
    sw_state *st = sw_ext_state((PyObject *)self);
    hold h;
    sw_rows v;
    sw_err err = {0};
    sw_rc rc;

    if (csr_arg(st, o, &h, &v, "user_items") < 0) {
        hold_release(&h);
        return NULL;
    }
    model_write_lock(self);
    rc = sw_als_set_liked(self->model, &v, &err);
    model_unlock(self);
    hold_release(&h);
    return none_or_raise((PyObject *)self, rc, &err);
}

/* als_recommend(ids, vecs, n, flags, liked, exclude, candidates)
 * -> (items int64 (n_q, n), scores float32 (n_q, n)) */
static PyObject *
Model_als_recommend(ModelObject *self, PyObject *args)
{
    sw_state *st = sw_ext_state((PyObject *)self);
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
    ids = opt_array(st, ids_o, NPY_INT64, &bad);
    if (bad)
        goto done;
    vecs = opt_array(st, vecs_o, NPY_FLOAT32, &bad);
    if (bad)
        goto done;
    excl = opt_array(st, excl_o, NPY_UINT8, &bad);
    if (bad)
        goto done;
    cand = opt_array(st, cand_o, NPY_INT64, &bad);
    if (bad)
        goto done;
    if (liked_o != Py_None && csr_arg(st, liked_o, &h, &lv, "user_items") < 0)
        goto done;
    if (excl != NULL && PyArray_SIZE(excl) != sw_als_n_items(self->model)) {
        sw_raise_fmt(st, SW_E_SHAPE,
                     "exclude mask has %zd entries, the model %lld items",
                     (Py_ssize_t)PyArray_SIZE(excl),
                     (long long)sw_als_n_items(self->model));
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
    model_read_lock(self);
    Py_BEGIN_ALLOW_THREADS
    rc = sw_als_recommend(
        self->model, ids ? PyArray_DATA(ids) : NULL, dims[0],
        vecs ? PyArray_DATA(vecs) : NULL, n, flags,
        liked_o != Py_None ? &lv : NULL, excl ? PyArray_DATA(excl) : NULL,
        cand ? PyArray_DATA(cand) : NULL, cand ? PyArray_SIZE(cand) : 0,
        PyArray_DATA(items), PyArray_DATA(scores), &err);
    Py_END_ALLOW_THREADS
    model_unlock(self);
    if (rc != SW_OK) {
        sw_raise(sw_ext_state((PyObject *)self), &err);
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
    sw_state *st = sw_ext_state((PyObject *)self);
    PyObject *ids_o, *cand_o, *result = NULL;
    PyArrayObject *ids = NULL, *cand = NULL, *out = NULL, *scores = NULL;
    long long n;
    int side, bad;
    npy_intp dims[2];
    sw_err err = {0};
    sw_rc rc;

    if (!PyArg_ParseTuple(args, "iOLO", &side, &ids_o, &n, &cand_o))
        return NULL;
    ids = opt_array(st, ids_o, NPY_INT64, &bad);
    if (bad || ids == NULL) {
        if (!bad)
            sw_raise_fmt(st, SW_E_INVAL, "similar: ids required");
        goto done;
    }
    cand = opt_array(st, cand_o, NPY_INT64, &bad);
    if (bad)
        goto done;
    dims[0] = PyArray_SIZE(ids);
    dims[1] = n;
    out = (PyArrayObject *)PyArray_SimpleNew(2, dims, NPY_INT64);
    scores = (PyArrayObject *)PyArray_SimpleNew(2, dims, NPY_FLOAT32);
    if (out == NULL || scores == NULL)
        goto done;
    model_read_lock(self);
    Py_BEGIN_ALLOW_THREADS
    rc = sw_als_similar(
        self->model, side, PyArray_DATA(ids), dims[0], n,
        cand ? PyArray_DATA(cand) : NULL, cand ? PyArray_SIZE(cand) : 0,
        PyArray_DATA(out), PyArray_DATA(scores), &err);
    Py_END_ALLOW_THREADS
    model_unlock(self);
    if (rc != SW_OK) {
        sw_raise(sw_ext_state((PyObject *)self), &err);
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
    sw_state *st = sw_ext_state((PyObject *)self);
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
    if ((train_o != Py_None && csr_arg(st, train_o, &h1, &v1, "train") < 0) ||
        csr_arg(st, test_o, &h2, &v2, "test") < 0)
        goto done;
    model_read_lock(self);
    Py_BEGIN_ALLOW_THREADS
    rc = sw_ranking_metrics(self->model, train_o != Py_None ? &v1 : NULL, &v2, k,
                           out, &n_users, &err);
    Py_END_ALLOW_THREADS
    model_unlock(self);
    if (rc != SW_OK) {
        sw_raise(sw_ext_state((PyObject *)self), &err);
        goto done;
    }
    result = Py_BuildValue("(ddddL)", out[0], out[1], out[2], out[3],
                           (long long)n_users);
done:
    hold_release(&h1);
    hold_release(&h2);
    return result;
}

static PyObject *
Model_set_pipeline(ModelObject *self, PyObject *args)
{
    sw_state *st = sw_ext_state((PyObject *)self);
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
    model_write_lock(self);
    handle_lock(((PipelineObject *)po)->lock);
    rc = sw_model_set_pipeline(self->model, ((PipelineObject *)po)->p,
                               inputs, (int)n, sparse, &err);
    PyThread_release_lock(((PipelineObject *)po)->lock);
    model_unlock(self);
    out = none_or_raise((PyObject *)self, rc, &err);
done:
    PyMem_Free(inputs);
    Py_XDECREF(fast);
    return out;
}

static PyObject *
Model_set_golden_events(ModelObject *self, PyObject *list)
{
    sw_state *st = sw_ext_state((PyObject *)self);
    PyObject *arrs[2 * SW_MAX_COLUMNS], *out = NULL;
    Py_ssize_t n_arrs = 0;
    sw_column *cols = NULL;
    sw_batch b;
    sw_err err = {0};
    sw_rc rc;

    if (batch_arg(st, list, SW_MAX_COLUMNS, &b, &cols, arrs, &n_arrs) < 0)
        goto done;
    model_write_lock(self);
    rc = sw_model_set_golden_events(self->model, &b, &err);
    model_unlock(self);
    out = none_or_raise((PyObject *)self, rc, &err);
done:
    batch_release(cols, arrs, n_arrs);
    return out;
}

static PyObject *
Model_predict_features(ModelObject *self, PyObject *args)
{
    sw_state *st = sw_ext_state((PyObject *)self);
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
        sw_raise_fmt(st, SW_E_SHAPE,
                     "predict_features: expected dense rows of %d columns and "
                     "%d hashed indices a row",
                     sw_pipeline_n_dense(p), sw_pipeline_n_hashed(p));
        goto done;
    }
    dims[0] = (npy_intp)n;
    dims[1] = (npy_intp)sw_model_n_outputs(self->model);
    res = (PyArrayObject *)PyArray_SimpleNew(dims[1] > 1 ? 2 : 1, dims,
                                             NPY_FLOAT64);
    if (res == NULL)
        goto done;
    model_read_lock(self);
    handle_lock(((PipelineObject *)po)->lock);
    Py_BEGIN_ALLOW_THREADS
    rc = sw_model_predict_features(self->model, p, PyArray_DATA(dense),
                                   PyArray_DATA(hashed), n, PyArray_DATA(res),
                                   (int64_t)PyArray_SIZE(res), &err);
    Py_END_ALLOW_THREADS
    PyThread_release_lock(((PipelineObject *)po)->lock);
    model_unlock(self);
    if (rc != SW_OK) {
        sw_raise(st, &err);
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
    const char *spec;
    const char *const *names;
    PyObject *list = NULL, *r = NULL;
    int n, i, sparse;

    model_read_lock(self);
    spec = sw_model_pipeline_spec(self->model);
    if (spec == NULL) {
        r = Py_NewRef(Py_None);
        goto done;
    }
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
    if (list != NULL)
        r = Py_BuildValue("(sNO)", spec, list, sparse ? Py_True : Py_False);
done:
    model_unlock(self);
    return r;
}

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
     "prequential(X, y[, scores]) -> (predictions, running metric[, "
     "scores]): test, then "
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
    {"to_bytes", (PyCFunction)Model_to_bytes, METH_NOARGS,
     "to_bytes() -> the bytes of the .swm file save() would write."},
    {"__reduce__", (PyCFunction)Model_reduce, METH_NOARGS,
     "Pickle as the model file's bytes (verified when unpickled)."},
    {"__copy__", (PyCFunction)Model_copy, METH_NOARGS, "A deep copy."},
    {"__deepcopy__", (PyCFunction)Model_copy, METH_O,
     "A deep copy (sw_model_dup, no file round trip)."},
    {"als_iterate", (PyCFunction)Model_als_iterate, METH_VARARGS,
     "als_iterate(user_items, item_users, want_loss) -> loss or None"},
    {"gbdt_raw", (PyCFunction)Model_gbdt_raw, METH_VARARGS,
     "gbdt_raw(X, first, n_trees): raw scores of those trees (with the "
     "base score when first is 0)."},
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
    {"als_solve_block", (PyCFunction)Model_als_solve_block, METH_VARARGS,
     "als_solve_block(csr, other, factors) -> float32 (n, k): one block of "
     "a sweep"},
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
    {Py_tp_repr, Model_repr},
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

int
sw_ext_model_setup(PyObject *m, sw_state *st)
{
    return sw_ext_add_type(m, &Model_spec, &st->Model_Type);
}
