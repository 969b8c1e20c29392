/* SPDX-License-Identifier: MIT */
/*
 * sw_run.h - what the runner's files share with the rest of sw-serve: the
 * job as read from its JSON file (sw_job.c), the metrics endpoint and
 * the log (sw_metrics.c), the reloader (sw_reload.c), the tenants (sw_tenants.c)
 * and the loop's entry point (sw_run.c; its own files share
 * sw_run_int.h).
 */
#ifndef SW_RUN_H
#define SW_RUN_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>

#include "streamwise.h"

#define RUN_MAX_SINKS 8

enum { SRC_KAFKA, SRC_KAFKA_SLICE, SRC_HDF5 };
enum { OUT_KAFKA, OUT_JSONL, OUT_CSV, OUT_HDF5 };

/* Where outputs go: a topic or a file. */
typedef struct out_spec {
    int kind;
    const char *topic, *path, *bootstrap; /* borrowed from the job's JSON */
    const char **conf;                    /* NULL-terminated name, value... */
    int avro;          /* a topic's predictions as Avro (docs/runner.md) */
    int64_t schema_id; /* Confluent framing with this id, or -1: none */
} out_spec;

typedef struct job {
    json_t *root; /* owns every string below */
    /* source */
    int src;
    const char *bootstrap, *topic, *group, *h5_path, *h5_type;
    const char **src_conf;
    int start_kind, stop_kind;
    int64_t start, stop;
    const char *avro_schema; /* NULL: JSON values */
    int avro_framing;
    json_t *avro_writers;
    /* what to run */
    const char *bundle, *registry, *name;
    const char *shadow;     /* scored beside the bundle, or NULL */
    const char *canary;     /* scores canary_fraction of the keys, or NULL */
    double canary_fraction;
    int learn; /* learn the label join's pairs online (linear models) */
    int64_t snapshot_every; /* register the learned model every n pairs */
    double snapshot_seconds_learned; /* ... every so many seconds, and at a
                                      * clean stop (0: not by time) */
    /* the labels on a topic of their own, read beside the source's (NULL:
     * they come with the events) */
    const char *fb_topic, *fb_bootstrap;
    const char **fb_conf;
    /* live evaluation on the label join's pairs, reported this often over
     * windows of this many pairs, to runs of this experiment */
    int evaluate;
    double eval_seconds;
    int64_t eval_window;
    const char *eval_experiment;
    const char *snapshot_name; /* as versions of this name */
    /* tenants: route by this field to the model "{}" names, or NULL */
    const char *tenant_field, *tenant_model;
    int64_t tenant_max_loaded; /* 0: no bound */
    double reload_seconds; /* poll the registry this often; 0: pinned */
    /* the control topic: promotions announced, or NULL */
    const char *control_topic, *control_bootstrap;
    const char *runner_name; /* in the deployment log: host:pid if NULL */
    char runner[300];        /* runner_name, or host:pid: how logs name it */
    int emission; /* -1 the bundle spec's, 0 watermark, 1 arrival */
    const char *key_field;
    const char *secret_env;
    /* outputs */
    int n_sinks;
    out_spec sinks[RUN_MAX_SINKS];
    int has_dead, has_features;
    out_spec dead, features;
    /* checkpoints */
    const char *ckpt_dir;
    double ckpt_seconds;
    int64_t ckpt_events;
    int ckpt_keep, ckpt_background;
    /* a consumer group's member: one task per assigned partition, whose
     * state moves with it (sw_tasks.c) */
    int tasks;
    /* its state's changes go to this compacted topic (NULL: none; a
     * checkpoint then holds all of it), and a whole checkpoint is taken
     * this often */
    const char *changelog;
    char changelog_name[320];
    double snapshot_seconds;
    /* exactly once: outputs and offsets in a transaction per checkpoint,
     * by a producer of this transactional.id */
    int eos;
    char txn_id[256];
    /* operation */
    int metrics_port;
    int64_t batch_max, wait_ms, outage_ms;
    double log_seconds;
} job;

sw_rc sw__job_load(const char *path, job *j, sw_err *err);
void sw__job_free(job *j);

/* The figures of a live evaluation (sw_evaluate.c), as its tracking runs
 * and /metrics name them: a classifier's [0], a regressor's [1]; the
 * last two (events_per_s, batch_latency_s) /metrics has in other forms. */
#define SW_LIVE_KEYS 7
extern const char *const sw__live_keys[2][SW_LIVE_KEYS];
/* The models evaluated: main, shadow, canary. */
#define SW_LIVE_SLOTS 3
extern const char *const sw__live_slots[SW_LIVE_SLOTS];

/* Counters the loop updates and the metrics endpoint reads. */
#define LAT_BUCKETS 16
typedef struct run_metrics {
    _Atomic int64_t events_in, rows_out, dead, late, invalid, batches;
    _Atomic int64_t checkpoints, ckpt_us, ckpt_bytes, ckpt_unix_ms;
    _Atomic int64_t transactions; /* exactly_once: committed */
    _Atomic int64_t rebalances, tasks; /* a group member's ("tasks") */
    /* changelog records written, and read back by restores */
    _Atomic int64_t clog_records, restore_records, restore_bytes;
    _Atomic int64_t ckpt_stall_us, ckpt_stall_max_us; /* the loop waited */
    _Atomic int64_t watermark_us, keys, evicted, state_bytes;
    _Atomic int64_t lat_count, lat_sum_us;
    _Atomic int64_t lat_bucket[LAT_BUCKETS]; /* cumulative below bounds */
    _Atomic int running;
    int n_parts;
    _Atomic int64_t part_id[64], part_next[64], part_lag[64];
    /* model and sha256 change on a hot swap: info_lock guards them */
    pthread_mutex_t info_lock;
    char model[300], sha256[65], source[300], emission[16];
    int64_t started_unix_ms;
    _Atomic int64_t reloads, reload_refusals, swap_max_us, swap_last_us;
    _Atomic int64_t learned, learn_hits; /* online learning, prequential */
    _Atomic int64_t snapshots; /* learned models registered */
    /* live evaluation of main, shadow and canary (sw_evaluate.c's keys);
     * live_set: 0 none yet, 1 a classifier's, 2 a regressor's */
    double live[SW_LIVE_SLOTS][SW_LIVE_KEYS];
    int live_set[SW_LIVE_SLOTS];
    _Atomic int64_t tenant_loads, tenant_refusals, tenant_evictions;
    struct tenants *tn; /* per-tenant counters; guarded by info_lock */
} run_metrics;

extern const double sw_lat_bounds_ms[LAT_BUCKETS];

/* The metrics endpoint (libmicrohttpd): /metrics, /healthz, /status. */
typedef struct metrics_server metrics_server;
sw_rc sw__metrics_start(int port, run_metrics *m, metrics_server **out,
                        sw_err *err);
void sw__metrics_stop(metrics_server *s);

int sw__run_main(int argc, char **argv);

/* A line of the runner's log on stderr (sw_metrics.c): the wall-clock
 * time in UTC to the millisecond, "sw-serve: " and the message, written
 * at once so the loop's and the reloader's lines never interleave. Without
 * the time, a rebalance that cost ten seconds left no trace of when. */
void sw__log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Following a registry alias (sw_reload.c): a thread polls the store,
 * loads and verifies a newly promoted version off the scoring path, and
 * hands it to the loop, which swaps it in between batches. A version that
 * fails (corrupt, golden mismatch, another pipeline) is refused: logged,
 * counted and written to the store's deployment log; the old version
 * keeps serving. */
typedef struct reloader reloader;

/* Serving m (its name, SHA-256, version) from now on. */
typedef struct served {
    sw_model *m;
    char model[256], sha[65];
    int64_t version;
} served;

/* Follow ref (a registry reference of the job: its bundle, shadow or
 * canary; name: the outputs' name for it, NULL for name@version), serving
 * now. *out stays NULL when there is nothing to follow (no registry, a
 * version number, reload false). */
sw_rc sw__reloader_start(const job *j, const char *ref, const char *name,
                         const served *now, run_metrics *mt, reloader **out,
                         sw_err *err);
/* Between batches, cheap when nothing is pending: 1 and the new model in
 * *next (the reloader takes cur->m back and frees it off the loop), or
 * 0. */
int sw__reloader_take(reloader *rl, const served *cur, served *next);
/* 1 once its model was retired on the control topic (registry.retire):
 * the loop stops serving it (the bundle's: the runner stops as on
 * SIGTERM; a shadow's or canary's: that slot is dropped). */
int sw__reloader_retired(reloader *rl);
/* The control topic's consumer for one follower of the runner (who: its
 * reference): every runner reads every announcement, so each follower
 * has a group of its own. NULL (said on stderr) when it cannot be read. */
sw_kafka_source *sw__control_open(const job *j, const char *who);
/* Message i of the control consumer's last batch: its fields, borrowed
 * from root (json_decref it when done), NULL when absent or not JSON; ts
 * its Kafka timestamp (ms). */
typedef struct control_msg {
    json_t *root;
    const char *model, *alias, *action, *reason;
    int64_t ts;
} control_msg;
void sw__control_msg(sw_kafka_source *ks, int64_t i, control_msg *c);
void sw__reloader_stop(reloader *rl);

/* The SHA-256 of a file as 64 hex digits and a NUL (sw_run.c). */
sw_rc run_file_sha256(const char *path, char hex[65], sw_err *err);

/* One model per tenant (sw_tenants.c): loaded on the tenant's first event,
 * refused alone, dropped least recently used beyond the job's bound. */
enum { TENANT_UNLOADED, TENANT_LOADED, TENANT_REFUSED, TENANT_RETIRED };

typedef struct tenant {
    char *name;
    size_t name_len;
    int state;
    sw_model *m;         /* when loaded */
    char model[256], sha[65]; /* how outputs name it */
    char why[400];       /* when refused */
    double refused_at;
    int64_t last_use;
    _Atomic int64_t n_scored, n_dead; /* read by the metrics endpoint */
    /* following its alias (sw_tenants.c's watcher, under the table's
     * lock): a newer version verified off the scoring path, taken at the
     * tenant's next event; the model it replaced, freed by the watcher */
    sw_model *next;
    char next_model[256], next_sha[65];
    int64_t version, next_version;
    sw_model *old;
    int swapped;          /* taken: the watcher writes the deployment */
    char bad_sha[65];     /* the last version refused: not tried again */
    /* the control topic (the watcher, under the lock): 1 retire (the
     * reason in why), -1 serve again, taken at the tenant's next event;
     * retired: taken, the watcher writes the deployment */
    int retire, retired;
} tenant;

typedef struct tenants tenants;

/* With a registry and reload not false, a thread of its own follows every
 * loaded tenant's reference as sw_reload.c follows the bundle's. */
sw_rc sw__tenants_new(const job *j, uint64_t spec_hash, run_metrics *mt,
                      tenants **out, sw_err *err);
/* The tenant of that name, its model loaded (or refused) if need be; NULL
 * only when out of memory. now: a monotonic clock in seconds. */
tenant *sw__tenants_get(tenants *tn, const char *name, size_t len, double now);
void sw__tenants_free(tenants *tn);
/* Call fn on every tenant, the table locked (the metrics endpoint's view,
 * from its own thread). */
void sw__tenants_each(tenants *tn, void (*fn)(void *ctx, const tenant *t),
                      void *ctx);

#endif
