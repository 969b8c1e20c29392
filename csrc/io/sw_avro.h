/* SPDX-License-Identifier: MIT */
/*
 * sw_avro.h - Avro event messages for the event decoder
 * (sw_json_decode.c): a message becomes the same JSON object a JSON event
 * would be, so defaults, types and dead letters follow one set of rules.
 */
#ifndef SW_AVRO_H
#define SW_AVRO_H

#include <jansson.h>

#include "sw_internal.h"

typedef struct sw_avro sw_avro;

/* framing 0: each message is one Avro binary record; 1: Confluent's wire
 * format (byte 0, a 4-byte big-endian schema id, the record). */
sw_rc sw__avro_new(const char *reader_schema_json, int framing, sw_avro **out,
                   sw_err *err);
/* The schema the messages were written with (id: Confluent's schema id; -1
 * for unframed messages), resolved against the reader schema: fields the
 * writer lacks take the reader schema's defaults. Without one, unframed
 * messages are read with the reader schema itself. */
sw_rc sw__avro_add_writer(sw_avro *a, int32_t id,
                          const char *writer_schema_json, sw_err *err);
/* The record as a JSON object (new reference), or NULL and *why: the
 * sw_dead_reasons index (not_avro, unknown_schema). */
json_t *sw__avro_to_json(sw_avro *a, const unsigned char *p, size_t n,
                         int *why);
void sw__avro_free(sw_avro *a);

enum { SW_DEAD_NOT_AVRO = 4, SW_DEAD_UNKNOWN_SCHEMA = 5 };

#endif
