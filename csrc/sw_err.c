/* SPDX-License-Identifier: MIT */
/*
 * sw_err.c - result code names and the one helper every failing branch uses.
 */
#include <stdarg.h>
#include <stdio.h>

#include "sw_internal.h"

static const char *const names[SW_RC_COUNT] = {
    "SW_OK",       "SW_E_NOMEM",    "SW_E_INVAL",
    "SW_E_SHAPE",  "SW_E_STATE",    "SW_E_IO",
    "SW_E_FORMAT", "SW_E_NUMERIC",  "SW_E_UNSUPPORTED",
    "SW_E_SOURCE", "SW_E_INTERNAL",
};

static const char *const texts[SW_RC_COUNT] = {
    "success",
    "out of memory",
    "bad argument",
    "shapes disagree",
    "operation not allowed in this state",
    "input/output error",
    "malformed, corrupt or unsupported data",
    "non-finite number",
    "not available in this build",
    "data source failed",
    "internal error",
};

const char *
sw_rc_name(sw_rc rc)
{
    if ((int)rc < 0 || rc >= SW_RC_COUNT)
        return "SW_E_UNKNOWN";
    return names[rc];
}

const char *
sw_rc_str(sw_rc rc)
{
    if ((int)rc < 0 || rc >= SW_RC_COUNT)
        return "unknown result code";
    return texts[rc];
}

/* Record why a call failed and return the code, so that a failing branch is
 * one line:
 *
 *     return sw__fail(err, SW_E_INVAL, "pa.C must be > 0, got %g", c);
 */
sw_rc
sw__fail(sw_err *err, sw_rc rc, const char *fmt, ...)
{
    va_list ap;

    if (err != NULL) {
        err->rc = rc;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
        va_end(ap);
    }
    return rc;
}

/* Re-tag a failure recorded in err with a prefix ("MODEL: ...") and a new
 * code, keeping out-of-memory as it is: callers must not pass err->msg to
 * sw__fail() themselves, since source and destination would overlap. */
sw_rc
sw__fail_wrap(sw_err *err, sw_rc rc, sw_rc got, const char *prefix)
{
    char msg[sizeof(err->msg)];

    if (got == SW_E_NOMEM)
        rc = SW_E_NOMEM;
    if (err == NULL)
        return rc;
    snprintf(msg, sizeof(msg), "%s", err->msg);
    return sw__fail(err, rc, "%s%s", prefix, msg);
}
