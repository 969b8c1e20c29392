/* SPDX-License-Identifier: MIT */
/*
 * kafka.c - KafkaSource (sw_kafka_source: replay by assign, or live in a
 * consumer group) and KafkaSink (sw_kafka_sink), with kafka_open,
 * kafka_subscribe and kafka_sink_open to make them.
 *
 * Each is used by one call at a time (its lock), releases the GIL while
 * librdkafka waits, and is closed by close(), by a with block or when it
 * is collected.
 */
#include "module.h"

#define MAX_CONF 128 /* librdkafka properties: names and values */

static void
source_free(void *p)
{
    sw_kafka_source_free(p);
}

static void
sink_free(void *p)
{
    sw_kafka_sink_free(p);
}

/* ------------------------------------------------------------------ */
/* KafkaSource                                                          */
/* ------------------------------------------------------------------ */

static void
KafkaSource_dealloc(HandleObject *self)
{
    handle_dealloc(self, source_free);
}

static PyObject *
KafkaSource_close(HandleObject *self, PyObject *Py_UNUSED(ignored))
{
    return handle_close(self, source_free);
}

static PyObject *
KafkaSource_exit(HandleObject *self, PyObject *Py_UNUSED(args))
{
    return handle_close(self, source_free);
}

static PyObject *
KafkaSource_repr(HandleObject *self)
{
    return PyUnicode_FromFormat("<streamwise._sw.KafkaSource%s>",
                                self->ptr ? "" : " closed");
}

/* start_at(partition, offset): where it resumes (partition -1: every
 * partition not named) */
static PyObject *
KafkaSource_start_at(HandleObject *self, PyObject *args)
{
    sw_kafka_source *src;
    int part;
    long long off;
    sw_err err = {0};
    sw_rc rc;

    if (!PyArg_ParseTuple(args, "iL", &part, &off))
        return NULL;
    if ((src = handle_enter(self, "kafka source")) == NULL)
        return NULL;
    rc = sw_kafka_source_start_at(src, part, off, &err);
    handle_leave(self);
    return none_or_raise((PyObject *)self, rc, &err);
}

/* commit(): commit the offsets after the last batch */
static PyObject *
KafkaSource_commit(HandleObject *self, PyObject *Py_UNUSED(ignored))
{
    sw_kafka_source *src;
    sw_err err = {0};
    sw_rc rc;

    if ((src = handle_enter(self, "kafka source")) == NULL)
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    rc = sw_kafka_source_commit(src, &err);
    Py_END_ALLOW_THREADS
    handle_leave(self);
    return none_or_raise((PyObject *)self, rc, &err);
}

/* Read the next batch of up to max messages into the source, with its
 * lock taken (the caller leaves it); the count, or -1 raised (lock not
 * held). */
static int64_t
read_batch(HandleObject *self, PyObject *arg, sw_kafka_source **src)
{
    long long max = PyLong_AsLongLong(arg);
    int64_t count = 0;
    sw_err err = {0};
    sw_rc rc;

    if (max == -1 && PyErr_Occurred())
        return -1;
    if ((*src = handle_enter(self, "kafka source")) == NULL)
        return -1;
    Py_BEGIN_ALLOW_THREADS
    rc = sw_kafka_source_next(*src, max, &count, &err);
    Py_END_ALLOW_THREADS
    if (rc != SW_OK) {
        handle_leave(self);
        sw_raise(sw_ext_state((PyObject *)self), &err);
        return -1;
    }
    return count;
}

/* fetch(max) -> count: read a batch and leave it in C (for decode) */
static PyObject *
KafkaSource_fetch(HandleObject *self, PyObject *arg)
{
    sw_kafka_source *src;
    int64_t count = read_batch(self, arg, &src);

    if (count < 0)
        return NULL;
    handle_leave(self);
    return PyLong_FromLongLong((long long)count);
}

/* next(max) -> (partition, offset, timestamp_ms, keys, values) */
static PyObject *
KafkaSource_next(HandleObject *self, PyObject *arg)
{
    PyObject *out = NULL;
    sw_kafka_source *src;
    int64_t count = read_batch(self, arg, &src);
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
        /* the object arrays start as NULLs: these steal the references */
        ((PyObject **)PyArray_DATA(a[3]))[i] = key;
        ((PyObject **)PyArray_DATA(a[4]))[i] = val;
    }
    out = PyTuple_Pack(5, a[0], a[1], a[2], a[3], a[4]);
done:
    handle_leave(self);
    for (k = 0; k < 5; k++)
        Py_XDECREF(a[k]);
    return out;
}

/* One decoded field as a numpy array of its rows. */
static PyArrayObject *
field_array(const sw_json_decoder *d, int i, npy_intp nr, const char **name)
{
    static const int np_type[SW_COL_STR + 1] = {
        NPY_INT64, NPY_INT32, NPY_INT8, NPY_FLOAT64,
        NPY_FLOAT32, NPY_BOOL, NPY_OBJECT};
    int type;
    const double *num;
    const int64_t *ints, *sat, *slen;
    PyArrayObject *a;
    npy_intp k;

    sw_json_decoder_field(d, i, name, &type, &num, &ints, &sat, &slen);
    a = (PyArrayObject *)PyArray_SimpleNew(1, &nr, np_type[type]);
    if (a == NULL)
        return NULL;
    for (k = 0; k < nr; k++) {
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
                return NULL;
            }
            *(PyObject **)dst = u;
        }
        }
    }
    return a;
}

/* decode(decoder) -> ({field: array} plus partition, offset, timestamp
 * of the decoded rows, [(partition, offset, reason, value)]): the last
 * batch through the decoder, without a bytes object for any good
 * message. */
static PyObject *
KafkaSource_decode(HandleObject *self, PyObject *dec_o)
{
    sw_state *st = sw_ext_state((PyObject *)self);
    PyObject *cols = NULL, *deadl = NULL, *out = NULL;
    HandleObject *dec;
    sw_kafka_source *src;
    sw_json_decoder *d;
    const int32_t *part;
    const int64_t *off, *ts, *ka, *kl, *va, *vl, *rows, *drow;
    const int *why;
    const unsigned char *bytes;
    int64_t n_rows = 0, n_dead, n, k;
    npy_intp nr;
    sw_err err = {0};
    sw_rc rc;
    int i;

    if (!PyObject_TypeCheck(dec_o, st->Decoder_Type)) {
        PyErr_SetString(PyExc_TypeError, "decode: a Decoder expected");
        return NULL;
    }
    dec = (HandleObject *)dec_o;
    if ((src = handle_enter(self, "kafka source")) == NULL)
        return NULL;
    if ((d = handle_enter(dec, "decoder")) == NULL) {
        handle_leave(self);
        return NULL;
    }
    sw_kafka_source_batch(src, &part, &off, &ts, &bytes, &ka, &kl, &va, &vl);
    n = sw_kafka_source_count(src);
    Py_BEGIN_ALLOW_THREADS
    rc = sw_json_decode(d, bytes, va, vl, ts, n, &n_rows, &err);
    Py_END_ALLOW_THREADS
    if (rc != SW_OK) {
        sw_raise(st, &err);
        goto fail;
    }
    rows = sw_json_decoder_rows(d);
    nr = (npy_intp)n_rows;
    cols = PyDict_New();
    if (cols == NULL)
        goto fail;
    for (i = 0; i < sw_json_decoder_n_fields(d); i++) {
        const char *name;
        PyArrayObject *a = field_array(d, i, nr, &name);
        int bad = a == NULL || PyDict_SetItemString(cols, name, (PyObject *)a);

        Py_XDECREF(a);
        if (bad)
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
    handle_leave(dec);
    handle_leave(self);
    Py_XDECREF(cols);
    Py_XDECREF(deadl);
    return out;
}

/* slice() -> [(partition, start, stop, next)] */
static PyObject *
KafkaSource_slice(HandleObject *self, PyObject *Py_UNUSED(ignored))
{
    sw_kafka_source *src;
    const int32_t *part;
    const int64_t *start, *stop, *next;
    PyObject *list;
    int n, i;

    if ((src = handle_enter(self, "kafka source")) == NULL)
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
    handle_leave(self);
    return list;
}

static PyMethodDef KafkaSource_methods[] = {
    {"start_at", (PyCFunction)KafkaSource_start_at, METH_VARARGS,
     "start_at(partition, offset): where it resumes"},
    {"commit", (PyCFunction)KafkaSource_commit, METH_NOARGS,
     "commit(): commit the offsets after the last batch"},
    {"next", (PyCFunction)KafkaSource_next, METH_O,
     "next(max) -> (partition, offset, timestamp_ms, keys, values)"},
    {"fetch", (PyCFunction)KafkaSource_fetch, METH_O,
     "fetch(max) -> count (the batch stays in C)"},
    {"decode", (PyCFunction)KafkaSource_decode, METH_O,
     "decode(decoder) -> (columns, dead letters) of the last batch"},
    {"slice", (PyCFunction)KafkaSource_slice, METH_NOARGS,
     "slice() -> [(partition, start, stop, next)]"},
    {"close", (PyCFunction)KafkaSource_close, METH_NOARGS,
     "close(): leave the group and free the consumer"},
    {"__enter__", handle_self, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)KafkaSource_exit, METH_VARARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot KafkaSource_slots[] = {
    {Py_tp_dealloc, KafkaSource_dealloc},
    {Py_tp_repr, KafkaSource_repr},
    {Py_tp_methods, KafkaSource_methods},
    {Py_tp_doc, "A Kafka consumer (sw_kafka_source); use "
                "streamwise.replay.kafka or streamwise.kafka.Consumer."},
    {0, NULL},
};

static PyType_Spec KafkaSource_spec = {
    .name = "streamwise._sw.KafkaSource",
    .basicsize = sizeof(HandleObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = KafkaSource_slots,
};

/* kafka_open(bootstrap, topic, partitions, start_kind, start, stop_kind,
 * stop, timeout_ms, [key, value, ...]) -> KafkaSource (a replay) */
static PyObject *
sw_kafka_open_py(PyObject *module, PyObject *args)
{
    sw_state *st = PyModule_GetState(module);
    const char *bootstrap, *topic, *conf[MAX_CONF + 1] = {NULL};
    PyObject *parts_o, *conf_o;
    int sk, tk;
    long long sv, tv, timeout;
    int32_t parts[SW_MAX_PARTITIONS];
    int n = 0;
    Py_ssize_t i;
    sw_kafka_source *src = NULL;
    sw_err err = {0};
    sw_rc rc;

    if (!PyArg_ParseTuple(args, "ssOiLiLLO", &bootstrap, &topic, &parts_o, &sk,
                          &sv, &tk, &tv, &timeout, &conf_o) ||
        str_pairs(st, conf_o, conf, MAX_CONF) < 0)
        return NULL;
    if (parts_o != Py_None) {
        PyObject *seq = PySequence_Fast(parts_o, "partitions: a list");

        if (seq == NULL)
            return NULL;
        if (PySequence_Fast_GET_SIZE(seq) > SW_MAX_PARTITIONS) {
            Py_DECREF(seq);
            return sw_raise_fmt(st, SW_E_INVAL, "at most %d partitions",
                                SW_MAX_PARTITIONS);
        }
        for (i = 0; i < PySequence_Fast_GET_SIZE(seq); i++)
            parts[n++] =
                (int32_t)PyLong_AsLong(PySequence_Fast_GET_ITEM(seq, i));
        Py_DECREF(seq);
        if (PyErr_Occurred())
            return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    rc = sw_kafka_source_open(bootstrap, topic,
                              parts_o == Py_None ? NULL : parts, n,
                              (sw_point)sk, sv, (sw_point)tk, tv, timeout,
                              conf, &src, &err);
    Py_END_ALLOW_THREADS
    if (rc != SW_OK) {
        sw_raise(st, &err);
        return NULL;
    }
    return wrap_handle(st->KafkaSource_Type, src, source_free);
}

/* kafka_subscribe(bootstrap, topic, group, wait_ms, [key, value, ...]) ->
 * KafkaSource (live, in a consumer group) */
static PyObject *
sw_kafka_subscribe_py(PyObject *module, PyObject *args)
{
    sw_state *st = PyModule_GetState(module);
    const char *bootstrap, *topic, *group, *conf[MAX_CONF + 1] = {NULL};
    PyObject *conf_o;
    long long wait;
    sw_kafka_source *src = NULL;
    sw_err err = {0};
    sw_rc rc;

    if (!PyArg_ParseTuple(args, "sssLO", &bootstrap, &topic, &group, &wait,
                          &conf_o) ||
        str_pairs(st, conf_o, conf, MAX_CONF) < 0)
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    rc = sw_kafka_source_subscribe(bootstrap, topic, group, wait, conf, &src,
                                   &err);
    Py_END_ALLOW_THREADS
    if (rc != SW_OK) {
        sw_raise(st, &err);
        return NULL;
    }
    return wrap_handle(st->KafkaSource_Type, src, source_free);
}

/* ------------------------------------------------------------------ */
/* KafkaSink                                                            */
/* ------------------------------------------------------------------ */

static void
KafkaSink_dealloc(HandleObject *self)
{
    handle_dealloc(self, sink_free);
}

static PyObject *
KafkaSink_close(HandleObject *self, PyObject *Py_UNUSED(ignored))
{
    return handle_close(self, sink_free);
}

static PyObject *
KafkaSink_exit(HandleObject *self, PyObject *Py_UNUSED(args))
{
    return handle_close(self, sink_free);
}

static PyObject *
KafkaSink_repr(HandleObject *self)
{
    return PyUnicode_FromFormat("<streamwise._sw.KafkaSink%s>",
                                self->ptr ? "" : " closed");
}

/* send(values, keys|None, timestamps|None, partition, [header, value,
 * ...]): values and keys are sequences of bytes (None: a null key),
 * timestamps an int64 array of ms or None. */
static PyObject *
KafkaSink_send(HandleObject *self, PyObject *args)
{
    sw_state *st = sw_ext_state((PyObject *)self);
    PyObject *vals, *keys, *ts_o, *hdr_o, *vs = NULL, *ks = NULL;
    PyArrayObject *ts = NULL;
    const char *hdr[65];
    int partition;
    sw_kafka_sink *s;
    sw_err err = {0};
    Py_ssize_t i, n;
    sw_rc rc = SW_OK;

    if (!PyArg_ParseTuple(args, "OOOiO", &vals, &keys, &ts_o, &partition,
                          &hdr_o) ||
        str_pairs(st, hdr_o, hdr, 64) < 0)
        return NULL;
    vs = PySequence_Fast(vals, "values: a sequence of bytes");
    if (vs == NULL)
        return NULL;
    n = PySequence_Fast_GET_SIZE(vs);
    if (keys != Py_None &&
        ((ks = PySequence_Fast(keys, "keys: a sequence")) == NULL ||
         PySequence_Fast_GET_SIZE(ks) != n)) {
        if (ks != NULL)
            sw_raise_fmt(st, SW_E_SHAPE, "%zd keys for %zd values",
                         PySequence_Fast_GET_SIZE(ks), n);
        goto done;
    }
    if (ts_o != Py_None) {
        ts = (PyArrayObject *)PyArray_FROM_OTF(ts_o, NPY_INT64,
                                               NPY_ARRAY_IN_ARRAY);
        if (ts == NULL)
            goto done;
        if (PyArray_SIZE(ts) != n) {
            sw_raise_fmt(st, SW_E_SHAPE, "%zd timestamps for %zd values",
                         (Py_ssize_t)PyArray_SIZE(ts), n);
            goto done;
        }
    }
    if ((s = handle_enter(self, "kafka sink")) == NULL)
        goto done;
    for (i = 0; i < n && rc == SW_OK; i++) {
        PyObject *v = PySequence_Fast_GET_ITEM(vs, i);
        PyObject *k = ks ? PySequence_Fast_GET_ITEM(ks, i) : Py_None;
        char *vb = NULL, *kb = NULL;
        Py_ssize_t vl = 0, kl = 0;

        if (PyBytes_AsStringAndSize(v, &vb, &vl) < 0 ||
            (k != Py_None && PyBytes_AsStringAndSize(k, &kb, &kl) < 0))
            break;
        rc = sw_kafka_sink_send(s, kb, (size_t)kl, vb, (size_t)vl, partition,
                                ts ? ((const int64_t *)PyArray_DATA(ts))[i] : 0,
                                hdr[0] ? hdr : NULL, &err);
    }
    handle_leave(self);
    if (rc != SW_OK)
        sw_raise(st, &err);
done:
    Py_XDECREF(vs);
    Py_XDECREF(ks);
    Py_XDECREF(ts);
    if (PyErr_Occurred())
        return NULL;
    Py_RETURN_NONE;
}

/* flush(timeout_ms) -> (sent, acked, failed) */
static PyObject *
KafkaSink_flush(HandleObject *self, PyObject *arg)
{
    long long timeout = PyLong_AsLongLong(arg);
    sw_kafka_sink *s;
    sw_err err = {0};
    sw_rc rc;
    sw_kafka_sink_stats n;

    if (timeout == -1 && PyErr_Occurred())
        return NULL;
    if ((s = handle_enter(self, "kafka sink")) == NULL)
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    rc = sw_kafka_sink_flush(s, timeout, &err);
    Py_END_ALLOW_THREADS
    sw_kafka_sink_get_stats(s, &n);
    handle_leave(self);
    if (rc != SW_OK) {
        sw_raise(sw_ext_state((PyObject *)self), &err);
        return NULL;
    }
    return Py_BuildValue("(LLL)", (long long)n.sent, (long long)n.acked,
                         (long long)n.failed);
}

static PyMethodDef KafkaSink_methods[] = {
    {"send", (PyCFunction)KafkaSink_send, METH_VARARGS,
     "send(values, keys, timestamps, partition, headers)"},
    {"flush", (PyCFunction)KafkaSink_flush, METH_O,
     "flush(timeout_ms) -> (sent, acked, failed)"},
    {"close", (PyCFunction)KafkaSink_close, METH_NOARGS,
     "close(): free the producer (flush first to deliver)"},
    {"__enter__", handle_self, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)KafkaSink_exit, METH_VARARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot KafkaSink_slots[] = {
    {Py_tp_dealloc, KafkaSink_dealloc},
    {Py_tp_repr, KafkaSink_repr},
    {Py_tp_methods, KafkaSink_methods},
    {Py_tp_doc, "A Kafka producer (sw_kafka_sink); use "
                "streamwise.kafka.Producer."},
    {0, NULL},
};

static PyType_Spec KafkaSink_spec = {
    .name = "streamwise._sw.KafkaSink",
    .basicsize = sizeof(HandleObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = KafkaSink_slots,
};

/* kafka_sink_open(bootstrap, topic, [key, value, ...]) -> KafkaSink */
static PyObject *
sw_kafka_sink_open_py(PyObject *module, PyObject *args)
{
    sw_state *st = PyModule_GetState(module);
    const char *bootstrap, *topic, *conf[MAX_CONF + 1];
    PyObject *conf_o;
    sw_kafka_sink *s = NULL;
    sw_err err = {0};
    sw_rc rc;

    if (!PyArg_ParseTuple(args, "ssO", &bootstrap, &topic, &conf_o) ||
        str_pairs(st, conf_o, conf, MAX_CONF) < 0)
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    rc = sw_kafka_sink_open(bootstrap, topic, conf, &s, &err);
    Py_END_ALLOW_THREADS
    if (rc != SW_OK) {
        sw_raise(st, &err);
        return NULL;
    }
    return wrap_handle(st->KafkaSink_Type, s, sink_free);
}

/* kafka_partition(keys, n) -> [partition of each key (bytes)] */
static PyObject *
sw_kafka_partition_py(PyObject *module, PyObject *args)
{
    sw_state *st = PyModule_GetState(module);
    PyObject *keys, *seq, *out = NULL;
    int n;
    Py_ssize_t i, len;

    if (!PyArg_ParseTuple(args, "Oi", &keys, &n))
        return NULL;
    seq = PySequence_Fast(keys, "kafka_partition: keys must be a sequence");
    if (seq == NULL)
        return NULL;
    len = PySequence_Fast_GET_SIZE(seq);
    out = PyList_New(len);
    for (i = 0; out != NULL && i < len; i++) {
        PyObject *k = PySequence_Fast_GET_ITEM(seq, i), *v;
        sw_err err = {0};
        int32_t part;

        if (!PyBytes_Check(k)) {
            Py_CLEAR(out);
            sw_raise_fmt(st, SW_E_INVAL,
                         "kafka_partition: key %zd is %s, expected bytes", i,
                         Py_TYPE(k)->tp_name);
            break;
        }
        if (sw_kafka_partition(PyBytes_AS_STRING(k),
                               (size_t)PyBytes_GET_SIZE(k), n, &part,
                               &err) != SW_OK) {
            Py_CLEAR(out);
            sw_raise(st, &err);
            break;
        }
        v = PyLong_FromLong(part);
        if (v == NULL) {
            Py_CLEAR(out);
            break;
        }
        PyList_SET_ITEM(out, i, v);
    }
    Py_DECREF(seq);
    return out;
}

static PyMethodDef kafka_functions[] = {
    {"kafka_partition", sw_kafka_partition_py, METH_VARARGS,
     "kafka_partition(keys, n) -> [partition]: murmur2, as Kafka's Java "
     "client"},
    {"kafka_open", sw_kafka_open_py, METH_VARARGS,
     "kafka_open(bootstrap, topic, partitions, start_kind, start, stop_kind, "
     "stop, timeout_ms, [key, value, ...]) -> KafkaSource"},
    {"kafka_subscribe", sw_kafka_subscribe_py, METH_VARARGS,
     "kafka_subscribe(bootstrap, topic, group, wait_ms, [key, value, ...]) "
     "-> KafkaSource"},
    {"kafka_sink_open", sw_kafka_sink_open_py, METH_VARARGS,
     "kafka_sink_open(bootstrap, topic, [key, value, ...]) -> KafkaSink"},
    {NULL, NULL, 0, NULL},
};

int
sw_ext_kafka_setup(PyObject *m, sw_state *st)
{
    if (sw_ext_add_type(m, &KafkaSource_spec, &st->KafkaSource_Type) < 0 ||
        sw_ext_add_type(m, &KafkaSink_spec, &st->KafkaSink_Type) < 0)
        return -1;
    return PyModule_AddFunctions(m, kafka_functions);
}
