/* SPDX-License-Identifier: MIT */
/*
 * sw_kafka_source.c - replay a Kafka topic: every message of the chosen
 * partitions between a start and a stop (the beginning, an offset or a
 * time; the end as of opening, an offset or a time), in batches of raw
 * columns, and afterwards the exact offset range read from each partition.
 *
 * Replay uses assign(), not a consumer group: no rebalance delay, nothing
 * committed, the same messages every time. A time becomes an offset by
 * offsets_for_times where the broker answers it, else by a binary search
 * on message timestamps (librdkafka 2.0.2's mock cluster answers -1, so
 * that is what the tests exercise; it assumes timestamps that do not go
 * back within a partition, as a topic published from an event log has).
 * A broker that goes away is retried until `timeout_ms` passes without
 * progress; then the error names the last offset read of every partition.
 *
 * Live consumption (sw_kafka_source_subscribe) is the other use: a
 * consumer group shares the partitions among its members and remembers
 * where each stopped, offsets are committed only when the caller says the
 * messages are done with (after a checkpoint), so a crash replays rather
 * than loses; a batch is whatever arrived within the wait.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sw_internal.h"

#ifdef SW_HAVE_RDKAFKA
#include "sw_kafka_conf.h"

/* Fetch in large pieces and keep a deep queue: with librdkafka's
 * defaults a consumer of small JSON events waited on the broker for half
 * of its time (the runner's loop went from 160k to 440k events/s on the
 * embedded broker). The caller's conf_kv overrides them. */
#define FETCH_DEFAULTS                                                         \
    "max.partition.fetch.bytes", "8388608", "fetch.max.bytes", "52428800",     \
        "queued.min.messages", "500000"

struct sw_kafka_source {
    rd_kafka_t *rk;
    char topic[256];
    int n;
    int32_t *part;
    int64_t *start, *stop, *next; /* next: the offset after the last read */
    int64_t timeout_ms;
    int live, cap_parts; /* live: subscribed; partitions appear as assigned */
    /* the current batch (valid until the next call) */
    int64_t count, cap;
    int32_t *b_part;
    int64_t *b_off, *b_ts, *b_key, *b_key_len, *b_val, *b_val_len;
    unsigned char *arena;
    size_t used, arena_cap;
    /* live: where partitions start when assigned (a checkpoint's offsets,
     * which win over the group's), and how long the brokers may stay
     * unreachable before next() fails */
    int n_start, start_rest; /* start_rest: the others from the start */
    int32_t *start_part;
    int64_t *start_off;
    int64_t outage_ms, down_since;
    rd_kafka_resp_err_t down_err;
    /* the owner's rebalance callback, and its first error */
    sw_kafka_rebalance_cb on_rebalance;
    void *rebalance_opaque;
    sw_err cb_err;
};

static int64_t
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static sw_rc
kerr(sw_err *err, const char *what, rd_kafka_resp_err_t e)
{
    return sw__fail(err, SW_E_IO, "kafka: %s: %s", what, rd_kafka_err2str(e));
}

/* The timestamp of the message at offset in partition p (one fetch). */
static sw_rc
timestamp_at(sw_kafka_source *s, int32_t p, int64_t offset, int64_t *ts,
             sw_err *err)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    int64_t t0 = now_ms();
    rd_kafka_resp_err_t e;
    sw_rc rc = SW_OK;

    rd_kafka_topic_partition_list_add(l, s->topic, p)->offset = offset;
    e = rd_kafka_assign(s->rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (e)
        return kerr(err, "assign", e);
    for (;;) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(s->rk, 100);

        if (m == NULL) {
            if (now_ms() - t0 > s->timeout_ms) {
                rc = sw__fail(err, SW_E_IO,
                              "kafka: %s [%d]: no message at offset %lld "
                              "within %lld ms",
                              s->topic, p, (long long)offset,
                              (long long)s->timeout_ms);
                break;
            }
            continue;
        }
        if (!m->err && m->partition == p && m->offset >= offset) {
            *ts = rd_kafka_message_timestamp(m, NULL);
            rd_kafka_message_destroy(m);
            break;
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_assign(s->rk, NULL);
    return rc;
}

/* The first offset in [low, high) whose message is at or after t_ms, high
 * if none. */
static sw_rc
offset_at_time(sw_kafka_source *s, int32_t p, int64_t t_ms, int64_t low,
               int64_t high, int64_t *out, sw_err *err)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_resp_err_t e;
    int64_t lo = low, hi = high, ts = 0;
    sw_rc rc;

    rd_kafka_topic_partition_list_add(l, s->topic, p)->offset = t_ms;
    e = rd_kafka_offsets_for_times(s->rk, l, (int)s->timeout_ms);
    if (!e && l->elems[0].err == 0 && l->elems[0].offset >= 0) {
        *out = l->elems[0].offset < low    ? low
               : l->elems[0].offset > high ? high
                                           : l->elems[0].offset;
        rd_kafka_topic_partition_list_destroy(l);
        return SW_OK;
    }
    rd_kafka_topic_partition_list_destroy(l);
    /* -1 means "none at or after t" from a real broker and "not
     * supported" from the mock: search by message timestamp either way */
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;

        if ((rc = timestamp_at(s, p, mid, &ts, err)) != SW_OK)
            return rc;
        if (ts < t_ms)
            lo = mid + 1;
        else
            hi = mid;
    }
    *out = lo;
    return SW_OK;
}

void
sw_kafka_source_free(sw_kafka_source *s)
{
    if (s == NULL)
        return;
    if (s->rk != NULL && s->down_since != 0) {
        /* no broker to leave the group with: closing would wait for one */
        rd_kafka_destroy_flags(s->rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
    } else if (s->rk != NULL) {
        rd_kafka_consumer_close(s->rk);
        rd_kafka_destroy(s->rk);
    }
    sw__free(s->part);
    sw__free(s->start);
    sw__free(s->stop);
    sw__free(s->next);
    sw__free(s->b_part);
    sw__free(s->b_off);
    sw__free(s->b_ts);
    sw__free(s->b_key);
    sw__free(s->b_key_len);
    sw__free(s->b_val);
    sw__free(s->b_val_len);
    sw__free(s->arena);
    sw__free(s->start_part);
    sw__free(s->start_off);
    sw__free(s);
}

/* Resolve one end of the range for partition i: kind 0 the beginning (or
 * the end, for stop), 1 an offset, 2 a time in ms. */
static sw_rc
resolve(sw_kafka_source *s, int i, int kind, int64_t value, int is_stop,
        int64_t low, int64_t high, int64_t *out, sw_err *err)
{
    if (kind == 0) {
        *out = is_stop ? high : low;
        return SW_OK;
    }
    if (kind == 1) {
        *out = value < low ? low : value > high ? high : value;
        return SW_OK;
    }
    return offset_at_time(s, s->part[i], value, low, high, out, err);
}

/* Tell the owner of partitions assigned or revoked; start[] in and out
 * for an assignment. 0, or -1 once the callback failed. */
static int
tell_owner(sw_kafka_source *s, int assigned,
           rd_kafka_topic_partition_list_t *l, int64_t *start)
{
    int32_t parts[1024];
    int i, n = l->cnt < 1024 ? l->cnt : 1024;

    if (s->on_rebalance == NULL || s->cb_err.rc != SW_OK)
        return s->cb_err.rc != SW_OK ? -1 : 0;
    for (i = 0; i < n; i++)
        parts[i] = l->elems[i].partition;
    if (s->on_rebalance(s->rebalance_opaque, assigned, parts, start, n,
                        &s->cb_err) != SW_OK) {
        if (s->cb_err.rc == SW_OK)
            s->cb_err.rc = SW_E_SOURCE;
        return -1;
    }
    return 0;
}

/* A rebalance of a live source: assigned partitions start where
 * start_at() or the owner's callback said (else at the group's offset),
 * eagerly or incrementally as the assignor wants; revoked ones are the
 * owner's to checkpoint first. */
static void
rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t e,
          rd_kafka_topic_partition_list_t *l, void *opaque)
{
    sw_kafka_source *s = opaque;
    int coop = !strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE");
    rd_kafka_error_t *ke = NULL;
    int64_t start[1024];
    int i, j;

    if (e == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        for (i = 0; i < l->cnt && i < 1024; i++) {
            start[i] = s->start_rest ? RD_KAFKA_OFFSET_BEGINNING : -1;
            for (j = 0; j < s->n_start; j++) {
                if (s->start_part[j] == l->elems[i].partition &&
                    !strcmp(l->elems[i].topic, s->topic))
                    start[i] = s->start_off[j];
            }
        }
        if (tell_owner(s, 1, l, start) == 0) {
            for (i = 0; i < l->cnt && i < 1024; i++) {
                if (start[i] != -1)
                    l->elems[i].offset = start[i];
            }
        }
        if (coop)
            ke = rd_kafka_incremental_assign(rk, l);
        else
            rd_kafka_assign(rk, l);
    } else {
        tell_owner(s, 0, l, NULL);
        if (coop)
            ke = rd_kafka_incremental_unassign(rk, l);
        else
            rd_kafka_assign(rk, NULL);
    }
    if (ke != NULL)
        rd_kafka_error_destroy(ke);
}

/* librdkafka's errors of a live source: a broker out of reach starts
 * the outage clock (next() ends it, or fails when it runs out). */
static void
on_error(rd_kafka_t *rk, int e, const char *reason, void *opaque)
{
    sw_kafka_source *s = opaque;

    (void)rk, (void)reason;
    if (e == RD_KAFKA_RESP_ERR__TRANSPORT ||
        e == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN ||
        e == RD_KAFKA_RESP_ERR__RESOLVE) {
        if (s->down_since == 0)
            s->down_since = now_ms();
        s->down_err = (rd_kafka_resp_err_t)e;
    }
}

/* The consumer handle of s, configured by defaults then conf_kv; live
 * sources get the rebalance and error callbacks. */
static sw_rc
new_consumer(sw_kafka_source *s, const char *bootstrap,
             const char *const *defaults, const char *const *conf_kv,
             sw_err *err)
{
    rd_kafka_conf_t *conf =
        sw__kafka_conf("kafka", bootstrap, defaults, conf_kv, err);
    char errstr[512];

    if (conf == NULL)
        return SW_E_INVAL;
    if (s->live) {
        rd_kafka_conf_set_rebalance_cb(conf, rebalance);
        rd_kafka_conf_set_error_cb(conf, on_error);
        rd_kafka_conf_set_opaque(conf, s);
    }
    s->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    if (s->rk == NULL) {
        rd_kafka_conf_destroy(conf);
        return sw__fail(err, SW_E_INVAL, "kafka: %s", errstr);
    }
    return SW_OK;
}

sw_rc
sw_kafka_source_open(const char *bootstrap, const char *topic,
                     const int32_t *partitions, int n_partitions,
                     sw_point start_kind, int64_t start, sw_point stop_kind,
                     int64_t stop,
                     int64_t timeout_ms, const char *const *conf_kv,
                     sw_kafka_source **out, sw_err *err)
{
    /* assign() still wants a group id; nothing is ever committed */
    static const char *const defaults[] = {"group.id",
                                           "streamwise-replay",
                                           "enable.auto.commit",
                                           "false",
                                           "enable.auto.offset.store",
                                           "false",
                                           "log_level",
                                           "3",
                                           FETCH_DEFAULTS,
                                           NULL};
    const rd_kafka_metadata_t *md = NULL;
    rd_kafka_topic_t *rkt = NULL;
    rd_kafka_topic_partition_list_t *l = NULL;
    sw_kafka_source *s;
    rd_kafka_resp_err_t e;
    sw_rc rc = SW_OK;
    int i, j, n;

    *out = NULL;
    if (bootstrap == NULL || topic == NULL || strlen(topic) >= 256 ||
        (unsigned)start_kind > SW_POINT_TIME ||
        (unsigned)stop_kind > SW_POINT_TIME)
        return sw__fail(err, SW_E_INVAL, "kafka: bad replay arguments");
    s = sw__calloc(1, sizeof(*s));
    if (s == NULL)
        return sw__fail(err, SW_E_NOMEM, "kafka: out of memory");
    snprintf(s->topic, sizeof(s->topic), "%s", topic);
    s->timeout_ms = timeout_ms > 0 ? timeout_ms : 30000;
    if ((rc = new_consumer(s, bootstrap, defaults, conf_kv, err)) != SW_OK) {
        sw_kafka_source_free(s);
        return rc;
    }
    rkt = rd_kafka_topic_new(s->rk, topic, NULL);
    e = rd_kafka_metadata(s->rk, 0, rkt, &md, (int)s->timeout_ms);
    if (e) {
        rc = kerr(err, "metadata", e);
        goto done;
    }
    if (md->topic_cnt != 1 || md->topics[0].err) {
        rc = sw__fail(err, SW_E_INVAL, "kafka: topic '%s': %s", topic,
                      md->topic_cnt ? rd_kafka_err2str(md->topics[0].err)
                                    : "not in the metadata");
        goto done;
    }
    n = partitions ? n_partitions : md->topics[0].partition_cnt;
    s->part = sw__alloc_array((size_t)(n ? n : 1), sizeof(int32_t));
    s->start = sw__alloc_array((size_t)(n ? n : 1), sizeof(int64_t));
    s->stop = sw__alloc_array((size_t)(n ? n : 1), sizeof(int64_t));
    s->next = sw__alloc_array((size_t)(n ? n : 1), sizeof(int64_t));
    if (!s->part || !s->start || !s->stop || !s->next) {
        rc = sw__fail(err, SW_E_NOMEM, "kafka: out of memory");
        goto done;
    }
    for (i = 0; i < n; i++) {
        s->part[i] =
            partitions ? partitions[i] : md->topics[0].partitions[i].id;
        for (j = 0; j < md->topics[0].partition_cnt &&
                    md->topics[0].partitions[j].id != s->part[i];
             j++)
            ;
        if (j == md->topics[0].partition_cnt) {
            rc = sw__fail(err, SW_E_INVAL,
                          "kafka: topic '%s' has no partition %d", topic,
                          s->part[i]);
            goto done;
        }
    }
    s->n = n;
    l = rd_kafka_topic_partition_list_new(n ? n : 1);
    for (i = 0; i < n; i++) {
        int64_t low, high;

        e = rd_kafka_query_watermark_offsets(s->rk, topic, s->part[i], &low,
                                             &high, (int)s->timeout_ms);
        if (e) {
            rc = kerr(err, "watermarks", e);
            goto done;
        }
        if ((rc = resolve(s, i, start_kind, start, 0, low, high, &s->start[i],
                          err)) != SW_OK ||
            (rc = resolve(s, i, stop_kind, stop, 1, low, high, &s->stop[i],
                          err)) != SW_OK)
            goto done;
        if (s->stop[i] < s->start[i])
            s->stop[i] = s->start[i];
        s->next[i] = s->start[i];
        if (s->start[i] < s->stop[i])
            rd_kafka_topic_partition_list_add(l, topic, s->part[i])->offset =
                s->start[i];
    }
    e = rd_kafka_assign(s->rk, l);
    if (e)
        rc = kerr(err, "assign", e);
done:
    if (l != NULL)
        rd_kafka_topic_partition_list_destroy(l);
    if (md != NULL)
        rd_kafka_metadata_destroy(md);
    if (rkt != NULL)
        rd_kafka_topic_destroy(rkt);
    if (rc != SW_OK) {
        sw_kafka_source_free(s);
        return rc;
    }
    *out = s;
    return SW_OK;
}

static int
open_partitions(const sw_kafka_source *s)
{
    int i, k = 0;

    for (i = 0; i < s->n; i++)
        k += s->next[i] < s->stop[i];
    return k;
}

static sw_rc
batch_room(sw_kafka_source *s, size_t bytes, sw_err *err)
{
    if (s->count == s->cap) {
        int64_t c = s->cap ? 2 * s->cap : 1024;
        void *p;

#define GROW(f, size)                                                          \
    do {                                                                       \
        p = sw__realloc_array(s->f, (size_t)c, size);                          \
        if (p == NULL)                                                         \
            return sw__fail(err, SW_E_NOMEM, "kafka: out of memory");          \
        s->f = p;                                                              \
    } while (0)
        GROW(b_part, sizeof(int32_t));
        GROW(b_off, sizeof(int64_t));
        GROW(b_ts, sizeof(int64_t));
        GROW(b_key, sizeof(int64_t));
        GROW(b_key_len, sizeof(int64_t));
        GROW(b_val, sizeof(int64_t));
        GROW(b_val_len, sizeof(int64_t));
#undef GROW
        s->cap = c;
    }
    if (s->used + bytes > s->arena_cap) {
        size_t c = s->arena_cap ? s->arena_cap : 65536;
        unsigned char *a;

        while (c < s->used + bytes)
            c *= 2;
        a = sw__realloc_array(s->arena, c, 1);
        if (a == NULL)
            return sw__fail(err, SW_E_NOMEM, "kafka: out of memory");
        s->arena = a;
        s->arena_cap = c;
    }
    return SW_OK;
}

/* "p0=12 p1=40": the offsets after the last read, for error messages. */
static void
positions(const sw_kafka_source *s, char *buf, size_t len)
{
    size_t used = 0;
    int i;

    buf[0] = '\0';
    for (i = 0; i < s->n && used + 1 < len; i++)
        used +=
            (size_t)snprintf(buf + used, len - used, "%s%d=%lld", i ? " " : "",
                             s->part[i], (long long)s->next[i] - 1);
}

/* Copy message m into the batch. */
static sw_rc
keep(sw_kafka_source *s, const rd_kafka_message_t *m, sw_err *err)
{
    size_t kl = m->key ? m->key_len : 0, vl = m->payload ? m->len : 0;
    sw_rc rc;

    if ((rc = batch_room(s, kl + vl, err)) != SW_OK)
        return rc;
    s->b_part[s->count] = m->partition;
    s->b_off[s->count] = m->offset;
    s->b_ts[s->count] = rd_kafka_message_timestamp(m, NULL);
    s->b_key[s->count] = (int64_t)s->used;
    s->b_key_len[s->count] = m->key ? (int64_t)kl : -1;
    if (kl > 0) /* a NULL key (or arena) may not even be memcpy'd by 0 */
        memcpy(s->arena + s->used, m->key, kl);
    s->used += kl;
    s->b_val[s->count] = (int64_t)s->used;
    s->b_val_len[s->count] = m->payload ? (int64_t)vl : -1;
    if (vl > 0)
        memcpy(s->arena + s->used, m->payload, vl);
    s->used += vl;
    s->count++;
    return SW_OK;
}

/* Index of partition p, added (live mode) when first seen. */
static int
part_index(sw_kafka_source *s, int32_t p, int64_t first_offset)
{
    int i;

    for (i = 0; i < s->n && s->part[i] != p; i++)
        ;
    if (i < s->n || !s->live)
        return i;
    if (s->n == s->cap_parts) {
        int c = s->cap_parts ? 2 * s->cap_parts : 16;
        int32_t *a = sw__realloc_array(s->part, (size_t)c, sizeof(int32_t));
        int64_t *b, *d, *e;

        if (a == NULL)
            return -1;
        s->part = a;
        if ((b = sw__realloc_array(s->start, (size_t)c, 8)) == NULL)
            return -1;
        s->start = b;
        if ((d = sw__realloc_array(s->stop, (size_t)c, 8)) == NULL)
            return -1;
        s->stop = d;
        if ((e = sw__realloc_array(s->next, (size_t)c, 8)) == NULL)
            return -1;
        s->next = e;
        s->cap_parts = c;
    }
    s->part[i] = p;
    s->start[i] = s->next[i] = first_offset;
    s->stop[i] = -1;
    s->n++;
    return i;
}

static sw_rc live_next(sw_kafka_source *s, int64_t max, int64_t *count,
                       sw_err *err);

sw_rc
sw_kafka_source_next(sw_kafka_source *s, int64_t max, int64_t *count,
                     sw_err *err)
{
    if (s->live)
        return live_next(s, max, count, err);
    int64_t last = now_ms();
    rd_kafka_resp_err_t last_err = RD_KAFKA_RESP_ERR_NO_ERROR;
    sw_rc rc;

    s->count = 0;
    s->used = 0;
    *count = 0;
    while (s->count < max && open_partitions(s) > 0) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(s->rk, 100);
        int i;

        if (m == NULL || m->err) {
            if (m != NULL) {
                if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                    last_err = m->err;
                rd_kafka_message_destroy(m);
            }
            /* control records (transaction markers) take offsets that no
             * message shows: the fetch position says when we are past */
            for (i = 0; i < s->n; i++) {
                rd_kafka_topic_partition_list_t *l;

                if (s->next[i] >= s->stop[i])
                    continue;
                l = rd_kafka_topic_partition_list_new(1);
                rd_kafka_topic_partition_list_add(l, s->topic, s->part[i]);
                if (!rd_kafka_position(s->rk, l) &&
                    l->elems[0].offset >= s->stop[i])
                    s->next[i] = s->stop[i];
                rd_kafka_topic_partition_list_destroy(l);
            }
            if (now_ms() - last > s->timeout_ms) {
                char where[512];

                positions(s, where, sizeof(where));
                return sw__fail(err, SW_E_IO,
                                "kafka: %s: no progress for %lld ms (last "
                                "offsets read: %s)%s%s",
                                s->topic, (long long)s->timeout_ms, where,
                                last_err ? ": " : "",
                                last_err ? rd_kafka_err2str(last_err) : "");
            }
            continue;
        }
        for (i = 0; i < s->n && s->part[i] != m->partition; i++)
            ;
        if (i < s->n && m->offset >= s->next[i] && m->offset < s->stop[i]) {
            if ((rc = keep(s, m, err)) != SW_OK) {
                rd_kafka_message_destroy(m);
                return rc;
            }
            s->next[i] = m->offset + 1;
            last = now_ms();
        }
        rd_kafka_message_destroy(m);
    }
    *count = s->count;
    return SW_OK;
}

/* Live: wait up to timeout_ms for a first message, then take what is
 * already there, up to max. */
static sw_rc
live_next(sw_kafka_source *s, int64_t max, int64_t *count, sw_err *err)
{
    int64_t t0 = now_ms();
    sw_rc rc;

    s->count = 0;
    s->used = 0;
    *count = 0;
    while (s->count < max) {
        int64_t left = s->timeout_ms - (now_ms() - t0);
        rd_kafka_message_t *m = rd_kafka_consumer_poll(
            s->rk, s->count ? 0 : (left > 0 ? (int)left : 0));
        int i;

        if (m == NULL) {
            if (s->count || left <= 0)
                break;
            continue;
        }
        if (m->err) {
            /* end of a partition or a broker away: librdkafka retries;
             * a batch ends when nothing arrives within the wait */
            if (m->err == RD_KAFKA_RESP_ERR__TRANSPORT ||
                m->err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN ||
                m->err == RD_KAFKA_RESP_ERR__RESOLVE) {
                if (s->down_since == 0)
                    s->down_since = now_ms();
                s->down_err = m->err;
            }
            rd_kafka_message_destroy(m);
            continue;
        }
        s->down_since = 0;
        i = part_index(s, m->partition, m->offset);
        if (i < 0) {
            rd_kafka_message_destroy(m);
            return sw__fail(err, SW_E_NOMEM, "kafka: out of memory");
        }
        rc = keep(s, m, err);
        if (rc == SW_OK)
            s->next[i] = m->offset + 1;
        rd_kafka_message_destroy(m);
        if (rc != SW_OK)
            return rc;
    }
    *count = s->count;
    if (s->cb_err.rc != SW_OK) {
        *err = s->cb_err;
        return err->rc;
    }
    if (s->count == 0 && s->down_since != 0 && s->outage_ms > 0 &&
        now_ms() - s->down_since > s->outage_ms) {
        const rd_kafka_metadata_t *md = NULL;
        char where[512];

        /* errors stop when a broker is back, but nothing says so: ask */
        if (!rd_kafka_metadata(s->rk, 0, NULL, &md, 1000)) {
            rd_kafka_metadata_destroy(md);
            s->down_since = 0;
            return SW_OK;
        }
        positions(s, where, sizeof(where));
        return sw__fail(err, SW_E_SOURCE,
                        "kafka: %s: no broker reachable for %lld ms (%s); last "
                        "offsets read: %s",
                        s->topic, (long long)(now_ms() - s->down_since),
                        rd_kafka_err2str(s->down_err),
                        where[0] ? where : "none");
    }
    return SW_OK;
}

sw_rc
sw_kafka_source_start_at(sw_kafka_source *s, int32_t partition,
                         int64_t offset, sw_err *err)
{
    int32_t *p;
    int64_t *o;

    if (!s->live || partition < -1 || offset < 0)
        return sw__fail(err, SW_E_INVAL,
                        "kafka: start_at takes a subscribed source, a "
                        "partition (or -1) and an offset >= 0");
    if (partition == -1) {
        s->start_rest = 1;
        return SW_OK;
    }
    p = sw__realloc_array(s->start_part, (size_t)s->n_start + 1,
                          sizeof(int32_t));
    if (p != NULL)
        s->start_part = p;
    o = sw__realloc_array(s->start_off, (size_t)s->n_start + 1,
                          sizeof(int64_t));
    if (o != NULL)
        s->start_off = o;
    if (p == NULL || o == NULL)
        return sw__fail(err, SW_E_NOMEM, "kafka: out of memory");
    s->start_part[s->n_start] = partition;
    s->start_off[s->n_start++] = offset;
    return SW_OK;
}

void
sw_kafka_source_set_outage_limit(sw_kafka_source *s, int64_t ms)
{
    s->outage_ms = ms;
}

void
sw_kafka_source_on_rebalance(sw_kafka_source *s, sw_kafka_rebalance_cb cb,
                             void *opaque)
{
    s->on_rebalance = cb;
    s->rebalance_opaque = opaque;
}

sw_rc
sw_kafka_source_partition_count(sw_kafka_source *s, int *n, sw_err *err)
{
    const rd_kafka_metadata_t *md = NULL;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(s->rk, s->topic, NULL);
    rd_kafka_resp_err_t e;
    sw_rc rc = SW_OK;

    *n = 0;
    if (rkt == NULL)
        return kerr(err, "topic", rd_kafka_last_error());
    e = rd_kafka_metadata(s->rk, 0, rkt, &md, 10000);
    if (e)
        rc = kerr(err, "metadata", e);
    else if (md->topic_cnt != 1 || md->topics[0].err)
        rc = sw__fail(err, SW_E_INVAL, "kafka: topic '%s': %s", s->topic,
                      md->topic_cnt ? rd_kafka_err2str(md->topics[0].err)
                                    : "not in the metadata");
    else
        *n = md->topics[0].partition_cnt;
    if (md != NULL)
        rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    return rc;
}

int64_t
sw_kafka_source_lag(const sw_kafka_source *s, int32_t partition,
                    int64_t next_offset)
{
    int64_t lo = -1, hi = -1;

    if (rd_kafka_get_watermark_offsets(s->rk, s->topic, partition, &lo,
                                       &hi) != RD_KAFKA_RESP_ERR_NO_ERROR ||
        hi < 0)
        return -1;
    return hi > next_offset ? hi - next_offset : 0;
}

sw_rc
sw_kafka_source_commit_offsets(sw_kafka_source *s, const int32_t *partitions,
                               const int64_t *offsets, int n, sw_err *err)
{
    rd_kafka_topic_partition_list_t *l;
    rd_kafka_resp_err_t e;
    int i;

    if (!s->live)
        return sw__fail(err, SW_E_STATE,
                        "kafka: a replay commits nothing (subscribe for a "
                        "consumer group)");
    if (n <= 0)
        return SW_OK;
    l = rd_kafka_topic_partition_list_new(n);
    for (i = 0; i < n; i++)
        rd_kafka_topic_partition_list_add(l, s->topic, partitions[i])->offset =
            offsets[i];
    e = rd_kafka_commit(s->rk, l, 0);
    rd_kafka_topic_partition_list_destroy(l);
    /* a partition moved to another member since, or a rebalance is under
     * way: the checkpoint, not the group, decides where we resume */
    if (e && e != RD_KAFKA_RESP_ERR__NO_OFFSET &&
        e != RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS &&
        e != RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION &&
        e != RD_KAFKA_RESP_ERR_UNKNOWN_MEMBER_ID)
        return kerr(err, "commit", e);
    return SW_OK;
}

rd_kafka_t *
sw__kafka_source_handle(const sw_kafka_source *s)
{
    return s->rk;
}

const char *
sw__kafka_source_topic(const sw_kafka_source *s)
{
    return s->topic;
}

sw_rc
sw_kafka_group_committed(const char *bootstrap, const char *topic,
                         const char *group, const char *const *conf_kv,
                         const int32_t *partitions, int n, int64_t *offsets,
                         int64_t timeout_ms, sw_err *err)
{
    static const char *const defaults[] = {"log_level", "3", NULL};
    rd_kafka_topic_partition_list_t *l;
    rd_kafka_conf_t *conf;
    rd_kafka_resp_err_t e;
    rd_kafka_t *rk;
    char errstr[512];
    int i;

    if (topic == NULL || group == NULL || !group[0] || n < 0 ||
        (n > 0 && (partitions == NULL || offsets == NULL)))
        return sw__fail(err, SW_E_INVAL,
                        "kafka: committed offsets: expected a topic, a group "
                        "and partitions");
    conf = sw__kafka_conf("kafka committed offsets", bootstrap, defaults,
                          conf_kv, err);
    if (conf == NULL)
        return SW_E_INVAL;
    /* a consumer that never subscribes only asks the group coordinator
     * (OffsetFetch): it joins nothing and moves no partition */
    if (rd_kafka_conf_set(conf, "group.id", group, errstr, sizeof(errstr)) !=
            RD_KAFKA_CONF_OK ||
        (rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr,
                           sizeof(errstr))) == NULL) {
        rd_kafka_conf_destroy(conf);
        return sw__fail(err, SW_E_INVAL, "kafka committed offsets: %s", errstr);
    }
    l = rd_kafka_topic_partition_list_new(n > 0 ? n : 1);
    for (i = 0; i < n; i++)
        rd_kafka_topic_partition_list_add(l, topic, partitions[i]);
    e = rd_kafka_committed(rk, l, (int)timeout_ms);
    for (i = 0; !e && i < n; i++) {
        const rd_kafka_topic_partition_t *t = &l->elems[i];

        offsets[i] = t->err || t->offset < 0 ? -1 : t->offset;
    }
    rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_destroy(rk);
    if (e)
        return sw__fail(err, SW_E_SOURCE,
                        "kafka: committed offsets of group '%s' on %s: %s",
                        group, topic, rd_kafka_err2str(e));
    return SW_OK;
}

sw_rc
sw_kafka_source_commit(sw_kafka_source *s, sw_err *err)
{
    return sw_kafka_source_commit_offsets(s, s->part, s->next, s->n, err);
}

sw_rc
sw_kafka_source_subscribe(const char *bootstrap, const char *topic,
                          const char *group, int64_t wait_ms,
                          const char *const *conf_kv, sw_kafka_source **out,
                          sw_err *err)
{
    const char *const defaults[] = {"enable.auto.commit",
                                    "false",
                                    "enable.auto.offset.store",
                                    "false",
                                    "auto.offset.reset",
                                    "earliest",
                                    "log_level",
                                    "3",
                                    FETCH_DEFAULTS,
                                    "group.id",
                                    group,
                                    NULL};
    rd_kafka_topic_partition_list_t *l;
    rd_kafka_resp_err_t e;
    sw_kafka_source *s;
    sw_rc rc;

    *out = NULL;
    if (bootstrap == NULL || topic == NULL || strlen(topic) >= 256 ||
        group == NULL || !group[0])
        return sw__fail(err, SW_E_INVAL,
                        "kafka: subscribe needs a bootstrap, a topic and a "
                        "group id");
    s = sw__calloc(1, sizeof(*s));
    if (s == NULL)
        return sw__fail(err, SW_E_NOMEM, "kafka: out of memory");
    s->live = 1;
    snprintf(s->topic, sizeof(s->topic), "%s", topic);
    s->timeout_ms = wait_ms >= 0 ? wait_ms : 1000;
    s->outage_ms = 60000;
    if ((rc = new_consumer(s, bootstrap, defaults, conf_kv, err)) != SW_OK) {
        sw_kafka_source_free(s);
        return rc;
    }
    rd_kafka_poll_set_consumer(s->rk);
    l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, RD_KAFKA_PARTITION_UA);
    e = rd_kafka_subscribe(s->rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (e) {
        sw_kafka_source_free(s);
        return kerr(err, "subscribe", e);
    }
    *out = s;
    return SW_OK;
}

void
sw_kafka_source_batch(const sw_kafka_source *s, const int32_t **partition,
                      const int64_t **offset, const int64_t **timestamp_ms,
                      const unsigned char **bytes, const int64_t **key_at,
                      const int64_t **key_len, const int64_t **value_at,
                      const int64_t **value_len)
{
    *partition = s->b_part;
    *offset = s->b_off;
    *timestamp_ms = s->b_ts;
    *bytes = s->arena;
    *key_at = s->b_key;
    *key_len = s->b_key_len;
    *value_at = s->b_val;
    *value_len = s->b_val_len;
}

int64_t
sw_kafka_source_count(const sw_kafka_source *s)
{
    return s->count;
}

int
sw_kafka_source_slice(const sw_kafka_source *s, const int32_t **partition,
                      const int64_t **start, const int64_t **stop,
                      const int64_t **next)
{
    *partition = s->part;
    *start = s->start;
    *stop = s->stop;
    *next = s->next;
    return s->n;
}

#else /* no librdkafka */

sw_rc
sw_kafka_source_open(const char *bootstrap, const char *topic,
                     const int32_t *partitions, int n_partitions,
                     sw_point start_kind, int64_t start, sw_point stop_kind,
                     int64_t stop,
                     int64_t timeout_ms, const char *const *conf_kv,
                     sw_kafka_source **out, sw_err *err)
{
    (void)bootstrap, (void)topic, (void)partitions, (void)n_partitions;
    (void)conf_kv;
    (void)start_kind, (void)start, (void)stop_kind, (void)stop;
    (void)timeout_ms;
    *out = NULL;
    return sw__fail(err, SW_E_UNSUPPORTED,
                    "kafka: built without librdkafka (apt install "
                    "librdkafka-dev, then make)");
}

void
sw_kafka_source_free(sw_kafka_source *s)
{
    (void)s;
}

sw_rc
sw_kafka_source_next(sw_kafka_source *s, int64_t max, int64_t *count,
                     sw_err *err)
{
    (void)s, (void)max;
    *count = 0;
    return sw__fail(err, SW_E_UNSUPPORTED, "kafka: built without librdkafka");
}

void
sw_kafka_source_batch(const sw_kafka_source *s, const int32_t **partition,
                      const int64_t **offset, const int64_t **timestamp_ms,
                      const unsigned char **bytes, const int64_t **key_at,
                      const int64_t **key_len, const int64_t **value_at,
                      const int64_t **value_len)
{
    (void)s;
    *partition = NULL;
    *offset = *timestamp_ms = *key_at = *key_len = *value_at = *value_len =
        NULL;
    *bytes = NULL;
}

int64_t
sw_kafka_source_count(const sw_kafka_source *s)
{
    (void)s;
    return 0;
}

int
sw_kafka_source_slice(const sw_kafka_source *s, const int32_t **partition,
                      const int64_t **start, const int64_t **stop,
                      const int64_t **next)
{
    (void)s;
    *partition = NULL;
    *start = *stop = *next = NULL;
    return 0;
}

sw_rc
sw_kafka_source_subscribe(const char *bootstrap, const char *topic,
                          const char *group, int64_t wait_ms,
                          const char *const *conf_kv, sw_kafka_source **out,
                          sw_err *err)
{
    (void)bootstrap, (void)topic, (void)group, (void)wait_ms, (void)conf_kv;
    *out = NULL;
    return sw__fail(err, SW_E_UNSUPPORTED, "kafka: built without librdkafka");
}

sw_rc
sw_kafka_source_commit(sw_kafka_source *s, sw_err *err)
{
    (void)s;
    return sw__fail(err, SW_E_UNSUPPORTED, "kafka: built without librdkafka");
}

sw_rc
sw_kafka_source_start_at(sw_kafka_source *s, int32_t partition,
                         int64_t offset, sw_err *err)
{
    (void)s, (void)partition, (void)offset;
    return sw__fail(err, SW_E_UNSUPPORTED, "kafka: built without librdkafka");
}

void
sw_kafka_source_set_outage_limit(sw_kafka_source *s, int64_t ms)
{
    (void)s, (void)ms;
}

void
sw_kafka_source_on_rebalance(sw_kafka_source *s, sw_kafka_rebalance_cb cb,
                             void *opaque)
{
    (void)s, (void)cb, (void)opaque;
}

sw_rc
sw_kafka_source_partition_count(sw_kafka_source *s, int *n, sw_err *err)
{
    (void)s;
    *n = 0;
    return sw__fail(err, SW_E_UNSUPPORTED, "kafka: built without librdkafka");
}

int64_t
sw_kafka_source_lag(const sw_kafka_source *s, int32_t partition,
                    int64_t next_offset)
{
    (void)s, (void)partition, (void)next_offset;
    return -1;
}

sw_rc
sw_kafka_source_commit_offsets(sw_kafka_source *s, const int32_t *partitions,
                               const int64_t *offsets, int n, sw_err *err)
{
    (void)s, (void)partitions, (void)offsets, (void)n;
    return sw__fail(err, SW_E_UNSUPPORTED, "kafka: built without librdkafka");
}

sw_rc
sw_kafka_group_committed(const char *bootstrap, const char *topic,
                         const char *group, const char *const *conf_kv,
                         const int32_t *partitions, int n, int64_t *offsets,
                         int64_t timeout_ms, sw_err *err)
{
    (void)bootstrap, (void)topic, (void)group, (void)conf_kv;
    (void)partitions, (void)n, (void)offsets, (void)timeout_ms;
    return sw__fail(err, SW_E_UNSUPPORTED, "kafka: built without librdkafka");
}
#endif
