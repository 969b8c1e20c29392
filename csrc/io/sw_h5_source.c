/* SPDX-License-Identifier: MIT */
/*
 * sw_h5_source.c - replay a table of an HDF5 event dataset (layout in
 * sw_h5.h and docs/hdf5.md) in batches of typed columns, bounded by a
 * row range or an event-time range (binary search on the sorted time
 * column), and say afterwards exactly what was read: file SHA-256,
 * dataset path, row range.
 *
 * Files written by h5py in the same layout read too: numbers are converted
 * to the schema's types by HDF5, bool may be h5py's enum or an integer,
 * and a table without the writer's "time_sorted" mark has its time column
 * checked before a time range is searched. Every batch is checked again
 * for time order, so an unsorted file is an error naming the row, never a
 * silently wrong slice.
 */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "sw_internal.h"

#ifdef SW_HAVE_HDF5
#include <sodium.h>

#include "sw_h5.h"

struct sw_h5_source {
    hid_t file, group;
    char *path, *schema, *prov;
    char dpath[300];
    sw_events_schema sc;
    hid_t dset[SW_SCHEMA_MAX_FIELDS], mtype[SW_SCHEMA_MAX_FIELDS];
    size_t esize[SW_SCHEMA_MAX_FIELDS];
    void *buf[SW_SCHEMA_MAX_FIELDS];
    sw_column col[SW_SCHEMA_MAX_FIELDS];
    sw_batch batch;
    int64_t cap, total, start, stop, next, last_t;
    struct stat st; /* the file as opened, for the SHA-256 */
};

void
sw_h5_source_free(sw_h5_source *s)
{
    sw_h5_quiet q;
    int i;

    if (s == NULL)
        return;
    sw__h5_quiet_on(&q);
    for (i = 0; i < s->sc.n; i++) {
        if (s->dset[i] > 0)
            H5Dclose(s->dset[i]);
        if (s->mtype[i] > 0)
            H5Tclose(s->mtype[i]);
        sw__free(s->buf[i]);
    }
    if (s->group > 0)
        H5Gclose(s->group);
    if (s->file > 0)
        H5Fclose(s->file);
    sw__h5_quiet_off(&q);
    sw__events_schema_clear(&s->sc);
    sw__free(s->path);
    sw__free(s->schema);
    sw__free(s->prov);
    sw__free(s);
}

static herr_t
list_name(hid_t g, const char *name, const H5L_info_t *info, void *data)
{
    char *buf = data;
    size_t n = strlen(buf);

    (void)g, (void)info;
    snprintf(buf + n, 200 - n, "%s%s", n ? ", " : "", name);
    return 0;
}

/* "no table" with the tables the file does have. */
static sw_rc
no_table(sw_h5_source *s, const char *type, sw_err *err)
{
    char names[200] = "";
    hid_t ev = H5Gopen2(s->file, "events", H5P_DEFAULT);

    if (ev < 0) {
        H5Eclear2(H5E_DEFAULT);
        return sw__fail(err, SW_E_FORMAT,
                        "hdf5 source: '%s' is not an event dataset (no /events "
                        "group)",
                        s->path);
    }
    H5Literate(ev, H5_INDEX_NAME, H5_ITER_INC, NULL, list_name, names);
    H5Gclose(ev);
    H5Eclear2(H5E_DEFAULT);
    return sw__fail(err, SW_E_INVAL,
                    "hdf5 source: '%s' has no table /events/%s (tables: %s)",
                    s->path, type, names[0] ? names : "none");
}

/* How column i is read: the schema's type in memory, converted by HDF5
 * where the file stores another number type. */
static sw_rc
column_type(sw_h5_source *s, int i, hid_t ft, sw_err *err)
{
    static const char *const cls[] = {
        "integer",  "float",     "time", "string", "bitfield", "opaque",
        "compound", "reference", "enum", "vlen",   "array"};
    H5T_class_t c = H5Tget_class(ft);
    int ty = s->sc.type[i], ok;

    switch (ty) {
    case SW_COL_I64:
    case SW_COL_I32:
    case SW_COL_I8:
        ok = c == H5T_INTEGER;
        s->mtype[i] = H5Tcopy(ty == SW_COL_I64   ? H5T_NATIVE_INT64
                              : ty == SW_COL_I32 ? H5T_NATIVE_INT32
                                                 : H5T_NATIVE_INT8);
        break;
    case SW_COL_F64:
    case SW_COL_F32:
        ok = c == H5T_FLOAT || c == H5T_INTEGER;
        s->mtype[i] =
            H5Tcopy(ty == SW_COL_F64 ? H5T_NATIVE_DOUBLE : H5T_NATIVE_FLOAT);
        break;
    case SW_COL_BOOL:
        /* h5py's bool is an int8 enum FALSE/TRUE: read its bytes as they
         * are (HDF5 converts no enum to an integer) */
        ok = (c == H5T_ENUM && H5Tget_size(ft) == 1) || c == H5T_INTEGER;
        s->mtype[i] = c == H5T_ENUM ? H5Tcopy(ft) : H5Tcopy(H5T_NATIVE_UINT8);
        break;
    default:
        if (c == H5T_STRING && H5Tis_variable_str(ft) > 0)
            return sw__fail(err, SW_E_FORMAT,
                            "hdf5 source: %s column '%s': variable-length "
                            "strings are not read; store fixed-length bytes "
                            "(numpy 'S')",
                            s->dpath, s->sc.name[i]);
        ok = c == H5T_STRING;
        s->mtype[i] = H5Tcopy(ft);
        break;
    }
    if (!ok)
        return sw__fail(err, SW_E_FORMAT,
                        "hdf5 source: %s column '%s' is stored as %s, the "
                        "schema says %s",
                        s->dpath, s->sc.name[i],
                        c >= 0 && c < 11 ? cls[c] : "unknown",
                        sw_col_type_names[ty]);
    s->esize[i] = H5Tget_size(s->mtype[i]);
    s->col[i].name = s->sc.name[i];
    s->col[i].type = (sw_col_type)ty;
    s->col[i].width = ty == SW_COL_STR ? (int64_t)s->esize[i] : 0;
    return SW_OK;
}

static sw_rc
open_columns(sw_h5_source *s, sw_err *err)
{
    hid_t dapl = H5Pcreate(H5P_DATASET_ACCESS);
    sw_rc rc = SW_OK;
    int i;

    /* a batch may end inside a chunk: keep a few, so none is inflated
     * twice */
    H5Pset_chunk_cache(dapl, 521, 16 << 20, 1.0);
    for (i = 0; i < s->sc.n && rc == SW_OK; i++) {
        hid_t sp, ft;
        hsize_t dim = 0;

        if (H5Lexists(s->group, s->sc.name[i], H5P_DEFAULT) <= 0) {
            H5Eclear2(H5E_DEFAULT);
            rc = sw__fail(
                err, SW_E_FORMAT, "hdf5 source: %s: %s column '%s' is missing",
                s->dpath, i == s->sc.time ? "the time" : "the schema's",
                s->sc.name[i]);
            break;
        }
        s->dset[i] = H5Dopen2(s->group, s->sc.name[i], dapl);
        if (s->dset[i] < 0) {
            rc = sw__h5_fail(err, SW_E_FORMAT, "hdf5 source: %s column '%s'",
                             s->dpath, s->sc.name[i]);
            break;
        }
        sp = H5Dget_space(s->dset[i]);
        if (H5Sget_simple_extent_ndims(sp) != 1) {
            rc = sw__fail(err, SW_E_FORMAT,
                          "hdf5 source: %s column '%s' is not 1-D", s->dpath,
                          s->sc.name[i]);
        } else {
            H5Sget_simple_extent_dims(sp, &dim, NULL);
            if (i == 0)
                s->total = (int64_t)dim;
            else if ((int64_t)dim != s->total)
                rc = sw__fail(err, SW_E_FORMAT,
                              "hdf5 source: %s column '%s' has %lld rows, "
                              "column '%s' %lld",
                              s->dpath, s->sc.name[i], (long long)dim,
                              s->sc.name[0], (long long)s->total);
        }
        H5Sclose(sp);
        if (rc != SW_OK)
            break;
        ft = H5Dget_type(s->dset[i]);
        rc = column_type(s, i, ft, err);
        H5Tclose(ft);
    }
    H5Pclose(dapl);
    return rc;
}

/* Read count rows of column i from row into dst. */
static sw_rc
read_rows(sw_h5_source *s, int i, int64_t row, int64_t count, void *dst,
          sw_err *err)
{
    hsize_t start = (hsize_t)row, n = (hsize_t)count;
    hid_t fs = H5Dget_space(s->dset[i]), ms = H5Screate_simple(1, &n, NULL);
    herr_t e;

    H5Sselect_hyperslab(fs, H5S_SELECT_SET, &start, NULL, &n, NULL);
    e = H5Dread(s->dset[i], s->mtype[i], ms, fs, H5P_DEFAULT, dst);
    H5Sclose(ms);
    H5Sclose(fs);
    if (e < 0)
        return sw__h5_fail(
            err, SW_E_FORMAT, "hdf5 source: %s column '%s' rows %lld-%lld",
            s->dpath, s->sc.name[i], (long long)row, (long long)(row + count));
    return SW_OK;
}

static sw_rc
unsorted(const sw_h5_source *s, int64_t row, int64_t t, int64_t prev,
         sw_err *err)
{
    return sw__fail(err, SW_E_FORMAT,
                    "hdf5 source: %s: time column '%s' is not sorted at row "
                    "%lld (%lld after %lld)",
                    s->dpath, s->sc.name[s->sc.time], (long long)row,
                    (long long)t, (long long)prev);
}

/* A table h5py wrote carries no "time_sorted" mark: check before trusting
 * a binary search. */
static sw_rc
check_sorted(sw_h5_source *s, sw_err *err)
{
    enum { BLOCK = 1 << 20 };
    int64_t *t = sw__alloc_array(BLOCK, sizeof(int64_t)), row, prev = INT64_MIN;
    sw_rc rc = SW_OK;

    if (t == NULL)
        return sw__fail(err, SW_E_NOMEM, "hdf5 source: out of memory");
    for (row = 0; row < s->total && rc == SW_OK; row += BLOCK) {
        int64_t n = s->total - row < BLOCK ? s->total - row : BLOCK, k;

        rc = read_rows(s, s->sc.time, row, n, t, err);
        for (k = 0; k < n && rc == SW_OK; prev = t[k++]) {
            if (t[k] < prev)
                rc = unsorted(s, row + k, t[k], prev, err);
        }
    }
    sw__free(t);
    return rc;
}

/* The first row whose time is >= t. */
static sw_rc
lower_bound(sw_h5_source *s, int64_t t, int64_t *row, sw_err *err)
{
    int64_t lo = 0, hi = s->total, v;
    sw_rc rc;

    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;

        if ((rc = read_rows(s, s->sc.time, mid, 1, &v, err)) != SW_OK)
            return rc;
        if (v < t)
            lo = mid + 1;
        else
            hi = mid;
    }
    *row = lo;
    return SW_OK;
}

static sw_rc
open_range(sw_h5_source *s, int by_time, int64_t start, int64_t stop,
           sw_err *err)
{
    int64_t sorted = 0;
    sw_rc rc;

    if (!by_time) {
        if (stop < 0 || stop > s->total)
            stop = s->total;
        if (start < 0 || start > stop)
            return sw__fail(err, SW_E_INVAL,
                            "hdf5 source: %s: rows %lld-%lld out of 0-%lld",
                            s->dpath, (long long)start, (long long)stop,
                            (long long)s->total);
        s->start = start;
        s->stop = stop;
    } else {
        if (sw__h5_attr_get_i64(s->group, "time_sorted", &sorted) <= 0 ||
            sorted != 1) {
            if ((rc = check_sorted(s, err)) != SW_OK)
                return rc;
        }
        if ((rc = lower_bound(s, start, &s->start, err)) != SW_OK)
            return rc;
        s->stop = s->total;
        if (stop != INT64_MAX &&
            (rc = lower_bound(s, stop, &s->stop, err)) != SW_OK)
            return rc;
        if (s->stop < s->start)
            s->stop = s->start;
    }
    s->next = s->start;
    return SW_OK;
}

static sw_rc
open_table(sw_h5_source *s, const char *type, sw_err *err)
{
    int64_t layout = 0;
    char what[400];
    int got;
    sw_rc rc;

    snprintf(s->dpath, sizeof(s->dpath), "/events/%s", type);
    if (H5Lexists(s->file, "events", H5P_DEFAULT) <= 0 ||
        H5Lexists(s->file, s->dpath, H5P_DEFAULT) <= 0)
        return no_table(s, type, err);
    s->group = H5Gopen2(s->file, s->dpath, H5P_DEFAULT);
    if (s->group < 0)
        return sw__h5_fail(err, SW_E_FORMAT,
                           "hdf5 source: %s in '%s' is not a table (a group of "
                           "column datasets)",
                           s->dpath, s->path);
    if (sw__h5_attr_get_i64(s->group, "layout", &layout) > 0 &&
        layout > SW_H5_LAYOUT)
        return sw__fail(err, SW_E_FORMAT,
                        "hdf5 source: %s has layout %lld; this streamwise "
                        "reads up to %d",
                        s->dpath, (long long)layout, SW_H5_LAYOUT);
    got = sw__h5_attr_get_str(s->group, "schema", &s->schema);
    if (got == -2 || (got > 0 && sw__h5_attr_get_str(s->group, "provenance",
                                                     &s->prov) == -2))
        return sw__fail(err, SW_E_NOMEM, "hdf5 source: out of memory");
    if (got <= 0)
        return sw__fail(err, SW_E_FORMAT,
                        got == 0 ? "hdf5 source: %s has no 'schema' attribute "
                                   "(the spec's events entry as JSON text)"
                                 : "hdf5 source: %s: the 'schema' attribute is "
                                   "not text",
                        s->dpath);
    if (s->prov == NULL &&
        sw__h5_attr_get_str(s->group, "provenance", &s->prov) < 0)
        return sw__fail(err, SW_E_FORMAT,
                        "hdf5 source: %s: the 'provenance' attribute is not "
                        "text",
                        s->dpath);
    snprintf(what, sizeof(what), "hdf5 source: %s: 'schema' attribute",
             s->dpath);
    rc = sw__events_schema_parse(s->schema, what, &s->sc, err);
    if (rc == SW_E_INVAL) { /* a bad file, not a bad argument */
        if (err != NULL)
            err->rc = SW_E_FORMAT;
        return SW_E_FORMAT;
    }
    if (rc != SW_OK)
        return rc;
    return open_columns(s, err);
}

sw_rc
sw_h5_source_open(const char *path, const char *event_type, sw_h5_range by_time,
                  int64_t start, int64_t stop, sw_h5_source **out, sw_err *err)
{
    sw_h5_source *s = sw__calloc(1, sizeof(*s));
    sw_h5_quiet q;
    sw_rc rc;

    *out = NULL;
    if (s == NULL || (s->path = sw__strdup(path)) == NULL) {
        sw_h5_source_free(s);
        return sw__fail(err, SW_E_NOMEM, "hdf5 source: out of memory");
    }
    if (stat(path, &s->st) != 0) {
        sw_h5_source_free(s);
        return sw__fail(err, SW_E_IO, "hdf5 source: cannot open '%s'", path);
    }
    sw__h5_quiet_on(&q);
    s->file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (s->file < 0)
        rc = sw__h5_fail(err, SW_E_FORMAT,
                         "hdf5 source: '%s' is not a readable HDF5 file", path);
    else
        rc = open_table(s, event_type, err);
    if (rc == SW_OK)
        rc = open_range(s, by_time, start, stop, err);
    sw__h5_quiet_off(&q);
    if (rc != SW_OK) {
        sw_h5_source_free(s);
        return rc;
    }
    s->last_t = INT64_MIN;
    s->batch.columns = s->col;
    s->batch.n_columns = s->sc.n;
    *out = s;
    return SW_OK;
}

static sw_rc
room(sw_h5_source *s, int64_t n, sw_err *err)
{
    int i;

    if (n <= s->cap)
        return SW_OK;
    for (i = 0; i < s->sc.n; i++) {
        void *b = sw__realloc_array(s->buf[i], (size_t)n, s->esize[i]);

        if (b == NULL)
            return sw__fail(err, SW_E_NOMEM, "hdf5 source: out of memory");
        s->buf[i] = b;
        s->col[i].data = b;
    }
    s->cap = n;
    return SW_OK;
}

sw_rc
sw_h5_source_next(sw_h5_source *s, int64_t max, int64_t *count, sw_err *err)
{
    int64_t n = s->stop - s->next, r;
    const int64_t *t;
    sw_h5_quiet q;
    sw_rc rc = SW_OK;
    int i;

    *count = 0;
    s->batch.n_rows = 0;
    if (max <= 0)
        return sw__fail(err, SW_E_INVAL, "hdf5 source: batch size %lld",
                        (long long)max);
    n = n < max ? n : max;
    if (n == 0)
        return SW_OK;
    if ((rc = room(s, n, err)) != SW_OK)
        return rc;
    sw__h5_quiet_on(&q);
    for (i = 0; i < s->sc.n && rc == SW_OK; i++)
        rc = read_rows(s, i, s->next, n, s->buf[i], err);
    sw__h5_quiet_off(&q);
    if (rc != SW_OK)
        return rc;
    t = s->buf[s->sc.time];
    for (r = 0; r < n; r++) {
        if (t[r] < s->last_t)
            return unsorted(s, s->next + r, t[r], s->last_t, err);
        s->last_t = t[r];
    }
    s->next += n;
    s->batch.n_rows = *count = n;
    return SW_OK;
}

const sw_batch *
sw_h5_source_batch(const sw_h5_source *s)
{
    return &s->batch;
}

void
sw_h5_source_slice(const sw_h5_source *s, int64_t *start, int64_t *stop,
                   int64_t *next)
{
    *start = s->start;
    *stop = s->stop;
    *next = s->next;
}

int64_t
sw_h5_source_rows(const sw_h5_source *s)
{
    return s->total;
}

const char *
sw_h5_source_schema(const sw_h5_source *s)
{
    return s->schema;
}

const char *
sw_h5_source_provenance(const sw_h5_source *s)
{
    return s->prov ? s->prov : "{}";
}

const char *
sw_h5_source_dataset(const sw_h5_source *s)
{
    return s->dpath;
}

sw_rc
sw_h5_source_sha256(const sw_h5_source *s, char hex[65], sw_err *err)
{
    crypto_hash_sha256_state h;
    unsigned char digest[32], *buf;
    struct stat st;
    FILE *f;
    size_t n;
    sw_rc rc = SW_OK;

    f = fopen(s->path, "rb");
    if (f == NULL || fstat(fileno(f), &st) != 0) {
        if (f != NULL)
            fclose(f);
        return sw__fail(err, SW_E_IO, "hdf5 source: cannot read '%s'", s->path);
    }
    /* the digest must be of the file that was replayed */
    if (st.st_dev != s->st.st_dev || st.st_ino != s->st.st_ino ||
        st.st_size != s->st.st_size ||
        st.st_mtim.tv_sec != s->st.st_mtim.tv_sec ||
        st.st_mtim.tv_nsec != s->st.st_mtim.tv_nsec) {
        fclose(f);
        return sw__fail(err, SW_E_IO,
                        "hdf5 source: '%s' changed since it was opened",
                        s->path);
    }
    buf = sw__malloc(1 << 20);
    if (buf == NULL) {
        fclose(f);
        return sw__fail(err, SW_E_NOMEM, "hdf5 source: out of memory");
    }
    crypto_hash_sha256_init(&h);
    while ((n = fread(buf, 1, 1 << 20, f)) > 0)
        crypto_hash_sha256_update(&h, buf, n);
    if (ferror(f))
        rc = sw__fail(err, SW_E_IO, "hdf5 source: cannot read '%s'", s->path);
    crypto_hash_sha256_final(&h, digest);
    sw__free(buf);
    fclose(f);
    if (rc == SW_OK)
        sodium_bin2hex(hex, 65, digest, 32);
    return rc;
}

#else /* !SW_HAVE_HDF5 */

sw_rc
sw_h5_source_open(const char *path, const char *event_type, sw_h5_range by_time,
                  int64_t start, int64_t stop, sw_h5_source **out, sw_err *err)
{
    (void)path, (void)event_type, (void)by_time, (void)start, (void)stop;
    *out = NULL;
    return sw__fail(err, SW_E_UNSUPPORTED, "hdf5: built without libhdf5");
}

void
sw_h5_source_free(sw_h5_source *s)
{
    (void)s;
}

sw_rc
sw_h5_source_next(sw_h5_source *s, int64_t max, int64_t *count, sw_err *err)
{
    (void)s, (void)max;
    *count = 0;
    return sw__fail(err, SW_E_UNSUPPORTED, "hdf5: built without libhdf5");
}

const sw_batch *
sw_h5_source_batch(const sw_h5_source *s)
{
    (void)s;
    return NULL;
}

void
sw_h5_source_slice(const sw_h5_source *s, int64_t *start, int64_t *stop,
                   int64_t *next)
{
    (void)s;
    *start = *stop = *next = 0;
}

int64_t
sw_h5_source_rows(const sw_h5_source *s)
{
    (void)s;
    return 0;
}

const char *
sw_h5_source_schema(const sw_h5_source *s)
{
    (void)s;
    return "";
}

const char *
sw_h5_source_provenance(const sw_h5_source *s)
{
    (void)s;
    return "";
}

const char *
sw_h5_source_dataset(const sw_h5_source *s)
{
    (void)s;
    return "";
}

sw_rc
sw_h5_source_sha256(const sw_h5_source *s, char hex[65], sw_err *err)
{
    (void)s;
    hex[0] = 0;
    return sw__fail(err, SW_E_UNSUPPORTED, "hdf5: built without libhdf5");
}
#endif
