/* SPDX-License-Identifier: MIT */
/*
 * sw_bundle.c - a model that carries the feature pipeline it was trained
 * on, so that whatever scores it computes the features the notebook did.
 *
 * The bundle is the spec (without its emission mode, which is the
 * server's choice), the dense columns the model reads in order, whether
 * the hashed block follows them, and golden events: raw events that, replayed
 * from an empty pipeline in arrival order, must give the stored predictions
 * bit for bit. It travels as the PIPELINE section of the .swm file (JSON),
 * and the spec and event-schema hashes go into the file's header.
 *
 * Model input row = [the input columns of the pipeline's dense row, in
 * order] then, with sparse, the hashed block (indices offset by the number
 * of inputs, value 1 each). A dense-only bundle is scored as dense rows; a
 * sparse one as CSR holding every input value, zeros included, so the sum
 * order is the same whoever builds it: only sw_model_predict_result builds
 * it, for the notebook and the runner alike.
 */
#include <jansson.h>
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>

#include "sw_pipeline_int.h"

struct sw_bundle {
    char *spec;     /* compact JSON, no "emission" */
    char *golden;   /* {"events": {...}} as set, or as read; NULL: none */
    int n_inputs;
    char **inputs;  /* dense column names, in model order */
    int64_t *cols;  /* their numbers in the pipeline's dense row */
    int sparse;
    int n_dense;    /* the pipeline's dense width and hashed width */
    int64_t sparse_dims;
    int n_hash;
    uint64_t spec_hash, schema_hash;
    int64_t n_golden; /* golden events re-scored at load */
};

void
sw__bundle_free(sw_bundle *b)
{
    int i;

    if (b == NULL)
        return;
    for (i = 0; b->inputs != NULL && i < b->n_inputs; i++)
        sw__free(b->inputs[i]);
    sw__free(b->inputs);
    sw__free(b->cols);
    sw__free(b->spec);
    sw__free(b->golden);
    sw__free(b);
}

/* The first 8 bytes of SHA-256 of a JSON value dumped with sorted keys. */
static int
json_hash(const json_t *v, uint64_t *out)
{
    unsigned char d[crypto_hash_sha256_BYTES];
    char *s = json_dumps(v, JSON_SORT_KEYS | JSON_COMPACT | JSON_ENCODE_ANY);

    if (s == NULL)
        return -1;
    crypto_hash_sha256(d, (const unsigned char *)s, strlen(s));
    sw__free(s);
    *out = sw__get_le64(d);
    return 0;
}

/* A bundle for spec_json (any emission) with these inputs: resolves the
 * input names against the compiled spec and computes both hashes. */
static sw_rc
bundle_new(const char *spec_json, const char *const *inputs, int n_inputs,
           int sparse, sw_bundle **out, sw_err *err)
{
    sw_bundle *b = NULL;
    sw_pipeline *p = NULL;
    json_t *root = NULL;
    char *text = NULL;
    int i, j;
    sw_rc rc;

    *out = NULL;
    if ((rc = sw_pipeline_new(spec_json, &p, err)) != SW_OK)
        return sw__fail_wrap(err, rc, rc, "bundle: ");
    root = json_loads(spec_json, 0, NULL); /* parsed: only memory fails */
    b = sw__calloc(1, sizeof(*b));
    if (root == NULL || b == NULL) {
        rc = sw__fail(err, SW_E_NOMEM, "bundle: out of memory");
        goto done;
    }
    json_object_del(root, "emission");
    if (json_hash(json_object_get(root, "events"), &b->schema_hash) != 0 ||
        (text = json_dumps(root, JSON_COMPACT)) == NULL) {
        rc = sw__fail(err, SW_E_NOMEM, "bundle: out of memory");
        goto done;
    }
    b->spec_hash = p->spec_hash;
    b->spec = sw__strdup(text);
    b->n_inputs = n_inputs;
    b->inputs = sw__calloc((size_t)(n_inputs ? n_inputs : 1), sizeof(char *));
    b->cols = sw__alloc_array((size_t)(n_inputs ? n_inputs : 1), 8);
    if (b->spec == NULL || b->inputs == NULL || b->cols == NULL) {
        rc = sw__fail(err, SW_E_NOMEM, "bundle: out of memory");
        goto done;
    }
    b->sparse = sparse != 0;
    b->n_dense = p->n_dense;
    b->sparse_dims = p->sparse_dims;
    b->n_hash = p->n_hash;
    for (i = 0; i < n_inputs; i++) {
        for (j = 0; j < p->n_dense && strcmp(p->colnames[j], inputs[i]); j++)
            ;
        if (j == p->n_dense) {
            rc = sw__fail(err, SW_E_INVAL,
                          "bundle: input %d '%.60s' is not a dense column of "
                          "the pipeline (it has %d, the first '%.60s')",
                          i, inputs[i], p->n_dense,
                          p->n_dense ? p->colnames[0] : "");
            goto done;
        }
        b->cols[i] = j;
        if ((b->inputs[i] = sw__strdup(inputs[i])) == NULL) {
            rc = sw__fail(err, SW_E_NOMEM, "bundle: out of memory");
            goto done;
        }
    }
    if (b->sparse && p->n_hash == 0) {
        rc = sw__fail(err, SW_E_INVAL,
                      "bundle: sparse inputs asked for, but the pipeline has "
                      "no hash feature");
        goto done;
    }
    *out = b;
    b = NULL;
    rc = SW_OK;
done:
    sw__free(text);
    json_decref(root);
    sw_pipeline_free(p);
    sw__bundle_free(b);
    return rc;
}

/* Features a model of bundle b reads. */
static int64_t
bundle_width(const sw_bundle *b)
{
    return b->n_inputs + (b->sparse ? b->sparse_dims : 0);
}

sw_rc
sw_model_set_pipeline(sw_model *m, const sw_pipeline *p,
                      const char *const *inputs, int n_inputs, int sparse,
                      sw_err *err)
{
    sw_bundle *b = NULL;
    sw_rc rc;

    if (m == NULL || p == NULL || n_inputs < 0 || (inputs == NULL && n_inputs))
        return sw__fail(err, SW_E_INVAL, "set_pipeline: NULL argument");
    if (n_inputs == 0 && !sparse)
        return sw__fail(err, SW_E_INVAL,
                        "set_pipeline: no inputs: name the dense columns the "
                        "model reads, or take the hashed block (sparse)");
    rc = bundle_new(p->spec_json, inputs, n_inputs, sparse, &b, err);
    if (rc != SW_OK)
        return rc;
    if (bundle_width(b) != sw_model_n_features(m)) {
        rc = sw__fail(err, SW_E_SHAPE,
                      "set_pipeline: the model reads %lld features, the "
                      "pipeline gives %d inputs%s (%lld)",
                      (long long)sw_model_n_features(m), n_inputs,
                      b->sparse ? " and the hashed block" : "",
                      (long long)bundle_width(b));
        sw__bundle_free(b);
        return rc;
    }
    sw__bundle_free(m->bundle);
    m->bundle = b;
    return SW_OK;
}

/* A JSON array of the n values of column c, in its type. */
static json_t *
column_json(const sw_column *c, int64_t n)
{
    json_t *a = json_array();
    int64_t i;

    for (i = 0; a != NULL && i < n; i++) {
        json_t *v;

        if (c->type == SW_COL_STR) {
            const char *s = (const char *)c->data + i * c->width;
            size_t len = 0;

            while (len < (size_t)c->width && s[len] != '\0')
                len++;
            v = json_stringn(s, len);
        } else if (c->type == SW_COL_F64 || c->type == SW_COL_F32) {
            v = json_real(sw__column_number(c, i));
        } else {
            v = json_integer((json_int_t)sw__column_number(c, i));
        }
        if (v == NULL || json_array_append_new(a, v) != 0) {
            json_decref(a);
            return NULL;
        }
    }
    return a;
}

sw_rc
sw_model_set_golden_events(sw_model *m, const sw_batch *ev, sw_err *err)
{
    json_t *root = NULL, *cols = NULL;
    char *text = NULL;
    int c;
    long refused = sw__alloc_failures();
    sw_rc rc;

    if (m == NULL || ev == NULL || ev->n_rows < 1 || ev->columns == NULL)
        return sw__fail(err, SW_E_INVAL,
                        "set_golden_events: expected a batch of 1 or more "
                        "events");
    if (m->bundle == NULL)
        return sw__fail(err, SW_E_STATE,
                        "set_golden_events: the model has no pipeline; set "
                        "it first (sw_model_set_pipeline)");
    if (ev->n_rows > 10000)
        return sw__fail(err, SW_E_INVAL,
                        "set_golden_events: %lld events, at most 10000",
                        (long long)ev->n_rows);
    root = json_object();
    cols = json_object();
    if (root == NULL || cols == NULL) {
        rc = sw__fail(err, SW_E_NOMEM, "golden events: out of memory");
        goto done;
    }
    for (c = 0; c < ev->n_columns; c++) {
        const sw_column *col = &ev->columns[c];
        json_t *a;
        int64_t i;

        for (i = 0; col->bad != NULL && i < ev->n_rows; i++) {
            if (col->bad[i]) {
                rc = sw__fail(err, SW_E_INVAL,
                              "set_golden_events: event %lld has a bad '%s' "
                              "value; golden events must be valid",
                              (long long)i, col->name);
                goto done;
            }
        }
        a = column_json(col, ev->n_rows);
        if (a == NULL && sw__alloc_failures() != refused) {
            rc = sw__fail(err, SW_E_NOMEM, "golden events: out of memory");
            goto done;
        }
        if (a == NULL) {
            rc = sw__fail(err, SW_E_INVAL,
                          "set_golden_events: column '%s' is not valid UTF-8 "
                          "text",
                          col->name);
            goto done;
        }
        json_object_set_new(cols, col->name, a);
    }
    json_object_set(root, "events", cols);
    text = json_dumps(root, JSON_COMPACT | JSON_REAL_PRECISION(17));
    /* a value jansson could not allocate is dropped without a word */
    if (text == NULL || sw__alloc_failures() != refused) {
        rc = sw__fail(err, SW_E_NOMEM, "golden events: out of memory");
        goto done;
    }
    {
        char *copy = sw__strdup(text); /* the old events stay on failure */

        if (copy == NULL) {
            rc = sw__fail(err, SW_E_NOMEM, "golden: out of memory");
            goto done;
        }
        sw__free(m->bundle->golden);
        m->bundle->golden = copy;
        rc = SW_OK;
    }
done:
    sw__free(text);
    json_decref(cols);
    json_decref(root);
    return rc;
}

const char *
sw_model_pipeline_spec(const sw_model *m)
{
    return m->bundle ? m->bundle->spec : NULL;
}

int
sw_model_pipeline_inputs(const sw_model *m, const char *const **names,
                         int *sparse)
{
    if (m->bundle == NULL) {
        if (names != NULL)
            *names = NULL;
        if (sparse != NULL)
            *sparse = 0;
        return 0;
    }
    if (names != NULL)
        *names = (const char *const *)m->bundle->inputs;
    if (sparse != NULL)
        *sparse = m->bundle->sparse;
    return m->bundle->n_inputs;
}

void
sw_model_pipeline_hashes(const sw_model *m, uint64_t *spec_hash,
                         uint64_t *schema_hash)
{
    *spec_hash = m->bundle ? m->bundle->spec_hash : 0;
    *schema_hash = m->bundle ? m->bundle->schema_hash : 0;
}

sw_rc
sw_model_predict_result(const sw_model *m, const sw_pipeline *p,
                        const sw_result *r, double *out, int64_t n_out,
                        sw_err *err)
{
    if (r == NULL)
        return sw__fail(err, SW_E_INVAL, "predict_result: NULL argument");
    return sw_model_predict_features(m, p, r->dense, r->indices, r->n, out,
                                     n_out, err);
}

/* Model rows from n feature rows in p's layout: the view *x and what it
 * owns (freed by rows_free). what names the caller in messages. */
typedef struct model_rows {
    sw_rows x;
    double *vals;
    int64_t *ind, *ptr;
} model_rows;

static void
rows_free(model_rows *r)
{
    sw__free(r->vals);
    sw__free(r->ind);
    sw__free(r->ptr);
}

static sw_rc
model_rows_of(const sw_model *m, const sw_pipeline *p, const double *dense,
              const int64_t *hashed, int64_t n, const char *what,
              model_rows *r, sw_err *err)
{
    const sw_bundle *b;
    int64_t i, k, w;
    int j;

    memset(r, 0, sizeof(*r));
    if (m == NULL || p == NULL || n < 0 ||
        (n > 0 && (dense == NULL || (hashed == NULL && p->n_hash > 0))))
        return sw__fail(err, SW_E_INVAL, "%s: NULL argument", what);
    b = m->bundle;
    if (b == NULL)
        return sw__fail(err, SW_E_STATE, "%s: the model carries no pipeline",
                        what);
    if (p->spec_hash != b->spec_hash || p->n_dense != b->n_dense ||
        p->sparse_dims != b->sparse_dims)
        return sw__fail(err, SW_E_INVAL,
                        "%s: the pipeline (spec hash %016llx) is not the one "
                        "the model was trained on (%016llx)",
                        what, (unsigned long long)p->spec_hash,
                        (unsigned long long)b->spec_hash);
    for (i = 0; b->sparse && i < n * b->n_hash; i++) {
        if (hashed[i] < 0 || hashed[i] >= b->sparse_dims)
            return sw__fail(
                err, SW_E_INVAL, "%s: hashed index %lld outside 0..%lld", what,
                (long long)hashed[i], (long long)b->sparse_dims - 1);
    }
    r->x.dtype = SW_F64;
    r->x.itype = SW_I64;
    r->x.n_rows = n;
    r->x.n_cols = bundle_width(b);
    for (j = 0; j < b->n_inputs && b->cols[j] == j; j++)
        ;
    if (!b->sparse && j == b->n_inputs) {
        /* the inputs are the row's first columns: read it in place */
        r->x.layout = SW_DENSE;
        r->x.row_stride = b->n_dense;
        r->x.data = dense;
        return SW_OK;
    }
    w = b->n_inputs + (b->sparse ? b->n_hash : 0);
    r->vals = sw__alloc_array((size_t)(n * w), sizeof(double));
    if (b->sparse) {
        r->ind = sw__alloc_array((size_t)(n * w), sizeof(int64_t));
        r->ptr = sw__alloc_array((size_t)(n + 1), sizeof(int64_t));
    }
    if ((n * w > 0 && r->vals == NULL) ||
        (b->sparse && ((n * w > 0 && r->ind == NULL) || r->ptr == NULL))) {
        rows_free(r);
        return sw__fail(err, SW_E_NOMEM, "%s: out of memory", what);
    }
    for (i = 0; i < n; i++) {
        const double *row = dense + i * b->n_dense;
        double *v = r->vals + i * w;

        for (j = 0; j < b->n_inputs; j++)
            v[j] = row[b->cols[j]];
        if (!b->sparse)
            continue;
        r->ptr[i] = i * w;
        for (j = 0; j < b->n_inputs; j++)
            r->ind[i * w + j] = j;
        for (k = 0; k < b->n_hash; k++) {
            v[b->n_inputs + k] = 1.0;
            r->ind[i * w + b->n_inputs + k] =
                b->n_inputs + hashed[i * b->n_hash + k];
        }
    }
    if (b->sparse) {
        r->ptr[n] = n * w;
        r->x.layout = SW_CSR;
        r->x.indptr = r->ptr;
        r->x.indices = r->ind;
    } else {
        r->x.layout = SW_DENSE;
        r->x.row_stride = w;
    }
    r->x.data = r->vals;
    return SW_OK;
}

sw_rc
sw_model_predict_features(const sw_model *m, const sw_pipeline *p,
                          const double *dense, const int64_t *hashed,
                          int64_t n, double *out, int64_t n_out, sw_err *err)
{
    model_rows r;
    sw_rc rc;

    if (m == NULL || (out == NULL && n_out > 0))
        return sw__fail(err, SW_E_INVAL, "predict_features: NULL argument");
    if (n_out != n * sw_model_n_outputs(m))
        return sw__fail(err, SW_E_SHAPE,
                        "predict_features: %lld outputs for %lld rows of "
                        "%lld, expected %lld",
                        (long long)n_out, (long long)n,
                        (long long)sw_model_n_outputs(m),
                        (long long)(n * sw_model_n_outputs(m)));
    rc = model_rows_of(m, p, dense, hashed, n, "predict_features", &r, err);
    if (rc != SW_OK || n == 0)
        return rc;
    rc = sw_model_predict(m, &r.x, out, n_out, err);
    rows_free(&r);
    return rc;
}

sw_rc
sw_model_learn_features(sw_model *m, const sw_pipeline *p,
                        const double *dense, const int64_t *hashed,
                        int64_t n, const double *y, double *pred,
                        sw_err *err)
{
    model_rows r;
    sw_rc rc;

    if (m == NULL || (y == NULL && n > 0))
        return sw__fail(err, SW_E_INVAL, "learn_features: NULL argument");
    if (sw_model_kind_of(m) != SW_MODEL_LINEAR)
        return sw__fail(err, SW_E_UNSUPPORTED,
                        "learn_features: a %s model does not learn online; "
                        "the passive-aggressive and SCW learners do",
                        m->methods->name);
    rc = model_rows_of(m, p, dense, hashed, n, "learn_features", &r, err);
    if (rc != SW_OK || n == 0)
        return rc;
    rc = pred != NULL ? sw_linear_prequential(m, &r.x, y, n, pred, NULL,
                                              NULL, err)
                      : sw_linear_learn(m, &r.x, y, n, NULL, err);
    rows_free(&r);
    return rc;
}

/* ------------------------------------------------------------------ */
/* The PIPELINE section                                                 */
/* ------------------------------------------------------------------ */

/* The golden events of text (JSON {"events": {name: [values]}}) as a
 * batch of owned columns: integers as int64, numbers as float64, text
 * NUL-padded to its widest value. */
typedef struct events {
    sw_batch b;
    sw_column cols[SW_MAX_FIELDS];
    void *data[SW_MAX_FIELDS];
    char names[SW_MAX_FIELDS][64];
} events;

static void
events_free(events *e)
{
    int c;

    for (c = 0; c < e->b.n_columns; c++)
        sw__free(e->data[c]);
}

static sw_rc
events_parse(json_t *ev, events *e, sw_err *err)
{
    const char *name;
    json_t *a;
    int64_t n = -1;

    memset(e, 0, sizeof(*e));
    e->b.columns = e->cols;
    if (!json_is_object(ev) || json_object_size(ev) < 1 ||
        json_object_size(ev) >= SW_MAX_FIELDS)
        return sw__fail(err, SW_E_FORMAT,
                        "PIPELINE: golden events: expected {field: [values]}");
    json_object_foreach(ev, name, a)
    {
        sw_column *c = &e->cols[e->b.n_columns];
        int64_t i, width = 1;
        int is_str = 0, is_int = 1;

        if (!json_is_array(a) || strlen(name) >= 64 ||
            (n >= 0 && (int64_t)json_array_size(a) != n))
            return sw__fail(err, SW_E_FORMAT,
                            "PIPELINE: golden events: column '%.60s' is not "
                            "a list as long as the others",
                            name);
        n = (int64_t)json_array_size(a);
        for (i = 0; i < n; i++) {
            json_t *v = json_array_get(a, (size_t)i);

            is_str |= json_is_string(v);
            is_int &= json_is_integer(v);
            if (json_is_string(v) &&
                (int64_t)json_string_length(v) + 1 > width)
                width = (int64_t)json_string_length(v) + 1;
            if (!json_is_string(v) && !json_is_number(v))
                return sw__fail(err, SW_E_FORMAT,
                                "PIPELINE: golden events: '%.60s'[%lld] is "
                                "neither text nor a number",
                                name, (long long)i);
        }
        snprintf(e->names[e->b.n_columns], 64, "%s", name);
        c->name = e->names[e->b.n_columns];
        c->type = is_str ? SW_COL_STR : is_int ? SW_COL_I64 : SW_COL_F64;
        c->width = is_str ? width : 0;
        e->data[e->b.n_columns] =
            sw__calloc((size_t)(n ? n : 1), is_str ? (size_t)width : 8);
        e->b.n_columns++;
        if (e->data[e->b.n_columns - 1] == NULL)
            return sw__fail(err, SW_E_NOMEM, "golden events: out of memory");
        c->data = e->data[e->b.n_columns - 1];
        for (i = 0; i < n; i++) {
            json_t *v = json_array_get(a, (size_t)i);

            if (is_str && !json_is_string(v))
                return sw__fail(err, SW_E_FORMAT,
                                "PIPELINE: golden events: '%.60s' mixes text "
                                "and numbers",
                                name);
            if (is_str)
                memcpy((char *)e->data[e->b.n_columns - 1] + i * width,
                       json_string_value(v), json_string_length(v));
            else if (is_int)
                ((int64_t *)c->data)[i] = (int64_t)json_integer_value(v);
            else
                ((double *)c->data)[i] = json_number_value(v);
        }
    }
    e->b.n_rows = n;
    return SW_OK;
}

/* Replay events from an empty pipeline of b's spec in arrival order and
 * score the rows: *seq and *pred (owned by the caller) get the arrival
 * numbers of the scored events and their outputs. */
static sw_rc
replay(const sw_model *m, const sw_bundle *b, json_t *ev, int64_t **seq,
       double **pred, int64_t *n_rows, sw_err *err)
{
    sw_pipeline *p = NULL;
    sw_result *r = NULL;
    json_t *spec = NULL;
    char *text = NULL;
    events e;
    int64_t n_out;
    sw_rc rc;

    *seq = NULL;
    *pred = NULL;
    *n_rows = 0;
    memset(&e, 0, sizeof(e));
    spec = json_loads(b->spec, 0, NULL);
    if (spec == NULL ||
        json_object_set_new(spec, "emission", json_string("arrival")) != 0 ||
        (text = json_dumps(spec, JSON_COMPACT)) == NULL) {
        rc = sw__fail(err, SW_E_NOMEM, "golden events: out of memory");
        goto done;
    }
    if ((rc = events_parse(ev, &e, err)) != SW_OK ||
        (rc = sw_pipeline_new(text, &p, err)) != SW_OK ||
        (rc = sw_result_new(&r, err)) != SW_OK ||
        (rc = sw_pipeline_push(p, &e.b, r, err)) != SW_OK)
        goto done;
    n_out = r->n * sw_model_n_outputs(m);
    *seq = sw__alloc_array((size_t)(r->n ? r->n : 1), sizeof(int64_t));
    *pred = sw__alloc_array((size_t)(n_out ? n_out : 1), sizeof(double));
    if (*seq == NULL || *pred == NULL) {
        rc = sw__fail(err, SW_E_NOMEM, "golden events: out of memory");
        goto done;
    }
    memcpy(*seq, r->seq, (size_t)r->n * sizeof(int64_t));
    rc = sw_model_predict_result(m, p, r, *pred, n_out, err);
    *n_rows = r->n;
done:
    if (rc != SW_OK) {
        sw__free(*seq);
        sw__free(*pred);
        *seq = NULL;
        *pred = NULL;
    }
    events_free(&e);
    sw__free(text);
    json_decref(spec);
    sw_result_free(r);
    sw_pipeline_free(p);
    return rc;
}

/* Bundles whose spec hashes private ids cannot be replayed without the
 * secret, which never travels: their golden events are not kept. */
/* 1 or 0; -1 when the spec cannot be read (out of memory): golden
 * events must not be written then, they may be private. */
static int
has_privacy(const sw_bundle *b)
{
    json_t *spec = json_loads(b->spec, 0, NULL);
    int yes = spec == NULL ? -1 : json_object_get(spec, "privacy") != NULL;

    json_decref(spec);
    return yes;
}

sw_rc
sw__bundle_write(const sw_model *m, sw_buf *out, sw_err *err)
{
    const sw_bundle *b = m->bundle;
    json_t *root = NULL, *a, *g, *ev = NULL;
    int64_t *seq = NULL, n_rows = 0, i, n_o = sw_model_n_outputs(m);
    double *pred = NULL;
    char *text = NULL;
    int j, private_ = has_privacy(b);
    long refused = sw__alloc_failures();
    sw_rc rc = SW_OK;

    root = json_object();
    if (root == NULL || private_ < 0) {
        json_decref(root);
        return sw__fail(err, SW_E_NOMEM, "bundle: out of memory");
    }
    json_object_set_new(root, "spec", json_loads(b->spec, 0, NULL));
    a = json_array();
    for (j = 0; a != NULL && j < b->n_inputs; j++)
        json_array_append_new(a, json_string(b->inputs[j]));
    json_object_set_new(root, "inputs", a);
    json_object_set_new(root, "sparse", json_boolean(b->sparse));
    if (b->golden != NULL && !private_) {
        g = json_loads(b->golden, 0, NULL);
        ev = g ? json_incref(json_object_get(g, "events")) : NULL;
        json_decref(g);
        rc = replay(m, b, ev, &seq, &pred, &n_rows, err);
        if (rc != SW_OK)
            goto done;
        g = json_object();
        json_object_set(g, "events", ev);
        a = json_array();
        for (i = 0; a != NULL && i < n_rows; i++)
            json_array_append_new(a, json_integer(seq[i]));
        json_object_set_new(g, "seq", a);
        a = json_array();
        for (i = 0; a != NULL && i < n_rows * n_o; i++) {
            uint64_t u;
            char hex[17];

            memcpy(&u, &pred[i], 8);
            snprintf(hex, sizeof(hex), "%016llx", (unsigned long long)u);
            json_array_append_new(a, json_string(hex));
        }
        json_object_set_new(g, "out", a);
        json_object_set_new(root, "golden", g);
    }
    text = json_dumps(root, JSON_COMPACT | JSON_REAL_PRECISION(17));
    /* jansson drops what it could not allocate without a word: a tree
     * built while an allocation failed is not written */
    if (text == NULL || sw__alloc_failures() != refused) {
        rc = sw__fail(err, SW_E_NOMEM, "bundle: out of memory");
        goto done;
    }
    rc = sw__buf_put(out, text, strlen(text), err);
done:
    sw__free(text);
    json_decref(ev);
    json_decref(root);
    sw__free(seq);
    sw__free(pred);
    return rc;
}

sw_rc
sw__bundle_read(sw_model *m, const unsigned char *p, size_t len,
                uint64_t spec_hash, uint64_t schema_hash, sw_err *err)
{
    json_t *root = NULL, *spec, *a, *g;
    const char **names = NULL;
    char *text = NULL;
    sw_bundle *b = NULL;
    int64_t *seq = NULL, n_rows = 0, i, n_o = sw_model_n_outputs(m);
    double *pred = NULL;
    size_t j;
    sw_rc rc;

    if ((rc = sw__json_parse((const char *)p, len, "PIPELINE", SW_E_FORMAT,
                             &root, err)) != SW_OK)
        return rc;
    spec = json_object_get(root, "spec");
    a = json_object_get(root, "inputs");
    if (!json_is_object(spec) || !json_is_array(a) ||
        json_array_size(a) > 1000000 ||
        !json_is_boolean(json_object_get(root, "sparse"))) {
        rc = sw__fail(err, SW_E_FORMAT,
                      "PIPELINE: expected {\"spec\", \"inputs\", \"sparse\"}");
        goto done;
    }
    names = sw__calloc(json_array_size(a) + 1, sizeof(char *));
    text = json_dumps(spec, JSON_COMPACT);
    if (names == NULL || text == NULL) {
        rc = sw__fail(err, SW_E_NOMEM, "PIPELINE: out of memory");
        goto done;
    }
    for (j = 0; j < json_array_size(a); j++) {
        names[j] = json_string_value(json_array_get(a, j));
        if (names[j] == NULL) {
            rc = sw__fail(err, SW_E_FORMAT,
                          "PIPELINE: inputs[%zu] is not a column name", j);
            goto done;
        }
    }
    rc = bundle_new(text, names, (int)json_array_size(a),
                    json_is_true(json_object_get(root, "sparse")), &b, err);
    if (rc != SW_OK) {
        rc = sw__fail_wrap(err, SW_E_FORMAT, rc, "PIPELINE: ");
        goto done;
    }
    if (b->spec_hash != spec_hash || b->schema_hash != schema_hash) {
        rc = sw__fail(err, SW_E_FORMAT,
                      "PIPELINE: the header's spec and schema hashes "
                      "(%016llx, %016llx) are not those of the spec it holds "
                      "(%016llx, %016llx)",
                      (unsigned long long)spec_hash,
                      (unsigned long long)schema_hash,
                      (unsigned long long)b->spec_hash,
                      (unsigned long long)b->schema_hash);
        goto done;
    }
    if (bundle_width(b) != sw_model_n_features(m)) {
        rc = sw__fail(err, SW_E_FORMAT,
                      "PIPELINE: gives %lld features, the model reads %lld",
                      (long long)bundle_width(b),
                      (long long)sw_model_n_features(m));
        goto done;
    }
    sw__bundle_free(m->bundle);
    m->bundle = b;
    b = NULL;
    g = json_object_get(root, "golden");
    if (g != NULL) {
        json_t *want_seq = json_object_get(g, "seq"),
               *want = json_object_get(g, "out");

        if (!json_is_array(want_seq) || !json_is_array(want)) {
            rc = sw__fail(err, SW_E_FORMAT,
                          "PIPELINE: golden: expected events, seq and out");
            goto done;
        }
        rc = replay(m, m->bundle, json_object_get(g, "events"), &seq, &pred,
                    &n_rows, err);
        if (rc != SW_OK) {
            rc = sw__fail_wrap(err, SW_E_FORMAT, rc, "PIPELINE: golden: ");
            goto done;
        }
        if ((int64_t)json_array_size(want_seq) != n_rows ||
            (int64_t)json_array_size(want) != n_rows * n_o) {
            rc = sw__fail(err, SW_E_FORMAT,
                          "PIPELINE: golden: %lld events scored here, the file "
                          "has %zu",
                          (long long)n_rows, json_array_size(want_seq));
            goto done;
        }
        for (i = 0; i < n_rows * n_o; i++) {
            const char *h = json_string_value(json_array_get(want, (size_t)i));
            char *end;
            unsigned long long u;
            double v;

            u = h ? strtoull(h, &end, 16) : 0;
            memcpy(&v, &u, 8);
            if (h == NULL || *end != '\0' ||
                json_integer_value(json_array_get(want_seq,
                                                  (size_t)(i / n_o))) !=
                    seq[i / n_o] ||
                memcmp(&v, &pred[i], 8) != 0) {
                rc = sw__fail(err, SW_E_FORMAT,
                              "PIPELINE: golden event %lld scores %.17g here, "
                              "the file says %.17g: this build does not "
                              "compute the bundle's features and scores",
                              (long long)seq[i / n_o], pred[i], v);
                goto done;
            }
        }
        m->bundle->n_golden = n_rows;
        {
            char *ev = json_dumps(g, JSON_COMPACT | JSON_REAL_PRECISION(17));

            m->bundle->golden = ev ? sw__strdup(ev) : NULL;
            sw__free(ev);
        }
    }
    rc = SW_OK;
done:
    sw__free(text);
    sw__free(names);
    sw__free(seq);
    sw__free(pred);
    sw__bundle_free(b);
    json_decref(root);
    return rc;
}

sw_rc
sw__bundle_dup(const sw_bundle *b, sw_bundle **out, sw_err *err)
{
    sw_rc rc;

    *out = NULL;
    if (b == NULL)
        return SW_OK;
    rc = bundle_new(b->spec, (const char *const *)b->inputs, b->n_inputs,
                    b->sparse, out, err);
    if (rc == SW_OK && b->golden != NULL) {
        (*out)->golden = sw__strdup(b->golden);
        (*out)->n_golden = b->n_golden;
        if ((*out)->golden == NULL) {
            sw__bundle_free(*out);
            *out = NULL;
            return sw__fail(err, SW_E_NOMEM, "bundle: out of memory");
        }
    }
    return rc;
}

void
sw__bundle_describe(const sw_bundle *b, FILE *fp)
{
    int j;

    fprintf(fp, "pipeline\n  spec hash    %016llx\n  schema hash  %016llx\n",
            (unsigned long long)b->spec_hash,
            (unsigned long long)b->schema_hash);
    fprintf(fp, "  inputs       %d dense column%s%s\n", b->n_inputs,
            b->n_inputs == 1 ? "" : "s",
            b->sparse ? " + the hashed block" : "");
    for (j = 0; j < b->n_inputs; j++)
        fprintf(fp, "    %3d  %s\n", j, b->inputs[j]);
    fprintf(fp, "  spec         %s\n", b->spec);
    fprintf(fp, "  golden       %lld events replayed from empty state: "
                "bit-identical\n",
            (long long)b->n_golden);
}
