/* SPDX-License-Identifier: MIT */
/* libFuzzer: any bytes as a pipeline checkpoint (sw_pipeline_restore
 * reads a path); a checkpoint that restores then takes events. The
 * checksum is recomputed over the fuzzed bytes, so that the fuzzer
 * reaches past it into the content, as a crafted file would. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "streamwise.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char path[64];
    static const int64_t ts[3] = {10, 3000000, 20};
    static const char text[3][4] = {"a", "b", "a"};
    static const double num[3] = {1, 2, 3};
    sw_column cols[4] = {{"ts", SW_COL_I64, ts, 0, NULL},
                         {"user", SW_COL_STR, text, 4, NULL},
                         {"price", SW_COL_F64, num, 0, NULL},
                         {"item", SW_COL_I64, ts, 0, NULL}};
    sw_batch b = {3, 4, cols};
    sw_pipeline *p = NULL;
    sw_result *r = NULL;
    unsigned char sum[8];
    uint64_t h;
    FILE *fp;
    int i;

    if (size < 8)
        return 0;
    if (path[0] == '\0')
        snprintf(path, sizeof(path), "/tmp/sw-fuzz-ckpt.%ld", (long)getpid());
    h = XXH3_64bits(data, size - 8);
    for (i = 0; i < 8; i++)
        sum[i] = (unsigned char)(h >> (8 * i));
    fp = fopen(path, "wb");
    if (fp == NULL)
        return 0;
    fwrite(data, 1, size - 8, fp);
    fwrite(sum, 1, 8, fp);
    fclose(fp);
    if (sw_pipeline_restore(path, &p, NULL) == SW_OK &&
        sw_result_new(&r, NULL) == SW_OK) {
        sw_pipeline_set_secret(p, "0123456789abcdef", 16, NULL);
        if (sw_pipeline_push(p, &b, r, NULL) == SW_OK)
            sw_pipeline_flush(p, r, NULL);
    }
    sw_result_free(r);
    sw_pipeline_free(p);
    unlink(path);
    return 0;
}
