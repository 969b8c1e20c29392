/* SPDX-License-Identifier: MIT */
/*
 * sw_kafka_sink.c - produce to a Kafka topic, and count a message as
 * written only when the broker has acknowledged it. The producer is
 * idempotent (acks=all, retries without duplicates), so a broker hiccup
 * costs time, not data; a message that still fails is counted and its
 * error kept for sw_kafka_sink_flush to return.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sw_internal.h"

#ifdef SW_HAVE_RDKAFKA
#include "sw_kafka_conf.h"

struct sw_kafka_sink {
    rd_kafka_t *rk;
    rd_kafka_topic_t *rkt;
    sw_kafka_sink *owner; /* opened on another sink's producer, or NULL */
    int transactional;    /* its producer has a transactional.id */
    int fenced;           /* a newer producer took the transactional.id */
    char txn_id[256];
    char topic[256];
    int64_t sent, acked, failed;
    char first_error[256];
    /* per partition (up to SINK_PARTS), the offset after the last message
     * acknowledged: where a reader finds what was written after it */
    int64_t *acked_next;
};

#define SINK_PARTS 1024

/* Each message carries its sink, so sinks sharing a producer (one
 * transaction over several topics) count their own deliveries. */
static void
on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    sw_kafka_sink *s = m->_private != NULL ? m->_private : opaque;

    (void)rk;
    if (m->err) {
        if (s->failed++ == 0)
            snprintf(s->first_error, sizeof(s->first_error), "[%d] %s",
                     m->partition, rd_kafka_err2str(m->err));
    } else {
        s->acked++;
        if (s->acked_next != NULL && m->partition >= 0 &&
            m->partition < SINK_PARTS &&
            m->offset + 1 > s->acked_next[m->partition])
            s->acked_next[m->partition] = m->offset + 1;
    }
}

sw_rc
sw_kafka_partition(const void *key, size_t key_len, int32_t n, int32_t *out,
                   sw_err *err)
{
    if (n < 1 || (key == NULL && key_len > 0))
        return sw__fail(err, SW_E_INVAL,
                        "kafka: a partition of %d partitions: expected a "
                        "count >= 1 and a key",
                        (int)n);
    /* the topic and opaques are not read by the murmur2 partitioner */
    *out = rd_kafka_msg_partitioner_murmur2(NULL, key, key_len, n, NULL,
                                            NULL);
    return SW_OK;
}

/* A sink's own part, before or beside a producer: the topic's name and
 * its acknowledged offsets; NULL if out of memory. */
static sw_kafka_sink *
sink_new(const char *topic)
{
    sw_kafka_sink *s = sw__calloc(1, sizeof(*s));

    if (s != NULL)
        s->acked_next = sw__alloc_array(SINK_PARTS, sizeof(int64_t));
    if (s == NULL || s->acked_next == NULL) {
        sw__free(s);
        return NULL;
    }
    memset(s->acked_next, 0xff, SINK_PARTS * sizeof(int64_t)); /* -1 */
    snprintf(s->topic, sizeof(s->topic), "%s", topic);
    return s;
}

/* The topic handle up front, so its metadata is on the way before the
 * first message waits for it; on failure the sink is freed (its producer
 * with it when it owns one). */
static sw_rc
sink_topic(sw_kafka_sink *s, sw_err *err)
{
    sw_rc rc;

    s->rkt = rd_kafka_topic_new(s->rk, s->topic, NULL);
    if (s->rkt != NULL)
        return SW_OK;
    rc = sw__fail(err, SW_E_INVAL, "kafka sink: topic %s: %s", s->topic,
                  rd_kafka_err2str(rd_kafka_last_error()));
    if (s->owner == NULL)
        rd_kafka_destroy(s->rk);
    sw__free(s->acked_next);
    sw__free(s);
    return rc;
}

sw_rc
sw_kafka_sink_open(const char *bootstrap, const char *topic,
                   const char *const *conf_kv, sw_kafka_sink **out, sw_err *err)
{
    static const char *const defaults[] = {
        "enable.idempotence", "true", "acks", "all", "linger.ms", "5",
        "log_level", "3",
        /* not librdkafka's CRC32 default: a key must land where the
         * Java client, Kafka Streams and Flink put it */
        "partitioner", "murmur2_random", NULL};
    char errstr[512];
    rd_kafka_conf_t *conf;
    sw_kafka_sink *s;

    *out = NULL;
    if (bootstrap == NULL || topic == NULL || !topic[0] || strlen(topic) >= 256)
        return sw__fail(err, SW_E_INVAL, "kafka sink: bad arguments");
    if ((s = sink_new(topic)) == NULL)
        return sw__fail(err, SW_E_NOMEM, "kafka sink: out of memory");
    conf = sw__kafka_conf("kafka sink", bootstrap, defaults, conf_kv, err);
    if (conf == NULL) {
        sw__free(s->acked_next);
        sw__free(s);
        return SW_E_INVAL;
    }
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_opaque(conf, s);
    s->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (s->rk == NULL) {
        rd_kafka_conf_destroy(conf);
        sw__free(s->acked_next);
        sw__free(s);
        return sw__fail(err, SW_E_INVAL, "kafka sink: %s", errstr);
    }
    {
        char id[256];
        size_t n = sizeof(id);
        const rd_kafka_conf_t *c = rd_kafka_conf(s->rk);

        if (rd_kafka_conf_get(c, "transactional.id", id, &n) ==
                RD_KAFKA_CONF_OK &&
            id[0] != '\0') {
            s->transactional = 1;
            snprintf(s->txn_id, sizeof(s->txn_id), "%s", id);
        }
    }
    if (sink_topic(s, err) != SW_OK)
        return SW_E_INVAL;
    *out = s;
    return SW_OK;
}

sw_rc
sw_kafka_sink_send(sw_kafka_sink *s, const void *key, size_t key_len,
                   const void *value, size_t value_len, int32_t partition,
                   int64_t timestamp_ms, const char *const *headers,
                   sw_err *err)
{
    rd_kafka_headers_t *h = NULL;
    rd_kafka_resp_err_t e;
    int i;

    if (headers != NULL && headers[0] != NULL) {
        h = rd_kafka_headers_new(4);
        for (i = 0; headers[i] != NULL && headers[i + 1] != NULL; i += 2)
            rd_kafka_header_add(h, headers[i], -1, headers[i + 1], -1);
    }
    for (;;) {
        e = rd_kafka_producev(
            s->rk, RD_KAFKA_V_RKT(s->rkt),
            RD_KAFKA_V_PARTITION(partition < 0 ? RD_KAFKA_PARTITION_UA
                                               : partition),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_KEY(key, key_len),
            /* librdkafka copies (F_COPY) but declares the value mutable */
            RD_KAFKA_V_VALUE((void *)(uintptr_t)value, value_len),
            RD_KAFKA_V_TIMESTAMP(timestamp_ms), RD_KAFKA_V_HEADERS(h),
            RD_KAFKA_V_OPAQUE(s), RD_KAFKA_V_END);
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL)
            break;
        rd_kafka_poll(s->rk, 50); /* let deliveries drain the queue */
    }
    if (e) {
        rd_kafka_headers_destroy(h); /* not taken over on failure */
        return sw__fail(err, SW_E_IO, "kafka sink: %s: %s", s->topic,
                        rd_kafka_err2str(e));
    }
    s->sent++;
    rd_kafka_poll(s->rk, 0);
    return SW_OK;
}

sw_rc
sw_kafka_sink_flush(sw_kafka_sink *s, int64_t timeout_ms, sw_err *err)
{
    struct timespec t0, t1;
    int64_t waited = 0;

    /* poll until every message has its delivery report; rd_kafka_flush()
     * itself lingered a second on the mock cluster */
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (s->acked + s->failed < s->sent && waited < timeout_ms) {
        rd_kafka_poll(s->rk, 10);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        waited = (int64_t)(t1.tv_sec - t0.tv_sec) * 1000 +
                 (t1.tv_nsec - t0.tv_nsec) / 1000000;
    }
    if (s->acked + s->failed < s->sent)
        return sw__fail(err, SW_E_IO,
                        "kafka sink: %s: %lld of %lld messages not "
                        "acknowledged after %lld ms",
                        s->topic, (long long)(s->sent - s->acked - s->failed),
                        (long long)s->sent, (long long)timeout_ms);
    if (s->failed > 0)
        return sw__fail(err, SW_E_IO,
                        "kafka sink: %s: %lld messages failed (first: %s)",
                        s->topic, (long long)s->failed, s->first_error);
    return SW_OK;
}

void
sw_kafka_sink_get_stats(const sw_kafka_sink *s, sw_kafka_sink_stats *out)
{
    out->sent = s->sent;
    out->acked = s->acked;
    out->failed = s->failed;
}

void
sw_kafka_sink_free(sw_kafka_sink *s)
{
    if (s == NULL)
        return;
    rd_kafka_topic_destroy(s->rkt);
    if (s->owner == NULL)
        rd_kafka_destroy(s->rk);
    sw__free(s->acked_next);
    sw__free(s);
}

sw_rc
sw_kafka_sink_open_on(sw_kafka_sink *owner, const char *topic,
                      sw_kafka_sink **out, sw_err *err)
{
    sw_kafka_sink *s;

    *out = NULL;
    if (owner == NULL || owner->owner != NULL || topic == NULL || !topic[0] ||
        strlen(topic) >= 256)
        return sw__fail(err, SW_E_INVAL,
                        "kafka sink: open_on: expected a sink that owns its "
                        "producer and a topic name");
    if ((s = sink_new(topic)) == NULL)
        return sw__fail(err, SW_E_NOMEM, "kafka sink: out of memory");
    s->rk = owner->rk;
    s->owner = owner;
    s->transactional = owner->transactional;
    snprintf(s->txn_id, sizeof(s->txn_id), "%s", owner->txn_id);
    if (sink_topic(s, err) != SW_OK)
        return SW_E_INVAL;
    *out = s;
    return SW_OK;
}

/* A transaction API's error as ours: a newer producer with the same
 * transactional.id (a restarted runner) fences this one for good. */
static sw_rc
txn_fail(sw_kafka_sink *s, const char *what, rd_kafka_error_t *e,
         sw_err *err)
{
    sw_rc rc;

    if (rd_kafka_error_is_fatal(e) &&
        (rd_kafka_error_code(e) == RD_KAFKA_RESP_ERR__FENCED ||
         rd_kafka_error_code(e) == RD_KAFKA_RESP_ERR_PRODUCER_FENCED ||
         rd_kafka_error_code(e) == RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH)) {
        s->fenced = 1;
        rc = sw__fail(err, SW_E_STATE,
                      "kafka sink: %s: fenced: another producer took "
                      "transactional.id '%s' (a newer runner of this job); "
                      "this one must stop (%s)",
                      what, s->txn_id, rd_kafka_error_string(e));
    } else {
        rc = sw__fail(err, SW_E_IO,
                      "kafka sink: %s: transactional.id '%s': "
                      "%s%s",
                      what, s->txn_id, rd_kafka_error_string(e),
                      rd_kafka_error_txn_requires_abort(e)
                          ? " (the transaction was aborted)"
                          : "");
    }
    if (rd_kafka_error_txn_requires_abort(e)) {
        rd_kafka_error_t *a = rd_kafka_abort_transaction(s->rk, 30000);

        rd_kafka_error_destroy(a);
    }
    rd_kafka_error_destroy(e);
    return rc;
}

static sw_rc
need_txn(const sw_kafka_sink *s, const char *what, sw_err *err)
{
    if (s->owner != NULL || !s->transactional)
        return sw__fail(err, SW_E_STATE,
                        "kafka sink: %s: expected the sink that owns a "
                        "producer with a transactional.id",
                        what);
    return SW_OK;
}

sw_rc
sw_kafka_sink_init_transactions(sw_kafka_sink *s, int64_t timeout_ms,
                                sw_err *err)
{
    rd_kafka_error_t *e;

    if (need_txn(s, "init_transactions", err) != SW_OK)
        return err->rc;
    e = rd_kafka_init_transactions(s->rk, (int)timeout_ms);
    return e ? txn_fail(s, "init_transactions", e, err) : SW_OK;
}

sw_rc
sw_kafka_sink_begin(sw_kafka_sink *s, sw_err *err)
{
    rd_kafka_error_t *e;

    if (need_txn(s, "begin", err) != SW_OK)
        return err->rc;
    e = rd_kafka_begin_transaction(s->rk);
    return e ? txn_fail(s, "begin", e, err) : SW_OK;
}

sw_rc
sw_kafka_sink_commit(sw_kafka_sink *s, sw_kafka_source *src,
                     const int32_t *partitions, const int64_t *offsets, int n,
                     int64_t timeout_ms, sw_err *err)
{
    rd_kafka_error_t *e;

    if (need_txn(s, "commit", err) != SW_OK)
        return err->rc;
    if (src != NULL && n > 0) {
        rd_kafka_consumer_group_metadata_t *md =
            rd_kafka_consumer_group_metadata(sw__kafka_source_handle(src));
        rd_kafka_topic_partition_list_t *l;
        int i;

        if (md == NULL)
            return sw__fail(err, SW_E_STATE,
                            "kafka sink: commit: the source is not a member "
                            "of a consumer group");
        l = rd_kafka_topic_partition_list_new(n);
        for (i = 0; i < n; i++)
            rd_kafka_topic_partition_list_add(l, sw__kafka_source_topic(src),
                                              partitions[i])
                ->offset = offsets[i];
        e = rd_kafka_send_offsets_to_transaction(s->rk, l, md,
                                                 (int)timeout_ms);
        rd_kafka_topic_partition_list_destroy(l);
        rd_kafka_consumer_group_metadata_destroy(md);
        if (e)
            return txn_fail(s, "send_offsets_to_transaction", e, err);
    }
    e = rd_kafka_commit_transaction(s->rk, (int)timeout_ms);
    return e ? txn_fail(s, "commit_transaction", e, err) : SW_OK;
}

sw_rc
sw_kafka_sink_abort(sw_kafka_sink *s, int64_t timeout_ms, sw_err *err)
{
    rd_kafka_error_t *e;

    if (need_txn(s, "abort", err) != SW_OK)
        return err->rc;
    e = rd_kafka_abort_transaction(s->rk, (int)timeout_ms);
    return e ? txn_fail(s, "abort_transaction", e, err) : SW_OK;
}

int64_t
sw_kafka_sink_next_offset(const sw_kafka_sink *s, int32_t partition)
{
    if (s == NULL || s->acked_next == NULL || partition < 0 ||
        partition >= SINK_PARTS)
        return -1;
    return s->acked_next[partition];
}

#else

static sw_rc
unsupported(sw_err *err)
{
    return sw__fail(err, SW_E_UNSUPPORTED,
                    "kafka sink: built without librdkafka");
}

sw_rc
sw_kafka_partition(const void *key, size_t key_len, int32_t n, int32_t *out,
                   sw_err *err)
{
    (void)key, (void)key_len, (void)n;
    *out = -1;
    return sw__fail(err, SW_E_UNSUPPORTED, "kafka: built without librdkafka");
}

sw_rc
sw_kafka_sink_open(const char *bootstrap, const char *topic,
                   const char *const *conf_kv, sw_kafka_sink **out, sw_err *err)
{
    (void)bootstrap, (void)topic, (void)conf_kv;
    *out = NULL;
    return unsupported(err);
}

sw_rc
sw_kafka_sink_send(sw_kafka_sink *s, const void *key, size_t key_len,
                   const void *value, size_t value_len, int32_t partition,
                   int64_t timestamp_ms, const char *const *headers,
                   sw_err *err)
{
    (void)s, (void)key, (void)key_len, (void)value, (void)value_len;
    (void)partition, (void)timestamp_ms, (void)headers;
    return unsupported(err);
}

sw_rc
sw_kafka_sink_flush(sw_kafka_sink *s, int64_t timeout_ms, sw_err *err)
{
    (void)s, (void)timeout_ms;
    return unsupported(err);
}

void
sw_kafka_sink_get_stats(const sw_kafka_sink *s, sw_kafka_sink_stats *out)
{
    (void)s;
    memset(out, 0, sizeof(*out));
}

void
sw_kafka_sink_free(sw_kafka_sink *s)
{
    (void)s;
}

int64_t
sw_kafka_sink_next_offset(const sw_kafka_sink *s, int32_t partition)
{
    (void)s, (void)partition;
    return -1;
}

sw_rc
sw_kafka_sink_open_on(sw_kafka_sink *owner, const char *topic,
                      sw_kafka_sink **out, sw_err *err)
{
    (void)owner, (void)topic;
    *out = NULL;
    return unsupported(err);
}

sw_rc
sw_kafka_sink_init_transactions(sw_kafka_sink *s, int64_t timeout_ms,
                                sw_err *err)
{
    (void)s, (void)timeout_ms;
    return unsupported(err);
}

sw_rc
sw_kafka_sink_begin(sw_kafka_sink *s, sw_err *err)
{
    (void)s;
    return unsupported(err);
}

sw_rc
sw_kafka_sink_commit(sw_kafka_sink *s, sw_kafka_source *src,
                     const int32_t *partitions, const int64_t *offsets, int n,
                     int64_t timeout_ms, sw_err *err)
{
    (void)s, (void)src, (void)partitions, (void)offsets, (void)n;
    (void)timeout_ms;
    return unsupported(err);
}

sw_rc
sw_kafka_sink_abort(sw_kafka_sink *s, int64_t timeout_ms, sw_err *err)
{
    (void)s, (void)timeout_ms;
    return unsupported(err);
}
#endif
