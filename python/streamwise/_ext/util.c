/* SPDX-License-Identifier: MIT */
/*
 * util.c - the module functions that hold no handle: the property table,
 * build information, dataset splits and the registry lookup the runner
 * uses.
 */
#include "module.h"

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
        sw_raise(PyModule_GetState(module), &err);
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
    if (csr_arg(PyModule_GetState(module), o, &h, &v, "matrix") < 0)
        goto done;
    dims[0] = v.itype == SW_I32 ? ((const int32_t *)v.indptr)[v.n_rows]
                                : ((const int64_t *)v.indptr)[v.n_rows];
    mask = (PyArrayObject *)PyArray_SimpleNew(1, dims, NPY_UINT8);
    if (mask == NULL)
        goto done;
    if (sw_split_leave_k_out(&v, k, seed, PyArray_DATA(mask), dims[0], &err) !=
        SW_OK) {
        Py_CLEAR(mask);
        sw_raise(PyModule_GetState(module), &err);
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
    Py_BEGIN_ALLOW_THREADS
    rc = sw_registry_resolve(PyBytes_AS_STRING(dir), ref, path, sizeof(path),
                             sha, &version, &err);
    Py_END_ALLOW_THREADS
    Py_DECREF(dir);
    if (rc != SW_OK) {
        sw_raise(st, &err);
        return NULL;
    }
    return Py_BuildValue("(O&sL)", PyUnicode_DecodeFSDefault, path, sha,
                         (long long)version);
}

static PyObject *
sw_build_id_py(PyObject *module, PyObject *Py_UNUSED(ignored))
{
    (void)module;
    return PyUnicode_FromString(sw_build_id());
}

static PyMethodDef util_functions[] = {
    {"split_random", sw_split_random_py, METH_VARARGS,
     "split_random(n, test_fraction, seed) -> uint8 mask"},
    {"split_leave_k_out", sw_split_leave_k_out_py, METH_VARARGS,
     "split_leave_k_out(csr, k, seed) -> uint8 mask"},
    {"conf_props", sw_conf_props_py, METH_NOARGS,
     "The property table: [(name, type, default, accepted, doc)]"},
    {"build_info", sw_build_info_py, METH_NOARGS, "sw_build_info()"},
    {"build_id", sw_build_id_py, METH_NOARGS, "sw_build_id()"},
    {"registry_resolve", sw_registry_resolve_py, METH_VARARGS,
     "registry_resolve(store_dir, ref) -> (path, sha256, version), by the "
     "C lookup the runner uses"},
    {NULL, NULL, 0, NULL},
};

int
sw_ext_util_setup(PyObject *m, sw_state *st)
{
    (void)st;
    return PyModule_AddFunctions(m, util_functions);
}
