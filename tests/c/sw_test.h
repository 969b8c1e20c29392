/* SPDX-License-Identifier: MIT */
/*
 * sw_test.h - the whole C test framework: two counters and a few macros
 * that report file:line on failure and carry on.
 */
#ifndef SW_TEST_H
#define SW_TEST_H

#include <math.h>
#include <stdio.h>

#include "streamwise.h"

extern int sw_test_passed, sw_test_failed;

#define CHECK(cond)                                                            \
    do {                                                                       \
        if (cond) {                                                            \
            sw_test_passed++;                                                  \
        } else {                                                               \
            sw_test_failed++;                                                  \
            fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__,   \
                    #cond);                                                    \
        }                                                                      \
    } while (0)

/* rc must equal want; on a mismatch print the error record. */
#define CHECK_RC(rc_expr, want, errp)                                          \
    do {                                                                       \
        sw_rc rc_ = (rc_expr);                                                 \
        if (rc_ == (want)) {                                                   \
            sw_test_passed++;                                                  \
        } else {                                                               \
            sw_test_failed++;                                                  \
            fprintf(stderr, "%s:%d: %s returned %s, expected %s: %s\n",        \
                    __FILE__, __LINE__, #rc_expr, sw_rc_name(rc_),             \
                    sw_rc_name(want), (errp)->msg);                            \
        }                                                                      \
    } while (0)

#define CHECK_NEAR(a, b, tol)                                                  \
    do {                                                                       \
        double a_ = (a), b_ = (b);                                             \
        if (fabs(a_ - b_) <= (tol) * (1.0 + fabs(b_))) {                       \
            sw_test_passed++;                                                  \
        } else {                                                               \
            sw_test_failed++;                                                  \
            fprintf(stderr, "%s:%d: %s = %.17g, expected %.17g\n", __FILE__,   \
                    __LINE__, #a, a_, b_);                                     \
        }                                                                      \
    } while (0)

/* The suites, one per core module. */
void test_conf(void);
void test_linear(void);
void test_model_io(void);
void test_oom(void);
void test_als(void);
void test_pipeline(void);
void test_hdf5(void);
void test_thread(void);
void test_coll(void);
void test_kafka(void);
void test_kafka_txn(void);
void test_null_destructors(void);
void test_bundle(void);
void test_crafted_checkpoints(void);
void test_avro(void);

/* Run op with the n-th allocation failing for n = 0, 1, ... until it
 * succeeds: each failure must be SW_E_NOMEM and leak nothing
 * (test_oom.c). */
typedef sw_rc (*op_fn)(void *ctx, sw_err *err);
void oom_loop(const char *what, op_fn op, void *ctx);

/* The model cases every OOM suite runs; their ctx starts with this. */
typedef struct model_case {
    sw_model *m;
    const char *path;
} model_case;
sw_rc op_model_save(void *ctx, sw_err *err);
sw_rc op_model_load(void *ctx, sw_err *err);
sw_rc op_model_dup(void *ctx, sw_err *err);
sw_rc op_model_buffer(void *ctx, sw_err *err); /* save_buffer, load_buffer */

/* Helpers shared by the suites (test_main.c). */
sw_rows dense_view(const double *x, int64_t n_rows, int64_t n_cols);
sw_model *make_linear(const char *const *kv, int64_t n_features,
                      int64_t n_classes);

#endif
