/* SPDX-License-Identifier: MIT */
/*
 * sw_h5_writer.c - write HDF5 event datasets (layout in sw_h5.h and
 * docs/hdf5.md): tables of typed columns appended batch by batch, chunked,
 * shuffle+gzip by default, Fletcher-32 on every chunk so that a damaged
 * file is refused rather than read as other numbers. The file is written
 * under a temporary name and renamed into place once flushed and synced:
 * a reader never sees half a file.
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "sw_internal.h"

#ifdef SW_HAVE_HDF5
#include "sw_h5.h"

#define MAX_TABLES 64

typedef struct h5table {
    char *name;
    hid_t group;
    sw_events_schema sc;
    hid_t dset[SW_SCHEMA_MAX_FIELDS];
    int64_t width[SW_SCHEMA_MAX_FIELDS]; /* str: the stored string size */
    int64_t rows, chunk, last_t;
    int level, created;
} h5table;

struct sw_h5_writer {
    hid_t file;
    char *path, *tmp;
    int n;
    h5table *t[MAX_TABLES];
};

static void
table_free(h5table *t)
{
    int i;

    if (t == NULL)
        return;
    for (i = 0; i < t->sc.n; i++) {
        if (t->dset[i] > 0)
            H5Dclose(t->dset[i]);
    }
    if (t->group > 0)
        H5Gclose(t->group);
    sw__events_schema_clear(&t->sc);
    sw__free(t->name);
    sw__free(t);
}

void
sw_h5_writer_free(sw_h5_writer *w)
{
    sw_h5_quiet q;
    int i;

    if (w == NULL)
        return;
    sw__h5_quiet_on(&q);
    for (i = 0; i < w->n; i++)
        table_free(w->t[i]);
    if (w->file > 0) {
        H5Fclose(w->file);
        unlink(w->tmp); /* abandoned: nothing appears at path */
    }
    sw__h5_quiet_off(&q);
    sw__free(w->path);
    sw__free(w->tmp);
    sw__free(w);
}

sw_rc
sw_h5_writer_open(const char *path, sw_h5_writer **out, sw_err *err)
{
    sw_h5_writer *w = sw__calloc(1, sizeof(*w));
    size_t n = strlen(path) + 32;
    sw_h5_quiet q;
    hid_t g;
    sw_rc rc = SW_OK;

    *out = NULL;
    if (w == NULL || (w->path = sw__strdup(path)) == NULL ||
        (w->tmp = sw__malloc(n)) == NULL) {
        sw_h5_writer_free(w);
        return sw__fail(err, SW_E_NOMEM, "hdf5 writer: out of memory");
    }
    snprintf(w->tmp, n, "%s.tmp-%ld", path, (long)getpid());
    sw__h5_quiet_on(&q);
    w->file = H5Fcreate(w->tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (w->file < 0) {
        rc = sw__h5_fail(err, SW_E_IO, "hdf5 writer: cannot create '%s'",
                         w->tmp);
    } else if ((g = H5Gcreate2(w->file, "events", H5P_DEFAULT, H5P_DEFAULT,
                               H5P_DEFAULT)) < 0) {
        rc = sw__h5_fail(err, SW_E_IO, "hdf5 writer: '%s'", w->tmp);
    } else {
        H5Gclose(g);
        rc = sw__h5_attr_set_str(w->file, "streamwise", "events", err);
    }
    sw__h5_quiet_off(&q);
    if (rc != SW_OK) {
        sw_h5_writer_free(w);
        return rc;
    }
    *out = w;
    return SW_OK;
}

sw_rc
sw_h5_writer_table(sw_h5_writer *w, const char *event_type,
                   const char *events_schema_json, const char *provenance_json,
                   int gzip_level, int64_t chunk_rows, int *table, sw_err *err)
{
    h5table *t;
    sw_h5_quiet q;
    sw_rc rc;
    int i;

    if (event_type == NULL || !event_type[0] || strchr(event_type, '/'))
        return sw__fail(err, SW_E_INVAL,
                        "hdf5 writer: event type '%s' (a name without '/')",
                        event_type ? event_type : "");
    if (gzip_level < 0 || gzip_level > 9 || chunk_rows < 0)
        return sw__fail(err, SW_E_INVAL,
                        "hdf5 writer: gzip level %d (0-9), chunk rows %lld",
                        gzip_level, (long long)chunk_rows);
    for (i = 0; i < w->n; i++) {
        if (!strcmp(w->t[i]->name, event_type))
            return sw__fail(err, SW_E_INVAL,
                            "hdf5 writer: table '%s' already added",
                            event_type);
    }
    if (w->n == MAX_TABLES)
        return sw__fail(err, SW_E_INVAL, "hdf5 writer: more than %d tables",
                        MAX_TABLES);
    t = sw__calloc(1, sizeof(*t));
    if (t == NULL || (t->name = sw__strdup(event_type)) == NULL) {
        table_free(t);
        return sw__fail(err, SW_E_NOMEM, "hdf5 writer: out of memory");
    }
    rc = sw__events_schema_parse(events_schema_json, "hdf5 writer: schema",
                                 &t->sc, err);
    if (rc != SW_OK) {
        table_free(t);
        return rc;
    }
    t->level = gzip_level;
    t->chunk = chunk_rows ? chunk_rows : 65536;
    t->last_t = INT64_MIN;
    sw__h5_quiet_on(&q);
    {
        char gpath[300];

        snprintf(gpath, sizeof(gpath), "events/%s", event_type);
        t->group =
            H5Gcreate2(w->file, gpath, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    }
    if (t->group < 0)
        rc = sw__h5_fail(err, SW_E_IO, "hdf5 writer: table '%s'", event_type);
    if (rc == SW_OK)
        rc = sw__h5_attr_set_str(t->group, "schema", events_schema_json, err);
    if (rc == SW_OK)
        rc = sw__h5_attr_set_str(t->group, "provenance",
                                 provenance_json ? provenance_json : "{}", err);
    if (rc == SW_OK)
        rc = sw__h5_attr_set_i64(t->group, "layout", SW_H5_LAYOUT, err);
    sw__h5_quiet_off(&q);
    if (rc != SW_OK) {
        table_free(t);
        return rc;
    }
    w->t[w->n] = t;
    *table = w->n++;
    return SW_OK;
}

/* The stored type of a column (h5py's conventions: bool is an int8 enum
 * FALSE/TRUE, str is fixed-length NUL-padded bytes). */
static hid_t
file_type(int type, int64_t width)
{
    hid_t t;

    if (type == SW_COL_BOOL) {
        signed char f = 0, v = 1;

        t = H5Tenum_create(H5T_NATIVE_INT8);
        H5Tenum_insert(t, "FALSE", &f);
        H5Tenum_insert(t, "TRUE", &v);
        return t;
    }
    if (type == SW_COL_STR) {
        t = H5Tcopy(H5T_C_S1);
        H5Tset_size(t, (size_t)(width > 0 ? width : 1));
        H5Tset_strpad(t, H5T_STR_NULLPAD);
        return t;
    }
    switch (type) {
    case SW_COL_I64:
        return H5Tcopy(H5T_STD_I64LE);
    case SW_COL_I32:
        return H5Tcopy(H5T_STD_I32LE);
    case SW_COL_I8:
        return H5Tcopy(H5T_STD_I8LE);
    case SW_COL_F64:
        return H5Tcopy(H5T_IEEE_F64LE);
    default:
        return H5Tcopy(H5T_IEEE_F32LE);
    }
}

static size_t
elem_size(int type, int64_t width)
{
    static const size_t sz[] = {8, 4, 1, 8, 4, 1};

    return type == SW_COL_STR ? (size_t)width : sz[type];
}

static sw_rc
create_columns(h5table *t, const sw_column *const *col, sw_err *err)
{
    hsize_t zero = 0, unlimited = H5S_UNLIMITED, chunk = (hsize_t)t->chunk;
    int i;

    for (i = 0; i < t->sc.n; i++) {
        int ty = t->sc.type[i];
        hid_t sp, dcpl, dapl, ft;
        size_t csize;

        t->width[i] = ty == SW_COL_STR
                          ? (col && col[i]->width > 0 ? col[i]->width : 1)
                          : 0;
        csize = elem_size(ty, t->width[i]) * (size_t)t->chunk;
        sp = H5Screate_simple(1, &zero, &unlimited);
        dcpl = H5Pcreate(H5P_DATASET_CREATE);
        H5Pset_chunk(dcpl, 1, &chunk);
        if (t->level > 0) {
            H5Pset_shuffle(dcpl);
            H5Pset_deflate(dcpl, (unsigned)t->level);
        }
        H5Pset_fletcher32(dcpl);
        /* room for the chunk being filled, so a chunk is compressed once */
        dapl = H5Pcreate(H5P_DATASET_ACCESS);
        H5Pset_chunk_cache(dapl, 521, 4 * csize, 1.0);
        ft = file_type(ty, t->width[i]);
        t->dset[i] = H5Dcreate2(t->group, t->sc.name[i], ft, sp, H5P_DEFAULT,
                                dcpl, dapl);
        H5Tclose(ft);
        H5Pclose(dapl);
        H5Pclose(dcpl);
        H5Sclose(sp);
        if (t->dset[i] < 0)
            return sw__h5_fail(err, SW_E_IO, "hdf5 writer: %s column '%s'",
                               t->name, t->sc.name[i]);
    }
    t->created = 1;
    return SW_OK;
}

/* The batch's columns in the table's order, checked: present, of the
 * schema's type, valid, strings that fit, times that do not go back. */
static sw_rc
match_columns(h5table *t, const sw_batch *b, const sw_column **col, sw_err *err)
{
    int i, j;
    int64_t r;

    for (i = 0; i < t->sc.n; i++) {
        for (j = 0;
             j < b->n_columns && strcmp(b->columns[j].name, t->sc.name[i]); j++)
            ;
        if (j == b->n_columns)
            return sw__fail(err, SW_E_INVAL,
                            "hdf5 writer: %s: column '%s' missing from the "
                            "batch",
                            t->name, t->sc.name[i]);
        col[i] = &b->columns[j];
        if ((int)col[i]->type != t->sc.type[i])
            return sw__fail(err, SW_E_INVAL,
                            "hdf5 writer: %s: column '%s' is %s, the schema "
                            "says %s",
                            t->name, t->sc.name[i],
                            sw_col_type_names[col[i]->type],
                            sw_col_type_names[t->sc.type[i]]);
        if (col[i]->bad != NULL) {
            for (r = 0; r < b->n_rows && !col[i]->bad[r]; r++)
                ;
            if (r < b->n_rows)
                return sw__fail(err, SW_E_INVAL,
                                "hdf5 writer: %s: column '%s' row %lld: a "
                                "value that could not be converted",
                                t->name, t->sc.name[i],
                                (long long)(t->rows + r));
        }
    }
    {
        const int64_t *ts = col[t->sc.time]->data;
        int64_t prev = t->last_t;

        for (r = 0; r < b->n_rows; prev = ts[r++]) {
            if (ts[r] < prev)
                return sw__fail(
                    err, SW_E_INVAL,
                    "hdf5 writer: %s: time column '%s' goes back "
                    "at row %lld (%lld after %lld); sort the events "
                    "by time first",
                    t->name, t->sc.name[t->sc.time], (long long)(t->rows + r),
                    (long long)ts[r], (long long)prev);
        }
    }
    if (!t->created)
        return SW_OK;
    for (i = 0; i < t->sc.n; i++) {
        const char *s = col[i]->data;
        int64_t wid = col[i]->width;

        if (t->sc.type[i] != SW_COL_STR || wid <= t->width[i])
            continue;
        for (r = 0; r < b->n_rows; r++) {
            if (strnlen(s + r * wid, (size_t)wid) > (size_t)t->width[i])
                return sw__fail(err, SW_E_INVAL,
                                "hdf5 writer: %s: column '%s' row %lld: a "
                                "string of more than %lld bytes (the width the "
                                "first batch set)",
                                t->name, t->sc.name[i],
                                (long long)(t->rows + r),
                                (long long)t->width[i]);
        }
    }
    return SW_OK;
}

sw_rc
sw_h5_writer_append(sw_h5_writer *w, int table, const sw_batch *b, sw_err *err)
{
    const sw_column *col[SW_SCHEMA_MAX_FIELDS];
    hsize_t start, count, total;
    h5table *t;
    sw_h5_quiet q;
    sw_rc rc;
    int i;

    if (table < 0 || table >= w->n)
        return sw__fail(err, SW_E_INVAL, "hdf5 writer: no table %d", table);
    t = w->t[table];
    if (b->n_rows == 0)
        return SW_OK;
    if ((rc = match_columns(t, b, col, err)) != SW_OK)
        return rc;
    sw__h5_quiet_on(&q);
    if (!t->created && (rc = create_columns(t, col, err)) != SW_OK)
        goto done;
    start = (hsize_t)t->rows;
    count = (hsize_t)b->n_rows;
    total = start + count;
    for (i = 0; i < t->sc.n; i++) {
        hid_t fs, ms, mt;
        herr_t e;

        if (H5Dset_extent(t->dset[i], &total) < 0) {
            rc = sw__h5_fail(err, SW_E_IO, "hdf5 writer: %s column '%s'",
                             t->name, t->sc.name[i]);
            goto done;
        }
        fs = H5Dget_space(t->dset[i]);
        H5Sselect_hyperslab(fs, H5S_SELECT_SET, &start, NULL, &count, NULL);
        ms = H5Screate_simple(1, &count, NULL);
        mt = file_type(t->sc.type[i], col[i]->width);
        e = H5Dwrite(t->dset[i], mt, ms, fs, H5P_DEFAULT, col[i]->data);
        H5Tclose(mt);
        H5Sclose(ms);
        H5Sclose(fs);
        if (e < 0) {
            rc = sw__h5_fail(err, SW_E_IO, "hdf5 writer: %s column '%s'",
                             t->name, t->sc.name[i]);
            goto done;
        }
    }
    t->rows += b->n_rows;
    t->last_t = ((const int64_t *)col[t->sc.time]->data)[b->n_rows - 1];
done:
    sw__h5_quiet_off(&q);
    return rc;
}

static sw_rc
sync_path(const char *path, sw_err *err)
{
    int fd = open(path, O_RDONLY);

    if (fd < 0 || fsync(fd) != 0) {
        if (fd >= 0)
            close(fd);
        return sw__fail(err, SW_E_IO, "hdf5 writer: cannot sync '%s'", path);
    }
    close(fd);
    return SW_OK;
}

sw_rc
sw_h5_writer_close(sw_h5_writer *w, sw_err *err)
{
    sw_h5_quiet q;
    sw_rc rc = SW_OK;
    int i;

    sw__h5_quiet_on(&q);
    for (i = 0; i < w->n && rc == SW_OK; i++) {
        h5table *t = w->t[i];

        if (!t->created)
            rc = create_columns(t, NULL, err);
        if (rc == SW_OK)
            rc = sw__h5_attr_set_i64(t->group, "n_rows", t->rows, err);
        if (rc == SW_OK)
            rc = sw__h5_attr_set_i64(t->group, "time_sorted", 1, err);
    }
    for (i = 0; i < w->n; i++) {
        table_free(w->t[i]);
        w->t[i] = NULL;
    }
    w->n = 0;
    if (rc == SW_OK && H5Fclose(w->file) < 0)
        rc =
            sw__h5_fail(err, SW_E_IO, "hdf5 writer: cannot write '%s'", w->tmp);
    else if (rc == SW_OK)
        w->file = 0;
    sw__h5_quiet_off(&q);
    if (rc == SW_OK)
        rc = sync_path(w->tmp, err);
    if (rc == SW_OK && rename(w->tmp, w->path) != 0)
        rc = sw__fail(err, SW_E_IO, "hdf5 writer: cannot rename '%s' to '%s'",
                      w->tmp, w->path);
    if (rc == SW_OK) {
        char dir[4096], *slash;

        snprintf(dir, sizeof(dir), "%s", w->path);
        slash = strrchr(dir, '/');
        if (slash == NULL)
            strcpy(dir, ".");
        else
            slash[slash == dir] = 0;
        rc = sync_path(dir, err);
    }
    if (rc != SW_OK && w->file <= 0)
        unlink(w->tmp);
    sw_h5_writer_free(w);
    return rc;
}

#else /* !SW_HAVE_HDF5 */

sw_rc
sw_h5_writer_open(const char *path, sw_h5_writer **out, sw_err *err)
{
    (void)path;
    *out = NULL;
    return sw__fail(err, SW_E_UNSUPPORTED, "hdf5: built without libhdf5");
}

sw_rc
sw_h5_writer_table(sw_h5_writer *w, const char *event_type,
                   const char *events_schema_json, const char *provenance_json,
                   int gzip_level, int64_t chunk_rows, int *table, sw_err *err)
{
    (void)w, (void)event_type, (void)events_schema_json, (void)provenance_json;
    (void)gzip_level, (void)chunk_rows, (void)table;
    return sw__fail(err, SW_E_UNSUPPORTED, "hdf5: built without libhdf5");
}

sw_rc
sw_h5_writer_append(sw_h5_writer *w, int table, const sw_batch *b, sw_err *err)
{
    (void)w, (void)table, (void)b;
    return sw__fail(err, SW_E_UNSUPPORTED, "hdf5: built without libhdf5");
}

sw_rc
sw_h5_writer_close(sw_h5_writer *w, sw_err *err)
{
    (void)w;
    return sw__fail(err, SW_E_UNSUPPORTED, "hdf5: built without libhdf5");
}

void
sw_h5_writer_free(sw_h5_writer *w)
{
    (void)w;
}
#endif
