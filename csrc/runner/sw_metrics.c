/* SPDX-License-Identifier: MIT */
/*
 * sw_metrics.c - the runner's HTTP endpoint, served by libmicrohttpd from
 * its own thread: /metrics in Prometheus' text format, /healthz, and
 * /status as JSON. It only reads the loop's atomic counters, so a scrape
 * never stalls scoring. And the runner's log lines on stderr (sw__log),
 * the other half of what an operator reads.
 */
#include <math.h>
#include <microhttpd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sw_run.h"

const double sw_lat_bounds_ms[LAT_BUCKETS] = {
    0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 5000, 1e9};

struct metrics_server {
    struct MHD_Daemon *d;
    run_metrics *m;
};

typedef struct text {
    char *p;
    size_t len, cap;
} text;

static void
put(text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
put(text *t, const char *fmt, ...)
{
    va_list ap;
    int n;

    for (;;) {
        va_start(ap, fmt);
        n = vsnprintf(t->p + t->len, t->cap - t->len, fmt, ap);
        va_end(ap);
        if (n >= 0 && (size_t)n < t->cap - t->len) {
            t->len += (size_t)n;
            return;
        }
        t->cap = t->cap * 2 + (size_t)(n > 0 ? n : 256);
        t->p = realloc(t->p, t->cap);
        if (t->p == NULL)
            abort(); /* a few KiB: nothing sensible to do without them */
    }
}

static int64_t
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
sw__log(const char *fmt, ...)
{
    char line[2048];
    struct tm tm;
    int64_t ms = now_ms();
    time_t sec = (time_t)(ms / 1000);
    size_t n;
    va_list ap;

    gmtime_r(&sec, &tm);
    n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
    n += (size_t)snprintf(line + n, sizeof(line) - n,
                          ".%03dZ sw-serve: ", (int)(ms % 1000));
    va_start(ap, fmt);
    if (vsnprintf(line + n, sizeof(line) - n, fmt, ap) >=
        (int)(sizeof(line) - n))
        memcpy(line + sizeof(line) - 5, "...\n", 5); /* cut, still a line */
    va_end(ap);
    fputs(line, stderr);
}

/* A tenant's name as a Prometheus label value: quotes, backslashes and
 * line ends escaped, as the exposition format says. */
static void
put_label(text *t, const char *s)
{
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            put(t, "\\%c", *s);
        else if (*s == '\n')
            put(t, "\\n");
        else
            put(t, "%c", *s);
    }
}

static void
tenant_scored(void *ctx, const tenant *tt)
{
    put(ctx, "sw_tenant_predictions_total{tenant=\"");
    put_label(ctx, tt->name);
    put(ctx, "\"} %lld\n", (long long)atomic_load(&tt->n_scored));
}

static void
tenant_dead(void *ctx, const tenant *tt)
{
    put(ctx, "sw_tenant_dead_letters_total{tenant=\"");
    put_label(ctx, tt->name);
    put(ctx, "\"} %lld\n", (long long)atomic_load(&tt->n_dead));
}

static void
tenant_info(void *ctx, const tenant *tt)
{
    int serving = tt->state != TENANT_REFUSED && tt->state != TENANT_RETIRED;

    put(ctx, "sw_tenant_model_info{tenant=\"");
    put_label(ctx, tt->name);
    put(ctx, "\",model=\"");
    put_label(ctx, serving ? tt->model : "");
    put(ctx, "\"} %d\n", serving);
}

static void
prometheus(run_metrics *m, text *t)
{
    int64_t ck = atomic_load(&m->ckpt_unix_ms), cum = 0;
    int i;

#define COUNTER(name, help, v)                                                 \
    put(t, "# HELP sw_" name " " help "\n# TYPE sw_" name " counter\nsw_" name \
           " %lld\n",                                                          \
        (long long)(v))
#define GAUGE(name, help, fmt, v)                                              \
    put(t, "# HELP sw_" name " " help "\n# TYPE sw_" name " gauge\nsw_" name  \
           " " fmt "\n",                                                       \
        v)
    COUNTER("events_in_total", "Events read from the source.",
            atomic_load(&m->events_in));
    COUNTER("predictions_total", "Predictions written.",
            atomic_load(&m->rows_out));
    COUNTER("late_total", "Events older than the watermark allows.",
            atomic_load(&m->late));
    COUNTER("invalid_total", "Events the pipeline refused.",
            atomic_load(&m->invalid));
    COUNTER("dead_letters_total", "Events sent to dead letters.",
            atomic_load(&m->dead));
    COUNTER("checkpoints_total", "Checkpoints written.",
            atomic_load(&m->checkpoints));
    COUNTER("transactions_total",
            "Kafka transactions committed (exactly_once: one per checkpoint).",
            atomic_load(&m->transactions));
    COUNTER("rebalances_total",
            "Partitions assigned or revoked by the consumer group.",
            atomic_load(&m->rebalances));
    GAUGE("tasks", "Partitions this member owns (a job with tasks).", "%lld",
          (long long)atomic_load(&m->tasks));
    COUNTER("changelog_records_total",
            "Records written to the tasks' changelog (changed keys and "
            "meta records).",
            atomic_load(&m->clog_records));
    COUNTER("restore_records_total",
            "Changelog records read back by task restores.",
            atomic_load(&m->restore_records));
    COUNTER("restore_bytes_total",
            "Changelog bytes (keys and values) read back by task restores.",
            atomic_load(&m->restore_bytes));
    GAUGE("checkpoint_duration_seconds", "Duration of the last checkpoint.",
          "%.6f", (double)atomic_load(&m->ckpt_us) / 1e6);
    GAUGE("checkpoint_stall_seconds",
          "How long scoring waited for the last checkpoint (outputs made "
          "durable, then the fork or the write).",
          "%.6f", (double)atomic_load(&m->ckpt_stall_us) / 1e6);
    GAUGE("checkpoint_stall_max_seconds", "The longest such wait.", "%.6f",
          (double)atomic_load(&m->ckpt_stall_max_us) / 1e6);
    GAUGE("checkpoint_bytes", "Size of the last checkpoint.", "%lld",
          (long long)atomic_load(&m->ckpt_bytes));
    GAUGE("checkpoint_age_seconds", "Time since the last checkpoint.", "%.3f",
          ck ? (double)(now_ms() - ck) / 1e3 : -1.0);
    GAUGE("watermark_seconds", "The pipeline's watermark (event time).",
          "%.6f", (double)atomic_load(&m->watermark_us) / 1e6);
    GAUGE("keys", "Keys held in the pipeline's state.", "%lld",
          (long long)atomic_load(&m->keys));
    COUNTER("keys_evicted_total",
            "Keys dropped for the spec's max_keys budget since the start.",
            atomic_load(&m->evicted));
    GAUGE("state_bytes",
          "Bytes the pipeline's keyed state holds, as allocated (what "
          "max_keys and ttl bound).",
          "%lld", (long long)atomic_load(&m->state_bytes));
    put(t, "# HELP sw_partition_lag Messages behind the partition's end.\n"
           "# TYPE sw_partition_lag gauge\n");
    for (i = 0; i < m->n_parts && i < 64; i++)
        put(t, "sw_partition_lag{partition=\"%lld\"} %lld\n",
            (long long)atomic_load(&m->part_id[i]),
            (long long)atomic_load(&m->part_lag[i]));
    put(t, "# HELP sw_batch_latency_seconds From a batch's arrival to its "
           "predictions written.\n# TYPE sw_batch_latency_seconds histogram\n");
    for (i = 0; i < LAT_BUCKETS; i++) {
        cum = atomic_load(&m->lat_bucket[i]);
        if (i == LAT_BUCKETS - 1)
            put(t, "sw_batch_latency_seconds_bucket{le=\"+Inf\"} %lld\n",
                (long long)cum);
        else
            put(t, "sw_batch_latency_seconds_bucket{le=\"%g\"} %lld\n",
                sw_lat_bounds_ms[i] / 1e3, (long long)cum);
    }
    put(t, "sw_batch_latency_seconds_sum %.6f\n",
        (double)atomic_load(&m->lat_sum_us) / 1e6);
    put(t, "sw_batch_latency_seconds_count %lld\n",
        (long long)atomic_load(&m->lat_count));
    COUNTER("model_reloads_total",
            "Versions swapped in from the registry since the start.",
            atomic_load(&m->reloads));
    COUNTER("model_refusals_total",
            "Versions the registry named that were refused (corrupt, golden "
            "mismatch, another pipeline); the old one kept serving.",
            atomic_load(&m->reload_refusals));
    COUNTER("tenant_loads_total", "Tenant models loaded (again after an "
            "eviction).", atomic_load(&m->tenant_loads));
    COUNTER("tenant_refusals_total",
            "Tenant models refused (each try); their events are dead "
            "letters.",
            atomic_load(&m->tenant_refusals));
    COUNTER("tenant_evictions_total",
            "Tenant models dropped for the max_loaded bound.",
            atomic_load(&m->tenant_evictions));
    COUNTER("learn_snapshots_total",
            "Learned models registered as new versions.",
            atomic_load(&m->snapshots));
    COUNTER("learned_total",
            "Label join pairs learned online since the first checkpointed "
            "state.",
            atomic_load(&m->learned));
    COUNTER("learn_hits_total",
            "Pairs the model classified right just before learning them: "
            "live prequential accuracy is this over learned_total.",
            atomic_load(&m->learn_hits));
    GAUGE("model_swap_max_seconds",
          "The longest the loop waited for a model swap.", "%.6f",
          (double)atomic_load(&m->swap_max_us) / 1e6);
    pthread_mutex_lock(&m->info_lock);
    if (m->tn != NULL) {
        put(t, "# HELP sw_tenant_predictions_total Events scored by the "
               "tenant's model.\n# TYPE sw_tenant_predictions_total counter\n");
        sw__tenants_each(m->tn, tenant_scored, t);
        put(t, "# HELP sw_tenant_dead_letters_total Events dead-lettered "
               "while the tenant's model was refused.\n# TYPE "
               "sw_tenant_dead_letters_total counter\n");
        sw__tenants_each(m->tn, tenant_dead, t);
        put(t, "# HELP sw_tenant_model_info The tenant's model: loaded 1, "
               "refused 0.\n# TYPE sw_tenant_model_info gauge\n");
        sw__tenants_each(m->tn, tenant_info, t);
    }
    for (i = 0; i < SW_LIVE_KEYS - 2; i++) {
        int s, kind;

        for (kind = 1; kind <= 2; kind++) {
            int shown = 0;

            for (s = 0; s < SW_LIVE_SLOTS; s++) {
                if (m->live_set[s] != kind)
                    continue;
                if (!shown++)
                    put(t, "# HELP sw_%s Live evaluation on the label "
                           "join's pairs (docs/runner.md).\n# TYPE sw_%s "
                           "gauge\n",
                        sw__live_keys[kind - 1][i],
                        sw__live_keys[kind - 1][i]);
                if (isnan(m->live[s][i])) /* Prometheus spells it so */
                    put(t, "sw_%s{slot=\"%s\"} NaN\n",
                        sw__live_keys[kind - 1][i], sw__live_slots[s]);
                else
                    put(t, "sw_%s{slot=\"%s\"} %.17g\n",
                        sw__live_keys[kind - 1][i], sw__live_slots[s],
                        m->live[s][i]);
            }
        }
    }
    put(t, "# HELP sw_model_info The model being served.\n# TYPE sw_model_info "
           "gauge\nsw_model_info{model=\"%s\",sha256=\"%s\",emission=\"%s\"} "
           "1\n",
        m->model, m->sha256, m->emission);
    pthread_mutex_unlock(&m->info_lock);
#undef COUNTER
#undef GAUGE
}

static void
status(run_metrics *m, text *t)
{
    int64_t ck = atomic_load(&m->ckpt_unix_ms);
    int i;

    pthread_mutex_lock(&m->info_lock);
    put(t,
        "{\"running\": %s, \"model\": \"%s\", \"sha256\": \"%s\", "
        "\"emission\": \"%s\", \"source\": \"%s\", \"uptime_s\": %.3f, "
        "\"events_in\": %lld, \"predictions\": %lld, \"late\": %lld, "
        "\"invalid\": %lld, \"dead_letters\": %lld, \"checkpoints\": %lld, "
        "\"transactions\": %lld, \"checkpoint_age_s\": %.3f, "
        "\"watermark_us\": %lld, \"keys\": %lld, \"state_bytes\": %lld, "
        "\"reloads\": %lld, \"refusals\": %lld, \"rebalances\": %lld, "
        "\"tasks\": %lld, \"restore_records\": %lld, \"restore_bytes\": "
        "%lld, \"partitions\": [",
        atomic_load(&m->running) ? "true" : "false", m->model, m->sha256,
        m->emission, m->source, (double)(now_ms() - m->started_unix_ms) / 1e3,
        (long long)atomic_load(&m->events_in),
        (long long)atomic_load(&m->rows_out), (long long)atomic_load(&m->late),
        (long long)atomic_load(&m->invalid), (long long)atomic_load(&m->dead),
        (long long)atomic_load(&m->checkpoints),
        (long long)atomic_load(&m->transactions),
        ck ? (double)(now_ms() - ck) / 1e3 : -1.0,
        (long long)atomic_load(&m->watermark_us),
        (long long)atomic_load(&m->keys),
        (long long)atomic_load(&m->state_bytes),
        (long long)atomic_load(&m->reloads),
        (long long)atomic_load(&m->reload_refusals),
        (long long)atomic_load(&m->rebalances),
        (long long)atomic_load(&m->tasks),
        (long long)atomic_load(&m->restore_records),
        (long long)atomic_load(&m->restore_bytes));
    pthread_mutex_unlock(&m->info_lock);
    for (i = 0; i < m->n_parts && i < 64; i++)
        put(t, "%s{\"partition\": %lld, \"next_offset\": %lld, \"lag\": %lld}",
            i ? ", " : "", (long long)atomic_load(&m->part_id[i]),
            (long long)atomic_load(&m->part_next[i]),
            (long long)atomic_load(&m->part_lag[i]));
    put(t, "]}\n");
}

static enum MHD_Result
answer(void *cls, struct MHD_Connection *c, const char *url,
       const char *method, const char *version, const char *upload,
       size_t *upload_len, void **con_cls)
{
    metrics_server *s = cls;
    struct MHD_Response *r;
    const char *type = "text/plain; version=0.0.4";
    text t = {NULL, 0, 0};
    unsigned code = MHD_HTTP_OK;
    enum MHD_Result ret;

    (void)version, (void)upload, (void)upload_len, (void)con_cls;
    if (strcmp(method, "GET") != 0) {
        put(&t, "only GET\n");
        code = MHD_HTTP_METHOD_NOT_ALLOWED;
    } else if (!strcmp(url, "/metrics")) {
        prometheus(s->m, &t);
    } else if (!strcmp(url, "/healthz")) {
        put(&t, atomic_load(&s->m->running) ? "ok\n" : "stopping\n");
        code = atomic_load(&s->m->running) ? MHD_HTTP_OK
                                           : MHD_HTTP_SERVICE_UNAVAILABLE;
    } else if (!strcmp(url, "/status")) {
        status(s->m, &t);
        type = "application/json";
    } else {
        put(&t, "not found: /metrics, /healthz or /status\n");
        code = MHD_HTTP_NOT_FOUND;
    }
    r = MHD_create_response_from_buffer(t.len, t.p, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(r, "Content-Type", type);
    ret = MHD_queue_response(c, code, r);
    MHD_destroy_response(r);
    return ret;
}

sw_rc
sw__metrics_start(int port, run_metrics *m, metrics_server **out, sw_err *err)
{
    metrics_server *s = calloc(1, sizeof(*s));

    *out = NULL;
    if (s == NULL) {
        err->rc = SW_E_NOMEM;
        snprintf(err->msg, sizeof(err->msg), "metrics: out of memory");
        return SW_E_NOMEM;
    }
    s->m = m;
    s->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD |
                                MHD_USE_ERROR_LOG,
                            (uint16_t)port, NULL, NULL, answer, s,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10,
                            MHD_OPTION_END);
    if (s->d == NULL) {
        free(s);
        err->rc = SW_E_IO;
        snprintf(err->msg, sizeof(err->msg),
                 "metrics: cannot listen on port %d (in use?)", port);
        return SW_E_IO;
    }
    *out = s;
    return SW_OK;
}

void
sw__metrics_stop(metrics_server *s)
{
    if (s == NULL)
        return;
    MHD_stop_daemon(s->d);
    free(s);
}
