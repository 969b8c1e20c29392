/* SPDX-License-Identifier: MIT */
/* libFuzzer: any bytes as JSON event messages, cut at newlines into
 * several messages; every one is a row or a dead letter with a reason.
 * (Avro messages: fuzz_avro.c.) */
#include <stdlib.h>
#include <string.h>

#include "streamwise.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const schema =
    "{\"time\": \"ts\", \"time_unit\": \"ns\", \"fields\": {\"user\": "
    "\"str\", \"price\": \"float64\", \"n\": \"int32\", \"ok\": \"bool\", "
    "\"k\": \"int8\"}, \"defaults\": {\"k\": 3}}";
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sw_json_decoder *d = NULL;
    int64_t at[64], len[64], ts[64], n = 0, rows, start;
    size_t i;

    if (sw_json_decoder_new(schema, &d, NULL) != SW_OK)
        return 0;
    for (start = 0, i = 0; i <= size && n < 64; i++) {
        if (i == size || data[i] == '\n') {
            at[n] = start;
            len[n] = (int64_t)i - start;
            ts[n] = (int64_t)n * 1000;
            n++;
            start = (int64_t)i + 1;
        }
    }
    sw_json_decode(d, data, at, len, ts, n, &rows, NULL);
    sw_json_decoder_free(d);
    return 0;
}
