/* SPDX-License-Identifier: MIT */
/*
 * sw_reload.c - the runner follows its registry alias: promotion deploys.
 *
 * A thread of its own polls the tracking store about once a second
 * (SQLite's data_version: one small read when nothing changed) and, when
 * the store was written, resolves the job's reference again. A version it
 * is not serving is loaded and verified here, off the scoring path: the
 * file's SHA-256 against the registry, the model file's own checks
 * (checksums, golden vectors, the bundle's golden events replayed from
 * empty state), and the pipeline. The loop takes the verified model
 * between two batches (sw__reloader_take: a pointer swap), so every event
 * is scored by exactly one version and the loop stalls for microseconds.
 *
 * With a control topic, registry.promote's announcements
 * ({"model", "alias", "version", "action"}) make the thread look at once
 * instead of at its next poll; the poll stays the safety net (a message
 * read before the consumer joined its group, a broker that is down).
 *
 * A version whose pipeline differs from the running one is refused: the
 * running state was built by the old spec, and features computed from it
 * would not be the new model's features. Rebuilding state from retained
 * history is the alternative; refusing says so plainly instead (deploy
 * such a version with a new job and a fresh checkpoint directory). A
 * refused version, like a corrupt one, is logged, counted, and written to
 * the store's deployment log; the old version keeps serving and the same
 * file is not tried again until the registry points elsewhere.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sw_run_int.h"

struct reloader {
    const job *j;
    const char *ref;  /* the reference followed (borrowed from the job) */
    const char *name; /* the name outputs give it, NULL: name@version */
    run_metrics *mt;
    char runner[300];
    uint64_t spec_hash; /* the running pipeline's */
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    int stop;
    /* guarded by lock */
    served pending;        /* verified, waiting for the loop (m != NULL) */
    sw_model *retired;     /* handed back by the loop, freed here */
    char serving_sha[65];  /* what the loop serves (after the last take) */
    int64_t serving_version;
    int swapped;           /* the loop took pending: record it */
    int started;           /* the first version's record is written */
    _Atomic int has_pending;
    char refused_sha[65];  /* the last refused file: not tried again */
    char unresolved[256];  /* the last refusal before a file was found */
    int64_t started_ms;    /* a retirement sent before this is not ours */
    _Atomic int retire;    /* retired on the control topic: stop serving */
};

static void
record(reloader *rl, int64_t version, const char *sha, sw_deploy_status st,
       const char *reason)
{
    sw_err err = {0};

    if (sw_registry_record(rl->j->registry, rl->ref, version, sha,
                           rl->runner, st, reason, &err) != SW_OK)
        sw__log("reload: could not write the deployment "
                "log: %s\n",
                err.msg);
}

/* Load and check a candidate: NULL and a reason when it cannot serve. */
static sw_model *
verify(reloader *rl, const char *path, char *why, size_t why_len)
{
    sw_model *m = NULL;
    uint64_t spec = 0, schema = 0;
    sw_err err = {0};

    if (sw_model_load(path, &m, &err) != SW_OK) {
        snprintf(why, why_len, "%s", err.msg);
        return NULL;
    }
    if (sw_model_pipeline_spec(m) == NULL) {
        snprintf(why, why_len, "a model without a pipeline: the runner "
                               "serves bundles (model.save(path, "
                               "pipeline=p))");
        sw_model_free(m);
        return NULL;
    }
    sw_model_pipeline_hashes(m, &spec, &schema);
    if (spec != rl->spec_hash) {
        snprintf(why, why_len,
                 "its pipeline (spec %016llx) is not the running one "
                 "(%016llx): the state was built by another spec; deploy it "
                 "with a new job and checkpoint directory",
                 (unsigned long long)spec,
                 (unsigned long long)rl->spec_hash);
        sw_model_free(m);
        return NULL;
    }
    return m;
}

/* One look at the registry: a new version verified into pending, or a
 * refusal recorded. */
static void
look(reloader *rl)
{
    char path[4096], sha[65], why[512];
    int64_t version = 0;
    sw_model *m;
    sw_err err = {0};
    const char *at = strchr(rl->ref, '@');
    char name[sizeof(rl->pending.model)];

    if (sw_registry_resolve(rl->j->registry, rl->ref, path,
                            sizeof(path), sha, &version, &err) != SW_OK) {
        /* a file changed after registration is a refusal, said once per
         * reason; a store being written is tried again at the next poll */
        if (err.rc == SW_E_FORMAT && strcmp(rl->unresolved, err.msg) != 0) {
            sw__log("reload: %s refused: %s\n", rl->ref, err.msg);
            atomic_fetch_add(&rl->mt->reload_refusals, 1);
            record(rl, version, NULL, SW_DEPLOY_REFUSED, err.msg);
            snprintf(rl->unresolved, sizeof(rl->unresolved), "%s", err.msg);
        }
        return;
    }
    pthread_mutex_lock(&rl->lock);
    if (!strcmp(sha, rl->serving_sha) || !strcmp(sha, rl->refused_sha) ||
        (rl->pending.m != NULL && !strcmp(sha, rl->pending.sha))) {
        pthread_mutex_unlock(&rl->lock);
        return;
    }
    pthread_mutex_unlock(&rl->lock);
    rl->unresolved[0] = '\0';
    m = verify(rl, path, why, sizeof(why));
    if (m == NULL) {
        sw__log("reload: %s version %lld (sha256 %.16s...) "
                "refused, still serving version %lld: %s\n",
                rl->ref, (long long)version, sha,
                (long long)rl->serving_version, why);
        atomic_fetch_add(&rl->mt->reload_refusals, 1);
        record(rl, version, sha, SW_DEPLOY_REFUSED, why);
        memcpy(rl->refused_sha, sha, sizeof(rl->refused_sha));
        return;
    }
    rl->refused_sha[0] = '\0';
    if (rl->name != NULL)
        snprintf(name, sizeof(name), "%s", rl->name);
    else
        snprintf(name, sizeof(name), "%.*s@%lld",
                 (int)(at ? (size_t)(at - rl->ref)
                          : strlen(rl->ref)),
                 rl->ref, (long long)version);
    pthread_mutex_lock(&rl->lock);
    sw_model_free(rl->pending.m); /* superseded before the loop took it */
    rl->pending.m = m;
    snprintf(rl->pending.model, sizeof(rl->pending.model), "%s", name);
    memcpy(rl->pending.sha, sha, sizeof(rl->pending.sha));
    rl->pending.version = version;
    atomic_store(&rl->has_pending, 1);
    pthread_mutex_unlock(&rl->lock);
}

/* Whether the control topic's last batch names this reloader's model
 * (its name; and its alias, when the message has one) to deploy. A
 * retirement sent since the runner started ({"action": "retire"},
 * registry.retire) asks the loop to stop serving it, and is written to
 * the deployment log; one sent before is history: the runner was started
 * after it on purpose. */
static int
announced(reloader *rl, sw_kafka_source *ks, int64_t count)
{
    const char *at = strchr(rl->ref, '@');
    size_t nlen = at ? (size_t)(at - rl->ref) : strlen(rl->ref);
    int64_t i;
    int hit = 0;

    for (i = 0; i < count; i++) {
        control_msg c;
        const char *model, *alias, *action, *why;

        sw__control_msg(ks, i, &c);
        model = c.model;
        alias = c.alias;
        action = c.action;
        why = c.reason;

        if (model != NULL && strlen(model) == nlen &&
            !strncmp(model, rl->ref, nlen) &&
            (alias == NULL || at == NULL || !strcmp(alias, at + 1))) {
            if (action != NULL && !strcmp(action, "retire")) {
                if (c.ts >= rl->started_ms && !atomic_load(&rl->retire)) {
                    char reason[400];

                    snprintf(reason, sizeof(reason), "retired on %s%s%.300s",
                             rl->j->control_topic, why ? ": " : "",
                             why ? why : "");
                    sw__log("reload: %s %s\n", rl->ref, reason);
                    pthread_mutex_lock(&rl->lock);
                    {
                        int64_t v = rl->serving_version;
                        char sha[65];

                        memcpy(sha, rl->serving_sha, sizeof(sha));
                        pthread_mutex_unlock(&rl->lock);
                        record(rl, v, sha, SW_DEPLOY_RETIRED, reason);
                    }
                    atomic_store(&rl->retire, 1);
                }
            } else {
                hit = 1;
            }
        }
        json_decref(c.root);
    }
    return hit;
}

void
sw__control_msg(sw_kafka_source *ks, int64_t i, control_msg *c)
{
    const int32_t *part;
    const int64_t *off, *ts, *ka, *kl, *va, *vl;
    const unsigned char *bytes;

    sw_kafka_source_batch(ks, &part, &off, &ts, &bytes, &ka, &kl, &va, &vl);
    c->root = vl[i] > 0 ? json_loadb((const char *)bytes + va[i],
                                     (size_t)vl[i], 0, NULL)
                        : NULL;
    c->model = json_string_value(json_object_get(c->root, "model"));
    c->alias = json_string_value(json_object_get(c->root, "alias"));
    c->action = json_string_value(json_object_get(c->root, "action"));
    c->reason = json_string_value(json_object_get(c->root, "reason"));
    c->ts = ts[i];
}

/* From the earliest offset, since a look is idempotent and a message sent
 * while the group formed must not be lost. */
sw_kafka_source *
sw__control_open(const job *j, const char *who)
{
    const char *conf[] = {"session.timeout.ms", "6000",
                          "heartbeat.interval.ms", "500",
                          "auto.offset.reset", "earliest", NULL};
    char group[400];
    sw_kafka_source *ks = NULL;
    sw_err err = {0};

    /* and each follower of the runner (bundle, shadow, canary, tenants)
     * its own: in one group they would share the topic's partitions */
    snprintf(group, sizeof(group), "sw-control-%.200s-%ld-%.150s", j->runner,
             (long)getpid(), who);
    if (sw_kafka_source_subscribe(j->control_bootstrap, j->control_topic,
                                  group, 50, conf, &ks, &err) != SW_OK) {
        sw__log("%s: control topic %s: %s (polling the "
                "registry only)\n",
                who, j->control_topic, err.msg);
        return NULL;
    }
    return ks;
}

static void *
reload_main(void *arg)
{
    reloader *rl = arg;
    sw_registry_watch *w = NULL;
    sw_kafka_source *ks =
        rl->j->control_topic ? sw__control_open(rl->j, rl->ref) : NULL;
    sw_err err = {0};
    double next = 0;

    pthread_mutex_lock(&rl->lock);
    while (!rl->stop) {
        struct timespec until;
        sw_model *old = rl->retired;
        int swapped = rl->swapped, changed = 0;
        int64_t version = rl->serving_version;
        char sha[65];

        memcpy(sha, rl->serving_sha, sizeof(sha));
        rl->retired = NULL;
        rl->swapped = 0;
        pthread_mutex_unlock(&rl->lock);
        sw_model_free(old);
        if (swapped)
            record(rl, version, sha, SW_DEPLOY_SERVING,
                   rl->started ? "the registry moved" : "started");
        rl->started |= swapped;
        if (now_s() >= next) {
            next = now_s() + rl->j->reload_seconds;
            if (w == NULL &&
                sw_registry_watch_open(rl->j->registry, &w, &err) != SW_OK) {
                sw__log("reload: %s\n", err.msg);
            } else if (w != NULL &&
                       sw_registry_watch_poll(w, &changed, &err) != SW_OK) {
                sw__log("reload: %s\n", err.msg);
                sw_registry_watch_free(w); /* reopen at the next poll */
                w = NULL;
            } else if (changed) {
                look(rl);
            }
        }
        if (ks != NULL) {
            int64_t count = 0;

            /* waits up to 50 ms: the loop's pace, as the timed wait's */
            if (sw_kafka_source_next(ks, 64, &count, &err) != SW_OK) {
                sw__log("reload: control topic: %s "
                        "(polling the registry only)\n",
                        err.msg);
                sw_kafka_source_free(ks);
                ks = NULL;
            } else if (count > 0 && announced(rl, ks, count)) {
                sw__log("reload: %s announced on %s\n", rl->ref,
                        rl->j->control_topic);
                look(rl);
            }
            pthread_mutex_lock(&rl->lock);
            continue;
        }
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += 50 * 1000000L; /* a swap is recorded within 50 ms */
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_mutex_lock(&rl->lock);
        if (!rl->stop && rl->retired == NULL)
            pthread_cond_timedwait(&rl->wake, &rl->lock, &until);
    }
    pthread_mutex_unlock(&rl->lock);
    sw_registry_watch_free(w);
    sw_kafka_source_free(ks);
    return NULL;
}

/* "name@7" never moves; "name@alias" and "name" (the latest) do. */
static int
pinned(const char *ref)
{
    const char *at = strchr(ref, '@');

    return at != NULL && at[1] != '\0' &&
           strspn(at + 1, "0123456789") == strlen(at + 1);
}

sw_rc
sw__reloader_start(const job *j, const char *ref, const char *name,
                   const served *now, run_metrics *mt, reloader **rlp,
                   sw_err *err)
{
    reloader *rl;
    uint64_t schema;

    *rlp = NULL;
    if (j->registry == NULL || j->reload_seconds <= 0 || pinned(ref))
        return SW_OK; /* nothing to follow: a file, or a version number */
    rl = calloc(1, sizeof(*rl));
    if (rl == NULL) {
        err->rc = SW_E_NOMEM;
        snprintf(err->msg, sizeof(err->msg), "reload: out of memory");
        return SW_E_NOMEM;
    }
    rl->j = j;
    rl->ref = ref;
    rl->name = name;
    rl->mt = mt;
    sw_model_pipeline_hashes(now->m, &rl->spec_hash, &schema);
    memcpy(rl->serving_sha, now->sha, sizeof(rl->serving_sha));
    rl->serving_version = now->version;
    {
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        rl->started_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    }
    snprintf(rl->runner, sizeof(rl->runner), "%s", j->runner);
    pthread_mutex_init(&rl->lock, NULL);
    pthread_cond_init(&rl->wake, NULL);
    /* the version it starts with is deployed too */
    rl->swapped = 1;
    if (pthread_create(&rl->thread, NULL, reload_main, rl) != 0) {
        err->rc = SW_E_INTERNAL;
        snprintf(err->msg, sizeof(err->msg), "reload: no thread: %s",
                 strerror(errno));
        pthread_mutex_destroy(&rl->lock);
        pthread_cond_destroy(&rl->wake);
        free(rl);
        return SW_E_INTERNAL;
    }
    *rlp = rl;
    return SW_OK;
}

int
sw__reloader_take(reloader *rl, const served *cur, served *next)
{
    double t0;
    int64_t us;

    if (rl == NULL || !atomic_load(&rl->has_pending))
        return 0;
    t0 = now_s();
    pthread_mutex_lock(&rl->lock);
    *next = rl->pending;
    memset(&rl->pending, 0, sizeof(rl->pending));
    atomic_store(&rl->has_pending, 0);
    rl->retired = cur->m;
    memcpy(rl->serving_sha, next->sha, sizeof(rl->serving_sha));
    rl->serving_version = next->version;
    rl->swapped = 1;
    pthread_cond_signal(&rl->wake);
    pthread_mutex_unlock(&rl->lock);
    us = (int64_t)((now_s() - t0) * 1e6);
    atomic_fetch_add(&rl->mt->reloads, 1);
    atomic_store(&rl->mt->swap_last_us, us);
    if (us > atomic_load(&rl->mt->swap_max_us))
        atomic_store(&rl->mt->swap_max_us, us);
    return 1;
}

int
sw__reloader_retired(reloader *rl)
{
    return rl != NULL && atomic_load(&rl->retire);
}

void
sw__reloader_stop(reloader *rl)
{
    if (rl == NULL)
        return;
    pthread_mutex_lock(&rl->lock);
    rl->stop = 1;
    pthread_cond_signal(&rl->wake);
    pthread_mutex_unlock(&rl->lock);
    pthread_join(rl->thread, NULL);
    sw_model_free(rl->pending.m);
    sw_model_free(rl->retired);
    pthread_mutex_destroy(&rl->lock);
    pthread_cond_destroy(&rl->wake);
    free(rl);
}
