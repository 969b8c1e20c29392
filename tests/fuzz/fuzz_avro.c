/* SPDX-License-Identifier: MIT */
/* libFuzzer: any bytes as one Avro event message in Confluent's framing,
 * schema id 1 (a writer with every Avro type) or 2 (the reader schema);
 * it is a row or a dead letter, and never costs more memory than its
 * bytes imply (libFuzzer's malloc limit and LeakSanitizer watch that).
 * tests/fuzz/seeds.py writes messages of both schemas: keep them alike. */
#include <stdlib.h>
#include <string.h>

#include "streamwise.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const events =
    "{\"time\": \"ts\", \"time_unit\": \"ms\", \"fields\": {\"user\": "
    "\"str\", \"amount\": \"float64\", \"n\": \"int32\", \"promo\": "
    "\"bool\"}}";

#define BASE                                                                   \
    "{\"name\": \"ts\", \"type\": \"long\"},"                                  \
    "{\"name\": \"user\", \"type\": \"string\"},"                              \
    "{\"name\": \"amount\", \"type\": \"double\"},"                            \
    "{\"name\": \"n\", \"type\": \"int\"},"                                    \
    "{\"name\": \"promo\", \"type\": [\"null\", \"boolean\"], "                \
    "\"default\": null}"

static const char *const reader =
    "{\"type\": \"record\", \"name\": \"E\", \"fields\": [" BASE "]}";

static const char *const rich =
    "{\"type\": \"record\", \"name\": \"E\", \"fields\": [" BASE ","
    "{\"name\": \"c\", \"type\": {\"type\": \"enum\", \"name\": \"C\", "
    "\"symbols\": [\"a\", \"b\", \"c\"]}},"
    "{\"name\": \"tags\", \"type\": {\"type\": \"array\", \"items\": "
    "\"string\"}},"
    "{\"name\": \"attrs\", \"type\": {\"type\": \"map\", \"values\": "
    "\"long\"}},"
    "{\"name\": \"h\", \"type\": {\"type\": \"fixed\", \"name\": \"H\", "
    "\"size\": 4}},"
    "{\"name\": \"f\", \"type\": \"float\"},"
    "{\"name\": \"raw\", \"type\": \"bytes\"},"
    "{\"name\": \"sub\", \"type\": {\"type\": \"record\", \"name\": \"S\", "
    "\"fields\": [{\"name\": \"x\", \"type\": [\"null\", \"int\", "
    "\"string\"]}]}}]}";

/* One decoder for all inputs, as a runner keeps one (its values are
 * reused from message to message); freed before LeakSanitizer looks. */
static sw_json_decoder *d;

static void
done(void)
{
    sw_json_decoder_free(d);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int64_t at = 0, len = (int64_t)size, ts = 0, rows;

    if (d == NULL) {
        if (sw_json_decoder_new(events, &d, NULL) != SW_OK ||
            sw_json_decoder_set_avro(d, reader, SW_FRAMING_CONFLUENT,
                                     NULL) != SW_OK ||
            sw_json_decoder_add_avro_writer(d, 1, rich, NULL) != SW_OK ||
            sw_json_decoder_add_avro_writer(d, 2, reader, NULL) != SW_OK ||
            atexit(done) != 0)
            abort();
    }
    sw_json_decode(d, data, &at, &len, &ts, 1, &rows, NULL);
    return 0;
}
