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
    char topic[256];
    int64_t sent, acked, failed;
    char first_error[256];
    /* per partition (up to SINK_PARTS), the offset after the last message
     * acknowledged: where a reader finds what was written after it */
    int64_t *acked_next;
};

#define SINK_PARTS 1024

static void
on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    sw_kafka_sink *s = opaque;

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
        return sw_fail(err, SW_E_INVAL,
                       "kafka: a partition of %d partitions: expected a "
                       "count >= 1 and a key",
                       (int)n);
    /* the topic and opaques are not read by the murmur2 partitioner */
    *out = rd_kafka_msg_partitioner_murmur2(NULL, key, key_len, n, NULL,
                                            NULL);
    return SW_OK;
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
        return sw_fail(err, SW_E_INVAL, "kafka sink: bad arguments");
    s = sw_calloc(1, sizeof(*s));
    if (s != NULL)
        s->acked_next = sw_alloc_array(SINK_PARTS, sizeof(int64_t));
    if (s == NULL || s->acked_next == NULL) {
        sw_free(s);
        return sw_fail(err, SW_E_NOMEM, "kafka sink: out of memory");
    }
    memset(s->acked_next, 0xff, SINK_PARTS * sizeof(int64_t)); /* -1 */
    snprintf(s->topic, sizeof(s->topic), "%s", topic);
    conf = sw_kafka_conf("kafka sink", bootstrap, defaults, conf_kv, err);
    if (conf == NULL) {
        sw_free(s->acked_next);
        sw_free(s);
        return SW_E_INVAL;
    }
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_opaque(conf, s);
    s->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (s->rk == NULL) {
        rd_kafka_conf_destroy(conf);
        sw_free(s->acked_next);
        sw_free(s);
        return sw_fail(err, SW_E_INVAL, "kafka sink: %s", errstr);
    }
    /* the topic handle up front, so its metadata is on the way before
     * the first message waits for it */
    s->rkt = rd_kafka_topic_new(s->rk, topic, NULL);
    if (s->rkt == NULL) {
        rd_kafka_destroy(s->rk);
        sw_free(s->acked_next);
        sw_free(s);
        return sw_fail(err, SW_E_INVAL, "kafka sink: topic %s: %s", topic,
                       rd_kafka_err2str(rd_kafka_last_error()));
    }
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
            RD_KAFKA_V_END);
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL)
            break;
        rd_kafka_poll(s->rk, 50); /* let deliveries drain the queue */
    }
    if (e) {
        rd_kafka_headers_destroy(h); /* not taken over on failure */
        return sw_fail(err, SW_E_IO, "kafka sink: %s: %s", s->topic,
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
        return sw_fail(err, SW_E_IO,
                       "kafka sink: %s: %lld of %lld messages not "
                       "acknowledged after %lld ms",
                       s->topic, (long long)(s->sent - s->acked - s->failed),
                       (long long)s->sent, (long long)timeout_ms);
    if (s->failed > 0)
        return sw_fail(err, SW_E_IO,
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
    rd_kafka_destroy(s->rk);
    sw_free(s->acked_next);
    sw_free(s);
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

sw_rc
sw_kafka_partition(const void *key, size_t key_len, int32_t n, int32_t *out,
                   sw_err *err)
{
    (void)key, (void)key_len, (void)n;
    *out = -1;
    return sw_fail(err, SW_E_UNSUPPORTED, "kafka: built without librdkafka");
}

sw_rc
sw_kafka_sink_open(const char *bootstrap, const char *topic,
                   const char *const *conf_kv, sw_kafka_sink **out, sw_err *err)
{
    (void)bootstrap, (void)topic, (void)conf_kv;
    *out = NULL;
    return sw_fail(err, SW_E_UNSUPPORTED,
                   "kafka sink: built without librdkafka");
}

sw_rc
sw_kafka_sink_send(sw_kafka_sink *s, const void *key, size_t key_len,
                   const void *value, size_t value_len, int32_t partition,
                   int64_t timestamp_ms, const char *const *headers,
                   sw_err *err)
{
    (void)s, (void)key, (void)key_len, (void)value, (void)value_len;
    (void)partition, (void)timestamp_ms, (void)headers;
    return sw_fail(err, SW_E_UNSUPPORTED,
                   "kafka sink: built without librdkafka");
}

sw_rc
sw_kafka_sink_flush(sw_kafka_sink *s, int64_t timeout_ms, sw_err *err)
{
    (void)s, (void)timeout_ms;
    return sw_fail(err, SW_E_UNSUPPORTED,
                   "kafka sink: built without librdkafka");
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
#endif
