/* SPDX-License-Identifier: MIT */
/*
 * sw_tasks.c - a member of a consumer group: one task per partition it is
 * given, as Kafka Streams keeps them. A task has the partition's own
 * pipeline (state, watermark, buffered events) and position. Its state
 * moves with the partition in two parts, as Kafka Streams' state stores
 * do: a changelog topic (one partition per input partition) gets the keys
 * whose state changed, then one "meta" record (the checkpoint of all but
 * the keyed state, with the position), at every checkpoint interval; and
 * now and then a whole checkpoint (a snapshot) goes to
 * checkpoint.dir/partition-N, a directory every member sees, saying up to
 * which changelog offset it holds. When the group gives a partition to
 * this member, the task is the newest snapshot plus the changelog's tail
 * after it, applied one flush at a time (a flush whose meta record never
 * came, cut by a crash, is left out); when the group takes it away, its
 * changes are flushed and its offset committed before it is let go.
 * Without a changelog every checkpoint is a snapshot.
 */
#include <sys/stat.h>

#include "sw_run_int.h"

static const char meta_key[4] = {'m', 'e', 't', 'a'};

typedef struct sending {
    run *R;
    int32_t part;
    int64_t n;
} sending;

static sw_rc
send_change(void *opaque, const void *key, size_t key_len, const void *value,
            size_t value_len, sw_err *err)
{
    sending *c = opaque;

    c->n++;
    return sw_kafka_sink_send(c->R->clog, key, key_len, value, value_len,
                              c->part, 0, NULL, err);
}

/* The current task's changes since its last flush, then its meta record,
 * to its partition of the changelog (sent, not yet acknowledged). */
static sw_rc
log_changes(run *R, int32_t part, sw_err *err)
{
    sending c = {R, part, 0};
    buf pos = {NULL, 0, 0};
    unsigned char *meta = NULL;
    size_t len = 0;
    sw_rc rc;

    if (R->j->eos && (rc = run_txn_begin(R, err)) != SW_OK)
        return rc;
    if ((rc = sw_pipeline_changes(R->t->p, send_change, &c, err)) != SW_OK)
        return rc;
    if (run_position(R, &pos) != 0) {
        free(pos.p);
        return fail(err, SW_E_NOMEM, "changelog: out of memory");
    }
    rc = sw_pipeline_save_meta(R->t->p, pos.p, pos.len, &meta, &len, err);
    free(pos.p);
    if (rc == SW_OK)
        rc = sw_kafka_sink_send(R->clog, meta_key, sizeof(meta_key), meta,
                                len, part, 0, NULL, err);
    sw_buffer_free(meta);
    atomic_fetch_add(&R->mt->clog_records, c.n + 1);
    return rc;
}

/* A task's last snapshot before its member stops, in the log: which
 * member left which state where (the kill test prints these lines). */
static void
said_snapshot(const task *t, int32_t part)
{
    sw__log("task of partition %d snapshot %lld at offset %lld\n",
            (int)part, (long long)t->ckpt_seq,
            t->n_pos > 0 ? (long long)t->pos_next[0] : -1LL);
}

/* exactly_once: every task's changes and meta record, then one
 * transaction commits them with every output since the last commit and
 * every task's offsets; only then the snapshots due, which therefore never
 * hold state the transaction did not commit. All tasks, whatever was
 * asked: a transaction holds every task's outputs, so committing fewer
 * tasks' offsets would make the others' outputs visible twice. */
static sw_rc
save_tasks_eos(run *R, int snapshot, sw_err *err)
{
    const job *j = R->j;
    int32_t parts[MAX_PARTS], offp[MAX_PARTS];
    int64_t offs[MAX_PARTS];
    int n = 0, n_off = 0, i, k, part;
    sw_rc rc;

    for (part = 0; part < MAX_PARTS; part++) {
        task *t = R->tasks[part];

        if (t == NULL || t->n_pos == 0)
            continue;
        parts[n++] = part;
        R->t = t;
        rc = j->changelog != NULL ? log_changes(R, part, err) : SW_OK;
        R->t = &R->one;
        if (rc != SW_OK)
            return rc;
        for (k = 0; k < t->n_pos && n_off < MAX_PARTS; k++) {
            offp[n_off] = t->pos_part[k];
            offs[n_off++] = t->pos_next[k];
        }
    }
    if ((rc = run_txn_commit(R, n_off, offp, offs, err)) != SW_OK)
        return rc;
    for (i = 0; i < n; i++) {
        task *t = R->tasks[parts[i]];

        if (j->changelog != NULL)
            t->clog_next = sw_kafka_sink_next_offset(R->clog, parts[i]);
        if (j->changelog != NULL && !snapshot &&
            now_s() - t->last_snapshot < j->snapshot_seconds)
            continue;
        R->t = t;
        rc = run_checkpoint_task(R, 0, err);
        t->last_snapshot = now_s();
        if (rc == SW_OK && snapshot)
            said_snapshot(t, parts[i]);
        R->t = &R->one;
        if (rc != SW_OK)
            return rc;
    }
    return SW_OK;
}

/* Save the tasks of parts: outputs durable; with a changelog, each task's
 * changes and meta record sent and acknowledged, then a snapshot of each
 * whose last is older than snapshot_every_s (or every task: snapshot),
 * else its offsets committed; without, a snapshot of each. */
static sw_rc
save_tasks(run *R, const int32_t *parts, int n, int snapshot, sw_err *err)
{
    const job *j = R->j;
    int i;
    sw_rc rc;

    if ((rc = run_outputs_sync(R, err)) != SW_OK)
        return rc;
    if (j->eos)
        return save_tasks_eos(R, snapshot, err);
    for (i = 0; i < n && j->changelog != NULL; i++) {
        task *t = run_task_of(R, parts[i]);

        if (t == NULL || t->n_pos == 0)
            continue;
        R->t = t;
        rc = log_changes(R, parts[i], err);
        R->t = &R->one;
        if (rc != SW_OK)
            return rc;
    }
    if (j->changelog != NULL &&
        (rc = sw_kafka_sink_flush(R->clog, 30000, err)) != SW_OK) {
        char why[sizeof(err->msg)];

        snprintf(why, sizeof(why), "%s", err->msg);
        return fail(err, SW_E_IO, "changelog %s: %s", j->changelog, why);
    }
    for (i = 0; i < n; i++) {
        task *t = run_task_of(R, parts[i]);

        /* a task that read nothing has nothing to hand over */
        if (t == NULL || t->n_pos == 0)
            continue;
        R->t = t;
        if (j->changelog != NULL)
            t->clog_next = sw_kafka_sink_next_offset(R->clog, parts[i]);
        if (j->changelog == NULL || snapshot ||
            now_s() - t->last_snapshot >= j->snapshot_seconds) {
            rc = run_checkpoint_task(R, 0, err);
            t->last_snapshot = now_s();
            if (rc == SW_OK && snapshot)
                said_snapshot(t, parts[i]);
        } else {
            rc = run_commit_task(R, err);
        }
        R->t = &R->one;
        if (rc != SW_OK)
            return rc;
    }
    return SW_OK;
}

/* The records of a flush whose meta record has not come yet. */
typedef struct pending {
    unsigned char *arena;
    size_t used, cap;
    int64_t n, cap_n;
    size_t *at, *klen, *vlen;
    const void **keys, **vals;
} pending;

static int
pending_add(pending *q, const unsigned char *k, size_t kl,
            const unsigned char *v, size_t vl)
{
    if (q->n == q->cap_n) {
        int64_t c = q->cap_n ? 2 * q->cap_n : 1024;

        q->at = realloc(q->at, (size_t)c * sizeof(size_t));
        q->klen = realloc(q->klen, (size_t)c * sizeof(size_t));
        q->vlen = realloc(q->vlen, (size_t)c * sizeof(size_t));
        q->keys = realloc(q->keys, (size_t)c * sizeof(void *));
        q->vals = realloc(q->vals, (size_t)c * sizeof(void *));
        if (!q->at || !q->klen || !q->vlen || !q->keys || !q->vals)
            return -1;
        q->cap_n = c;
    }
    if (q->used + kl + vl > q->cap) {
        while (q->used + kl + vl > q->cap)
            q->cap = q->cap ? 2 * q->cap : 1 << 20;
        q->arena = realloc(q->arena, q->cap);
        if (q->arena == NULL)
            return -1;
    }
    memcpy(q->arena + q->used, k, kl);
    memcpy(q->arena + q->used + kl, v, vl);
    q->at[q->n] = q->used;
    q->klen[q->n] = kl;
    q->vlen[q->n] = vl;
    q->used += kl + vl;
    q->n++;
    return 0;
}

static sw_rc
pending_apply(pending *q, sw_pipeline *p, sw_err *err)
{
    int64_t i;

    for (i = 0; i < q->n; i++) {
        q->keys[i] = q->arena + q->at[i];
        /* a tombstone's value is null */
        q->vals[i] = q->vlen[i] ? q->arena + q->at[i] + q->klen[i] : NULL;
    }
    return sw_pipeline_apply_changes(p, q->n, q->keys, q->klen, q->vals,
                                     q->vlen, err);
}

static void
pending_free(pending *q)
{
    free(q->arena);
    free(q->at);
    free(q->klen);
    free(q->vlen);
    free(q->keys);
    free(q->vals);
}

/* The newest meta record: the task's clock, buffers and position, over
 * the keyed state the changes built. */
static sw_rc
adopt_meta(run *R, const unsigned char *meta, size_t len, sw_err *err)
{
    task *t = R->t;
    sw_pipeline *m = NULL;
    const void *pos;
    size_t pos_len;
    int64_t keep[RUN_MAX_SINKS + 2];
    const char *secret = getenv(R->j->secret_env);
    sw_rc rc;

    if ((rc = sw_pipeline_restore_buffer(meta, len, &m, err)) != SW_OK ||
        (rc = sw_pipeline_take_tables(m, t->p, err)) != SW_OK ||
        (secret != NULL &&
         (rc = sw_pipeline_set_secret(m, secret, strlen(secret), err)) !=
             SW_OK)) {
        sw_pipeline_free(m);
        return rc;
    }
    sw_pipeline_free(t->p);
    t->p = m;
    t->n = 0;
    t->kused = 0;
    t->base = 0;
    t->n_pos = 0;
    pos = sw_pipeline_position(m, &pos_len);
    return run_restore_position(R, pos, pos_len, keep, err);
}

/* The current task, restored from its snapshot (or empty), brought up to
 * date from the changelog's tail after the snapshot's offset. */
static sw_rc
replay_changelog(run *R, int32_t part, sw_err *err)
{
    const job *j = R->j;
    task *t = R->t;
    sw_kafka_source *src = NULL;
    pending q = {0};
    unsigned char *meta = NULL;
    size_t meta_len = 0;
    int64_t records = 0, bytes = 0, flushes = 0, meta_end = -1, end = -1;
    int64_t from = t->clog_next, total = 0;
    double t0 = now_s(), said = t0;
    sw_rc rc;

    rc = sw_kafka_source_open(j->bootstrap, j->changelog, &part, 1,
                              from >= 0 ? SW_POINT_OFFSET : SW_POINT_EDGE,
                              from >= 0 ? from : 0, SW_POINT_EDGE, 0, 30000,
                              j->src_conf, &src, err);
    if (rc == SW_OK && from >= 0) {
        const int32_t *sp;
        const int64_t *lo, *hi, *nx;

        /* a snapshot's offset the log no longer holds: the records after
         * it were deleted before any snapshot held them */
        if (sw_kafka_source_slice(src, &sp, &lo, &hi, &nx) == 1 &&
            lo[0] > from)
            rc = fail(err, SW_E_SOURCE,
                      "it starts at offset %lld, after the snapshot's %lld: "
                      "records were deleted (retention) before a snapshot "
                      "held them; give the topic cleanup.policy=compact "
                      "and no time limit",
                      (long long)lo[0], (long long)from);
    }
    if (rc == SW_OK) {
        const int32_t *sp;
        const int64_t *lo, *hi, *nx;

        if (sw_kafka_source_slice(src, &sp, &lo, &hi, &nx) == 1)
            total = hi[0] - lo[0];
    }
    while (rc == SW_OK) {
        const int32_t *mp;
        const int64_t *off, *ts, *ka, *kl, *va, *vl;
        const unsigned char *b;
        int64_t count = 0, i;

        if ((rc = sw_kafka_source_next(src, 65536, &count, err)) != SW_OK ||
            count == 0)
            break;
        if (now_s() - said >= 1.0 && records > 0 && total > records) {
            /* a long restore says how far it is */
            double rate = (double)records / (now_s() - t0);

            said = now_s();
            sw__log("task of partition %d: restoring, %lld of "
                    "%lld changelog records (%lld bytes), about %.0f s "
                    "left\n",
                    (int)part, (long long)records, (long long)total,
                    (long long)bytes, (double)(total - records) / rate);
        }
        sw_kafka_source_batch(src, &mp, &off, &ts, &b, &ka, &kl, &va, &vl);
        for (i = 0; i < count && rc == SW_OK; i++) {
            records++;
            bytes += kl[i] + vl[i];
            end = off[i] + 1;
            if (kl[i] == (int64_t)sizeof(meta_key) &&
                !memcmp(b + ka[i], meta_key, sizeof(meta_key))) {
                /* a flush is whole: its changes, then this */
                rc = pending_apply(&q, t->p, err);
                q.n = 0;
                q.used = 0;
                free(meta);
                meta = malloc((size_t)vl[i] + 1);
                if (meta == NULL)
                    rc = fail(err, SW_E_NOMEM, "changelog: out of memory");
                else
                    memcpy(meta, b + va[i], (size_t)vl[i]);
                meta_len = (size_t)vl[i];
                meta_end = off[i] + 1;
                flushes++;
            } else if (pending_add(&q, b + ka[i], (size_t)kl[i], b + va[i],
                                   (size_t)vl[i]) != 0) {
                rc = fail(err, SW_E_NOMEM, "changelog: out of memory");
            }
        }
    }
    sw_kafka_source_free(src);
    if (rc == SW_OK && meta != NULL)
        rc = adopt_meta(R, meta, meta_len, err);
    free(meta);
    if (rc == SW_OK && meta_end >= 0)
        t->clog_next = meta_end;
    if (rc == SW_OK && q.n > 0 && end >= 0) {
        /* a flush cut by a crash: a snapshot now puts its records behind
         * every later restore (the next flush rewrites those keys) */
        t->clog_next = end;
        rc = run_checkpoint_task(R, 0, err);
        t->last_snapshot = now_s();
    }
    atomic_fetch_add(&R->mt->restore_records, records);
    atomic_fetch_add(&R->mt->restore_bytes, bytes);
    if (rc == SW_OK)
        sw__log("task of partition %d: changelog tail from offset "
                "%lld: %lld records (%lld bytes, %lld flushes%s%lld cut "
                "short) in %.3f s\n",
                (int)part, (long long)(from >= 0 ? from : 0),
                (long long)records, (long long)bytes, (long long)flushes, ", ",
                (long long)q.n, now_s() - t0);
    pending_free(&q);
    if (rc != SW_OK) {
        char why[sizeof(err->msg)];

        snprintf(why, sizeof(why), "%s", err->msg);
        return fail(err, rc, "changelog %s partition %d: %s", j->changelog,
                    (int)part, why);
    }
    t->from_changelog = flushes > 0;
    return SW_OK;
}

static sw_rc
assign(run *R, const int32_t *parts, int64_t *start, int n, sw_err *err)
{
    int64_t keep[RUN_MAX_SINKS + 2];
    int i, k;
    sw_rc rc;

    for (i = 0; i < n; i++) {
        int32_t part = parts[i];
        double t0 = now_s();
        task *t;

        if (part < 0 || part >= MAX_PARTS)
            return fail(err, SW_E_SOURCE,
                        "tasks: partition %d: at most %d partitions", part,
                        MAX_PARTS);
        if ((t = R->tasks[part]) != NULL) {
            /* held already: it goes on from where it is */
            for (k = 0; k < t->n_pos && t->pos_part[k] != part; k++)
                ;
            if (k < t->n_pos)
                start[i] = t->pos_next[k];
            continue;
        }
        t = calloc(1, sizeof(*t));
        if (t == NULL)
            return fail(err, SW_E_NOMEM, "tasks: out of memory");
        snprintf(t->dir, sizeof(t->dir), "%s/partition-%d", R->j->ckpt_dir,
                 (int)part);
        R->t = t;
        for (k = 0; k < RUN_MAX_SINKS + 2; k++)
            keep[k] = -1;
        t->clog_next = -1;
        if (R->fwd != NULL) {
            /* what it has applied of each source, once restored */
            t->src_max = malloc(MAX_PARTS * sizeof(int64_t));
            if (t->src_max == NULL) {
                free(t);
                R->t = &R->one;
                return fail(err, SW_E_NOMEM, "tasks: out of memory");
            }
            for (k = 0; k < MAX_PARTS; k++)
                t->src_max[k] = -1;
        }
        rc = run_task_open(R, keep, err);
        /* its watermark is its partition's alone */
        if (rc == SW_OK)
            rc = sw_pipeline_announce_partitions(t->p, 1, err);
        if (rc == SW_OK && R->j->changelog != NULL)
            rc = replay_changelog(R, part, err);
        if (rc == SW_OK)
            rc = sw_pipeline_track_changes(t->p, 1, err);
        /* a task with no snapshot yet takes one at its first save */
        t->last_snapshot = t->ckpt_seq > 0 ? now_s() : 0;
        R->t = &R->one;
        if (rc != SW_OK) {
            run_task_free(t);
            free(t);
            return rc;
        }
        R->tasks[part] = t;
        for (k = 0; k < t->n_pos && t->pos_part[k] != part; k++)
            ;
        /* a checkpoint's position wins over the group's offset, which a
         * member may have committed ahead of a checkpoint that never
         * reached the directory */
        start[i] = k < t->n_pos ? t->pos_next[k] : -1;
        sw__log("task of partition %d %s at %s (%.3f s)\n", (int)part,
                t->ckpt_seq > 0 || t->from_changelog ? "restored" : "started",
                k >= t->n_pos       ? "the group's offset"
                : t->from_changelog ? "its changelog's offset"
                                    : "its checkpoint's offset",
                now_s() - t0);
    }
    return SW_OK;
}

static sw_rc
revoke(run *R, const int32_t *parts, int n, sw_err *err)
{
    int i;
    sw_rc rc;

    /* state and offsets out first: the new owner starts from them */
    if ((rc = save_tasks(R, parts, n, 0, err)) != SW_OK)
        return rc;
    for (i = 0; i < n; i++) {
        task *t = run_task_of(R, parts[i]);

        if (t == NULL)
            continue;
        run_task_free(t);
        free(t);
        R->tasks[parts[i]] = NULL;
        sw__log("task of partition %d handed over\n", (int)parts[i]);
    }
    return SW_OK;
}

static sw_rc
on_rebalance(void *opaque, int assigned, const int32_t *parts, int64_t *start,
             int n, sw_err *err)
{
    run *R = opaque;

    atomic_fetch_add(&R->mt->rebalances, 1);
    return assigned ? assign(R, parts, start, n, err)
                    : revoke(R, parts, n, err);
}

void
run_tasks_start(run *R)
{
    sw_kafka_source_on_rebalance(R->ks, on_rebalance, R);
}

void
run_tasks_stop(run *R)
{
    if (R->ks != NULL)
        sw_kafka_source_on_rebalance(R->ks, NULL, NULL);
}

task *
run_task_of(run *R, int32_t part)
{
    return part >= 0 && part < MAX_PARTS ? R->tasks[part] : NULL;
}

sw_rc
run_tasks_checkpoint(run *R, int snapshot, sw_err *err)
{
    int32_t parts[MAX_PARTS];
    int n = 0, part;
    sw_rc rc;

    for (part = 0; part < MAX_PARTS; part++) {
        if (R->tasks[part] != NULL)
            parts[n++] = part;
    }
    R->events_since = 0;
    R->last_ckpt = now_s();
    if ((rc = save_tasks(R, parts, n, snapshot, err)) != SW_OK)
        return rc;
    return run_repart_commit(R, err);
}
