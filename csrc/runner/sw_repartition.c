/* SPDX-License-Identifier: MIT */
/*
 * sw_repartition.c - events keyed by one field, state keyed by another:
 * Kafka Streams' repartition topics. When the stateful features all share
 * a key field that is not the message key, each member also reads the
 * input (as group <group>) and forwards every event, its bytes untouched,
 * to <group>-repartition, in the partition Kafka's Java client gives the
 * field's value (murmur2); the tasks (group <group>-tasks) read that
 * topic, so every key's state lives in one task.
 *
 * The forwarded message's key is the field's value, a NUL, then the
 * source partition (4 bytes) and offset (8 bytes), little-endian. A
 * forwarder commits the input only after the forwarded messages are
 * acknowledged; a crash in between forwards some events again, and a task
 * drops a message whose source offset is not above the highest it has
 * applied from that source partition (kept in its checkpoints), so each
 * event counts once. Outputs and dead letters name the source partition
 * and offset, as a run without repartitioning would.
 */
#include "sw_run_int.h"

#define TRAILER 13 /* NUL, partition, offset */

static int
fwd_index(run *R, int32_t part)
{
    int i;

    for (i = 0; i < R->n_fwd && R->fwd_part[i] != part; i++)
        ;
    if (i == R->n_fwd && R->n_fwd < MAX_PARTS) {
        R->fwd_part[R->n_fwd] = part;
        R->fwd_next[R->n_fwd++] = -1;
    }
    return i < MAX_PARTS ? i : MAX_PARTS - 1;
}

sw_rc
run_repart_commit(run *R, sw_err *err)
{
    int32_t parts[MAX_PARTS];
    int64_t next[MAX_PARTS];
    int i, n = 0;
    sw_rc rc;

    if (R->fwd == NULL)
        return SW_OK;
    /* the forwarded events and the dead letters out before the commit */
    if ((rc = sw_kafka_sink_flush(R->rpk, 30000, err)) != SW_OK ||
        (rc = run_outputs_sync(R, err)) != SW_OK)
        return rc;
    for (i = 0; i < R->n_fwd; i++) {
        if (R->fwd_next[i] >= 0) {
            parts[n] = R->fwd_part[i];
            next[n++] = R->fwd_next[i];
        }
    }
    return sw_kafka_source_commit_offsets(R->fwd, parts, next, n, err);
}

/* The forwarder's partitions come and go: what it forwarded of those
 * going is acknowledged and committed first; those coming start at the
 * group's offset. With exactly_once the forwarder's dead letters ride in
 * the tasks' open transaction, so its offsets are committed only after a
 * transaction commits (run_tasks_checkpoint): one going now is left at
 * its last such commit, and its next owner forwards the rest again (the
 * tasks skip what they applied). */
static sw_rc
on_fwd_rebalance(void *opaque, int assigned, const int32_t *parts,
                 int64_t *start, int n, sw_err *err)
{
    run *R = opaque;
    int i;
    sw_rc rc = SW_OK;

    (void)start;
    if (!assigned) {
        if (!R->j->eos)
            rc = run_repart_commit(R, err);
        for (i = 0; i < n; i++)
            R->fwd_next[fwd_index(R, parts[i])] = -1;
    }
    return rc;
}

sw_rc
run_repart_open(run *R, sw_err *err)
{
    const job *j = R->j;
    char topic[320];
    int n = 0;
    sw_rc rc;

    snprintf(topic, sizeof(topic), "%.256s-repartition", j->group);
    /* the forwarder holds no state: the job's own settings (librdkafka's
     * eager assignors by default), not the tasks' cooperative-sticky,
     * whose 2.0.2 aborts a consumer stopped before its first assignment
     * (librdkafka issue 4312), as a forwarder often is when its group
     * waits for members that left */
    if ((rc = sw_kafka_sink_open(j->bootstrap, topic, j->src_conf, &R->rpk,
                                 err)) != SW_OK ||
        (rc = sw_kafka_source_subscribe(j->bootstrap, j->topic, j->group,
                                        0, j->src_conf, &R->fwd, err)) !=
            SW_OK)
        return rc;
    sw_kafka_source_set_outage_limit(R->fwd, j->outage_ms);
    sw_kafka_source_on_rebalance(R->fwd, on_fwd_rebalance, R);
    if ((rc = sw_kafka_source_partition_count(R->ks, &n, err)) != SW_OK)
        return rc;
    R->n_rep = n;
    for (R->repart_col = 0; R->repart_col < sw_json_decoder_n_fields(R->d);
         R->repart_col++) {
        const char *name;
        int type;
        const double *num;
        const int64_t *ints, *sat, *slen;

        sw_json_decoder_field(R->d, R->repart_col, &name, &type, &num, &ints,
                              &sat, &slen);
        if (!strcmp(name, R->repart_field))
            return SW_OK;
    }
    return fail(err, SW_E_INVAL, "job: '%s' is not a field of the events",
                R->repart_field);
}

void
run_repart_stop(run *R)
{
    if (R->fwd != NULL)
        sw_kafka_source_on_rebalance(R->fwd, NULL, NULL);
}

/* Field f of decoded row i as the text a key is made of. */
static void
field_text(run *R, int f, int64_t i, buf *b)
{
    const char *name;
    int type;
    const double *num;
    const int64_t *ints, *sat, *slen;

    sw_json_decoder_field(R->d, f, &name, &type, &num, &ints, &sat, &slen);
    b->len = 0;
    if (type == SW_COL_STR)
        add_mem(b, (const char *)sw_json_decoder_strings(R->d) + sat[i],
                (size_t)slen[i]);
    else if (type == SW_COL_F64 || type == SW_COL_F32)
        add(b, "%.17g", num[i]);
    else
        add_int(b, ints[i]);
}

sw_rc
run_repart_forward(run *R, sw_err *err)
{
    const int32_t *mp;
    const int64_t *off, *ts, *ka, *kl, *va, *vl, *rows, *drow;
    const unsigned char *bytes;
    const int *why;
    int64_t count = 0, n_rows, n_dead, i;
    sw_rc rc;

    if (R->fwd == NULL)
        return SW_OK;
    if ((rc = sw_kafka_source_next(R->fwd, R->j->batch_max, &count, err)) !=
            SW_OK ||
        count == 0)
        return rc;
    sw_kafka_source_batch(R->fwd, &mp, &off, &ts, &bytes, &ka, &kl, &va,
                          &vl);
    rc = sw_json_decode(R->d, bytes, va, vl, ts, count, &n_rows, err);
    if (rc != SW_OK)
        return rc;
    /* an event without its field cannot be placed: a dead letter here */
    n_dead = sw_json_decoder_dead(R->d, &drow, &why);
    for (i = 0; i < n_dead; i++) {
        int64_t m = drow[i];

        rc = run_dead_letter(R, mp[m], off[m], sw_dead_reasons[why[i]],
                             sw_json_decoder_dead_field(R->d, i),
                             bytes + va[m], vl[m], err);
        if (rc != SW_OK)
            return rc;
    }
    rows = sw_json_decoder_rows(R->d);
    for (i = 0; i < n_rows; i++) {
        int64_t m = rows[i];
        unsigned char tail[TRAILER];
        int32_t to;
        int k;

        field_text(R, R->repart_col, i, &R->key);
        if ((rc = sw_kafka_partition(R->key.p, R->key.len, R->n_rep, &to,
                                     err)) != SW_OK)
            return rc;
        tail[0] = 0;
        for (k = 0; k < 4; k++)
            tail[1 + k] = (unsigned char)((uint32_t)mp[m] >> (8 * k));
        for (k = 0; k < 8; k++)
            tail[5 + k] = (unsigned char)((uint64_t)off[m] >> (8 * k));
        add_mem(&R->key, (const char *)tail, TRAILER);
        rc = sw_kafka_sink_send(R->rpk, R->key.p, R->key.len, bytes + va[m],
                                (size_t)vl[m], to, ts[m], NULL, err);
        if (rc != SW_OK)
            return rc;
    }
    for (i = 0; i < count; i++) {
        int x = fwd_index(R, mp[i]);

        if (off[i] + 1 > R->fwd_next[x])
            R->fwd_next[x] = off[i] + 1;
    }
    return SW_OK;
}

int
run_repart_source(const unsigned char *key, int64_t len, int32_t *part,
                  int64_t *off)
{
    const unsigned char *t;
    uint32_t p = 0;
    uint64_t o = 0;
    int k;

    if (len < TRAILER || key[len - TRAILER] != 0)
        return -1;
    t = key + len - TRAILER + 1;
    for (k = 0; k < 4; k++)
        p |= (uint32_t)t[k] << (8 * k);
    for (k = 0; k < 8; k++)
        o |= (uint64_t)t[4 + k] << (8 * k);
    if ((int32_t)p < 0 || (int32_t)p >= MAX_PARTS || (int64_t)o < 0)
        return -1;
    *part = (int32_t)p;
    *off = (int64_t)o;
    return 0;
}
