/* SPDX-License-Identifier: MIT */
/*
 * sw_spec.c - compile a pipeline spec (JSON, parsed with jansson) into a
 * plan: typed fields, features with their state slots, and one key table
 * per distinct set of key fields.
 *
 * Every mistake is reported with the path of the spec element at fault
 * ("features[3].field: 'prcie' is not an event field ...") and nothing is
 * built; a spec that compiles can be run, checkpointed and restored.
 */
#include <jansson.h>
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>

#include "sw_pipeline_int.h"

static const char *const op_names[OP_N] = {
    "count",       "sum",   "mean",        "var",           "min",
    "max",         "last",  "decayed_sum", "decayed_count", "time_since_last",
    "rate",        "hash",  "distinct",    "histogram",     "daily_profile",
    "standardize", "log1p", "bucketize",   "one_hot",       "value"};

/* Parse a duration: "250ms", "5s", "1m", "1h", "7d", "10us", or an
 * integer number of microseconds. */
int
sw__parse_duration(json_t *v, int64_t *out)
{
    /* 1,000 years: longer durations are mistakes, and sums of two of them
     * with an event time stay far from overflowing int64 */
    const double max_us = 1000 * 365.25 * 8.64e10;
    const char *s, *end;
    double x, us;

    if (json_is_integer(v)) {
        *out = (int64_t)json_integer_value(v);
        return *out >= 0 && *out <= (int64_t)max_us ? 0 : -1;
    }
    if (!json_is_string(v))
        return -1;
    s = json_string_value(v);
    x = strtod(s, (char **)&end);
    if (end == s || !(x >= 0) || !isfinite(x))
        return -1;
    if (!strcmp(end, "us"))
        us = x;
    else if (!strcmp(end, "ms"))
        us = x * 1e3;
    else if (!strcmp(end, "s"))
        us = x * 1e6;
    else if (!strcmp(end, "m"))
        us = x * 6e7;
    else if (!strcmp(end, "h"))
        us = x * 3.6e9;
    else if (!strcmp(end, "d"))
        us = x * 8.64e10;
    else
        return -1;
    if (us > max_us) /* checked before the conversion, which would overflow */
        return -1;
    *out = (int64_t)us;
    return 0;
}

static int
find_field(const sw_pipeline *p, const char *name)
{
    int i;

    for (i = 0; i < p->n_fields; i++) {
        if (!strcmp(p->fields[i].name, name))
            return i;
    }
    return -1;
}

static void
field_list(const sw_pipeline *p, char *buf, size_t len)
{
    size_t used = 0;
    int i;

    buf[0] = '\0';
    for (i = 0; i < p->n_fields && used + 2 < len; i++)
        used += (size_t)snprintf(buf + used, len - used, "%s%s", i ? ", " : "",
                                 p->fields[i].name);
}

static sw_rc
bad_field(const sw_pipeline *p, const char *path, const char *name, sw_err *err)
{
    char list[160];

    field_list(p, list, sizeof(list));
    return sw__fail(err, SW_E_INVAL,
                    "%s: '%s' is not an event field (fields: %s)", path, name,
                    list);
}

static int
is_numeric(int type)
{
    return type != SW_COL_STR;
}

static int
stateless(op kind)
{
    return kind == OP_LOG1P || kind == OP_BUCKETIZE || kind == OP_ONE_HOT ||
           kind == OP_VALUE;
}

/* Aggregations whose state a window may restrict. */
static int
windowable(op kind)
{
    return kind == OP_COUNT || kind == OP_SUM || kind == OP_MEAN ||
           kind == OP_VAR || kind == OP_MIN || kind == OP_MAX ||
           kind == OP_DISTINCT || kind == OP_HISTOGRAM || kind == OP_LAST ||
           kind == OP_RATE || kind == OP_TIME_SINCE_LAST ||
           kind == OP_STANDARDIZE;
}

/* The settings each operator accepts besides name and op. */
static int
allowed(op kind, const char *key)
{
    if (!strcmp(key, "name") || !strcmp(key, "op"))
        return 1;
    if (!strcmp(key, "default"))
        return kind != OP_HASH;
    if (kind == OP_HASH)
        return !strcmp(key, "fields") || !strcmp(key, "dims");
    if (!strcmp(key, "key"))
        return !stateless(kind);
    if (!strcmp(key, "field"))
        return kind != OP_COUNT && kind != OP_DECAYED_COUNT &&
               kind != OP_TIME_SINCE_LAST;
    if (!strcmp(key, "window"))
        return windowable(kind);
    if (!strcmp(key, "half_life"))
        return kind == OP_DECAYED_SUM || kind == OP_DECAYED_COUNT;
    if (!strcmp(key, "a") || !strcmp(key, "b"))
        return kind == OP_RATE;
    if (!strcmp(key, "edges"))
        return kind == OP_BUCKETIZE || kind == OP_HISTOGRAM;
    if (!strcmp(key, "values"))
        return kind == OP_ONE_HOT || kind == OP_HISTOGRAM;
    if (!strcmp(key, "days") || !strcmp(key, "decay"))
        return kind == OP_DAILY_PROFILE;
    return 0;
}

/* State doubles of each operator (before windows; histogram and
 * daily_profile depend on their settings). */
static const int64_t op_slots[OP_N] = {
    1, 1, 2, 3, 1, 1, 2, 2, 2, 1, 2, 0, HLL_REGISTERS / 8, 0, 0, 3, 0, 0, 0, 0};

/* The table for a sorted set of key fields, added if new. */
static int
table_for(sw_pipeline *p, const int *keys, int n)
{
    int t, i;

    for (t = 0; t < p->n_tables; t++) {
        if (p->tables[t].n_keys != n)
            continue;
        for (i = 0; i < n && p->tables[t].keys[i] == keys[i]; i++)
            ;
        if (i == n)
            return t;
    }
    t = p->n_tables++;
    memset(&p->tables[t], 0, sizeof(p->tables[t]));
    p->tables[t].n_keys = n;
    memcpy(p->tables[t].keys, keys, (size_t)n * sizeof(int));
    return t;
}

static int
cmp_int(const void *a, const void *b)
{
    return *(const int *)a - *(const int *)b;
}

/* The key of an aggregation: a field or a list; standardize may have none
 * (statistics over all events); stateless transforms have none. */
static sw_rc
parse_key(sw_pipeline *p, json_t *fj, feature *f, const char *path, sw_err *err)
{
    json_t *kj = json_object_get(fj, "key");
    int keys[SW_MAX_KEY_FIELDS], n = 0;

    if (stateless(f->kind))
        return SW_OK;
    if (kj == NULL) { /* one state for the whole stream */
        f->table = table_for(p, keys, 0);
        return SW_OK;
    }
    if (json_is_string(kj)) {
        if ((keys[0] = find_field(p, json_string_value(kj))) < 0)
            return bad_field(p, "key", json_string_value(kj), err);
        n = 1;
    } else if (json_is_array(kj) && json_array_size(kj) >= 1 &&
               json_array_size(kj) <= SW_MAX_KEY_FIELDS) {
        for (n = 0; n < (int)json_array_size(kj); n++) {
            json_t *e = json_array_get(kj, (size_t)n);
            char sub[96];

            snprintf(sub, sizeof(sub), "%s.key[%d]", path, n);
            if (!json_is_string(e) ||
                (keys[n] = find_field(p, json_string_value(e))) < 0)
                return bad_field(p, sub,
                                 json_is_string(e) ? json_string_value(e) : "?",
                                 err);
        }
    } else {
        return sw__fail(err, SW_E_INVAL,
                        "%s.key: expected a field name or a list of 1..%d",
                        path, SW_MAX_KEY_FIELDS);
    }
    qsort(keys, (size_t)n, sizeof(int), cmp_int);
    f->table = table_for(p, keys, n);
    return SW_OK;
}

/* Operators that read a field's category rather than its number. */
static int
categorical(const feature *f, json_t *fj)
{
    return f->kind == OP_DISTINCT || f->kind == OP_ONE_HOT ||
           (f->kind == OP_HISTOGRAM && json_object_get(fj, "values"));
}

static sw_rc
parse_field(sw_pipeline *p, json_t *fj, feature *f, const char *path,
            sw_err *err)
{
    json_t *v = json_object_get(fj, "field");
    char sub[96];

    if (f->kind == OP_COUNT || f->kind == OP_DECAYED_COUNT ||
        f->kind == OP_TIME_SINCE_LAST ||
        (f->kind == OP_DAILY_PROFILE && v == NULL))
        return SW_OK;
    snprintf(sub, sizeof(sub), "%s.field", path);
    if (!json_is_string(v))
        return sw__fail(err, SW_E_INVAL, "%s: expected a field name", sub);
    f->field = find_field(p, json_string_value(v));
    if (f->field < 0)
        return bad_field(p, sub, json_string_value(v), err);
    if (p->fields[f->field].private_ && f->kind != OP_DISTINCT)
        return sw__fail(err, SW_E_INVAL,
                        "%s: '%s' is private (privacy.fields): only keys, "
                        "hash and distinct may use it",
                        sub, json_string_value(v));
    if (!categorical(f, fj) && !is_numeric(p->fields[f->field].type))
        return sw__fail(err, SW_E_INVAL,
                        "%s: '%s' is a string; %s needs numbers", sub,
                        json_string_value(v), op_names[f->kind]);
    return SW_OK;
}

static sw_rc
parse_window(json_t *fj, feature *f, const char *path, sw_err *err)
{
    json_t *v = json_object_get(fj, "window"), *w;

    if (v == NULL)
        return SW_OK;
    if (!json_is_object(v))
        goto bad;
    if ((w = json_object_get(v, "tumbling")) != NULL &&
        json_object_size(v) == 1) {
        f->wkind = WIN_TUMBLING;
        if (sw__parse_duration(w, &f->window) != 0 || f->window <= 0)
            goto bad;
        return SW_OK;
    }
    if ((w = json_object_get(v, "session")) != NULL &&
        json_object_size(v) == 1) {
        f->wkind = WIN_SESSION;
        if (sw__parse_duration(w, &f->window) != 0 || f->window <= 0)
            goto bad;
        return SW_OK;
    }
    if ((w = json_object_get(v, "hopping")) != NULL &&
        json_object_size(v) == 2 && json_object_get(v, "every") != NULL) {
        f->wkind = WIN_HOPPING;
        if (sw__parse_duration(w, &f->window) != 0 ||
            sw__parse_duration(json_object_get(v, "every"), &f->every) != 0 ||
            f->every <= 0 || f->window < f->every ||
            f->window % f->every != 0 || f->window / f->every > 1024)
            return sw__fail(err, SW_E_INVAL,
                            "%s.window: a hopping window is a whole number "
                            "(1..1024) of 'every' steps",
                            path);
        if (f->kind != OP_COUNT && f->kind != OP_SUM && f->kind != OP_MEAN &&
            f->kind != OP_VAR && f->kind != OP_MIN && f->kind != OP_MAX)
            return sw__fail(err, SW_E_INVAL,
                            "%s.window: hopping windows take count, sum, "
                            "mean, var, min and max",
                            path);
        f->n_hop = f->window / f->every;
        return SW_OK;
    }
bad:
    return sw__fail(err, SW_E_INVAL,
                    "%s.window: expected {\"tumbling\": \"1m\"}, {\"session\": "
                    "\"30m\"} or {\"hopping\": \"10m\", \"every\": \"1m\"}",
                    path);
}

/* The hash a listed value gets: the hash an event's value of the field
 * gets (see column_hash in sw_pipeline.c). */
int
sw__value_hash(const sw_pipeline *p, int fi, json_t *v, uint64_t *out)
{
    uint64_t salt = p->fields[fi].salt;

    if (p->fields[fi].type == SW_COL_STR) {
        if (!json_is_string(v))
            return -1;
        *out =
            sw__hash_bytes(json_string_value(v), json_string_length(v), salt);
        return 0;
    }
    if (json_is_integer(v)) {
        *out = sw__mix64(salt, (uint64_t)(int64_t)json_integer_value(v));
        return 0;
    }
    if (json_is_real(v) && json_real_value(v) == floor(json_real_value(v))) {
        *out = sw__mix64(salt, (uint64_t)(int64_t)json_real_value(v));
        return 0;
    }
    return -1;
}

static sw_rc
parse_settings(sw_pipeline *p, json_t *fj, feature *f, const char *path,
               sw_err *err)
{
    json_t *v;
    size_t i;

    if (f->kind == OP_DECAYED_SUM || f->kind == OP_DECAYED_COUNT) {
        int64_t hl = 0;

        v = json_object_get(fj, "half_life");
        if (v == NULL || sw__parse_duration(v, &hl) != 0 || hl <= 0)
            return sw__fail(err, SW_E_INVAL,
                            "%s.half_life: expected a duration such as \"1h\"",
                            path);
        f->half_life = (double)hl;
    }
    if (f->kind == OP_RATE) {
        json_t *a = json_object_get(fj, "a"), *b = json_object_get(fj, "b");

        f->a = a ? json_number_value(a) : 1.0;
        f->b = b ? json_number_value(b) : 1.0;
        if ((a && !json_is_number(a)) || (b && !json_is_number(b)) ||
            !(f->a > 0) || !(f->b > 0))
            return sw__fail(err, SW_E_INVAL,
                            "%s.a, b: the Beta prior needs a > 0 and b > 0",
                            path);
    }
    if ((v = json_object_get(fj, "edges")) != NULL) {
        if (json_object_get(fj, "values"))
            return sw__fail(err, SW_E_INVAL, "%s: edges or values, not both",
                            path);
        if (!json_is_array(v) || json_array_size(v) < 1 ||
            json_array_size(v) > 255)
            return sw__fail(err, SW_E_INVAL,
                            "%s.edges: expected 1..255 numbers", path);
        f->n_edges = (int)json_array_size(v);
        f->edges = sw__alloc_array((size_t)f->n_edges, sizeof(double));
        if (f->edges == NULL)
            return sw__fail(err, SW_E_NOMEM, "spec: out of memory");
        for (i = 0; i < json_array_size(v); i++) {
            json_t *e = json_array_get(v, i);

            f->edges[i] = json_number_value(e);
            if (!json_is_number(e) || !isfinite(f->edges[i]) ||
                (i > 0 && !(f->edges[i] > f->edges[i - 1])))
                return sw__fail(err, SW_E_INVAL,
                                "%s.edges[%zu]: expected finite numbers in "
                                "ascending order",
                                path, i);
        }
        f->n_out = f->kind == OP_HISTOGRAM ? f->n_edges + 1 : 1;
    } else if (f->kind == OP_BUCKETIZE ||
               (f->kind == OP_HISTOGRAM && !json_object_get(fj, "values"))) {
        return sw__fail(err, SW_E_INVAL, "%s: %s needs edges%s", path,
                        op_names[f->kind],
                        f->kind == OP_HISTOGRAM ? " or values" : "");
    }
    if ((v = json_object_get(fj, "values")) != NULL) {
        if (!json_is_array(v) || json_array_size(v) < 1 ||
            json_array_size(v) > 256)
            return sw__fail(err, SW_E_INVAL,
                            "%s.values: expected 1..256 values", path);
        f->n_values = (int)json_array_size(v);
        f->values = sw__alloc_array((size_t)f->n_values, sizeof(uint64_t));
        if (f->values == NULL)
            return sw__fail(err, SW_E_NOMEM, "spec: out of memory");
        for (i = 0; i < json_array_size(v); i++) {
            if (sw__value_hash(p, f->field, json_array_get(v, i),
                               &f->values[i]) != 0)
                return sw__fail(err, SW_E_INVAL,
                                "%s.values[%zu]: not a value of field '%s'",
                                path, i, p->fields[f->field].name);
        }
        f->n_out = f->n_values;
    } else if (f->kind == OP_ONE_HOT) {
        return sw__fail(err, SW_E_INVAL, "%s: one_hot needs values", path);
    }
    if (f->kind == OP_DAILY_PROFILE) {
        json_t *d = json_object_get(fj, "days"),
               *k = json_object_get(fj, "decay");

        f->days = d ? (int64_t)json_integer_value(d) : 7;
        f->day_decay = k ? json_number_value(k) : 1.0;
        if ((d && !json_is_integer(d)) || f->days < 1 || f->days > 366 ||
            (k && !json_is_number(k)) || !(f->day_decay > 0) ||
            f->day_decay > 1)
            return sw__fail(err, SW_E_INVAL,
                            "%s: daily_profile needs days in 1..366 and a "
                            "decay in (0, 1]",
                            path);
    }
    return SW_OK;
}

/* Names of the feature's dense columns: its name, or name=value per
 * one-hot or histogram column. */
static sw_rc
column_names(json_t *fj, feature *f, sw_err *err)
{
    json_t *vals = json_object_get(fj, "values");
    char buf[160];
    int c;

    if (f->kind == OP_HASH)
        return SW_OK;
    f->cols = sw__calloc((size_t)f->n_out, sizeof(char *));
    if (f->cols == NULL)
        return sw__fail(err, SW_E_NOMEM, "spec: out of memory");
    for (c = 0; c < f->n_out; c++) {
        if (f->n_out == 1) {
            snprintf(buf, sizeof(buf), "%s", f->name);
        } else if (vals != NULL) {
            json_t *e = json_array_get(vals, (size_t)c);

            if (json_is_string(e))
                snprintf(buf, sizeof(buf), "%s=%s", f->name,
                         json_string_value(e));
            else
                snprintf(buf, sizeof(buf), "%s=%g", f->name,
                         json_number_value(e));
        } else if (c == 0) {
            snprintf(buf, sizeof(buf), "%s<%g", f->name, f->edges[0]);
        } else if (c == f->n_edges) {
            snprintf(buf, sizeof(buf), "%s>=%g", f->name, f->edges[c - 1]);
        } else {
            snprintf(buf, sizeof(buf), "%s[%g,%g)", f->name, f->edges[c - 1],
                     f->edges[c]);
        }
        f->cols[c] = sw__strdup(buf);
        if (f->cols[c] == NULL)
            return sw__fail(err, SW_E_NOMEM, "spec: out of memory");
    }
    return SW_OK;
}

static sw_rc
compile_feature(sw_pipeline *p, json_t *fj, int i, feature *f, sw_err *err)
{
    char path[64];
    const char *key;
    json_t *v;
    int k;
    sw_rc rc;

    snprintf(path, sizeof(path), "features[%d]", i);
    if (!json_is_object(fj))
        return sw__fail(err, SW_E_INVAL, "%s: expected an object", path);
    v = json_object_get(fj, "name");
    if (!json_is_string(v) || json_string_length(v) == 0)
        return sw__fail(err, SW_E_INVAL, "%s.name: expected a name", path);
    f->name = sw__strdup(json_string_value(v));
    if (f->name == NULL)
        return sw__fail(err, SW_E_NOMEM, "spec: out of memory");
    v = json_object_get(fj, "op");
    if (!json_is_string(v))
        return sw__fail(err, SW_E_INVAL, "%s.op: expected an operator", path);
    for (k = 0; k < OP_N && strcmp(op_names[k], json_string_value(v)); k++)
        ;
    if (k == OP_N) {
        char known[400];
        size_t used = 0;

        for (k = 0; k < OP_N && used < sizeof(known); k++)
            used += (size_t)snprintf(known + used, sizeof(known) - used,
                                     "%s%s", k ? ", " : "", op_names[k]);
        return sw__fail(err, SW_E_INVAL,
                        "%s.op: unknown operator '%s' (known: %s)", path,
                        json_string_value(v), known);
    }
    f->kind = (op)k;
    v = json_object_get(fj, "default");
    if (v != NULL) {
        if (!json_is_number(v) || !isfinite(json_number_value(v)))
            return sw__fail(err, SW_E_INVAL,
                            "%s.default: expected a finite number (the value "
                            "given instead of NaN before there is history)",
                            path);
        f->has_default = 1;
        f->dflt = json_number_value(v);
    }
    f->field = -1;
    f->table = -1;
    json_object_foreach(fj, key, v)
    {
        if (!allowed(f->kind, key))
            return sw__fail(err, SW_E_INVAL, "%s.%s: not a setting of %s", path,
                            key, op_names[f->kind]);
    }
    if (f->kind == OP_HASH) {
        json_t *fs = json_object_get(fj, "fields");
        json_int_t dims;

        if (!json_is_array(fs) || json_array_size(fs) < 1 ||
            json_array_size(fs) > SW_MAX_KEY_FIELDS)
            return sw__fail(err, SW_E_INVAL,
                            "%s.fields: expected 1..%d field names", path,
                            SW_MAX_KEY_FIELDS);
        f->n_hash = (int)json_array_size(fs);
        for (k = 0; k < f->n_hash; k++) {
            json_t *e = json_array_get(fs, (size_t)k);
            char sub[96];

            snprintf(sub, sizeof(sub), "%s.fields[%d]", path, k);
            if (!json_is_string(e) ||
                (f->hash_fields[k] = find_field(p, json_string_value(e))) < 0)
                return bad_field(p, sub,
                                 json_is_string(e) ? json_string_value(e) : "?",
                                 err);
        }
        v = json_object_get(fj, "dims");
        dims = json_is_integer(v) ? json_integer_value(v) : 0;
        if (dims < 1 || dims > ((json_int_t)1 << 31))
            return sw__fail(err, SW_E_INVAL,
                            "%s.dims: expected 1..2^31 buckets", path);
        f->dims = (int64_t)dims;
        f->salt = sw__hash_bytes(f->name, strlen(f->name), 0x68617368);
        return SW_OK;
    }
    f->table = -1;
    f->n_out = 1;
    rc = parse_key(p, fj, f, path, err);
    if (rc == SW_OK)
        rc = parse_field(p, fj, f, path, err);
    if (rc == SW_OK)
        rc = parse_window(fj, f, path, err);
    if (rc == SW_OK)
        rc = parse_settings(p, fj, f, path, err);
    if (rc != SW_OK)
        return rc;
    f->n_slots = op_slots[f->kind];
    if (f->kind == OP_HISTOGRAM)
        f->n_slots = f->n_out + 1;
    if (f->kind == OP_DAILY_PROFILE)
        f->n_slots = 2 * f->days;
    if (f->wkind == WIN_TUMBLING || f->wkind == WIN_SESSION)
        f->n_slots += 1;
    if (f->wkind == WIN_HOPPING)
        f->n_slots = sw__hop_width(f) * f->n_hop;
    return column_names(fj, f, err);
}

static void
compile_step(const feature *f, step_op *o)
{
    static const int plain[OP_N] = {
        [OP_COUNT] = STEP_COUNT + 1,
        [OP_SUM] = STEP_SUM + 1,
        [OP_MEAN] = STEP_MEAN + 1,
        [OP_VAR] = STEP_VAR + 1,
        [OP_MIN] = STEP_MIN + 1,
        [OP_MAX] = STEP_MAX + 1,
        [OP_LAST] = STEP_LAST + 1,
        [OP_DECAYED_SUM] = STEP_DECAYED_SUM + 1,
        [OP_DECAYED_COUNT] = STEP_DECAYED_COUNT + 1,
        [OP_TIME_SINCE_LAST] = STEP_SINCE + 1,
        [OP_RATE] = STEP_RATE + 1,
    };

    o->code = STEP_OTHER;
    if (f->wkind == WIN_NONE && plain[f->kind])
        o->code = plain[f->kind] - 1;
    if (f->wkind == WIN_TUMBLING && f->kind == OP_COUNT)
        o->code = STEP_TUMBLING_COUNT;
    if (f->wkind == WIN_TUMBLING && f->kind == OP_SUM)
        o->code = STEP_TUMBLING_SUM;
    o->field = f->field;
    o->slot = f->slot;
    o->out = f->offset;
    o->a = f->kind == OP_RATE ? f->a : f->half_life;
    o->b = f->b;
    o->window = f->window;
    o->f = f;
}

/* Group the features by table, then stateless, then hash (see plan). */
static sw_rc
make_plan(sw_pipeline *p, sw_err *err)
{
    int g, i, k = 0, n_groups = p->n_tables + 2;

    p->plan = sw__calloc((size_t)p->n_features, sizeof(int));
    p->plan_at = sw__calloc((size_t)n_groups + 1, sizeof(int));
    if (p->plan == NULL || p->plan_at == NULL)
        return sw__fail(err, SW_E_NOMEM, "spec: out of memory");
    for (g = 0; g < n_groups; g++) {
        p->plan_at[g] = k;
        for (i = 0; i < p->n_features; i++) {
            const feature *f = &p->features[i];
            int group = f->kind == OP_HASH ? p->n_tables + 1
                        : f->table < 0     ? p->n_tables
                                           : f->table;

            if (group == g)
                p->plan[k++] = i;
        }
    }
    p->plan_at[n_groups] = k;
    p->ops = sw__calloc((size_t)(p->plan_at[p->n_tables] + 1), sizeof(step_op));
    if (p->ops == NULL)
        return sw__fail(err, SW_E_NOMEM, "spec: out of memory");
    for (k = 0; k < p->plan_at[p->n_tables]; k++)
        compile_step(&p->features[p->plan[k]], &p->ops[k]);
    return SW_OK;
}

/* The events section (sw__events_schema_read: fields and their types, the
 * time column, the unit), the fields' salts, the privacy settings. */
static sw_rc
compile_events(sw_pipeline *p, json_t *root, sw_err *err)
{
    sw_events_schema sc;
    json_t *v;
    int i;
    sw_rc rc;

    rc = sw__events_schema_read(json_object_get(root, "events"), "events", &sc,
                                err);
    if (rc != SW_OK)
        return rc;
    if (sc.n > SW_MAX_FIELDS) {
        rc = sw__fail(err, SW_E_INVAL,
                      "events.fields: %d fields with the time column, a "
                      "pipeline takes at most %d",
                      sc.n, SW_MAX_FIELDS);
        goto done;
    }
    for (i = 0; i < sc.n; i++) {
        /* the names move to the pipeline */
        p->fields[i].name = sc.name[i];
        p->fields[i].type = sc.type[i];
        p->fields[i].salt =
            sw__hash_bytes(sc.name[i], strlen(sc.name[i]), 0x6669656c64);
        sc.name[i] = NULL;
    }
    p->n_fields = sc.n;
    p->time_field = sc.time;
    p->time_unit = sc.unit;
    v = json_object_get(root, "privacy");
    if (v != NULL)
        rc = sw__privacy_parse(p, v, err);
done:
    sw__events_schema_clear(&sc);
    return rc;
}

/* The features, their layout in the dense row and the hashed block, the
 * plan, the column names and the defaults' fill list. */
static sw_rc
compile_features(sw_pipeline *p, json_t *feats, sw_err *err)
{
    json_t *v;
    int i, n_dense = 0;
    int64_t sparse = 0;
    size_t idx;
    sw_rc rc;

    if (!json_is_array(feats) || json_array_size(feats) < 1 ||
        json_array_size(feats) > 4096)
        return sw__fail(err, SW_E_INVAL,
                        "features: expected a list of 1..4096 "
                        "features");
    p->n_features = (int)json_array_size(feats);
    p->features = sw__calloc((size_t)p->n_features, sizeof(feature));
    p->tables = sw__calloc((size_t)p->n_features, sizeof(keytab));
    if (p->features == NULL || p->tables == NULL)
        return sw__fail(err, SW_E_NOMEM, "spec: out of memory");
    json_array_foreach(feats, idx, v)
    {
        feature *f = &p->features[idx];
        int j;

        rc = compile_feature(p, v, (int)idx, f, err);
        if (rc != SW_OK)
            return rc;
        for (j = 0; j < (int)idx; j++) {
            if (!strcmp(p->features[j].name, f->name))
                return sw__fail(err, SW_E_INVAL,
                                "features[%d].name: '%s' is used twice",
                                (int)idx, f->name);
        }
        if (f->kind == OP_HASH) {
            f->offset = sparse;
            sparse += f->dims;
            p->n_hash++;
        } else {
            f->offset = n_dense;
            n_dense += f->n_out;
            if (f->table >= 0) {
                keytab *kt = &p->tables[f->table];

                f->slot = kt->block;
                kt->block += f->n_slots;
            }
        }
    }
    p->n_dense = n_dense;
    p->sparse_dims = sparse;
    if ((rc = make_plan(p, err)) != SW_OK)
        return rc;
    p->colnames = sw__calloc((size_t)(n_dense ? n_dense : 1), sizeof(char *));
    if (p->colnames == NULL)
        return sw__fail(err, SW_E_NOMEM, "spec: out of memory");
    for (i = 0; i < p->n_features; i++) {
        const feature *f = &p->features[i];
        int c;

        for (c = 0; f->kind != OP_HASH && c < f->n_out; c++)
            p->colnames[f->offset + c] = f->cols[c];
        p->n_fill += f->has_default ? f->n_out : 0;
    }
    if (p->n_fill > 0) {
        int k = 0;

        p->fill_col = sw__alloc_array((size_t)p->n_fill, sizeof(int64_t));
        p->fill_val = sw__alloc_array((size_t)p->n_fill, sizeof(double));
        if (p->fill_col == NULL || p->fill_val == NULL)
            return sw__fail(err, SW_E_NOMEM, "spec: out of memory");
        for (i = 0; i < p->n_features; i++) {
            const feature *f = &p->features[i];
            int c;

            for (c = 0; f->has_default && c < f->n_out; c++, k++) {
                p->fill_col[k] = f->offset + c;
                p->fill_val[k] = f->dflt;
            }
        }
    }
    return SW_OK;
}

/* The optional sections: watermark, ttl, label_join, max_keys, emission;
 * and nothing else. */
static sw_rc
compile_sections(sw_pipeline *p, json_t *root, sw_err *err)
{
    json_t *v, *wm;
    const char *name;
    sw_rc rc;

    wm = json_object_get(root, "watermark");
    if (wm != NULL) {
        json_t *o = json_object_get(wm, "out_of_orderness");
        json_t *l = json_object_get(wm, "allowed_lateness");
        json_t *d = json_object_get(wm, "idle_timeout");
        json_t *np = json_object_get(wm, "partitions");

        if (!json_is_object(wm) ||
            (o && sw__parse_duration(o, &p->out_of_order)) ||
            (l && sw__parse_duration(l, &p->lateness)) ||
            (d && (sw__parse_duration(d, &p->idle_timeout) ||
                   p->idle_timeout <= 0)) ||
            (np && (!json_is_integer(np) || json_integer_value(np) < 1 ||
                    json_integer_value(np) > SW_MAX_PARTITIONS)) ||
            json_object_size(wm) != (size_t)(!!o + !!l + !!d + !!np))
            return sw__fail(
                err, SW_E_INVAL,
                "watermark: expected {\"out_of_orderness\": \"5s\", "
                "\"allowed_lateness\": \"1m\", \"partitions\": "
                "1..%d, \"idle_timeout\": \"10m\"}",
                SW_MAX_PARTITIONS);
    }
    if (wm != NULL && json_object_get(wm, "partitions") != NULL)
        p->declared_parts =
            (int)json_integer_value(json_object_get(wm, "partitions"));
    v = json_object_get(root, "ttl");
    if (v != NULL && (sw__parse_duration(v, &p->ttl) != 0 || p->ttl <= 0))
        return sw__fail(err, SW_E_INVAL,
                        "ttl: expected a duration such as "
                        "\"7d\"");
    v = json_object_get(root, "label_join");
    if (v != NULL && (rc = sw__join_parse(p, v, err)) != SW_OK)
        return rc;
    v = json_object_get(root, "max_keys");
    if (v != NULL) {
        if (!json_is_integer(v) || json_integer_value(v) < 1 ||
            json_integer_value(v) > 0xfffffffeLL)
            return sw__fail(err, SW_E_INVAL,
                            "max_keys: expected the most keys a key table may "
                            "hold, 1..4294967294");
        p->max_keys = (int64_t)json_integer_value(v);
    }
    v = json_object_get(root, "emission");
    if (v != NULL) {
        if (!json_is_string(v) || (strcmp(json_string_value(v), "arrival") &&
                                   strcmp(json_string_value(v), "watermark")))
            return sw__fail(err, SW_E_INVAL,
                            "emission: expected \"watermark\" (event-time "
                            "exact, the default) or \"arrival\" (each event "
                            "at once, in arrival order)");
        p->arrival = !strcmp(json_string_value(v), "arrival");
        if (p->arrival && p->join.on)
            return sw__fail(
                err, SW_E_INVAL,
                "emission: \"arrival\" does not go with label_join, "
                "which closes pairs by the watermark");
    }
    json_object_foreach(root, name, v)
    {
        if (strcmp(name, "events") && strcmp(name, "features") &&
            strcmp(name, "watermark") && strcmp(name, "ttl") &&
            strcmp(name, "privacy") && strcmp(name, "label_join") &&
            strcmp(name, "emission") && strcmp(name, "max_keys"))
            return sw__fail(err, SW_E_INVAL,
                            "%s: not a spec section (events, features, "
                            "watermark, ttl, privacy, label_join, emission, "
                            "max_keys)",
                            name);
    }
    return SW_OK;
}

/* Mark the fields whose values are hashed: key fields, hash features'
 * fields, and the fields of value lists and distinct counts. */
static void
mark_hashed_fields(sw_pipeline *p)
{
    int f, t, k;

    for (t = 0; t < p->n_tables; t++) {
        for (k = 0; k < p->tables[t].n_keys; k++)
            p->fields[p->tables[t].keys[k]].hashed = 1;
    }
    for (f = 0; f < p->n_features; f++) {
        const feature *ft = &p->features[f];

        for (k = 0; k < ft->n_hash; k++)
            p->fields[ft->hash_fields[k]].hashed = 1;
        if (ft->field >= 0 && ft->n_values + (ft->kind == OP_DISTINCT) > 0)
            p->fields[ft->field].hashed = 1;
    }
}

/* The spec's text as given, kept in the user's order (for checkpoints),
 * and its identity: the hash of its canonical form, keys sorted so that
 * the same spec written in another order has the same hash, and without
 * the emission mode (how rows are released is not what they hold: a
 * bundle's features served in either mode are the same features). */
static sw_rc
spec_identity(sw_pipeline *p, json_t *root, sw_err *err)
{
    unsigned char digest[crypto_hash_sha256_BYTES];
    char *canon = json_dumps(root, JSON_COMPACT);

    if (canon == NULL)
        return sw__fail(err, SW_E_NOMEM, "spec: out of memory");
    p->spec_json = sw__strdup(canon);
    sw__free(canon);
    if (p->spec_json == NULL)
        return sw__fail(err, SW_E_NOMEM, "spec: out of memory");
    json_object_del(root, "emission");
    canon = json_dumps(root, JSON_SORT_KEYS | JSON_COMPACT);
    if (canon == NULL)
        return sw__fail(err, SW_E_NOMEM, "spec: out of memory");
    if (sodium_init() < 0) {
        sw__free(canon);
        return sw__fail(err, SW_E_INTERNAL, "spec: libsodium failed");
    }
    crypto_hash_sha256(digest, (const unsigned char *)canon, strlen(canon));
    sw__free(canon);
    p->spec_hash = sw__get_le64(digest);
    return SW_OK;
}

sw_rc
sw__spec_compile(const char *text, sw_pipeline *p, sw_err *err)
{
    json_t *root;
    sw_rc rc = sw__json_parse(text, (size_t)-1, "spec", SW_E_INVAL, &root, err);

    if (rc != SW_OK)
        return rc;
    if ((rc = compile_events(p, root, err)) == SW_OK &&
        (rc = compile_features(p, json_object_get(root, "features"), err)) ==
            SW_OK &&
        (rc = compile_sections(p, root, err)) == SW_OK) {
        mark_hashed_fields(p);
        rc = spec_identity(p, root, err);
    }
    json_decref(root);
    return rc;
}

void
sw__spec_free(sw_pipeline *p)
{
    int i;

    for (i = 0; i < p->n_fields; i++)
        sw__free(p->fields[i].name);
    for (i = 0; p->features && i < p->n_features; i++) {
        feature *f = &p->features[i];
        int c;

        sw__free(f->name);
        sw__free(f->edges);
        sw__free(f->values);
        for (c = 0; f->cols && c < f->n_out; c++)
            sw__free(f->cols[c]);
        sw__free(f->cols);
    }
    sw__free(p->colnames);
    sw__free(p->fill_col);
    sw__free(p->fill_val);
    sw__free(p->plan);
    sw__free(p->plan_at);
    sw__free(p->ops);
    sw__free(p->features);
    sw__free(p->spec_json);
}
