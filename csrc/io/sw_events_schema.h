/* SPDX-License-Identifier: MIT */
/*
 * sw_events_schema.h - the "events" entry of a pipeline spec ({"time":
 * "ts", "time_unit": "us", "fields": {"user": "str", ...}}) as the io
 * adapters need it: the columns in order, the time column among them.
 */
#ifndef SW_EVENTS_SCHEMA_H
#define SW_EVENTS_SCHEMA_H

#include "sw_internal.h"

#define SW_SCHEMA_MAX_FIELDS 1024

typedef struct sw_events_schema {
    int n;
    char *name[SW_SCHEMA_MAX_FIELDS];
    int type[SW_SCHEMA_MAX_FIELDS]; /* SW_COL_* */
    int time;                       /* index of the time column */
    char unit[4];                   /* s, ms, us, ns */
} sw_events_schema;

/* Parse schema JSON (a spec's "events" entry, or a whole spec holding
 * one); the time column is added as int64 when fields lacks it. what
 * prefixes error messages. Free with sw_events_schema_clear. */
sw_rc sw_events_schema_parse(const char *json, const char *what,
                             sw_events_schema *s, sw_err *err);
void sw_events_schema_clear(sw_events_schema *s);
int sw_events_schema_find(const sw_events_schema *s, const char *name);

#endif
