/* SPDX-License-Identifier: MIT */
/*
 * sw_events_schema.c - parse the "events" entry of a pipeline spec for the
 * io adapters (HDF5 tables), with jansson.
 */
#include <jansson.h>
#include <string.h>

#include "sw_events_schema.h"

void
sw_events_schema_clear(sw_events_schema *s)
{
    int i;

    for (i = 0; i < s->n; i++)
        sw_free(s->name[i]);
    memset(s, 0, sizeof(*s));
}

int
sw_events_schema_find(const sw_events_schema *s, const char *name)
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
        return sw_fail(err, SW_E_INVAL, "%s: more than %d fields (at %s)", what,
                       SW_SCHEMA_MAX_FIELDS, name);
    s->name[s->n] = sw_strdup(name);
    if (s->name[s->n] == NULL)
        return sw_fail(err, SW_E_NOMEM, "%s: out of memory", what);
    s->type[s->n++] = type;
    return SW_OK;
}

sw_rc
sw_events_schema_parse(const char *json, const char *what, sw_events_schema *s,
                       sw_err *err)
{
    json_t *root, *ev, *fields, *v;
    const char *name, *tname, *unit;
    sw_rc rc;
    int t;

    memset(s, 0, sizeof(*s));
    if ((rc = sw_json_parse(json ? json : "", (size_t)-1, what, SW_E_INVAL,
                            &root, err)) != SW_OK)
        return rc;
    ev = json_object_get(root, "events");
    ev = json_is_object(ev) ? ev : root;
    fields = json_object_get(ev, "fields");
    tname = json_string_value(json_object_get(ev, "time"));
    if (!json_is_object(fields) || tname == NULL) {
        rc =
            sw_fail(err, SW_E_INVAL,
                    "%s: expected {\"time\": \"ts\", \"fields\": {...}}", what);
        goto done;
    }
    s->time = -1;
    json_object_foreach(fields, name, v)
    {
        t = sw_col_type_of(json_string_value(v));
        if (t < 0) {
            rc = sw_fail(err, SW_E_INVAL,
                         "%s: fields.%s: unknown type '%s' (%s)", what, name,
                         json_is_string(v) ? json_string_value(v) : "?",
                         SW_COL_TYPE_CHOICES);
            goto done;
        }
        if ((rc = add(s, name, t, what, err)) != SW_OK)
            goto done;
        if (!strcmp(name, tname))
            s->time = s->n - 1;
    }
    if (s->time < 0) {
        if ((rc = add(s, tname, SW_COL_I64, what, err)) != SW_OK)
            goto done;
        s->time = s->n - 1;
    } else if (s->type[s->time] != SW_COL_I64) {
        rc = sw_fail(err, SW_E_INVAL, "%s: the time field '%s' must be int64",
                     what, tname);
        goto done;
    }
    unit = json_string_value(json_object_get(ev, "time_unit"));
    t = sw_time_unit_of(unit);
    if (t < 0 || (unit == NULL && json_object_get(ev, "time_unit") != NULL)) {
        rc = sw_fail(err, SW_E_INVAL, "%s: time_unit '%s' (%s)", what,
                     unit ? unit : "?", SW_TIME_UNIT_CHOICES);
        goto done;
    }
    strcpy(s->unit, sw_time_unit_names[t]);
done:
    json_decref(root);
    if (rc != SW_OK)
        sw_events_schema_clear(s);
    return rc;
}
