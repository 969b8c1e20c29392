/* SPDX-License-Identifier: MIT */
/*
 * module.h - what the files of the extension streamwise._sw share.
 *
 * The extension is a translator between Python and the core, laid out as
 * CPython's Modules/_sqlite/ is: one file per object of the public header,
 * each with its type and the module functions that make one, over this one
 * private header.
 *
 *   module.c    module state, exceptions, the core's enums, init
 *   convert.c   numpy / scipy / dicts -> borrowed sw_rows and sw_batch views
 *   model.c     Model (sw_model): linear, ALS and GBDT verbs, bundles, pickling
 *   model_new.c linear_new, als_new, gbdt_fit, load, load_buffer, inspect
 *   pipeline.c  Pipeline (sw_pipeline) and its results
 *   kafka.c     KafkaSource (sw_kafka_source), KafkaSink (sw_kafka_sink)
 *   decoder.c   Decoder (sw_json_decoder, JSON or Avro)
 *   hdf5.c      H5Source (sw_h5_source), H5Writer (sw_h5_writer)
 *   coll.c      Collective (sw_coll): one rank of a distributed fit
 *   util.c      the stateless functions: splits, registry lookup, build info
 *
 * Every C handle is a Python type (no capsules). Errors: an sw_err becomes
 * the streamwise exception of its code in one place, sw_raise(); the
 * extension's own checks raise the same exceptions (ShapeError where
 * shapes disagree, InvalidArgument for a bad value), TypeError only for an
 * argument of the wrong Python type.
 *
 * Locks follow the header's contract ("const calls may run concurrently on
 * one handle, mutating calls need exclusive access"): a Model has a
 * readers-writer lock, so predictions run in parallel and learning is
 * exclusive; sources, sinks, decoders and writers are used by one call at a
 * time. A thread waits for a lock with the GIL released.
 */
#ifndef SW_EXT_MODULE_H
#define SW_EXT_MODULE_H

#define PY_SSIZE_T_CLEAN
#define NPY_NO_DEPRECATED_API NPY_1_7_API_VERSION
#define PY_ARRAY_UNIQUE_SYMBOL sw_ext_ARRAY_API
#ifndef SW_EXT_MODULE_C
#define NO_IMPORT_ARRAY /* only module.c calls import_array */
#endif
#include <Python.h>
#include <numpy/arrayobject.h>
#include <pthread.h>
#include <pythread.h>

#include "streamwise.h"

/* Calls on at least this many rows release the GIL; below it the release
 * costs more than it frees. */
#define GIL_ROWS 64
#define SW_MAX_COLUMNS 256 /* columns of one event batch */

typedef struct {
    PyTypeObject *Model_Type;
    PyTypeObject *Pipeline_Type;
    PyTypeObject *RowBuffer_Type;
    PyTypeObject *KafkaSource_Type;
    PyTypeObject *KafkaSink_Type;
    PyTypeObject *Decoder_Type;
    PyTypeObject *H5Source_Type;
    PyTypeObject *H5Writer_Type;
    PyTypeObject *Collective_Type;
    PyObject *Error;
    PyObject *exc[SW_RC_COUNT];
} sw_state;

/* ------------------------------------------------------------------ */
/* Objects                                                              */
/* ------------------------------------------------------------------ */

typedef struct {
    PyObject_HEAD
    sw_model *model;
    pthread_rwlock_t lock; /* read: const calls; write: mutating calls */
    int lock_ok;
} ModelObject;

/* A pipeline's spare block of result rows (pipeline.c), shared by the
 * pipeline and the RowBuffers under its results (refs: theirs). */
typedef struct {
    Py_ssize_t refs;
    sw_rowbuf *spare;
} rows_pool;

typedef struct {
    PyObject_HEAD
    sw_pipeline *p;
    sw_result *r;
    PyThread_type_lock lock; /* push and flush share r: one at a time */
    rows_pool *pool;
} PipelineObject;

/* A handle used by one call at a time; ptr is NULL once closed. */
typedef struct {
    PyObject_HEAD
    void *ptr;
    PyThread_type_lock lock;
} HandleObject;

/* ------------------------------------------------------------------ */
/* module.c                                                             */
/* ------------------------------------------------------------------ */

sw_state *sw_ext_state(PyObject *obj);        /* from an object's type */
sw_state *sw_ext_module_state(PyObject *mod); /* from the module */

/* Raise the exception of err's code (MemoryError for SW_E_NOMEM). */
void sw_raise(sw_state *st, const sw_err *err);

/* The end of most methods: None after SW_OK, else err raised for the
 * object self (its module's exceptions). */
PyObject *none_or_raise(PyObject *self, sw_rc rc, const sw_err *err);

/* Raise the exception of code rc with a formatted message. */
PyObject *sw_raise_fmt(sw_state *st, sw_rc rc, const char *fmt, ...);

/* ------------------------------------------------------------------ */
/* convert.c                                                            */
/* ------------------------------------------------------------------ */

/* What a converted view keeps alive: arrays it borrows from or owns, and
 * buffers for a dict row. Released by hold_release(). */
typedef struct {
    PyObject *obj[3];
    int64_t *idx;
    double *val;
    int64_t indptr[2];
    int64_t small_idx[64];
    double small_val[64];
} hold;

void hold_release(hold *h);

/* X as a view: a 1-D or 2-D array (float32 or float64 read in place when
 * its rows are contiguous and do not overlap, else copied), a scipy CSR
 * matrix, a dict {column: value} or an (indices, values) pair. n_features
 * is the width of dict rows and pairs. h is set up here; release it. */
int to_rows(sw_state *st, PyObject *x, int64_t n_features, hold *h,
            sw_rows *v);

/* A CSR argument (scipy matrices only) as a view held in h. */
int csr_arg(sw_state *st, PyObject *o, hold *h, sw_rows *v, const char *what);

/* y as a contiguous float64 vector of n values. */
PyArrayObject *to_targets(sw_state *st, PyObject *y, int64_t n);

/* An optional 1-D or 2-D array of a numpy type, NULL for None; *bad is set
 * (with the exception) when the conversion failed. */
PyArrayObject *opt_array(sw_state *st, PyObject *o, int type, int *bad);

/* The columns of a batch: a list of (name, type, array, width, bad). The
 * arrays are kept in arrs (one reference each, at most 2 * max_cols) for
 * the call; *cols is PyMem-allocated. */
int batch_arg(sw_state *st, PyObject *list, Py_ssize_t max_cols, sw_batch *b,
              sw_column **cols, PyObject **arrs, Py_ssize_t *n_arrs);
void batch_release(sw_column *cols, PyObject **arrs, Py_ssize_t n_arrs);

/* out[0..n) from a list [name, value, ...] of str (borrowed UTF-8), then a
 * NULL; at most max strings. */
int str_pairs(sw_state *st, PyObject *list, const char **out, Py_ssize_t max);

/* A conf with every (name, value) of a dict set, or NULL (raised). */
sw_conf *conf_from_dict(sw_state *st, PyObject *d);

/* ------------------------------------------------------------------ */
/* Locks                                                                */
/* ------------------------------------------------------------------ */

void model_read_lock(ModelObject *self);
void model_write_lock(ModelObject *self);
void model_unlock(ModelObject *self);

/* Take a handle's lock, waiting with the GIL released. */
void handle_lock(PyThread_type_lock lock);

/* The open handle of self with its lock taken, or NULL with StateError
 * raised when it was closed. what names the object in the message. */
void *handle_enter(HandleObject *self, const char *what);
void handle_leave(HandleObject *self);

/* A new object of handle type tp around ptr (freed with free_fn when the
 * object cannot be made, or by handle_dealloc / handle_close). */
PyObject *wrap_handle(PyTypeObject *tp, void *ptr, void (*free_fn)(void *));
void handle_dealloc(HandleObject *self, void (*free_fn)(void *));

/* close(): free the handle now, with the GIL released; later calls raise
 * StateError. Closing twice is allowed. */
PyObject *handle_close(HandleObject *self, void (*free_fn)(void *));

/* __enter__ of handle types: returns self. */
PyObject *handle_self(PyObject *self, PyObject *unused);

/* ------------------------------------------------------------------ */
/* Types and module functions, one setup per file                        */
/* ------------------------------------------------------------------ */

PyObject *wrap_model(sw_state *st, sw_model *m); /* steals m */
PyObject *wrap_pipeline(sw_state *st, sw_pipeline *p); /* steals p */

int sw_ext_model_setup(PyObject *m, sw_state *st);
int sw_ext_model_new_setup(PyObject *m, sw_state *st);
int sw_ext_pipeline_setup(PyObject *m, sw_state *st);
int sw_ext_kafka_setup(PyObject *m, sw_state *st);
int sw_ext_decoder_setup(PyObject *m, sw_state *st);
int sw_ext_hdf5_setup(PyObject *m, sw_state *st);
int sw_ext_util_setup(PyObject *m, sw_state *st);
int sw_ext_coll_setup(PyObject *m, sw_state *st);

/* Make a type from a spec into *slot and add it to the module. */
int sw_ext_add_type(PyObject *m, PyType_Spec *spec, PyTypeObject **slot);

#endif /* SW_EXT_MODULE_H */
