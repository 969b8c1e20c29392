/* SPDX-License-Identifier: MIT */
/*
 * sw_run.c - `sw-serve run JOB`: raw events in, the bundle's own pipeline,
 * its model, predictions out; checkpoints that neither lose nor count an
 * event twice. The same core the notebook ran, and no Python.
 *
 *   source (Kafka group, topic slice, HDF5 file)
 *     -> decode (JSON or Avro, by the bundle's events schema; bad ones to
 *        dead letters with reason, field and the raw bytes)
 *     -> pipeline, per partition (arrival or watermark emission)
 *     -> sw_model_predict_result -> sinks (topics, JSON lines, CSV)
 *
 * Every event pushed gets a slot in a FIFO keyed by its arrival number
 * (partition, offset, output key), so a row that the watermark releases
 * later, even after a restart, still says where it came from. A checkpoint
 * is the pipeline's own file (state, buffered events, watermark) with the
 * run's position inside: the next offset of every partition, the length
 * of every output file and the FIFO. Outputs are flushed before it is
 * taken and offsets committed after it is on disk; at start the newest
 * checkpoint that reads back wins (a damaged one falls back to the one
 * before), output files are cut back to its lengths, and each partition
 * is sought to its offset. So state is exactly once, files are exactly
 * once, and a topic gets the predictions made since the checkpoint a
 * second time, byte for byte, with the same (partition, offset).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <xxhash.h>

#include "sw_run_int.h"

static volatile sig_atomic_t stop_asked;

static void
on_signal(int sig)
{
    (void)sig;
    stop_asked = 1;
}


/* ------------------------------------------------------------------ */
/* The run                                                              */
/* ------------------------------------------------------------------ */

int
run_pos_index(run *R, int32_t part)
{
    int i;

    for (i = 0; i < R->t->n_pos && R->t->pos_part[i] != part; i++)
        ;
    if (i == R->t->n_pos && R->t->n_pos < MAX_PARTS) {
        R->t->pos_part[R->t->n_pos] = part;
        R->t->pos_next[R->t->n_pos++] = 0;
    }
    return i < MAX_PARTS ? i : MAX_PARTS - 1;
}

/* A slot in the FIFO for the next arrival number. */
sw_rc
run_fifo_push(run *R, int32_t part, int64_t off, const char *key, size_t klen,
          const char *tname, size_t tlen, sw_err *err)
{
    if (R->t->n == R->t->cap) {
        int64_t c = R->t->cap ? 2 * R->t->cap : 4096;

        R->t->f_part = realloc(R->t->f_part, (size_t)c * sizeof(int32_t));
        R->t->f_off = realloc(R->t->f_off, (size_t)c * sizeof(int64_t));
        R->t->f_kat = realloc(R->t->f_kat, (size_t)c * sizeof(int64_t));
        R->t->f_klen = realloc(R->t->f_klen, (size_t)c * sizeof(int32_t));
        R->t->f_tlen = realloc(R->t->f_tlen, (size_t)c * sizeof(int32_t));
        if (!R->t->f_part || !R->t->f_off || !R->t->f_kat || !R->t->f_klen || !R->t->f_tlen)
            return fail(err, SW_E_NOMEM, "run: out of memory (FIFO)");
        R->t->cap = c;
    }
    if (R->t->kused + klen + tlen > R->t->kcap) {
        while (R->t->kused + klen + tlen > R->t->kcap)
            R->t->kcap = R->t->kcap ? 2 * R->t->kcap : 65536;
        R->t->karena = realloc(R->t->karena, R->t->kcap);
        if (R->t->karena == NULL)
            return fail(err, SW_E_NOMEM, "run: out of memory (keys)");
    }
    memcpy(R->t->karena + R->t->kused, key, klen);
    if (tlen > 0)
        memcpy(R->t->karena + R->t->kused + klen, tname, tlen);
    R->t->f_part[R->t->n] = part;
    R->t->f_off[R->t->n] = off;
    R->t->f_kat[R->t->n] = (int64_t)R->t->kused;
    R->t->f_klen[R->t->n] = (int32_t)klen;
    R->t->f_tlen[R->t->n] = (int32_t)tlen;
    R->t->kused += klen + tlen;
    R->t->n++;
    return SW_OK;
}

/* Forget the events below arrival number oldest: they are out. */
void
run_fifo_drop(run *R, int64_t oldest)
{
    int64_t k = oldest - R->t->base, rest, i;
    size_t kfrom;

    if (k <= 0)
        return;
    if (k > R->t->n)
        k = R->t->n;
    rest = R->t->n - k;
    kfrom = rest > 0 ? (size_t)R->t->f_kat[k] : R->t->kused;
    memmove(R->t->f_part, R->t->f_part + k, (size_t)rest * sizeof(int32_t));
    memmove(R->t->f_off, R->t->f_off + k, (size_t)rest * sizeof(int64_t));
    memmove(R->t->f_klen, R->t->f_klen + k, (size_t)rest * sizeof(int32_t));
    memmove(R->t->f_tlen, R->t->f_tlen + k, (size_t)rest * sizeof(int32_t));
    memmove(R->t->karena, R->t->karena + kfrom, R->t->kused - kfrom);
    for (i = 0; i < rest; i++)
        R->t->f_kat[i] = R->t->f_kat[i + k] - (int64_t)kfrom;
    R->t->kused -= kfrom;
    R->t->n = rest;
    R->t->base += k;
}

/* A dead letter: topic message (key = reason, headers say the rest, value
 * the raw bytes) or a JSON line. */
sw_rc
run_dead_letter(run *R, int32_t part, int64_t off, const char *reason,
            const char *field, const unsigned char *raw, int64_t raw_len,
            sw_err *err)
{
    char ps[24], os[24];
    const char *hdr[] = {"reason", reason,         "field", field ? field : "",
                         "partition", ps,          "offset", os,
                         NULL, NULL, NULL};
    int fb = part >= FB_PART0;

    R->n_dead++;
    if (R->dead == NULL)
        return SW_OK;
    if (fb) /* a label's: the topic says whose partition */
        part -= FB_PART0, hdr[8] = "topic", hdr[9] = R->j->fb_topic;
    snprintf(ps, sizeof(ps), "%d", part);
    snprintf(os, sizeof(os), "%lld", (long long)off);
    if (R->dead->k != NULL)
        return run_out_write(R->dead, reason, strlen(reason), (const char *)raw,
                         raw_len < 0 ? 0 : (size_t)raw_len, hdr, err);
    R->line.len = 0;
    add(&R->line, "{\"partition\":%d,\"offset\":%lld,", part,
        (long long)off);
    if (fb) {
        add(&R->line, "\"topic\":");
        add_json_str(&R->line, R->j->fb_topic, strlen(R->j->fb_topic));
        add(&R->line, ",");
    }
    add(&R->line, "\"reason\":");
    add_json_str(&R->line, reason, strlen(reason));
    add(&R->line, ",\"field\":");
    if (field)
        add_json_str(&R->line, field, strlen(field));
    else
        add(&R->line, "null");
    {
        /* raw bytes as base64: they need not be text */
        size_t n = raw_len > 0 ? (size_t)raw_len : 0;
        size_t b64 = sodium_base64_encoded_len(n, sodium_base64_VARIANT_ORIGINAL);

        add(&R->line, ",\"raw_base64\":\"");
        if (need(&R->line, b64) != 0)
            return fail(err, SW_E_NOMEM, "run: out of memory");
        sodium_bin2base64(R->line.p + R->line.len, b64, raw ? raw : (const unsigned char *)"", n,
                          sodium_base64_VARIANT_ORIGINAL);
        R->line.len += b64 - 1;
        add(&R->line, "\"}");
    }
    return run_out_write(R->dead, NULL, 0, R->line.p, R->line.len, NULL, err);
}

/* Late and invalid events of the last push go to dead letters. first is
 * the arrival number of the push's first event; raw(k) gives event k's
 * message. */
typedef struct rawsrc {
    const unsigned char *bytes;
    const int64_t *at, *len; /* per pushed event: its message bytes */
    const int32_t *part;
    const int64_t *off;
} rawsrc;

static sw_rc
route_refused(run *R, int64_t first, const rawsrc *src, sw_err *err)
{
    const int64_t *seq;
    const int *reason;
    int64_t n, i;
    sw_rc rc;

    n = sw_result_late(R->t->r, &seq);
    for (i = 0; i < n; i++) {
        int64_t k = seq[i] - first;

        R->n_late++;
        rc = run_dead_letter(R, src->part[k], src->off[k], "late", NULL,
                         src->bytes ? src->bytes + src->at[k] : NULL,
                         src->bytes ? src->len[k] : 0, err);
        if (rc != SW_OK)
            return rc;
    }
    n = sw_result_invalid(R->t->r, &seq, &reason);
    for (i = 0; i < n; i++) {
        int64_t k = seq[i] - first;

        R->n_invalid++;
        rc = run_dead_letter(R, src->part[k], src->off[k],
                         *sw_invalid_reason(reason[i])
                             ? sw_invalid_reason(reason[i])
                             : "invalid",
                         NULL, src->bytes ? src->bytes + src->at[k] : NULL,
                         src->bytes ? src->len[k] : 0, err);
        if (rc != SW_OK)
            return rc;
    }
    return SW_OK;
}

/* The key text of row i of a column. */
static void
key_text(buf *b, int type, const void *data, int64_t width, int64_t i)
{
    b->len = 0;
    switch (type) {
    case SW_COL_STR: {
        const char *s = (const char *)data + i * width;
        size_t n = 0;

        while (n < (size_t)width && s[n])
            n++;
        if (need(b, n) == 0) {
            memcpy(b->p, s, n);
            b->len = n;
        }
        return;
    }
    case SW_COL_F64:
        add(b, "%.17g", ((const double *)data)[i]);
        return;
    case SW_COL_F32:
        add(b, "%.9g", (double)((const float *)data)[i]);
        return;
    case SW_COL_I32:
        add(b, "%d", ((const int32_t *)data)[i]);
        return;
    case SW_COL_I8:
    case SW_COL_BOOL:
        add(b, "%d", ((const int8_t *)data)[i]);
        return;
    default:
        add(b, "%lld", (long long)((const int64_t *)data)[i]);
    }
}

/* Push a batch of one partition and write what comes out. */
static sw_rc
push_and_emit(run *R, const sw_batch *b, int32_t part, const rawsrc *src,
              sw_err *err)
{
    int64_t first = sw_pipeline_arrivals(R->t->p);
    /* a task's pipeline follows its one partition; the labels' come
     * after the source's */
    int part_no = R->j->tasks                 ? 0
                  : part >= FB_PART0          ? R->n_in_parts + part - FB_PART0
                  : part < SW_MAX_PARTITIONS ? part
                                             : SW_MAX_PARTITIONS - 1;
    sw_rc rc;

    rc = sw_pipeline_push_partition(R->t->p, b, part_no, R->t->r, err);
    if (rc == SW_OK)
        rc = route_refused(R, first, src, err);
    if (rc == SW_OK)
        rc = run_emit(R, err);
    if (rc == SW_OK)
        run_fifo_drop(R, sw_pipeline_oldest_pending(R->t->p));
    return rc;
}

/* Messages idx[0..n) of the fetched batch, all of partition part: decode,
 * push, emit. */
/* Where message m of the batch came from: its own partition and offset,
 * or, read from the repartition topic, the input's it was forwarded from
 * (outputs and dead letters name that, as a run without it would). */
#define SRC_P(m) (R->fwd != NULL ? R->src_part[m] : part)
#define SRC_O(m) (R->fwd != NULL ? R->src_off[m] : off[m])

static sw_rc
kafka_part(run *R, int32_t part, const int64_t *idx, int64_t n, sw_err *err)
{
    const int32_t *mp;
    const int64_t *off, *ts, *ka, *kl, *va, *vl, *rows, *drow;
    const unsigned char *bytes;
    const int *why;
    int64_t n_rows, n_dead, i;
    sw_column cols[64];
    sw_batch b;
    int nf, f;
    size_t str_need = 0;
    int64_t *ev_at = NULL, *ev_len = NULL, *ev_off = NULL;
    int32_t *ev_part = NULL;
    rawsrc src;
    sw_rc rc;

    sw_kafka_source_batch(R->cur, &mp, &off, &ts, &bytes, &ka, &kl, &va, &vl);
    if (n > R->sub_cap) {
        R->sub_cap = n;
        R->sub_at = realloc(R->sub_at, (size_t)n * 8);
        R->sub_len = realloc(R->sub_len, (size_t)n * 8);
        R->sub_ts = realloc(R->sub_ts, (size_t)n * 8);
        if (!R->sub_at || !R->sub_len || !R->sub_ts)
            return fail(err, SW_E_NOMEM, "run: out of memory");
    }
    for (i = 0; i < n; i++) {
        R->sub_at[i] = va[idx[i]];
        R->sub_len[i] = vl[idx[i]];
        R->sub_ts[i] = ts[idx[i]];
    }
    rc = sw_json_decode(R->d, bytes, R->sub_at, R->sub_len, R->sub_ts, n,
                        &n_rows, err);
    if (rc != SW_OK)
        return rc;
    n_dead = sw_json_decoder_dead(R->d, &drow, &why);
    for (i = 0; i < n_dead; i++) {
        int64_t m = idx[drow[i]];

        rc = run_dead_letter(R, SRC_P(m), SRC_O(m), sw_dead_reasons[why[i]],
                         sw_json_decoder_dead_field(R->d, i), bytes + va[m],
                         vl[m], err);
        if (rc != SW_OK)
            return rc;
    }
    if (n_rows == 0)
        return SW_OK;
    rows = sw_json_decoder_rows(R->d);
    nf = sw_json_decoder_n_fields(R->d);
    /* the decoder's columns as a batch; text NUL-padded to its widest */
    {
        struct {
            const char *name;
            int type;
            const double *num;
            const int64_t *ints, *sat, *slen;
            size_t width;
        } fv[64];
        size_t at = 0;

        for (f = 0; f < nf; f++) {
            sw_json_decoder_field(R->d, f, &fv[f].name, &fv[f].type,
                                  &fv[f].num, &fv[f].ints, &fv[f].sat,
                                  &fv[f].slen);
            fv[f].width = 1;
            for (i = 0; fv[f].type == SW_COL_STR && i < n_rows; i++) {
                if ((size_t)fv[f].slen[i] + 1 > fv[f].width)
                    fv[f].width = (size_t)fv[f].slen[i] + 1;
            }
            if (fv[f].type == SW_COL_STR)
                str_need += fv[f].width * (size_t)n_rows;
        }
        if (str_need > R->strcap) {
            R->strcap = str_need;
            R->strbuf = realloc(R->strbuf, str_need);
            if (R->strbuf == NULL)
                return fail(err, SW_E_NOMEM, "run: out of memory");
        }
        if (str_need > 0)
            memset(R->strbuf, 0, str_need);
        for (f = 0; f < nf; f++) {
            cols[f].name = fv[f].name;
            cols[f].bad = NULL;
            cols[f].width = 0;
            if (fv[f].type == SW_COL_STR) {
                const unsigned char *s = sw_json_decoder_strings(R->d);

                for (i = 0; i < n_rows; i++)
                    memcpy(R->strbuf + at + (size_t)i * fv[f].width,
                           s + fv[f].sat[i], (size_t)fv[f].slen[i]);
                cols[f].type = SW_COL_STR;
                cols[f].data = R->strbuf + at;
                cols[f].width = (int64_t)fv[f].width;
                at += fv[f].width * (size_t)n_rows;
            } else if (fv[f].type == SW_COL_F64 || fv[f].type == SW_COL_F32) {
                cols[f].type = SW_COL_F64;
                cols[f].data = fv[f].num;
            } else {
                cols[f].type = SW_COL_I64;
                cols[f].data = fv[f].ints;
            }
        }
    }
    b.n_rows = n_rows;
    b.n_columns = nf;
    b.columns = cols;
    ev_at = malloc((size_t)n_rows * 8);
    ev_len = malloc((size_t)n_rows * 8);
    ev_off = malloc((size_t)n_rows * 8);
    ev_part = malloc((size_t)n_rows * 4);
    if (!ev_at || !ev_len || !ev_off || !ev_part) {
        rc = fail(err, SW_E_NOMEM, "run: out of memory");
        goto done;
    }
    for (i = 0; i < n_rows; i++) {
        int64_t m = idx[rows[i]];

        ev_at[i] = va[m];
        ev_len[i] = vl[m];
        ev_off[i] = SRC_O(m);
        ev_part[i] = SRC_P(m);
        if (R->key_col >= 0)
            key_text(&R->key, cols[R->key_col].type, cols[R->key_col].data,
                     cols[R->key_col].width, i);
        else {
            R->key.len = 0;
            if (kl[m] > 0 && need(&R->key, (size_t)kl[m]) == 0) {
                memcpy(R->key.p, bytes + ka[m], (size_t)kl[m]);
                R->key.len = (size_t)kl[m];
            }
        }
        R->tenant.len = 0;
        if (R->tenant_col >= 0)
            key_text(&R->tenant, cols[R->tenant_col].type,
                     cols[R->tenant_col].data, cols[R->tenant_col].width, i);
        rc = run_fifo_push(R, SRC_P(m), SRC_O(m), R->key.p ? R->key.p : "",
                           R->key.len,
                       R->tenant.p, R->tenant.len, err);
        if (rc != SW_OK)
            goto done;
    }
    src.bytes = bytes;
    src.at = ev_at;
    src.len = ev_len;
    src.part = ev_part;
    src.off = ev_off;
    rc = push_and_emit(R, &b, part, &src, err);
done:
    free(ev_at);
    free(ev_len);
    free(ev_off);
    free(ev_part);
    return rc;
}

/* A repartitioned message k: where it came from (into R->src_part and
 * src_off at k), and whether the current task has not applied it yet (a
 * forwarder that crashed before its commit forwards some twice). A key
 * that names no source is malformed: taken, as its own source. */
static int
first_time(run *R, int64_t k, const int64_t *ka, const int64_t *kl,
           const unsigned char *bytes)
{
    int32_t sp;
    int64_t so;

    if (run_repart_source(bytes + ka[k], kl[k], &sp, &so) != 0)
        return 1;
    R->src_part[k] = sp;
    R->src_off[k] = so;
    if (so <= R->t->src_max[sp])
        return 0;
    R->t->src_max[sp] = so;
    return 1;
}

/* One fetched batch of the Kafka source, partition by partition in the
 * order fetched. */
static sw_rc
kafka_batch(run *R, int64_t count, sw_err *err)
{
    const int32_t *mp;
    const int64_t *off, *ts, *ka, *kl, *va, *vl;
    const unsigned char *bytes;
    int64_t *idx, i, k;
    sw_rc rc = SW_OK;
    int done_parts[MAX_PARTS], n_done = 0, d;
    int32_t base = R->cur == R->fb ? FB_PART0 : 0; /* how the run names them */

    sw_kafka_source_batch(R->cur, &mp, &off, &ts, &bytes, &ka, &kl, &va, &vl);
    idx = malloc((size_t)count * sizeof(int64_t));
    if (idx == NULL)
        return fail(err, SW_E_NOMEM, "run: out of memory");
    if (R->fwd != NULL && count > R->src_cap) {
        int32_t *sp = realloc(R->src_part, (size_t)count * sizeof(int32_t));
        int64_t *so = sp ? realloc(R->src_off, (size_t)count * 8) : NULL;

        if (sp != NULL)
            R->src_part = sp;
        if (so == NULL) {
            free(idx);
            return fail(err, SW_E_NOMEM, "run: out of memory");
        }
        R->src_off = so;
        R->src_cap = count;
    }
    for (i = 0; R->fwd != NULL && i < count; i++) {
        R->src_part[i] = mp[i];
        R->src_off[i] = off[i];
    }
    for (i = 0; i < count && rc == SW_OK; i++) {
        int32_t part = mp[i];
        int64_t n = 0;

        for (d = 0; d < n_done && done_parts[d] != part; d++)
            ;
        if (d < n_done)
            continue;
        if (n_done < MAX_PARTS)
            done_parts[n_done++] = part;
        if (R->j->tasks) {
            int64_t from;

            /* a partition given away while this batch was fetched is its
             * new owner's to read; one given back has read some of it */
            if ((R->t = run_task_of(R, part)) == NULL) {
                R->t = &R->one;
                continue;
            }
            from = R->t->pos_next[run_pos_index(R, part)];
            for (k = i; k < count; k++) {
                if (mp[k] == part && off[k] >= from &&
                    (R->fwd == NULL || first_time(R, k, ka, kl, bytes)))
                    idx[n++] = k;
            }
        } else {
            for (k = i; k < count; k++) {
                if (mp[k] == part)
                    idx[n++] = k;
            }
        }
        if (n > 0)
            rc = kafka_part(R, base + part, idx, n, err);
        if (rc == SW_OK && R->j->tasks) {
            /* past what was read, whether it was new or a repeat */
            for (k = count; k-- > i;) {
                if (mp[k] == part) {
                    if (off[k] + 1 > R->t->pos_next[run_pos_index(R, part)])
                        R->t->pos_next[run_pos_index(R, part)] = off[k] + 1;
                    break;
                }
            }
        } else if (rc == SW_OK && n > 0) {
            R->t->pos_next[run_pos_index(R, base + part)] =
                off[idx[n - 1]] + 1;
        }
        R->t = &R->one;
    }
    free(idx);
    return rc;
}

/* One batch of the HDF5 source: partition 0, offsets = row numbers. */
static sw_rc
h5_batch(run *R, int64_t count, sw_err *err)
{
    const sw_batch *b = sw_h5_source_batch(R->hs);
    int64_t start, stop, next, i, first_row;
    int32_t *part = NULL;
    int64_t *offs = NULL;
    rawsrc src;
    int c;
    sw_rc rc = SW_OK;

    sw_h5_source_slice(R->hs, &start, &stop, &next);
    first_row = next - count;
    part = calloc((size_t)count, sizeof(int32_t));
    offs = malloc((size_t)count * sizeof(int64_t));
    if (part == NULL || offs == NULL) {
        rc = fail(err, SW_E_NOMEM, "run: out of memory");
        goto done;
    }
    if (R->key_col == -2 && R->j->key_field == NULL)
        R->key_col = -1;
    for (c = 0; R->key_col == -2 && c < b->n_columns; c++) {
        if (!strcmp(b->columns[c].name, R->j->key_field))
            R->key_col = c;
    }
    if (R->key_col == -2)
        R->key_col = -1;
    for (c = 0; R->tenant_col == -2 && c < b->n_columns; c++) {
        if (!strcmp(b->columns[c].name, R->j->tenant_field))
            R->tenant_col = c;
    }
    if (R->tenant_col == -2)
        return fail(err, SW_E_INVAL,
                    "job: tenants.field '%s' is not a column of %s",
                    R->j->tenant_field, R->j->h5_path);
    for (i = 0; i < count && rc == SW_OK; i++) {
        offs[i] = first_row + i;
        R->key.len = 0;
        if (R->key_col >= 0) {
            const sw_column *kc = &b->columns[R->key_col];

            key_text(&R->key, kc->type, kc->data, kc->width, i);
        }
        R->tenant.len = 0;
        if (R->tenant_col >= 0) {
            const sw_column *tc = &b->columns[R->tenant_col];

            key_text(&R->tenant, tc->type, tc->data, tc->width, i);
        }
        rc = run_fifo_push(R, 0, first_row + i, R->key.p ? R->key.p : "",
                       R->key.len, R->tenant.p, R->tenant.len, err);
    }
    if (rc != SW_OK)
        goto done;
    memset(&src, 0, sizeof(src));
    src.part = part;
    src.off = offs;
    rc = push_and_emit(R, b, 0, &src, err);
    R->t->pos_next[run_pos_index(R, 0)] = next;
done:
    free(part);
    free(offs);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Setting up                                                           */
/* ------------------------------------------------------------------ */

sw_rc
run_file_sha256(const char *path, char hex[65], sw_err *err)
{
    unsigned char d[crypto_hash_sha256_BYTES], chunk[65536];
    crypto_hash_sha256_state st;
    FILE *fp = fopen(path, "rb");
    size_t n;
    int i;

    if (fp == NULL)
        return fail(err, SW_E_IO, "%s: %s", path, strerror(errno));
    crypto_hash_sha256_init(&st);
    while ((n = fread(chunk, 1, sizeof(chunk), fp)) > 0)
        crypto_hash_sha256_update(&st, chunk, n);
    fclose(fp);
    crypto_hash_sha256_final(&st, d);
    for (i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", d[i]);
    return SW_OK;
}

/* The model's part of every output line, built once per model. */
static sw_rc
name_slot(slot *sl, sw_err *err)
{
    buf mj = {NULL, 0, 0};

    ADD_LIT(&mj, ",\"model\":");
    add_json_str(&mj, sl->s.model, strlen(sl->s.model));
    ADD_LIT(&mj, ",\"sha256\":\"");
    add_mem(&mj, sl->s.sha, 64);
    ADD_LIT(&mj, "\",\"partition\":");
    sl->json_len = mj.len < sizeof(sl->json) ? mj.len : 0;
    memcpy(sl->json, mj.p, sl->json_len);
    free(mj.p);
    if (sl->json_len == 0)
        return fail(err, SW_E_INVAL, "model name too long: %.60s...",
                    sl->s.model);
    return SW_OK;
}

/* Load a bundle into a slot (ref: a path, or a registry reference) and
 * name it (name: the job's, or NULL for name@version or the file name).
 * A slot beside the main one must share its pipeline: it scores the same
 * feature rows. */
static sw_rc
load_slot(run *R, slot *sl, const char *ref, const char *name, sw_err *err)
{
    const job *j = R->j;
    char path[4096];
    int64_t version = 0;
    uint64_t spec, main_spec, schema;
    sw_rc rc;

    if (j->registry != NULL) {
        rc = sw_registry_resolve(j->registry, ref, path, sizeof(path),
                                 sl->s.sha, &version, err);
        if (rc != SW_OK)
            return rc;
    } else {
        snprintf(path, sizeof(path), "%s", ref);
        if ((rc = run_file_sha256(path, sl->s.sha, err)) != SW_OK)
            return rc;
    }
    sl->s.version = version;
    if ((rc = sw_model_load(path, &sl->s.m, err)) != SW_OK)
        return rc;
    if (sw_model_pipeline_spec(sl->s.m) == NULL)
        return fail(err, SW_E_INVAL,
                    "%s is a model without a pipeline: save it with its "
                    "pipeline (model.save(path, pipeline=p)) to serve it "
                    "from raw events",
                    path);
    if (sl != &R->main) {
        sw_model_pipeline_hashes(sl->s.m, &spec, &schema);
        sw_model_pipeline_hashes(R->main.s.m, &main_spec, &schema);
        if (spec != main_spec)
            return fail(err, SW_E_INVAL,
                        "%s: its pipeline (spec %016llx) is not the main "
                        "bundle's (%016llx): a %s scores the main model's "
                        "feature rows, so it must be trained on the same "
                        "pipeline",
                        ref, (unsigned long long)spec,
                        (unsigned long long)main_spec,
                        sl == &R->shadow ? "shadow" : "canary");
    }
    if (name != NULL) {
        snprintf(sl->s.model, sizeof(sl->s.model), "%s", name);
    } else if (j->registry != NULL) {
        snprintf(sl->s.model, sizeof(sl->s.model), "%.*s@%lld",
                 (int)strcspn(ref, "@"), ref, (long long)version);
    } else {
        const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
        size_t n = strlen(base);

        if (n > 4 && !strcmp(base + n - 4, ".swm"))
            n -= 4;
        snprintf(sl->s.model, sizeof(sl->s.model), "%.*s", (int)n, base);
    }
    return name_slot(sl, err);
}

/* A swap between batches: what the slot's reloader verified scores from
 * the next event on. */
static void
swap_slot(run *R, slot *sl)
{
    served next;
    sw_err err = {0};

    if (!sw__reloader_take(sl->rl, &sl->s, &next))
        return;
    sl->s = next;
    if (name_slot(sl, &err) != SW_OK) /* the name fits: checked at start */
        sw__log("%s\n", err.msg);
    run_eval_swapped(R, sl);
    if (sl == &R->main) {
        pthread_mutex_lock(&R->mt->info_lock);
        snprintf(R->mt->model, sizeof(R->mt->model), "%s", sl->s.model);
        snprintf(R->mt->sha256, sizeof(R->mt->sha256), "%s", sl->s.sha);
        pthread_mutex_unlock(&R->mt->info_lock);
    }
    sw__log("now %s %s (sha256 %.16s...) from event %lld on; "
            "the swap held the loop %lld us\n",
            sl == &R->main     ? "serving"
            : sl == &R->shadow ? "shadowing with"
                               : "canarying",
            sl->s.model, sl->s.sha, (long long)R->n_in,
            (long long)atomic_load(&R->mt->swap_last_us));
}

/* A shadow or canary retired on the control topic: no longer scored. */
static void
retire_slot(run *R, slot *sl)
{
    if (sl->rl == NULL || !sw__reloader_retired(sl->rl))
        return;
    sw__reloader_stop(sl->rl); /* it may hold a model to hand over */
    sl->rl = NULL;
    sw__log("%s %s retired: no longer scored, from event "
            "%lld on\n",
            sl == &R->shadow ? "shadow" : "canary", sl->s.model,
            (long long)R->n_in);
    run_eval_end(R, sl, 1);
    sw_model_free(sl->s.m);
    sl->s.m = NULL;
}

/* The spec with the job's emission mode (NULL: as the bundle has it,
 * arrival when it says nothing). */
static char *
spec_for_job(const char *spec_json, int emission)
{
    json_t *s = json_loads(spec_json, 0, NULL);
    char *text;

    if (s == NULL)
        return NULL;
    if (emission >= 0 || json_object_get(s, "emission") == NULL)
        json_object_set_new(s, "emission",
                            json_string(emission == 0 ? "watermark"
                                                      : "arrival"));
    text = json_dumps(s, JSON_COMPACT);
    json_decref(s);
    return text;
}

/* Say at start which features' state depends on how partitions
 * interleave: those not keyed by the message's key. A group member's
 * tasks cannot hold them at all: each would see a share of a key. */
/* Whether key (a field name or an array of them) holds field. */
static int
key_has(json_t *key, const char *field)
{
    json_t *e;
    size_t x;

    if (field == NULL)
        return 0;
    if (json_is_string(key))
        return !strcmp(json_string_value(key), field);
    json_array_foreach(key, x, e)
    {
        if (json_is_string(e) && !strcmp(json_string_value(e), field))
            return 1;
    }
    return 0;
}

static sw_rc
check_keys(run *R, sw_err *err)
{
    json_t *s = json_loads(sw_model_pipeline_spec(R->main.s.m), 0, NULL), *f;
    json_t *common = NULL; /* the fields every stateful feature is keyed by */
    size_t i;
    char bad[512] = "";
    size_t used = 0;

    if (s == NULL)
        return SW_OK; /* no pipeline: the loader has said so */
    json_array_foreach(json_object_get(s, "features"), i, f)
    {
        const char *op = json_string_value(json_object_get(f, "op"));
        json_t *k = json_object_get(f, "key");
        size_t x;

        if (op == NULL || !strcmp(op, "hash") || !strcmp(op, "log1p") ||
            !strcmp(op, "bucketize") || !strcmp(op, "one_hot") ||
            !strcmp(op, "value"))
            continue;
        if (common == NULL) { /* the first: its own fields */
            common = json_array();
            if (json_is_string(k))
                json_array_append(common, k);
            else if (json_is_array(k))
                json_array_extend(common, k);
        }
        for (x = json_array_size(common); x-- > 0;) {
            if (!key_has(k, json_string_value(json_array_get(common, x))))
                json_array_remove(common, x);
        }
        if (!key_has(k, R->j->key_field) && used < sizeof(bad))
            used += (size_t)snprintf(
                bad + used, sizeof(bad) - used, "%s%s", used ? ", " : "",
                json_string_value(json_object_get(f, "name")));
    }
    if (bad[0] != '\0' && R->j->tasks && json_array_size(common) > 0) {
        /* every key's state in one task: the events go by that field */
        snprintf(R->repart_field, sizeof(R->repart_field), "%s",
                 json_string_value(json_array_get(common, 0)));
        sw__log("features %s are not keyed by the message key "
                "'%s': events go through topic %s-repartition keyed by "
                "'%s'\n",
                bad, R->j->key_field, R->j->group, R->repart_field);
        bad[0] = '\0';
    }
    json_decref(common);
    json_decref(s);
    if (bad[0] == '\0')
        return SW_OK;
    if (R->j->tasks)
        return fail(err, SW_E_INVAL,
                    "job: tasks: features %s are not keyed by the message "
                    "key '%s', nor do all stateful features share a key "
                    "field to repartition the events by, so their state "
                    "would be split between tasks; key the features by one "
                    "field, or run without tasks",
                    bad, R->j->key_field);
    if (R->j->key_field == NULL)
        sw__log("note: the job names no \"key\" (the field the "
                "messages are keyed by); results depend only on each "
                "partition's order when every key lives in one partition\n");
    else
        sw__log("warning: features %s are not keyed by the message "
                "key '%s': their state depends on how the partitions "
                "interleave, so a replay may differ from the live run\n",
                bad, R->j->key_field);
    return SW_OK;
}

static sw_rc
open_source(run *R, sw_err *err)
{
    const job *j = R->j;
    sw_rc rc;
    int i;

    if (j->src == SRC_HDF5) {
        int64_t start = R->t->n_pos > 0 ? R->t->pos_next[0] : 0;

        return sw_h5_source_open(j->h5_path, j->h5_type, 0, start, -1, &R->hs,
                                 err);
    }
    if (j->src == SRC_KAFKA_SLICE) {
        if (j->ckpt_dir != NULL)
            return fail(err, SW_E_INVAL,
                        "job: a topic slice (start/stop) is a backtest and "
                        "takes no checkpoint; give a group for a live run");
        return sw_kafka_source_open(j->bootstrap, j->topic, NULL, 0,
                                    j->start_kind, j->start, j->stop_kind,
                                    j->stop, 30000, j->src_conf, &R->ks, err);
    }
    if (j->tasks) {
        /* cooperative: a rebalance moves only the partitions that must
         * move, and the others' tasks go on (the job's config may still
         * say otherwise) */
        const char **conf = conf_with(j->src_conf,
                                      "partition.assignment.strategy",
                                      "cooperative-sticky", 1);

        if (conf == NULL)
            return fail(err, SW_E_NOMEM, "run: out of memory");
        /* exactly_once: the changelog's records ride in the outputs'
         * transaction */
        if (j->changelog != NULL &&
            (rc = j->eos ? sw_kafka_sink_open_on(R->tx.owner, j->changelog,
                                                 &R->clog, err)
                         : sw_kafka_sink_open(j->bootstrap, j->changelog,
                                              j->src_conf, &R->clog,
                                              err)) != SW_OK) {
            free(conf);
            return rc;
        }
        if (R->repart_field[0]) {
            /* the tasks read the repartition topic, as a group of their
             * own; the input is read to be forwarded to it */
            char topic[320], group[320];

            snprintf(topic, sizeof(topic), "%.256s-repartition", j->group);
            snprintf(group, sizeof(group), "%.256s-tasks", j->group);
            rc = sw_kafka_source_subscribe(j->bootstrap, topic, group,
                                           j->wait_ms, conf, &R->ks, err);
            if (rc == SW_OK)
                rc = run_repart_open(R, err);
        } else {
            rc = sw_kafka_source_subscribe(j->bootstrap, j->topic, j->group,
                                           j->wait_ms, conf, &R->ks, err);
        }
        free(conf);
        if (rc != SW_OK)
            return rc;
        sw_kafka_source_set_outage_limit(R->ks, j->outage_ms);
        run_tasks_start(R);
        return SW_OK;
    }
    rc = sw_kafka_source_subscribe(j->bootstrap, j->topic, j->group,
                                   j->wait_ms, j->src_conf, &R->ks, err);
    if (rc != SW_OK)
        return rc;
    sw_kafka_source_set_outage_limit(R->ks, j->outage_ms);
    for (i = 0; i < R->t->n_pos; i++) {
        if (R->t->pos_part[i] >= FB_PART0)
            continue; /* the feedback topic's: open_feedback */
        rc = sw_kafka_source_start_at(R->ks, R->t->pos_part[i], R->t->pos_next[i],
                                      err);
        if (rc != SW_OK)
            return rc;
    }
    /* restored: what the checkpoint has not seen of a partition is new to
     * its state, whatever the group committed since */
    if (R->restored)
        return sw_kafka_source_start_at(R->ks, -1, 0, err);
    return SW_OK;
}

/* The feedback topic, read as the source is (the same slice, or a group
 * of its own, <group>-feedback, from the checkpoint's positions). */
static sw_rc
open_feedback(run *R, sw_err *err)
{
    const job *j = R->j;
    char group[320];
    int i;
    sw_rc rc;

    if (j->src == SRC_KAFKA_SLICE)
        return sw_kafka_source_open(j->fb_bootstrap, j->fb_topic, NULL, 0,
                                    j->start_kind, j->start, j->stop_kind,
                                    j->stop, 30000, j->fb_conf, &R->fb, err);
    snprintf(group, sizeof(group), "%.256s-feedback", j->group);
    /* it waits for nothing: the source's wait paces the loop */
    rc = sw_kafka_source_subscribe(j->fb_bootstrap, j->fb_topic, group, 0,
                                   j->fb_conf, &R->fb, err);
    if (rc != SW_OK)
        return rc;
    sw_kafka_source_set_outage_limit(R->fb, j->outage_ms);
    for (i = 0; i < R->t->n_pos; i++) {
        if (R->t->pos_part[i] < FB_PART0)
            continue;
        rc = sw_kafka_source_start_at(R->fb, R->t->pos_part[i] - FB_PART0,
                                      R->t->pos_next[i], err);
        if (rc != SW_OK)
            return rc;
    }
    return R->restored ? sw_kafka_source_start_at(R->fb, -1, 0, err) : SW_OK;
}

static sw_rc
make_decoder(run *R, sw_err *err)
{
    json_t *spec = json_loads(sw_model_pipeline_spec(R->main.s.m), 0, NULL);
    char *events = spec ? json_dumps(json_object_get(spec, "events"),
                                     JSON_COMPACT)
                        : NULL;
    const char *id;
    json_t *w;
    sw_rc rc;
    int f;

    json_decref(spec);
    if (events == NULL)
        return fail(err, SW_E_NOMEM, "run: out of memory");
    rc = sw_json_decoder_new(events, &R->d, err);
    free(events);
    if (rc == SW_OK && R->j->avro_schema != NULL)
        rc = sw_json_decoder_set_avro(R->d, R->j->avro_schema,
                                      R->j->avro_framing, err);
    json_object_foreach(R->j->avro_writers, id, w)
    {
        char *t = json_is_string(w) ? strdup(json_string_value(w))
                                    : json_dumps(w, JSON_COMPACT);

        if (rc == SW_OK)
            rc = sw_json_decoder_add_avro_writer(R->d, (int32_t)atoi(id), t,
                                                 err);
        free(t);
    }
    R->key_col = -1;
    for (f = 0; R->j->key_field && f < sw_json_decoder_n_fields(R->d); f++) {
        const char *name;
        int type;
        const double *num;
        const int64_t *ints, *sat, *slen;

        sw_json_decoder_field(R->d, f, &name, &type, &num, &ints, &sat, &slen);
        if (!strcmp(name, R->j->key_field))
            R->key_col = f;
    }
    R->tenant_col = -1;
    for (f = 0; R->j->tenant_field && f < sw_json_decoder_n_fields(R->d);
         f++) {
        const char *name;
        int type;
        const double *num;
        const int64_t *ints, *sat, *slen;

        sw_json_decoder_field(R->d, f, &name, &type, &num, &ints, &sat, &slen);
        if (!strcmp(name, R->j->tenant_field))
            R->tenant_col = f;
    }
    if (rc == SW_OK && R->j->tenant_field && R->tenant_col < 0)
        rc = fail(err, SW_E_INVAL,
                  "job: tenants.field '%s' is not a field of the bundle's "
                  "events",
                  R->j->tenant_field);
    if (rc == SW_OK && R->j->key_field && R->key_col < 0)
        rc = fail(err, SW_E_INVAL,
                  "job: key '%s' is not a field of the bundle's events",
                  R->j->key_field);
    return rc;
}

/* A task's share of the metrics: keys, watermark, partitions. */
static void
task_metrics(run *R, const task *t, int64_t *keys, int64_t *evicted,
             int64_t *bytes, int64_t *wm, int *np)
{
    sw_pipeline_stats st;
    int i;

    if (t->p == NULL)
        return;
    sw_pipeline_get_stats(t->p, &st);
    *keys += st.keys;
    *evicted += sw_pipeline_evicted(t->p);
    *bytes += sw_pipeline_state_bytes(t->p);
    if (sw_pipeline_watermark(t->p) < *wm)
        *wm = sw_pipeline_watermark(t->p);
    for (i = 0; i < t->n_pos && *np < 64; i++) {
        int k = (*np)++;

        atomic_store(&R->mt->part_id[k], t->pos_part[i]);
        atomic_store(&R->mt->part_next[k], t->pos_next[i]);
        atomic_store(&R->mt->part_lag[k],
                     t->pos_part[i] >= FB_PART0
                         ? sw_kafka_source_lag(R->fb, t->pos_part[i] - FB_PART0,
                                               t->pos_next[i])
                     : R->ks ? sw_kafka_source_lag(R->ks, t->pos_part[i],
                                                   t->pos_next[i])
                             : 0);
    }
}

static void
update_metrics(run *R)
{
    int64_t keys = 0, evicted = 0, bytes = 0, wm = INT64_MAX, n_tasks = 0;
    int part, np = 0;

    atomic_store(&R->mt->events_in, R->n_in);
    atomic_store(&R->mt->rows_out, R->n_out);
    atomic_store(&R->mt->dead, R->n_dead);
    atomic_store(&R->mt->late, R->n_late);
    atomic_store(&R->mt->invalid, R->n_invalid);
    task_metrics(R, &R->one, &keys, &evicted, &bytes, &wm, &np);
    for (part = 0; R->j->tasks && part < MAX_PARTS; part++) {
        if (R->tasks[part] != NULL) {
            task_metrics(R, R->tasks[part], &keys, &evicted, &bytes, &wm,
                         &np);
            n_tasks++;
        }
    }
    R->mt->n_parts = np;
    /* a member's watermark: the least of its tasks' */
    atomic_store(&R->mt->watermark_us, wm == INT64_MAX ? INT64_MIN : wm);
    atomic_store(&R->mt->keys, keys);
    atomic_store(&R->mt->evicted, evicted);
    atomic_store(&R->mt->state_bytes, bytes);
    atomic_store(&R->mt->tasks, n_tasks);
}

static void
record_latency(run *R, double seconds)
{
    double ms = seconds * 1e3;
    int b;

    atomic_fetch_add(&R->mt->lat_count, 1);
    atomic_fetch_add(&R->mt->lat_sum_us, (int64_t)(seconds * 1e6));
    for (b = 0; b < LAT_BUCKETS; b++) {
        if (ms <= sw_lat_bounds_ms[b])
            atomic_fetch_add(&R->mt->lat_bucket[b], 1);
    }
}

static void
free_run(run *R)
{
    int o;

    /* closing the consumer revokes its partitions: a failed run hands
     * over no task (its state may be half-applied), a finished one did */
    run_tasks_stop(R);
    run_repart_stop(R);
    sw_kafka_source_free(R->ks);
    sw_kafka_source_free(R->fb);
    sw_kafka_source_free(R->fwd);
    sw_kafka_sink_free(R->rpk);
    sw_kafka_sink_free(R->clog);
    free(R->src_part);
    free(R->src_off);
    for (o = 0; o < R->n_outs; o++)
        run_out_close(&R->outs[o]);
    sw_kafka_sink_free(R->tx.owner);
    sw_h5_source_free(R->hs);
    sw_json_decoder_free(R->d);
    run_task_free(&R->one);
    for (o = 0; o < MAX_PARTS; o++) {
        if (R->tasks[o] != NULL)
            run_task_free(R->tasks[o]);
        free(R->tasks[o]);
    }
    run_eval_close(R, 0); /* a failed run's evaluations: FAILED */
    /* each reloader stops before the model it may hand over is freed */
    sw__reloader_stop(R->main.rl);
    sw__reloader_stop(R->shadow.rl);
    sw__reloader_stop(R->canary.rl);
    sw_model_free(R->main.s.m);
    sw_model_free(R->shadow.s.m);
    sw_model_free(R->canary.s.m);
    free(R->shadow.pred);
    free(R->canary.pred);
    free(R->tenant.p);
    pthread_mutex_lock(&R->mt->info_lock); /* the endpoint lets go of it */
    R->mt->tn = NULL;
    pthread_mutex_unlock(&R->mt->info_lock);
    sw__tenants_free(R->tn);
    free(R->main.pred);
    free(R->line.p);
    free(R->key.p);
    free(R->sub_at);
    free(R->sub_len);
    free(R->sub_ts);
    free(R->sub_idx);
    free(R->strbuf);
}

/* The models: the bundle, and the shadow and canary beside it. */
static sw_rc
setup_models(run *R, sw_err *err)
{
    const job *j = R->j;
    sw_rc rc;

    if ((rc = load_slot(R, &R->main, j->bundle, j->name, err)) != SW_OK ||
        (j->shadow != NULL &&
         (rc = load_slot(R, &R->shadow, j->shadow, NULL, err)) != SW_OK) ||
        (j->canary != NULL &&
         (rc = load_slot(R, &R->canary, j->canary, NULL, err)) != SW_OK))
        return rc;
    pthread_mutex_lock(&R->mt->info_lock);
    snprintf(R->mt->model, sizeof(R->mt->model), "%s", R->main.s.model);
    snprintf(R->mt->sha256, sizeof(R->mt->sha256), "%s", R->main.s.sha);
    pthread_mutex_unlock(&R->mt->info_lock);
    return SW_OK;
}

/* The current task's pipeline: restored from the newest checkpoint of
 * its directory that reads back (which must be of this job's pipeline and
 * emission mode), or new; with the privacy secret, and a result. */
sw_rc
run_task_open(run *R, int64_t *keep, sw_err *err)
{
    const job *j = R->j;
    task *t = R->t;
    sw_pipeline *want = NULL;
    const char *secret;
    char *spec;
    sw_rc rc;

    if ((rc = run_restore(R, keep, err)) != SW_OK)
        return rc;
    spec = spec_for_job(sw_model_pipeline_spec(R->main.s.m), j->emission);
    if (spec == NULL)
        return fail(err, SW_E_NOMEM, "run: out of memory");
    if ((t->p == NULL && (rc = sw_pipeline_new(spec, &t->p, err)) != SW_OK) ||
        (rc = sw_pipeline_new(spec, &want, err)) != SW_OK) {
        free(spec);
        return rc;
    }
    free(spec);
    if (sw_pipeline_spec_hash(want) != sw_pipeline_spec_hash(t->p) ||
        sw_pipeline_arrival(want) != sw_pipeline_arrival(t->p))
        rc = fail(err, SW_E_INVAL,
                  "checkpoint.dir %s holds state of another pipeline or "
                  "emission mode (%s) than this job's (%s): move the "
                  "checkpoints away to start afresh",
                  t->dir, sw_pipeline_arrival(t->p) ? "arrival" : "watermark",
                  sw_pipeline_arrival(want) ? "arrival" : "watermark");
    sw_pipeline_free(want);
    if (rc != SW_OK)
        return rc;
    secret = getenv(j->secret_env);
    if (secret != NULL &&
        (rc = sw_pipeline_set_secret(t->p, secret, strlen(secret), err)) !=
            SW_OK)
        return rc;
    return sw_result_new(&t->r, err);
}

void
run_task_free(task *t)
{
    free(t->src_max);
    sw_result_free(t->r);
    sw_pipeline_free(t->p);
    free(t->f_part);
    free(t->f_off);
    free(t->f_kat);
    free(t->f_klen);
    free(t->f_tlen);
    free(t->karena);
    memset(t, 0, sizeof(*t));
}

/* The pipeline of a run without tasks (its one task's), and what the
 * job adds to it: learning, tenants. With tasks, pipelines come with
 * their partitions (sw_tasks.c). */
static sw_rc
setup_pipeline(run *R, int64_t *keep, sw_err *err)
{
    const job *j = R->j;
    sw_rc rc;

    if (!j->tasks && (rc = run_task_open(R, keep, err)) != SW_OK)
        return rc;
    if (j->learn && (rc = run_check_learning(R, err)) != SW_OK)
        return rc;
    if (j->tenant_field != NULL) {
        uint64_t spec_hash, schema;

        sw_model_pipeline_hashes(R->main.s.m, &spec_hash, &schema);
        if ((rc = sw__tenants_new(j, spec_hash, R->mt, &R->tn, err)) != SW_OK)
            return rc;
        pthread_mutex_lock(&R->mt->info_lock);
        R->mt->tn = R->tn;
        pthread_mutex_unlock(&R->mt->info_lock);
    }
    atomic_store(&R->mt->learned, R->n_learned);
    atomic_store(&R->mt->learn_hits, R->n_hits);
    {
        /* the emission mode the job asks for, whatever a task restores */
        char *spec = spec_for_job(sw_model_pipeline_spec(R->main.s.m),
                                  j->emission);
        sw_pipeline *p = NULL;

        if (spec == NULL)
            return fail(err, SW_E_NOMEM, "run: out of memory");
        rc = sw_pipeline_new(spec, &p, err);
        free(spec);
        if (rc != SW_OK)
            return rc;
        snprintf(R->mt->emission, sizeof(R->mt->emission), "%s",
                 sw_pipeline_arrival(p) ? "arrival" : "watermark");
        sw_pipeline_free(p);
    }
    return SW_OK;
}

/* Decoder, outputs (cut back to the checkpoint's lengths: keep) and the
 * source, every partition of which holds the watermark until it is read. */
static sw_rc
setup_io(run *R, const int64_t *keep, sw_err *err)
{
    const job *j = R->j;
    int o;
    sw_rc rc;

    if (j->src != SRC_HDF5 && (rc = make_decoder(R, err)) != SW_OK)
        return rc;
    if ((rc = check_keys(R, err)) != SW_OK)
        return rc;
    for (o = 0; o < j->n_sinks; o++) {
        if (R->outs[o].k == NULL &&
            (rc = run_out_open(&j->sinks[o], &R->outs[o], keep[o], 1, err)) !=
            SW_OK)
            return rc;
    }
    if (j->has_dead) {
        R->dead = &R->outs[o];
        if (R->outs[o].k == NULL &&
            (rc = run_out_open(&j->dead, &R->outs[o], keep[o], 0, err)) !=
            SW_OK)
            return rc;
        o++;
    }
    if (j->has_features) {
        R->feats = &R->outs[o];
        if (R->outs[o].k == NULL &&
            (rc = run_out_open(&j->features, &R->outs[o], keep[o], 0, err)) !=
            SW_OK)
            return rc;
    }
    for (o = 0; o < j->n_sinks; o++) {
        int64_t n_o = sw_model_n_outputs(R->main.s.m);

        if (j->sinks[o].avro) {
            /* one schema a topic: every model it names gives as many
             * outputs (a tenant's model is checked as it loads) */
            if ((R->canary.s.m && sw_model_n_outputs(R->canary.s.m) != n_o) ||
                (R->shadow.s.m && sw_model_n_outputs(R->shadow.s.m) != n_o))
                return fail(err, SW_E_INVAL,
                            "job: sinks[%d]: Avro output has one schema; the "
                            "canary or shadow gives another number of "
                            "outputs than the bundle's %lld",
                            o, (long long)n_o);
            run_avro_schema(&R->line, n_o);
            sw__log("sinks[%d] %s: Avro%s, schema %.*s\n", o, j->sinks[o].topic,
                    j->sinks[o].schema_id >= 0 ? " (Confluent framing)" : "",
                    (int)R->line.len, R->line.p);
        }
        if (j->sinks[o].kind == OUT_HDF5 &&
            (sw_model_n_outputs(R->main.s.m) != 1 ||
             (R->canary.s.m && sw_model_n_outputs(R->canary.s.m) != 1)))
            return fail(err, SW_E_INVAL,
                        "job: sinks[%d].hdf5: one number a prediction; this "
                        "model gives %lld (a list: write jsonl or csv)",
                        o, (long long)sw_model_n_outputs(R->main.s.m));
    }
    if ((rc = open_source(R, err)) != SW_OK)
        return rc;
    R->cur = R->ks;
    if (j->fb_topic != NULL && (rc = open_feedback(R, err)) != SW_OK)
        return rc;
    if (R->ks != NULL && !j->tasks) {
        int n_parts, n_fb = 0;

        if ((rc = sw_kafka_source_partition_count(R->ks, &n_parts, err)) !=
                SW_OK ||
            (R->fb != NULL &&
             (rc = sw_kafka_source_partition_count(R->fb, &n_fb, err)) !=
                 SW_OK))
            return rc;
        if (n_parts + n_fb > SW_MAX_PARTITIONS)
            return fail(err, SW_E_INVAL,
                        "job: feedback: %d partitions with the source's %d; "
                        "a pipeline follows at most %d",
                        n_fb, n_parts, SW_MAX_PARTITIONS);
        R->n_in_parts = n_parts;
        if ((rc = sw_pipeline_announce_partitions(R->t->p, n_parts + n_fb,
                                                  err)) != SW_OK)
            return rc;
        if (R->fb != NULL)
            sw__log("labels from %s (%d partitions), "
                    "joined to the events of %s\n",
                    j->fb_topic, n_fb, j->topic);
    }
    snprintf(R->mt->source, sizeof(R->mt->source), "%s",
             j->src == SRC_HDF5 ? j->h5_path : j->topic);
    return SW_OK;
}

/* The reloaders following the registry: the bundle's (unless it learns:
 * the learned model is its state), the shadow's and the canary's. */
static sw_rc
start_reloaders(run *R, sw_err *err)
{
    const job *j = R->j;
    sw_rc rc;

    if ((!j->learn &&
         (rc = sw__reloader_start(j, j->bundle, j->name, &R->main.s, R->mt,
                                  &R->main.rl, err)) != SW_OK) ||
        (j->shadow != NULL &&
         (rc = sw__reloader_start(j, j->shadow, NULL, &R->shadow.s, R->mt,
                                  &R->shadow.rl, err)) != SW_OK) ||
        (j->canary != NULL &&
         (rc = sw__reloader_start(j, j->canary, NULL, &R->canary.s, R->mt,
                                  &R->canary.rl, err)) != SW_OK))
        return rc;
    if (R->main.rl != NULL)
        sw__log("following %s in %s (every %gs)\n", j->bundle, j->registry,
                j->reload_seconds);
    return SW_OK;
}

/* The loop: swaps between batches, a batch, checkpoints when due, the
 * metrics, until SIGTERM or the end of a bounded source. */
static sw_rc
loop(run *R, sw_err *err)
{
    const job *j = R->j;
    double last_log = now_s();
    int o;
    sw_rc rc;

    R->last_ckpt = last_log;
    while (!stop_asked) {
        int64_t count = 0;
        double t0;

        swap_slot(R, &R->main);
        if (R->shadow.rl != NULL)
            swap_slot(R, &R->shadow);
        if (R->canary.rl != NULL)
            swap_slot(R, &R->canary);
        if (sw__reloader_retired(R->main.rl)) {
            /* what it serves is retired: the job ends as on SIGTERM */
            sw__log("%s retired: stopping (a last "
                    "checkpoint, outputs flushed, offsets "
                    "committed)\n",
                    R->main.s.model);
            stop_asked = 1;
            break;
        }
        retire_slot(R, &R->shadow);
        retire_slot(R, &R->canary);
        if (R->hs != NULL)
            rc = sw_h5_source_next(R->hs, j->batch_max, &count, err);
        else if ((rc = run_repart_forward(R, err)) == SW_OK)
            rc = sw_kafka_source_next(R->ks, j->batch_max, &count, err);
        if (rc != SW_OK)
            return rc;
        t0 = now_s();
        if (count > 0) {
            R->cur = R->ks;
            rc = R->hs ? h5_batch(R, count, err) : kafka_batch(R, count, err);
            if (rc != SW_OK)
                return rc;
            for (o = 0; o < j->n_sinks; o++) {
                if (R->outs[o].fp != NULL)
                    fflush(R->outs[o].fp); /* a long-running filter answers */
            }
            R->n_in += count;
            R->events_since += count;
            record_latency(R, now_s() - t0);
        }
        if (R->fb != NULL) {
            /* the labels, as far as they have come */
            int64_t fcount = 0;

            if ((rc = sw_kafka_source_next(R->fb, j->batch_max, &fcount,
                                           err)) != SW_OK)
                return rc;
            if (fcount > 0) {
                R->cur = R->fb;
                rc = kafka_batch(R, fcount, err);
                R->cur = R->ks;
                if (rc != SW_OK)
                    return rc;
                R->n_in += fcount;
                R->events_since += fcount;
            }
            count += fcount;
        }
        if (count == 0 && j->src != SRC_KAFKA)
            break; /* a file or a slice is done */
        if ((rc = run_ckpt_poll(R, 0, err)) != SW_OK)
            return rc;
        if (j->ckpt_dir != NULL && !R->t->bg &&
            ((j->ckpt_events > 0 && R->events_since >= j->ckpt_events) ||
             (j->ckpt_seconds > 0 &&
              now_s() - R->last_ckpt >= j->ckpt_seconds &&
              R->events_since > 0)) &&
            (rc = j->tasks ? run_tasks_checkpoint(R, 0, err)
                           : run_checkpoint(R, j->ckpt_background, err)) !=
                SW_OK)
            return rc;
        update_metrics(R);
        run_eval_tick(R, 0);
        if (j->log_seconds > 0 && now_s() - last_log >= j->log_seconds) {
            last_log = now_s();
            sw__log("%lld in, %lld out, %lld dead, %lld late, "
                    "%lld checkpoints\n",
                    (long long)R->n_in, (long long)R->n_out,
                    (long long)R->n_dead, (long long)R->n_late,
                    (long long)atomic_load(&R->mt->checkpoints));
        }
    }
    return SW_OK;
}

/* The end of a bounded source, or SIGTERM: everything out, a last
 * checkpoint, offsets committed (or, without checkpoints, the outputs
 * made durable). */
static sw_rc
finish(run *R, sw_err *err)
{
    int o;
    sw_rc rc;

    if (!stop_asked && R->j->src != SRC_KAFKA) {
        if ((rc = sw_pipeline_flush(R->t->p, R->t->r, err)) != SW_OK ||
            (rc = run_emit(R, err)) != SW_OK)
            return rc;
        run_fifo_drop(R, sw_pipeline_oldest_pending(R->t->p));
    }
    if ((rc = run_ckpt_poll(R, 1, err)) != SW_OK)
        return rc;
    if (R->j->tasks) {
        /* every task handed over, as if each partition were revoked; a
         * clean stop leaves snapshots, so a restart reads no changelog */
        rc = run_tasks_checkpoint(R, 1, err);
        run_tasks_stop(R);
        return rc;
    }
    if (R->j->ckpt_dir != NULL)
        return run_checkpoint(R, 0, err);
    for (o = 0; o < R->n_outs; o++) {
        if ((rc = run_out_sync(&R->outs[o], err)) != SW_OK)
            return rc;
    }
    return SW_OK;
}

/* The whole run; returns the exit status. */
static int
run_job(job *j, run_metrics *mt, sw_err *err)
{
    run R;
    int64_t keep[RUN_MAX_SINKS + 2];
    int o, status = 1;

    memset(&R, 0, sizeof(R));
    R.j = j;
    R.t = &R.one;
    R.one.clog_next = -1;
    if (j->ckpt_dir != NULL)
        snprintf(R.one.dir, sizeof(R.one.dir), "%s", j->ckpt_dir);
    R.mt = mt;
    R.key_col = -2;
    R.tenant_col = j->tenant_field ? -2 : -1;
    for (o = 0; o < RUN_MAX_SINKS + 2; o++)
        keep[o] = -1;
    R.n_outs = j->n_sinks + j->has_dead + j->has_features;
    if (setup_models(&R, err) != SW_OK ||
        (j->eos && run_txn_open(&R, err) != SW_OK) ||
        setup_pipeline(&R, keep, err) != SW_OK ||
        setup_io(&R, keep, err) != SW_OK)
        goto done;
    sw__log("serving %s (sha256 %.16s...) on %s, %s "
            "emission\n",
            R.main.s.model, R.main.s.sha, mt->source, mt->emission);
    if (start_reloaders(&R, err) != SW_OK || run_eval_open(&R, err) != SW_OK)
        goto done;
    run_learn_start(&R);
    atomic_store(&mt->running, 1);
    if (loop(&R, err) != SW_OK)
        goto done;
    atomic_store(&mt->running, 0);
    if (finish(&R, err) != SW_OK)
        goto done;
    update_metrics(&R);
    run_learn_stop(&R);
    run_eval_close(&R, 1);
    sw__log("stopped: %lld in, %lld out, %lld dead, %lld late\n",
            (long long)R.n_in, (long long)R.n_out, (long long)R.n_dead,
            (long long)R.n_late);
    status = 0;
done:
    atomic_store(&mt->running, 0);
    free_run(&R);
    return status;
}

int
sw__run_main(int argc, char **argv)
{
    static run_metrics mt;
    struct sigaction sa;
    metrics_server *ms = NULL;
    sw_err err = {0};
    job j;
    int status;

    if (argc != 3) {
        fprintf(stderr, "usage: sw-serve run JOB.json (see docs/runner.md)\n");
        return 2;
    }
    if (sodium_init() < 0) {
        sw__log("libsodium failed to start\n");
        return 1;
    }
    if (sw__job_load(argv[2], &j, &err) != SW_OK) {
        sw__log("%s [%s]\n", err.msg, sw_rc_name(err.rc));
        sw__job_free(&j);
        return 2;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    mt.started_unix_ms = unix_ms();
    pthread_mutex_init(&mt.info_lock, NULL);
    if (j.metrics_port > 0 &&
        sw__metrics_start(j.metrics_port, &mt, &ms, &err) != SW_OK) {
        sw__log("%s [%s]\n", err.msg, sw_rc_name(err.rc));
        sw__job_free(&j);
        return 1;
    }
    status = run_job(&j, &mt, &err);
    if (status != 0)
        sw__log("%s [%s]\n", err.msg, sw_rc_name(err.rc));
    sw__metrics_stop(ms);
    sw__job_free(&j);
    return status;
}
