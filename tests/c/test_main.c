/* SPDX-License-Identifier: MIT */
/*
 * test_main.c - runs every suite and prints the closing line CI reads.
 * Run from tests/c/ (the Makefile does), so fixtures resolve as data/...
 */
#include <stdlib.h>
#include <string.h>

#include "sw_test.h"

int sw_test_passed, sw_test_failed;

sw_rows
dense_view(const double *x, int64_t n_rows, int64_t n_cols)
{
    sw_rows v;

    memset(&v, 0, sizeof(v));
    v.layout = SW_DENSE;
    v.dtype = SW_F64;
    v.n_rows = n_rows;
    v.n_cols = n_cols;
    v.row_stride = n_cols;
    v.data = x;
    return v;
}

/* A linear learner from key=value pairs (NULL-terminated); aborts the
 * test run if the settings are rejected, since every caller expects them
 * to be valid. */
sw_model *
make_linear(const char *const *kv, int64_t n_features, int64_t n_classes)
{
    sw_conf *conf = NULL;
    sw_model *m = NULL;
    sw_err err = {0};

    if (sw_conf_new(&conf, &err) != SW_OK)
        goto fail;
    for (; kv != NULL && kv[0] != NULL; kv += 2) {
        if (sw_conf_set(conf, kv[0], kv[1], &err) != SW_OK)
            goto fail;
    }
    if (sw_linear_new(conf, n_features, n_classes, &m, &err) != SW_OK)
        goto fail;
    sw_conf_free(conf);
    return m;
fail:
    fprintf(stderr, "make_linear: %s\n", err.msg);
    exit(2);
}

static const struct {
    const char *name;
    void (*run)(void);
} suites[] = {
    {"conf", test_conf},
    {"linear", test_linear},
    {"model_io", test_model_io},
    {"oom", test_oom},
    {"als", test_als},
    {"pipeline", test_pipeline},
    {"hdf5", test_hdf5},
    {"bundle", test_bundle},
    {"crafted", test_crafted_checkpoints},
    {"avro", test_avro},
    {"coll", test_coll},
    {"thread", test_thread},
    {"kafka", test_kafka},
    {"kafka_txn", test_kafka_txn},
    {"null_free", test_null_destructors},
};

int
main(int argc, char **argv)
{
    size_t i;

    for (i = 0; i < sizeof(suites) / sizeof(suites[0]); i++) {
        int before = sw_test_failed;

        if (argc > 1 && strcmp(argv[1], suites[i].name) != 0)
            continue;
        suites[i].run();
        fprintf(stderr, "suite %-9s %s\n", suites[i].name,
                sw_test_failed == before ? "ok" : "FAILED");
    }
    printf("ctests: %d passed, %d failed\n", sw_test_passed, sw_test_failed);
    return sw_test_failed == 0 ? 0 : 1;
}
