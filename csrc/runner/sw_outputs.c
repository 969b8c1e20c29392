/* SPDX-License-Identifier: MIT */
/*
 * sw_outputs.c - the loop's outputs: a topic (librdkafka, acknowledged) or a file
 * (JSON lines or CSV, cut back to a checkpoint's length at start; or a
 * backtest's HDF5 file, written whole at the end).
 */
#include <unistd.h>

#include "sw_run_int.h"

/* A backtest's predictions for HDF5: the columns, and the (model,
 * SHA-256) pairs rows name by number (a swap or a canary adds one). */
#define H5_MODELS 64

struct h5rows {
    sw_h5_writer *w; /* opened at start: a path that cannot be written
                      * fails before the backtest, not after it */
    int64_t n, cap;
    int64_t *time, *off, *kat;
    int32_t *part, *klen;
    int16_t *model;
    double *pred;
    char *keys;
    size_t kused, kcap;
    int n_models;
    char names[H5_MODELS][256];
    char shas[H5_MODELS][65];
};

static void
h5rows_free(h5rows *h)
{
    if (h == NULL)
        return;
    sw_h5_writer_free(h->w); /* abandons the temporary file */
    free(h->time);
    free(h->off);
    free(h->kat);
    free(h->part);
    free(h->klen);
    free(h->model);
    free(h->pred);
    free(h->keys);
    free(h);
}

sw_rc
run_out_row(out *o, const char *key, size_t key_len, double prediction,
            const char *model, const char *sha, int32_t part, int64_t off,
            int64_t time_us, sw_err *err)
{
    h5rows *h = o->h5;
    int m;

    for (m = h->n_models - 1; m >= 0; m--) {
        if (!strcmp(h->names[m], model) && !strcmp(h->shas[m], sha))
            break;
    }
    if (m < 0) {
        if (h->n_models == H5_MODELS)
            return fail(err, SW_E_INVAL,
                        "output %s: more than %d models in one backtest",
                        o->spec->path, H5_MODELS);
        m = h->n_models++;
        snprintf(h->names[m], sizeof(h->names[m]), "%s", model);
        snprintf(h->shas[m], sizeof(h->shas[m]), "%s", sha);
    }
    if (h->n == h->cap) {
        int64_t cap = h->cap ? 2 * h->cap : 65536;

#define GROW(f)                                                        \
    do {                                                               \
        void *q = realloc(h->f, (size_t)cap * sizeof(*h->f));          \
        if (q == NULL)                                                 \
            return fail(err, SW_E_NOMEM, "output %s: out of memory",   \
                        o->spec->path);                                \
        h->f = q;                                                      \
    } while (0)
        GROW(time);
        GROW(off);
        GROW(kat);
        GROW(part);
        GROW(klen);
        GROW(model);
        GROW(pred);
#undef GROW
        h->cap = cap;
    }
    if (h->kused + key_len > h->kcap) {
        size_t cap = h->kcap ? h->kcap : 1 << 20;
        char *q;

        while (cap < h->kused + key_len)
            cap *= 2;
        if ((q = realloc(h->keys, cap)) == NULL)
            return fail(err, SW_E_NOMEM, "output %s: out of memory",
                        o->spec->path);
        h->keys = q;
        h->kcap = cap;
    }
    memcpy(h->keys + h->kused, key, key_len);
    h->kat[h->n] = (int64_t)h->kused;
    h->klen[h->n] = (int32_t)key_len;
    h->kused += key_len;
    h->time[h->n] = time_us;
    h->off[h->n] = off;
    h->part[h->n] = part;
    h->model[h->n] = (int16_t)m;
    h->pred[h->n] = prediction;
    h->n++;
    return SW_OK;
}

/* A row's time beside its number, so qsort needs no context. */
typedef struct timed {
    int64_t t, row;
} timed;

static int
by_time(const void *a, const void *b)
{
    const timed *x = a, *y = b;

    if (x->t != y->t)
        return x->t < y->t ? -1 : 1;
    /* stable: arrival order within a time */
    return x->row < y->row ? -1 : x->row > y->row;
}

/* The rows as an event table "predictions" (docs/runner.md): sorted by
 * time, as an event file must be, so the predictions replay like events;
 * (partition, offset) give each its event. */
static sw_rc
h5_write(out *o, sw_err *err)
{
    static const char schema[] =
        "{\"time\": \"time_us\", \"time_unit\": \"us\", \"fields\": "
        "{\"key\": \"str\", \"prediction\": \"float64\", \"model\": \"str\", "
        "\"sha256\": \"str\", \"partition\": \"int32\", "
        "\"offset\": \"int64\"}}";
    h5rows *h = o->h5;
    int64_t i, *t = NULL, *off = NULL, kw = 1, mw = 1;
    timed *ix = NULL;
    int32_t *part = NULL;
    double *pred = NULL;
    char *keys = NULL, *models = NULL, *shas = NULL;
    sw_column c[7];
    sw_batch b;
    int table = 0, m;
    sw_rc rc = SW_OK;

    for (i = 0; i < h->n; i++)
        kw = h->klen[i] > kw ? h->klen[i] : kw;
    for (m = 0; m < h->n_models; m++)
        mw = (int64_t)strlen(h->names[m]) > mw ? (int64_t)strlen(h->names[m])
                                               : mw;
    if (h->n > 0) {
        ix = malloc((size_t)h->n * sizeof(*ix));
        t = malloc((size_t)h->n * sizeof(*t));
        off = malloc((size_t)h->n * sizeof(*off));
        part = malloc((size_t)h->n * sizeof(*part));
        pred = malloc((size_t)h->n * sizeof(*pred));
        keys = calloc((size_t)h->n, (size_t)kw);
        models = calloc((size_t)h->n, (size_t)mw);
        shas = calloc((size_t)h->n, 64);
        if (ix == NULL || t == NULL || off == NULL || part == NULL ||
            pred == NULL || keys == NULL || models == NULL || shas == NULL) {
            rc = fail(err, SW_E_NOMEM, "output %s: out of memory",
                      o->spec->path);
            goto done;
        }
    }
    for (i = 0; i < h->n; i++)
        ix[i] = (timed){h->time[i], i};
    if (h->n > 1)
        qsort(ix, (size_t)h->n, sizeof(*ix), by_time);
    for (i = 0; i < h->n; i++) {
        int64_t r = ix[i].row;
        const char *mn = h->names[h->model[r]];

        t[i] = h->time[r];
        off[i] = h->off[r];
        part[i] = h->part[r];
        pred[i] = h->pred[r];
        memcpy(keys + i * kw, h->keys + h->kat[r], (size_t)h->klen[r]);
        memcpy(models + i * mw, mn, strlen(mn));
        memcpy(shas + i * 64, h->shas[h->model[r]], 64);
    }
    c[0] = (sw_column){"time_us", SW_COL_I64, t, 8, NULL};
    c[1] = (sw_column){"key", SW_COL_STR, keys, kw, NULL};
    c[2] = (sw_column){"prediction", SW_COL_F64, pred, 8, NULL};
    c[3] = (sw_column){"model", SW_COL_STR, models, mw, NULL};
    c[4] = (sw_column){"sha256", SW_COL_STR, shas, 64, NULL};
    c[5] = (sw_column){"partition", SW_COL_I32, part, 4, NULL};
    c[6] = (sw_column){"offset", SW_COL_I64, off, 8, NULL};
    b.n_rows = h->n;
    b.n_columns = 7;
    b.columns = c;
    if ((rc = sw_h5_writer_table(h->w, "predictions", schema,
                                 "{\"written_by\": \"sw-serve run\"}", 4, 0,
                                 &table, err)) == SW_OK &&
        (rc = sw_h5_writer_append(h->w, table, &b, err)) == SW_OK) {
        rc = sw_h5_writer_close(h->w, err);
        h->w = NULL; /* close freed it */
    }
done:
    free(ix);
    free(t);
    free(off);
    free(part);
    free(pred);
    free(keys);
    free(models);
    free(shas);
    return rc;
}

sw_rc
run_out_open(const out_spec *s, out *o, int64_t keep, int csv_header,
         sw_err *err)
{
    memset(o, 0, sizeof(*o));
    o->spec = s;
    if (s->kind == OUT_HDF5) {
        if ((o->h5 = calloc(1, sizeof(*o->h5))) == NULL)
            return fail(err, SW_E_NOMEM, "output %s: out of memory", s->path);
        return sw_h5_writer_open(s->path, &o->h5->w, err);
    }
    if (s->kind == OUT_KAFKA)
        return sw_kafka_sink_open(s->bootstrap, s->topic, s->conf, &o->k, err);
    o->fp = fopen(s->path, "a+");
    if (o->fp == NULL)
        return fail(err, SW_E_IO, "output %s: %s", s->path, strerror(errno));
    if (ftruncate(fileno(o->fp), keep > 0 ? keep : 0) != 0)
        return fail(err, SW_E_IO, "output %s: truncate: %s", s->path,
                    strerror(errno));
    o->bytes = keep > 0 ? keep : 0;
    if (o->bytes == 0 && csv_header && s->kind == OUT_CSV) {
        static const char h[] =
            "partition,offset,time_us,key,prediction,model,sha256\n";

        fputs(h, o->fp);
        o->bytes += (int64_t)sizeof(h) - 1;
    }
    return SW_OK;
}

sw_rc
run_out_write(out *o, const char *key, size_t key_len, const char *line,
          size_t len, const char *const *headers, sw_err *err)
{
    if (o->k != NULL) {
        sw_rc rc;

        if (o->tx != NULL && !o->tx->open) {
            if ((rc = sw_kafka_sink_begin(o->tx->owner, err)) != SW_OK)
                return rc;
            o->tx->open = 1;
        }
        return sw_kafka_sink_send(o->k, key, key_len, line, len, -1, 0,
                                  headers, err);
    }
    if (fwrite(line, 1, len, o->fp) != len || fputc('\n', o->fp) == EOF)
        return fail(err, SW_E_IO, "output %s: %s", o->spec->path,
                    strerror(errno));
    o->bytes += (int64_t)len + 1;
    return SW_OK;
}

sw_rc
run_out_sync(out *o, sw_err *err)
{
    if (o->h5 != NULL)
        return o->h5->w != NULL ? h5_write(o, err) : SW_OK;
    if (o->k != NULL)
        return sw_kafka_sink_flush(o->k, 60000, err);
    if (o->fp == NULL)
        return SW_OK;
    if (fflush(o->fp) != 0 || fsync(fileno(o->fp)) != 0)
        return fail(err, SW_E_IO, "output %s: %s", o->spec->path,
                    strerror(errno));
    return SW_OK;
}

void
run_out_close(out *o)
{
    /* the transaction's producer outlives the sinks opened on it */
    if (o->tx == NULL || o->k != o->tx->owner)
        sw_kafka_sink_free(o->k);
    h5rows_free(o->h5);
    if (o->fp != NULL)
        fclose(o->fp);
    memset(o, 0, sizeof(*o));
}

/* exactly_once: every Kafka output on one transactional producer (the
 * first one's), opened before a checkpoint is chosen: init_transactions
 * fences an older runner of the job and settles its open transaction, so
 * the group's committed offsets are final when run_restore reads them. */
sw_rc
run_txn_open(run *R, sw_err *err)
{
    const job *j = R->j;
    int o;
    sw_rc rc;

    for (o = 0; o < R->n_outs; o++) {
        const out_spec *s = o < j->n_sinks ? &j->sinks[o]
                            : o == j->n_sinks && j->has_dead ? &j->dead
                                                             : &j->features;
        out *x = &R->outs[o];

        if (s->kind != OUT_KAFKA)
            continue;
        memset(x, 0, sizeof(*x));
        x->spec = s;
        x->tx = &R->tx;
        if (R->tx.owner == NULL) {
            const char **conf =
                conf_with(s->conf, "transactional.id", j->txn_id, 0);

            if (conf == NULL)
                return fail(err, SW_E_NOMEM, "run: out of memory");
            rc = sw_kafka_sink_open(s->bootstrap, s->topic, conf, &x->k, err);
            free(conf);
            if (rc != SW_OK)
                return rc;
            R->tx.owner = x->k;
        } else if ((rc = sw_kafka_sink_open_on(R->tx.owner, s->topic, &x->k,
                                               err)) != SW_OK) {
            return rc;
        }
    }
    if (R->tx.owner == NULL)
        return fail(err, SW_E_INVAL,
                    "job: exactly_once: no Kafka output (a transaction holds "
                    "topics; files are cut back to the checkpoint anyway)");
    sw__log("exactly once: transactional.id '%s'\n", j->txn_id);
    return sw_kafka_sink_init_transactions(R->tx.owner, 60000, err);
}

/* The prediction record Avro output writes (sw_emit.c writes its fields
 * in this order): tenant and shadow are null unless the job has them. */
void
run_avro_schema(buf *b, int64_t n_o)
{
    const char *num = n_o == 1 ? "\"double\""
                               : "{\"type\": \"array\", \"items\": \"double\"}";

    b->len = 0;
    add(b,
        "{\"type\": \"record\", \"name\": \"Prediction\", "
        "\"namespace\": \"streamwise\", \"fields\": ["
        "{\"name\": \"key\", \"type\": \"string\"}, "
        "{\"name\": \"prediction\", \"type\": %s}, "
        "{\"name\": \"model\", \"type\": \"string\"}, "
        "{\"name\": \"sha256\", \"type\": \"string\"}, "
        "{\"name\": \"partition\", \"type\": \"int\"}, "
        "{\"name\": \"offset\", \"type\": \"long\"}, "
        "{\"name\": \"time_us\", \"type\": \"long\"}, "
        "{\"name\": \"tenant\", \"type\": [\"null\", \"string\"], "
        "\"default\": null}, "
        "{\"name\": \"shadow\", \"type\": [\"null\", {\"type\": \"record\", "
        "\"name\": \"Shadow\", \"fields\": [{\"name\": \"prediction\", "
        "\"type\": %s}, {\"name\": \"model\", \"type\": \"string\"}]}], "
        "\"default\": null}]}",
        num, num);
}
