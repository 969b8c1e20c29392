/* SPDX-License-Identifier: MIT */
/*
 * sw_registry_int.h - what the two registry back ends share: the SQLite one
 * (sw_registry.c) and the PostgreSQL one (sw_registry_pg.c). The public
 * sw_registry_* functions in sw_registry.c choose by the store string: a
 * postgresql:// or postgres:// URI is PostgreSQL, anything else a store
 * directory holding streamwise.db.
 */
#ifndef SW_REGISTRY_INT_H
#define SW_REGISTRY_INT_H

#include "sw_internal.h"

#define SW_REGISTRY_SCHEMA_KNOWN 4 /* newest store schema this build reads */

/* The advisory lock every writer of a PostgreSQL store takes, the same
 * key as python/streamwise/store.py's WRITE_LOCK ("swWR"). */
#define SW_REGISTRY_PG_WRITE_LOCK "1937201042"

int sw__registry_is_pg(const char *store);
sw_rc sw__registry_parse_ref(const char *ref, char *name, size_t name_len,
                             const char **sel, sw_err *err);
int sw__registry_all_digits(const char *s);
sw_rc sw__registry_hash_file(const char *path, char *hex, sw_err *err);
/* The file at path has the SHA-256 the registry recorded (want, 64 hex
 * digits): SW_OK and the digest in sha256_hex (65 bytes), or SW_E_FORMAT
 * naming both when it changed after registration. */
sw_rc sw__registry_check_file(const char *path, const char *want,
                              char *sha256_hex, sw_err *err);

typedef struct sw__pg_watch sw__pg_watch;

/* The URI without its password, for messages. */
void sw__pg_redact(const char *uri, char *out, size_t len);
#ifdef SW_HAVE_PQ
#include <libpq-fe.h>
/* A connection to the store at uri, and the store's schema is one this
 * build reads (the registry's and the runner's tracking writer's). */
sw_rc sw__pg_open(const char *uri, PGconn **out, sw_err *err);
sw_rc sw__pg_check_schema(PGconn *conn, const char *uri, sw_err *err);
#endif

sw_rc sw__pg_resolve(const char *uri, const char *ref, char *path,
                     size_t path_len, char *sha256_hex, int64_t *version,
                     sw_err *err);
sw_rc sw__pg_watch_open(const char *uri, sw__pg_watch **out, sw_err *err);
sw_rc sw__pg_watch_poll(sw__pg_watch *w, int *changed, sw_err *err);
void sw__pg_watch_free(sw__pg_watch *w);
sw_rc sw__pg_record(const char *uri, const char *ref, int64_t version,
                    const char *sha256_hex, const char *runner,
                    sw_deploy_status status, const char *reason, sw_err *err);
sw_rc sw__pg_register(const char *uri, const char *name,
                      const unsigned char *buf, size_t len, const char *source,
                      const char *created_by, int64_t *version, sw_err *err);

#endif
