/* SPDX-License-Identifier: MIT */
/*
 * sw_events.c - the words of an events schema, spelled once for the spec
 * compiler, the io adapters' schema reader and the JSON decoder: column
 * type names (in SW_COL_* order) and time units (in the pipeline's
 * time_unit order), with the one message each gives when a word is not
 * one of them.
 */
#include <string.h>

#include "sw_internal.h"

const char *const sw_col_type_names[SW_COL_TYPES] = {
    "int64", "int32", "int8", "float64", "float32", "bool", "str"};

const char *const sw_time_unit_names[SW_TIME_UNITS] = {"us", "ms", "s", "ns"};

/* microseconds per unit, as a ratio: us 1/1, ms 1000/1, s 1e6/1, ns 1/1000 */
const int64_t sw_time_unit_us_num[SW_TIME_UNITS] = {1, 1000, 1000000, 1};
const int64_t sw_time_unit_us_den[SW_TIME_UNITS] = {1, 1, 1, 1000};

int
sw_col_type_of(const char *name)
{
    int t;

    for (t = 0; name != NULL && t < SW_COL_TYPES; t++)
        if (!strcmp(sw_col_type_names[t], name))
            return t;
    return -1;
}

int
sw_time_unit_of(const char *name)
{
    int u;

    if (name == NULL)
        return 0; /* microseconds unless said otherwise */
    for (u = 0; u < SW_TIME_UNITS; u++)
        if (!strcmp(sw_time_unit_names[u], name))
            return u;
    return -1;
}
