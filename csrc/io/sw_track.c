/* SPDX-License-Identifier: MIT */
/*
 * sw_track.c - a runner's run in the tracking store (sw_track.h): one
 * statement text for SQLite and PostgreSQL ($1... placeholders, which
 * SQLite takes as named parameters), bound by type.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "sw_registry_int.h"
#include "sw_track.h"

#ifdef SW_HAVE_SQLITE
#include <sqlite3.h>
#endif
#ifdef SW_HAVE_PQ
#include <libpq-fe.h>
#endif

/* A statement's parameter: 's' text, 'i' integer, 'd' float, 'n' NULL. */
typedef struct param {
    char t;
    const char *s;
    int64_t i;
    double d;
} param;

#define P_S(x) ((param){'s', (x), 0, 0})
#define P_I(x) ((param){'i', NULL, (x), 0})
#define P_D(x) ((param){'d', NULL, 0, (x)})
#define P_N ((param){'n', NULL, 0, 0})

enum { POINT_BYTES = 32 };

struct sw__track {
    int pg;
    char store[4096]; /* the directory, or the URI */
    char where[512];  /* how messages name the store */
    char id[33];
    int n_keys;
    char **keys;
    char **files; /* SQLite: each series' file, absolute */
#ifdef SW_HAVE_SQLITE
    sqlite3 *db;
#endif
#ifdef SW_HAVE_PQ
    PGconn *conn;
#endif
};

static double
wall_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Run sql with params; with ncol > 0 the first row's columns go to out
 * (NaN for NULL). 1: a row, 0: none, else an error code. */
static sw_rc
exec_sql(sw__track *t, const char *sql, int n, const param *p, int ncol,
         double *out, int *got, sw_err *err)
{
    int i;

    if (got)
        *got = 0;
#ifdef SW_HAVE_PQ
    if (t->pg) {
        char num[32][32];
        const char *vals[32];
        PGresult *r;
        ExecStatusType st;

        for (i = 0; i < n && i < 32; i++) {
            vals[i] = num[i];
            if (p[i].t == 's')
                vals[i] = p[i].s;
            else if (p[i].t == 'n')
                vals[i] = NULL;
            else if (p[i].t == 'i')
                snprintf(num[i], sizeof(num[i]), "%lld", (long long)p[i].i);
            else if (isnan(p[i].d))
                snprintf(num[i], sizeof(num[i]), "NaN");
            else if (isinf(p[i].d))
                snprintf(num[i], sizeof(num[i]), "%sInfinity",
                         p[i].d < 0 ? "-" : "");
            else
                snprintf(num[i], sizeof(num[i]), "%.17g", p[i].d);
        }
        r = PQexecParams(t->conn, sql, n, NULL, vals, NULL, NULL, 0);
        st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
        if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
            char msg[400];

            snprintf(msg, sizeof(msg), "%s", PQerrorMessage(t->conn));
            msg[strcspn(msg, "\n")] = '\0';
            PQclear(r);
            return sw__fail(err, SW_E_IO, "tracking store %s: %s", t->where,
                            msg);
        }
        if (ncol > 0 && PQntuples(r) > 0) {
            for (i = 0; i < ncol; i++)
                out[i] = PQgetisnull(r, 0, i)
                             ? NAN
                             : strtod(PQgetvalue(r, 0, i), NULL);
            if (got)
                *got = 1;
        }
        PQclear(r);
        return SW_OK;
    }
#endif
#ifdef SW_HAVE_SQLITE
    {
        sqlite3_stmt *q = NULL;
        char name[16];
        int rc;

        if (sqlite3_prepare_v2(t->db, sql, -1, &q, NULL) != SQLITE_OK)
            return sw__fail(err, SW_E_IO, "tracking store %s: %s", t->where,
                            sqlite3_errmsg(t->db));
        for (i = 0; i < n; i++) {
            int at;

            snprintf(name, sizeof(name), "$%d", i + 1);
            if ((at = sqlite3_bind_parameter_index(q, name)) == 0)
                continue;
            if (p[i].t == 's')
                sqlite3_bind_text(q, at, p[i].s, -1, SQLITE_STATIC);
            else if (p[i].t == 'i')
                sqlite3_bind_int64(q, at, p[i].i);
            else if (p[i].t == 'd')
                sqlite3_bind_double(q, at, p[i].d);
        }
        rc = sqlite3_step(q);
        if (rc == SQLITE_ROW && ncol > 0) {
            for (i = 0; i < ncol; i++)
                out[i] = sqlite3_column_type(q, i) == SQLITE_NULL
                             ? NAN
                             : sqlite3_column_double(q, i);
            if (got)
                *got = 1;
        }
        if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
            sw_rc e = sw__fail(err, SW_E_IO, "tracking store %s: %s",
                               t->where, sqlite3_errmsg(t->db));

            sqlite3_finalize(q);
            return e;
        }
        sqlite3_finalize(q);
        return SW_OK;
    }
#else
    (void)sql, (void)n, (void)p, (void)ncol, (void)out;
    return sw__fail(err, SW_E_UNSUPPORTED,
                    "tracking store %s: this build has no SQLite", t->where);
#endif
}

/* A write transaction that holds the store's write lock before it reads,
 * as every writer of the store does (store.py). */
static sw_rc
begin(sw__track *t, sw_err *err)
{
    sw_rc rc;

    if (!t->pg)
        return exec_sql(t, "BEGIN IMMEDIATE", 0, NULL, 0, NULL, NULL, err);
    if ((rc = exec_sql(t, "BEGIN", 0, NULL, 0, NULL, NULL, err)) != SW_OK)
        return rc;
    return exec_sql(t,
                    "SELECT pg_advisory_xact_lock(" SW_REGISTRY_PG_WRITE_LOCK
                    ")",
                    0, NULL, 0, NULL, NULL, err);
}

static sw_rc
end_txn(sw__track *t, sw_rc rc, sw_err *err)
{
    sw_err ignore = {0};

    if (rc == SW_OK)
        return exec_sql(t, "COMMIT", 0, NULL, 0, NULL, NULL, err);
    exec_sql(t, "ROLLBACK", 0, NULL, 0, NULL, NULL, &ignore);
    return rc;
}

static void
track_free(sw__track *t)
{
    int k;

    if (t == NULL)
        return;
#ifdef SW_HAVE_SQLITE
    sqlite3_close(t->db);
#endif
#ifdef SW_HAVE_PQ
    PQfinish(t->conn);
#endif
    for (k = 0; k < t->n_keys; k++) {
        free(t->keys[k]);
        if (t->files)
            free(t->files[k]);
    }
    free(t->keys);
    free(t->files);
    free(t);
}

/* The connection, and the schema is one this build writes. */
static sw_rc
connect_store(sw__track *t, sw_err *err)
{
    double v = NAN;
    int got = 0;
    sw_rc rc;

    if (t->pg) {
#ifdef SW_HAVE_PQ
        if ((rc = sw__pg_open(t->store, &t->conn, err)) != SW_OK)
            return rc;
        return sw__pg_check_schema(t->conn, t->store, err);
#else
        return sw__fail(err, SW_E_UNSUPPORTED,
                        "tracking store %s: this build has no PostgreSQL "
                        "client (install libpq-dev and rebuild)",
                        t->where);
#endif
    }
#ifdef SW_HAVE_SQLITE
    {
        char db_path[4200];

        snprintf(db_path, sizeof(db_path), "%s/streamwise.db", t->store);
        /* never create: a store is made by Python */
        if (sqlite3_open_v2(db_path, &t->db, SQLITE_OPEN_READWRITE, NULL) !=
            SQLITE_OK)
            return sw__fail(err, SW_E_IO, "tracking store %s: %s", db_path,
                            t->db ? sqlite3_errmsg(t->db) : "cannot open");
        sqlite3_busy_timeout(t->db, 60000);
    }
#endif
    rc = exec_sql(t, "SELECT max(version) FROM schema_version", 0, NULL, 1,
                  &v, &got, err);
    if (rc != SW_OK)
        return sw__fail(err, SW_E_FORMAT,
                        "tracking store %s: not a streamwise store (%s)",
                        t->where, err->msg);
    if (!got || isnan(v) || v > SW_REGISTRY_SCHEMA_KNOWN || v < 2)
        return sw__fail(err, SW_E_FORMAT,
                        "tracking store %s: schema %g, this build writes "
                        "2..%d: open it with this streamwise's Python once",
                        t->where, v, SW_REGISTRY_SCHEMA_KNOWN);
    return SW_OK;
}

/* mkdir -p of the directory of a series file. */
static sw_rc
make_dirs(const char *path, sw_err *err)
{
    char d[4400];
    char *s;

    snprintf(d, sizeof(d), "%s", path);
    for (s = d + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = '\0';
        if (mkdir(d, 0777) != 0 && errno != EEXIST)
            return sw__fail(err, SW_E_IO, "tracking store: %s: %s", d,
                            strerror(errno));
        *s = '/';
    }
    return SW_OK;
}

/* The run's row, its tags and its series' rows, in one transaction. */
static sw_rc
create_run(sw__track *t, const char *experiment, const char *name,
           const char *const *tags, sw_err *err)
{
    const struct passwd *pw = getpwuid(getuid());
    char host[256] = "", rel[512];
    double now = wall_now(), exp_id = NAN;
    int got = 0, k;
    sw_rc rc;

    gethostname(host, sizeof(host) - 1);
    if ((rc = begin(t, err)) != SW_OK)
        return rc;
    rc = exec_sql(t,
                  "INSERT INTO experiments (name, created) VALUES ($1, $2) "
                  "ON CONFLICT (name) DO NOTHING",
                  2, (param[]){P_S(experiment), P_D(now)}, 0, NULL, NULL, err);
    if (rc == SW_OK)
        rc = exec_sql(t, "SELECT experiment_id FROM experiments WHERE name = $1",
                      1, (param[]){P_S(experiment)}, 1, &exp_id, &got, err);
    if (rc == SW_OK && !got)
        rc = sw__fail(err, SW_E_IO, "tracking store %s: experiment '%s' not "
                                    "made",
                      t->where, experiment);
    if (rc == SW_OK)
        rc = exec_sql(t,
                      "INSERT INTO runs (run_id, experiment_id, name, status, "
                      "start_time, user_name, host, streamwise_version, "
                      "core_build) VALUES ($1, $2, $3, 'RUNNING', $4, $5, $6, "
                      "$7, $8)",
                      8,
                      (param[]){P_S(t->id), P_I((int64_t)exp_id), P_S(name),
                                P_D(now), pw ? P_S(pw->pw_name) : P_N,
                                P_S(host), P_S(sw_version_str()),
                                P_S(sw_build_id())},
                      0, NULL, NULL, err);
    for (k = 0; rc == SW_OK && tags && tags[k] && tags[k + 1]; k += 2)
        rc = exec_sql(t,
                      "INSERT INTO tags (run_id, key, value) VALUES ($1, $2, "
                      "$3)",
                      3, (param[]){P_S(t->id), P_S(tags[k]), P_S(tags[k + 1])},
                      0, NULL, NULL, err);
    for (k = 0; rc == SW_OK && k < t->n_keys; k++) {
        const char *series = "metric_points";

        if (!t->pg) {
            snprintf(rel, sizeof(rel), "runs/%s/metrics/%s.bin", t->id,
                     t->keys[k]);
            series = rel;
        }
        rc = exec_sql(t,
                      "INSERT INTO metrics (run_id, key, series, n) VALUES "
                      "($1, $2, $3, 0)",
                      3, (param[]){P_S(t->id), P_S(t->keys[k]), P_S(series)},
                      0, NULL, NULL, err);
    }
    return end_txn(t, rc, err);
}

sw_rc
sw__track_start(const char *store, const char *experiment, const char *name,
                const char *const *tags, const char *const *keys, int n_keys,
                sw__track **out, sw_err *err)
{
    sw__track *t;
    unsigned char rnd[16];
    int k;
    sw_rc rc;

    *out = NULL;
    if (store == NULL || experiment == NULL || name == NULL || n_keys < 1 ||
        strlen(store) >= sizeof(t->store))
        return sw__fail(err, SW_E_INVAL, "tracking: bad argument");
    if ((t = calloc(1, sizeof(*t))) == NULL ||
        (t->keys = calloc((size_t)n_keys, sizeof(char *))) == NULL ||
        (t->files = calloc((size_t)n_keys, sizeof(char *))) == NULL) {
        track_free(t);
        return sw__fail(err, SW_E_NOMEM, "tracking: out of memory");
    }
    t->pg = sw__registry_is_pg(store);
    snprintf(t->store, sizeof(t->store), "%s", store);
    sw__pg_redact(store, t->where, sizeof(t->where));
    randombytes_buf(rnd, sizeof(rnd));
    for (k = 0; k < 16; k++)
        snprintf(t->id + 2 * k, 3, "%02x", rnd[k]);
    t->n_keys = n_keys;
    for (k = 0; k < n_keys; k++) {
        size_t len = strlen(t->store) + strlen(keys[k]) + 64;

        if ((t->keys[k] = strdup(keys[k])) == NULL ||
            (t->files[k] = malloc(len)) == NULL) {
            track_free(t);
            return sw__fail(err, SW_E_NOMEM, "tracking: out of memory");
        }
        snprintf(t->files[k], len, "%s/runs/%s/metrics/%s.bin", t->store,
                 t->id, keys[k]);
    }
    if ((rc = connect_store(t, err)) != SW_OK ||
        (!t->pg && (rc = make_dirs(t->files[0], err)) != SW_OK) ||
        (rc = create_run(t, experiment, name, tags, err)) != SW_OK) {
        track_free(t);
        return rc;
    }
    *out = t;
    return SW_OK;
}

const char *
sw__track_run_id(const sw__track *t)
{
    return t->id;
}

/* Append one point to a series file; a torn point a killed writer left
 * is cut first (it was never counted). */
static sw_rc
append_point(const char *path, const unsigned char *pt, sw_err *err)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0666);
    struct stat st;
    sw_rc rc = SW_OK;

    if (fd < 0)
        return sw__fail(err, SW_E_IO, "tracking store: %s: %s", path,
                        strerror(errno));
    if (fstat(fd, &st) != 0 ||
        (st.st_size % POINT_BYTES &&
         ftruncate(fd, st.st_size - st.st_size % POINT_BYTES) != 0) ||
        write(fd, pt, POINT_BYTES) != POINT_BYTES)
        rc = sw__fail(err, SW_E_IO, "tracking store: %s: %s", path,
                      strerror(errno));
    close(fd);
    return rc;
}

/* A series' point and its summary, inside the caller's transaction. */
static sw_rc
log_one(sw__track *t, int k, double value, int64_t step, int64_t et,
        double wall, sw_err *err)
{
    double row[3] = {NAN, NAN, NAN}, lo, hi;
    int got = 0;
    sw_rc rc;

    rc = exec_sql(t,
                  "SELECT n, min_value, max_value FROM metrics WHERE run_id = "
                  "$1 AND key = $2",
                  2, (param[]){P_S(t->id), P_S(t->keys[k])}, 3, row, &got,
                  err);
    if (rc != SW_OK)
        return rc;
    if (!got)
        return sw__fail(err, SW_E_IO, "tracking store %s: run %s has no "
                                      "series '%s'",
                        t->where, t->id, t->keys[k]);
    if (t->pg) {
        rc = exec_sql(t,
                      "INSERT INTO metric_points (run_id, key, step, "
                      "event_time, wall_time, value) VALUES ($1, $2, $3, $4, "
                      "$5, $6)",
                      6,
                      (param[]){P_S(t->id), P_S(t->keys[k]), P_I(step),
                                P_I(et), P_D(wall), P_D(value)},
                      0, NULL, NULL, err);
    } else {
        unsigned char pt[POINT_BYTES];

        sw__put_le64(pt, (uint64_t)step);
        sw__put_le64(pt + 8, (uint64_t)et);
        memcpy(pt + 16, &wall, 8); /* little-endian hosts only, as the */
        memcpy(pt + 24, &value, 8); /* model file's float64s */
        rc = append_point(t->files[k], pt, err);
    }
    if (rc != SW_OK)
        return rc;
    /* min and max skip what is not finite, as fold_summary does */
    lo = row[1], hi = row[2];
    if (isfinite(value)) {
        lo = isnan(lo) || value < lo ? value : lo;
        hi = isnan(hi) || value > hi ? value : hi;
    }
    return exec_sql(t,
                    "UPDATE metrics SET n = n + 1, last_value = $1, "
                    "min_value = $2, max_value = $3, last_step = $4, "
                    "last_event_time = $5, last_wall_time = $6 WHERE "
                    "run_id = $7 AND key = $8",
                    8,
                    (param[]){isnan(value) ? P_N : P_D(value),
                              isnan(lo) ? P_N : P_D(lo),
                              isnan(hi) ? P_N : P_D(hi), P_I(step),
                              et == INT64_MIN ? P_N : P_I(et), P_D(wall),
                              P_S(t->id), P_S(t->keys[k])},
                    0, NULL, NULL, err);
}

sw_rc
sw__track_log(sw__track *t, const double *values, int64_t step,
              int64_t event_time_us, sw_err *err)
{
    double wall = wall_now();
    int k;
    sw_rc rc;

    if ((rc = begin(t, err)) != SW_OK)
        return rc;
    for (k = 0; rc == SW_OK && k < t->n_keys; k++)
        rc = log_one(t, k, values[k], step, event_time_us, wall, err);
    return end_txn(t, rc, err);
}

sw_rc
sw__track_end(sw__track *t, const char *status, sw_err *err)
{
    sw_rc rc;

    if (t == NULL)
        return SW_OK;
    rc = exec_sql(t,
                  "UPDATE runs SET status = $1, end_time = $2 WHERE run_id = "
                  "$3",
                  3, (param[]){P_S(status), P_D(wall_now()), P_S(t->id)}, 0,
                  NULL, NULL, err);
    track_free(t);
    return rc;
}
