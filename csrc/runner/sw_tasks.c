/* SPDX-License-Identifier: MIT */
/*
 * sw_tasks.c - a member of a consumer group: one task per partition it is
 * given, as Kafka Streams keeps them. A task has the partition's own
 * pipeline (state, watermark, buffered events) and position, and its own
 * checkpoints in checkpoint.dir/partition-N, a directory every member
 * sees: when the group gives the partition to this member, the task is
 * restored from the newest of them and the partition read from its
 * position; when the group takes it away, the task is checkpointed and its
 * offset committed before it is let go. So a key's state lives in one
 * task, and moves whole with its partition.
 */
#include <sys/stat.h>

#include "sw_run_int.h"

static sw_rc
assign(run *R, const int32_t *parts, int64_t *start, int n, sw_err *err)
{
    int64_t keep[RUN_MAX_SINKS + 2];
    int i, k;
    sw_rc rc;

    for (i = 0; i < n; i++) {
        int32_t part = parts[i];
        task *t;

        if (part < 0 || part >= MAX_PARTS)
            return fail(err, SW_E_SOURCE,
                        "tasks: partition %d: at most %d partitions", part,
                        MAX_PARTS);
        if (R->tasks[part] != NULL)
            continue; /* an eager assignor repeats what we hold */
        t = calloc(1, sizeof(*t));
        if (t == NULL)
            return fail(err, SW_E_NOMEM, "tasks: out of memory");
        snprintf(t->dir, sizeof(t->dir), "%s/partition-%d", R->j->ckpt_dir,
                 (int)part);
        R->t = t;
        for (k = 0; k < RUN_MAX_SINKS + 2; k++)
            keep[k] = -1;
        rc = run_task_open(R, keep, err);
        /* its watermark is its partition's alone */
        if (rc == SW_OK)
            rc = sw_pipeline_announce_partitions(t->p, 1, err);
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
        fprintf(stderr, "sw-serve: task of partition %d %s at %s\n",
                (int)part, t->ckpt_seq > 0 ? "restored" : "started",
                k < t->n_pos ? "its checkpoint's offset"
                             : "the group's offset");
    }
    return SW_OK;
}

static sw_rc
revoke(run *R, const int32_t *parts, int n, sw_err *err)
{
    int i, any = 0;
    sw_rc rc;

    for (i = 0; i < n; i++)
        any |= parts[i] >= 0 && parts[i] < MAX_PARTS &&
               R->tasks[parts[i]] != NULL;
    if (!any)
        return SW_OK;
    /* what the tasks emitted is out before their checkpoints say so */
    if ((rc = run_outputs_sync(R, err)) != SW_OK)
        return rc;
    for (i = 0; i < n; i++) {
        task *t = parts[i] >= 0 && parts[i] < MAX_PARTS
                      ? R->tasks[parts[i]]
                      : NULL;

        if (t == NULL)
            continue;
        R->t = t;
        /* a task that read nothing has nothing to hand over */
        rc = t->n_pos > 0 ? run_checkpoint_task(R, 0, err) : SW_OK;
        R->t = &R->one;
        if (rc != SW_OK)
            return rc;
        run_task_free(t);
        free(t);
        R->tasks[parts[i]] = NULL;
        fprintf(stderr, "sw-serve: task of partition %d handed over\n",
                (int)parts[i]);
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
run_tasks_checkpoint(run *R, sw_err *err)
{
    int part;
    sw_rc rc;

    if ((rc = run_outputs_sync(R, err)) != SW_OK)
        return rc;
    R->events_since = 0;
    R->last_ckpt = now_s();
    for (part = 0; part < MAX_PARTS; part++) {
        task *t = R->tasks[part];

        if (t == NULL || t->n_pos == 0)
            continue;
        R->t = t;
        rc = run_checkpoint_task(R, 0, err);
        R->t = &R->one;
        if (rc != SW_OK)
            return rc;
    }
    return SW_OK;
}
