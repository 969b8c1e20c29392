/* SPDX-License-Identifier: MIT */
/* libFuzzer: any bytes as sw-serve's input rows. The first byte picks a
 * model and a format (CSV, with or without a header of names; LIBSVM from
 * 1 or from 0; ALS 'user,item' rows or user ids for --recommend); the
 * rest is the stream, read through a pipe as sw-serve reads stdin. Every
 * line is answered or told bad; the stream itself fails only for a
 * header the model cannot take. The models are the seed models
 * tests/fuzz/seeds.py wrote ($SW_FUZZ_MODELS, default
 * build/fuzz/seeds/model). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "streamwise.h"
#include "sw_rows.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { PA, SCW, GBDT, ALS, NAMED, N_MODELS };
static const char *const names[N_MODELS] = {"pa", "scw", "gbdt", "als",
                                            "named"};
static sw_model *models[N_MODELS];
static FILE *sink;

static void
done(void)
{
    int i;

    for (i = 0; i < N_MODELS; i++)
        sw_model_free(models[i]);
    if (sink != NULL)
        fclose(sink);
}

static void
init(void)
{
    const char *dir = getenv("SW_FUZZ_MODELS");
    char path[4096];
    sw_err err = {0};
    int i;

    if (dir == NULL)
        dir = "build/fuzz/seeds/model";
    for (i = 0; i < N_MODELS; i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        if (sw_model_load(path, &models[i], &err) != SW_OK) {
            fprintf(stderr, "fuzz_rows: %s (make fuzz-build writes it)\n",
                    err.msg);
            abort();
        }
    }
    if ((sink = fopen("/dev/null", "w")) == NULL || atexit(done) != 0)
        abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct {
        int model, fmt, zero_based, recommend;
    } modes[] = {
        {PA, SW_ROWS_CSV, 0, 0},    {SCW, SW_ROWS_LIBSVM, 0, 0},
        {PA, SW_ROWS_LIBSVM, 1, 0}, {GBDT, SW_ROWS_CSV, 0, 0},
        {GBDT, SW_ROWS_LIBSVM, 0, 0}, {ALS, SW_ROWS_CSV, 0, 0},
        {ALS, SW_ROWS_LIBSVM, 0, 0}, {ALS, 0, 0, 3},
        {NAMED, SW_ROWS_CSV, 0, 0},
    };
    int fds[2], k;
    long long n_bad = 0;
    sw_err err = {0};

    if (models[0] == NULL)
        init();
    /* a pipe holds 64 KiB: longer inputs would block the write */
    if (size < 1 || size > 60000)
        return 0;
    k = data[0] % (int)(sizeof(modes) / sizeof(modes[0]));
    if (pipe(fds) != 0)
        abort();
    if (write(fds[1], data + 1, size - 1) != (ssize_t)(size - 1))
        abort();
    close(fds[1]);
    if (modes[k].recommend)
        sw__rows_recommend(models[modes[k].model], modes[k].recommend, fds[0],
                           sink, sink, &n_bad, &err);
    else
        sw__rows_score(models[modes[k].model], modes[k].fmt,
                       modes[k].zero_based, fds[0], sink, sink, &n_bad, &err);
    close(fds[0]);
    return 0;
}
