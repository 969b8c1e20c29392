/* SPDX-License-Identifier: MIT */
/*
 * sw_learn.c - online learning in the loop: the label join's pairs learned test
 * then train, and learned snapshots registered with their lineage.
 */
#include <jansson.h>

#include "sw_run_int.h"

/* Register the learned model as a new version, with its lineage: the
 * version it grew from, the pairs learned in all, and the offsets of the
 * outcomes learned since the last snapshot. On the loop, between two
 * pairs: a save and a registry write (milliseconds for a linear model). A
 * failure is logged; scoring and learning go on. */
static void
snapshot(run *R)
{
    const char *name = R->j->snapshot_name;
    char base[256];
    unsigned char *bytes = NULL;
    size_t len = 0;
    int64_t version = 0;
    json_t *lin = json_object(), *from = json_array();
    char *text = NULL;
    sw_err e = {0};
    int i;

    if (name == NULL) {
        snprintf(base, sizeof(base), "%.*s", (int)strcspn(R->j->bundle, "@"),
                 R->j->bundle);
        name = base;
    }
    json_object_set_new(lin, "parent",
                        json_pack("{s:s, s:I, s:s}", "ref", R->j->bundle,
                                  "version", (json_int_t)R->main.s.version,
                                  "sha256", R->main.s.sha));
    json_object_set_new(lin, "learned_pairs", json_integer(R->n_learned));
    for (i = 0; i < R->n_snap; i++)
        json_array_append_new(
            from, json_pack("{s:i, s:I, s:I}", "partition", R->snap_part[i],
                            "first_offset", (json_int_t)R->snap_lo[i],
                            "last_offset", (json_int_t)R->snap_hi[i]));
    json_object_set_new(lin, "outcomes", from);
    R->snap_t = now_s(); /* tried: a failing store is not asked each batch */
    json_object_set_new(lin, "runner", json_string(R->main.s.model));
    text = json_dumps(lin, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(lin);
    if (text == NULL ||
        sw_model_save_buffer(R->main.s.m, &bytes, &len, &e) != SW_OK ||
        sw_registry_register(R->j->registry, name, bytes, len, text, "sw-serve",
                             &version, &e) != SW_OK) {
        sw__log("learn: snapshot not registered: %s\n",
                text ? e.msg : "out of memory");
    } else {
        sw__log("learn: %lld pairs learned, registered as "
                "%s@%lld\n",
                (long long)R->n_learned, name, (long long)version);
        atomic_fetch_add(&R->mt->snapshots, 1);
        R->n_snap = 0;
        R->snap_learned = R->n_learned;
    }
    sw_buffer_free(bytes);
    free(text);
}

/* Online learning, test then train in processing order: each row is
 * scored by the model as it is after every pair whose outcome came before
 * it, and each pair (the label join's: the features its prediction event
 * had, the outcome's label) is learned at its outcome's row. A label that
 * directly follows its event therefore gives what
 * streamwise.evaluate.prequential gives on the same order. Pairs no
 * outcome claimed (the watermark passed their limit) are learned where
 * they come. The counts of pairs learned and of pairs the model had right
 * just before learning them are the live prequential accuracy. */
static sw_rc
learn_pairs(run *R, int64_t a, int64_t z, sw_err *err)
{
    const double *dense, *label;
    const int64_t *ind, *seq, *t, *oseq;
    int nd = sw_pipeline_n_dense(R->t->p), nh = sw_pipeline_n_hashed(R->t->p);
    double guess;
    int64_t j;
    sw_rc rc;

    sw_result_pairs(R->t->r, &dense, &ind, &seq, &t, &label, &oseq);
    for (j = a; j < z; j++) {
        /* evaluated on what the model says before it learns the pair */
        if (R->main.ev != NULL &&
            (rc = run_eval_score(R, &R->main, dense + j * nd,
                                 nh ? ind + j * nh : NULL, err)) != SW_OK)
            return rc;
        rc = sw_model_learn_features(R->main.s.m, R->t->p, dense + j * nd,
                                     nh ? ind + j * nh : NULL, 1, &label[j],
                                     &guess, err);
        if (rc != SW_OK)
            return rc;
        R->n_learned++;
        R->n_hits += guess == label[j];
        if (R->main.ev != NULL)
            run_eval_add(R->main.ev, R->ev_scratch, label[j],
                         guess == label[j]);
        if (oseq[j] >= R->t->base && oseq[j] < R->t->base + R->t->n) {
            int64_t k = oseq[j] - R->t->base, off = R->t->f_off[k];
            int32_t part = R->t->f_part[k];
            int s;

            for (s = 0; s < R->n_snap && R->snap_part[s] != part; s++)
                ;
            if (s == R->n_snap && s < MAX_PARTS) {
                R->n_snap++;
                R->snap_part[s] = part;
                R->snap_lo[s] = R->snap_hi[s] = off;
            }
            if (s < R->n_snap) {
                R->snap_lo[s] = off < R->snap_lo[s] ? off : R->snap_lo[s];
                R->snap_hi[s] = off > R->snap_hi[s] ? off : R->snap_hi[s];
            }
        }
        if (R->j->snapshot_every > 0 &&
            R->n_learned % R->j->snapshot_every == 0)
            snapshot(R);
    }
    return SW_OK;
}

sw_rc
run_learn_predict(run *R, int64_t n, sw_err *err)
{
    const double *pdense, *label, *dense = sw_result_dense(R->t->r);
    const int64_t *pind, *pseq, *pt, *oseq;
    const int64_t *seq = sw_result_seq(R->t->r), *ind = sw_result_indices(R->t->r);
    int64_t n_pairs, n_o = sw_model_n_outputs(R->main.s.m), i, j = 0, a;
    int nd = sw_pipeline_n_dense(R->t->p), nh = sw_pipeline_n_hashed(R->t->p);
    slot *sl = &R->main;
    sw_rc rc;

    n_pairs = sw_result_pairs(R->t->r, &pdense, &pind, &pseq, &pt, &label, &oseq);
    if ((rc = slot_room(sl, n * n_o, err)) != SW_OK)
        return rc;
    for (i = 0; i < n; i++) {
        /* pairs closed before this row: unclaimed ones the watermark let
         * go, and those whose outcome is this row's event (matched pairs
         * come in the order of their outcomes) */
        for (a = j; j < n_pairs && oseq[j] < 0; j++)
            ;
        if ((rc = learn_pairs(R, a, j, err)) != SW_OK)
            return rc;
        rc = sw_model_predict_features(sl->s.m, R->t->p, dense + i * nd,
                                       nh ? ind + i * nh : NULL, 1,
                                       sl->pred + i * n_o, n_o, err);
        if (rc != SW_OK)
            return rc;
        for (a = j; j < n_pairs && oseq[j] == seq[i]; j++)
            ;
        if ((rc = learn_pairs(R, a, j, err)) != SW_OK)
            return rc;
    }
    rc = learn_pairs(R, j, n_pairs, err); /* what the flush closed */
    atomic_store(&R->mt->learned, R->n_learned);
    atomic_store(&R->mt->learn_hits, R->n_hits);
    if (rc == SW_OK && R->j->snapshot_seconds_learned > 0 &&
        R->n_learned > R->snap_learned &&
        now_s() - R->snap_t >= R->j->snapshot_seconds_learned)
        snapshot(R); /* between two batches */
    return rc;
}

void
run_learn_start(run *R)
{
    R->snap_t = now_s();
    R->snap_learned = R->n_learned;
}

void
run_learn_stop(run *R)
{
    if (R->j->learn && R->j->snapshot_seconds_learned > 0 &&
        R->n_learned > R->snap_learned)
        snapshot(R);
}

/* Whether the bundle's pipeline joins labels to predictions. */
int
run_bundle_joins(const run *R)
{
    json_t *spec = json_loads(sw_model_pipeline_spec(R->main.s.m), 0, NULL);
    int has_join = spec != NULL && json_object_get(spec, "label_join");

    json_decref(spec);
    return has_join;
}

/* What online learning needs, said at start by name. */
sw_rc
run_check_learning(const run *R, sw_err *err)
{
    if (sw_model_kind_of(R->main.s.m) != SW_MODEL_LINEAR)
        return fail(err, SW_E_INVAL,
                    "job: learn: %s is not an online learner; the "
                    "passive-aggressive and SCW models learn in the runner",
                    R->main.s.model);
    if (!run_bundle_joins(R))
        return fail(err, SW_E_INVAL,
                    "job: learn: the bundle's pipeline has no label_join: "
                    "nothing says which event labels which prediction "
                    "(docs/pipelines.md, \"Delayed labels\")");
    if (R->j->canary != NULL)
        return fail(err, SW_E_INVAL,
                    "job: learn: a canary beside a learning model is not "
                    "supported: the canary's keys would teach the main "
                    "model what another model scored");
    return SW_OK;
}
