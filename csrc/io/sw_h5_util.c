/* SPDX-License-Identifier: MIT */
/*
 * sw_h5_util.c - HDF5 error messages and string attributes for the
 * event-dataset writer and source.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "sw_h5.h"

void
sw__h5_quiet_on(sw_h5_quiet *q)
{
    H5Eget_auto2(H5E_DEFAULT, &q->fn, &q->data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

void
sw__h5_quiet_off(const sw_h5_quiet *q)
{
    H5Eset_auto2(H5E_DEFAULT, q->fn, q->data);
}

/* The innermost entry says what went wrong; the outer ones only which
 * calls passed it on. */
static herr_t
innermost(unsigned n, const H5E_error2_t *e, void *data)
{
    if (n == 0 && e->desc != NULL)
        snprintf(data, 200, "%s", e->desc);
    return 0;
}

sw_rc
sw__h5_fail(sw_err *err, sw_rc rc, const char *fmt, ...)
{
    char what[400], why[200] = "";
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, innermost, why);
    H5Eclear2(H5E_DEFAULT);
    return why[0] ? sw__fail(err, rc, "%s: %s", what, why)
                  : sw__fail(err, rc, "%s", what);
}

int
sw__h5_attr_get_str(hid_t obj, const char *name, char **out)
{
    hid_t a, t = -1, mt = -1;
    int r = -1;

    *out = NULL;
    if (H5Aexists(obj, name) <= 0)
        return 0;
    if ((a = H5Aopen(obj, name, H5P_DEFAULT)) < 0)
        return -1;
    t = H5Aget_type(a);
    if (t < 0 || H5Tget_class(t) != H5T_STRING)
        goto done;
    if (H5Tis_variable_str(t) > 0) {
        char *v = NULL;

        mt = H5Tcopy(H5T_C_S1);
        H5Tset_size(mt, H5T_VARIABLE);
        H5Tset_cset(mt, H5Tget_cset(t));
        if (H5Aread(a, mt, &v) < 0 || v == NULL)
            goto done;
        *out = sw__strdup(v);
        H5free_memory(v);
        r = *out != NULL ? 1 : -2;
    } else {
        size_t n = H5Tget_size(t);

        *out = sw__malloc(n + 1);
        if (*out == NULL) {
            r = -2;
            goto done;
        }
        if (H5Aread(a, t, *out) < 0)
            goto done;
        (*out)[n] = 0;
        r = 1;
    }
done:
    if (r < 0) {
        sw__free(*out);
        *out = NULL;
    }
    if (mt >= 0)
        H5Tclose(mt);
    if (t >= 0)
        H5Tclose(t);
    H5Aclose(a);
    return r;
}

int
sw__h5_attr_get_i64(hid_t obj, const char *name, int64_t *out)
{
    hid_t a, t;
    int r = -1;

    if (H5Aexists(obj, name) <= 0)
        return 0;
    if ((a = H5Aopen(obj, name, H5P_DEFAULT)) < 0)
        return -1;
    t = H5Aget_type(a);
    if (t >= 0 && H5Tget_class(t) == H5T_INTEGER &&
        H5Aread(a, H5T_NATIVE_INT64, out) >= 0)
        r = 1;
    if (t >= 0)
        H5Tclose(t);
    H5Aclose(a);
    return r;
}

/* Replace attribute name of obj by one of type t holding value. */
static sw_rc
attr_set(hid_t obj, const char *name, hid_t t, const void *value, sw_err *err)
{
    hid_t sp = H5Screate(H5S_SCALAR), a;
    sw_rc rc = SW_OK;

    if (H5Aexists(obj, name) > 0)
        H5Adelete(obj, name);
    a = H5Acreate2(obj, name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
    if (a < 0 || H5Awrite(a, t, value) < 0)
        rc = sw__h5_fail(err, SW_E_IO, "hdf5: attribute '%s'", name);
    if (a >= 0)
        H5Aclose(a);
    H5Sclose(sp);
    return rc;
}

sw_rc
sw__h5_attr_set_str(hid_t obj, const char *name, const char *value, sw_err *err)
{
    /* variable-length UTF-8, as h5py writes a str: it reads back as str */
    hid_t t = H5Tcopy(H5T_C_S1);
    sw_rc rc;

    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    rc = attr_set(obj, name, t, &value, err);
    H5Tclose(t);
    return rc;
}

sw_rc
sw__h5_attr_set_i64(hid_t obj, const char *name, int64_t value, sw_err *err)
{
    return attr_set(obj, name, H5T_STD_I64LE, &value, err);
}
