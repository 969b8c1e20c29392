/* SPDX-License-Identifier: MIT */
/*
 * module.c - streamwise._sw: module state, exceptions, the core's enums and
 * multi-phase init. The objects live in the other files (see module.h).
 */
#define SW_EXT_MODULE_C
#include "module.h"

#include <stdarg.h>

sw_state *
sw_ext_state(PyObject *obj)
{
    return PyType_GetModuleState(Py_TYPE(obj));
}

sw_state *
sw_ext_module_state(PyObject *mod)
{
    return PyModule_GetState(mod);
}

void
sw_raise(sw_state *st, const sw_err *err)
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

PyObject *
none_or_raise(PyObject *self, sw_rc rc, const sw_err *err)
{
    if (rc == SW_OK)
        Py_RETURN_NONE;
    sw_raise(sw_ext_state(self), err);
    return NULL;
}

PyObject *
sw_raise_fmt(sw_state *st, sw_rc rc, const char *fmt, ...)
{
    sw_err err = {0};
    va_list ap;

    /* PyOS_vsnprintf, not PyErr_FormatV: the message gets the code's name
     * appended as the core's messages do, so both read alike. */
    va_start(ap, fmt);
    PyOS_vsnprintf(err.msg, sizeof(err.msg), fmt, ap);
    va_end(ap);
    err.rc = rc;
    sw_raise(st, &err);
    return NULL;
}

int
sw_ext_add_type(PyObject *m, PyType_Spec *spec, PyTypeObject **slot)
{
    *slot = (PyTypeObject *)PyType_FromModuleAndSpec(m, spec, NULL);
    if (*slot == NULL)
        return -1;
    return PyModule_AddType(m, *slot);
}

/* ------------------------------------------------------------------ */
/* Exceptions                                                           */
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

        /* Each also derives from the builtin a Python user would catch
         * for the same mistake. */
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

/* ------------------------------------------------------------------ */
/* The core's enums, so that Python writes names, not numbers           */
/* ------------------------------------------------------------------ */

/* PyModule_AddObjectRef, stealing obj (PyModule_Add is 3.13's). */
static int
add_steal(PyObject *m, const char *name, PyObject *obj)
{
    int rc;

    if (obj == NULL)
        return -1;
    rc = PyModule_AddObjectRef(m, name, obj);
    Py_DECREF(obj);
    return rc;
}

static int
add_enums(PyObject *m)
{
    static const struct {
        const char *name;
        long value;
    } ints[] = {
        {"COL_I64", SW_COL_I64},
        {"COL_I32", SW_COL_I32},
        {"COL_I8", SW_COL_I8},
        {"COL_F64", SW_COL_F64},
        {"COL_F32", SW_COL_F32},
        {"COL_BOOL", SW_COL_BOOL},
        {"COL_STR", SW_COL_STR},
        {"INVALID_MISSING", SW_INVALID_MISSING},
        {"INVALID_TYPE", SW_INVALID_TYPE},
        {"INVALID_NAN", SW_INVALID_NAN},
        {"INVALID_TIME", SW_INVALID_TIME},
        {"MODEL_LINEAR", SW_MODEL_LINEAR},
        {"MODEL_ALS", SW_MODEL_ALS},
        {"MODEL_GBDT", SW_MODEL_GBDT},
        {"USERS", SW_USERS},
        {"ITEMS", SW_ITEMS},
        {"REC_FILTER_LIKED", SW_REC_FILTER_LIKED},
        {"POINT_EDGE", SW_POINT_EDGE},
        {"POINT_OFFSET", SW_POINT_OFFSET},
        {"POINT_TIME", SW_POINT_TIME},
        {"FRAMING_RAW", SW_FRAMING_RAW},
        {"FRAMING_CONFLUENT", SW_FRAMING_CONFLUENT},
        {"H5_BY_ROW", SW_H5_BY_ROW},
        {"H5_BY_TIME", SW_H5_BY_TIME},
        {"C_VERSION", SW_VERSION},
        {"FORMAT_MAJOR", SW_FORMAT_MAJOR},
        {"FORMAT_MINOR", SW_FORMAT_MINOR},
    };
    PyObject *names;
    size_t i;
    int k;

    for (i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
        if (PyModule_AddIntConstant(m, ints[i].name, ints[i].value) < 0)
            return -1;
    }
    /* INVALID_REASONS[code] and DEAD_REASONS[code]: the words the core
     * uses for them, so no table of them is written again in Python. */
    names = Py_BuildValue("(sssss)", "", sw_invalid_reason(SW_INVALID_MISSING),
                          sw_invalid_reason(SW_INVALID_TYPE),
                          sw_invalid_reason(SW_INVALID_NAN),
                          sw_invalid_reason(SW_INVALID_TIME));
    if (add_steal(m, "INVALID_REASONS", names) < 0)
        return -1;
    for (k = 0; sw_dead_reasons[k] != NULL; k++)
        ;
    names = PyTuple_New(k);
    if (names == NULL)
        return -1;
    for (i = 0; i < (size_t)k; i++) {
        PyObject *s = PyUnicode_FromString(sw_dead_reasons[i]);

        if (s == NULL) {
            Py_DECREF(names);
            return -1;
        }
        PyTuple_SET_ITEM(names, (Py_ssize_t)i, s);
    }
    return add_steal(m, "DEAD_REASONS", names);
}

/* ------------------------------------------------------------------ */
/* Module state and multi-phase init                                    */
/* ------------------------------------------------------------------ */

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
    if (add_exceptions(m, st) < 0 || add_enums(m) < 0 ||
        sw_ext_model_setup(m, st) < 0 || sw_ext_model_new_setup(m, st) < 0 ||
        sw_ext_pipeline_setup(m, st) < 0 ||
        sw_ext_kafka_setup(m, st) < 0 || sw_ext_decoder_setup(m, st) < 0 ||
        sw_ext_hdf5_setup(m, st) < 0 || sw_ext_util_setup(m, st) < 0 ||
        sw_ext_coll_setup(m, st) < 0)
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
    Py_VISIT(st->RowBuffer_Type);
    Py_VISIT(st->KafkaSource_Type);
    Py_VISIT(st->KafkaSink_Type);
    Py_VISIT(st->Decoder_Type);
    Py_VISIT(st->H5Source_Type);
    Py_VISIT(st->H5Writer_Type);
    Py_VISIT(st->Collective_Type);
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
    Py_CLEAR(st->RowBuffer_Type);
    Py_CLEAR(st->KafkaSource_Type);
    Py_CLEAR(st->KafkaSink_Type);
    Py_CLEAR(st->Decoder_Type);
    Py_CLEAR(st->H5Source_Type);
    Py_CLEAR(st->H5Writer_Type);
    Py_CLEAR(st->Collective_Type);
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
