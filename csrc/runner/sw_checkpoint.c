/* SPDX-License-Identifier: MIT */
/*
 * sw_checkpoint.c - the loop's checkpoints: the pipeline's own file with the run's
 * position inside (next offsets, output lengths, the FIFO, a learning
 * job's model), taken after the outputs are durable and committed after
 * it is on disk; at start the newest that reads back wins.
 */
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sw_run_int.h"


/* 2: each buffered event's tenant, and a learning job's model; 3: then
 * the offset of the task's changelog the state includes */
static const char pos_magic2[8] = {'S', 'W', 'R', 'U', 'N', 'P', 'O', '2'};
static const char pos_magic[8] = {'S', 'W', 'R', 'U', 'N', 'P', 'O', '3'};

static void
put64(buf *b, int64_t v)
{
    unsigned char x[8];
    int i;

    for (i = 0; i < 8; i++)
        x[i] = (unsigned char)((uint64_t)v >> (8 * i));
    if (need(b, 8) == 0) {
        memcpy(b->p + b->len, x, 8);
        b->len += 8;
    }
}

/* The run's position: partitions' next offsets, output lengths,
 * counters, and the FIFO of buffered events. */
int
run_position(run *R, buf *b)
{
    int64_t i;
    int o;

    b->len = 0;
    if (need(b, 8) != 0)
        return -1;
    memcpy(b->p, pos_magic, 8);
    b->len = 8;
    put64(b, R->t->n_pos);
    for (i = 0; i < R->t->n_pos; i++) {
        put64(b, R->t->pos_part[i]);
        put64(b, R->t->pos_next[i]);
    }
    put64(b, R->n_outs);
    for (o = 0; o < R->n_outs; o++)
        put64(b, R->outs[o].k ? -1 : R->outs[o].bytes);
    put64(b, R->n_in);
    put64(b, R->n_out);
    put64(b, R->n_dead);
    put64(b, R->n_late);
    put64(b, R->n_invalid);
    put64(b, R->t->base);
    put64(b, R->t->n);
    for (i = 0; i < R->t->n; i++) {
        put64(b, R->t->f_part[i]);
        put64(b, R->t->f_off[i]);
        put64(b, R->t->f_klen[i]);
        put64(b, R->t->f_tlen[i]);
        if (need(b, (size_t)(R->t->f_klen[i] + R->t->f_tlen[i])) != 0)
            return -1;
        memcpy(b->p + b->len, R->t->karena + R->t->f_kat[i],
               (size_t)(R->t->f_klen[i] + R->t->f_tlen[i]));
        b->len += (size_t)(R->t->f_klen[i] + R->t->f_tlen[i]);
    }
    /* a learning job's model is state like the pipeline's: the model file
     * rides in the checkpoint, so a restart learns no pair twice */
    put64(b, R->j->learn);
    if (R->j->learn) {
        unsigned char *m = NULL;
        size_t mlen = 0;
        sw_err e = {0};

        put64(b, R->n_learned);
        put64(b, R->n_hits);
        if (sw_model_save_buffer(R->main.s.m, &m, &mlen, &e) != SW_OK)
            return -1;
        put64(b, (int64_t)mlen);
        if (need(b, mlen) != 0) {
            sw_buffer_free(m);
            return -1;
        }
        memcpy(b->p + b->len, m, mlen);
        b->len += mlen;
        sw_buffer_free(m);
    }
    put64(b, R->t->clog_next);
    {
        /* repartitioned: the highest source offset applied per source */
        int64_t n_src = 0, s;

        for (s = 0; R->t->src_max != NULL && s < MAX_PARTS; s++)
            n_src += R->t->src_max[s] >= 0;
        put64(b, n_src);
        for (s = 0; n_src > 0 && s < MAX_PARTS; s++) {
            if (R->t->src_max[s] >= 0) {
                put64(b, s);
                put64(b, R->t->src_max[s]);
            }
        }
    }
    return b->p == NULL ? -1 : 0;
}

typedef struct reader {
    const unsigned char *p;
    size_t len, at;
    int bad;
} reader;

static int64_t
get64(reader *r)
{
    uint64_t v = 0;
    int i;

    if (r->len - r->at < 8) {
        r->bad = 1;
        return 0;
    }
    for (i = 0; i < 8; i++)
        v |= (uint64_t)r->p[r->at + (size_t)i] << (8 * i);
    r->at += 8;
    return (int64_t)v;
}

/* Version 3's end: the changelog offset and the source offsets applied
 * (refused by a task that keeps none, or past a source it cannot hold). */
static void
read_v3(run *R, reader *r)
{
    int64_t n, i;

    R->t->clog_next = get64(r);
    n = get64(r);
    if (n < 0 || n > MAX_PARTS || (n > 0 && R->t->src_max == NULL)) {
        r->bad = 1;
        return;
    }
    for (i = 0; i < n && !r->bad; i++) {
        int64_t part = get64(r), max = get64(r);

        if (part < 0 || part >= MAX_PARTS || max < -1)
            r->bad = 1;
        else
            R->t->src_max[part] = max;
    }
}

/* Read back a position into R (outs' lengths into keep[]). */
sw_rc
run_restore_position(run *R, const void *pos, size_t len, int64_t *keep,
                 sw_err *err)
{
    reader r = {pos, len, 8, 0};
    int64_t n, i;

    int v3 = len >= 8 && memcmp(pos, pos_magic, 8) == 0;

    if (len < 8 || (!v3 && memcmp(pos, pos_magic2, 8) != 0))
        return fail(err, SW_E_FORMAT,
                    "the checkpoint's position is not a runner's");
    R->t->clog_next = -1;
    n = get64(&r);
    if (n < 0 || n > MAX_PARTS)
        r.bad = 1;
    for (i = 0; !r.bad && i < n; i++) {
        R->t->pos_part[i] = (int32_t)get64(&r);
        R->t->pos_next[i] = get64(&r);
    }
    R->t->n_pos = (int)n;
    n = get64(&r);
    if (n != R->n_outs)
        return fail(err, SW_E_INVAL,
                    "the checkpoint has %lld outputs, the job %d: checkpoints "
                    "belong to one job",
                    (long long)n, R->n_outs);
    for (i = 0; !r.bad && i < n; i++)
        keep[i] = get64(&r);
    {
        /* a task's counters are the member's that wrote it, not ours */
        int64_t c[5];

        for (i = 0; i < 5; i++)
            c[i] = get64(&r);
        if (!R->j->tasks) {
            R->n_in = c[0];
            R->n_out = c[1];
            R->n_dead = c[2];
            R->n_late = c[3];
            R->n_invalid = c[4];
        }
    }
    R->t->base = get64(&r);
    n = get64(&r);
    for (i = 0; !r.bad && i < n; i++) {
        int32_t part = (int32_t)get64(&r);
        int64_t off = get64(&r), kl = get64(&r), tl = get64(&r);
        sw_rc rc;

        if (r.bad || kl < 0 || tl < 0 || kl > INT32_MAX || tl > INT32_MAX ||
            (size_t)(kl + tl) > r.len - r.at) {
            r.bad = 1;
            break;
        }
        rc = run_fifo_push(R, part, off, (const char *)r.p + r.at, (size_t)kl,
                       (const char *)r.p + r.at + kl, (size_t)tl, err);
        if (rc != SW_OK)
            return rc;
        r.at += (size_t)(kl + tl);
    }
    n = get64(&r);
    if (!r.bad && n != R->j->learn)
        return fail(err, SW_E_INVAL,
                    "the checkpoint is of a job that %s online, this one "
                    "%s: checkpoints belong to one job",
                    n ? "learns" : "does not learn",
                    R->j->learn ? "learns" : "does not");
    if (!r.bad && n) {
        int64_t learned = get64(&r), hits = get64(&r), mlen = get64(&r);
        sw_model *m = NULL;
        sw_err e = {0};

        if (r.bad || mlen < 0 || (size_t)mlen > r.len - r.at ||
            sw_model_load_buffer(r.p + r.at, (size_t)mlen, &m, &e) != SW_OK)
            return fail(err, SW_E_FORMAT,
                        "the checkpoint's learned model is damaged%s%s",
                        e.msg[0] ? ": " : "", e.msg);
        r.at += (size_t)mlen;
        if (v3)
            read_v3(R, &r);
        if (r.bad || r.at != r.len) {
            sw_model_free(m);
            return fail(err, SW_E_FORMAT,
                        "the checkpoint's position is damaged");
        }
        sw_model_free(R->main.s.m);
        R->main.s.m = m;
        R->n_learned = learned;
        R->n_hits = hits;
        return SW_OK;
    }
    if (v3)
        read_v3(R, &r);
    if (r.bad || r.at != r.len || R->t->clog_next < -1)
        return fail(err, SW_E_FORMAT, "the checkpoint's position is damaged");
    return SW_OK;
}

static int
ckpt_name_seq(const char *name, int64_t *seq)
{
    char *end;
    long long v;

    if (strncmp(name, "ckpt-", 5) != 0)
        return -1;
    v = strtoll(name + 5, &end, 10);
    if (strcmp(end, ".swc") != 0 || v < 0)
        return -1;
    *seq = v;
    return 0;
}

static int
cmp_desc(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

    return x < y ? 1 : x > y ? -1 : 0;
}

/* The checkpoints' numbers in dir, newest first. */
static int64_t
list_ckpts(const char *dir, int64_t *seqs, int64_t max)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int64_t n = 0;

    if (d == NULL)
        return 0;
    while ((e = readdir(d)) != NULL && n < max) {
        if (ckpt_name_seq(e->d_name, &seqs[n]) == 0)
            n++;
    }
    closedir(d);
    qsort(seqs, (size_t)n, sizeof(int64_t), cmp_desc);
    return n;
}

static void
ckpt_path(const task *t, int64_t seq, char *path, size_t len)
{
    snprintf(path, len, "%s/ckpt-%012lld.swc", t->dir, (long long)seq);
}

/* Keep the newest keep checkpoints. */
static void
prune(run *R)
{
    int64_t seqs[256], n = list_ckpts(R->t->dir, seqs, 256), i;
    char path[4096];

    for (i = R->j->ckpt_keep; i < n; i++) {
        ckpt_path(R->t, seqs[i], path, sizeof(path));
        unlink(path);
    }
}

static void
ckpt_done(run *R, const char *path, double t0)
{
    struct stat st;

    atomic_fetch_add(&R->mt->checkpoints, 1);
    atomic_store(&R->mt->ckpt_us, (int64_t)((now_s() - t0) * 1e6));
    atomic_store(&R->mt->ckpt_unix_ms, unix_ms());
    if (stat(path, &st) == 0)
        atomic_store(&R->mt->ckpt_bytes, (int64_t)st.st_size);
    prune(R);
}

/* exactly_once: the number of the newest checkpoint whose transaction
 * committed, in <dir>/committed (-1: no such file). */
static int64_t
read_committed_seq(const task *t)
{
    char path[4096];
    long long v = -1;
    FILE *f;

    snprintf(path, sizeof(path), "%s/committed", t->dir);
    if ((f = fopen(path, "r")) == NULL)
        return -1;
    if (fscanf(f, "%lld", &v) != 1 || v < 0)
        v = -1;
    fclose(f);
    return v;
}

static sw_rc
write_committed_seq(const task *t, int64_t seq, sw_err *err)
{
    char path[4096], tmp[4200];
    char text[32];
    int fd, n;

    snprintf(path, sizeof(path), "%s/committed", t->dir);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    n = snprintf(text, sizeof(text), "%lld\n", (long long)seq);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || write(fd, text, (size_t)n) != n || fsync(fd) != 0 ||
        close(fd) != 0 || rename(tmp, path) != 0) {
        int e = errno;

        if (fd >= 0)
            close(fd);
        return fail(err, SW_E_IO, "checkpoint: %s: %s", path, strerror(e));
    }
    return SW_OK;
}

/* A test's crash at the one moment random kills almost never hit: the
 * checkpoint on disk, its transaction not yet committed
 * (STREAMWISE_FAULT=kill_before_commit:k kills the k-th commit). */
static void
fault_point(const char *name)
{
    static long count;
    const char *f = getenv("STREAMWISE_FAULT");
    size_t n = strlen(name);

    if (f != NULL && strncmp(f, name, n) == 0 && f[n] == ':' &&
        ++count == strtol(f + n + 1, NULL, 10))
        raise(SIGKILL);
}

sw_rc
run_txn_begin(run *R, sw_err *err)
{
    sw_rc rc;

    if (R->tx.open)
        return SW_OK;
    if ((rc = sw_kafka_sink_begin(R->tx.owner, err)) != SW_OK)
        return rc;
    R->tx.open = 1;
    return SW_OK;
}

/* exactly_once: everything written since the last commit (outputs, a
 * member's changelog records) and these offsets, in one transaction. */
sw_rc
run_txn_commit(run *R, int n, const int32_t *part, const int64_t *next,
               sw_err *err)
{
    sw_rc rc;

    fault_point("kill_before_commit");
    /* with nothing written since, the offsets still move */
    if ((rc = run_txn_begin(R, err)) != SW_OK)
        return rc;
    rc = sw_kafka_sink_commit(R->tx.owner, R->ks, part, next, n, 60000, err);
    R->tx.open = 0;
    if (rc != SW_OK)
        return rc;
    atomic_fetch_add(&R->mt->transactions, 1);
    return SW_OK;
}

static sw_rc
commit(run *R, int n, const int32_t *part, const int64_t *next, sw_err *err)
{
    sw_rc rc;

    if (R->ks == NULL || R->j->src != SRC_KAFKA)
        return SW_OK;
    if (R->j->eos && R->j->tasks)
        return SW_OK; /* sw_tasks.c committed every task's at once */
    if (R->j->eos) {
        /* then the checkpoint is marked as the one the outputs agree
         * with */
        if ((rc = run_txn_commit(R, n, part, next, err)) != SW_OK)
            return rc;
        return write_committed_seq(R->t, R->t->ckpt_seq, err);
    }
    if (R->fb != NULL) {
        /* the labels' offsets to their own group, the events' to theirs */
        int32_t fp[MAX_PARTS], ip[MAX_PARTS];
        int64_t fn[MAX_PARTS], in[MAX_PARTS];
        int i, nf = 0, ni = 0;

        for (i = 0; i < n; i++) {
            if (part[i] >= FB_PART0)
                fp[nf] = part[i] - FB_PART0, fn[nf++] = next[i];
            else
                ip[ni] = part[i], in[ni++] = next[i];
        }
        if ((rc = sw_kafka_source_commit_offsets(R->ks, ip, in, ni, err)) !=
            SW_OK)
            return rc;
        return sw_kafka_source_commit_offsets(R->fb, fp, fn, nf, err);
    }
    return sw_kafka_source_commit_offsets(R->ks, part, next, n, err);
}

/* exactly_once: did the transaction of the checkpoint just read back
 * commit? Its offsets are the group's committed ones exactly when it
 * did (init_transactions settled it before this is asked). */
static sw_rc
txn_agrees(run *R, int *agrees, sw_err *err)
{
    int64_t got[MAX_PARTS];
    int i;
    sw_rc rc;

    *agrees = R->t->n_pos == 0; /* it read nothing: nothing to disagree */
    if (R->t->n_pos == 0)
        return SW_OK;
    rc = sw_kafka_group_committed(R->j->bootstrap, R->j->topic, R->j->group,
                                  R->j->src_conf, R->t->pos_part,
                                  R->t->n_pos, got, 30000, err);
    if (rc != SW_OK)
        return rc;
    for (i = 0; i < R->t->n_pos; i++) {
        if (got[i] != R->t->pos_next[i])
            return SW_OK;
    }
    *agrees = 1;
    return SW_OK;
}

sw_rc
run_commit_task(run *R, sw_err *err)
{
    return commit(R, R->t->n_pos, R->t->pos_part, R->t->pos_next, err);
}

/* Finish a background checkpoint (block: wait for it). */
sw_rc
run_ckpt_poll(run *R, int block, sw_err *err)
{
    int done = 0;
    sw_rc rc;

    if (!R->t->bg)
        return SW_OK;
    rc = sw_pipeline_checkpoint_wait(R->t->p, block, &done, err);
    if (rc != SW_OK) {
        R->t->bg = 0;
        return rc;
    }
    if (!done)
        return SW_OK;
    R->t->bg = 0;
    ckpt_done(R, R->t->bg_path, R->t->bg_t0);
    return commit(R, R->t->bg_n, R->t->bg_part, R->t->bg_next, err);
}

/* How long scoring waited for the checkpoint begun at t0. */
static void
record_stall(run *R, double t0)
{
    int64_t stall = (int64_t)((now_s() - t0) * 1e6);

    atomic_store(&R->mt->ckpt_stall_us, stall);
    if (stall > atomic_load(&R->mt->ckpt_stall_max_us))
        atomic_store(&R->mt->ckpt_stall_max_us, stall);
}

/* Write the current task's checkpoint (its outputs already durable),
 * then commit its offsets once it is on disk (in the background: when
 * run_ckpt_poll sees it finished). */
sw_rc
run_checkpoint_task(run *R, int background, sw_err *err)
{
    buf pos = {NULL, 0, 0};
    char path[4096];
    double t0 = now_s();
    task *t = R->t;
    sw_rc rc;

    if (run_position(R, &pos) != 0) {
        free(pos.p);
        return fail(err, SW_E_NOMEM, "checkpoint: out of memory");
    }
    ckpt_path(t, ++t->ckpt_seq, path, sizeof(path));
    if (background) {
        rc = sw_pipeline_checkpoint_start(t->p, path, pos.p, pos.len, err);
        free(pos.p);
        if (rc != SW_OK)
            return rc;
        record_stall(R, t0); /* outputs durable, position, fork */
        t->bg = 1;
        t->bg_t0 = t0;
        snprintf(t->bg_path, sizeof(t->bg_path), "%s", path);
        t->bg_n = t->n_pos;
        memcpy(t->bg_part, t->pos_part, (size_t)t->n_pos * sizeof(int32_t));
        memcpy(t->bg_next, t->pos_next, (size_t)t->n_pos * sizeof(int64_t));
        return SW_OK;
    }
    rc = sw_pipeline_checkpoint(t->p, path, pos.p, pos.len, err);
    free(pos.p);
    if (rc != SW_OK)
        return rc;
    record_stall(R, t0);
    ckpt_done(R, path, t0);
    return commit(R, t->n_pos, t->pos_part, t->pos_next, err);
}

/* Every output durable: acknowledged, or on disk. */
sw_rc
run_outputs_sync(run *R, sw_err *err)
{
    int o;
    sw_rc rc;

    for (o = 0; o < R->n_outs; o++) {
        if ((rc = run_out_sync(&R->outs[o], err)) != SW_OK)
            return rc;
    }
    return SW_OK;
}

/* Take a checkpoint: outputs durable first, then state and position,
 * then (when it is on disk) the offsets committed. */
sw_rc
run_checkpoint(run *R, int background, sw_err *err)
{
    sw_rc rc;

    if (R->j->ckpt_dir == NULL)
        return SW_OK;
    if (R->t->bg && (rc = run_ckpt_poll(R, 1, err)) != SW_OK)
        return rc;
    if ((rc = run_outputs_sync(R, err)) != SW_OK)
        return rc;
    R->events_since = 0;
    R->last_ckpt = now_s();
    return run_checkpoint_task(R, background, err);
}

/* Nothing of an unusable checkpoint may stay: positions, counters,
 * lengths. */
static void
forget(run *R, int64_t *keep)
{
    int o;

    R->t->n_pos = 0;
    R->t->n = 0;
    R->t->kused = 0;
    R->t->base = 0;
    if (!R->j->tasks)
        R->n_in = R->n_out = R->n_dead = R->n_late = R->n_invalid = 0;
    for (o = 0; o < R->n_outs; o++)
        keep[o] = -1;
}

/* The newest checkpoint that reads back, or none: *out the pipeline (NULL
 * without a checkpoint), keep[] the output lengths. */
sw_rc
run_restore(run *R, int64_t *keep, sw_err *err)
{
    int64_t seqs[256], n, i, committed = -1;
    char path[4096];
    sw_rc rc0;

    if (R->j->ckpt_dir == NULL)
        return SW_OK;
    if (R->j->tasks && mkdir(R->j->ckpt_dir, 0755) != 0 && errno != EEXIST)
        return fail(err, SW_E_IO, "checkpoint.dir %s: %s", R->j->ckpt_dir,
                    strerror(errno));
    if (mkdir(R->t->dir, 0755) != 0 && errno != EEXIST)
        return fail(err, SW_E_IO, "checkpoint.dir %s: %s", R->t->dir,
                    strerror(errno));
    {
        /* the temporary files of checkpoints a crash interrupted */
        DIR *d = opendir(R->t->dir);
        struct dirent *e;

        while (d != NULL && (e = readdir(d)) != NULL) {
            if (!strncmp(e->d_name, "ckpt-", 5) &&
                strstr(e->d_name, ".swc.tmp.") != NULL) {
                snprintf(path, sizeof(path), "%s/%s", R->t->dir,
                         e->d_name);
                unlink(path);
            }
        }
        if (d != NULL)
            closedir(d);
    }
    n = list_ckpts(R->t->dir, seqs, 256);
    if (R->j->eos && !R->j->tasks) {
        /* the first exactly-once start: what is there was not written in
         * transactions, and stands as committed */
        committed = read_committed_seq(R->t);
        if (committed < 0) {
            committed = n > 0 ? seqs[0] : 0;
            if ((rc0 = write_committed_seq(R->t, committed, err)) != SW_OK)
                return rc0;
        }
    }
    for (i = 0; i < n; i++) {
        sw_pipeline *p = NULL;
        const void *pos;
        size_t len;
        sw_err e = {0};
        sw_rc rc;

        ckpt_path(R->t, seqs[i], path, sizeof(path));
        rc = sw_pipeline_restore(path, &p, &e);
        if (rc == SW_OK) {
            pos = sw_pipeline_position(p, &len);
            R->t->n = 0;
            R->t->kused = 0;
            rc = run_restore_position(R, pos, len, keep, &e);
            if (rc == SW_E_INVAL) { /* another job's: not a damage */
                sw_pipeline_free(p);
                *err = e;
                return rc;
            }
        }
        if (rc == SW_OK && R->j->eos && !R->j->tasks &&
            seqs[i] > committed) {
            int agrees = 0;

            if ((rc = txn_agrees(R, &agrees, &e)) != SW_OK) {
                sw_pipeline_free(p);
                *err = e;
                return rc;
            }
            if (!agrees) {
                char aside[4200];

                /* its outputs were aborted with the transaction: the
                 * events after the one before are scored again */
                sw__log("checkpoint %s was written but its "
                        "transaction did not commit (the group's committed "
                        "offsets are not its position); set aside as "
                        ".aborted, trying the one before\n",
                        path);
                snprintf(aside, sizeof(aside), "%s.aborted", path);
                rename(path, aside);
                sw_pipeline_free(p);
                forget(R, keep);
                continue;
            }
            if ((rc = write_committed_seq(R->t, seqs[i], err)) != SW_OK) {
                sw_pipeline_free(p);
                return rc;
            }
        }
        if (rc != SW_OK) {
            sw__log("warning: checkpoint %s is unusable (%s); "
                    "trying the one before\n",
                    path, e.msg);
            sw_pipeline_free(p);
            forget(R, keep);
            continue;
        }
        R->t->p = p;
        R->restored = 1;
        R->t->ckpt_seq = seqs[0];
        if (R->j->tasks)
            sw__log("restored %s: partition %d at offset %lld, "
                    "%lld events buffered\n",
                    path, R->t->n_pos ? (int)R->t->pos_part[0] : -1,
                    R->t->n_pos ? (long long)R->t->pos_next[0] : -1LL,
                    (long long)R->t->n);
        else
            sw__log("restored %s: %lld events in, %lld "
                    "predictions, %lld events buffered\n",
                    path, (long long)R->n_in, (long long)R->n_out,
                    (long long)R->t->n);
        return SW_OK;
    }
    if (n > 0)
        sw__log("warning: no usable checkpoint in %s; "
                "starting from the group's offsets\n",
                R->t->dir);
    if (n > 0)
        R->t->ckpt_seq = seqs[0];
    return SW_OK;
}
