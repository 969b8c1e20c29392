/* SPDX-License-Identifier: MIT */
/*
 * sw_registry.c - resolve "name@alias" in a tracking store, watch it for
 * promotions, and log what a runner deploys.
 *
 * The runner must serve what the registry says is champion without any
 * Python: this file reads the store's SQLite database (written by
 * python/streamwise/registry.py, schema in python/streamwise/store.py)
 * through libsqlite3 opened read-only, and hashes the model file it finds so
 * that a file changed after registration is refused rather than served.
 * Built into libswio.a; without SQLite it returns SW_E_UNSUPPORTED.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <errno.h>
#include <sodium.h>

#include "sw_registry_int.h"
#ifdef SW_HAVE_SQLITE
#include <sqlite3.h>
#endif

struct sw_registry_watch {
    sw__pg_watch *pg; /* a PostgreSQL store's, or NULL */
#ifdef SW_HAVE_SQLITE
    sqlite3 *db;
    sqlite3_stmt *q; /* PRAGMA data_version */
#endif
    int64_t last;
    int polled;
};

int
sw__registry_is_pg(const char *store)
{
    return strncmp(store, "postgresql://", 13) == 0 ||
           strncmp(store, "postgres://", 11) == 0;
}

/* Split "name@sel" into name and selector; the name must be a registry
 * name (letters, digits, '_', '.', '-'). */
sw_rc
sw__registry_parse_ref(const char *ref, char *name, size_t name_len, const char **sel,
          sw_err *err)
{
    const char *at = strchr(ref, '@');
    size_t n = at ? (size_t)(at - ref) : strlen(ref), i;

    if (n == 0 || n >= name_len)
        return sw__fail(err, SW_E_INVAL,
                        "registry reference '%s': expected name@alias, "
                        "name@version or name",
                        ref);
    for (i = 0; i < n; i++) {
        if (!isalnum((unsigned char)ref[i]) && ref[i] != '_' && ref[i] != '.' &&
            ref[i] != '-')
            return sw__fail(err, SW_E_INVAL,
                            "registry reference '%s': '%c' is not allowed in "
                            "a model name",
                            ref, ref[i]);
    }
    memcpy(name, ref, n);
    name[n] = '\0';
    *sel = at ? at + 1 : "";
    return SW_OK;
}

int
sw__registry_all_digits(const char *s)
{
    if (*s == '\0')
        return 0;
    for (; *s; s++) {
        if (!isdigit((unsigned char)*s))
            return 0;
    }
    return 1;
}

sw_rc
sw__registry_check_file(const char *path, const char *want, char *sha256_hex,
                        sw_err *err)
{
    char actual[65];
    sw_rc rc = sw__registry_hash_file(path, actual, err);

    if (rc != SW_OK)
        return rc;
    if (strcmp(actual, want) != 0)
        return sw__fail(err, SW_E_FORMAT,
                        "%s: SHA-256 %.16s... but the registry recorded "
                        "%.16s...: the file changed after registration",
                        path, actual, want);
    memcpy(sha256_hex, actual, 65);
    return SW_OK;
}

/* SHA-256 of a file as 64 hex digits. */
sw_rc
sw__registry_hash_file(const char *path, char *hex, sw_err *err)
{
    crypto_hash_sha256_state st;
    unsigned char buf[1 << 16], digest[crypto_hash_sha256_BYTES];
    FILE *fp = fopen(path, "rb");
    size_t n;
    int i;

    if (fp == NULL)
        return sw__fail(err, SW_E_IO, "%s: %s", path, strerror(errno));
    crypto_hash_sha256_init(&st);
    while ((n = fread(buf, 1, sizeof(buf), fp)) > 0)
        crypto_hash_sha256_update(&st, buf, n);
    if (ferror(fp)) {
        fclose(fp);
        return sw__fail(err, SW_E_IO, "%s: read error", path);
    }
    fclose(fp);
    crypto_hash_sha256_final(&st, digest);
    for (i = 0; i < (int)sizeof(digest); i++)
        snprintf(hex + 2 * i, 3, "%02x", digest[i]);
    return SW_OK;
}

#ifdef SW_HAVE_SQLITE
#include <sys/stat.h>
#include <unistd.h>

#define SCHEMA_KNOWN SW_REGISTRY_SCHEMA_KNOWN
#define parse_ref sw__registry_parse_ref
#define all_digits sw__registry_all_digits

static void sqlite_watch_free(sw_registry_watch *w);

static sw_rc
db_fail(sqlite3 *db, const char *db_path, sw_err *err)
{
    return sw__fail(err, SW_E_IO, "%s: %s", db_path,
                    db ? sqlite3_errmsg(db) : "cannot open");
}

/* What the store holds under name (its versions and aliases), or, for a
 * name it does not know, the names it does: for a mistyped reference. */
static void
known(sqlite3 *db, const char *name, char *out, size_t len)
{
    sqlite3_stmt *q = NULL;
    long long lo = 0, hi = 0, n = 0;
    const char *aliases = NULL;

    snprintf(out, len, "the store could not say what it holds");
    if (sqlite3_prepare_v2(db,
                           "SELECT count(*), min(version), max(version) "
                           "FROM model_versions WHERE name = ?1",
                           -1, &q, NULL) != SQLITE_OK)
        return;
    sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
    if (sqlite3_step(q) == SQLITE_ROW) {
        n = sqlite3_column_int64(q, 0);
        lo = sqlite3_column_int64(q, 1);
        hi = sqlite3_column_int64(q, 2);
    }
    sqlite3_finalize(q);
    q = NULL;
    if (n > 0 && sqlite3_prepare_v2(db,
                                    "SELECT group_concat(alias || ' -> ' || "
                                    "version, ', ') FROM (SELECT alias, "
                                    "version FROM aliases WHERE name = ?1 "
                                    "ORDER BY alias)",
                                    -1, &q, NULL) == SQLITE_OK) {
        sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
        if (sqlite3_step(q) == SQLITE_ROW)
            aliases = (const char *)sqlite3_column_text(q, 0);
        snprintf(out, len, "'%.100s' has versions %lld..%lld and %s%.400s",
                 name,
                 lo, hi, aliases ? "aliases " : "no alias",
                 aliases ? aliases : "");
    } else if (n == 0 &&
               sqlite3_prepare_v2(db,
                                  "SELECT group_concat(name, ', ') FROM "
                                  "(SELECT DISTINCT name FROM model_versions "
                                  "ORDER BY name LIMIT 20)",
                                  -1, &q, NULL) == SQLITE_OK) {
        const char *names = NULL;

        if (sqlite3_step(q) == SQLITE_ROW)
            names = (const char *)sqlite3_column_text(q, 0);
        snprintf(out, len, "the store has no model '%.100s'; its models: "
                           "%.400s",
                 name, names ? names : "none");
    }
    sqlite3_finalize(q);
}

static sw_rc
sqlite_resolve(const char *store_dir, const char *ref, char *path,
                    size_t path_len, char *sha256_hex, int64_t *version,
                    sw_err *err)
{
    char name[129], db_path[4096], rel[4096], want[65];
    const char *sel = "";
    sqlite3 *db = NULL;
    sqlite3_stmt *q = NULL;
    int64_t v = 0;
    int step;
    sw_rc rc;

    if (version != NULL)
        *version = 0;
    if (path == NULL || path_len == 0 || sha256_hex == NULL ||
        store_dir == NULL || ref == NULL)
        return sw__fail(err, SW_E_INVAL, "registry: NULL argument");
    path[0] = '\0';
    sha256_hex[0] = '\0';
    rc = parse_ref(ref, name, sizeof(name), &sel, err);
    if (rc != SW_OK)
        return rc;
    if (sodium_init() < 0)
        return sw__fail(err, SW_E_INTERNAL, "registry: libsodium failed");
    snprintf(db_path, sizeof(db_path), "%s/streamwise.db", store_dir);
    if (sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL) !=
        SQLITE_OK) {
        rc = db_fail(db, db_path, err);
        goto done;
    }
    sqlite3_busy_timeout(db, 10000);
    if (sqlite3_prepare_v2(db, "SELECT version FROM schema_version", -1, &q,
                           NULL) != SQLITE_OK) {
        rc = sw__fail(err, SW_E_FORMAT,
                      "%s: not a streamwise tracking store (%s)", db_path,
                      sqlite3_errmsg(db));
        goto done;
    }
    if (sqlite3_step(q) != SQLITE_ROW ||
        sqlite3_column_int64(q, 0) > SCHEMA_KNOWN) {
        rc = sw__fail(err, SW_E_FORMAT,
                      "%s: store schema %lld, this build reads up to %d",
                      db_path, (long long)sqlite3_column_int64(q, 0),
                      SCHEMA_KNOWN);
        goto done;
    }
    sqlite3_finalize(q);
    q = NULL;

    if (all_digits(sel)) {
        rc = sqlite3_prepare_v2(db,
                                "SELECT version, path, sha256 FROM "
                                "model_versions WHERE name = ?1 AND "
                                "version = ?2",
                                -1, &q, NULL) == SQLITE_OK
                 ? SW_OK
                 : db_fail(db, db_path, err);
        if (rc == SW_OK)
            sqlite3_bind_int64(q, 2, strtoll(sel, NULL, 10));
    } else if (*sel == '\0') {
        rc = sqlite3_prepare_v2(db,
                                "SELECT version, path, sha256 FROM "
                                "model_versions WHERE name = ?1 ORDER BY "
                                "version DESC LIMIT 1",
                                -1, &q, NULL) == SQLITE_OK
                 ? SW_OK
                 : db_fail(db, db_path, err);
    } else {
        rc = sqlite3_prepare_v2(
                 db,
                 "SELECT v.version, v.path, v.sha256 FROM aliases a JOIN "
                 "model_versions v ON v.name = a.name AND v.version = "
                 "a.version WHERE a.name = ?1 AND a.alias = ?2",
                 -1, &q, NULL) == SQLITE_OK
                 ? SW_OK
                 : db_fail(db, db_path, err);
        if (rc == SW_OK)
            sqlite3_bind_text(q, 2, sel, -1, SQLITE_STATIC);
    }
    if (rc != SW_OK)
        goto done;
    sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
    step = sqlite3_step(q);
    if (step == SQLITE_DONE) {
        char what[1024];

        known(db, name, what, sizeof(what));
        rc = sw__fail(err, SW_E_INVAL,
                      "registry %s: '%s' names no model version; %s", store_dir,
                      ref, what);
        goto done;
    }
    if (step != SQLITE_ROW) {
        rc = db_fail(db, db_path, err);
        goto done;
    }
    v = sqlite3_column_int64(q, 0);
    snprintf(rel, sizeof(rel), "%s", (const char *)sqlite3_column_text(q, 1));
    snprintf(want, sizeof(want), "%s", (const char *)sqlite3_column_text(q, 2));
    if ((size_t)snprintf(path, path_len, "%s/%s", store_dir, rel) >= path_len) {
        path[0] = '\0';
        rc = sw__fail(err, SW_E_INVAL,
                      "registry: path buffer of %zu bytes "
                      "is too small",
                      path_len);
        goto done;
    }
    rc = sw__registry_check_file(path, want, sha256_hex, err);
    if (rc != SW_OK) {
        path[0] = '\0';
        goto done;
    }
    if (version != NULL)
        *version = v;
    rc = SW_OK;
done:
    sqlite3_finalize(q);
    sqlite3_close(db);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Watching for promotions                                              */
/* ------------------------------------------------------------------ */


static sw_rc
sqlite_watch_open(const char *store_dir, sw_registry_watch **out,
                       sw_err *err)
{
    char db_path[4096];
    sw_registry_watch *w;

    *out = NULL;
    if (store_dir == NULL)
        return sw__fail(err, SW_E_INVAL, "registry watch: NULL store");
    w = sw__calloc(1, sizeof(*w));
    if (w == NULL)
        return sw__fail(err, SW_E_NOMEM, "registry watch: out of memory");
    snprintf(db_path, sizeof(db_path), "%s/streamwise.db", store_dir);
    if (sqlite3_open_v2(db_path, &w->db, SQLITE_OPEN_READONLY, NULL) !=
            SQLITE_OK ||
        sqlite3_prepare_v2(w->db, "PRAGMA data_version", -1, &w->q, NULL) !=
            SQLITE_OK) {
        sw_rc rc = db_fail(w->db, db_path, err);

        sqlite_watch_free(w);
        return rc;
    }
    sqlite3_busy_timeout(w->db, 1000);
    *out = w;
    return SW_OK;
}

static sw_rc
sqlite_watch_poll(sw_registry_watch *w, int *changed, sw_err *err)
{
    int64_t v;

    *changed = 0;
    if (sqlite3_step(w->q) != SQLITE_ROW) {
        sqlite3_reset(w->q);
        return sw__fail(err, SW_E_IO, "registry watch: %s",
                        sqlite3_errmsg(w->db));
    }
    v = sqlite3_column_int64(w->q, 0);
    sqlite3_reset(w->q);
    *changed = !w->polled || v != w->last;
    w->last = v;
    w->polled = 1;
    return SW_OK;
}

static void
sqlite_watch_free(sw_registry_watch *w)
{
    if (w == NULL)
        return;
    sqlite3_finalize(w->q);
    sqlite3_close(w->db);
    sw__free(w);
}

static sw_rc
sqlite_record(const char *store_dir, const char *ref, int64_t version,
                   const char *sha256_hex, const char *runner,
                   sw_deploy_status status, const char *reason, sw_err *err)
{
    char name[129], db_path[4096];
    const char *sel;
    sqlite3 *db = NULL;
    sqlite3_stmt *q = NULL;
    struct timespec ts;
    sw_rc rc;

    if (store_dir == NULL || ref == NULL || runner == NULL ||
        reason == NULL ||
        sw_deploy_status_name(status) == NULL)
        return sw__fail(err, SW_E_INVAL, "registry record: bad argument");
    if ((rc = parse_ref(ref, name, sizeof(name), &sel, err)) != SW_OK)
        return rc;
    snprintf(db_path, sizeof(db_path), "%s/streamwise.db", store_dir);
    /* read-write, but never create: a store is made by Python */
    if (sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READWRITE, NULL) !=
        SQLITE_OK) {
        rc = db_fail(db, db_path, err);
        goto done;
    }
    sqlite3_busy_timeout(db, 10000);
    if (sqlite3_prepare_v2(db,
                           "INSERT INTO deployments (name, ref, version, "
                           "sha256, runner, status, reason, at) VALUES "
                           "(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                           -1, &q, NULL) != SQLITE_OK) {
        rc = sw__fail(err, SW_E_FORMAT,
                      "%s: no deployment log (%s): open the store with this "
                      "streamwise's Python once to upgrade it",
                      db_path, sqlite3_errmsg(db));
        goto done;
    }
    clock_gettime(CLOCK_REALTIME, &ts);
    sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, ref, -1, SQLITE_STATIC);
    if (version > 0)
        sqlite3_bind_int64(q, 3, version);
    if (sha256_hex != NULL)
        sqlite3_bind_text(q, 4, sha256_hex, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 5, runner, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 6, sw_deploy_status_name(status), -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 7, reason, -1, SQLITE_STATIC);
    sqlite3_bind_double(q, 8, (double)ts.tv_sec + ts.tv_nsec * 1e-9);
    rc = sqlite3_step(q) == SQLITE_DONE ? SW_OK : db_fail(db, db_path, err);
done:
    sqlite3_finalize(q);
    sqlite3_close(db);
    return rc;
}

static sw_rc
sqlite_register(const char *store_dir, const char *name,
                     const unsigned char *buf, size_t len, const char *source,
                     const char *created_by, int64_t *version, sw_err *err)
{
    char check[129], db_path[4096], folder[4096], path[4200], rel[512];
    char hex[65];
    const char *sel;
    unsigned char digest[crypto_hash_sha256_BYTES];
    sqlite3 *db = NULL;
    sqlite3_stmt *q = NULL;
    struct timespec ts;
    int64_t v = 0;
    int i, began = 0;
    sw_rc rc;

    if (version != NULL)
        *version = 0;
    if (store_dir == NULL || name == NULL || buf == NULL || version == NULL)
        return sw__fail(err, SW_E_INVAL, "registry register: NULL argument");
    if ((rc = parse_ref(name, check, sizeof(check), &sel, err)) != SW_OK)
        return rc;
    if (*sel != '\0' || strchr(name, '@') != NULL)
        return sw__fail(err, SW_E_INVAL,
                        "registry register: '%s' is a reference, not a name",
                        name);
    if (sodium_init() < 0)
        return sw__fail(err, SW_E_INTERNAL, "registry: libsodium failed");
    crypto_hash_sha256(digest, buf, len);
    for (i = 0; i < (int)sizeof(digest); i++)
        snprintf(hex + 2 * i, 3, "%02x", digest[i]);
    snprintf(db_path, sizeof(db_path), "%s/streamwise.db", store_dir);
    snprintf(folder, sizeof(folder), "%s/models/%s", store_dir, name);
    if (sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READWRITE, NULL) !=
        SQLITE_OK) {
        rc = db_fail(db, db_path, err);
        goto done;
    }
    sqlite3_busy_timeout(db, 60000);
    if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
        rc = db_fail(db, db_path, err);
        goto done;
    }
    began = 1;
    if (sqlite3_prepare_v2(db,
                           "SELECT version FROM model_versions WHERE name = "
                           "?1 AND sha256 = ?2",
                           -1, &q, NULL) != SQLITE_OK) {
        rc = db_fail(db, db_path, err);
        goto done;
    }
    sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, hex, -1, SQLITE_STATIC);
    if (sqlite3_step(q) == SQLITE_ROW) {
        *version = sqlite3_column_int64(q, 0); /* the same bytes */
        rc = SW_OK;
        goto done;
    }
    sqlite3_finalize(q);
    q = NULL;
    if (sqlite3_prepare_v2(db,
                           "SELECT coalesce(max(version), 0) FROM "
                           "model_versions WHERE name = ?1",
                           -1, &q, NULL) != SQLITE_OK ||
        (sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC),
         sqlite3_step(q) != SQLITE_ROW)) {
        rc = db_fail(db, db_path, err);
        goto done;
    }
    v = sqlite3_column_int64(q, 0) + 1;
    sqlite3_finalize(q);
    q = NULL;
    snprintf(path, sizeof(path), "%s/models", store_dir);
    if ((mkdir(path, 0755) != 0 && errno != EEXIST) ||
        (mkdir(folder, 0755) != 0 && errno != EEXIST)) {
        rc = sw__fail(err, SW_E_IO, "%s: %s", folder, strerror(errno));
        goto done;
    }
    snprintf(path, sizeof(path), "%s/%lld.swm", folder, (long long)v);
    snprintf(rel, sizeof(rel), "models/%s/%lld.swm", name, (long long)v);
    if ((rc = sw__write_atomic(path, buf, len, err)) != SW_OK)
        goto done;
    chmod(path, 0444);
    clock_gettime(CLOCK_REALTIME, &ts);
    if (sqlite3_prepare_v2(db,
                           "INSERT INTO model_versions (name, version, "
                           "sha256, path, size, source, source_run, created, "
                           "created_by) VALUES (?1, ?2, ?3, ?4, ?5, ?6, NULL, "
                           "?7, ?8)",
                           -1, &q, NULL) != SQLITE_OK) {
        rc = db_fail(db, db_path, err);
        goto done;
    }
    sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 2, v);
    sqlite3_bind_text(q, 3, hex, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 4, rel, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 5, (sqlite3_int64)len);
    sqlite3_bind_text(q, 6, source ? source : "", -1, SQLITE_STATIC);
    sqlite3_bind_double(q, 7, (double)ts.tv_sec + ts.tv_nsec * 1e-9);
    sqlite3_bind_text(q, 8, created_by ? created_by : "sw-serve", -1,
                      SQLITE_STATIC);
    if (sqlite3_step(q) != SQLITE_DONE) {
        rc = db_fail(db, db_path, err);
        unlink(path);
        goto done;
    }
    *version = v;
    rc = SW_OK;
done:
    sqlite3_finalize(q);
    if (began)
        sqlite3_exec(db, rc == SW_OK ? "COMMIT" : "ROLLBACK", NULL, NULL,
                     NULL);
    sqlite3_close(db);
    return rc;
}

#else /* !SW_HAVE_SQLITE */

static sw_rc
sqlite_resolve(const char *store_dir, const char *ref, char *path,
                    size_t path_len, char *sha256_hex, int64_t *version,
                    sw_err *err)
{
    (void)store_dir;
    (void)ref;
    if (path != NULL && path_len > 0)
        path[0] = '\0';
    if (sha256_hex != NULL)
        sha256_hex[0] = '\0';
    if (version != NULL)
        *version = 0;
    return sw__fail(err, SW_E_UNSUPPORTED,
                    "registry: this build has no SQLite (install "
                    "libsqlite3-dev and rebuild)");
}


static sw_rc
sqlite_watch_open(const char *store_dir, sw_registry_watch **out,
                       sw_err *err)
{
    (void)store_dir;
    *out = NULL;
    return sw__fail(err, SW_E_UNSUPPORTED,
                    "registry: this build has no SQLite");
}

static sw_rc
sqlite_watch_poll(sw_registry_watch *w, int *changed, sw_err *err)
{
    (void)w;
    *changed = 0;
    return sw__fail(err, SW_E_UNSUPPORTED,
                    "registry: this build has no SQLite");
}

static void
sqlite_watch_free(sw_registry_watch *w)
{
    (void)w;
}

static sw_rc
sqlite_record(const char *store_dir, const char *ref, int64_t version,
                   const char *sha256_hex, const char *runner,
                   sw_deploy_status status, const char *reason, sw_err *err)
{
    (void)store_dir, (void)ref, (void)version, (void)sha256_hex;
    (void)runner, (void)status, (void)reason;
    return sw__fail(err, SW_E_UNSUPPORTED,
                    "registry: this build has no SQLite");
}

static sw_rc
sqlite_register(const char *store_dir, const char *name,
                     const unsigned char *buf, size_t len, const char *source,
                     const char *created_by, int64_t *version, sw_err *err)
{
    (void)store_dir, (void)name, (void)buf, (void)len, (void)source;
    (void)created_by;
    if (version != NULL)
        *version = 0;
    return sw__fail(err, SW_E_UNSUPPORTED,
                    "registry: this build has no SQLite");
}

#endif /* SW_HAVE_SQLITE */

/* ------------------------------------------------------------------ */
/* The public functions: a postgresql:// store or a store directory    */
/* ------------------------------------------------------------------ */

sw_rc
sw_registry_resolve(const char *store, const char *ref, char *path,
                    size_t path_len, char *sha256_hex, int64_t *version,
                    sw_err *err)
{
    if (version != NULL)
        *version = 0;
    if (path == NULL || path_len == 0 || sha256_hex == NULL || store == NULL ||
        ref == NULL)
        return sw__fail(err, SW_E_INVAL, "registry: NULL argument");
    path[0] = '\0';
    sha256_hex[0] = '\0';
    if (sw__registry_is_pg(store))
        return sw__pg_resolve(store, ref, path, path_len, sha256_hex, version,
                              err);
    return sqlite_resolve(store, ref, path, path_len, sha256_hex, version, err);
}

sw_rc
sw_registry_watch_open(const char *store, sw_registry_watch **out,
                       sw_err *err)
{
    sw_registry_watch *w;
    sw_rc rc;

    *out = NULL;
    if (store == NULL)
        return sw__fail(err, SW_E_INVAL, "registry watch: NULL store");
    if (!sw__registry_is_pg(store))
        return sqlite_watch_open(store, out, err);
    if ((w = sw__calloc(1, sizeof(*w))) == NULL)
        return sw__fail(err, SW_E_NOMEM, "registry watch: out of memory");
    if ((rc = sw__pg_watch_open(store, &w->pg, err)) != SW_OK) {
        sw__free(w);
        return rc;
    }
    *out = w;
    return SW_OK;
}

sw_rc
sw_registry_watch_poll(sw_registry_watch *w, int *changed, sw_err *err)
{
    if (w->pg != NULL)
        return sw__pg_watch_poll(w->pg, changed, err);
    return sqlite_watch_poll(w, changed, err);
}

void
sw_registry_watch_free(sw_registry_watch *w)
{
    if (w == NULL)
        return;
    if (w->pg != NULL) {
        sw__pg_watch_free(w->pg);
        sw__free(w);
        return;
    }
    sqlite_watch_free(w);
}

const char *
sw_deploy_status_name(sw_deploy_status s)
{
    switch (s) {
    case SW_DEPLOY_SERVING:
        return "serving";
    case SW_DEPLOY_REFUSED:
        return "refused";
    case SW_DEPLOY_RETIRED:
        return "retired";
    }
    return NULL;
}

sw_rc
sw_registry_record(const char *store, const char *ref, int64_t version,
                   const char *sha256_hex, const char *runner,
                   sw_deploy_status status, const char *reason, sw_err *err)
{
    if (store == NULL || ref == NULL || runner == NULL || reason == NULL ||
        sw_deploy_status_name(status) == NULL)
        return sw__fail(err, SW_E_INVAL, "registry record: bad argument");
    if (sw__registry_is_pg(store))
        return sw__pg_record(store, ref, version, sha256_hex, runner, status,
                             reason, err);
    return sqlite_record(store, ref, version, sha256_hex, runner, status,
                         reason, err);
}

sw_rc
sw_registry_register(const char *store, const char *name,
                     const unsigned char *buf, size_t len, const char *source,
                     const char *created_by, int64_t *version, sw_err *err)
{
    char check[129];
    const char *sel;
    sw_rc rc;

    if (version != NULL)
        *version = 0;
    if (store == NULL || name == NULL || buf == NULL || version == NULL)
        return sw__fail(err, SW_E_INVAL, "registry register: NULL argument");
    if ((rc = sw__registry_parse_ref(name, check, sizeof(check), &sel, err)) !=
        SW_OK)
        return rc;
    if (*sel != '\0' || strchr(name, '@') != NULL)
        return sw__fail(err, SW_E_INVAL,
                        "registry register: '%s' is a reference, not a name",
                        name);
    if (sw__registry_is_pg(store))
        return sw__pg_register(store, name, buf, len, source, created_by,
                               version, err);
    return sqlite_register(store, name, buf, len, source, created_by, version,
                           err);
}
