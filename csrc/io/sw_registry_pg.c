/* SPDX-License-Identifier: MIT */
/*
 * sw_registry_pg.c - the registry in a shared PostgreSQL store, through
 * libpq: resolve "name@alias", watch for promotions, log deployments and
 * register a runner's learned snapshots, with the same semantics as the
 * SQLite store (sw_registry.c) so that `sw-serve --registry
 * postgresql://...` and the runner's hot reload need no Python.
 *
 * The schema is python/streamwise/store.py's. Model files live in the
 * store's artifact directory (settings.artifact_root, which every machine
 * mounts; $STREAMWISE_ARTIFACT_ROOT overrides it where the mount differs).
 * Watching LISTENs on the channel the store's triggers notify on a new
 * version or a moved alias: a poll reads the socket and sends nothing.
 * Without libpq every function returns SW_E_UNSUPPORTED.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sw_registry_int.h"

/* The URI without its password, for messages. */
void
sw__pg_redact(const char *uri, char *out, size_t len)
{
    const char *scheme = strstr(uri, "://"), *at, *colon;

    snprintf(out, len, "%s", uri);
    if (scheme == NULL)
        return;
    at = strchr(scheme + 3, '@');
    colon = strchr(scheme + 3, ':');
    if (at != NULL && colon != NULL && colon < at)
        snprintf(out, len, "%.*s:***%s", (int)(colon - uri), uri, at);
}

#ifdef SW_HAVE_PQ
#include <errno.h>
#include <libpq-fe.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

struct sw__pg_watch {
    PGconn *conn;
    int polled;
};

/* The server's message, one line. */
static sw_rc
pg_fail(PGconn *conn, const char *uri, const char *what, sw_err *err)
{
    char where[512], msg[512];
    const char *m = conn ? PQerrorMessage(conn) : "out of memory";
    size_t n;

    sw__pg_redact(uri, where, sizeof(where));
    snprintf(msg, sizeof(msg), "%s", m && *m ? m : "unknown error");
    n = strcspn(msg, "\n");
    msg[n] = '\0';
    return sw__fail(err, SW_E_IO, "registry %s: %s: %s", where, what, msg);
}

sw_rc
sw__pg_open(const char *uri, PGconn **out, sw_err *err)
{
    const char *keys[] = {"dbname", "connect_timeout", "application_name",
                          NULL};
    const char *vals[] = {uri, "10", "sw-serve", NULL};
    PGconn *conn = PQconnectdbParams(keys, vals, 1);

    *out = NULL;
    if (conn == NULL || PQstatus(conn) != CONNECTION_OK) {
        sw_rc rc = pg_fail(conn, uri, "cannot connect", err);

        PQfinish(conn);
        return rc;
    }
    *out = conn;
    return SW_OK;
}

/* Run a statement with text parameters; a result the caller clears, or
 * NULL with err filled. */
static PGresult *
pg_exec(PGconn *conn, const char *uri, const char *sql, int n,
        const char *const *params, sw_err *err)
{
    PGresult *r = PQexecParams(conn, sql, n, NULL, params, NULL, NULL, 0);
    ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;

    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
        pg_fail(conn, uri, "query failed", err);
        PQclear(r);
        return NULL;
    }
    return r;
}

/* The schema is one this build reads. */
sw_rc
sw__pg_check_schema(PGconn *conn, const char *uri, sw_err *err)
{
    PGresult *r = pg_exec(conn, uri,
                          "SELECT CASE WHEN to_regclass('schema_version') IS "
                          "NULL THEN -1 ELSE (SELECT max(version) FROM "
                          "schema_version) END",
                          0, NULL, err);
    long long v;
    char where[512];

    if (r == NULL)
        return err->rc;
    v = PQntuples(r) == 1 && !PQgetisnull(r, 0, 0)
            ? strtoll(PQgetvalue(r, 0, 0), NULL, 10)
            : -1;
    PQclear(r);
    sw__pg_redact(uri, where, sizeof(where));
    if (v < 0)
        return sw__fail(err, SW_E_FORMAT,
                        "registry %s: not a streamwise tracking store (no "
                        "schema_version table)",
                        where);
    if (v > SW_REGISTRY_SCHEMA_KNOWN)
        return sw__fail(err, SW_E_FORMAT,
                        "registry %s: store schema %lld, this build reads up "
                        "to %d",
                        where, v, SW_REGISTRY_SCHEMA_KNOWN);
    return SW_OK;
}

/* The artifact directory: $STREAMWISE_ARTIFACT_ROOT, else the store's. */
static sw_rc
artifact_root(PGconn *conn, const char *uri, char *out, size_t len,
              sw_err *err)
{
    const char *env = getenv("STREAMWISE_ARTIFACT_ROOT");
    PGresult *r;
    char where[512];

    if (env != NULL && *env != '\0') {
        snprintf(out, len, "%s", env);
        return SW_OK;
    }
    r = pg_exec(conn, uri,
                "SELECT value FROM settings WHERE key = 'artifact_root'", 0,
                NULL, err);
    if (r == NULL)
        return err->rc;
    if (PQntuples(r) != 1) {
        PQclear(r);
        sw__pg_redact(uri, where, sizeof(where));
        return sw__fail(err, SW_E_FORMAT,
                        "registry %s: the store names no artifact directory "
                        "(settings.artifact_root); set "
                        "STREAMWISE_ARTIFACT_ROOT",
                        where);
    }
    snprintf(out, len, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    return SW_OK;
}

/* What the store holds under name, for a mistyped reference. */
static void
known(PGconn *conn, const char *uri, const char *name, char *out, size_t len)
{
    const char *p[1] = {name};
    PGresult *r;
    sw_err ignored = {0};

    snprintf(out, len, "the store could not say what it holds");
    r = pg_exec(conn, uri,
                "SELECT count(*), min(version), max(version), (SELECT "
                "string_agg(alias || ' -> ' || version, ', ' ORDER BY alias) "
                "FROM aliases WHERE name = $1) FROM model_versions WHERE "
                "name = $1",
                1, p, &ignored);
    if (r == NULL)
        return;
    if (strtoll(PQgetvalue(r, 0, 0), NULL, 10) > 0) {
        int has = !PQgetisnull(r, 0, 3);

        snprintf(out, len, "'%.100s' has versions %s..%s and %s%.400s", name,
                 PQgetvalue(r, 0, 1), PQgetvalue(r, 0, 2),
                 has ? "aliases " : "no alias", has ? PQgetvalue(r, 0, 3) : "");
        PQclear(r);
        return;
    }
    PQclear(r);
    r = pg_exec(conn, uri,
                "SELECT string_agg(name, ', ' ORDER BY name) FROM (SELECT "
                "DISTINCT name FROM model_versions ORDER BY name LIMIT 20) s",
                0, NULL, &ignored);
    if (r == NULL)
        return;
    snprintf(out, len, "the store has no model '%.100s'; its models: %.400s",
             name, PQgetisnull(r, 0, 0) ? "none" : PQgetvalue(r, 0, 0));
    PQclear(r);
}

sw_rc
sw__pg_resolve(const char *uri, const char *ref, char *path, size_t path_len,
               char *sha256_hex, int64_t *version, sw_err *err)
{
    char name[129], root[4096], want[65], where[512];
    const char *sel = "", *p[2];
    PGconn *conn = NULL;
    PGresult *r = NULL;
    int64_t v;
    sw_rc rc;

    if ((rc = sw__registry_parse_ref(ref, name, sizeof(name), &sel, err)) !=
        SW_OK)
        return rc;
    if (sodium_init() < 0)
        return sw__fail(err, SW_E_INTERNAL, "registry: libsodium failed");
    if ((rc = sw__pg_open(uri, &conn, err)) != SW_OK)
        return rc;
    if ((rc = sw__pg_check_schema(conn, uri, err)) != SW_OK ||
        (rc = artifact_root(conn, uri, root, sizeof(root), err)) != SW_OK)
        goto done;
    p[0] = name;
    p[1] = sel;
    if (sw__registry_all_digits(sel))
        r = pg_exec(conn, uri,
                    "SELECT version, path, sha256 FROM model_versions WHERE "
                    "name = $1 AND version = $2::bigint",
                    2, p, err);
    else if (*sel == '\0')
        r = pg_exec(conn, uri,
                    "SELECT version, path, sha256 FROM model_versions WHERE "
                    "name = $1 ORDER BY version DESC LIMIT 1",
                    1, p, err);
    else
        r = pg_exec(conn, uri,
                    "SELECT v.version, v.path, v.sha256 FROM aliases a JOIN "
                    "model_versions v ON v.name = a.name AND v.version = "
                    "a.version WHERE a.name = $1 AND a.alias = $2",
                    2, p, err);
    if (r == NULL) {
        rc = err->rc;
        goto done;
    }
    if (PQntuples(r) == 0) {
        char what[1024];

        known(conn, uri, name, what, sizeof(what));
        sw__pg_redact(uri, where, sizeof(where));
        rc = sw__fail(err, SW_E_INVAL,
                      "registry %s: '%s' names no model version; %s", where,
                      ref, what);
        goto done;
    }
    v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    snprintf(want, sizeof(want), "%s", PQgetvalue(r, 0, 2));
    if ((size_t)snprintf(path, path_len, "%s/%s", root, PQgetvalue(r, 0, 1)) >=
        path_len) {
        path[0] = '\0';
        rc = sw__fail(err, SW_E_INVAL,
                      "registry: path buffer of %zu bytes is too small",
                      path_len);
        goto done;
    }
    if ((rc = sw__registry_check_file(path, want, sha256_hex, err)) !=
        SW_OK) {
        path[0] = '\0';
        goto done;
    }
    if (version != NULL)
        *version = v;
done:
    PQclear(r);
    PQfinish(conn);
    return rc;
}

sw_rc
sw__pg_watch_open(const char *uri, sw__pg_watch **out, sw_err *err)
{
    sw__pg_watch *w = sw__calloc(1, sizeof(*w));
    PGresult *r;
    sw_rc rc;

    *out = NULL;
    if (w == NULL)
        return sw__fail(err, SW_E_NOMEM, "registry watch: out of memory");
    if ((rc = sw__pg_open(uri, &w->conn, err)) != SW_OK ||
        (rc = sw__pg_check_schema(w->conn, uri, err)) != SW_OK) {
        sw__pg_watch_free(w);
        return rc;
    }
    r = pg_exec(w->conn, uri, "LISTEN streamwise_registry", 0, NULL, err);
    if (r == NULL) {
        sw__pg_watch_free(w);
        return err->rc;
    }
    PQclear(r);
    *out = w;
    return SW_OK;
}

sw_rc
sw__pg_watch_poll(sw__pg_watch *w, int *changed, sw_err *err)
{
    PGnotify *n;

    *changed = !w->polled; /* the first poll: look once */
    w->polled = 1;
    /* reads what the socket holds without waiting; a server gone shows
     * here, and the caller reopens (notifications in between are lost,
     * and a reopened watch's first poll looks again) */
    if (!PQconsumeInput(w->conn) || PQstatus(w->conn) != CONNECTION_OK) {
        char msg[256];

        snprintf(msg, sizeof(msg), "%s", PQerrorMessage(w->conn));
        msg[strcspn(msg, "\n")] = '\0';
        return sw__fail(err, SW_E_IO, "registry watch: %s",
                        *msg ? msg : "connection lost");
    }
    while ((n = PQnotifies(w->conn)) != NULL) {
        *changed = 1;
        PQfreemem(n);
    }
    return SW_OK;
}

void
sw__pg_watch_free(sw__pg_watch *w)
{
    if (w == NULL)
        return;
    PQfinish(w->conn);
    sw__free(w);
}

sw_rc
sw__pg_record(const char *uri, const char *ref, int64_t version,
              const char *sha256_hex, const char *runner,
              sw_deploy_status status, const char *reason, sw_err *err)
{
    char name[129], vtext[32], at[64];
    const char *sel, *p[8];
    PGconn *conn = NULL;
    PGresult *r;
    struct timespec ts;
    sw_rc rc;

    if ((rc = sw__registry_parse_ref(ref, name, sizeof(name), &sel, err)) !=
        SW_OK)
        return rc;
    if ((rc = sw__pg_open(uri, &conn, err)) != SW_OK)
        return rc;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(vtext, sizeof(vtext), "%lld", (long long)version);
    snprintf(at, sizeof(at), "%.6f", (double)ts.tv_sec + ts.tv_nsec * 1e-9);
    p[0] = name;
    p[1] = ref;
    p[2] = version > 0 ? vtext : NULL;
    p[3] = sha256_hex;
    p[4] = runner;
    p[5] = sw_deploy_status_name(status);
    p[6] = reason;
    p[7] = at;
    r = pg_exec(conn, uri,
                "INSERT INTO deployments (name, ref, version, sha256, runner, "
                "status, reason, at) VALUES ($1, $2, $3::bigint, $4, $5, $6, "
                "$7, $8::double precision)",
                8, p, err);
    rc = r == NULL ? err->rc : SW_OK;
    PQclear(r);
    PQfinish(conn);
    return rc;
}

sw_rc
sw__pg_register(const char *uri, const char *name, const unsigned char *buf,
                size_t len, const char *source, const char *created_by,
                int64_t *version, sw_err *err)
{
    char root[4096], folder[4200], path[4400], rel[512], hex[65];
    char vtext[32], size[32], at[64];
    unsigned char digest[crypto_hash_sha256_BYTES];
    const char *p[8];
    PGconn *conn = NULL;
    PGresult *r = NULL;
    struct timespec ts;
    int64_t v;
    int i, began = 0;
    sw_rc rc;

    if (sodium_init() < 0)
        return sw__fail(err, SW_E_INTERNAL, "registry: libsodium failed");
    crypto_hash_sha256(digest, buf, len);
    for (i = 0; i < (int)sizeof(digest); i++)
        snprintf(hex + 2 * i, 3, "%02x", digest[i]);
    if ((rc = sw__pg_open(uri, &conn, err)) != SW_OK)
        return rc;
    if ((rc = sw__pg_check_schema(conn, uri, err)) != SW_OK ||
        (rc = artifact_root(conn, uri, root, sizeof(root), err)) != SW_OK)
        goto done;
    /* the same lock as every Python writer: version numbers are read and
     * taken in one serialized step */
    if ((r = pg_exec(conn, uri, "BEGIN", 0, NULL, err)) == NULL) {
        rc = err->rc;
        goto done;
    }
    began = 1;
    PQclear(r);
    if ((r = pg_exec(conn, uri,
                     "SELECT pg_advisory_xact_lock(" SW_REGISTRY_PG_WRITE_LOCK
                     ")",
                     0, NULL, err)) == NULL) {
        rc = err->rc;
        goto done;
    }
    PQclear(r);
    p[0] = name;
    p[1] = hex;
    if ((r = pg_exec(conn, uri,
                     "SELECT (SELECT version FROM model_versions WHERE name = "
                     "$1 AND sha256 = $2), (SELECT coalesce(max(version), 0) "
                     "FROM model_versions WHERE name = $1)",
                     2, p, err)) == NULL) {
        rc = err->rc;
        goto done;
    }
    if (!PQgetisnull(r, 0, 0)) { /* the same bytes */
        *version = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
        goto done;
    }
    v = strtoll(PQgetvalue(r, 0, 1), NULL, 10) + 1;
    PQclear(r);
    r = NULL;
    snprintf(folder, sizeof(folder), "%s/models", root);
    snprintf(path, sizeof(path), "%s/%s", folder, name);
    if ((mkdir(folder, 0755) != 0 && errno != EEXIST) ||
        (mkdir(path, 0755) != 0 && errno != EEXIST)) {
        rc = sw__fail(err, SW_E_IO, "%s: %s", path, strerror(errno));
        goto done;
    }
    snprintf(path, sizeof(path), "%s/models/%s/%lld.swm", root, name,
             (long long)v);
    snprintf(rel, sizeof(rel), "models/%s/%lld.swm", name, (long long)v);
    if ((rc = sw__write_atomic(path, buf, len, err)) != SW_OK)
        goto done;
    chmod(path, 0444);
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(vtext, sizeof(vtext), "%lld", (long long)v);
    snprintf(size, sizeof(size), "%zu", len);
    snprintf(at, sizeof(at), "%.6f", (double)ts.tv_sec + ts.tv_nsec * 1e-9);
    p[0] = name;
    p[1] = vtext;
    p[2] = hex;
    p[3] = rel;
    p[4] = size;
    p[5] = source ? source : "";
    p[6] = at;
    p[7] = created_by ? created_by : "sw-serve";
    if ((r = pg_exec(conn, uri,
                     "INSERT INTO model_versions (name, version, sha256, path, "
                     "size, source, source_run, created, created_by) VALUES "
                     "($1, $2::bigint, $3, $4, $5::bigint, $6, NULL, "
                     "$7::double precision, $8)",
                     8, p, err)) == NULL) {
        rc = err->rc;
        unlink(path);
        goto done;
    }
    *version = v;
done:
    PQclear(r);
    if (began) {
        r = PQexec(conn, rc == SW_OK ? "COMMIT" : "ROLLBACK");
        if (rc == SW_OK && PQresultStatus(r) != PGRES_COMMAND_OK)
            rc = pg_fail(conn, uri, "commit failed", err);
        PQclear(r);
    }
    PQfinish(conn);
    return rc;
}

#else /* !SW_HAVE_PQ */

#define NO_PQ                                                                  \
    "registry: this build has no PostgreSQL client (install libpq-dev and "    \
    "rebuild)"

sw_rc
sw__pg_resolve(const char *uri, const char *ref, char *path, size_t path_len,
               char *sha256_hex, int64_t *version, sw_err *err)
{
    (void)uri, (void)ref, (void)path, (void)path_len, (void)sha256_hex;
    (void)version;
    return sw__fail(err, SW_E_UNSUPPORTED, NO_PQ);
}

sw_rc
sw__pg_watch_open(const char *uri, sw__pg_watch **out, sw_err *err)
{
    (void)uri;
    *out = NULL;
    return sw__fail(err, SW_E_UNSUPPORTED, NO_PQ);
}

sw_rc
sw__pg_watch_poll(sw__pg_watch *w, int *changed, sw_err *err)
{
    (void)w;
    *changed = 0;
    return sw__fail(err, SW_E_UNSUPPORTED, NO_PQ);
}

void
sw__pg_watch_free(sw__pg_watch *w)
{
    (void)w;
}

sw_rc
sw__pg_record(const char *uri, const char *ref, int64_t version,
              const char *sha256_hex, const char *runner,
              sw_deploy_status status, const char *reason, sw_err *err)
{
    (void)uri, (void)ref, (void)version, (void)sha256_hex, (void)runner;
    (void)status, (void)reason;
    return sw__fail(err, SW_E_UNSUPPORTED, NO_PQ);
}

sw_rc
sw__pg_register(const char *uri, const char *name, const unsigned char *buf,
                size_t len, const char *source, const char *created_by,
                int64_t *version, sw_err *err)
{
    (void)uri, (void)name, (void)buf, (void)len, (void)source;
    (void)created_by, (void)version;
    return sw__fail(err, SW_E_UNSUPPORTED, NO_PQ);
}

#endif /* SW_HAVE_PQ */
