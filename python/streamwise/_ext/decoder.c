/* SPDX-License-Identifier: MIT */
/*
 * decoder.c - the Decoder type (sw_json_decoder): message bytes -> event
 * columns by a pipeline's events schema, from JSON, or from Avro once
 * avro() is called. json_decoder() makes one; KafkaSource.decode uses it.
 */
#include "module.h"

static void
decoder_free(void *p)
{
    sw_json_decoder_free(p);
}

static void
Decoder_dealloc(HandleObject *self)
{
    handle_dealloc(self, decoder_free);
}

static PyObject *
Decoder_close(HandleObject *self, PyObject *Py_UNUSED(ignored))
{
    return handle_close(self, decoder_free);
}

static PyObject *
Decoder_repr(HandleObject *self)
{
    sw_json_decoder *d = self->ptr;

    if (d == NULL)
        return PyUnicode_FromString("<streamwise._sw.Decoder closed>");
    return PyUnicode_FromFormat("<streamwise._sw.Decoder %d fields>",
                                sw_json_decoder_n_fields(d));
}

/* avro(reader_schema_json, framing, [(schema_id, writer_json)]): read Avro
 * records from now on */
static PyObject *
Decoder_avro(HandleObject *self, PyObject *args)
{
    sw_state *st = sw_ext_state((PyObject *)self);
    PyObject *writers;
    const char *reader;
    int framing;
    sw_json_decoder *d;
    sw_err err = {0};
    sw_rc rc;
    Py_ssize_t i;

    if (!PyArg_ParseTuple(args, "siO!", &reader, &framing, &PyList_Type,
                          &writers))
        return NULL;
    if (framing != SW_FRAMING_RAW && framing != SW_FRAMING_CONFLUENT)
        return sw_raise_fmt(st, SW_E_INVAL,
                            "avro framing %d: FRAMING_RAW or "
                            "FRAMING_CONFLUENT expected",
                            framing);
    if ((d = handle_enter(self, "decoder")) == NULL)
        return NULL;
    rc = sw_json_decoder_set_avro(d, reader, (sw_framing)framing, &err);
    for (i = 0; rc == SW_OK && i < PyList_GET_SIZE(writers); i++) {
        int id;
        const char *w;

        if (!PyArg_ParseTuple(PyList_GET_ITEM(writers, i), "is", &id, &w)) {
            handle_leave(self);
            return NULL;
        }
        rc = sw_json_decoder_add_avro_writer(d, id, w, &err);
    }
    handle_leave(self);
    if (rc != SW_OK) {
        sw_raise(st, &err);
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyMethodDef Decoder_methods[] = {
    {"avro", (PyCFunction)Decoder_avro, METH_VARARGS,
     "avro(reader_schema, framing, [(id, writer_schema)]): decode Avro"},
    {"close", (PyCFunction)Decoder_close, METH_NOARGS, "close()"},
    {"__enter__", handle_self, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)Decoder_close, METH_VARARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot Decoder_slots[] = {
    {Py_tp_dealloc, Decoder_dealloc},
    {Py_tp_repr, Decoder_repr},
    {Py_tp_methods, Decoder_methods},
    {Py_tp_doc, "An event decoder (sw_json_decoder), JSON or Avro."},
    {0, NULL},
};

static PyType_Spec Decoder_spec = {
    .name = "streamwise._sw.Decoder",
    .basicsize = sizeof(HandleObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = Decoder_slots,
};

/* json_decoder(events_schema_json) -> Decoder */
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
        sw_raise(st, &err);
        return NULL;
    }
    return wrap_handle(st->Decoder_Type, d, decoder_free);
}

static PyMethodDef decoder_functions[] = {
    {"json_decoder", sw_json_decoder_py, METH_O,
     "json_decoder(events_schema_json) -> Decoder"},
    {NULL, NULL, 0, NULL},
};

int
sw_ext_decoder_setup(PyObject *m, sw_state *st)
{
    if (sw_ext_add_type(m, &Decoder_spec, &st->Decoder_Type) < 0)
        return -1;
    return PyModule_AddFunctions(m, decoder_functions);
}
