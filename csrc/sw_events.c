/* SPDX-License-Identifier: MIT */
/*
 * sw_events.c - the events schema, spelled once for the spec compiler, the
 * io adapters and the JSON decoder: column type names (in SW_COL_* order),
 * time units (in the pipeline's time_unit order), and the one walk of a
 * spec's "events" entry with its messages.
 */
#include <jansson.h>
#include <string.h>

#include "sw_internal.h"

const char *const sw_col_type_names[SW_COL_TYPES] = {
    "int64", "int32", "int8", "float64", "float32", "bool", "str"};

const char *const sw_time_unit_names[SW_TIME_UNITS] = {"us", "ms", "s", "ns"};

/* microseconds per unit, as a ratio: us 1/1, ms 1000/1, s 1e6/1, ns 1/1000 */
const int64_t sw_time_unit_us_num[SW_TIME_UNITS] = {1, 1000, 1000000, 1};
const int64_t sw_time_unit_us_den[SW_TIME_UNITS] = {1, 1, 1, 1000};

int
sw__col_type_of(const char *name)
{
    int t;

    for (t = 0; name != NULL && t < SW_COL_TYPES; t++)
        if (!strcmp(sw_col_type_names[t], name))
            return t;
    return -1;
}

int
sw__time_unit_of(const char *name)
{
    int u;

    if (name == NULL)
        return 0; /* microseconds unless said otherwise */
    for (u = 0; u < SW_TIME_UNITS; u++)
        if (!strcmp(sw_time_unit_names[u], name))
            return u;
    return -1;
}

void
sw__events_schema_clear(sw_events_schema *s)
{
    int i;

    for (i = 0; i < s->n; i++)
        sw__free(s->name[i]);
    memset(s, 0, sizeof(*s));
}

int
sw__events_schema_find(const sw_events_schema *s, const char *name)
{
    int i;

    for (i = 0; i < s->n; i++) {
        if (!strcmp(s->name[i], name))
            return i;
    }
    return -1;
}

static sw_rc
add(sw_events_schema *s, const char *name, int type, const char *what,
    sw_err *err)
{
    if (s->n == SW_SCHEMA_MAX_FIELDS)
        return sw__fail(err, SW_E_INVAL, "%s.fields: more than %d fields", what,
                        SW_SCHEMA_MAX_FIELDS);
    s->name[s->n] = sw__strdup(name);
    if (s->name[s->n] == NULL)
        return sw__fail(err, SW_E_NOMEM, "%s: out of memory", what);
    s->type[s->n++] = type;
    return SW_OK;
}

static sw_rc
read_entry(const json_t *ev, const char *what, sw_events_schema *s,
           sw_err *err)
{
    const json_t *fields, *v;
    const char *name, *tname;
    sw_rc rc;
    int t;

    if (!json_is_object(ev))
        return sw__fail(err, SW_E_INVAL,
                        "%s: expected {\"time\": name, \"fields\": "
                        "{name: type}}",
                        what);
    fields = json_object_get(ev, "fields");
    if (!json_is_object(fields) || json_object_size(fields) < 1)
        return sw__fail(err, SW_E_INVAL,
                        "%s.fields: expected {name: type} with at least one "
                        "field",
                        what);
    v = json_object_get(ev, "time");
    tname = json_string_value(v);
    if (tname == NULL)
        return sw__fail(err, SW_E_INVAL,
                        "%s.time: expected the name of the event-time column",
                        what);
    s->time = -1;
    /* jansson's iteration macro takes a non-const object */
    json_object_foreach((json_t *)fields, name, v)
    {
        t = sw__col_type_of(json_string_value(v));
        if (t < 0)
            return sw__fail(err, SW_E_INVAL,
                            "%s.fields.%s: unknown type '%s' (%s)", what, name,
                            json_is_string(v) ? json_string_value(v) : "?",
                            SW_COL_TYPE_CHOICES);
        if ((rc = add(s, name, t, what, err)) != SW_OK)
            return rc;
        if (!strcmp(name, tname))
            s->time = s->n - 1;
    }
    if (s->time < 0) {
        /* the time column need not be listed among the fields */
        if ((rc = add(s, tname, SW_COL_I64, what, err)) != SW_OK)
            return rc;
        s->time = s->n - 1;
    }
    v = json_object_get(ev, "time_unit");
    s->unit = v == NULL ? 0 : sw__time_unit_of(json_string_value(v));
    if (s->unit < 0 || (v != NULL && !json_is_string(v)))
        return sw__fail(err, SW_E_INVAL, "%s.time_unit: '%s', expected %s",
                        what, json_is_string(v) ? json_string_value(v) : "?",
                        SW_TIME_UNIT_CHOICES);
    return SW_OK;
}

sw_rc
sw__events_schema_read(const json_t *ev, const char *what, sw_events_schema *s,
                       sw_err *err)
{
    sw_rc rc;

    memset(s, 0, sizeof(*s));
    rc = read_entry(ev, what, s, err);
    if (rc != SW_OK)
        sw__events_schema_clear(s);
    return rc;
}

sw_rc
sw__events_schema_parse(const char *json, const char *what, sw_events_schema *s,
                        sw_err *err)
{
    json_t *root, *ev;
    sw_rc rc;

    memset(s, 0, sizeof(*s));
    if ((rc = sw__json_parse(json ? json : "", (size_t)-1, what, SW_E_INVAL,
                             &root, err)) != SW_OK)
        return rc;
    ev = json_object_get(root, "events");
    rc = sw__events_schema_read(json_is_object(ev) ? ev : root, what, s, err);
    if (rc == SW_OK && s->type[s->time] != SW_COL_I64) {
        rc = sw__fail(err, SW_E_INVAL,
                      "%s.fields.%s: the time field must be int64 here (the "
                      "io adapters give event times as integers)",
                      what, s->name[s->time]);
        sw__events_schema_clear(s);
    }
    json_decref(root);
    return rc;
}
