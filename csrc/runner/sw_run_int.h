/* SPDX-License-Identifier: MIT */
/*
 * sw_run_int.h - what the files of the loop share, private to them: the
 * run (sources, pipeline, models, FIFO, positions, outputs), the text
 * builder of output lines, and the functions one file calls in another.
 *
 *   sw_run.c         setting up, the loop, sources -> pipeline, the FIFO
 *   sw_outputs.c     topics and files written, made durable
 *   sw_emit.c        rows -> predictions -> output lines (slots, tenants)
 *   sw_learn.c       online learning from the label join, snapshots
 *   sw_evaluate.c    live evaluation of the models on the pairs, tracking runs
 *   sw_checkpoint.c  positions, checkpoints taken, restored, committed
 *   sw_tasks.c       a group member's tasks: one per partition it owns
 */
#ifndef SW_RUN_INT_H
#define SW_RUN_INT_H

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sw_run.h"

static inline sw_rc fail(sw_err *err, sw_rc rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static inline sw_rc
fail(sw_err *err, sw_rc rc, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    err->rc = rc;
    return rc;
}

static inline double
now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static inline int64_t
unix_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* conf (NULL or NULL-terminated name, value, ...) with one more pair,
 * before it (first: the job's own setting of the name wins) or after it
 * (this one wins); NULL if out of memory. free() the array only. */
static inline const char **
conf_with(const char *const *conf, const char *name, const char *value,
          int first)
{
    const char **out;
    size_t n = 0;

    while (conf != NULL && conf[n] != NULL)
        n++;
    if ((out = calloc(n + 3, sizeof(*out))) == NULL)
        return NULL;
    if (n > 0)
        memcpy(out + (first ? 2 : 0), conf, n * sizeof(*out));
    out[first ? 0 : n] = name;
    out[first ? 1 : n + 1] = value;
    return out;
}

/* ------------------------------------------------------------------ */
/* Text: output lines                                                   */
/* ------------------------------------------------------------------ */

typedef struct buf {
    char *p;
    size_t len, cap;
} buf;

static inline int
need(buf *b, size_t n)
{
    if (b->len + n + 1 <= b->cap)
        return 0;
    while (b->cap < b->len + n + 1)
        b->cap = b->cap ? 2 * b->cap : 4096;
    b->p = realloc(b->p, b->cap);
    if (b->p == NULL)
        abort(); /* out of memory for a line of text */
    return 0;
}

/* Output lines are most of the runner's own work: they are built with
 * memcpy and a digit loop, and printf only for the doubles (%.17g, which
 * parses back to the same bits). */
static inline void add(buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static inline void
add(buf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    need(b, 64);
    va_start(ap, fmt);
    n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (n < 0)
        abort();
    if ((size_t)n >= b->cap - b->len) {
        need(b, (size_t)n);
        va_start(ap, fmt);
        vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
    }
    b->len += (size_t)n;
}

static inline void
add_mem(buf *b, const char *s, size_t n)
{
    need(b, n);
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

#define ADD_LIT(b, s) add_mem((b), (s), sizeof(s) - 1)

static inline void
add_int(buf *b, int64_t v)
{
    char tmp[24];
    int i = 24;
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;

    do {
        tmp[--i] = (char)('0' + u % 10);
        u /= 10;
    } while (u > 0);
    if (v < 0)
        tmp[--i] = '-';
    add_mem(b, tmp + i, (size_t)(24 - i));
}

/* s as a JSON string, quotes included. */
static inline void
add_json_str(buf *b, const char *s, size_t n)
{
    size_t i, run = 0;

    need(b, n + 2);
    b->p[b->len++] = '"';
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        add_mem(b, s + run, i - run);
        if (c == '"' || c == '\\')
            add(b, "\\%c", c);
        else
            add(b, "\\u%04x", c);
        run = i + 1;
    }
    add_mem(b, s + run, n - run);
    ADD_LIT(b, "\"");
}

static inline void
add_num(buf *b, double v)
{
    if (isfinite(v))
        add(b, "%.17g", v);
    else
        ADD_LIT(b, "null");
}

/* A run's transaction (exactly_once): the producer every Kafka output
 * writes through, and whether a transaction is open on it. */
typedef struct txn {
    sw_kafka_sink *owner; /* the first Kafka output's sink */
    int open;
    int64_t commits;
} txn;

/* Avro's binary encoding (the specification's "Binary Encoding"): int and
 * long as zig-zag varints, strings length first, doubles little-endian.
 * The prediction record is fixed (run_avro_schema), so it is written
 * field by field here rather than through libavro's generic values, which
 * cost allocations per message on the scoring path. */
static inline void
avro_long(buf *b, int64_t v)
{
    uint64_t u = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);

    need(b, 10);
    while (u >= 0x80) {
        b->p[b->len++] = (char)(u | 0x80);
        u >>= 7;
    }
    b->p[b->len++] = (char)u;
}

static inline void
avro_str(buf *b, const char *s, size_t n)
{
    avro_long(b, (int64_t)n);
    add_mem(b, s, n);
}

static inline void
avro_double(buf *b, double d)
{
    uint64_t u;
    int i;

    memcpy(&u, &d, 8);
    need(b, 8);
    for (i = 0; i < 8; i++)
        b->p[b->len++] = (char)(u >> (8 * i));
}

/* n_o outputs: a double, or an array of them (one block). */
static inline void
avro_outputs(buf *b, const double *p, int64_t n_o)
{
    int64_t c;

    if (n_o == 1) {
        avro_double(b, p[0]);
        return;
    }
    avro_long(b, n_o);
    for (c = 0; c < n_o; c++)
        avro_double(b, p[c]);
    avro_long(b, 0);
}

/* Confluent's wire format: magic byte 0 and the schema id, big-endian. */
static inline void
avro_head(buf *b, int64_t schema_id)
{
    if (schema_id < 0)
        return;
    need(b, 5);
    b->p[b->len++] = 0;
    b->p[b->len++] = (char)(schema_id >> 24);
    b->p[b->len++] = (char)(schema_id >> 16);
    b->p[b->len++] = (char)(schema_id >> 8);
    b->p[b->len++] = (char)schema_id;
}

typedef struct h5rows h5rows; /* sw_outputs.c */

typedef struct out {
    const out_spec *spec;
    sw_kafka_sink *k;
    txn *tx;   /* exactly_once: begun before the first message */
    FILE *fp;
    int64_t bytes; /* written to the file so far */
    h5rows *h5;    /* hdf5: the rows, written whole at the end */
} out;

#define MAX_PARTS 1024

/* A feedback topic's partition p is FB_PART0 + p wherever the run names a
 * partition (the FIFO, positions, checkpoints, dead letters), and
 * partition n_in_parts + p of the pipeline, whose watermark holds the
 * events back until the labels have caught up. */
#define FB_PART0 SW_MAX_PARTITIONS

typedef struct evaluation evaluation; /* sw_evaluate.c */

/* A model the run scores with: what it is, how outputs name it, and the
 * reloader following its registry reference. */
typedef struct slot {
    served s;           /* s.m NULL: the slot is unused */
    reloader *rl;
    evaluation *ev;     /* its live evaluation, or NULL */
    char json[400];     /* ,"model":"...","sha256":"...","partition": */
    size_t json_len;
    double *pred;       /* its predictions of the current rows */
    int64_t pred_cap;
} slot;

/* A task: the state of the partitions it owns and where they resume.
 * A run has one task for every partition it reads, or with "tasks" in
 * the job one per assigned partition of a consumer group, whose state
 * moves with the partition (sw_tasks.c). */
typedef struct task {
    sw_pipeline *p;
    sw_result *r;
    /* the FIFO: arrival number base + i -> where event i came from */
    int64_t base, n, cap;
    int32_t *f_part;
    int64_t *f_off, *f_kat;
    int32_t *f_klen;
    int32_t *f_tlen; /* the tenant's bytes follow the key's in karena */
    char *karena;
    size_t kused, kcap;
    /* where each partition resumes: offset of its next event */
    int n_pos;
    int32_t pos_part[MAX_PARTS];
    int64_t pos_next[MAX_PARTS];
    /* checkpoints, in dir */
    char dir[3072]; /* job.c keeps checkpoint.dir shorter than 3000 */
    int64_t ckpt_seq;
    /* a task with a changelog: the offset after its last record the state
     * includes (-1: none), and when its last whole checkpoint was taken */
    int64_t clog_next;
    double last_snapshot;
    /* repartitioned: the highest source offset applied, per source
     * partition (-1: none), so a message forwarded twice counts once */
    int64_t *src_max;
    int from_changelog; /* restored from changelog records */
    int bg;                  /* a background checkpoint is being written */
    char bg_path[4096];      /* ... to this file */
    int bg_n;                /* with these offsets to commit after */
    int32_t bg_part[MAX_PARTS];
    int64_t bg_next[MAX_PARTS];
    double bg_t0;
} task;

typedef struct run {
    job *j;
    sw_json_decoder *d;
    sw_kafka_source *ks;
    sw_kafka_source *fb;  /* the feedback topic's, or NULL */
    sw_kafka_source *cur; /* the one whose batch is being worked on */
    int n_in_parts;       /* the source topic's partitions */
    sw_h5_source *hs;
    int n_outs; /* sinks, then dead letters, then features */
    out outs[RUN_MAX_SINKS + 2];
    out *dead, *feats;
    slot main;          /* the model every event is scored by */
    slot shadow;        /* scored beside it, published as "shadow" */
    slot canary;        /* scores a key-hashed fraction instead of main */
    task one;           /* every partition's, without "tasks" */
    task *t;            /* the task being worked on */
    task *tasks[MAX_PARTS]; /* with "tasks": the task of each partition */
    int64_t events_since;
    double last_ckpt;
    /* scratch */
    buf line, key;
    int64_t *sub_at, *sub_len, *sub_ts, *sub_idx, sub_cap;
    char *strbuf;
    size_t strcap;
    int key_col; /* decoder field of the job's key, -1: message key */
    int tenant_col; /* decoder field (or column) of the tenant, -1: none */
    buf tenant;
    tenants *tn; /* per-tenant models (sw_tenants.c), or NULL */
    sw_kafka_sink *clog; /* with tasks: the changelog's producer */
    txn tx;              /* exactly_once: the outputs' transaction */
    /* with tasks, features keyed by a field not the message key's: the
     * events go by it through <group>-repartition (sw_repartition.c) */
    char repart_field[128];
    int repart_col;        /* its decoder field */
    sw_kafka_source *fwd;  /* the input, read to be forwarded */
    sw_kafka_sink *rpk;    /* the repartition topic */
    int32_t n_rep;         /* its partitions */
    int n_fwd;             /* the input's partitions forwarded: next offset */
    int32_t fwd_part[MAX_PARTS];
    int64_t fwd_next[MAX_PARTS];
    /* the current repartitioned batch: each message's source partition and
     * offset (from its key), which outputs and dead letters name */
    int32_t *src_part;
    int64_t *src_off, src_cap;
    int restored; /* started from a checkpoint */
    run_metrics *mt;
    int64_t n_late, n_invalid, n_dead, n_in, n_out;
    int64_t n_learned, n_hits; /* online learning: pairs, right guesses */
    /* offsets learned from since the last snapshot, per partition */
    int n_snap;
    double snap_t;        /* when the last snapshot was registered (tried) */
    int64_t snap_learned; /* n_learned then */
    int32_t snap_part[MAX_PARTS];
    int64_t snap_lo[MAX_PARTS], snap_hi[MAX_PARTS];
    /* live evaluation: scores of the pairs, and where the last report
     * left the counters its rates are taken from */
    double *ev_scratch;
    int64_t ev_cap;
    double ev_last;
    int64_t ev_in, ev_lat_n, ev_lat_us;
} run;

/* Room in the slot's pred buffer for n values. */
static inline sw_rc
slot_room(slot *sl, int64_t n, sw_err *err)
{
    double *p;

    if (n <= sl->pred_cap)
        return SW_OK;
    p = realloc(sl->pred, (size_t)n * sizeof(double));
    if (p == NULL)
        return fail(err, SW_E_NOMEM, "run: out of memory");
    sl->pred = p;
    sl->pred_cap = n;
    return SW_OK;
}

/* sw_outputs.c */
/* Open an output; a file is cut back to keep bytes (-1: emptied). */
sw_rc run_out_open(const out_spec *s, out *o, int64_t keep, int csv_header,
                   sw_err *err);
sw_rc run_out_write(out *o, const char *key, size_t key_len, const char *line,
                    size_t len, const char *const *headers, sw_err *err);
/* Everything written so far is durable: acknowledged, or on disk. */
sw_rc run_out_sync(out *o, sw_err *err);
void run_out_close(out *o);
/* An hdf5 output's row (a backtest's: written whole by run_out_sync). */
sw_rc run_out_row(out *o, const char *key, size_t key_len, double prediction,
                  const char *model, const char *sha, int32_t part,
                  int64_t off, int64_t time_us, sw_err *err);
sw_rc run_txn_open(run *R, sw_err *err);
/* The Avro schema of a topic's predictions (n_o outputs a row), JSON. */
void run_avro_schema(buf *b, int64_t n_o);

/* sw_run.c */
int run_pos_index(run *R, int32_t part);
/* The current task's pipeline, restored from its directory or new. */
sw_rc run_task_open(run *R, int64_t *keep, sw_err *err);
void run_task_free(task *t);
sw_rc run_fifo_push(run *R, int32_t part, int64_t off, const char *key,
                    size_t klen, const char *tname, size_t tlen, sw_err *err);
void run_fifo_drop(run *R, int64_t oldest);
sw_rc run_dead_letter(run *R, int32_t part, int64_t off, const char *reason,
                      const char *field, const unsigned char *raw,
                      int64_t raw_len, sw_err *err);

/* sw_emit.c: the predictions (and feature rows) of the rows of R->r */
sw_rc run_emit(run *R, sw_err *err);
/* Whether the canary scores the events of this key. */
int run_to_canary(const run *R, const char *key, size_t klen);

/* sw_learn.c */
int run_bundle_joins(const run *R);
sw_rc run_check_learning(const run *R, sw_err *err);
/* Score rows 0..n of R->r into R->main.pred, learning the pairs between */
sw_rc run_learn_predict(run *R, int64_t n, sw_err *err);
/* Learning from now on (after a restore): the time snapshots count from;
 * and at a clean stop, the snapshot of what was learned since the last. */
void run_learn_start(run *R);
void run_learn_stop(run *R);

/* sw_evaluate.c: live evaluation of the main model and the shadow */
sw_rc run_eval_open(run *R, sw_err *err);
/* A slot's outputs for one feature row into R->ev_scratch. */
sw_rc run_eval_score(run *R, const slot *sl, const double *dense,
                     const int64_t *hashed, sw_err *err);
/* One pair: the model's outputs for it before learning it, its label,
 * and whether the learner's guess was right (-1: judge by the outputs). */
void run_eval_add(evaluation *ev, const double *out, double label, int hit);
/* The pairs of R->t->r, for the slots that do not learn them. */
sw_rc run_eval_pairs(run *R, sw_err *err);
/* The figures to /metrics and the tracking store, when they are due. */
void run_eval_tick(run *R, int final);
/* A slot's model swapped (a run of its own), or the slot retired. */
void run_eval_swapped(run *R, slot *sl);
void run_eval_end(run *R, slot *sl, int clean);
/* The end of the run: every evaluation closed (clean: FINISHED). */
void run_eval_close(run *R, int clean);

/* sw_checkpoint.c */
/* Take a checkpoint (background: from a forked child). */
sw_rc run_checkpoint(run *R, int background, sw_err *err);
/* The current task's checkpoint, outputs already durable; then its
 * offsets committed. */
sw_rc run_checkpoint_task(run *R, int background, sw_err *err);
sw_rc run_outputs_sync(run *R, sw_err *err);
/* The current task's position as bytes in b; -1 out of memory. */
int run_position(run *R, buf *b);
/* Commit the current task's offsets. */
sw_rc run_commit_task(run *R, sw_err *err);
/* exactly_once: the transaction begun (if it is not), and committed with
 * these offsets of the source's group. */
sw_rc run_txn_begin(run *R, sw_err *err);
sw_rc run_txn_commit(run *R, int n, const int32_t *part, const int64_t *next,
                     sw_err *err);
/* A position (a checkpoint's, or a changelog's last record's) into the
 * current task; keep[] the output lengths. */
sw_rc run_restore_position(run *R, const void *pos, size_t len, int64_t *keep,
                           sw_err *err);
/* Finish a background checkpoint (block: wait for it). */
sw_rc run_ckpt_poll(run *R, int block, sw_err *err);
/* The newest checkpoint that reads back, or none: R->p, the position,
 * keep[] the output lengths. */
sw_rc run_restore(run *R, int64_t *keep, sw_err *err);

/* sw_repartition.c */
/* Open the forwarder (the input, group <group>) and the repartition
 * topic's producer; R->ks already reads the repartition topic. */
sw_rc run_repart_open(run *R, sw_err *err);
/* Forward what the input has now (no wait). */
sw_rc run_repart_forward(run *R, sw_err *err);
/* Forwarded events acknowledged, then the input's offsets committed. */
sw_rc run_repart_commit(run *R, sw_err *err);
void run_repart_stop(run *R);
/* The source partition and offset a forwarded message's key carries; -1
 * if it carries none. */
int run_repart_source(const unsigned char *key, int64_t len, int32_t *part,
                      int64_t *off);

/* sw_tasks.c */
/* Join the group as a member whose tasks follow their partitions. */
void run_tasks_start(run *R);
/* The task of partition part, or NULL when this member does not own it. */
task *run_task_of(run *R, int32_t part);
/* Checkpoint every task (outputs made durable once, first): changes to
 * the changelog, and a snapshot of those whose last is old (every task's:
 * snapshot). */
sw_rc run_tasks_checkpoint(run *R, int snapshot, sw_err *err);
/* Stop following rebalances (before the source is closed). */
void run_tasks_stop(run *R);

#endif /* SW_RUN_INT_H */
