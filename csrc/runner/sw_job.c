/* SPDX-License-Identifier: MIT */
/*
 * sw_job.c - read a job file for `sw-serve run` (JSON, as
 * streamwise.serve.Job writes it; docs/runner.md is its reference).
 *
 * Everything is checked before anything starts: an unknown key, a value
 * of the wrong kind or a missing part is an error that names the path in
 * the file and what was expected. Kafka properties pass through to
 * librdkafka as they are, and a value written "${NAME}" is taken from the
 * environment, so secrets need not live in the job file.
 */
#include <stdlib.h>
#include <string.h>

#include <unistd.h>

#include "sw_run.h"

static sw_rc
bad(sw_err *err, const char *path, const char *expected)
{
    err->rc = SW_E_INVAL;
    snprintf(err->msg, sizeof(err->msg), "job: %s: expected %s", path,
             expected);
    return SW_E_INVAL;
}

/* Every key of o is one of the NULL-terminated names. */
static sw_rc
only(json_t *o, const char *path, const char *const *names, sw_err *err)
{
    const char *key;
    json_t *v;

    json_object_foreach(o, key, v)
    {
        int i, known = 0;
        char list[200] = "";
        size_t used = 0;

        for (i = 0; names[i] != NULL; i++) {
            known |= !strcmp(key, names[i]);
            if (used < sizeof(list))
                used += (size_t)snprintf(list + used, sizeof(list) - used,
                                         "%s%s", i ? ", " : "", names[i]);
        }
        if (!known) {
            err->rc = SW_E_INVAL;
            snprintf(err->msg, sizeof(err->msg),
                     "job: %s.%s: unknown key (known: %s)", path, key, list);
            return SW_E_INVAL;
        }
    }
    return SW_OK;
}

static const char *
str(json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

/* The job says something for key (null says nothing). */
static int
given(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);

    return v != NULL && !json_is_null(v);
}

static int
all_digits(const char *s)
{
    if (*s == '\0')
        return 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return 0;
    }
    return 1;
}

/* A number at key (def when absent); -1 return when not a number >= lo. */
static int
num(json_t *o, const char *key, double def, double lo, double *out)
{
    json_t *v = json_object_get(o, key);

    *out = def;
    if (v == NULL)
        return 0;
    if (!json_is_number(v) || json_number_value(v) < lo)
        return -1;
    *out = json_number_value(v);
    return 0;
}

/* {"name": "value", ...} as a NULL-terminated array of names and values
 * (borrowed from the JSON; "${VAR}" values replaced by the environment's,
 * the replacement stored back into the JSON so that it owns it). */
static sw_rc
conf_list(json_t *o, const char *path, const char ***out, sw_err *err)
{
    const char *key, **kv;
    json_t *v;
    size_t i = 0;

    *out = NULL;
    if (o == NULL)
        return SW_OK;
    if (!json_is_object(o))
        return bad(err, path, "an object of librdkafka properties");
    kv = calloc(2 * json_object_size(o) + 1, sizeof(char *));
    if (kv == NULL)
        return bad(err, path, "memory");
    json_object_foreach(o, key, v)
    {
        const char *s = json_string_value(v);
        size_t n = s ? strlen(s) : 0;

        if (s == NULL) {
            free(kv);
            err->rc = SW_E_INVAL;
            snprintf(err->msg, sizeof(err->msg),
                     "job: %s.%s: expected a string value", path, key);
            return SW_E_INVAL;
        }
        if (n > 3 && s[0] == '$' && s[1] == '{' && s[n - 1] == '}') {
            char name[128];
            const char *env;

            snprintf(name, sizeof(name), "%.*s", (int)(n - 3), s + 2);
            env = getenv(name);
            if (env == NULL) {
                free(kv);
                err->rc = SW_E_INVAL;
                snprintf(err->msg, sizeof(err->msg),
                         "job: %s.%s: environment variable %s is not set",
                         path, key, name);
                return SW_E_INVAL;
            }
            json_object_set_new(o, key, json_string(env));
            s = json_string_value(json_object_get(o, key));
        }
        kv[i++] = key;
        kv[i++] = s;
    }
    *out = kv;
    return SW_OK;
}

/* {"kafka": {"topic", "bootstrap", "config"}} | {"jsonl": path} |
 * {"csv": path} */
static sw_rc
output(json_t *o, const char *path, const char *bootstrap, out_spec *s,
       sw_err *err)
{
    static const char *const kinds[] = {"kafka", "jsonl", "csv", "hdf5",
                                        NULL};
    static const char *const kafka_keys[] = {"topic", "bootstrap", "config",
                                             "format", "schema_id", NULL};
    char sub[96];
    json_t *k, *f, *id;
    sw_rc rc;

    memset(s, 0, sizeof(*s));
    s->schema_id = -1;
    if (!json_is_object(o) || json_object_size(o) != 1)
        return bad(err, path,
                   "{\"kafka\": {\"topic\": ...}}, {\"jsonl\": path}, "
                   "{\"csv\": path} or {\"hdf5\": path}");
    if ((rc = only(o, path, kinds, err)) != SW_OK)
        return rc;
    if ((s->path = str(o, "jsonl")) != NULL) {
        s->kind = OUT_JSONL;
        return SW_OK;
    }
    if ((s->path = str(o, "csv")) != NULL) {
        s->kind = OUT_CSV;
        return SW_OK;
    }
    if ((s->path = str(o, "hdf5")) != NULL) {
        s->kind = OUT_HDF5;
        return SW_OK;
    }
    k = json_object_get(o, "kafka");
    snprintf(sub, sizeof(sub), "%s.kafka", path);
    if (!json_is_object(k) || (s->topic = str(k, "topic")) == NULL)
        return bad(err, sub, "{\"topic\": name}; jsonl and csv take a path");
    if ((rc = only(k, sub, kafka_keys, err)) != SW_OK)
        return rc;
    s->kind = OUT_KAFKA;
    /* -1: the source's (Avro for an Avro source), decided by job_outputs */
    s->avro = -1;
    if ((f = json_object_get(k, "format")) != NULL) {
        if (!json_is_string(f) || (strcmp(json_string_value(f), "json") &&
                                   strcmp(json_string_value(f), "avro"))) {
            snprintf(sub, sizeof(sub), "%s.kafka.format", path);
            return bad(err, sub, "\"json\" or \"avro\"");
        }
        s->avro = !strcmp(json_string_value(f), "avro");
    }
    if ((id = json_object_get(k, "schema_id")) != NULL) {
        snprintf(sub, sizeof(sub), "%s.kafka.schema_id", path);
        if (!json_is_integer(id) || json_integer_value(id) < 0 ||
            json_integer_value(id) > INT32_MAX)
            return bad(err, sub, "a schema registry id 0..2147483647 (the "
                                 "Confluent framing of Avro output)");
        s->schema_id = json_integer_value(id);
    }
    s->bootstrap = str(k, "bootstrap") ? str(k, "bootstrap") : bootstrap;
    if (s->bootstrap == NULL)
        return bad(err, sub, "a bootstrap (none from the source either)");
    snprintf(sub, sizeof(sub), "%s.kafka.config", path);
    return conf_list(json_object_get(k, "config"), sub, &s->conf, err);
}

static sw_rc
source(job *j, json_t *src, sw_err *err)
{
    static const char *const kinds[] = {"kafka", "hdf5", NULL};
    static const char *const kafka_keys[] = {
        "bootstrap", "topic", "group", "config", "start", "stop", "avro", NULL};
    static const char *const h5_keys[] = {"path", "event_type", NULL};
    json_t *k, *h;
    sw_rc rc;

    if (!json_is_object(src) || json_object_size(src) != 1)
        return bad(err, "source",
                   "{\"kafka\": {...}} or {\"hdf5\": {\"path\", "
                   "\"event_type\"}}");
    if ((rc = only(src, "source", kinds, err)) != SW_OK)
        return rc;
    if ((h = json_object_get(src, "hdf5")) != NULL) {
        if ((rc = only(h, "source.hdf5", h5_keys, err)) != SW_OK)
            return rc;
        j->src = SRC_HDF5;
        j->h5_path = str(h, "path");
        j->h5_type = str(h, "event_type");
        if (j->h5_path == NULL || j->h5_type == NULL)
            return bad(err, "source.hdf5", "a path and an event_type");
        return SW_OK;
    }
    k = json_object_get(src, "kafka");
    if (!json_is_object(k))
        return bad(err, "source.kafka", "an object");
    if ((rc = only(k, "source.kafka", kafka_keys, err)) != SW_OK)
        return rc;
    j->bootstrap = str(k, "bootstrap");
    j->topic = str(k, "topic");
    j->group = str(k, "group");
    if (j->bootstrap == NULL || j->topic == NULL)
        return bad(err, "source.kafka", "a bootstrap and a topic");
    j->src = j->group ? SRC_KAFKA : SRC_KAFKA_SLICE;
    if (j->group && (json_object_get(k, "start") || json_object_get(k, "stop")))
        return bad(err, "source.kafka",
                   "either a group (live) or start/stop (a topic slice for "
                   "a backtest), not both");
    {
        json_t *a = json_object_get(k, "start"), *b = json_object_get(k, "stop");

        if (a != NULL && json_is_integer(a)) {
            j->start_kind = 1;
            j->start = json_integer_value(a);
        } else if (a != NULL && !(json_is_string(a) &&
                                  !strcmp(json_string_value(a), "beginning"))) {
            return bad(err, "source.kafka.start",
                       "\"beginning\" or an offset");
        }
        if (b != NULL && json_is_integer(b)) {
            j->stop_kind = 1;
            j->stop = json_integer_value(b);
        } else if (b != NULL &&
                   !(json_is_string(b) && !strcmp(json_string_value(b), "end"))) {
            return bad(err, "source.kafka.stop", "\"end\" or an offset");
        }
    }
    if ((h = json_object_get(k, "avro")) != NULL) {
        static const char *const avro_keys[] = {"schema", "framing", "writers",
                                                NULL};
        json_t *schema = json_object_get(h, "schema");
        const char *framing = str(h, "framing");

        if ((rc = only(h, "source.kafka.avro", avro_keys, err)) != SW_OK)
            return rc;
        if (json_is_string(schema)) {
            j->avro_schema = json_string_value(schema);
        } else if (json_is_object(schema)) {
            char *t = json_dumps(schema, JSON_COMPACT);

            /* kept alive by the job's JSON */
            json_object_set_new(h, "schema_text", json_string(t ? t : ""));
            free(t);
            j->avro_schema = str(h, "schema_text");
        } else {
            return bad(err, "source.kafka.avro.schema",
                       "the Avro record schema (object or JSON text)");
        }
        j->avro_framing = framing == NULL || !strcmp(framing, "confluent");
        if (framing && strcmp(framing, "confluent") && strcmp(framing, "raw"))
            return bad(err, "source.kafka.avro.framing",
                       "\"confluent\" or \"raw\"");
        j->avro_writers = json_object_get(h, "writers");
        if (j->avro_writers && !json_is_object(j->avro_writers))
            return bad(err, "source.kafka.avro.writers",
                       "{schema id: writer schema}");
    }
    return conf_list(json_object_get(k, "config"), "source.kafka.config",
                     &j->src_conf, err);
}

/* What to run: the bundle or registry reference, how it is followed
 * (reload, control topic) and named. */
static sw_rc
job_model(job *j, sw_err *err)
{
    static const char *const reload_keys[] = {"poll_s", NULL};
    static const char *const control_keys[] = {"topic", "bootstrap", NULL};
    const char *at;
    json_t *v;
    sw_rc rc;

    j->bundle = str(j->root, "bundle");
    j->registry = str(j->root, "registry");
    j->name = str(j->root, "name");
    if (j->bundle == NULL)
        return bad(err, "bundle",
                   "a .swm path, or a registry reference name@alias with "
                   "\"registry\"");
    /* A reference to an alias (or to the latest version) is followed,
     * unless the job pins it; a version number never moves. */
    at = strchr(j->bundle, '@');
    j->reload_seconds =
        j->registry != NULL && (at == NULL || !all_digits(at + 1)) ? 1.0 : 0;
    v = json_object_get(j->root, "reload");
    if (v != NULL) {
        if (json_is_object(v) &&
            (rc = only(v, "reload", reload_keys, err)) != SW_OK)
            return rc;
        if (json_is_false(v)) {
            j->reload_seconds = 0;
        } else if (!json_is_object(v) ||
                   !json_is_number(json_object_get(v, "poll_s")) ||
                   json_number_value(json_object_get(v, "poll_s")) < 0.05 ||
                   json_number_value(json_object_get(v, "poll_s")) > 3600) {
            return bad(err, "reload",
                       "false, or {\"poll_s\": seconds between registry "
                       "polls, 0.05..3600}");
        } else if (j->registry == NULL) {
            return bad(err, "reload", "a \"registry\" to follow");
        } else {
            j->reload_seconds = json_number_value(json_object_get(v, "poll_s"));
        }
    }
    j->runner_name = str(j->root, "runner_name");
    if (j->runner_name != NULL) {
        snprintf(j->runner, sizeof(j->runner), "%s", j->runner_name);
    } else {
        char host[256] = "host";

        gethostname(host, sizeof(host) - 1);
        snprintf(j->runner, sizeof(j->runner), "%s:%ld", host,
                 (long)getpid());
    }
    v = json_object_get(j->root, "control");
    if (v != NULL) {
        if (!json_is_object(v))
            return bad(err, "control",
                       "{\"topic\": the control topic, \"bootstrap\": "
                       "servers (default: the source's)}");
        if ((rc = only(v, "control", control_keys, err)) != SW_OK)
            return rc;
        j->control_topic = str(v, "topic");
        j->control_bootstrap = str(v, "bootstrap") ? str(v, "bootstrap")
                                                   : j->bootstrap;
        if (j->control_topic == NULL)
            return bad(err, "control.topic", "a topic name");
        if (j->control_bootstrap == NULL)
            return bad(err, "control.bootstrap",
                       "bootstrap servers (the source is no Kafka topic)");
        if (j->registry == NULL)
            return bad(err, "control", "a \"registry\" it announces");
    }
    return SW_OK;
}

/* What runs beside the bundle: a shadow, a canary, online learning, or
 * tenants (each with a model of its own, so none of the others). */
static sw_rc
job_alongside(job *j, sw_err *err)
{
    static const char *const canary_keys[] = {"model", "fraction", NULL};
    static const char *const tenant_keys[] = {"field", "model", "max_loaded",
                                              NULL};
    static const char *const learn_keys[] = {"snapshot_every",
                                             "snapshot_every_s", "name", NULL};
    static const char *const eval_keys[] = {"every_s", "window", "experiment",
                                            NULL};
    json_t *v, *c;
    sw_rc rc;

    v = json_object_get(j->root, "shadow");
    if (v != NULL && !json_is_string(v))
        return bad(err, "shadow",
                   "a .swm path, or a registry reference such as "
                   "name@challenger");
    j->shadow = json_string_value(v);
    v = json_object_get(j->root, "canary");
    if (v != NULL) {
        if (!json_is_object(v))
            return bad(err, "canary", "{\"model\": ref, \"fraction\": 0..1}");
        if ((rc = only(v, "canary", canary_keys, err)) != SW_OK)
            return rc;
        j->canary = str(v, "model");
        c = json_object_get(v, "fraction");
        if (j->canary == NULL)
            return bad(err, "canary.model",
                       "a .swm path or a registry reference");
        if (!json_is_number(c) || json_number_value(c) < 0 ||
            json_number_value(c) > 1)
            return bad(err, "canary.fraction",
                       "the fraction of keys it scores, 0..1");
        j->canary_fraction = json_number_value(c);
    }
    v = json_object_get(j->root, "learn");
    if (v != NULL && !json_is_boolean(v) && !json_is_object(v))
        return bad(err, "learn",
                   "true (learn the bundle's label join pairs online), false, "
                   "or {\"snapshot_every\": pairs, \"snapshot_every_s\": "
                   "seconds, \"name\": model name}");
    j->learn = json_is_true(v) || json_is_object(v);
    if (json_is_object(v)) {
        if ((rc = only(v, "learn", learn_keys, err)) != SW_OK)
            return rc;
        c = json_object_get(v, "snapshot_every");
        if (c != NULL && (!json_is_integer(c) || json_integer_value(c) < 1))
            return bad(err, "learn.snapshot_every",
                       "how many pairs between registered snapshots, >= 1");
        j->snapshot_every = c ? json_integer_value(c) : 0;
        c = json_object_get(v, "snapshot_every_s");
        if (c != NULL && (!json_is_number(c) || json_number_value(c) <= 0))
            return bad(err, "learn.snapshot_every_s",
                       "seconds between registered snapshots, > 0 (one "
                       "more at a clean stop)");
        j->snapshot_seconds_learned = c ? json_number_value(c) : 0;
        if (j->snapshot_seconds_learned > 0 && j->registry == NULL)
            return bad(err, "learn.snapshot_every_s",
                       "a \"registry\" to register the snapshots in");
        j->snapshot_name = str(v, "name");
        if (j->snapshot_every > 0 && j->registry == NULL)
            return bad(err, "learn.snapshot_every",
                       "a \"registry\" to register the snapshots in");
    }
    v = json_object_get(j->root, "evaluate");
    if (v != NULL && !json_is_boolean(v) && !json_is_object(v))
        return bad(err, "evaluate",
                   "true (evaluate the models on the label join's pairs "
                   "live), false, or {\"every_s\": 5, \"window\": 10000, "
                   "\"experiment\": \"deployments\"}");
    j->evaluate = json_is_true(v) || json_is_object(v);
    j->eval_seconds = 5;
    j->eval_window = 10000;
    j->eval_experiment = "deployments";
    if (json_is_object(v)) {
        if ((rc = only(v, "evaluate", eval_keys, err)) != SW_OK)
            return rc;
        if (num(v, "every_s", 5, 0.05, &j->eval_seconds) != 0)
            return bad(err, "evaluate.every_s",
                       "seconds between reports, >= 0.05");
        c = json_object_get(v, "window");
        if (c != NULL && (!json_is_integer(c) || json_integer_value(c) < 10 ||
                          json_integer_value(c) > 10000000))
            return bad(err, "evaluate.window",
                       "how many of the last pairs the AUC and the drift "
                       "figure cover, 10..10000000");
        j->eval_window = c ? json_integer_value(c) : 10000;
        c = json_object_get(v, "experiment");
        if (c != NULL && (!json_is_string(c) || !json_string_length(c)))
            return bad(err, "evaluate.experiment",
                       "the tracking store experiment of the runs");
        if (c != NULL)
            j->eval_experiment = json_string_value(c);
    }
    v = json_object_get(j->root, "tenants");
    if (v != NULL) {
        if (!json_is_object(v))
            return bad(err, "tenants",
                       "{\"field\": the tenant's event field, \"model\": "
                       "\"shop-{}@champion\", \"max_loaded\": n}");
        if ((rc = only(v, "tenants", tenant_keys, err)) != SW_OK)
            return rc;
        j->tenant_field = str(v, "field");
        j->tenant_model = str(v, "model");
        if (j->tenant_field == NULL)
            return bad(err, "tenants.field", "the event field naming the "
                                             "tenant");
        if (j->tenant_model == NULL || strstr(j->tenant_model, "{}") == NULL)
            return bad(err, "tenants.model",
                       "a registry reference or path with {} where the "
                       "tenant's name goes (\"shop-{}@champion\")");
        c = json_object_get(v, "max_loaded");
        if (c != NULL && (!json_is_integer(c) || json_integer_value(c) < 1))
            return bad(err, "tenants.max_loaded",
                       "how many tenant models to hold at most, >= 1");
        j->tenant_max_loaded = c ? json_integer_value(c) : 0;
        if (j->shadow != NULL || j->canary != NULL || j->learn ||
            j->evaluate)
            return bad(err, "tenants",
                       "no shadow, canary, learn or evaluate beside them: "
                       "each tenant has its own model");
    }
    return SW_OK;
}

/* The labels on a topic of their own: "labels" or {"topic", "bootstrap",
 * "config"}, read as a second source beside the events'. */
static sw_rc
job_feedback(job *j, sw_err *err)
{
    static const char *const fb_keys[] = {"topic", "bootstrap", "config",
                                          NULL};
    json_t *v = json_object_get(j->root, "feedback");
    sw_rc rc;

    if (v == NULL || json_is_null(v))
        return SW_OK;
    if (json_is_string(v)) {
        j->fb_topic = json_string_value(v);
    } else if (json_is_object(v)) {
        if ((rc = only(v, "feedback", fb_keys, err)) != SW_OK)
            return rc;
        j->fb_topic = str(v, "topic");
        j->fb_bootstrap = str(v, "bootstrap");
        if ((rc = conf_list(json_object_get(v, "config"), "feedback.config",
                            &j->fb_conf, err)) != SW_OK)
            return rc;
    }
    if (j->fb_topic == NULL || !j->fb_topic[0] || strlen(j->fb_topic) >= 250)
        return bad(err, "feedback",
                   "the topic of the labels, or {\"topic\", \"bootstrap\", "
                   "\"config\"}");
    if (j->fb_bootstrap == NULL)
        j->fb_bootstrap = j->bootstrap;
    if (j->src_conf != NULL && !strcmp(j->fb_bootstrap, j->bootstrap)) {
        /* on the source's cluster, the source's settings (security, the
         * session timeout...), then its own, which win */
        size_t a = 0, b = 0;
        const char **kv;

        while (j->src_conf[a])
            a++;
        while (j->fb_conf && j->fb_conf[b])
            b++;
        if ((kv = calloc(a + b + 1, sizeof(char *))) == NULL)
            return bad(err, "feedback", "memory");
        memcpy(kv, j->src_conf, a * sizeof(char *));
        if (b)
            memcpy(kv + a, j->fb_conf, b * sizeof(char *));
        free(j->fb_conf);
        j->fb_conf = kv;
    }
    if (j->src != SRC_KAFKA && j->src != SRC_KAFKA_SLICE)
        return bad(err, "feedback", "a Kafka source beside it: the labels are "
                                    "read beside the events");
    if (!j->learn && !j->evaluate)
        return bad(err, "feedback",
                   "\"learn\" or \"evaluate\" beside it: the labels are "
                   "joined to predictions for them alone");
    if (j->tasks || j->eos)
        return bad(err, "feedback",
                   "no tasks or exactly_once beside it yet: a task's labels "
                   "would have to move with its partition, and their offsets "
                   "belong to another group than the transaction's");
    return SW_OK;
}

/* How rows come out: emission, the output key, the privacy secret. */
static sw_rc
job_rows(job *j, sw_err *err)
{
    json_t *v;

    v = json_object_get(j->root, "emission");
    j->emission = -1;
    if (v != NULL) {
        if (!json_is_string(v) || (strcmp(json_string_value(v), "arrival") &&
                                   strcmp(json_string_value(v), "watermark")))
            return bad(err, "emission", "\"arrival\" or \"watermark\"");
        j->emission = !strcmp(json_string_value(v), "arrival");
    }
    j->key_field = str(j->root, "key");
    j->secret_env = str(j->root, "secret_env") ? str(j->root, "secret_env")
                                               : "STREAMWISE_PRIVACY_SECRET";
    return SW_OK;
}

/* Where predictions, feature rows and dead letters go. */
static sw_rc
job_outputs(job *j, sw_err *err)
{
    json_t *v, *c;
    size_t i;
    sw_rc rc;

    v = json_object_get(j->root, "sinks");
    if (v != NULL && (!json_is_array(v) || json_array_size(v) > RUN_MAX_SINKS))
        return bad(err, "sinks", "a list of at most 8 outputs");
    json_array_foreach(v, i, c)
    {
        char sub[32];

        snprintf(sub, sizeof(sub), "sinks[%zu]", i);
        if ((rc = output(c, sub, j->bootstrap, &j->sinks[j->n_sinks++],
                         err)) != SW_OK)
            return rc;
    }
    for (i = 0; i < (size_t)j->n_sinks; i++) {
        char sub[48];

        if (j->sinks[i].kind == OUT_KAFKA) {
            out_spec *o = &j->sinks[i];

            if (o->avro < 0)
                o->avro = j->avro_schema != NULL;
            snprintf(sub, sizeof(sub), "sinks[%zu].kafka", i);
            if (o->schema_id >= 0 && !o->avro)
                return bad(err, sub, "no schema_id with JSON output (it "
                                     "frames Avro)");
        }
        if (j->sinks[i].kind != OUT_HDF5)
            continue;
        snprintf(sub, sizeof(sub), "sinks[%zu].hdf5", i);
        if (j->src == SRC_KAFKA || given(j->root, "checkpoint"))
            return bad(err, sub,
                       "a backtest's sink (an HDF5 file or a topic slice "
                       "for source, no checkpoint): the file is written "
                       "whole at the end, as the HDF5 writer does");
        if (given(j->root, "tenants") || given(j->root, "shadow"))
            return bad(err, sub, "no tenants or shadow beside it (their "
                                 "outputs go to jsonl or csv)");
    }
    if ((v = json_object_get(j->root, "features")) != NULL) {
        j->has_features = 1;
        if ((rc = output(v, "features", j->bootstrap, &j->features, err)) !=
            SW_OK)
            return rc;
        if (j->features.kind == OUT_HDF5)
            return bad(err, "features", "a topic or a jsonl file");
        if (j->features.kind == OUT_KAFKA && j->features.avro == 1)
            return bad(err, "features.kafka.format",
                       "\"json\": feature rows are JSON");
        j->features.avro = 0;
    }
    if ((v = json_object_get(j->root, "dead_letters")) != NULL) {
        j->has_dead = 1;
        if ((rc = output(v, "dead_letters", j->bootstrap, &j->dead, err)) !=
            SW_OK)
            return rc;
        if (j->dead.kind == OUT_CSV || j->dead.kind == OUT_HDF5)
            return bad(err, "dead_letters", "a topic or a jsonl file");
        if (j->dead.kind == OUT_KAFKA && j->dead.avro == 1)
            return bad(err, "dead_letters.kafka.format",
                       "no format: a dead letter is the message's own bytes");
        j->dead.avro = 0;
    }
    return SW_OK;
}

/* Checkpoints: where, how often, how many kept, in the background. */
static sw_rc
job_checkpoint(job *j, sw_err *err)
{
    static const char *const ckpt_keys[] = {"dir", "every_s", "every_events",
                                            "keep", "background", NULL};
    json_t *v, *c;
    double d;
    sw_rc rc;

    c = json_object_get(j->root, "checkpoint");
    j->ckpt_seconds = 10;
    j->ckpt_keep = 3;
    j->ckpt_background = 1;
    if (c != NULL) {
        if (!json_is_object(c) || (rc = only(c, "checkpoint", ckpt_keys,
                                             err)) != SW_OK)
            return c && json_is_object(c)
                       ? rc
                       : bad(err, "checkpoint", "{\"dir\": path, ...}");
        j->ckpt_dir = str(c, "dir");
        if (j->ckpt_dir == NULL || strlen(j->ckpt_dir) >= 3000)
            return bad(err, "checkpoint.dir",
                       "a directory (a path shorter than 3000 bytes)");
        if (num(c, "every_s", 10, 0, &j->ckpt_seconds) != 0)
            return bad(err, "checkpoint.every_s", "seconds >= 0");
        if (num(c, "every_events", 0, 0, &d) != 0)
            return bad(err, "checkpoint.every_events", "a count >= 0");
        j->ckpt_events = (int64_t)d;
        if (num(c, "keep", 3, 1, &d) != 0)
            return bad(err, "checkpoint.keep", "a count >= 1");
        j->ckpt_keep = (int)d;
        v = json_object_get(c, "background");
        if (v != NULL && !json_is_boolean(v))
            return bad(err, "checkpoint.background", "true or false");
        j->ckpt_background = v == NULL || json_is_true(v);
    }
    return SW_OK;
}

/* Tasks: a member of a consumer group keeps one task per partition it is
 * given, so what a task owns must live in that partition and in Kafka or
 * the checkpoint directory the members share; each is checked here. */
static sw_rc
job_tasks(job *j, sw_err *err)
{
    static const char *const task_keys[] = {"changelog", "snapshot_every_s",
                                            NULL};
    json_t *v = json_object_get(j->root, "tasks"), *c;
    int o;
    sw_rc rc;

    if (v != NULL && !json_is_boolean(v) && !json_is_object(v))
        return bad(err, "tasks", "true (one task per assigned partition of "
                                 "the consumer group), {\"changelog\", "
                                 "\"snapshot_every_s\"} or false");
    j->tasks = v != NULL && (json_is_true(v) || json_is_object(v));
    if (!j->tasks)
        return SW_OK;
    if (json_is_object(v) && (rc = only(v, "tasks", task_keys, err)) != SW_OK)
        return rc;
    c = json_is_object(v) ? json_object_get(v, "changelog") : NULL;
    if (c != NULL && !json_is_boolean(c) &&
        (!json_is_string(c) || !json_string_length(c) ||
         json_string_length(c) >= 256))
        return bad(err, "tasks.changelog",
                   "true (the topic <group>-changelog), a topic name, or "
                   "false (checkpoints hold all the state)");
    if (json_is_string(c))
        j->changelog = json_string_value(c);
    else if (c == NULL || json_is_true(c)) {
        snprintf(j->changelog_name, sizeof(j->changelog_name),
                 "%.256s-changelog", j->group ? j->group : "");
        j->changelog = j->changelog_name;
    }
    if (num(json_is_object(v) ? v : NULL, "snapshot_every_s", 60, 0.05,
            &j->snapshot_seconds) != 0)
        return bad(err, "tasks.snapshot_every_s", "seconds >= 0.05");
    if (j->src != SRC_KAFKA)
        return bad(err, "tasks", "a live Kafka source with a group (a slice "
                                 "or a file has no group to share)");
    if (j->ckpt_dir == NULL)
        return bad(err, "tasks", "a checkpoint.dir every member sees: a "
                                 "partition's state moves through it");
    if (j->key_field == NULL)
        return bad(err, "tasks", "a \"key\": the field the messages are "
                                 "keyed by, which every feature's state "
                                 "must be keyed by");
    if (j->learn || j->tenant_field != NULL)
        return bad(err, "tasks", "no learn or tenants beside it: a learned "
                                 "model or a tenant's is one state for all "
                                 "partitions");
    for (o = 0; o < j->n_sinks; o++) {
        if (j->sinks[o].kind != OUT_KAFKA)
            return bad(err, "tasks", "Kafka sinks only: a file belongs to "
                                     "one process, and members come and go");
    }
    if ((j->has_dead && j->dead.kind != OUT_KAFKA) ||
        (j->has_features && j->features.kind != OUT_KAFKA))
        return bad(err, "tasks", "dead_letters and features on Kafka: a "
                                 "file belongs to one process");
    return SW_OK;
}

/* Operation: the metrics port, batch size, waits, logging. */
static sw_rc
job_operation(job *j, sw_err *err)
{
    double d;

    if (num(j->root, "metrics_port", 0, 0, &d) != 0 || d > 65535)
        return bad(err, "metrics_port", "a port 1..65535 (0: none)");
    j->metrics_port = (int)d;
    if (num(j->root, "batch", 10000, 1, &d) != 0)
        return bad(err, "batch", "events per batch >= 1");
    j->batch_max = (int64_t)d;
    if (num(j->root, "wait_ms", 50, 0, &d) != 0)
        return bad(err, "wait_ms", "milliseconds >= 0");
    j->wait_ms = (int64_t)d;
    if (num(j->root, "broker_outage_s", 60, 0, &d) != 0)
        return bad(err, "broker_outage_s", "seconds >= 0");
    j->outage_ms = (int64_t)(d * 1000);
    if (num(j->root, "log_every_s", 10, 0, &j->log_seconds) != 0)
        return bad(err, "log_every_s", "seconds >= 0");
    return SW_OK;
}

/* Exactly once: every Kafka output and the group's offsets in one
 * transaction per checkpoint, so what must hold for that is checked
 * here: a live group, checkpoints (two kept: the newest may be of a
 * transaction that never committed), and one cluster for all of it. */
static sw_rc
job_exactly_once(job *j, sw_err *err)
{
    static const char *const eos_keys[] = {"transactional_id", NULL};
    json_t *v = json_object_get(j->root, "exactly_once");
    const char *id = NULL;
    int o;
    sw_rc rc;

    if (v == NULL || json_is_false(v))
        return SW_OK;
    if (json_is_object(v)) {
        if ((rc = only(v, "exactly_once", eos_keys, err)) != SW_OK)
            return rc;
        id = str(v, "transactional_id");
        if (json_object_get(v, "transactional_id") != NULL &&
            (id == NULL || !id[0] || strlen(id) > 200))
            return bad(err, "exactly_once.transactional_id",
                       "a name of 1..200 bytes");
    } else if (!json_is_true(v)) {
        return bad(err, "exactly_once",
                   "true, false or {\"transactional_id\": name}");
    }
    if (j->src != SRC_KAFKA)
        return bad(err, "exactly_once",
                   "a live Kafka source with a group (a file or a topic "
                   "slice is a backtest: it writes no transaction)");
    if (j->ckpt_dir == NULL)
        return bad(err, "exactly_once",
                   "a checkpoint.dir: each transaction ends at a checkpoint");
    if (j->ckpt_keep < 2)
        return bad(err, "checkpoint.keep",
                   "2 or more with exactly_once: the newest checkpoint may "
                   "be of a transaction that did not commit");
    if (j->ckpt_seconds <= 0 || j->ckpt_seconds >= 50)
        return bad(err, "checkpoint.every_s",
                   "0 < seconds < 50 with exactly_once: a transaction stays "
                   "open until the next checkpoint, and the broker aborts "
                   "one older than transaction.timeout.ms (60 s)");
    for (o = 0; o < j->n_sinks + 2; o++) {
        const out_spec *s = o < j->n_sinks ? &j->sinks[o]
                            : o == j->n_sinks ? (j->has_dead ? &j->dead : NULL)
                                : (j->has_features ? &j->features : NULL);

        if (s != NULL && s->kind == OUT_KAFKA &&
            strcmp(s->bootstrap, j->bootstrap) != 0)
            return bad(err, "exactly_once",
                       "every Kafka output on the source's cluster (one "
                       "transaction holds the outputs and the group's "
                       "offsets)");
    }
    if (id != NULL) {
        snprintf(j->txn_id, sizeof(j->txn_id), "%s", id);
    } else if (j->runner_name != NULL || j->tasks) {
        /* members of a group fence by the group's generation (KIP-447),
         * so each needs only an id of its own */
        snprintf(j->txn_id, sizeof(j->txn_id), "streamwise-%.100s-%.120s",
                 j->group, j->runner);
    } else {
        snprintf(j->txn_id, sizeof(j->txn_id), "streamwise-%.100s", j->group);
    }
    j->eos = 1;
    /* the transaction commits once the checkpoint is on disk, and the
     * next begins after: the write is not overlapped with scoring */
    j->ckpt_background = 0;
    return SW_OK;
}

sw_rc
sw__job_load(const char *path, job *j, sw_err *err)
{
    static const char *const keys[] = {
        "source",  "bundle",       "registry",        "name",
        "emission", "key",         "sinks",           "features",
        "dead_letters", "checkpoint", "metrics_port", "batch",
        "wait_ms", "broker_outage_s", "log_every_s", "secret_env",
        "exactly_once", "reload", "runner_name", "shadow", "canary",
        "learn", "tenants", "control", "tasks", "evaluate", "feedback",
        NULL};
    json_error_t jerr;
    sw_rc rc;

    memset(j, 0, sizeof(*j));
    j->root = json_load_file(path, 0, &jerr);
    if (j->root == NULL) {
        err->rc = SW_E_INVAL;
        snprintf(err->msg, sizeof(err->msg),
                 "job: %s: not JSON (line %d: %s)", path, jerr.line,
                 jerr.text);
        return SW_E_INVAL;
    }
    if (!json_is_object(j->root))
        return bad(err, "the file", "a JSON object");
    if ((rc = only(j->root, "job", keys, err)) != SW_OK ||
        (rc = source(j, json_object_get(j->root, "source"), err)) != SW_OK ||
        (rc = job_model(j, err)) != SW_OK ||
        (rc = job_alongside(j, err)) != SW_OK ||
        (rc = job_rows(j, err)) != SW_OK ||
        (rc = job_outputs(j, err)) != SW_OK ||
        (rc = job_checkpoint(j, err)) != SW_OK ||
        (rc = job_tasks(j, err)) != SW_OK ||
        (rc = job_exactly_once(j, err)) != SW_OK ||
        (rc = job_feedback(j, err)) != SW_OK)
        return rc;
    return job_operation(j, err);
}

void
sw__job_free(job *j)
{
    int i;

    free(j->src_conf);
    free(j->fb_conf);
    for (i = 0; i < j->n_sinks; i++)
        free(j->sinks[i].conf);
    free(j->features.conf);
    free(j->dead.conf);
    json_decref(j->root);
    memset(j, 0, sizeof(*j));
}
