/* SPDX-License-Identifier: MIT */
/*
 * test_kafka.c - the Kafka sink and source on the embedded broker
 * (librdkafka's mock cluster, loopback): messages sent by key come back
 * whole, in order per partition, with their keys; and both, opened and
 * used with their n-th allocation refused in turn, fail with SW_E_NOMEM
 * and leak nothing (the fault loop of test_oom.c). librdkafka's own
 * allocations are not ours to refuse: the loop covers streamwise's.
 */
#include <stdio.h>
#include <string.h>

#include "sw_internal.h"
#include "sw_test.h"

enum { N_MSG = 120, N_PART = 3 };

typedef struct kctx {
    const char *bootstrap;
    const char *topic;
} kctx;

static sw_rc
send_all(const char *bootstrap, const char *topic, sw_err *err)
{
    sw_kafka_sink *k = (sw_kafka_sink *)&k;
    sw_rc rc = sw_kafka_sink_open(bootstrap, topic, NULL, &k, err);
    int i;

    if (rc != SW_OK)
        return k == NULL ? rc : SW_E_INTERNAL;
    for (i = 0; rc == SW_OK && i < N_MSG; i++) {
        char key[16], val[32];

        snprintf(key, sizeof(key), "k%d", i % 7);
        snprintf(val, sizeof(val), "{\"i\": %d}", i);
        rc = sw_kafka_sink_send(k, key, strlen(key), val, strlen(val), -1, 0,
                                NULL, err);
    }
    if (rc == SW_OK)
        rc = sw_kafka_sink_flush(k, 10000, err);
    sw_kafka_sink_free(k);
    return rc;
}

/* Read the whole topic; *n the messages, each value checked against its
 * key (message i has key k(i % 7)) and increasing i per partition. */
static sw_rc
read_all(const char *bootstrap, const char *topic, int64_t *n, sw_err *err)
{
    sw_kafka_source *s = (sw_kafka_source *)&s;
    int last[N_PART] = {-1, -1, -1};
    sw_rc rc = sw_kafka_source_open(bootstrap, topic, NULL, 0, SW_POINT_EDGE,
                                    0, SW_POINT_EDGE, 0, 10000, NULL, &s,
                                    err);

    *n = 0;
    if (rc != SW_OK)
        return s == NULL ? rc : SW_E_INTERNAL;
    for (;;) {
        const int32_t *part;
        const int64_t *off, *ts, *ka, *kl, *va, *vl;
        const unsigned char *bytes;
        int64_t count = 0, m;

        if ((rc = sw_kafka_source_next(s, 50, &count, err)) != SW_OK ||
            count == 0)
            break;
        sw_kafka_source_batch(s, &part, &off, &ts, &bytes, &ka, &kl, &va,
                              &vl);
        for (m = 0; m < count; m++) {
            int i = -1;
            char key[16], val[32] = {0};

            /* values are not NUL-terminated */
            if (vl[m] > 0 && vl[m] < (int64_t)sizeof(val))
                memcpy(val, bytes + va[m], (size_t)vl[m]);
            if (sscanf(val, "{\"i\": %d}", &i) != 1 ||
                part[m] < 0 || part[m] >= N_PART || i <= last[part[m]]) {
                rc = SW_E_INTERNAL;
                break;
            }
            snprintf(key, sizeof(key), "k%d", i % 7);
            if (kl[m] != (int64_t)strlen(key) ||
                memcmp(bytes + ka[m], key, (size_t)kl[m]) != 0) {
                rc = SW_E_INTERNAL;
                break;
            }
            last[part[m]] = i;
        }
        *n += count;
        if (rc != SW_OK)
            break;
    }
    sw_kafka_source_free(s);
    return rc;
}

static sw_rc
op_read(void *p, sw_err *err)
{
    kctx *c = p;
    int64_t n = 0;
    sw_rc rc = read_all(c->bootstrap, c->topic, &n, err);

    return rc == SW_OK && n != N_MSG ? SW_E_INTERNAL : rc;
}

static sw_rc
op_send(void *p, sw_err *err)
{
    kctx *c = p;

    return send_all(c->bootstrap, c->topic, err);
}

void
test_kafka(void)
{
    sw_broker *b = NULL;
    sw_err err = {0};
    int64_t n = 0;
    kctx c;
    sw_rc rc;

    rc = sw_broker_new(1, &b, &err);
    if (rc == SW_E_UNSUPPORTED) { /* a build without librdkafka */
        fprintf(stderr, "kafka: not in this build (%s)\n", err.msg);
        return;
    }
    CHECK_RC(rc, SW_OK, &err);
    if (b == NULL)
        return;
    c.bootstrap = sw_broker_bootstrap(b);
    c.topic = "events";
    CHECK_RC(sw_broker_create_topic(b, "events", N_PART, &err), SW_OK, &err);
    CHECK_RC(sw_broker_create_topic(b, "more", N_PART, &err), SW_OK, &err);
    CHECK_RC(send_all(c.bootstrap, "events", &err), SW_OK, &err);
    CHECK_RC(read_all(c.bootstrap, "events", &n, &err), SW_OK, &err);
    CHECK(n == N_MSG);
    oom_loop("kafka source", op_read, &c);
    c.topic = "more";
    oom_loop("kafka sink", op_send, &c);
    sw_broker_free(b);
    CHECK(sw_alloc_live() == 0);
}
