/* SPDX-License-Identifier: MIT */
/*
 * sw_json_decode.c - JSON event messages into typed columns, by the
 * "events" schema of a pipeline spec ({"time": "ts", "time_unit": "ms",
 * "fields": {"user": "str", ...}, "defaults": {"field": value}}, parsed
 * by sw_events_schema.c as the HDF5 tables' schema is), with
 * jansson. A message that is not JSON, not an object, lacks a field that
 * has no default, or holds a value of the wrong type is not decoded: its
 * row and reason go to the dead letters, and the others keep their order.
 * Defaults let older events that lack a newer field decode (backward-
 * compatible event versions). A message without the time field takes the
 * Kafka timestamp, in the schema's time unit.
 */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sw_avro.h"
#include "sw_events_schema.h"
#include "sw_internal.h"

#define MAX_FIELDS 64

const char *const sw_dead_reasons[] = {"not_json", "not_object",
                                       "missing",  "wrong_type",
                                       "not_avro", "unknown_schema"};

typedef struct dfield {
    char *name;
    int type; /* SW_COL_* */
    json_t *dflt;
    /* decoded values of the current batch */
    double *num;
    int64_t *i64;
    int64_t *s_at, *s_len;
} dfield;

struct sw_json_decoder {
    int n;
    dfield f[MAX_FIELDS];
    int time_field;   /* index in f */
    int64_t ms_scale; /* time units per ms (ns: 1e6 ... s: 1/1000 -> -1000) */
    int64_t cap, rows, n_dead, cap_dead;
    int64_t *row_src; /* source index of each decoded row */
    int64_t *dead_row;
    int *dead_why;
    int *dead_field; /* the field at fault, -1 for the whole message */
    unsigned char *arena;
    size_t used, arena_cap;
    sw_avro *avro; /* messages are Avro, not JSON */
};

void
sw_json_decoder_free(sw_json_decoder *d)
{
    int i;

    if (d == NULL)
        return;
    for (i = 0; i < d->n; i++) {
        sw_free(d->f[i].name);
        json_decref(d->f[i].dflt);
        sw_free(d->f[i].num);
        sw_free(d->f[i].i64);
        sw_free(d->f[i].s_at);
        sw_free(d->f[i].s_len);
    }
    sw_free(d->row_src);
    sw_free(d->dead_row);
    sw_free(d->dead_field);
    sw_free(d->dead_why);
    sw_free(d->arena);
    sw_avro_free(d->avro);
    sw_free(d);
}

sw_rc
sw_json_decoder_set_avro(sw_json_decoder *d, const char *reader_schema_json,
                         int framing, sw_err *err)
{
    sw_avro *a;
    sw_rc rc = sw_avro_new(reader_schema_json, framing, &a, err);

    if (rc != SW_OK)
        return rc;
    sw_avro_free(d->avro);
    d->avro = a;
    return SW_OK;
}

sw_rc
sw_json_decoder_add_avro_writer(sw_json_decoder *d, int32_t schema_id,
                                const char *writer_schema_json, sw_err *err)
{
    if (d->avro == NULL)
        return sw_fail(err, SW_E_STATE,
                       "avro: set the reader schema before writer schemas");
    return sw_avro_add_writer(d->avro, schema_id, writer_schema_json, err);
}

static int
add_field(sw_json_decoder *d, const char *name, int type)
{
    dfield *f = &d->f[d->n];

    f->name = sw_strdup(name);
    if (f->name == NULL)
        return -1;
    f->type = type;
    return d->n++;
}

sw_rc
sw_json_decoder_new(const char *schema, sw_json_decoder **out, sw_err *err)
{
    static const struct {
        const char *unit;
        int64_t scale;
    } units[] = {{"us", 1000}, {"ms", 1}, {"ns", 1000000}, {"s", -1000}};
    sw_events_schema sc;
    json_t *root = NULL, *ev, *v;
    sw_json_decoder *d = NULL;
    const char *name;
    sw_rc rc;
    int i;

    *out = NULL;
    if ((rc = sw_events_schema_parse(schema, "schema", &sc, err)) != SW_OK)
        return rc;
    if (sc.n > MAX_FIELDS) {
        rc =
            sw_fail(err, SW_E_INVAL, "schema: more than %d fields", MAX_FIELDS);
        goto done;
    }
    d = sw_calloc(1, sizeof(*d));
    if (d == NULL) {
        rc = sw_fail(err, SW_E_NOMEM, "schema: out of memory");
        goto done;
    }
    for (i = 0; i < sc.n; i++) {
        if (add_field(d, sc.name[i], sc.type[i]) < 0) {
            rc = sw_fail(err, SW_E_NOMEM, "schema: out of memory");
            goto done;
        }
    }
    d->time_field = sc.time;
    for (i = 0; i < 4; i++) {
        if (!strcmp(units[i].unit, sc.unit))
            d->ms_scale = units[i].scale;
    }
    /* defaults for fields that older events lack: parsed already, so
     * the text is JSON */
    root = json_loads(schema, 0, NULL);
    ev = json_object_get(root, "events");
    ev = json_is_object(ev) ? ev : root;
    json_object_foreach(json_object_get(ev, "defaults"), name, v)
    {
        int k = sw_events_schema_find(&sc, name);

        if (k < 0) {
            rc = sw_fail(err, SW_E_INVAL, "schema: defaults.%s: not a field",
                         name);
            goto done;
        }
        d->f[k].dflt = json_incref(v);
    }
done:
    json_decref(root);
    sw_events_schema_clear(&sc);
    if (rc != SW_OK) {
        sw_json_decoder_free(d);
        return rc;
    }
    *out = d;
    return SW_OK;
}

static sw_rc
room(sw_json_decoder *d, int64_t n, sw_err *err)
{
    int i;

    if (n <= d->cap)
        return SW_OK;
    for (i = 0; i < d->n; i++) {
        dfield *f = &d->f[i];
        void *a, *b;

        if (f->type == SW_COL_STR) {
            a = sw_realloc_array(f->s_at, (size_t)n, sizeof(int64_t));
            if (a != NULL)
                f->s_at = a;
            b = sw_realloc_array(f->s_len, (size_t)n, sizeof(int64_t));
            if (b != NULL)
                f->s_len = b;
        } else if (f->type == SW_COL_F64 || f->type == SW_COL_F32) {
            a = b = sw_realloc_array(f->num, (size_t)n, sizeof(double));
            if (a != NULL)
                f->num = a;
        } else {
            a = b = sw_realloc_array(f->i64, (size_t)n, sizeof(int64_t));
            if (a != NULL)
                f->i64 = a;
        }
        if (a == NULL || b == NULL)
            return sw_fail(err, SW_E_NOMEM, "decode: out of memory");
    }
    {
        void *a = sw_realloc_array(d->row_src, (size_t)n, sizeof(int64_t));

        if (a == NULL)
            return sw_fail(err, SW_E_NOMEM, "decode: out of memory");
        d->row_src = a;
    }
    d->cap = n;
    return SW_OK;
}

static sw_rc
dead(sw_json_decoder *d, int64_t row, int why, int field, sw_err *err)
{
    if (d->n_dead == d->cap_dead) {
        int64_t c = d->cap_dead ? 2 * d->cap_dead : 64;
        int64_t *a = sw_realloc_array(d->dead_row, (size_t)c, sizeof(int64_t));
        int *b, *f;

        if (a == NULL)
            return sw_fail(err, SW_E_NOMEM, "decode: out of memory");
        d->dead_row = a;
        b = sw_realloc_array(d->dead_why, (size_t)c, sizeof(int));
        if (b == NULL)
            return sw_fail(err, SW_E_NOMEM, "decode: out of memory");
        d->dead_why = b;
        f = sw_realloc_array(d->dead_field, (size_t)c, sizeof(int));
        if (f == NULL)
            return sw_fail(err, SW_E_NOMEM, "decode: out of memory");
        d->dead_field = f;
        d->cap_dead = c;
    }
    d->dead_row[d->n_dead] = row;
    d->dead_field[d->n_dead] = field;
    d->dead_why[d->n_dead++] = why;
    return SW_OK;
}

/* Store v as field i of row r; -1 if v has the wrong type. */
static int
put(sw_json_decoder *d, int i, int64_t r, json_t *v)
{
    dfield *f = &d->f[i];

    switch (f->type) {
    case SW_COL_STR: {
        size_t n = json_string_length(v);

        if (!json_is_string(v))
            return -1;
        if (d->used + n > d->arena_cap) {
            size_t c = d->arena_cap ? d->arena_cap : 65536;
            unsigned char *a;

            while (c < d->used + n)
                c *= 2;
            a = sw_realloc_array(d->arena, c, 1);
            if (a == NULL)
                return -2;
            d->arena = a;
            d->arena_cap = c;
        }
        memcpy(d->arena + d->used, json_string_value(v), n);
        f->s_at[r] = (int64_t)d->used;
        f->s_len[r] = (int64_t)n;
        d->used += n;
        return 0;
    }
    case SW_COL_F64:
    case SW_COL_F32:
        if (!json_is_number(v))
            return -1;
        f->num[r] = json_number_value(v);
        return 0;
    case SW_COL_BOOL:
        if (!json_is_boolean(v) && !json_is_integer(v))
            return -1;
        f->i64[r] =
            json_is_boolean(v) ? json_is_true(v) : json_integer_value(v) != 0;
        return 0;
    default:
        if (json_is_integer(v)) {
            f->i64[r] = (int64_t)json_integer_value(v);
            return 0;
        }
        if (json_is_real(v) &&
            json_real_value(v) == floor(json_real_value(v)) &&
            fabs(json_real_value(v)) < 9.0e15) {
            f->i64[r] = (int64_t)json_real_value(v);
            return 0;
        }
        return -1;
    }
}

sw_rc
sw_json_decode(sw_json_decoder *d, const unsigned char *bytes,
               const int64_t *at, const int64_t *len,
               const int64_t *timestamp_ms, int64_t n, int64_t *rows,
               sw_err *err)
{
    int64_t k;
    sw_rc rc;

    d->rows = d->n_dead = 0;
    d->used = 0;
    *rows = 0;
    if ((rc = room(d, n, err)) != SW_OK)
        return rc;
    for (k = 0; k < n; k++) {
        json_error_t jerr;
        int i, why = -1, bad_field = -1;
        int64_t r = d->rows;
        json_t *o = len[k] < 0        ? NULL
                    : d->avro != NULL ? sw_avro_to_json(d->avro, bytes + at[k],
                                                        (size_t)len[k], &why)
                                      : json_loadb((const char *)bytes + at[k],
                                                   (size_t)len[k], 0, &jerr);

        if (o == NULL) {
            if (why < 0)
                why = d->avro != NULL ? SW_DEAD_NOT_AVRO : 0;
        } else if (!json_is_object(o)) {
            why = 1;
        }
        for (i = 0; why < 0 && i < d->n; i++) {
            bad_field = i;
            json_t *v = json_object_get(o, d->f[i].name);
            int p;

            if (v == NULL || json_is_null(v)) {
                if (i == d->time_field && d->f[i].dflt == NULL &&
                    timestamp_ms != NULL) {
                    int64_t t = timestamp_ms[k];

                    d->f[i].i64[r] =
                        d->ms_scale > 0 ? t * d->ms_scale : t / -d->ms_scale;
                    if (d->f[i].type == SW_COL_F64 ||
                        d->f[i].type == SW_COL_F32)
                        d->f[i].num[r] = (double)d->f[i].i64[r];
                    continue;
                }
                v = d->f[i].dflt;
                if (v == NULL) {
                    why = 2;
                    break;
                }
            }
            p = put(d, i, r, v);
            if (p == -2) {
                json_decref(o);
                return sw_fail(err, SW_E_NOMEM, "decode: out of memory");
            }
            if (p < 0)
                why = 3;
        }
        json_decref(o);
        if (why >= 0) {
            if (why < 2)
                bad_field = -1;
            if ((rc = dead(d, k, why, bad_field, err)) != SW_OK)
                return rc;
            continue;
        }
        d->row_src[r] = k;
        d->rows++;
    }
    *rows = d->rows;
    return SW_OK;
}

int
sw_json_decoder_n_fields(const sw_json_decoder *d)
{
    return d->n;
}

void
sw_json_decoder_field(const sw_json_decoder *d, int i, const char **name,
                      int *type, const double **num, const int64_t **ints,
                      const int64_t **str_at, const int64_t **str_len)
{
    const dfield *f = &d->f[i];

    *name = f->name;
    *type = f->type;
    *num = f->num;
    *ints = f->i64;
    *str_at = f->s_at;
    *str_len = f->s_len;
}

const unsigned char *
sw_json_decoder_strings(const sw_json_decoder *d)
{
    return d->arena;
}

const int64_t *
sw_json_decoder_rows(const sw_json_decoder *d)
{
    return d->row_src;
}

int64_t
sw_json_decoder_dead(const sw_json_decoder *d, const int64_t **row,
                     const int **reason)
{
    *row = d->dead_row;
    *reason = d->dead_why;
    return d->n_dead;
}

const char *
sw_json_decoder_dead_field(const sw_json_decoder *d, int64_t k)
{
    if (k < 0 || k >= d->n_dead || d->dead_field[k] < 0)
        return NULL;
    return d->f[d->dead_field[k]].name;
}
