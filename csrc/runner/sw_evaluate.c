/* SPDX-License-Identifier: MIT */
/*
 * sw_evaluate.c - live evaluation: each label join pair scored by the main
 * model (before it learns the pair, when it learns) and by the shadow,
 * folded into prequential accuracy and log-loss, AUC and a drift figure
 * over the last pairs, and logged with volume and latency to the
 * tracking store as the deployment's run (one run per model version
 * served), where streamwise.track reads it like any run.
 */
#include <jansson.h>

#include "io/sw_track.h"
#include "sw_run_int.h"

struct scored {
    double s;
    unsigned char pos;
};

/* What a model is evaluated on, and the run its figures go to. */
struct evaluation {
    int64_t n_o, n_classes;   /* n_classes 0: a regressor */
    int proba;                /* the outputs are probabilities (GBDT) */
    int64_t n, hits;          /* pairs, right guesses (classifiers) */
    double loss, sq;          /* log-loss or |error|, squared errors */
    /* the last window pairs: score (the decision value, the top class's
     * probability, or the prediction) and whether the label was class 1 */
    double *win;
    unsigned char *pos;
    int64_t cap, len, at;
    /* drift: the deciles of the training scores the model file carries
     * (score_reference in its metadata, from save(reference=...)), else
     * of the first full window, and how those scores fill them */
    int has_base, base_training;
    double edges[9], base[10];
    struct scored *sorted; /* scratch of cap */
    sw__track *tr;
};

enum { K_ACC, K_LOSS, K_AUC, K_PSI, K_PAIRS, K_RATE, K_LAT, N_KEYS };

/* The metric keys of a classifier's run [0] and a regressor's [1]. */
const char *const sw__live_keys[2][N_KEYS] = {
    {"live_accuracy", "live_log_loss", "live_auc", "live_psi", "live_pairs",
     "events_per_s", "batch_latency_s"},
    {"live_mae", "live_rmse", "live_auc", "live_psi", "live_pairs",
     "events_per_s", "batch_latency_s"}};

const char *const sw__live_slots[SW_LIVE_SLOTS] = {"main", "shadow",
                                                   "canary"};

static const char *
slot_name(const run *R, const slot *sl)
{
    return sw__live_slots[sl == &R->main ? 0 : sl == &R->shadow ? 1 : 2];
}

/* The run of a slot's model in the tracking store (none without a
 * registry: the figures are then only in /metrics). A store that cannot
 * take it is said once; serving goes on. */
static void
open_run(run *R, slot *sl)
{
    evaluation *ev = sl->ev;
    char name[600], version[32];
    const char *tags[15];
    sw_err err = {0};
    const char *const *keys = sw__live_keys[ev->n_classes ? 0 : 1];

    if (R->j->registry == NULL)
        return;
    snprintf(version, sizeof(version), "%lld", (long long)sl->s.version);
    snprintf(name, sizeof(name), "%s %s: %s", R->j->runner,
             slot_name(R, sl), sl->s.model);
    tags[0] = "streamwise.runner", tags[1] = R->j->runner;
    tags[2] = "streamwise.slot", tags[3] = slot_name(R, sl);
    tags[4] = "streamwise.model", tags[5] = sl->s.model;
    tags[6] = "streamwise.model_version", tags[7] = version;
    tags[8] = "streamwise.sha256", tags[9] = sl->s.sha;
    tags[10] = "streamwise.learning", tags[11] =
        sl == &R->main && R->j->learn ? "true" : "false";
    tags[12] = "streamwise.drift_baseline";
    tags[13] = ev->base_training ? "training scores" : "first window";
    tags[14] = NULL;
    if (sw__track_start(R->j->registry, R->j->eval_experiment, name, tags,
                        keys, N_KEYS, &ev->tr, &err) != SW_OK)
        sw__log("evaluate: %s: no tracking run: %s\n", sl->s.model, err.msg);
    else
        sw__log("evaluate: %s %s: tracking run %s in "
                "experiment '%s'\n",
                slot_name(R, sl), sl->s.model, sw__track_run_id(ev->tr),
                R->j->eval_experiment);
}

/* The baseline of the drift figure the model file carries, if any: nine
 * increasing decile edges and ten fractions (python/streamwise/_base.py's
 * score_reference). */
static void
load_reference(evaluation *ev, const sw_model *m)
{
    json_t *meta = json_loads(sw_model_metadata(m), 0, NULL);
    json_t *ref = json_object_get(meta, "score_reference");
    json_t *e = json_object_get(ref, "edges"), *f = json_object_get(ref,
                                                                   "fractions");
    int b, ok = json_array_size(e) == 9 && json_array_size(f) == 10;

    for (b = 0; ok && b < 10; b++) {
        ok = json_is_number(json_array_get(f, (size_t)b)) &&
             (b == 9 || (json_is_number(json_array_get(e, (size_t)b)) &&
                         (b == 0 || json_number_value(json_array_get(
                                        e, (size_t)b)) >=
                                        json_number_value(json_array_get(
                                            e, (size_t)b - 1)))));
    }
    ev->has_base = ev->base_training = 0;
    for (b = 0; ok && b < 10; b++) {
        if (b < 9)
            ev->edges[b] = json_number_value(json_array_get(e, (size_t)b));
        ev->base[b] = json_number_value(json_array_get(f, (size_t)b));
    }
    if (ok)
        ev->has_base = ev->base_training = 1;
    json_decref(meta);
}

static sw_rc
eval_new(run *R, slot *sl, sw_err *err)
{
    evaluation *ev = calloc(1, sizeof(*ev));
    int64_t w = R->j->eval_window;

    if (ev == NULL || (ev->win = malloc((size_t)w * sizeof(double))) == NULL ||
        (ev->pos = malloc((size_t)w)) == NULL ||
        (ev->sorted = malloc((size_t)w * sizeof(*ev->sorted))) == NULL) {
        sl->ev = ev;
        return fail(err, SW_E_NOMEM, "evaluate: out of memory");
    }
    ev->cap = w;
    ev->n_o = sw_model_n_outputs(sl->s.m);
    ev->n_classes = sw_model_n_classes(sl->s.m);
    ev->proba = sw_model_kind_of(sl->s.m) == SW_MODEL_GBDT;
    load_reference(ev, sl->s.m);
    sl->ev = ev;
    open_run(R, sl);
    return SW_OK;
}

sw_rc
run_eval_open(run *R, sw_err *err)
{
    sw_rc rc;

    if (!R->j->evaluate)
        return SW_OK;
    if (!run_bundle_joins(R))
        return fail(err, SW_E_INVAL,
                    "job: evaluate: the bundle's pipeline has no label_join: "
                    "nothing says which event labels which prediction "
                    "(docs/pipelines.md, \"Delayed labels\")");
    R->ev_last = now_s();
    if ((rc = eval_new(R, &R->main, err)) != SW_OK)
        return rc;
    if (R->shadow.s.m != NULL && (rc = eval_new(R, &R->shadow, err)) != SW_OK)
        return rc;
    if (R->canary.s.m != NULL)
        return eval_new(R, &R->canary, err);
    return SW_OK;
}

static int
by_score(const void *a, const void *b)
{
    double x = ((const struct scored *)a)->s, y = ((const struct scored *)b)->s;

    return x < y ? -1 : x > y;
}

/* The window's scores in order (its labels with them). */
static void
sort_window(evaluation *ev)
{
    int64_t i;

    for (i = 0; i < ev->len; i++) {
        ev->sorted[i].s = ev->win[i];
        ev->sorted[i].pos = ev->pos[i];
    }
    qsort(ev->sorted, (size_t)ev->len, sizeof(*ev->sorted), by_score);
}

/* The area under the ROC curve of the window: the Mann-Whitney statistic
 * from average ranks, ties counting one half (evaluate.roc_auc's). */
static double
window_auc(evaluation *ev)
{
    int64_t i, a, b, n_pos = 0, n = ev->len;
    double rank_sum = 0;

    for (i = 0; i < n; i++)
        n_pos += ev->pos[i];
    if (n_pos == 0 || n_pos == n)
        return NAN;
    sort_window(ev);
    for (a = 0; a < n; a = b) {
        double avg;

        for (b = a + 1; b < n && ev->sorted[b].s == ev->sorted[a].s; b++)
            ;
        avg = (double)(a + b + 1) / 2.0;
        for (i = a; i < b; i++)
            rank_sum += ev->sorted[i].pos ? avg : 0;
    }
    return (rank_sum - (double)n_pos * (double)(n_pos + 1) / 2.0) /
           ((double)n_pos * (double)(n - n_pos));
}

/* Proportions of the window's scores in the deciles of the baseline. */
static void
fill_bins(const evaluation *ev, const double *x, int64_t n, double *frac)
{
    int64_t i;
    int b;

    for (b = 0; b < 10; b++)
        frac[b] = 0;
    for (i = 0; i < n; i++) {
        for (b = 0; b < 9 && x[i] > ev->edges[b]; b++)
            ;
        frac[b] += 1.0 / (double)n;
    }
}

/* The population stability index of the window against the baseline:
 * sum (a - b) ln(a / b) over the deciles, proportions floored at 1e-4. */
static double
window_psi(evaluation *ev)
{
    double now[10], psi = 0;
    int b;

    /* against training, once the window holds enough to say; against
     * the first window, once a window has come */
    int64_t enough = ev->base_training && ev->cap > 100 ? 100 : ev->cap;

    if (!ev->has_base || ev->len < enough)
        return NAN;
    fill_bins(ev, ev->win, ev->len, now);
    for (b = 0; b < 10; b++) {
        double x = now[b] < 1e-4 ? 1e-4 : now[b];
        double y = ev->base[b] < 1e-4 ? 1e-4 : ev->base[b];

        psi += (x - y) * log(x / y);
    }
    return psi;
}

/* Fold one pair: the model's n_o outputs for it before it was learned,
 * its label, and (hit >= 0) whether the learner's own guess was right.
 * The probabilities and the log-loss are evaluate.prequential's: the
 * logistic of a decision value or the softmax of class scores, clipped
 * to [1e-15, 1 - 1e-15]. */
void
run_eval_add(evaluation *ev, const double *o, double label, int hit)
{
    double score = o[0];
    int64_t c, code = (int64_t)label;

    if (ev->n_classes == 0) {
        double e = label - o[0];

        ev->loss += fabs(e);
        ev->sq += e * e;
    } else if (ev->n_o == 1) {
        /* a GBDT's probability, or 1 / (1 + e^-d) of a decision value as
         * _base.proba writes it */
        double d = o[0], e = exp(-fabs(d));
        double p1 = ev->proba ? d : d >= 0 ? 1.0 / (1.0 + e) : e / (1.0 + e);
        double p = code == 1 ? p1 : 1.0 - p1;

        p = p < 1e-15 ? 1e-15 : p > 1 - 1e-15 ? 1 - 1e-15 : p;
        ev->loss += -log(p);
        ev->hits += hit >= 0 ? hit : (ev->proba ? d > 0.5 : d > 0) == (code == 1);
    } else {
        double mx = o[0], sum = 0, p;
        int64_t best = 0;

        for (c = 1; c < ev->n_o; c++) {
            if (o[c] > mx)
                mx = o[c], best = c;
        }
        for (c = 0; c < ev->n_o && !ev->proba; c++)
            sum += exp(o[c] - mx);
        p = code < 0 || code >= ev->n_o ? 0
            : ev->proba                 ? o[code]
                                        : exp(o[code] - mx) / sum;
        p = p < 1e-15 ? 1e-15 : p > 1 - 1e-15 ? 1 - 1e-15 : p;
        ev->loss += -log(p);
        ev->hits += hit >= 0 ? hit : best == code;
        /* the top class's probability */
        score = ev->proba ? mx : 1.0 / sum;
    }
    ev->n++;
    ev->win[ev->at] = score;
    ev->pos[ev->at] = code == 1;
    ev->at = (ev->at + 1) % ev->cap;
    if (ev->len < ev->cap)
        ev->len++;
    if (ev->n == ev->cap && !ev->has_base) {
        /* no training scores: the baseline is the first window's */
        int b;

        sort_window(ev);
        for (b = 0; b < 9; b++)
            ev->edges[b] = ev->sorted[(ev->len * (b + 1)) / 10].s;
        fill_bins(ev, ev->win, ev->len, ev->base);
        ev->has_base = 1;
    }
}

static sw_rc
eval_room(run *R, int64_t n, sw_err *err)
{
    double *p;

    if (n <= R->ev_cap)
        return SW_OK;
    if ((p = realloc(R->ev_scratch, (size_t)n * sizeof(double))) == NULL)
        return fail(err, SW_E_NOMEM, "evaluate: out of memory");
    R->ev_scratch = p;
    R->ev_cap = n;
    return SW_OK;
}

sw_rc
run_eval_score(run *R, const slot *sl, const double *dense,
               const int64_t *hashed, sw_err *err)
{
    sw_rc rc = eval_room(R, sl->ev->n_o, err);

    if (rc != SW_OK)
        return rc;
    return sw_model_predict_features(sl->s.m, R->t->p, dense, hashed, 1,
                                     R->ev_scratch, sl->ev->n_o, err);
}

/* Whether a pair is the canary's: the key of its outcome event (labels
 * are keyed like what they label, so they land in its partition), or,
 * unmatched, of its prediction event, while the FIFO still holds it;
 * else the main model's. */
static int
canary_pair(const run *R, int64_t pseq, int64_t oseq)
{
    const task *t = R->t;
    int64_t k = oseq >= t->base && oseq < t->base + t->n ? oseq - t->base
                : pseq >= t->base && pseq < t->base + t->n ? pseq - t->base
                                                            : -1;

    return k >= 0 && run_to_canary(R, t->karena + t->f_kat[k],
                                   (size_t)t->f_klen[k]);
}

/* The pairs of the current result, scored by the slots that do not learn
 * them (the learning main model is evaluated as it learns). */
sw_rc
run_eval_pairs(run *R, sw_err *err)
{
    const double *dense, *label;
    const int64_t *ind, *seq, *t, *oseq;
    int64_t n = sw_result_pairs(R->t->r, &dense, &ind, &seq, &t, &label,
                                &oseq);
    slot *slots[SW_LIVE_SLOTS] = {&R->main, &R->shadow, &R->canary};
    int s;
    sw_rc rc;

    for (s = 0; s < SW_LIVE_SLOTS && n > 0; s++) {
        slot *sl = slots[s];
        int64_t i, n_o;

        if (sl->ev == NULL || sl->s.m == NULL || (sl == &R->main && R->j->learn))
            continue;
        n_o = sl->ev->n_o;
        if ((rc = eval_room(R, n * n_o, err)) != SW_OK ||
            (rc = sw_model_predict_features(
                 sl->s.m, R->t->p, dense,
                 sw_pipeline_n_hashed(R->t->p) ? ind : NULL, n, R->ev_scratch,
                 n * n_o, err)) != SW_OK)
            return rc;
        for (i = 0; i < n; i++) {
            /* the shadow scores every pair; the main model and the canary
             * those whose key went their way */
            if (sl != &R->shadow && R->canary.ev != NULL &&
                canary_pair(R, seq[i], oseq[i]) != (sl == &R->canary))
                continue;
            run_eval_add(sl->ev, R->ev_scratch + i * n_o, label[i], -1);
        }
    }
    return SW_OK;
}


/* The figures of a slot now. */
static void
figures(evaluation *ev, double rate, double latency, double *v)
{
    if (ev->n_classes) {
        v[K_ACC] = ev->n ? (double)ev->hits / (double)ev->n : NAN;
        v[K_LOSS] = ev->n ? ev->loss / (double)ev->n : NAN;
    } else {
        v[K_ACC] = ev->n ? ev->loss / (double)ev->n : NAN;
        v[K_LOSS] = ev->n ? sqrt(ev->sq / (double)ev->n) : NAN;
    }
    v[K_AUC] = ev->n_classes == 2 ? window_auc(ev) : NAN;
    v[K_PSI] = window_psi(ev);
    v[K_PAIRS] = (double)ev->n;
    v[K_RATE] = rate;
    v[K_LAT] = latency;
}

/* Every eval_seconds (and at the end): each slot's figures to /metrics
 * and to its tracking run. A store that fails is said, and its run is
 * dropped: serving matters more than the record of it. */
void
run_eval_tick(run *R, int final)
{
    slot *slots[SW_LIVE_SLOTS] = {&R->main, &R->shadow, &R->canary};
    double now = now_s(), dt = now - R->ev_last, rate, lat;
    int64_t in = atomic_load(&R->mt->events_in);
    int64_t lc = atomic_load(&R->mt->lat_count);
    int64_t ls = atomic_load(&R->mt->lat_sum_us);
    int s;

    if (!R->j->evaluate || (!final && dt < R->j->eval_seconds))
        return;
    rate = dt > 0 ? (double)(in - R->ev_in) / dt : NAN;
    lat = lc > R->ev_lat_n ? (double)(ls - R->ev_lat_us) /
                                 (double)(lc - R->ev_lat_n) / 1e6
                           : NAN;
    R->ev_last = now, R->ev_in = in, R->ev_lat_n = lc, R->ev_lat_us = ls;
    for (s = 0; s < SW_LIVE_SLOTS; s++) {
        evaluation *ev = slots[s]->ev;
        double v[N_KEYS];
        sw_err err = {0};

        if (ev == NULL)
            continue;
        figures(ev, rate, lat, v);
        pthread_mutex_lock(&R->mt->info_lock);
        memcpy(R->mt->live[s], v, sizeof(v));
        R->mt->live_set[s] = ev->n_classes ? 1 : 2;
        pthread_mutex_unlock(&R->mt->info_lock);
        if (ev->tr != NULL &&
            sw__track_log(ev->tr, v, ev->n,
                          atomic_load(&R->mt->watermark_us), &err) != SW_OK) {
            sw__log("evaluate: %s: tracking run %s "
                    "dropped: %s\n",
                    slots[s]->s.model, sw__track_run_id(ev->tr), err.msg);
            sw__track_end(ev->tr, "FAILED", &err);
            ev->tr = NULL;
        }
    }
}

/* A slot's model was swapped: its run ends with the figures so far, and
 * the new version is evaluated afresh in a run of its own. */
void
run_eval_swapped(run *R, slot *sl)
{
    evaluation *ev = sl->ev;
    sw_err err = {0};

    if (ev == NULL)
        return;
    run_eval_tick(R, 1);
    sw__track_end(ev->tr, "FINISHED", &err);
    ev->tr = NULL;
    ev->n = ev->hits = ev->len = ev->at = 0;
    ev->loss = ev->sq = 0;
    ev->n_o = sw_model_n_outputs(sl->s.m);
    ev->n_classes = sw_model_n_classes(sl->s.m);
    ev->proba = sw_model_kind_of(sl->s.m) == SW_MODEL_GBDT;
    load_reference(ev, sl->s.m);
    open_run(R, sl);
}

/* A slot's evaluation ended: its run closed (FINISHED after a clean
 * stop or a retirement; a runner that dies leaves its run RUNNING, as a
 * notebook's would) and freed. */
void
run_eval_end(run *R, slot *sl, int clean)
{
    evaluation *ev = sl->ev;
    sw_err err = {0};

    (void)R;
    if (ev == NULL)
        return;
    sw__track_end(ev->tr, clean ? "FINISHED" : "FAILED", &err);
    free(ev->win);
    free(ev->pos);
    free(ev->sorted);
    free(ev);
    sl->ev = NULL;
}

void
run_eval_close(run *R, int clean)
{
    if (clean)
        run_eval_tick(R, 1);
    run_eval_end(R, &R->main, clean);
    run_eval_end(R, &R->shadow, clean);
    run_eval_end(R, &R->canary, clean);
    free(R->ev_scratch);
    R->ev_scratch = NULL;
    R->ev_cap = 0;
}
