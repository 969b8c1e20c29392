/* SPDX-License-Identifier: MIT */
/*
 * streamwise.h - the public C API of streamwise, and its whole contract.
 *
 * Anything not declared here is private. Every fallible function returns an
 * sw_rc and takes a caller-owned sw_err *err last (it may be NULL); results
 * come back through OUT parameters, which are cleared first so that a failed
 * call never leaves garbage behind. Inputs are borrowed for the duration of
 * the call and never retained; outputs are caller-allocated. A handle is not
 * internally locked: const calls may run concurrently on one handle, mutating
 * calls need exclusive access. Every destructor (sw_*_free) takes NULL and
 * does nothing.
 */
#ifndef STREAMWISE_H
#define STREAMWISE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SW_VERSION_MAJOR 0
#define SW_VERSION_MINOR 1
#define SW_VERSION_PATCH 0
/* 0xMMmmpp. Compare with sw_version() to catch a header/library mismatch. */
#define SW_VERSION                                                             \
    ((SW_VERSION_MAJOR << 16) | (SW_VERSION_MINOR << 8) | SW_VERSION_PATCH)

/* The .swm model format this build writes; it reads any 1.x file. */
#define SW_FORMAT_MAJOR 1
#define SW_FORMAT_MINOR 0

/* Result codes. Values are frozen: new codes are appended, never renumbered. */
typedef enum sw_rc {
    SW_OK = 0,
    SW_E_NOMEM = 1,       /* an allocation failed */
    SW_E_INVAL = 2,       /* bad argument or configuration value */
    SW_E_SHAPE = 3,       /* array shapes disagree */
    SW_E_STATE = 4,       /* the object is not in a state that allows this */
    SW_E_IO = 5,          /* the operating system refused a file operation */
    SW_E_FORMAT = 6,      /* a file or text is malformed, corrupt or too new */
    SW_E_NUMERIC = 7,     /* NaN, infinity or overflow in data or results */
    SW_E_UNSUPPORTED = 8, /* not available in this build */
    SW_E_SOURCE = 9,      /* a data source (Kafka, HDF5) failed */
    SW_E_INTERNAL = 10,   /* a bug in streamwise: please report it */
    SW_RC_COUNT
} sw_rc;

/* Filled in on failure by every function that takes one. May be NULL. */
typedef struct sw_err {
    sw_rc rc;
    char msg[256];
} sw_err;

/* "SW_E_INVAL" for SW_E_INVAL; "SW_E_UNKNOWN" outside the enum. */
const char *sw_rc_name(sw_rc rc);
/* A short English description of the code ("bad argument"). */
const char *sw_rc_str(sw_rc rc);

/* SW_VERSION of the library actually linked. */
int sw_version(void);
/* "0.1.0". */
const char *sw_version_str(void);
/* One line naming the build: version, build id (git commit), compiler and
 * which optional libraries were compiled in. Static storage. */
const char *sw_build_info(void);
/* The build id alone (git commit, "+dirty" when the tree was modified),
 * at most 31 characters. Static storage. */
const char *sw_build_id(void);

/* ------------------------------------------------------------------ */
/* Configuration: one property table for every tunable                  */
/* ------------------------------------------------------------------ */

typedef struct sw_conf sw_conf;

/* Create a configuration holding every property at its default.
 * The caller frees it with sw_conf_free(). */
sw_rc sw_conf_new(sw_conf **out, sw_err *err);

/* Parse and range-check value for property name ("pa.C", "1.5").
 * On failure the conf is unchanged and err names the property, the bad
 * value and what is accepted. */
sw_rc sw_conf_set(sw_conf *conf, const char *name, const char *value,
                  sw_err *err);

/* Write the current value of name as text into buf (at most buf_len bytes
 * including the terminating NUL). Doubles are written with %.17g. */
sw_rc sw_conf_get(const sw_conf *conf, const char *name, char *buf,
                  size_t buf_len, sw_err *err);

/* A copy of conf, freed by the caller with sw_conf_free(). */
sw_rc sw_conf_dup(const sw_conf *conf, sw_conf **out, sw_err *err);

/* Release a conf. */
void sw_conf_free(sw_conf *conf);

/* Property types, as reported by sw_conf_prop(). */
typedef enum sw_prop_type {
    SW_T_DBL = 0,
    SW_T_INT = 1,
    SW_T_ENUM = 2,
    SW_T_BOOL = 3
} sw_prop_type;

/* The number of properties in the table. */
int sw_conf_n_props(void);

/* Describe property i (0 <= i < sw_conf_n_props()). Every OUT pointer may
 * be NULL; name, def and doc are static storage. The accepted range is
 * written as text into range (range_len bytes), such as "(0, 1e+12]" or
 * "pa, pa1, pa2". Returns SW_E_INVAL for i out of range. */
sw_rc sw_conf_prop(int i, const char **name, sw_prop_type *type,
                   const char **def, char *range, size_t range_len,
                   const char **doc, sw_err *err);

/* Print the property table as Markdown (CONFIGURATION.md is this output). */
void sw_conf_describe(FILE *fp);

/* ------------------------------------------------------------------ */
/* Views of caller data                                                 */
/* ------------------------------------------------------------------ */

typedef enum sw_layout { SW_DENSE = 0, SW_CSR = 1 } sw_layout;
typedef enum sw_dtype { SW_F64 = 0, SW_F32 = 1 } sw_dtype;
typedef enum sw_itype { SW_I32 = 0, SW_I64 = 1 } sw_itype;

/* A borrowed, read-only view of n_rows rows of n_cols features, either a
 * row-major dense block or a CSR matrix. The library never keeps the
 * pointers after a call returns, and never writes through them.
 *
 * Dense: data holds n_rows rows of n_cols elements of dtype, row i starting
 * at element i * row_stride (row_stride >= n_cols).
 * CSR: row i has the entries indptr[i] .. indptr[i+1]-1 of indices (column
 * numbers, 0 <= j < n_cols, any order, duplicates add up) and data. indptr
 * and indices are both of itype. row_stride is unused. */
typedef struct sw_rows {
    sw_layout layout;
    sw_dtype dtype;
    sw_itype itype;
    int64_t n_rows;
    int64_t n_cols;
    int64_t row_stride;
    const void *data;
    const void *indptr;
    const void *indices;
} sw_rows;

/* Check a view's shape and, for CSR, that indptr is non-decreasing and
 * every column index is in range. The learners check what they touch
 * anyway; this is for callers that want an early, precise message. */
sw_rc sw_rows_check(const sw_rows *x, sw_err *err);

/* ------------------------------------------------------------------ */
/* Models                                                               */
/* ------------------------------------------------------------------ */

/* Anything that predicts: an online learner, a trained tree ensemble...
 * One handle type, so that the runner scores every kind the same way. */
typedef struct sw_model sw_model;

typedef enum sw_model_kind {
    SW_MODEL_LINEAR = 1, /* PA / SCW online linear learners */
    SW_MODEL_ALS = 2,    /* factorization by alternating least squares */
    SW_MODEL_GBDT = 3    /* gradient-boosted decision trees */
} sw_model_kind;

/* What kind of model this is. */
sw_model_kind sw_model_kind_of(const sw_model *m);
/* Features each input row must have. */
int64_t sw_model_n_features(const sw_model *m);
/* Values sw_model_predict() writes per row: 1, or n_classes for a
 * multiclass classifier. */
int64_t sw_model_n_outputs(const sw_model *m);
/* Classes of a classifier (0 for a regressor). */
int64_t sw_model_n_classes(const sw_model *m);

/* Score rows x into out, caller-allocated with n_out == x->n_rows *
 * sw_model_n_outputs(m) values, row-major: a linear classifier's decision
 * value (binary: > 0 means class 1) or per-class scores, a GBDT
 * classifier's probability of class 1 (binary) or class probabilities, or
 * the prediction (regression). The model is not modified: concurrent calls
 * on one model are safe. NaN in x gives SW_E_NUMERIC naming row and
 * column. */
sw_rc sw_model_predict(const sw_model *m, const sw_rows *x, double *out,
                       int64_t n_out, sw_err *err);

/* Attach METADATA (a JSON text, copied) that sw_model_save() writes and
 * sw_model_metadata() returns. The core stores it as given. */
sw_rc sw_model_set_metadata(sw_model *m, const char *json, sw_err *err);

/* The metadata JSON, or "{}" when none was set. Borrowed: valid until the
 * model is freed or its metadata set again. */
const char *sw_model_metadata(const sw_model *m);

/* Use rows x (copied) as the golden inputs that sw_model_save() scores and
 * stores with their exact outputs. Without this call, save generates eight
 * rows from a fixed seed. */
sw_rc sw_model_set_golden(sw_model *m, const sw_rows *x, sw_err *err);

/* Write the model to path as a .swm file (format SW_FORMAT_MAJOR.MINOR):
 * header, section table with CRC-32 per section, METADATA, MODEL, GOLDEN,
 * SHA-256 trailer. The file is written to path.tmp.<pid>, flushed, fsynced
 * and renamed over path, so readers never see half a file. */
sw_rc sw_model_save(const sw_model *m, const char *path, sw_err *err);

/* The same file's bytes in memory (for pickling and for sending a model
 * over a network), ready for sw_model_load_buffer(). *out is allocated by
 * the library and owned by the caller, who frees it with sw_buffer_free();
 * on failure *out is NULL and *len 0. */
sw_rc sw_model_save_buffer(const sw_model *m, unsigned char **out,
                           size_t *len, sw_err *err);

/* Free a buffer the library allocated for the caller (NULL is a no-op). */
void sw_buffer_free(void *p);

/* Read a .swm file. Every length is checked before it is used, then the
 * SHA-256 trailer, the header and section CRCs and the format version;
 * finally the golden inputs are re-scored and must match the stored
 * outputs bit for bit. Any failure is SW_E_FORMAT (or SW_E_IO) with a
 * message naming what is wrong, and *out is NULL. */
sw_rc sw_model_load(const char *path, sw_model **out, sw_err *err);

/* The same from a buffer of len bytes (borrowed). */
sw_rc sw_model_load_buffer(const void *buf, size_t len, sw_model **out,
                           sw_err *err);

/* A deep copy of m. */
sw_rc sw_model_dup(const sw_model *m, sw_model **out, sw_err *err);

/* Print a human description of a .swm file: header fields, sections with
 * their CRCs, metadata and a model summary. Verifies the file as
 * sw_model_load() does and reports the first problem. */
sw_rc sw_model_inspect(const char *path, FILE *fp, sw_err *err);

/* Release a model. */
void sw_model_free(sw_model *m);

/* ------------------------------------------------------------------ */
/* Online linear learners: passive-aggressive and SCW                   */
/* ------------------------------------------------------------------ */

/* Create an online linear learner over n_features features (the intercept
 * is extra, see linear.fit_intercept) for the task and update rule the
 * conf names (linear.task, linear.algorithm and the pa.* / scw.*
 * properties). A classifier starts with n_classes classes (0, 1 or 2 mean
 * binary; more mean multiclass) and may grow with sw_linear_add_classes().
 * The conf is copied: the caller may free it at once. The caller frees the
 * model with sw_model_free(). */
sw_rc sw_linear_new(const sw_conf *conf, int64_t n_features, int64_t n_classes,
                    sw_model **out, sw_err *err);

/* Grow a classifier to n_classes classes (never shrinks). Going from two
 * classes to more turns the binary weight vector w into the class vectors
 * w_0 = -w, w_1 = w, so decisions made so far are unchanged; new classes
 * start at zero weights and the initial variance. On SW_E_NOMEM the model
 * is unchanged. */
sw_rc sw_linear_add_classes(sw_model *m, int64_t n_classes, sw_err *err);

/* Learn from rows x with targets y (n_y == x->n_rows): class numbers
 * 0 .. n_classes-1 for a classifier, real values for a regressor. Rows are
 * learned in order. If row i holds NaN or infinity (or its update would
 * overflow), the call stops with SW_E_NUMERIC naming row and column: rows
 * 0 .. i-1 have been learned and *n_done says how many (n_done may be
 * NULL). No row is ever half-applied. */
sw_rc sw_linear_learn(sw_model *m, const sw_rows *x, const double *y,
                      int64_t n_y, int64_t *n_done, sw_err *err);

/* Prequential (test-then-train) evaluation: for each row in order, write
 * the prediction made before learning it into pred[i] (class number, or
 * value for regression), then learn it. metric[i] is the running accuracy
 * (classifier) or mean absolute error (regressor) over rows 0..i. Both
 * outputs hold n_y values; metric may be NULL. Errors as sw_linear_learn. */
sw_rc sw_linear_prequential(sw_model *m, const sw_rows *x, const double *y,
                            int64_t n_y, double *pred, double *metric,
                            int64_t *n_done, sw_err *err);

/* As sw_linear_prequential, and scores (NULL, or n_y * n_scores values)
 * gets each row's scores before it is learned: n_scores is
 * sw_linear_n_vectors(m) (the decision value for a binary classifier or a
 * regressor, one score per class otherwise), row i at scores[i *
 * n_scores]; SW_E_SHAPE if n_scores is not that count. What log-loss and
 * AUC of a test-then-train run are computed from. */
sw_rc sw_linear_prequential_scores(sw_model *m, const sw_rows *x,
                                   const double *y, int64_t n_y,
                                   double *pred, double *scores,
                                   int64_t n_scores, double *metric,
                                   int64_t *n_done, sw_err *err);

/* Counters of a linear learner: rows learned and rows that changed the
 * weights. Either pointer may be NULL. */
void sw_linear_counts(const sw_model *m, int64_t *n_seen, int64_t *n_updates);

/* Copy the learner's parameters out. w gets n_vectors * (n_features + 1)
 * values (each vector's last entry is the intercept), sigma the same
 * count of diagonal variances for SCW (diag), or n_vectors * (n_features+1)^2
 * for full covariance; PA has no sigma (returns SW_E_STATE when asked).
 * n_vectors is 1 for binary and regression, n_classes otherwise. */
int64_t sw_linear_n_vectors(const sw_model *m);
/* Values per weight vector: n_features, plus 1 with an intercept. */
int64_t sw_linear_vector_len(const sw_model *m);
/* Values sw_linear_sigma() copies out: 0 for PA. */
int64_t sw_linear_n_sigma(const sw_model *m);
sw_rc sw_linear_weights(const sw_model *m, double *w, int64_t n_w, sw_err *err);
sw_rc sw_linear_sigma(const sw_model *m, double *sigma, int64_t n_sigma,
                      sw_err *err);

/* ------------------------------------------------------------------ */
/* Gradient-boosted trees                                               */
/* ------------------------------------------------------------------ */

/* Gradient-boosted trees (histogram, leaf-wise; see docs/gbdt.md), set by
 * the gbdt.* properties. X: dense rows (f32 or f64; NaN is missing), y:
 * 0/1 labels (gbdt.objective=binary) or values (regression). X_valid and
 * y_valid (may be NULL) are scored after every round: valid_loss[r]
 * (n_estimators entries, may be NULL) receives the validation log-loss or
 * mean squared error, and gbdt.early_stopping_rounds > 0 stops when it
 * has not improved for that many rounds and keeps the trees up to the
 * best round. init: NULL, or a gbdt model to continue (its bin edges are
 * reused and its trees kept; rounds are added). progress (may be NULL) is
 * called after every round with the validation loss (NaN without a
 * validation set); a nonzero return stops the fit with SW_E_STATE and no
 * model (Ctrl-C in a notebook). As a sw_model it outputs the probability
 * of class 1 (binary) or the value. */
typedef int (*sw_gbdt_progress)(void *ctx, int64_t round, int64_t rounds,
                                double valid_loss);
sw_rc sw_gbdt_fit(const sw_conf *conf, const sw_rows *X, const double *y,
                  const sw_rows *X_valid, const double *y_valid,
                  const sw_model *init, double *valid_loss,
                  sw_gbdt_progress progress, void *progress_ctx, sw_model **out,
                  sw_err *err);
/* One rank's part of a distributed fit: X and y are this rank's rows,
 * row_ids their 0-based places among all the ranks' rows (strictly
 * increasing; NULL: 0 .. n - 1), coll joins the ranks (NULL: this rank
 * is alone, and the call is sw_gbdt_fit). Every rank passes the same conf,
 * the same X_valid/y_valid and init, and gets the same model: the one
 * sw_gbdt_fit gives on all the rows in row_ids order, byte for byte (the
 * bin sample, the bags and the sums are drawn and summed by row id, and
 * histogram sums are exact integers). A rank that fails makes the others
 * fail within coll's timeout. */
typedef struct sw_coll sw_coll;
sw_rc sw_gbdt_fit_shard(const sw_conf *conf, const sw_rows *X, const double *y,
                        const int64_t *row_ids, sw_coll *coll,
                        const sw_rows *X_valid, const double *y_valid,
                        const sw_model *init, double *valid_loss,
                        sw_gbdt_progress progress, void *progress_ctx,
                        sw_model **out, sw_err *err);
int64_t sw_gbdt_n_trees(const sw_model *m);
/* Raw scores (before the sigmoid or softmax) of the n_trees trees from
 * first (0-based, in the order training added them; K trees a round for K
 * classes, tree t scoring class t % K), with the base score when first is
 * 0: first 0 and all the trees give what sw_model_predict squashes, and
 * consecutive ranges add up to it (up to rounding), which is how a
 * validation metric is followed round by round, one pass over the rows a
 * round. out gets n_rows values, or n_rows * K for K classes. Dense rows
 * only, as sw_model_predict takes for gbdt. */
sw_rc sw_gbdt_predict_raw(const sw_model *m, const sw_rows *x, int64_t first,
                          int64_t n_trees, double *out, int64_t n_out,
                          sw_err *err);
/* The 0-based round early stopping kept, -1 without early stopping. */
int64_t sw_gbdt_best_iteration(const sw_model *m);
/* What a feature's importance counts. */
typedef enum sw_importance {
    SW_IMPORTANCE_SPLITS = 0, /* the number of splits on it */
    SW_IMPORTANCE_GAIN = 1    /* the summed gain of those splits */
} sw_importance;

/* Per feature, its importance by `by`; n must be the number of features. */
sw_rc sw_gbdt_importance(const sw_model *m, sw_importance by, double *out,
                         int64_t n, sw_err *err);
/* Write a gbdt model as C source into directory dir: name.h, name.c
 * (name_raw and name_predict, which compute what sw_model_predict does,
 * bit for bit: double name_predict(const double *x), or for multiclass
 * void name_predict(const double *x, double *out) of name_N_CLASSES
 * values) and name_0.c, name_1.c, ... of at most trees_per_file trees
 * each. name must be a C identifier. *n_files (may be NULL): the .c and
 * .h files written. */
sw_rc sw_gbdt_export_c(const sw_model *m, const char *dir, const char *name,
                       int64_t trees_per_file, int *n_files, sw_err *err);

/* ------------------------------------------------------------------ */
/* Collective: the ranks of a distributed fit                           */
/* ------------------------------------------------------------------ */

/* size ranks in a ring of connected stream sockets, made by the caller:
 * fd_next connected to the next rank's fd_prev (ranks mod size). The
 * handle works on copies of the two sockets (the caller keeps and closes
 * its own) and checks the ring at once (each rank greets the next).
 * Every call waits at most timeout_ms without progress; a closed
 * connection, a socket error or the timeout fails it with SW_E_IO naming
 * the rank on the other side, and a failed call shuts the sockets (the
 * neighbours then fail at once) and makes every later call fail. The
 * calls are collective: every rank makes the same calls in the same order.
 * size 1 takes fd -1 and makes every call a copy. */
#define SW_COLL_MAX_RANKS 1024
sw_rc sw_coll_new(int rank, int size, int fd_prev, int fd_next, int timeout_ms,
                  sw_coll **out, sw_err *err);
void sw_coll_free(sw_coll *c);
int sw_coll_rank(const sw_coll *c);
int sw_coll_size(const sw_coll *c);
/* v[0..n) replaced by its sum (int64, exact, wrapping) or maximum (double;
 * NaN loses) over the ranks. */
sw_rc sw_coll_sum_i64(sw_coll *c, int64_t *v, int64_t n, sw_err *err);
sw_rc sw_coll_max_f64(sw_coll *c, double *v, int64_t n, sw_err *err);
/* Rank r's share of the sum: v[bounds[r], bounds[r + 1]) (bounds: size + 1
 * increasing offsets from 0) replaced by its sum over the ranks; the rest
 * of v is left holding partial sums. Half the bytes of sw_coll_sum_i64. */
sw_rc sw_coll_reduce_scatter_i64(sw_coll *c, int64_t *v,
                                 const int64_t *bounds, sw_err *err);
/* Every rank's block, rank order, concatenated into *all (the caller frees
 * it with sw_buffer_free), lens[k] (size entries) rank k's byte count. */
sw_rc sw_coll_gather(sw_coll *c, const void *mine, int64_t len, void **all,
                     int64_t *lens, sw_err *err);
typedef struct sw_coll_stats {
    int64_t calls, bytes_sent, bytes_received;
    double seconds; /* in calls, waiting included */
} sw_coll_stats;
void sw_coll_get_stats(const sw_coll *c, sw_coll_stats *s);

/* ------------------------------------------------------------------ */
/* ALS: alternating least squares for recommendations                   */
/* ------------------------------------------------------------------ */

/* Create an ALS model of n_users x n_items with als.factors factors,
 * initialized uniformly in [0, 0.01) from als.seed. Interactions come as
 * CSR views of n_users x n_items (any dtype; implicit: values >= 0, stored
 * zeros are ignored; explicit: ratings). As a sw_model it scores rows of
 * two columns (user id, item id): the dot product of their factors. */
sw_rc sw_als_new(const sw_conf *conf, int64_t n_users, int64_t n_items,
                 sw_model **out, sw_err *err);

/* One sweep: every user's factors solved against the item factors, then
 * every item's against the user factors. item_users is the transpose of
 * user_items (CSR n_items x n_users). If loss is not NULL it receives the
 * training loss after the sweep (implicit: the implicit library's
 * normalized weighted loss; explicit: (squared error + penalty) / nnz).
 * Runs on als.threads threads; the result does not depend on their number.
 * SW_E_NUMERIC if a Cholesky factorization fails (raise the
 * regularization); the factors may then be partly updated. */
sw_rc sw_als_iterate(sw_model *m, const sw_rows *user_items,
                     const sw_rows *item_users, double *loss, sw_err *err);

/* Sizes of an ALS model (0 for other kinds). */
int64_t sw_als_n_users(const sw_model *m);
int64_t sw_als_n_items(const sw_model *m);
int64_t sw_als_n_factors(const sw_model *m);

/* The two sides of a factorization: its users (the rows of user_items)
 * and its items (the columns). */
typedef enum sw_side { SW_USERS = 0, SW_ITEMS = 1 } sw_side;

/* Copy out (get) or in (set) the factors of a side: n_rows x n_factors
 * floats, row-major; n must equal that count. */
sw_rc sw_als_get_factors(const sw_model *m, sw_side side, float *out,
                         int64_t n, sw_err *err);
sw_rc sw_als_set_factors(sw_model *m, sw_side side, const float *in,
                         int64_t n, sw_err *err);

/* Fold-in: solve factors for rows of interactions (SW_USERS: rows over
 * items; SW_ITEMS: rows over users) against the other side's
 * current factors, exactly (Cholesky), without changing the model. out
 * holds rows->n_rows x n_factors floats. */
sw_rc sw_als_solve_rows(const sw_model *m, sw_side side, const sw_rows *rows,
                        float *out, int64_t n_out, sw_err *err);

/* One half-sweep over a block of rows, for a fit spread over processes or
 * machines (python/streamwise/dask.py): rows (CSR, the block's
 * interactions over all n_other rows of the other side) solved against
 * other (n_other x n_factors) with m's settings (factors, regularization,
 * alpha, confidence, solver; m's own factors are neither read nor
 * changed), the block's current factors in factors (n_rows x n_factors;
 * the CG solver starts from them) replaced by the new ones. Row for row
 * what sw_als_iterate computes, so a sweep cut into blocks anywhere gives
 * the same bits. */
sw_rc sw_als_solve_block(const sw_model *m, const sw_rows *rows,
                         const float *other, int64_t n_other, float *factors,
                         int64_t n, sw_err *err);

/* Write vecs (n x n_factors) as the factors of ids on a side, growing the
 * model when an id is beyond its size (new rows start at zero). */
sw_rc sw_als_put_rows(sw_model *m, sw_side side, const int64_t *ids, int64_t n,
                      const float *vecs, sw_err *err);

/* Keep a copy of the training interactions (CSR n_users x n_items) in the
 * model, so that recommendations can leave out what a user already has,
 * in Python and in the runner alike; saved with the model. */
sw_rc sw_als_set_liked(sw_model *m, const sw_rows *user_items, sw_err *err);
int sw_als_has_liked(const sw_model *m);

#define SW_REC_FILTER_LIKED 1 /* leave out each user's liked items */

/* Top-n items for each of n_q users. ids are user ids; vecs, if not NULL,
 * replace their factors (n_q x n_factors, e.g. from sw_als_solve_rows).
 * With SW_REC_FILTER_LIKED, liked rows (CSR, row q for query q) or, when
 * liked is NULL, the interactions kept by sw_als_set_liked are left out.
 * exclude (NULL or n_items bytes, nonzero = leave out) applies to all;
 * candidates (NULL, or n_cand item ids) limits the choice. Writes n_q x n
 * item ids and scores, best first (ties: lower item id first), padded with
 * id -1 and score -inf. Scores are float32 dot products summed in factor
 * order, the same bits whichever path computes them. */
sw_rc sw_als_recommend(const sw_model *m, const int64_t *ids, int64_t n_q,
                       const float *vecs, int64_t n, int flags,
                       const sw_rows *liked, const unsigned char *exclude,
                       const int64_t *candidates, int64_t n_cand,
                       int64_t *items_out, float *scores_out, sw_err *err);

/* The n most similar ids on a side to each id, by cosine
 * of factors, the id itself included; candidates as in recommend. */
sw_rc sw_als_similar(const sw_model *m, sw_side side, const int64_t *ids,
                     int64_t n_q, int64_t n, const int64_t *candidates,
                     int64_t n_cand, int64_t *ids_out, float *scores_out,
                     sw_err *err);

/* Ranking metrics at k with the implicit library's definitions: for every
 * user with test interactions, recommend k items leaving out the train
 * ones, and average precision (over min(k, |test|)), MAP, NDCG and AUC.
 * out gets {precision, map, ndcg, auc}; *n_users_out (may be NULL) the
 * users evaluated. */
sw_rc sw_ranking_metrics(const sw_model *m, const sw_rows *train,
                         const sw_rows *test, int64_t k, double out[4],
                         int64_t *n_users_out, sw_err *err);

/* Splits of interactions, seeded and reproducible: in_test[e] = 1 for the
 * entries that go to the test set. random: each of n entries with
 * probability test_fraction. leave_k_out: k entries of every row that has
 * more than k (rows with k or fewer stay in train). */
sw_rc sw_split_random(int64_t n, double test_fraction, uint64_t seed,
                      unsigned char *in_test, sw_err *err);
sw_rc sw_split_leave_k_out(const sw_rows *x, int64_t k, uint64_t seed,
                           unsigned char *in_test, int64_t n_in_test,
                           sw_err *err);

/* ------------------------------------------------------------------ */
/* Streaming feature pipelines                                          */
/* ------------------------------------------------------------------ */

typedef struct sw_pipeline sw_pipeline;
typedef struct sw_result sw_result;

/* Column types of event batches (the spec's "int64", "int32", "int8",
 * "float64", "float32", "bool", "str"). */
typedef enum sw_col_type {
    SW_COL_I64 = 0,
    SW_COL_I32 = 1,
    SW_COL_I8 = 2,
    SW_COL_F64 = 3,
    SW_COL_F32 = 4,
    SW_COL_BOOL = 5,
    SW_COL_STR = 6
} sw_col_type;

/* Why an event was refused (reason codes of sw_result_invalid). */
typedef enum sw_invalid {
    SW_INVALID_MISSING = 1, /* a field the spec uses is absent */
    SW_INVALID_TYPE = 2,    /* a value of the wrong type */
    SW_INVALID_NAN = 3,     /* NaN or infinity in a numeric field */
    SW_INVALID_TIME = 4     /* no usable event time (< 1970, > 9999) */
} sw_invalid;

/* The word for a reason code ("missing", "wrong_type", "nan", "bad_time"),
 * the one the runner's dead letters and Python's outputs use; "" for any
 * other number. */
const char *sw_invalid_reason(int code);

/* A borrowed column of n_rows values: data holds them in type (str:
 * `width` bytes each, NUL-padded UTF-8). bad, if not NULL, has one byte a
 * row: 0, or the SW_INVALID_* reason the caller found converting it. */
typedef struct sw_column {
    const char *name;
    sw_col_type type;
    const void *data;
    int64_t width;
    const unsigned char *bad;
} sw_column;

/* A borrowed columnar batch of events. */
typedef struct sw_batch {
    int64_t n_rows;
    int n_columns;
    const sw_column *columns;
} sw_batch;

/* Compile a spec (JSON text: {"events": {...}, "features": [...],
 * "watermark": {...}, "ttl": ...}; see docs/pipelines.md). An unknown
 * operator, field or type is SW_E_INVAL naming the spec path, such as
 * "features[3].field: 'prcie' is not an event field". */
sw_rc sw_pipeline_new(const char *spec_json, sw_pipeline **out, sw_err *err);
void sw_pipeline_free(sw_pipeline *p);

/* Output shape: dense feature columns (names borrowed) and the width of
 * the sparse block of hashed features. */
int sw_pipeline_n_dense(const sw_pipeline *p);
const char *sw_pipeline_column_name(const sw_pipeline *p, int j);
int64_t sw_pipeline_sparse_dims(const sw_pipeline *p);
/* Hashed features: the column indices each row has in the sparse block. */
int sw_pipeline_n_hashed(const sw_pipeline *p);

/* Push a batch of events (numbered in arrival order across pushes). Each
 * event is checked (invalid ones are listed with a reason and otherwise
 * ignored), compared with the watermark (an event older than the latest
 * event time seen minus out_of_orderness minus allowed_lateness is late:
 * listed, not applied), and buffered. Then every buffered event the
 * watermark has passed is processed in event-time order (ties: arrival
 * order): its feature row is computed from the state of its keys, which
 * holds every earlier event and not the event itself, and then the event
 * updates that state. r (reset first) receives the rows emitted, the late
 * and the invalid events. The output does not depend on how the stream is
 * cut into batches. */
sw_rc sw_pipeline_push(sw_pipeline *p, const sw_batch *b, sw_result *r,
                       sw_err *err);

/* Partitions a pipeline can follow (Kafka partitions, files, shards). */
#define SW_MAX_PARTITIONS 1024

/* sw_pipeline_push for a batch from one partition (0..SW_MAX_PARTITIONS-1)
 * of a source whose partitions are ordered separately. The watermark is
 * then the least of the partitions' latest event times (minus the
 * delays), so a partition that lags does not make its events late; with
 * watermark.idle_timeout set, a partition whose latest event is that much
 * older than the newest event of any partition stops holding it back.
 * sw_pipeline_push is partition 0. */
sw_rc sw_pipeline_push_partition(sw_pipeline *p, const sw_batch *b, int part,
                                 sw_result *r, sw_err *err);

/* Announce partitions 0..n-1 of the source before they are pushed (a
 * Kafka topic's partition count): until a partition is seen it holds the
 * watermark at the stream's first event, so a partition read later is
 * not late because another was read first. What watermark.partitions
 * does in a spec, for a server that learns the count at run time; a
 * checkpoint keeps it. */
sw_rc sw_pipeline_announce_partitions(sw_pipeline *p, int n, sw_err *err);

/* Process every buffered event (end of stream). */
sw_rc sw_pipeline_flush(sw_pipeline *p, sw_result *r, sw_err *err);

/* A pipeline's counters since it was made (a restored pipeline's
 * continue its checkpoint's). */
typedef struct sw_pipeline_stats {
    int64_t emitted;  /* rows emitted */
    int64_t late;     /* events behind the watermark, dropped */
    int64_t invalid;  /* invalid events, all reasons */
    int64_t buffered; /* events waiting for the watermark */
    int64_t keys;     /* keys held, all tables */
    /* invalid events by reason: [SW_INVALID_MISSING] .. [SW_INVALID_TIME]
     * ([0] is 0) */
    int64_t invalid_by[SW_INVALID_TIME + 1];
    /* the label join: pairs made, outcomes with no event, events still
     * waiting for their outcome (claimed ones included) */
    int64_t joined, unmatched, join_waiting;
} sw_pipeline_stats;
void sw_pipeline_get_stats(const sw_pipeline *p, sw_pipeline_stats *out);

/* The lowest arrival number still buffered (the next one to arrive when
 * none is): every event numbered below it has been emitted, or was late
 * or invalid. */
int64_t sw_pipeline_oldest_pending(const sw_pipeline *p);

/* Events pushed so far: the arrival number the next event will get. */
int64_t sw_pipeline_arrivals(const sw_pipeline *p);

/* The spec's hash (the first 8 bytes of SHA-256 of the spec with sorted
 * keys, without its emission mode): equal specs compute equal features. */
uint64_t sw_pipeline_spec_hash(const sw_pipeline *p);
/* 1 for "arrival" emission, 0 for "watermark". */
int sw_pipeline_arrival(const sw_pipeline *p);
/* The watermark (us of event time; INT64_MIN before the first event). */
int64_t sw_pipeline_watermark(const sw_pipeline *p);
/* Keys dropped for the spec's max_keys budget since the pipeline was made
 * or restored. */
int64_t sw_pipeline_evicted(const sw_pipeline *p);
/* Bytes the pipeline's state holds, as allocated: key tables, their index
 * and change tracking (what max_keys and a ttl bound; a key's share is
 * fixed by the spec), the room for buffered events (as large as the
 * largest push has needed), predictions awaiting labels. */
int64_t sw_pipeline_state_bytes(const sw_pipeline *p);

/* The current profile of one key: key is a one-row batch holding the key
 * fields. out (n_dense values) gets, for every dense feature keyed by
 * exactly those fields, its value as of the last processed event time, and
 * NaN for the others. */
sw_rc sw_pipeline_profile(const sw_pipeline *p, const sw_batch *key,
                          double *out, int n_out, sw_err *err);

/* The secret for the spec's privacy.fields: their values are replaced by
 * SipHash-2-4 (libsodium) under a key derived from it (len >= 16 bytes)
 * before they reach state, rows, checkpoints or profiles. Needed before
 * the first push when the spec lists private fields, and again after a
 * restore, which refuses a secret other than the one the state was built
 * with. The secret itself is never written anywhere. */
sw_rc sw_pipeline_set_secret(sw_pipeline *p, const void *secret, size_t len,
                             sw_err *err);

/* The 64-bit hashes the pipeline gives the n_rows values of col (a column
 * named like an event field): the keyed hash for a private field. What a
 * caller shows in place of a private id. */
sw_rc sw_pipeline_hash_column(const sw_pipeline *p, const sw_column *col,
                              int64_t n_rows, uint64_t *out, sw_err *err);

/* Write the state, watermark, buffered events, spec, the privacy
 * fingerprint and the caller's source position (pos_len bytes, opaque) to
 * path atomically (temporary file, fsync, rename) with an XXH3-64 checksum. */
sw_rc sw_pipeline_checkpoint(const sw_pipeline *p, const char *path,
                             const void *pos, size_t pos_len, sw_err *err);

/* The same checkpoint written by a forked child from a copy-on-write
 * snapshot of this moment (Redis's BGSAVE): the caller goes on pushing at
 * once. One at a time; sw_pipeline_checkpoint_wait says whether it is
 * written (*done; block waits for it) and returns its error if it failed.
 * Commit the source position only once it is done. */
sw_rc sw_pipeline_checkpoint_start(sw_pipeline *p, const char *path,
                                   const void *pos, size_t pos_len,
                                   sw_err *err);
sw_rc sw_pipeline_checkpoint_wait(sw_pipeline *p, int block, int *done,
                                  sw_err *err);

/* Rebuild a pipeline from a checkpoint; continuing it gives the output an
 * uninterrupted run would have given. The saved position is then
 * available, borrowed, from sw_pipeline_position(). */
sw_rc sw_pipeline_restore(const char *path, sw_pipeline **out, sw_err *err);
const void *sw_pipeline_position(const sw_pipeline *p, size_t *len);

/* Changes, for a changelog (Kafka Streams' state store changelogs): with
 * tracking on, the pipeline remembers which keys' state changed and which
 * keys it dropped (ttl, max_keys) since the changes were last handed out.
 * sw_pipeline_changes calls cb once per key, in table then arrival order:
 * key: 12 bytes (u32 table, u64 key hash, little-endian); value: the
 * entry's last update time and state as little-endian 8-byte words, or
 * NULL and 0 for a key dropped. Then it forgets them. A cb error stops it
 * (the changes not yet handed out stay). */
typedef sw_rc (*sw_change_cb)(void *opaque, const void *key, size_t key_len,
                              const void *value, size_t value_len,
                              sw_err *err);
sw_rc sw_pipeline_track_changes(sw_pipeline *p, int on, sw_err *err);
sw_rc sw_pipeline_changes(sw_pipeline *p, sw_change_cb cb, void *opaque,
                          sw_err *err);
/* Apply n such records in order (a restore replaying a changelog's tail
 * onto a checkpoint): each value replaces its key's state, NULL drops the
 * key. A record that does not fit the spec (table, length, or a state no
 * update could have made) is SW_E_FORMAT, naming it; the records before
 * it stay applied. */
sw_rc sw_pipeline_apply_changes(sw_pipeline *p, int64_t n,
                                const void *const *keys,
                                const size_t *key_lens,
                                const void *const *values,
                                const size_t *value_lens, sw_err *err);
/* The checkpoint of everything but the keyed state (the watermark,
 * buffered events, label join, counters, position) as bytes, owned by the
 * caller (sw_buffer_free): a changelog's record of where its changes
 * stand. sw_pipeline_restore_buffer reads it (or a whole checkpoint file's
 * bytes) back; sw_pipeline_take_tables then moves the keyed state of src
 * (a pipeline of the same spec) into p, leaving src without any. */
sw_rc sw_pipeline_save_meta(const sw_pipeline *p, const void *pos,
                            size_t pos_len, unsigned char **out, size_t *len,
                            sw_err *err);
sw_rc sw_pipeline_restore_buffer(const void *buf, size_t len,
                                 sw_pipeline **out, sw_err *err);
sw_rc sw_pipeline_take_tables(sw_pipeline *p, sw_pipeline *src, sw_err *err);

/* The label join's training pairs in a result (spec label_join): for each,
 * the dense row (n_dense) and hashed indices (n_hash) the prediction event
 * had, its arrival number and time, the label (the outcome's label field,
 * 1 without one, 0 for a prediction no outcome claimed in time) and the
 * outcome's arrival number (-1 when unmatched). Returns the count. */
int64_t sw_result_pairs(const sw_result *r, const double **dense,
                        const int64_t **indices, const int64_t **seq,
                        const int64_t **t, const double **label,
                        const int64_t **outcome_seq);

/* Results of push and flush (a caller-owned, reusable handle). */
sw_rc sw_result_new(sw_result **out, sw_err *err);
void sw_result_free(sw_result *r);
int64_t sw_result_rows(const sw_result *r);
/* Borrowed until the next push into r: rows x n_dense features; arrival
 * numbers and event times (us) of the rows; CSR of the hashed features
 * (indptr rows + 1, indices; every value is 1). */
const double *sw_result_dense(const sw_result *r);
const int64_t *sw_result_seq(const sw_result *r);
const int64_t *sw_result_time(const sw_result *r);
const int64_t *sw_result_indptr(const sw_result *r);
const int64_t *sw_result_indices(const sw_result *r);
int64_t sw_result_late(const sw_result *r, const int64_t **seq);
int64_t sw_result_invalid(const sw_result *r, const int64_t **seq,
                          const int **reason);

/* A result's rows as a block of their own, for a binding that hands them
 * on without a copy (an array over them, freed with the block).
 * sw_result_detach() moves r's dense features, arrival numbers and
 * times into *out (SW_E_STATE if r has none): r's other parts stay, and
 * its next push makes new row arrays, or reuses a block given back by
 * sw_result_attach() (one detached from a result of the same
 * pipeline; r owns it then, and the rows r held are dropped). A block of
 * another width is freed. Detach at most once between pushes. */
typedef struct sw_rowbuf sw_rowbuf;
sw_rc sw_result_detach(sw_result *r, sw_rowbuf **out, sw_err *err);
void sw_result_attach(sw_result *r, sw_rowbuf *rows);
double *sw_rowbuf_dense(sw_rowbuf *rows);   /* room x n_dense, row-major */
int64_t *sw_rowbuf_seq(sw_rowbuf *rows);
int64_t *sw_rowbuf_time(sw_rowbuf *rows);
void sw_rowbuf_free(sw_rowbuf *rows);

/* ------------------------------------------------------------------ */
/* Bundles: a model that carries its feature pipeline                   */
/* ------------------------------------------------------------------ */

/* Make m a bundle of pipeline p: sw_model_save() then writes p's spec
 * (its events schema and privacy settings, never the secret; without the
 * emission mode, which the server chooses), the model's inputs and the
 * spec and schema hashes into the file. The model reads, in order, the
 * dense columns named in inputs (n_inputs of them, column names of p)
 * and then, when sparse is nonzero, p's hashed block: its n_features must
 * be n_inputs (+ sw_pipeline_sparse_dims(p)), else SW_E_SHAPE. p is
 * borrowed; its state plays no part. */
sw_rc sw_model_set_pipeline(sw_model *m, const sw_pipeline *p,
                            const char *const *inputs, int n_inputs,
                            int sparse, sw_err *err);

/* Golden events of a bundle (1..10000 valid events, copied): save replays
 * them from an empty pipeline in arrival order and stores the exact
 * predictions, and every load replays them again and refuses the file
 * unless each bit agrees. A spec with privacy fields keeps none (the
 * secret is needed to replay them and never travels). */
sw_rc sw_model_set_golden_events(sw_model *m, const sw_batch *events,
                                 sw_err *err);

/* The bundle's spec (compact JSON, borrowed), or NULL for a plain model. */
const char *sw_model_pipeline_spec(const sw_model *m);
/* The bundle's inputs: returns their number; names (borrowed) and sparse
 * may be NULL. 0 and NULL for a plain model. */
int sw_model_pipeline_inputs(const sw_model *m, const char *const **names,
                             int *sparse);
/* The spec and event-schema hashes of the header (0 for a plain model). */
void sw_model_pipeline_hashes(const sw_model *m, uint64_t *spec_hash,
                              uint64_t *schema_hash);

/* Score the rows of a pipeline result with a bundle: out gets
 * sw_result_rows(r) * sw_model_n_outputs(m) values (n_out), row-major, as
 * sw_model_predict() gives them for the rows the bundle's inputs make.
 * p must have been compiled from the bundle's spec (any emission mode):
 * else SW_E_INVAL naming both spec hashes. The one place that turns
 * feature rows into model rows, for the notebook and the runner alike. */
sw_rc sw_model_predict_result(const sw_model *m, const sw_pipeline *p,
                              const sw_result *r, double *out, int64_t n_out,
                              sw_err *err);
/* The same for n feature rows in p's layout held elsewhere: dense (n x
 * sw_pipeline_n_dense(p)) and hashed (n x sw_pipeline_n_hashed(p) column
 * numbers of the hashed block; may be NULL without hash features). */
sw_rc sw_model_predict_features(const sw_model *m, const sw_pipeline *p,
                                const double *dense, const int64_t *hashed,
                                int64_t n, double *out, int64_t n_out,
                                sw_err *err);

/* Learn n feature rows in p's layout (as sw_model_predict_features reads
 * them) with targets y, in order: class numbers for a classifier, values
 * for a regressor. pred (NULL, or n values) gets what the model predicted
 * for each row just before learning it (a class number, or a value): test
 * then train, as sw_linear_prequential. Online learning from a bundle's
 * own features (the runner learns the label join's pairs this way).
 * SW_E_UNSUPPORTED for a model kind that does not learn online. */
sw_rc sw_model_learn_features(sw_model *m, const sw_pipeline *p,
                              const double *dense, const int64_t *hashed,
                              int64_t n, const double *y, double *pred,
                              sw_err *err);

/* ------------------------------------------------------------------ */
/* The model registry (io layer, libswio.a)                             */
/* ------------------------------------------------------------------ */

/* Resolve a registry reference in the tracking store at store_dir (the
 * directory holding streamwise.db, as written by streamwise.registry):
 * "name@alias" (the version the alias points to now), "name@3", or "name"
 * (the latest version). The database is opened read-only. The model file is
 * hashed and must match the SHA-256 the registry recorded, else
 * SW_E_FORMAT. On success path receives the file's path (at most path_len
 * bytes with the NUL), sha256_hex its 64 hex digits and a NUL, and *version
 * the version number (version may be NULL). SW_E_INVAL for a malformed
 * reference or one that names nothing, SW_E_IO when the store cannot be
 * read, SW_E_UNSUPPORTED when built without SQLite. */
sw_rc sw_registry_resolve(const char *store_dir, const char *ref, char *path,
                          size_t path_len, char *sha256_hex, int64_t *version,
                          sw_err *err);

/* Watch a tracking store for writes, cheaply: poll sets *changed to 1 when
 * another connection committed anything since the last poll (SQLite's
 * data_version on one read-only connection; the first poll says 1). A
 * runner following "name@alias" polls about once a second and resolves
 * again only then. */
typedef struct sw_registry_watch sw_registry_watch;

sw_rc sw_registry_watch_open(const char *store_dir, sw_registry_watch **out,
                             sw_err *err);
sw_rc sw_registry_watch_poll(sw_registry_watch *w, int *changed, sw_err *err);
void sw_registry_watch_free(sw_registry_watch *w);

/* Register model file bytes buf (len) as the next version of name in the
 * store, as streamwise.registry.register does: the file goes to
 * models/<name>/<version>.swm (read-only, written atomically), the row to
 * model_versions with source (a text: where it came from, e.g. a JSON
 * lineage) and created_by, in one write transaction. Bytes already
 * registered under name give their version and write nothing. *version
 * receives the version. The bytes are not verified here: load them first
 * (the runner registers what it has just saved). */
sw_rc sw_registry_register(const char *store_dir, const char *name,
                           const unsigned char *buf, size_t len,
                           const char *source, const char *created_by,
                           int64_t *version, sw_err *err);

/* What a deployment did with a version. */
typedef enum sw_deploy_status {
    SW_DEPLOY_SERVING = 0, /* the runner switched to it */
    SW_DEPLOY_REFUSED = 1, /* it was refused; the old version kept serving */
    SW_DEPLOY_RETIRED = 2  /* retired on the control topic: no longer served */
} sw_deploy_status;

/* The name the deployment log gives a status ("serving", "refused",
 * "retired"), or NULL for another value. */
const char *sw_deploy_status_name(sw_deploy_status s);

/* Append to the store's deployment log (schema 2; "retired" schema 4) that
 * runner (a name the operator recognises: host, pid, job) is serving,
 * refused or retired version (0: unknown) of ref with file SHA-256
 * sha256_hex (may be NULL), and why. SW_E_FORMAT for a store older than
 * schema 2. */
sw_rc sw_registry_record(const char *store_dir, const char *ref,
                         int64_t version, const char *sha256_hex,
                         const char *runner, sw_deploy_status status,
                         const char *reason, sw_err *err);

/* ------------------------------------------------------------------ */
/* The embedded Kafka broker (io layer, libswio.a, librdkafka's mock)    */
/* ------------------------------------------------------------------ */

/* A Kafka-protocol broker cluster of n_brokers (1..16) in this process,
 * listening on loopback; kcat, confluent_kafka and librdkafka clients
 * connect to sw_broker_bootstrap(). In memory only; about 5 MiB or 100k
 * message sets per partition; transactions accepted but not isolated
 * (aborted records stay visible, no fencing); no offsets_for_times.
 * SW_E_UNSUPPORTED when built without librdkafka. */
typedef struct sw_broker sw_broker;

sw_rc sw_broker_new(int n_brokers, sw_broker **out, sw_err *err);
void sw_broker_free(sw_broker *b);
const char *sw_broker_bootstrap(const sw_broker *b);
sw_rc sw_broker_create_topic(sw_broker *b, const char *topic, int partitions,
                             sw_err *err);
/* Fault injection for tests: take broker_id (1..n, -1 for all) down (it
 * drops its connections and refuses new ones) or bring it back up ... */
sw_rc sw_broker_set_down(sw_broker *b, int broker_id, int down, sw_err *err);
/* ... or make the next count requests of a kind ("Produce", "Fetch",
 * "ListOffsets", "Metadata", ...) fail with error (a librdkafka error
 * name such as "NOT_LEADER_FOR_PARTITION", "_TRANSPORT" to disconnect, or
 * a number); count 0 clears the kind's queued errors. */
sw_rc sw_broker_push_errors(sw_broker *b, const char *request, int count,
                            const char *error, sw_err *err);

/* ------------------------------------------------------------------ */
/* Kafka replay (io layer, libswio.a, librdkafka)                       */
/* ------------------------------------------------------------------ */

/* How a replay's start or stop is given. */
typedef enum sw_point {
    SW_POINT_EDGE = 0,   /* the beginning (start), the end as of opening (stop) */
    SW_POINT_OFFSET = 1, /* an offset */
    SW_POINT_TIME = 2    /* ms since 1970: the first message at or after it */
} sw_point;

/* Replay every message of topic's partitions (NULL: all) from start to
 * stop, each given by an sw_point kind. Uses assign(): no group, nothing
 * committed. A time is resolved by offsets_for_times, or, where the broker
 * answers -1 (librdkafka's mock does), by a binary search on message
 * timestamps. timeout_ms (0: 30 s) bounds how long the broker may make no
 * progress before an error naming the last offsets read. conf_kv: NULL or
 * a NULL-terminated array of librdkafka property names and values
 * (security.protocol, sasl.*, fetch sizes...). */
typedef struct sw_kafka_source sw_kafka_source;

sw_rc sw_kafka_source_open(const char *bootstrap, const char *topic,
                           const int32_t *partitions, int n_partitions,
                           sw_point start_kind, int64_t start,
                           sw_point stop_kind, int64_t stop, int64_t timeout_ms,
                           const char *const *conf_kv, sw_kafka_source **out,
                           sw_err *err);
void sw_kafka_source_free(sw_kafka_source *s);
/* Read up to max messages; *count 0 means the replay is complete. */
sw_rc sw_kafka_source_next(sw_kafka_source *s, int64_t max, int64_t *count,
                           sw_err *err);
/* The last batch, borrowed until the next call: per message its partition,
 * offset, timestamp, and key and value as (at, len) into bytes (len -1:
 * null). */
void sw_kafka_source_batch(const sw_kafka_source *s, const int32_t **partition,
                           const int64_t **offset, const int64_t **timestamp_ms,
                           const unsigned char **bytes, const int64_t **key_at,
                           const int64_t **key_len, const int64_t **value_at,
                           const int64_t **value_len);
/* Messages in the last batch. */
int64_t sw_kafka_source_count(const sw_kafka_source *s);
/* The exact slice: per partition the first offset, the stop and the offset
 * after the last message read (next == stop once complete). Returns the
 * number of partitions. */
int sw_kafka_source_slice(const sw_kafka_source *s, const int32_t **partition,
                          const int64_t **start, const int64_t **stop,
                          const int64_t **next);
/* The topic's partition count, from the brokers' metadata. */
sw_rc sw_kafka_source_partition_count(sw_kafka_source *s, int *n,
                                      sw_err *err);

/* Live consumption: join consumer group `group` on topic (librdkafka
 * subscribe; the group shares the partitions and remembers offsets;
 * auto.offset.reset=earliest unless conf_kv says otherwise). next waits up
 * to wait_ms for a first message, then takes what has arrived, up to max
 * (*count 0: nothing within the wait, not the end). commit records the
 * offset after the last message returned of every partition: call it once
 * their results are safe (after a checkpoint), so that a restart resumes
 * there and nothing is lost. The slice gives each partition's first and
 * next offset (stop -1). */
sw_rc sw_kafka_source_subscribe(const char *bootstrap, const char *topic,
                                const char *group, int64_t wait_ms,
                                const char *const *conf_kv,
                                sw_kafka_source **out, sw_err *err);
sw_rc sw_kafka_source_commit(sw_kafka_source *s, sw_err *err);
/* Before the first next() of a subscribed source: partition starts at
 * offset whenever it is assigned (a checkpoint's position, which wins
 * over the group's committed offset). partition -1: every partition not
 * named starts at its beginning (a checkpoint has seen none of it). */
sw_rc sw_kafka_source_start_at(sw_kafka_source *s, int32_t partition,
                               int64_t offset, sw_err *err);
/* A member of a group learns which partitions are its own: cb is called
 * from next(), in librdkafka's rebalance, with the partitions assigned
 * (start[i] where each begins: -1 for the group's committed offset, -2
 * for the beginning, or what start_at() said; cb may set it, e.g. to a checkpoint's position)
 * or revoked (before they are let go: the moment to checkpoint and commit
 * them; messages of them already returned by next() but not yet processed
 * must then be dropped: their new owner reads them). An error from cb
 * stops the source: next() returns it. cb NULL: no callback. */
typedef sw_rc (*sw_kafka_rebalance_cb)(void *opaque, int assigned,
                                       const int32_t *partitions,
                                       int64_t *start, int n, sw_err *err);
void sw_kafka_source_on_rebalance(sw_kafka_source *s, sw_kafka_rebalance_cb cb,
                                  void *opaque);
/* Commit these offsets (the next to read, per partition) for the group:
 * what a checkpoint holds, once it is on disk. A rebalance under way or
 * a partition gone to another member is not an error (the checkpoint
 * decides where a restart resumes). */
sw_rc sw_kafka_source_commit_offsets(sw_kafka_source *s,
                                     const int32_t *partitions,
                                     const int64_t *offsets, int n,
                                     sw_err *err);
/* What group has committed for these partitions of topic (offsets[i] -1
 * where nothing is), asked of the group coordinator without joining the
 * group. Committed in a transaction, an offset is there once the
 * transaction committed: how a restarted exactly-once runner learns which
 * of its checkpoints the outputs agree with. */
sw_rc sw_kafka_group_committed(const char *bootstrap, const char *topic,
                               const char *group, const char *const *conf_kv,
                               const int32_t *partitions, int n,
                               int64_t *offsets, int64_t timeout_ms,
                               sw_err *err);
/* A subscribed source's next() fails with SW_E_SOURCE, naming the last
 * offsets read, once no broker has been reachable for ms (default 60000;
 * 0: wait for ever). */
void sw_kafka_source_set_outage_limit(sw_kafka_source *s, int64_t ms);
/* Messages between next_offset and the end of partition, from the offsets
 * the last fetches reported (no request is made); -1 when unknown. */
int64_t sw_kafka_source_lag(const sw_kafka_source *s, int32_t partition,
                            int64_t next_offset);

/* The partition Kafka's Java client, Kafka Streams and Flink give key
 * among n (murmur2 of the key bytes, sign bit cleared, modulo n): the
 * sink's partitioner, so a key lands where the rest of the Kafka world
 * puts it. SW_E_INVAL for n < 1; SW_E_UNSUPPORTED without librdkafka. */
sw_rc sw_kafka_partition(const void *key, size_t key_len, int32_t n,
                         int32_t *out, sw_err *err);

/* Produce to topic with an idempotent producer (acks=all): a message
 * counts as written only once acknowledged. send copies key and value;
 * partition -1 lets the partitioner choose: sw_kafka_partition() of the
 * key, a random partition for a message without one; timestamp_ms 0 is now;
 * headers: NULL or a NULL-terminated array of names and string values
 * (schema version, model version). flush waits up to timeout_ms for every
 * acknowledgement and fails if any message was not written. conf_kv as
 * for the source. */
typedef struct sw_kafka_sink sw_kafka_sink;

sw_rc sw_kafka_sink_open(const char *bootstrap, const char *topic,
                         const char *const *conf_kv, sw_kafka_sink **out,
                         sw_err *err);
sw_rc sw_kafka_sink_send(sw_kafka_sink *s, const void *key, size_t key_len,
                         const void *value, size_t value_len, int32_t partition,
                         int64_t timestamp_ms, const char *const *headers,
                         sw_err *err);
sw_rc sw_kafka_sink_flush(sw_kafka_sink *s, int64_t timeout_ms, sw_err *err);
typedef struct sw_kafka_sink_stats {
    int64_t sent;  /* messages handed to librdkafka */
    int64_t acked; /* acknowledged by the broker */
    int64_t failed;
} sw_kafka_sink_stats;
void sw_kafka_sink_get_stats(const sw_kafka_sink *s, sw_kafka_sink_stats *out);
/* The offset after the last message of partition (0..1023) acknowledged
 * so far, -1 before any: where what is sent next will be. */
int64_t sw_kafka_sink_next_offset(const sw_kafka_sink *s, int32_t partition);
/* Frees a sink; one that others were opened on goes after them. */
void sw_kafka_sink_free(sw_kafka_sink *s);

/* Transactions: exactly once over topics and a group's offsets. A sink
 * opened with a "transactional.id" in conf_kv owns a transactional
 * producer; open_on gives another topic on the same producer, so one
 * transaction spans both. init_transactions once (it fences an older
 * producer of the same id and settles that one's open transaction), then
 * begin, send, and commit: the offsets the source's group resumes from
 * (partitions[i] of the source's topic at offsets[i]; n 0: none) and
 * every message sent since begin become visible to read_committed
 * consumers together, or none of them. A fenced producer fails with
 * SW_E_STATE naming the transactional.id and can do nothing more; any
 * other failure aborts the transaction (SW_E_IO). */
sw_rc sw_kafka_sink_open_on(sw_kafka_sink *owner, const char *topic,
                            sw_kafka_sink **out, sw_err *err);
sw_rc sw_kafka_sink_init_transactions(sw_kafka_sink *s, int64_t timeout_ms,
                                      sw_err *err);
sw_rc sw_kafka_sink_begin(sw_kafka_sink *s, sw_err *err);
sw_rc sw_kafka_sink_commit(sw_kafka_sink *s, sw_kafka_source *src,
                           const int32_t *partitions, const int64_t *offsets,
                           int n, int64_t timeout_ms, sw_err *err);
sw_rc sw_kafka_sink_abort(sw_kafka_sink *s, int64_t timeout_ms, sw_err *err);

/* JSON event messages into columns by a pipeline spec's "events" schema
 * ({"time", "time_unit", "fields", and optional "defaults" for fields that
 * older events lack}). sw_json_decode reads n messages (bytes + at[k],
 * len[k]; len -1 is null) and keeps the good ones as rows, in order; the
 * others are dead letters with a reason (index into sw_dead_reasons:
 * not_json, not_object, missing, wrong_type; NULL after the last). A
 * message without the time field takes timestamp_ms[k] (if given) in the
 * schema's unit. */
typedef struct sw_json_decoder sw_json_decoder;

extern const char *const sw_dead_reasons[];
sw_rc sw_json_decoder_new(const char *events_schema_json, sw_json_decoder **out,
                          sw_err *err);
/* How Avro records sit in messages. */
typedef enum sw_framing {
    SW_FRAMING_RAW = 0,      /* each message is one record */
    SW_FRAMING_CONFLUENT = 1 /* byte 0, a big-endian 4-byte schema id, record */
} sw_framing;

/* Decode Avro binary records instead of JSON, by the Avro record schema
 * reader_schema_json (libavro), under the same rules: its fields map by
 * name onto the events schema (null is missing, a union its branch). Writer schemas (Confluent id,
 * or -1 for unframed messages) are resolved to the reader's, so records
 * written before a field existed take its Avro default. More dead-letter
 * reasons: not_avro, unknown_schema. SW_E_UNSUPPORTED without libavro. */
sw_rc sw_json_decoder_set_avro(sw_json_decoder *d,
                               const char *reader_schema_json,
                               sw_framing framing,
                               sw_err *err);
sw_rc sw_json_decoder_add_avro_writer(sw_json_decoder *d, int32_t schema_id,
                                      const char *writer_schema_json,
                                      sw_err *err);
void sw_json_decoder_free(sw_json_decoder *d);
sw_rc sw_json_decode(sw_json_decoder *d, const unsigned char *bytes,
                     const int64_t *at, const int64_t *len,
                     const int64_t *timestamp_ms, int64_t n, int64_t *rows,
                     sw_err *err);
int sw_json_decoder_n_fields(const sw_json_decoder *d);
/* Field i of the last decode: its values in num (float types), ints
 * (integer types and bool) or as (str_at, str_len) into
 * sw_json_decoder_strings (str); borrowed until the next decode. */
void sw_json_decoder_field(const sw_json_decoder *d, int i, const char **name,
                           int *type, const double **num, const int64_t **ints,
                           const int64_t **str_at, const int64_t **str_len);
const unsigned char *sw_json_decoder_strings(const sw_json_decoder *d);
/* The message index each decoded row came from. */
const int64_t *sw_json_decoder_rows(const sw_json_decoder *d);
int64_t sw_json_decoder_dead(const sw_json_decoder *d, const int64_t **row,
                             const int **reason);
/* The field dead letter k (0 .. count-1) of the last decode was refused
 * for (missing, wrong_type), or NULL when the whole message was (not_json,
 * not_object, not_avro, unknown_schema). Borrowed. */
const char *sw_json_decoder_dead_field(const sw_json_decoder *d, int64_t k);

/* ------------------------------------------------------------------ */
/* HDF5 event datasets (io layer, libswio.a, libhdf5)                   */
/* ------------------------------------------------------------------ */

/* Write an HDF5 event dataset: per event type a table /events/<type> of
 * one chunked dataset per column, with the schema (a spec's "events"
 * entry, JSON) and provenance (JSON) as attributes; see docs/hdf5.md.
 * The file is written as path.tmp-<pid> and renamed into place by close
 * (which frees the writer); free alone abandons it. gzip_level 0 stores
 * the columns uncompressed, 1-9 with shuffle+gzip; chunk_rows 0 is 65536.
 * append takes a batch holding every schema column in its type, times not
 * going back (within and across batches); a str column's width is set by
 * the first batch. SW_E_UNSUPPORTED when built without libhdf5. */
typedef struct sw_h5_writer sw_h5_writer;

sw_rc sw_h5_writer_open(const char *path, sw_h5_writer **out, sw_err *err);
sw_rc sw_h5_writer_table(sw_h5_writer *w, const char *event_type,
                         const char *events_schema_json,
                         const char *provenance_json, int gzip_level,
                         int64_t chunk_rows, int *table, sw_err *err);
sw_rc sw_h5_writer_append(sw_h5_writer *w, int table, const sw_batch *b,
                          sw_err *err);
sw_rc sw_h5_writer_close(sw_h5_writer *w, sw_err *err);
void sw_h5_writer_free(sw_h5_writer *w);

/* How an HDF5 replay's range is given. */
typedef enum sw_h5_range {
    SW_H5_BY_ROW = 0, /* row numbers [start, stop); stop -1: to the end */
    SW_H5_BY_TIME = 1 /* times in the schema's unit; stop INT64_MAX: the end */
} sw_h5_range;

/* Replay table /events/<type> of an HDF5 event dataset: rows [start, stop)
 * (SW_H5_BY_ROW) or the rows whose time, in the schema's unit, is in
 * [start, stop) (SW_H5_BY_TIME), found
 * by binary search on the sorted time column. next reads up to max rows
 * (*count 0: done) into columns borrowed until the next call. A column
 * missing or of the wrong kind, a schema attribute missing or malformed,
 * times that go back, a damaged chunk (Fletcher-32) or a truncated file
 * is an error naming it. */
typedef struct sw_h5_source sw_h5_source;

sw_rc sw_h5_source_open(const char *path, const char *event_type,
                        sw_h5_range by, int64_t start, int64_t stop,
                        sw_h5_source **out, sw_err *err);
void sw_h5_source_free(sw_h5_source *s);
sw_rc sw_h5_source_next(sw_h5_source *s, int64_t max, int64_t *count,
                        sw_err *err);
const sw_batch *sw_h5_source_batch(const sw_h5_source *s);
/* The slice: first row, stop row, and the row after the last one read. */
void sw_h5_source_slice(const sw_h5_source *s, int64_t *start, int64_t *stop,
                        int64_t *next);
int64_t sw_h5_source_rows(const sw_h5_source *s); /* rows in the table */
const char *sw_h5_source_schema(const sw_h5_source *s);
const char *sw_h5_source_provenance(const sw_h5_source *s);
const char *sw_h5_source_dataset(const sw_h5_source *s); /* "/events/t" */
/* SHA-256 (hex) of the file as opened; an error if it changed since. */
sw_rc sw_h5_source_sha256(const sw_h5_source *s, char hex[65], sw_err *err);

#ifdef __cplusplus
}
#endif
#endif /* STREAMWISE_H */
