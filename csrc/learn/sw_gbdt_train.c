/* SPDX-License-Identifier: MIT */
/*
 * sw_gbdt_train.c - histogram gradient boosting: features binned once to
 * uint8 (quantiles of a seeded row sample, a bin of its own for NaN), one
 * row-major byte matrix, trees grown leaf-wise from per-leaf histograms of
 * gradient and hessian sums, the larger child's histogram got by
 * subtracting the smaller's from its parent's.
 *
 * Gains and leaf values are LightGBM's and xgboost's (un-halved gain,
 * soft-threshold for L1, max_delta_step clipping), so that results can be
 * checked against them. A split on bin b sends bins 0..b left; NaN rows go
 * the way that gained more, remembered as the node's default.
 *
 * Gradients and hessians are summed as fixed-point integers (62 bits for a
 * leaf's sum, about 42 for one row's value at a million rows): sums are
 * exact whatever their order, so threads take chunks of a leaf's rows as
 * they come free, each into a histogram of its own, and the same data and
 * seed still give the same model bytes at any thread count, and at any
 * number of ranks of a distributed fit (sw_gbdt_fit_shard).
 *
 * This file runs the whole fit (checks, the ranks' agreement, the base
 * score, rounds, validation and early stopping); sw_gbdt_bins.c bins the
 * features and sw_gbdt_grow.c grows each tree, over sw_gbdt_int.h.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sw_gbdt_int.h"

/* ---- the whole fit ------------------------------------------------ */

static sw_rc
check_input(const trainer *t, const sw_rows *X, const double *y,
            const char *what, sw_err *err)
{
    int64_t i;

    if (X->layout != SW_DENSE)
        return sw__fail(err, SW_E_INVAL,
                        "gbdt: %s rows must be dense (NaN marks a missing "
                        "value)",
                        what);
    if (X->n_rows == 0)
        return sw__fail(err, SW_E_INVAL, "gbdt: the %s set is empty", what);
    if (y == NULL)
        return sw__fail(err, SW_E_INVAL, "gbdt: no %s labels", what);
    for (i = 0; i < X->n_rows; i++) {
        if (!isfinite(y[i]))
            return sw__fail(err, SW_E_NUMERIC, "gbdt: %s label %lld is %g",
                            what, (long long)i, y[i]);
        if (t->objective == SW_GBDT_BINARY && y[i] != 0.0 && y[i] != 1.0)
            return sw__fail(err, SW_E_INVAL,
                            "gbdt: %s label %lld is %g; binary labels are 0 "
                            "or 1",
                            what, (long long)i, y[i]);
        if (t->objective == SW_GBDT_MULTICLASS &&
            (y[i] < 0 || y[i] != floor(y[i]) || (t->K > 0 && y[i] >= t->K)))
            return sw__fail(err, SW_E_INVAL,
                            "gbdt: %s label %lld is %g; multiclass labels are "
                            "0 .. %lld",
                            what, (long long)i, y[i], (long long)t->K - 1);
    }
    return SW_OK;
}

static double
loss_of(int objective, int64_t K, const double *raw, const double *y, int64_t n)
{
    double s = 0;
    int64_t i, j;

    for (i = 0; i < n; i++) {
        if (objective == SW_GBDT_MULTICLASS) {
            /* -log softmax(raw)[y] = logsumexp(raw) - raw[y] */
            const double *z = raw + i * K;
            double m = z[0], e = 0;

            for (j = 1; j < K; j++)
                m = z[j] > m ? z[j] : m;
            for (j = 0; j < K; j++)
                e += exp(z[j] - m);
            s += m + log(e) - z[(int64_t)y[i]];
        } else if (objective == SW_GBDT_BINARY) {
            /* log(1 + e^-z) for y = 1, log(1 + e^z) for y = 0, stable */
            double z = y[i] > 0.5 ? raw[i] : -raw[i];

            s += z > 0 ? log1p(exp(-z)) : -z + log1p(exp(z));
        } else {
            s += (raw[i] - y[i]) * (raw[i] - y[i]);
        }
    }
    return s / (double)n;
}

static void
read_conf(trainer *t, const sw_conf *conf)
{
    t->objective = sw__conf_choice(conf, "gbdt.objective");
    t->K = t->objective == SW_GBDT_MULTICLASS
               ? (int64_t)sw__conf_num(conf, "gbdt.num_class")
               : 1;
    t->rounds = (int64_t)sw__conf_num(conf, "gbdt.n_estimators");
    t->lr = sw__conf_num(conf, "gbdt.learning_rate");
    t->num_leaves = (int)sw__conf_num(conf, "gbdt.num_leaves");
    t->max_depth = (int)sw__conf_num(conf, "gbdt.max_depth");
    t->depthwise = sw__conf_choice(conf, "gbdt.grow_policy") == 1;
    t->max_bin = (int)sw__conf_num(conf, "gbdt.max_bin");
    t->bin_sample = (int64_t)sw__conf_num(conf, "gbdt.bin_sample");
    t->min_data = (int64_t)sw__conf_num(conf, "gbdt.min_data_in_leaf");
    t->min_hess = sw__conf_num(conf, "gbdt.min_sum_hessian_in_leaf");
    t->l1 = sw__conf_num(conf, "gbdt.lambda_l1");
    t->l2 = sw__conf_num(conf, "gbdt.lambda_l2");
    t->min_gain = sw__conf_num(conf, "gbdt.min_gain_to_split");
    t->max_delta = sw__conf_num(conf, "gbdt.max_delta_step");
    t->bag = sw__conf_num(conf, "gbdt.bagging_fraction");
    t->ffrac = sw__conf_num(conf, "gbdt.feature_fraction");
    t->seed = (uint64_t)sw__conf_num(conf, "gbdt.seed");
    t->early = (int64_t)sw__conf_num(conf, "gbdt.early_stopping_rounds");
    t->threads = (int)sw__conf_num(conf, "gbdt.threads");
    if (t->threads <= 0)
        t->threads = sw__n_cpus();
}

static void
trainer_free(trainer *t)
{
    int i;

    sw__free(t->bins);
    sw__free(t->lbins);
    sw__free(t->lgh);
    sw__free(t->lrow);
    sw__free(t->nbins);
    sw__free(t->gh);
    sw__free(t->gmax);
    sw__free(t->score);
    sw__free(t->prob);
    sw__free(t->idx);
    sw__free(t->mid_bins);
    sw__free(t->mid_gh);
    sw__free(t->mid_row);
    sw__free(t->part_at);
    sw__free(t->oob);
    sw__free(t->use);
    for (i = 0; i < t->n_pool; i++)
        sw__free(t->pool[i]);
    /* left by an error mid-tree: the leaves' histograms, and those of
     * children computed ahead (the larger one's is its leaf's) */
    for (i = 0; t->leaves != NULL && i < t->n_leaves; i++) {
        sw__free(t->leaves[i].hist);
        if (t->ahead != NULL && t->ahead[i].ready)
            sw__free(t->ahead[i].L.n <= t->ahead[i].R.n ? t->ahead[i].L.hist
                                                        : t->ahead[i].R.hist);
        else if (t->ahead != NULL)
            sw__free(t->ahead[i].fresh);
    }
    sw__free(t->leaves);
    sw__free(t->ahead);
    sw__free(t->pool);
    sw__free(t->partials);
    sw__pool_free(t->workers);
    sw__free(t->node_gain);
}

static sw_rc
alloc_all(trainer *t, sw_err *err)
{
    size_t n = (size_t)t->n, mid;

    if (t->threads > 1 && sw__pool_new(t->threads, &t->workers, err) != SW_OK)
        return SW_E_NOMEM;
    /* room past the last row: take_rows() copies rows in whole words */
    t->bins = sw__alloc_array(n * (size_t)t->nf + 8, 1);
    t->bstride = (t->nf + 7) & ~(int64_t)7;
    t->lbins = sw__alloc_array(n, (size_t)t->bstride);
    t->lgh = sw__alloc_array(n, 2 * sizeof(int64_t));
    t->lrow = sw__alloc_array(n, sizeof(int64_t));
    t->nbins = sw__alloc_array((size_t)t->nf, sizeof(int));
    t->gh = sw__alloc_array(n, 2 * sizeof(int64_t));
    t->gmax = sw__alloc_array(n / ROW_CHUNK + 1, sizeof(double));
    t->score = sw__alloc_array(n, (size_t)t->K * sizeof(double));
    if (t->K > 1)
        t->prob = sw__alloc_array(n, (size_t)t->K * sizeof(double));
    t->idx = sw__alloc_array(n, sizeof(int64_t));
    mid = (size_t)sw__pool_threads(t->workers) * MID_ROWS;
    t->mid_bins = sw__alloc_array(mid, (size_t)t->bstride);
    t->mid_gh = sw__alloc_array(mid, 2 * sizeof(int64_t));
    t->mid_row = sw__alloc_array(mid, sizeof(int64_t));
    t->oob = sw__alloc_array(n, sizeof(int64_t));
    t->part_at = sw__alloc_array(5 * (n / PART_CHUNK + 1), sizeof(int64_t));
    t->use = sw__alloc_array((size_t)t->nf, 1);
    t->leaves = sw__alloc_array((size_t)t->num_leaves, sizeof(leaf));
    /* the leaves' histograms, and one per leaf split ahead */
    t->pool = sw__alloc_array(2 * (size_t)t->num_leaves + 2, sizeof(hbin *));
    t->ahead = sw__calloc((size_t)t->num_leaves + 1, sizeof(*t->ahead));
    t->partials = sw__alloc_array(
        (size_t)((sw__pool_threads(t->workers) - 1) * t->nf * 256 + 1),
        sizeof(hbin));
    if (!t->partials || !t->bins || !t->lbins || !t->lgh || !t->lrow ||
        !t->nbins || !t->gh || !t->gmax ||
        !t->score || (t->K > 1 && !t->prob) || !t->idx || !t->mid_bins ||
        !t->mid_gh || !t->mid_row ||
        !t->part_at || !t->oob || !t->use || !t->leaves || !t->pool ||
        !t->ahead)
        return sw__fail(err, SW_E_NOMEM, "gbdt: out of memory");
    return SW_OK;
}

/* A new, empty ensemble over nf features, or a copy of init's. */
static sw_rc
start_model(trainer *t, const sw_model *init, sw_err *err)
{
    sw_gbdt *g;

    if (init != NULL) {
        if (init->kind != SW_MODEL_GBDT)
            return sw__fail(err, SW_E_INVAL,
                            "gbdt: can only continue a gbdt model");
        if (init->u.gbdt->n_features != t->nf)
            return sw__fail(err, SW_E_SHAPE,
                            "gbdt: the model has %lld features, the data "
                            "%lld",
                            (long long)init->u.gbdt->n_features,
                            (long long)t->nf);
        if (init->u.gbdt->objective != t->objective)
            return sw__fail(err, SW_E_INVAL,
                            "gbdt: gbdt.objective differs from the model's");
        return sw__gbdt_dup(init->u.gbdt, &t->g, err);
    }
    g = t->g = sw__calloc(1, sizeof(*g));
    if (g == NULL)
        return sw__fail(err, SW_E_NOMEM, "gbdt: out of memory");
    g->objective = t->objective;
    g->n_features = t->nf;
    g->learning_rate = t->lr;
    g->best_iteration = -1;
    g->roots = sw__calloc(1, sizeof(int64_t));
    g->edge_start = sw__calloc((size_t)t->nf + 1, sizeof(int64_t));
    g->imp_gain = sw__calloc((size_t)t->nf, sizeof(double));
    g->imp_split = sw__calloc((size_t)t->nf, sizeof(int64_t));
    if (!g->roots || !g->edge_start || !g->imp_gain || !g->imp_split)
        return sw__fail(err, SW_E_NOMEM, "gbdt: out of memory");
    return SW_OK;
}

static sw_rc
add_root(trainer *t, sw_err *err)
{
    sw_gbdt *g = t->g;

    if (g->n_trees + 1 >= g->cap_trees) {
        int64_t c = g->cap_trees ? 2 * g->cap_trees + 2 : 128;
        int64_t *p =
            sw__realloc_array(g->roots, (size_t)c + 1, sizeof(int64_t));

        if (p == NULL)
            return sw__fail(err, SW_E_NOMEM, "gbdt: out of memory");
        g->roots = p;
        g->cap_trees = c;
    }
    g->roots[++g->n_trees] = g->n_nodes;
    return SW_OK;
}

/* What every rank of a distributed fit must agree on, checked before any
 * work: a rank given other data or settings would otherwise make sums
 * that mean nothing. */
static sw_rc
check_ranks(const trainer *t, const sw_rows *X_valid, const sw_model *init,
            sw_err *err)
{
    int64_t mine[8], lens[SW_COLL_MAX_RANKS], *all, k, i;
    static const char *const what[8] = {
        "features",  "gbdt.objective",  "gbdt.num_class", "gbdt.n_estimators",
        "gbdt.seed", "validation rows", "initial trees",  "gbdt.num_leaves"};
    void *buf = NULL;
    sw_rc rc;

    mine[0] = t->nf;
    mine[1] = t->objective;
    mine[2] = t->K;
    mine[3] = t->rounds;
    mine[4] = (int64_t)t->seed;
    mine[5] = X_valid ? X_valid->n_rows : -1;
    mine[6] = init ? sw_gbdt_n_trees(init) : -1;
    mine[7] = t->num_leaves;
    if ((rc = sw_coll_gather(t->coll, mine, sizeof(mine), &buf, lens, err)) !=
        SW_OK)
        return rc;
    all = buf;
    for (k = 1; k < sw_coll_size(t->coll); k++) {
        for (i = 0; i < 8; i++) {
            if (all[k * 8 + i] != all[i]) {
                rc = sw__fail(err, SW_E_INVAL,
                              "gbdt: rank %lld has %lld %s, rank 0 %lld; every "
                              "rank needs the same",
                              (long long)k, (long long)all[k * 8 + i], what[i],
                              (long long)all[i]);
                sw__free(buf);
                return rc;
            }
        }
    }
    sw__free(buf);
    return SW_OK;
}

/* A distributed fit's labels, every rank's, in row id order (the base
 * score sums them in that order, as one rank would); the row ids checked
 * to cover 0 .. n_all - 1 once. */
static sw_rc
gather_labels(trainer *t, double **y_all, sw_err *err)
{
    int64_t lens[SW_COLL_MAX_RANKS], i, total = 0, k;
    double *pairs, *ys;
    uint8_t *seen;
    void *buf = NULL;
    sw_rc rc;

    *y_all = NULL;
    pairs = sw__alloc_array((size_t)t->n + 1, 2 * sizeof(double));
    if (pairs == NULL)
        return sw__fail(err, SW_E_NOMEM, "gbdt: out of memory");
    for (i = 0; i < t->n; i++) {
        int64_t id = row_id(t, i);

        memcpy(&pairs[2 * i], &id, 8);
        pairs[2 * i + 1] = t->y[i];
    }
    rc = sw_coll_gather(t->coll, pairs, t->n * 16, &buf, lens, err);
    sw__free(pairs);
    if (rc != SW_OK)
        return rc;
    for (k = 0; k < sw_coll_size(t->coll); k++)
        total += lens[k] / 16;
    ys = sw__alloc_array((size_t)total + 1, sizeof(double));
    seen = sw__calloc((size_t)total + 1, 1);
    if (ys == NULL || seen == NULL) {
        rc = sw__fail(err, SW_E_NOMEM, "gbdt: out of memory");
        goto done;
    }
    pairs = buf;
    for (i = 0; i < total; i++) {
        int64_t id;

        memcpy(&id, &pairs[2 * i], 8);
        if (id < 0 || id >= total || seen[id]) {
            rc = sw__fail(err, SW_E_INVAL,
                          "gbdt: row id %lld is %s; the ranks' row ids must "
                          "cover 0 .. %lld once",
                          (long long)id,
                          id < 0 || id >= total ? "out of range" : "repeated",
                          (long long)total - 1);
            goto done;
        }
        seen[id] = 1;
        ys[id] = pairs[2 * i + 1];
    }
    t->n_all = total;
    *y_all = ys;
    ys = NULL;
done:
    sw__free(buf);
    sw__free(seen);
    sw__free(ys);
    return rc;
}

sw_rc
sw_gbdt_fit(const sw_conf *conf, const sw_rows *X, const double *y,
            const sw_rows *X_valid, const double *y_valid, const sw_model *init,
            double *valid_loss, sw_gbdt_progress progress, void *progress_ctx,
            sw_model **out, sw_err *err)
{
    return sw_gbdt_fit_shard(conf, X, y, NULL, NULL, X_valid, y_valid, init,
                             valid_loss, progress, progress_ctx, out, err);
}

/* Row ids (when given) increase, and alone they are 0 .. n - 1. */
static sw_rc
check_row_ids(const trainer *t, const int64_t *row_ids, sw_err *err)
{
    int64_t i;

    if (t->coll == NULL && row_ids != NULL) /* alone, the ids are 0 .. n - 1 */
        for (i = 0; i < t->n; i++)
            if (row_ids[i] != i)
                return sw__fail(err, SW_E_INVAL,
                                "gbdt: row id %lld of a fit on one rank is "
                                "%lld; one rank holds rows 0 .. n - 1",
                                (long long)i, (long long)row_ids[i]);
    for (i = 1; row_ids != NULL && i < t->n; i++)
        if (row_ids[i] <= row_ids[i - 1])
            return sw__fail(err, SW_E_INVAL,
                            "gbdt: row ids must increase: id %lld is %lld "
                            "after %lld",
                            (long long)i, (long long)row_ids[i],
                            (long long)row_ids[i - 1]);
    return SW_OK;
}

/* The settings and shapes checked against the labels (ys: every rank's),
 * the validation set and the model continued; multiclass's class count
 * from the labels when gbdt.num_class is 0. */
static sw_rc
check_setup(trainer *t, const double *ys, const sw_rows *X_valid,
            const double *y_valid, const sw_model *init, sw_err *err)
{
    int64_t i;
    sw_rc rc;

    if (t->objective == SW_GBDT_MULTICLASS) {
        if (t->K == 0) /* gbdt.num_class 0: from the labels */
            for (i = 0; i < t->n_all; i++)
                t->K = ys[i] + 1 > (double)t->K ? (int64_t)ys[i] + 1 : t->K;
        if (t->K < 3)
            return sw__fail(err, SW_E_INVAL,
                            "gbdt: multiclass needs at least 3 classes, the "
                            "labels have %lld (use gbdt.objective=binary)",
                            (long long)t->K);
        if (init != NULL && init->kind == SW_MODEL_GBDT &&
            init->u.gbdt->n_classes != t->K)
            return sw__fail(err, SW_E_INVAL,
                            "gbdt: the model has %lld classes, the labels "
                            "%lld",
                            (long long)init->u.gbdt->n_classes,
                            (long long)t->K);
    }
    if (t->nf < 1)
        return sw__fail(err, SW_E_SHAPE, "gbdt: rows without features");
    if (t->depthwise && t->max_depth <= 0)
        return sw__fail(err, SW_E_INVAL,
                        "gbdt: depth-wise growth needs gbdt.max_depth > 0");
    if (X_valid != NULL) {
        if ((rc = check_input(t, X_valid, y_valid, "validation", err)) !=
            SW_OK)
            return rc;
        if (X_valid->n_cols != t->nf)
            return sw__fail(err, SW_E_SHAPE,
                            "gbdt: validation rows have %lld features, "
                            "training rows %lld",
                            (long long)X_valid->n_cols, (long long)t->nf);
    }
    return SW_OK;
}

/* Leaves split at a time: a few per pool thread, as many on every rank
 * (a rank without a pool splits its share of them in turn). */
static sw_rc
agree_ahead(trainer *t, sw_err *err)
{
    double w;
    sw_rc rc;

    t->ahead_want = sw__pool_threads(t->workers) * AHEAD_PER_THREAD;
    t->ahead_want = t->workers == NULL          ? 1
                    : t->ahead_want < AHEAD_MAX ? t->ahead_want
                                                : AHEAD_MAX;
    if (t->coll == NULL)
        return SW_OK;
    w = t->ahead_want;
    if ((rc = sw_coll_max_f64(t->coll, &w, 1, err)) != SW_OK)
        return rc;
    t->ahead_want = (int)w;
    return SW_OK;
}

/* The rows' starting scores: the model continued's, or a new model's base
 * score from every rank's labels ys, summed in row order. */
static sw_rc
start_scores(trainer *t, const double *ys, const sw_model *init,
             sw_err *err)
{
    int64_t i, k;

    if (init != NULL)
        return sw__gbdt_raw(t->g, t->X, t->g->n_trees, t->score, err);
    if (t->K > 1) {
        /* each class starts from the log of its share of the labels */
        t->g->n_classes = t->K;
        t->g->base_scores = sw__calloc((size_t)t->K, sizeof(double));
        if (t->g->base_scores == NULL)
            return sw__fail(err, SW_E_NOMEM, "gbdt: out of memory");
        for (i = 0; i < t->n_all; i++)
            t->g->base_scores[(int64_t)ys[i]] += 1.0;
        for (k = 0; k < t->K; k++) {
            double p = t->g->base_scores[k] / (double)t->n_all;

            t->g->base_scores[k] = log(p > 1e-15 ? p : 1e-15);
        }
        for (i = 0; i < t->n; i++)
            memcpy(t->score + i * t->K, t->g->base_scores,
                   (size_t)t->K * sizeof(double));
    } else {
        double s = 0;

        for (i = 0; i < t->n_all; i++)
            s += ys[i];
        s /= (double)t->n_all;
        if (t->objective == SW_GBDT_BINARY) {
            s = s < 1e-15 ? 1e-15 : s > 1 - 1e-15 ? 1 - 1e-15 : s;
            s = log(s / (1 - s));
        }
        t->g->base_score = s;
        for (i = 0; i < t->n; i++)
            t->score[i] = s;
    }
    return SW_OK;
}

/* The rounds: K trees each, the validation loss after each (vraw: the
 * validation rows' raw scores so far), early stopping, and the trees up
 * to the best round kept. */
static sw_rc
run_rounds(trainer *t, const sw_rows *X_valid, const double *y_valid,
           double *vraw, double *valid_loss, sw_gbdt_progress progress,
           void *progress_ctx, sw_err *err)
{
    int64_t r, i, best_round = -1, first_tree = t->g->n_trees;
    double best_loss = INFINITY;
    sw_pool *pool;
    int want;
    sw_rc rc;

    t->round0 = first_tree / t->K;
    for (r = 0; r < t->rounds; r++) {
        double l = NAN;
        int stop = 0;

        if (t->K > 1) {
            /* every class's gradients from the round's starting scores */
            for (i = 0; i < t->n; i++) {
                memcpy(t->prob + i * t->K, t->score + i * t->K,
                       (size_t)t->K * sizeof(double));
                sw__gbdt_softmax(t->prob + i * t->K, t->K);
            }
        }
        for (t->cls = 0; t->cls < t->K; t->cls++) {
            int64_t root = t->g->n_nodes;

            /* trees cost about the same: the pool times them grown with
             * its workers and without, and says which way is faster now;
             * without, the tree grows as in a 1-thread fit (no splits
             * ahead, no pooled partitions), and is the same tree. Ranks
             * split in step: they do not pace. */
            pool = t->workers;
            want = t->ahead_want;
            if (t->coll == NULL && sw__pool_unit_begin(pool)) {
                t->workers = NULL;
                t->ahead_want = 1;
            }
            rc = sw__gbdt_grow_tree(t, r, err);
            t->workers = pool;
            t->ahead_want = want;
            sw__pool_unit_end(pool);
            if (rc != SW_OK || (rc = add_root(t, err)) != SW_OK)
                return rc;
            for (i = 0; X_valid != NULL && i < X_valid->n_rows; i++)
                vraw[i * t->K + t->cls] +=
                    sw__gbdt_tree_value(t->g, root, X_valid, i);
        }
        t->cls = 0;
        if (X_valid != NULL) {
            l = loss_of(t->objective, t->K, vraw, y_valid, X_valid->n_rows);
            if (valid_loss != NULL)
                valid_loss[r] = l;
            if (l < best_loss) {
                best_loss = l;
                best_round = r;
            } else if (t->early > 0 && r - best_round >= t->early) {
                stop = 1;
            }
        }
        if (progress != NULL && progress(progress_ctx, r + 1, t->rounds, l))
            return sw__fail(err, SW_E_STATE,
                            "gbdt: stopped by the caller after %lld rounds",
                            (long long)r + 1);
        if (stop)
            break;
    }
    if (t->early > 0 && X_valid != NULL && best_round >= 0) {
        /* keep the trees up to the best round */
        t->g->n_trees = first_tree + (best_round + 1) * t->K;
        t->g->n_nodes = t->g->roots[t->g->n_trees];
        t->g->best_iteration = first_tree / t->K + best_round;
    }
    return SW_OK;
}

/* Split counts and gains per feature, of the nodes this fit added. */
static void
count_importance(trainer *t, const sw_model *init)
{
    int64_t i;

    for (i = init ? init->u.gbdt->n_nodes : 0; i < t->g->n_nodes; i++) {
        const sw_gbdt_node *n = &t->g->nodes[i];

        if (n->feature >= 0) {
            t->g->imp_split[n->feature]++;
            t->g->imp_gain[n->feature] += t->node_gain[i];
        }
    }
}

sw_rc
sw_gbdt_fit_shard(const sw_conf *conf, const sw_rows *X, const double *y,
                  const int64_t *row_ids, sw_coll *coll,
                  const sw_rows *X_valid, const double *y_valid,
                  const sw_model *init, double *valid_loss,
                  sw_gbdt_progress progress, void *progress_ctx,
                  sw_model **out, sw_err *err)
{
    trainer t;
    double *vraw = NULL, *y_all = NULL;
    const double *ys;
    sw_rc rc;

    *out = NULL;
    memset(&t, 0, sizeof(t));
    if (conf == NULL || X == NULL)
        return sw__fail(err, SW_E_INVAL, "gbdt: NULL argument");
    read_conf(&t, conf);
    t.X = X;
    t.y = ys = y;
    t.n = t.n_all = X->n_rows;
    t.nf = X->n_cols;
    t.row_ids = row_ids;
    t.coll = sw_coll_size(coll) > 1 ? coll : NULL;
    {
        /* rank r searches features [nf r / P, nf (r + 1) / P) */
        int k, P = sw_coll_size(t.coll), r = sw_coll_rank(t.coll);

        t.f_lo = t.nf * r / P;
        t.f_hi = t.nf * (r + 1) / P;
        for (k = 0; k <= P; k++)
            t.hist_at[k] = t.nf * k / P * 256 * 2;
    }
    if ((rc = check_row_ids(&t, row_ids, err)) != SW_OK ||
        (rc = check_input(&t, X, y, "training", err)) != SW_OK)
        return rc;
    if (t.coll != NULL) {
        if ((rc = check_ranks(&t, X_valid, init, err)) != SW_OK ||
            (rc = gather_labels(&t, &y_all, err)) != SW_OK)
            return rc;
        ys = y_all;
    }
    if ((rc = check_setup(&t, ys, X_valid, y_valid, init, err)) != SW_OK ||
        (rc = alloc_all(&t, err)) != SW_OK ||
        (rc = start_model(&t, init, err)) != SW_OK ||
        (rc = agree_ahead(&t, err)) != SW_OK ||
        (rc = sw__gbdt_make_bins(&t, init != NULL, err)) != SW_OK ||
        (rc = start_scores(&t, ys, init, err)) != SW_OK)
        goto done;
    if (X_valid != NULL) {
        vraw = sw__alloc_array((size_t)X_valid->n_rows,
                               (size_t)t.K * sizeof(double));
        if (vraw == NULL) {
            rc = sw__fail(err, SW_E_NOMEM, "gbdt: out of memory");
            goto done;
        }
        if ((rc = sw__gbdt_raw(t.g, X_valid, t.g->n_trees, vraw, err)) != SW_OK)
            goto done;
    }
    if ((rc = run_rounds(&t, X_valid, y_valid, vraw, valid_loss, progress,
                         progress_ctx, err)) != SW_OK)
        goto done;
    count_importance(&t, init);
    rc = sw__model_wrap(SW_MODEL_GBDT, t.g, out, err);
    t.g = NULL; /* the model's now, or freed */
done:
    sw__free(vraw);
    sw__free(y_all);
    sw__gbdt_free(t.g);
    trainer_free(&t);
    return rc;
}

