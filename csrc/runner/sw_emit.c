/* SPDX-License-Identifier: MIT */
/*
 * sw_emit.c - rows out of the pipeline -> predictions -> output lines: the main
 * model, the canary for its keys, the shadow beside them, or each tenant's
 * model; and the feature rows.
 */
#include <xxhash.h>

#include "sw_run_int.h"

/* The slot's predictions of the rows of R->t->r into its pred buffer. */
static sw_rc
predict_slot(run *R, slot *sl, int64_t n, sw_err *err)
{
    int64_t n_o = sw_model_n_outputs(sl->s.m);
    sw_rc rc;

    if ((rc = slot_room(sl, n * n_o, err)) != SW_OK)
        return rc;
    return sw_model_predict_result(sl->s.m, R->t->p, R->t->r, sl->pred, n * n_o,
                                   err);
}

/* A row's n_o outputs p: a number, or for several outputs a JSON list
 * (list, sep ",") or a CSV field (sep ";"). */
static void
add_outputs(buf *b, const double *p, int64_t n_o, const char *sep, int list)
{
    int64_t c;

    if (n_o == 1) {
        add_num(b, p[0]);
        return;
    }
    if (list)
        add(b, "[");
    for (c = 0; c < n_o; c++) {
        if (c)
            add(b, sep);
        add_num(b, p[c]);
    }
    if (list)
        add(b, "]");
}

/* Row i's prediction by a slot's model. */
static void
add_prediction(buf *b, const slot *sl, int64_t i, const char *sep, int list)
{
    int64_t n_o = sw_model_n_outputs(sl->s.m);

    add_outputs(b, sl->pred + i * n_o, n_o, sep, list);
}

/* Whether the canary scores this key: the XXH3-64 hash of its bytes
 * (seed 0) over 2^64 below the fraction, so a key always goes the same
 * way, in every runner and every restart. */
int
run_to_canary(const run *R, const char *key, size_t klen)
{
    return R->canary.s.m != NULL &&
           (double)XXH3_64bits(key, klen) * 0x1p-64 < R->j->canary_fraction;
}

/* A job of tenants: each row scored by its tenant's model alone, named in
 * the output; a refused tenant's events are dead letters with its reason
 * (the message is on the topic at its partition and offset). */
static sw_rc
emit_tenants(run *R, int64_t n, sw_err *err)
{
    const int64_t *seq = sw_result_seq(R->t->r), *t = sw_result_time(R->t->r);
    const double *dense = sw_result_dense(R->t->r);
    const int64_t *ind = sw_result_indices(R->t->r);
    int nd = sw_pipeline_n_dense(R->t->p), nh = sw_pipeline_n_hashed(R->t->p);
    double pred[256];
    int64_t i;
    int o;
    sw_rc rc;

    for (i = 0; i < n; i++) {
        int64_t k = seq[i] - R->t->base, n_o;
        const char *key;
        size_t klen;
        tenant *tt;

        if (k < 0 || k >= R->t->n)
            return fail(err, SW_E_INTERNAL,
                        "run: row of event %lld has no FIFO slot",
                        (long long)seq[i]);
        key = R->t->karena + R->t->f_kat[k];
        klen = (size_t)R->t->f_klen[k];
        tt = sw__tenants_get(R->tn, key + klen, (size_t)R->t->f_tlen[k],
                             now_s());
        if (tt == NULL)
            return fail(err, SW_E_NOMEM, "run: out of memory (tenants)");
        if (tt->m == NULL) {
            atomic_fetch_add(&tt->n_dead, 1);
            R->n_dead++;
            rc = run_dead_letter(R, R->t->f_part[k], R->t->f_off[k],
                                 tt->state == TENANT_RETIRED ? "tenant_retired"
                                                             : "tenant_refused",
                                 R->j->tenant_field, NULL, 0, err);
            if (rc != SW_OK)
                return rc;
            continue;
        }
        n_o = sw_model_n_outputs(tt->m);
        if (n_o > 256)
            return fail(err, SW_E_INVAL, "tenant %s: %lld outputs, at most "
                                         "256",
                        tt->name, (long long)n_o);
        rc = sw_model_predict_features(tt->m, R->t->p, dense + i * nd,
                                       nh ? ind + i * nh : NULL, 1, pred, n_o,
                                       err);
        if (rc != SW_OK)
            return rc;
        atomic_fetch_add(&tt->n_scored, 1);
        R->n_out++;
        for (o = 0; o < R->j->n_sinks; o++) {
            out *s = &R->outs[o];

            R->line.len = 0;
            if (s->spec->avro && n_o != sw_model_n_outputs(R->main.s.m))
                return fail(err, SW_E_INVAL,
                            "tenant %s: its model gives %lld outputs, the "
                            "Avro schema of sinks[%d] the bundle's %lld",
                            tt->name, (long long)n_o, o,
                            (long long)sw_model_n_outputs(R->main.s.m));
            if (s->spec->avro) {
                avro_head(&R->line, s->spec->schema_id);
                avro_str(&R->line, key, klen);
                avro_outputs(&R->line, pred, n_o);
                avro_str(&R->line, tt->model, strlen(tt->model));
                avro_str(&R->line, tt->sha, 64);
                avro_long(&R->line, R->t->f_part[k]);
                avro_long(&R->line, R->t->f_off[k]);
                avro_long(&R->line, t[i]);
                avro_long(&R->line, 1); /* tenant: the string branch */
                avro_str(&R->line, tt->name, tt->name_len);
                avro_long(&R->line, 0); /* shadow: null */
            } else if (s->spec->kind == OUT_CSV) {
                add(&R->line, "%d,%lld,%lld,", R->t->f_part[k],
                    (long long)R->t->f_off[k], (long long)t[i]);
                add_json_str(&R->line, key, klen);
                ADD_LIT(&R->line, ",");
                add_outputs(&R->line, pred, n_o, ";", 0);
                add(&R->line, ",%s,%s", tt->model, tt->sha);
            } else {
                ADD_LIT(&R->line, "{\"key\":");
                add_json_str(&R->line, key, klen);
                ADD_LIT(&R->line, ",\"prediction\":");
                add_outputs(&R->line, pred, n_o, ",", 1);
                ADD_LIT(&R->line, ",\"tenant\":");
                add_json_str(&R->line, tt->name, tt->name_len);
                ADD_LIT(&R->line, ",\"model\":");
                add_json_str(&R->line, tt->model, strlen(tt->model));
                add(&R->line, ",\"sha256\":\"%s\",\"partition\":%d,"
                              "\"offset\":%lld,\"time_us\":%lld}",
                    tt->sha, R->t->f_part[k], (long long)R->t->f_off[k],
                    (long long)t[i]);
            }
            rc = run_out_write(s, key, klen, R->line.p, R->line.len, NULL, err);
            if (rc != SW_OK)
                return rc;
        }
    }
    return SW_OK;
}

/* Write the predictions (and feature rows) of the rows of R->t->r: the main
 * model's, or the canary's for its keys, and the shadow's beside them. */
sw_rc
run_emit(run *R, sw_err *err)
{
    int64_t n = sw_result_rows(R->t->r), i, c, n_labels = 0;
    const int64_t *seq = sw_result_seq(R->t->r), *t = sw_result_time(R->t->r);
    int o;
    sw_rc rc;

    if (R->main.ev != NULL && (rc = run_eval_pairs(R, err)) != SW_OK)
        return rc;
    if (n == 0) /* no rows; pairs the watermark closed may still come */
        return R->j->learn ? run_learn_predict(R, 0, err) : SW_OK;
    if (R->tn != NULL)
        return emit_tenants(R, n, err);
    if ((rc = R->j->learn ? run_learn_predict(R, n, err)
                          : predict_slot(R, &R->main, n, err)) != SW_OK ||
        (R->shadow.s.m != NULL &&
         (rc = predict_slot(R, &R->shadow, n, err)) != SW_OK) ||
        (R->canary.s.m != NULL &&
         (rc = predict_slot(R, &R->canary, n, err)) != SW_OK))
        return rc;
    for (i = 0; i < n; i++) {
        int64_t k = seq[i] - R->t->base;
        const char *key;
        const slot *use;
        int32_t part;
        int64_t off;
        size_t klen;

        if (k < 0 || k >= R->t->n)
            return fail(err, SW_E_INTERNAL,
                        "run: row of event %lld has no FIFO slot (%lld..%lld)",
                        (long long)seq[i], (long long)R->t->base,
                        (long long)(R->t->base + R->t->n));
        key = R->t->karena + R->t->f_kat[k];
        klen = (size_t)R->t->f_klen[k];
        part = R->t->f_part[k];
        off = R->t->f_off[k];
        if (part >= FB_PART0) { /* a label from the feedback topic */
            n_labels++;
            continue;
        }
        use = run_to_canary(R, key, klen) ? &R->canary : &R->main;
        for (o = 0; o < R->j->n_sinks; o++) {
            out *s = &R->outs[o];

            if (s->h5 != NULL) { /* one output a row: setup_io checked */
                rc = run_out_row(s, key, klen, use->pred[i], use->s.model,
                                 use->s.sha, part, off, t[i], err);
                if (rc != SW_OK)
                    return rc;
                continue;
            }
            R->line.len = 0;
            if (s->spec->avro) {
                int64_t n_o = sw_model_n_outputs(use->s.m);

                avro_head(&R->line, s->spec->schema_id);
                avro_str(&R->line, key, klen);
                avro_outputs(&R->line, use->pred + i * n_o, n_o);
                avro_str(&R->line, use->s.model, strlen(use->s.model));
                avro_str(&R->line, use->s.sha, 64);
                avro_long(&R->line, part);
                avro_long(&R->line, off);
                avro_long(&R->line, t[i]);
                avro_long(&R->line, 0); /* tenant: null */
                if (R->shadow.s.m != NULL) {
                    n_o = sw_model_n_outputs(R->shadow.s.m);
                    avro_long(&R->line, 1);
                    avro_outputs(&R->line, R->shadow.pred + i * n_o, n_o);
                    avro_str(&R->line, R->shadow.s.model,
                             strlen(R->shadow.s.model));
                } else {
                    avro_long(&R->line, 0);
                }
            } else if (s->spec->kind == OUT_CSV) {
                add_int(&R->line, part);
                ADD_LIT(&R->line, ",");
                add_int(&R->line, off);
                ADD_LIT(&R->line, ",");
                add_int(&R->line, t[i]);
                ADD_LIT(&R->line, ",");
                add_json_str(&R->line, key, klen);
                ADD_LIT(&R->line, ",");
                add_prediction(&R->line, use, i, ";", 0);
                ADD_LIT(&R->line, ",");
                add_mem(&R->line, use->s.model, strlen(use->s.model));
                ADD_LIT(&R->line, ",");
                add_mem(&R->line, use->s.sha, 64);
                if (R->shadow.s.m != NULL) {
                    ADD_LIT(&R->line, ",");
                    add_prediction(&R->line, &R->shadow, i, ";", 0);
                    ADD_LIT(&R->line, ",");
                    add_mem(&R->line, R->shadow.s.model,
                            strlen(R->shadow.s.model));
                }
            } else {
                ADD_LIT(&R->line, "{\"key\":");
                add_json_str(&R->line, key, klen);
                ADD_LIT(&R->line, ",\"prediction\":");
                add_prediction(&R->line, use, i, ",", 1);
                add_mem(&R->line, use->json, use->json_len);
                add_int(&R->line, part);
                ADD_LIT(&R->line, ",\"offset\":");
                add_int(&R->line, off);
                ADD_LIT(&R->line, ",\"time_us\":");
                add_int(&R->line, t[i]);
                if (R->shadow.s.m != NULL) {
                    ADD_LIT(&R->line, ",\"shadow\":{\"prediction\":");
                    add_prediction(&R->line, &R->shadow, i, ",", 1);
                    ADD_LIT(&R->line, ",\"model\":");
                    add_json_str(&R->line, R->shadow.s.model,
                                 strlen(R->shadow.s.model));
                    ADD_LIT(&R->line, "}");
                }
                ADD_LIT(&R->line, "}");
            }
            /* the value names the model and its SHA-256 already: no
             * headers, which cost four allocations a message */
            rc = run_out_write(s, key, klen, R->line.p, R->line.len, NULL, err);
            if (rc != SW_OK)
                return rc;
        }
        if (R->feats != NULL) {
            const double *row =
                sw_result_dense(R->t->r) + i * sw_pipeline_n_dense(R->t->p);
            const int64_t *h = sw_result_indices(R->t->r);
            int nh = sw_pipeline_n_hashed(R->t->p);

            R->line.len = 0;
            add(&R->line, "{\"key\":");
            add_json_str(&R->line, key, klen);
            add(&R->line, ",\"partition\":%d,\"offset\":%lld,\"time_us\":%lld,"
                          "\"features\":{",
                part, (long long)off, (long long)t[i]);
            for (c = 0; c < sw_pipeline_n_dense(R->t->p); c++) {
                const char *name = sw_pipeline_column_name(R->t->p, (int)c);

                add(&R->line, c ? "," : "");
                add_json_str(&R->line, name, strlen(name));
                add(&R->line, ":");
                add_num(&R->line, row[c]);
            }
            add(&R->line, "},\"hashed\":[");
            for (c = 0; c < nh; c++)
                add(&R->line, "%s%lld", c ? "," : "",
                    (long long)h[i * nh + c]);
            add(&R->line, "]}");
            rc = run_out_write(R->feats, key, klen, R->line.p, R->line.len, NULL,
                           err);
            if (rc != SW_OK)
                return rc;
        }
    }
    R->n_out += n - n_labels;
    return SW_OK;
}
