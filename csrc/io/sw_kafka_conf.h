/* SPDX-License-Identifier: MIT */
/*
 * sw_kafka_conf.h - the one way the io adapters configure librdkafka:
 * bootstrap servers, then the adapter's defaults, then the caller's
 * properties (which win), each pair checked with librdkafka's own message.
 */
#ifndef SW_KAFKA_CONF_H
#define SW_KAFKA_CONF_H

#include <librdkafka/rdkafka.h>

#include "sw_internal.h"

/* A new configuration, or NULL with err filled ("<who>: config <name>:
 * <why>"). defaults and user: NULL or NULL-terminated name/value arrays. */
rd_kafka_conf_t *sw__kafka_conf(const char *who, const char *bootstrap,
                                const char *const *defaults,
                                const char *const *user, sw_err *err);

/* A source's consumer and topic, for the sink that commits its offsets
 * in a transaction (send_offsets_to_transaction needs the group's
 * metadata). */
rd_kafka_t *sw__kafka_source_handle(const sw_kafka_source *s);
const char *sw__kafka_source_topic(const sw_kafka_source *s);

#endif
