/* SPDX-License-Identifier: MIT */
/*
 * sw_broker.c - the embedded Kafka broker: librdkafka's mock cluster
 * (rdkafka_mock.h), a real Kafka protocol implementation listening on
 * loopback, behind a streamwise handle. It keeps everything in memory,
 * holds about 5 MiB or 100k message sets per partition, has no real
 * transactions and answers -1 to offsets_for_times; it is for notebooks,
 * tests and demos, and a real cluster is one bootstrap.servers away.
 *
 * The mock cluster lives on a producer handle it needs for bookkeeping;
 * that handle is never used to produce. Built into libswio.a; without
 * librdkafka every entry point returns SW_E_UNSUPPORTED.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sw_internal.h"

#ifdef SW_HAVE_RDKAFKA
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

struct sw_broker {
    rd_kafka_t *rk;
    rd_kafka_mock_cluster_t *mc;
    int n_brokers;
};

/* Kafka protocol request names and their ApiKey numbers. */
static const struct {
    const char *name;
    int16_t key;
} requests[] = {
    {"Produce", 0},          {"Fetch", 1},           {"ListOffsets", 2},
    {"Metadata", 3},         {"OffsetCommit", 8},    {"OffsetFetch", 9},
    {"FindCoordinator", 10}, {"JoinGroup", 11},      {"Heartbeat", 12},
    {"LeaveGroup", 13},      {"SyncGroup", 14},      {"ApiVersions", 18},
    {"CreateTopics", 19},    {"InitProducerId", 22},
};

sw_rc
sw_broker_new(int n_brokers, sw_broker **out, sw_err *err)
{
    char errstr[512];
    rd_kafka_conf_t *conf;
    sw_broker *b;

    *out = NULL;
    if (n_brokers < 1 || n_brokers > 16)
        return sw__fail(err, SW_E_INVAL, "broker: %d brokers (1..16)",
                        n_brokers);
    b = sw__calloc(1, sizeof(*b));
    if (b == NULL)
        return sw__fail(err, SW_E_NOMEM, "broker: out of memory");
    conf = rd_kafka_conf_new();
    /* the bookkeeping handle talks to nobody: keep it quiet */
    if (rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof(errstr)) !=
        RD_KAFKA_CONF_OK) {
        rd_kafka_conf_destroy(conf);
        sw__free(b);
        return sw__fail(err, SW_E_INTERNAL, "broker: %s", errstr);
    }
    b->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (b->rk == NULL) {
        rd_kafka_conf_destroy(conf);
        sw__free(b);
        return sw__fail(err, SW_E_INTERNAL, "broker: %s", errstr);
    }
    b->mc = rd_kafka_mock_cluster_new(b->rk, n_brokers);
    if (b->mc == NULL) {
        rd_kafka_destroy(b->rk);
        sw__free(b);
        return sw__fail(err, SW_E_IO,
                        "broker: the mock cluster could not listen on "
                        "loopback");
    }
    b->n_brokers = n_brokers;
    *out = b;
    return SW_OK;
}

void
sw_broker_free(sw_broker *b)
{
    if (b == NULL)
        return;
    rd_kafka_mock_cluster_destroy(b->mc);
    rd_kafka_destroy(b->rk);
    sw__free(b);
}

const char *
sw_broker_bootstrap(const sw_broker *b)
{
    return rd_kafka_mock_cluster_bootstraps(b->mc);
}

static sw_rc
kafka_fail(sw_err *err, const char *what, rd_kafka_resp_err_t e)
{
    return sw__fail(err, SW_E_INVAL, "broker: %s: %s (%s)", what,
                    rd_kafka_err2str(e), rd_kafka_err2name(e));
}

sw_rc
sw_broker_create_topic(sw_broker *b, const char *topic, int partitions,
                       sw_err *err)
{
    rd_kafka_resp_err_t e;

    if (topic == NULL || topic[0] == '\0' || partitions < 1 ||
        partitions > 10000)
        return sw__fail(err, SW_E_INVAL,
                        "broker: a topic needs a name and 1..10000 "
                        "partitions");
    e = rd_kafka_mock_topic_create(b->mc, topic, partitions,
                                   b->n_brokers < 3 ? b->n_brokers : 3);
    return e ? kafka_fail(err, topic, e) : SW_OK;
}

sw_rc
sw_broker_set_down(sw_broker *b, int broker_id, int down, sw_err *err)
{
    rd_kafka_resp_err_t e;

    if (broker_id != -1 && (broker_id < 1 || broker_id > b->n_brokers))
        return sw__fail(err, SW_E_INVAL,
                        "broker: no broker %d (1..%d, -1: all)", broker_id,
                        b->n_brokers);
    e = down ? rd_kafka_mock_broker_set_down(b->mc, broker_id)
             : rd_kafka_mock_broker_set_up(b->mc, broker_id);
    return e ? kafka_fail(err, down ? "down" : "up", e) : SW_OK;
}

/* The error code named like librdkafka names it ("NOT_LEADER_FOR_PARTITION",
 * "_TRANSPORT"), or a number. */
static int
error_code(const char *name, rd_kafka_resp_err_t *out)
{
    const struct rd_kafka_err_desc *d;
    size_t n, i;
    char *end;
    long v = strtol(name, &end, 10);

    if (*name != '\0' && *end == '\0') {
        *out = (rd_kafka_resp_err_t)v;
        return 0;
    }
    rd_kafka_get_err_descs(&d, &n);
    for (i = 0; i < n; i++) {
        if (d[i].name != NULL && !strcmp(d[i].name, name)) {
            *out = d[i].code;
            return 0;
        }
    }
    return -1;
}

sw_rc
sw_broker_push_errors(sw_broker *b, const char *request, int count,
                      const char *error, sw_err *err)
{
    rd_kafka_resp_err_t codes[64], code;
    size_t k;
    int i;

    for (k = 0; k < sizeof(requests) / sizeof(requests[0]) &&
                strcmp(requests[k].name, request);
         k++)
        ;
    if (k == sizeof(requests) / sizeof(requests[0]))
        return sw__fail(err, SW_E_INVAL,
                        "broker: unknown request '%s' (Produce, Fetch, "
                        "ListOffsets, Metadata, ...)",
                        request);
    if (count < 0 || count > 64)
        return sw__fail(err, SW_E_INVAL, "broker: %d errors (0..64)", count);
    if (error_code(error, &code) != 0)
        return sw__fail(err, SW_E_INVAL,
                        "broker: unknown error '%s' (a librdkafka error name "
                        "such as NOT_LEADER_FOR_PARTITION or _TRANSPORT)",
                        error);
    if (count == 0) {
        rd_kafka_mock_clear_request_errors(b->mc, requests[k].key);
        return SW_OK;
    }
    for (i = 0; i < count; i++)
        codes[i] = code;
    rd_kafka_mock_push_request_errors_array(b->mc, requests[k].key,
                                            (size_t)count, codes);
    return SW_OK;
}

#else /* no librdkafka */

static sw_rc
missing(sw_err *err)
{
    return sw__fail(err, SW_E_UNSUPPORTED,
                    "broker: built without librdkafka (apt install "
                    "librdkafka-dev, then make)");
}

sw_rc
sw_broker_new(int n_brokers, sw_broker **out, sw_err *err)
{
    (void)n_brokers;
    *out = NULL;
    return missing(err);
}

void
sw_broker_free(sw_broker *b)
{
    (void)b;
}

const char *
sw_broker_bootstrap(const sw_broker *b)
{
    (void)b;
    return "";
}

sw_rc
sw_broker_create_topic(sw_broker *b, const char *topic, int partitions,
                       sw_err *err)
{
    (void)b, (void)topic, (void)partitions;
    return missing(err);
}

sw_rc
sw_broker_set_down(sw_broker *b, int broker_id, int down, sw_err *err)
{
    (void)b, (void)broker_id, (void)down;
    return missing(err);
}

sw_rc
sw_broker_push_errors(sw_broker *b, const char *request, int count,
                      const char *error, sw_err *err)
{
    (void)b, (void)request, (void)count, (void)error;
    return missing(err);
}
#endif
