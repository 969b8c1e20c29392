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
    "count", "sum",  "mean",        "var",           "min",
    "max",   "last", "decayed_sum", "decayed_count", "time_since_last",
    "rate",  "hash"};

static const char *const type_names[] = {"int64",   "int32", "int8", "float64",
                                         "float32", "bool",  "str"};

/* Parse a duration: "250ms", "5s", "1m", "1h", "7d", "10us", or an
 * integer number of microseconds. */
static int
parse_duration(json_t *v, int64_t *out)
{
    const char *s, *end;
    double x;

    if (json_is_integer(v)) {
        *out = (int64_t)json_integer_value(v);
        return *out >= 0 ? 0 : -1;
    }
    if (!json_is_string(v))
        return -1;
    s = json_string_value(v);
    x = strtod(s, (char **)&end);
    if (end == s || !(x >= 0) || !isfinite(x))
        return -1;
    if (!strcmp(end, "us"))
        *out = (int64_t)x;
    else if (!strcmp(end, "ms"))
        *out = (int64_t)(x * 1e3);
    else if (!strcmp(end, "s"))
        *out = (int64_t)(x * 1e6);
    else if (!strcmp(end, "m"))
        *out = (int64_t)(x * 6e7);
    else if (!strcmp(end, "h"))
        *out = (int64_t)(x * 3.6e9);
    else if (!strcmp(end, "d"))
        *out = (int64_t)(x * 8.64e10);
    else
        return -1;
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
    return sw_fail(err, SW_E_INVAL,
                   "%s: '%s' is not an event field (fields: %s)", path, name,
                   list);
}

static int
is_numeric(int type)
{
    return type != SW_COL_STR;
}

/* The settings each operator accepts besides name and op. */
static int
allowed(op kind, const char *key)
{
    if (!strcmp(key, "name") || !strcmp(key, "op"))
        return 1;
    if (kind == OP_HASH)
        return !strcmp(key, "fields") || !strcmp(key, "dims");
    if (!strcmp(key, "key"))
        return 1;
    if (!strcmp(key, "field"))
        return kind != OP_COUNT && kind != OP_DECAYED_COUNT &&
               kind != OP_TIME_SINCE_LAST;
    if (!strcmp(key, "window"))
        return kind == OP_COUNT || kind == OP_SUM || kind == OP_MEAN ||
               kind == OP_VAR || kind == OP_MIN || kind == OP_MAX;
    if (!strcmp(key, "half_life"))
        return kind == OP_DECAYED_SUM || kind == OP_DECAYED_COUNT;
    if (!strcmp(key, "a") || !strcmp(key, "b"))
        return kind == OP_RATE;
    return 0;
}

static const int64_t op_slots[OP_N] = {1, 1, 2, 3, 1, 1, 2, 2, 2, 1, 2, 0};

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

static sw_rc
compile_feature(sw_pipeline *p, json_t *fj, int i, feature *f, sw_err *err)
{
    char path[64];
    const char *key;
    json_t *v;
    int k;

    snprintf(path, sizeof(path), "features[%d]", i);
    if (!json_is_object(fj))
        return sw_fail(err, SW_E_INVAL, "%s: expected an object", path);
    v = json_object_get(fj, "name");
    if (!json_is_string(v) || json_string_length(v) == 0)
        return sw_fail(err, SW_E_INVAL, "%s.name: expected a name", path);
    f->name = sw_strdup(json_string_value(v));
    if (f->name == NULL)
        return sw_fail(err, SW_E_NOMEM, "spec: out of memory");
    v = json_object_get(fj, "op");
    if (!json_is_string(v))
        return sw_fail(err, SW_E_INVAL, "%s.op: expected an operator", path);
    for (k = 0; k < OP_N && strcmp(op_names[k], json_string_value(v)); k++)
        ;
    if (k == OP_N)
        return sw_fail(err, SW_E_INVAL,
                       "%s.op: unknown operator '%s' (known: count, sum, "
                       "mean, var, min, max, last, decayed_sum, "
                       "decayed_count, time_since_last, rate, hash)",
                       path, json_string_value(v));
    f->kind = (op)k;
    f->field = -1;
    json_object_foreach(fj, key, v)
    {
        if (!allowed(f->kind, key))
            return sw_fail(err, SW_E_INVAL, "%s.%s: not a setting of %s", path,
                           key, op_names[f->kind]);
    }
    if (f->kind == OP_HASH) {
        json_t *fs = json_object_get(fj, "fields");
        json_int_t dims;

        if (!json_is_array(fs) || json_array_size(fs) < 1 ||
            json_array_size(fs) > SW_MAX_KEY_FIELDS)
            return sw_fail(err, SW_E_INVAL,
                           "%s.fields: expected 1..%d field names", path,
                           SW_MAX_KEY_FIELDS);
        f->n_hash = (int)json_array_size(fs);
        for (k = 0; k < f->n_hash; k++) {
            json_t *e = json_array_get(fs, (size_t)k);
            char sub[80];

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
            return sw_fail(err, SW_E_INVAL, "%s.dims: expected 1..2^31 buckets",
                           path);
        f->dims = (int64_t)dims;
        f->salt = sw_hash_bytes(f->name, strlen(f->name), 0x68617368);
        return SW_OK;
    }
    /* keyed operators */
    {
        json_t *kj = json_object_get(fj, "key");
        int keys[SW_MAX_KEY_FIELDS], n = 0;

        if (json_is_string(kj)) {
            if ((keys[0] = find_field(p, json_string_value(kj))) < 0)
                return bad_field(p, "key", json_string_value(kj), err);
            n = 1;
        } else if (json_is_array(kj) && json_array_size(kj) >= 1 &&
                   json_array_size(kj) <= SW_MAX_KEY_FIELDS) {
            for (n = 0; n < (int)json_array_size(kj); n++) {
                json_t *e = json_array_get(kj, (size_t)n);
                char sub[80];

                snprintf(sub, sizeof(sub), "%s.key[%d]", path, n);
                if (!json_is_string(e) ||
                    (keys[n] = find_field(p, json_string_value(e))) < 0)
                    return bad_field(
                        p, sub, json_is_string(e) ? json_string_value(e) : "?",
                        err);
            }
        } else {
            return sw_fail(err, SW_E_INVAL,
                           "%s.key: expected a field name or a list of 1..%d",
                           path, SW_MAX_KEY_FIELDS);
        }
        qsort(keys, (size_t)n, sizeof(int), cmp_int);
        f->table = table_for(p, keys, n);
    }
    v = json_object_get(fj, "field");
    if (f->kind != OP_COUNT && f->kind != OP_DECAYED_COUNT &&
        f->kind != OP_TIME_SINCE_LAST) {
        char sub[80];

        snprintf(sub, sizeof(sub), "%s.field", path);
        if (!json_is_string(v))
            return sw_fail(err, SW_E_INVAL, "%s: expected a field name", sub);
        f->field = find_field(p, json_string_value(v));
        if (f->field < 0)
            return bad_field(p, sub, json_string_value(v), err);
        if (!is_numeric(p->fields[f->field].type))
            return sw_fail(err, SW_E_INVAL,
                           "%s: '%s' is a string; %s needs numbers", sub,
                           json_string_value(v), op_names[f->kind]);
    }
    v = json_object_get(fj, "window");
    if (v != NULL) {
        json_t *w = json_object_get(v, "tumbling");

        if (!json_is_object(v) || json_object_size(v) != 1 || w == NULL ||
            parse_duration(w, &f->window) != 0 || f->window <= 0)
            return sw_fail(err, SW_E_INVAL,
                           "%s.window: expected {\"tumbling\": \"1m\"} "
                           "(other window kinds are not built yet)",
                           path);
    }
    if (f->kind == OP_DECAYED_SUM || f->kind == OP_DECAYED_COUNT) {
        int64_t hl = 0;

        v = json_object_get(fj, "half_life");
        if (v == NULL || parse_duration(v, &hl) != 0 || hl <= 0)
            return sw_fail(err, SW_E_INVAL,
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
            return sw_fail(err, SW_E_INVAL,
                           "%s.a, b: the Beta prior needs a > 0 and b > 0",
                           path);
    }
    f->n_slots = op_slots[f->kind] + (f->window > 0 ? 1 : 0);
    return SW_OK;
}

sw_rc
sw_spec_compile(const char *text, sw_pipeline *p, sw_err *err)
{
    json_error_t jerr;
    json_t *root = NULL, *ev, *fields, *feats, *v, *wm;
    const char *name;
    unsigned char digest[crypto_hash_sha256_BYTES];
    char *canon = NULL;
    int n_dense = 0;
    int64_t sparse = 0;
    size_t idx;
    sw_rc rc;

    root = json_loads(text, 0, &jerr);
    if (root == NULL) {
        rc = sw_fail(err, SW_E_INVAL,
                     "spec: not JSON (line %d, column %d: "
                     "%s)",
                     jerr.line, jerr.column, jerr.text);
        goto done;
    }
    ev = json_object_get(root, "events");
    if (!json_is_object(ev)) {
        rc = sw_fail(err, SW_E_INVAL,
                     "events: expected an object with "
                     "time and fields");
        goto done;
    }
    fields = json_object_get(ev, "fields");
    if (!json_is_object(fields) || json_object_size(fields) < 1 ||
        json_object_size(fields) >= SW_MAX_FIELDS) {
        rc = sw_fail(err, SW_E_INVAL,
                     "events.fields: expected {name: type} with 1..%d fields",
                     SW_MAX_FIELDS - 1);
        goto done;
    }
    json_object_foreach(fields, name, v)
    {
        int t;

        for (t = 0; t < 7 && (!json_is_string(v) ||
                              strcmp(type_names[t], json_string_value(v)));
             t++)
            ;
        if (t == 7) {
            rc = sw_fail(err, SW_E_INVAL,
                         "events.fields.%s: unknown type '%s' (int64, int32, "
                         "int8, float64, float32, bool, str)",
                         name, json_is_string(v) ? json_string_value(v) : "?");
            goto done;
        }
        p->fields[p->n_fields].name = sw_strdup(name);
        if (p->fields[p->n_fields].name == NULL) {
            rc = sw_fail(err, SW_E_NOMEM, "spec: out of memory");
            goto done;
        }
        p->fields[p->n_fields++].type = t;
    }
    v = json_object_get(ev, "time");
    if (!json_is_string(v)) {
        rc = sw_fail(err, SW_E_INVAL,
                     "events.time: expected the name of the "
                     "event-time column");
        goto done;
    }
    p->time_field = find_field(p, json_string_value(v));
    if (p->time_field < 0) {
        /* the time column need not be listed among the fields */
        p->fields[p->n_fields].name = sw_strdup(json_string_value(v));
        if (p->fields[p->n_fields].name == NULL) {
            rc = sw_fail(err, SW_E_NOMEM, "spec: out of memory");
            goto done;
        }
        p->fields[p->n_fields].type = SW_COL_I64;
        p->time_field = p->n_fields++;
    }
    v = json_object_get(ev, "time_unit");
    if (v == NULL || (json_is_string(v) && !strcmp(json_string_value(v), "us")))
        p->time_unit = 0;
    else if (json_is_string(v) && !strcmp(json_string_value(v), "ms"))
        p->time_unit = 1;
    else if (json_is_string(v) && !strcmp(json_string_value(v), "s"))
        p->time_unit = 2;
    else if (json_is_string(v) && !strcmp(json_string_value(v), "ns"))
        p->time_unit = 3;
    else {
        rc = sw_fail(err, SW_E_INVAL,
                     "events.time_unit: expected us, ms, s or ns");
        goto done;
    }

    feats = json_object_get(root, "features");
    if (!json_is_array(feats) || json_array_size(feats) < 1 ||
        json_array_size(feats) > 4096) {
        rc = sw_fail(err, SW_E_INVAL,
                     "features: expected a list of 1..4096 "
                     "features");
        goto done;
    }
    p->n_features = (int)json_array_size(feats);
    p->features = sw_calloc((size_t)p->n_features, sizeof(feature));
    p->tables = sw_calloc((size_t)p->n_features, sizeof(keytab));
    if (p->features == NULL || p->tables == NULL) {
        rc = sw_fail(err, SW_E_NOMEM, "spec: out of memory");
        goto done;
    }
    json_array_foreach(feats, idx, v)
    {
        feature *f = &p->features[idx];
        int j;

        rc = compile_feature(p, v, (int)idx, f, err);
        if (rc != SW_OK)
            goto done;
        for (j = 0; j < (int)idx; j++) {
            if (!strcmp(p->features[j].name, f->name)) {
                rc = sw_fail(err, SW_E_INVAL,
                             "features[%d].name: '%s' is used twice", (int)idx,
                             f->name);
                goto done;
            }
        }
        if (f->kind == OP_HASH) {
            f->offset = sparse;
            sparse += f->dims;
            p->n_hash++;
        } else {
            keytab *kt = &p->tables[f->table];

            f->offset = n_dense++;
            f->slot = kt->block;
            kt->block += f->n_slots;
        }
    }
    p->n_dense = n_dense;
    p->sparse_dims = sparse;

    wm = json_object_get(root, "watermark");
    if (wm != NULL) {
        json_t *o = json_object_get(wm, "out_of_orderness");
        json_t *l = json_object_get(wm, "allowed_lateness");

        if (!json_is_object(wm) || (o && parse_duration(o, &p->out_of_order)) ||
            (l && parse_duration(l, &p->lateness))) {
            rc = sw_fail(err, SW_E_INVAL,
                         "watermark: expected {\"out_of_orderness\": \"5s\", "
                         "\"allowed_lateness\": \"1m\"}");
            goto done;
        }
    }
    v = json_object_get(root, "ttl");
    if (v != NULL && (parse_duration(v, &p->ttl) != 0 || p->ttl <= 0)) {
        rc = sw_fail(err, SW_E_INVAL,
                     "ttl: expected a duration such as "
                     "\"7d\"");
        goto done;
    }
    json_object_foreach(root, name, v)
    {
        if (strcmp(name, "events") && strcmp(name, "features") &&
            strcmp(name, "watermark") && strcmp(name, "ttl")) {
            rc = sw_fail(err, SW_E_INVAL,
                         "%s: not a spec section (events, features, "
                         "watermark, ttl)",
                         name);
            goto done;
        }
    }
    {
        int f;

        int t, k;

        for (f = 0; f < p->n_fields; f++)
            p->fields[f].salt = sw_hash_bytes(
                p->fields[f].name, strlen(p->fields[f].name), 0x6669656c64);
        for (t = 0; t < p->n_tables; t++) {
            for (k = 0; k < p->tables[t].n_keys; k++)
                p->fields[p->tables[t].keys[k]].hashed = 1;
        }
        for (f = 0; f < p->n_features; f++) {
            for (k = 0; k < p->features[f].n_hash; k++)
                p->fields[p->features[f].hash_fields[k]].hashed = 1;
        }
    }
    /* kept in the user's order (for checkpoints), hashed sorted (so that
     * the same spec written in another order has the same hash) */
    canon = json_dumps(root, JSON_COMPACT);
    if (canon == NULL) {
        rc = sw_fail(err, SW_E_NOMEM, "spec: out of memory");
        goto done;
    }
    p->spec_json = sw_strdup(canon);
    free(canon);
    canon = json_dumps(root, JSON_SORT_KEYS | JSON_COMPACT);
    if (canon == NULL || p->spec_json == NULL) {
        rc = sw_fail(err, SW_E_NOMEM, "spec: out of memory");
        goto done;
    }
    if (p->spec_json == NULL) {
        rc = sw_fail(err, SW_E_NOMEM, "spec: out of memory");
        goto done;
    }
    if (sodium_init() < 0) {
        rc = sw_fail(err, SW_E_INTERNAL, "spec: libsodium failed");
        goto done;
    }
    crypto_hash_sha256(digest, (const unsigned char *)canon, strlen(canon));
    p->spec_hash = sw_get_le64(digest);
    rc = SW_OK;
done:
    free(canon); /* jansson's allocation */
    json_decref(root);
    return rc;
}

void
sw_spec_free(sw_pipeline *p)
{
    int i;

    for (i = 0; i < p->n_fields; i++)
        sw_free(p->fields[i].name);
    for (i = 0; p->features && i < p->n_features; i++)
        sw_free(p->features[i].name);
    sw_free(p->features);
    sw_free(p->spec_json);
}
