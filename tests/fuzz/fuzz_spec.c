/* SPDX-License-Identifier: MIT */
/* libFuzzer: any text as a pipeline spec; one that compiles then takes a
 * small batch of events, so that what the compiler accepts is run. */
#include <stdlib.h>
#include <string.h>

#include "streamwise.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const int64_t ts[4] = {0, 1000, 5000000, 4000};
    static const char text[4][4] = {"a", "b", "a", "c"};
    static const double num[4] = {1.5, -2, 0, 1e6};
    static const int64_t ints[4] = {1, 2, 3, -4};
    char *spec = malloc(size + 1);
    sw_pipeline *p = NULL;
    sw_result *r = NULL;
    sw_column cols[6];
    sw_batch b;

    if (spec == NULL)
        return 0;
    memcpy(spec, data, size);
    spec[size] = '\0';
    if (sw_pipeline_new(spec, &p, NULL) == SW_OK &&
        sw_result_new(&r, NULL) == SW_OK) {
        /* the usual names of the seeds, in every type a field may have */
        const char *names[6] = {"ts", "user", "price", "item", "click",
                                "key"};
        int i;

        for (i = 0; i < 6; i++) {
            cols[i].name = names[i];
            cols[i].bad = NULL;
            cols[i].width = 0;
        }
        cols[0].type = SW_COL_I64, cols[0].data = ts;
        cols[1].type = SW_COL_STR, cols[1].data = text, cols[1].width = 4;
        cols[2].type = SW_COL_F64, cols[2].data = num;
        cols[3].type = SW_COL_I64, cols[3].data = ints;
        cols[4].type = SW_COL_I64, cols[4].data = ints;
        cols[5].type = SW_COL_STR, cols[5].data = text, cols[5].width = 4;
        b.n_rows = 4;
        b.n_columns = 6;
        b.columns = cols;
        sw_pipeline_set_secret(p, "0123456789abcdef", 16, NULL);
        if (sw_pipeline_push(p, &b, r, NULL) == SW_OK)
            sw_pipeline_flush(p, r, NULL);
    }
    sw_result_free(r);
    sw_pipeline_free(p);
    free(spec);
    return 0;
}
