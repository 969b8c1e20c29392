/* SPDX-License-Identifier: MIT */
/*
 * sw_tenants.c - one model per tenant, for a multitenant platform: events
 * are routed by a field of theirs to the tenant's model, loaded on the
 * tenant's first event and kept under a bound.
 *
 * The job's bundle defines the pipeline every tenant shares (its state is
 * keyed as the spec says); each tenant's model is found by substituting
 * the tenant's name for "{}" in a template: a registry reference
 * ("shop-{}@champion") or a path ("models/{}.swm"). A model that cannot
 * serve (missing, corrupt, golden mismatch, another pipeline, a name that
 * is no registry name) refuses that tenant only: its events become dead
 * letters naming the reason, the other tenants never notice, and the
 * tenant is tried again after a while. At most max_loaded models are
 * held; the one used least recently is dropped first and loaded again
 * when its tenant comes back, so a platform of many small tenants runs in
 * bounded memory.
 *
 * With a registry, a watcher thread follows the tenants' references: when
 * the store changes (PRAGMA data_version, as sw_reload.c watches it) each
 * loaded tenant's reference is resolved again, and a new version is
 * loaded and verified on the watcher's thread, off the scoring path, and
 * taken at the tenant's next event (a pointer swap); a version that cannot
 * serve is refused and the tenant's current one keeps serving. A refused
 * tenant is tried again at its next event, not 10 s later. Both are
 * written to the registry's deployment log.
 *
 * With a control topic as well, the watcher reads it: a retirement of a
 * tenant's reference ({"model": "shop-a", "alias": "champion", "action":
 * "retire"}, registry.retire("shop-a")) retires that tenant alone - its
 * model is dropped at its next event, its events become dead letters
 * ("tenant_retired"), the retirement goes to the deployment log - and a
 * later deploy of the reference (a promotion) serves it again. The topic
 * is the tenants' state: before the first event is served the whole of it
 * is read, so a runner started again (after a crash, a deploy) keeps a
 * retired tenant retired until a deploy comes; the watcher goes on from
 * where that reading ended.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <xxhash.h>

#include "sw_run.h"

#define RETRY_S 10.0 /* a refused tenant is tried again after this */

struct tenants {
    pthread_mutex_t lock; /* the table, against the metrics thread */
    const job *j;
    uint64_t spec_hash; /* the pipeline every tenant's model must have */
    run_metrics *mt;
    tenant **slots;     /* open addressing by name; NULL: empty */
    size_t cap, n, loaded;
    int64_t clock;      /* uses, for least-recently-used */
    /* the watcher */
    pthread_t thread;
    pthread_cond_t wake;
    int watching, stop;
    /* where the control topic's reading at start ended, per partition */
    int n_ctl;
    int32_t ctl_part[64];
    int64_t ctl_next[64];
};

static void control_look(tenants *tn, sw_kafka_source *ks, int64_t count);

static void *watch_main(void *arg);

/* The control topic from its beginning to its end as of now, applied in
 * order before anything is served: the retirements no deploy lifted since
 * hold (a tenant is not served again by a restart). */
static sw_rc
control_history(tenants *tn, sw_err *err)
{
    const job *j = tn->j;
    sw_kafka_source *ks = NULL;
    const int32_t *sp;
    const int64_t *lo, *hi, *nx;
    int64_t count = 0, seen = 0;
    int i, n;
    sw_rc rc;

    if (j->control_topic == NULL)
        return SW_OK;
    rc = sw_kafka_source_open(j->control_bootstrap, j->control_topic, NULL,
                              0, SW_POINT_EDGE, 0, SW_POINT_EDGE, 0, 30000,
                              NULL, &ks, err);
    while (rc == SW_OK &&
           (rc = sw_kafka_source_next(ks, 256, &count, err)) == SW_OK &&
           count > 0) {
        control_look(tn, ks, count);
        seen += count;
    }
    if (rc == SW_OK) {
        n = sw_kafka_source_slice(ks, &sp, &lo, &hi, &nx);
        for (i = 0; i < n && tn->n_ctl < 64; i++) {
            tn->ctl_part[tn->n_ctl] = sp[i];
            tn->ctl_next[tn->n_ctl++] = hi[i];
        }
        sw__log("tenants: control topic %s read to its "
                "end (%lld messages) before serving\n",
                j->control_topic, (long long)seen);
    }
    sw_kafka_source_free(ks);
    if (rc != SW_OK) {
        char why[sizeof(err->msg)];

        snprintf(why, sizeof(why), "%s", err->msg);
        snprintf(err->msg, sizeof(err->msg),
                 "tenants: control topic %.60s: %.120s (a retirement it "
                 "holds must not be missed)",
                 j->control_topic, why);
        err->rc = rc;
    }
    return rc;
}

void
sw__tenants_free(tenants *tn)
{
    size_t i;

    if (tn == NULL)
        return;
    if (tn->watching) {
        pthread_mutex_lock(&tn->lock);
        tn->stop = 1;
        pthread_cond_signal(&tn->wake);
        pthread_mutex_unlock(&tn->lock);
        pthread_join(tn->thread, NULL);
    }
    for (i = 0; i < tn->cap; i++) {
        if (tn->slots[i] != NULL) {
            sw_model_free(tn->slots[i]->m);
            sw_model_free(tn->slots[i]->next);
            sw_model_free(tn->slots[i]->old);
            free(tn->slots[i]->name);
            free(tn->slots[i]);
        }
    }
    free(tn->slots);
    pthread_cond_destroy(&tn->wake);
    pthread_mutex_destroy(&tn->lock);
    free(tn);
}

sw_rc
sw__tenants_new(const job *j, uint64_t spec_hash, run_metrics *mt,
                tenants **out, sw_err *err)
{
    tenants *tn = calloc(1, sizeof(*tn));

    *out = NULL;
    if (tn != NULL) {
        tn->cap = 1024;
        tn->slots = calloc(tn->cap, sizeof(tenant *));
    }
    if (tn == NULL || tn->slots == NULL) {
        free(tn);
        err->rc = SW_E_NOMEM;
        snprintf(err->msg, sizeof(err->msg), "tenants: out of memory");
        return SW_E_NOMEM;
    }
    pthread_mutex_init(&tn->lock, NULL);
    pthread_cond_init(&tn->wake, NULL);
    tn->j = j;
    tn->spec_hash = spec_hash;
    tn->mt = mt;
    if (j->registry != NULL && j->reload_seconds > 0) {
        sw_rc rc = control_history(tn, err);

        if (rc != SW_OK) {
            sw__tenants_free(tn);
            return rc;
        }
        if (pthread_create(&tn->thread, NULL, watch_main, tn) != 0) {
            sw__tenants_free(tn);
            err->rc = SW_E_INTERNAL;
            snprintf(err->msg, sizeof(err->msg),
                     "tenants: the watcher thread did not start");
            return SW_E_INTERNAL;
        }
        tn->watching = 1;
    }
    *out = tn;
    return SW_OK;
}

static size_t
slot_of(const tenants *tn, const char *name, size_t len)
{
    size_t i = (size_t)XXH3_64bits(name, len) & (tn->cap - 1);

    while (tn->slots[i] != NULL &&
           (tn->slots[i]->name_len != len ||
            memcmp(tn->slots[i]->name, name, len) != 0))
        i = (i + 1) & (tn->cap - 1);
    return i;
}

static int
grow(tenants *tn)
{
    tenant **old = tn->slots;
    size_t cap = tn->cap, i;

    tn->slots = calloc(2 * cap, sizeof(tenant *));
    if (tn->slots == NULL) {
        tn->slots = old;
        return -1;
    }
    tn->cap = 2 * cap;
    for (i = 0; i < cap; i++) {
        if (old[i] != NULL)
            tn->slots[slot_of(tn, old[i]->name, old[i]->name_len)] = old[i];
    }
    free(old);
    return 0;
}

/* Drop the model used least recently while too many are held. */
static void
evict(tenants *tn)
{
    while (tn->j->tenant_max_loaded > 0 &&
           tn->loaded > (size_t)tn->j->tenant_max_loaded) {
        tenant *lru = NULL;
        size_t i;

        for (i = 0; i < tn->cap; i++) {
            tenant *t = tn->slots[i];

            if (t != NULL && t->m != NULL &&
                (lru == NULL || t->last_use < lru->last_use))
                lru = t;
        }
        if (lru == NULL)
            return;
        sw_model_free(lru->m);
        sw_model_free(lru->next);
        lru->m = lru->next = NULL;
        lru->state = TENANT_UNLOADED;
        tn->loaded--;
        atomic_fetch_add(&tn->mt->tenant_evictions, 1);
    }
}

/* The tenant's reference: the job's template with its name for "{}". */
static void
tenant_ref(const job *j, const tenant *t, char *ref, size_t len)
{
    const char *at = strstr(j->tenant_model, "{}");

    snprintf(ref, len, "%.*s%s%s", (int)(at - j->tenant_model),
             j->tenant_model, t->name, at + 2);
}

/* The model file at path, if it can serve ref's tenant: its pipeline
 * must be the job's bundle's. NULL with the reason in why otherwise. */
static sw_model *
check_model(const tenants *tn, const char *path, const char *ref, char *why,
            size_t why_len)
{
    uint64_t spec = 0, schema;
    sw_model *m = NULL;
    sw_err err = {0};

    if (sw_model_load(path, &m, &err) != SW_OK) {
        snprintf(why, why_len, "%s", err.msg);
        return NULL;
    }
    if (sw_model_pipeline_spec(m) != NULL)
        sw_model_pipeline_hashes(m, &spec, &schema);
    if (spec != tn->spec_hash) {
        snprintf(why, why_len,
                 "%.200s: its pipeline is not the job's bundle's: every "
                 "tenant's model scores the shared pipeline's rows",
                 ref);
        sw_model_free(m);
        return NULL;
    }
    return m;
}

/* How outputs name a registry version: "name@7". */
static void
name_version(char *out, size_t len, const char *ref, int64_t version)
{
    size_t n = strcspn(ref, "@");

    snprintf(out, len, "%.*s@%lld", (int)(n < 200 ? n : 200), ref,
             (long long)version);
}

/* Load t's model: t->m and its output naming, or a refusal in t->why. */
static void
load(tenants *tn, tenant *t)
{
    const job *j = tn->j;
    char ref[1024], path[4096], sha[65];
    int64_t version = 0;
    sw_model *m = NULL;
    sw_err err = {0};
    size_t i;

    for (i = 0; i < t->name_len; i++) {
        char c = t->name[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-')) {
            snprintf(t->why, sizeof(t->why),
                     "tenant '%.60s' is not a model name (letters, digits, "
                     "'_', '.', '-')",
                     t->name);
            goto refused;
        }
    }
    tenant_ref(j, t, ref, sizeof(ref));
    if (j->registry != NULL) {
        if (sw_registry_resolve(j->registry, ref, path, sizeof(path), sha,
                                &version, &err) != SW_OK) {
            snprintf(t->why, sizeof(t->why), "%s", err.msg);
            goto refused;
        }
    } else {
        snprintf(path, sizeof(path), "%s", ref);
    }
    if ((m = check_model(tn, path, ref, t->why, sizeof(t->why))) == NULL)
        goto refused;
    if (j->registry == NULL) {
        /* a file model is named by the SHA-256 of its bytes as well */
        if (run_file_sha256(path, sha, &err) != SW_OK) {
            snprintf(t->why, sizeof(t->why), "%s", err.msg);
            sw_model_free(m);
            goto refused;
        }
        snprintf(t->model, sizeof(t->model), "%.200s", ref);
    } else {
        name_version(t->model, sizeof(t->model), ref, version);
    }
    memcpy(t->sha, sha, sizeof(t->sha));
    t->version = version;
    t->m = m;
    t->state = TENANT_LOADED;
    tn->loaded++;
    atomic_fetch_add(&tn->mt->tenant_loads, 1);
    return;
refused:
    t->state = TENANT_REFUSED;
    sw__log("tenant %.*s refused: %s\n", (int)t->name_len, t->name, t->why);
    atomic_fetch_add(&tn->mt->tenant_refusals, 1);
}

void
sw__tenants_each(tenants *tn, void (*fn)(void *ctx, const tenant *t), void *ctx)
{
    size_t i;

    pthread_mutex_lock(&tn->lock);
    for (i = 0; i < tn->cap; i++) {
        if (tn->slots[i] != NULL)
            fn(ctx, tn->slots[i]);
    }
    pthread_mutex_unlock(&tn->lock);
}

/* The entry of that name, made (unloaded) if new; NULL when out of
 * memory. */
static tenant *
entry_locked(tenants *tn, const char *name, size_t len)
{
    size_t i;
    tenant *t;

    if (2 * (tn->n + 1) > tn->cap && grow(tn) != 0)
        return NULL;
    i = slot_of(tn, name, len);
    t = tn->slots[i];
    if (t == NULL) {
        t = calloc(1, sizeof(*t));
        if (t == NULL || (t->name = malloc(len + 1)) == NULL) {
            free(t);
            return NULL;
        }
        memcpy(t->name, name, len);
        t->name[len] = '\0';
        t->name_len = len;
        tn->slots[i] = t;
        tn->n++;
    }
    return t;
}

static tenant *
get_locked(tenants *tn, const char *name, size_t len, double now)
{
    tenant *t = entry_locked(tn, name, len);

    if (t == NULL)
        return NULL;
    t->last_use = ++tn->clock;
    if (t->retire > 0) {
        /* retired on the control topic: its models go now (this thread
         * is their only user), the watcher writes the deployment */
        if (t->m != NULL)
            tn->loaded--;
        sw_model_free(t->m);
        sw_model_free(t->next);
        t->m = t->next = NULL;
        t->state = TENANT_RETIRED;
        t->retire = 0;
        t->retired = 1;
    } else if (t->retire < 0) {
        if (t->state == TENANT_RETIRED)
            t->state = TENANT_UNLOADED; /* loaded below, at this event */
        t->retire = 0;
    }
    if (t->next != NULL && t->state == TENANT_LOADED) {
        /* the watcher's verified version: a pointer swap, the old model
         * freed by the watcher, off the scoring path */
        sw_model_free(t->old); /* a swap the watcher has not seen yet */
        t->old = t->m;
        t->m = t->next;
        t->next = NULL;
        memcpy(t->model, t->next_model, sizeof(t->model));
        memcpy(t->sha, t->next_sha, sizeof(t->sha));
        t->version = t->next_version;
        t->swapped = 1;
        atomic_fetch_add(&tn->mt->reloads, 1);
    }
    if (t->state == TENANT_UNLOADED ||
        (t->state == TENANT_REFUSED && now - t->refused_at >= RETRY_S)) {
        load(tn, t);
        if (t->state == TENANT_REFUSED)
            t->refused_at = now;
        evict(tn);
    }
    return t;
}

tenant *
sw__tenants_get(tenants *tn, const char *name, size_t len, double now)
{
    tenant *t;

    pthread_mutex_lock(&tn->lock);
    t = get_locked(tn, name, len, now);
    pthread_mutex_unlock(&tn->lock);
    return t;
}

/* The watcher: one look at every tenant after the store changed. */
typedef struct look_item {
    char name[256];
    int state;
    char sha[65], next_sha[65], bad_sha[65];
    int64_t version;
} look_item;

static void
record(tenants *tn, const char *ref, int64_t version, const char *sha,
       sw_deploy_status st, const char *reason)
{
    sw_err err = {0};

    if (sw_registry_record(tn->j->registry, ref, version, sha, tn->j->runner, st,
                           reason, &err) != SW_OK)
        sw__log("tenants: could not write the deployment "
                "log: %s\n",
                err.msg);
}

/* Resolve one tenant's reference again; a new version is verified here
 * and handed to the table, a bad one refused. */
static void
look_tenant(tenants *tn, const look_item *it)
{
    const job *j = tn->j;
    char ref[1024], path[4096], sha[65], why[600];
    int64_t version = 0;
    sw_model *m = NULL;
    sw_err err = {0};
    tenant key, *t;

    memset(&key, 0, sizeof(key));
    key.name = (char *)it->name;
    key.name_len = strlen(it->name);
    tenant_ref(j, &key, ref, sizeof(ref));
    if (it->state == TENANT_REFUSED) {
        /* the store changed: try it again at its next event */
        pthread_mutex_lock(&tn->lock);
        t = tn->slots[slot_of(tn, it->name, strlen(it->name))];
        if (t != NULL && t->state == TENANT_REFUSED)
            t->refused_at = -1e18;
        pthread_mutex_unlock(&tn->lock);
        return;
    }
    if (sw_registry_resolve(j->registry, ref, path, sizeof(path), sha,
                            &version, &err) != SW_OK)
        return; /* gone or being written: the current version serves on */
    if (!strcmp(sha, it->sha) || !strcmp(sha, it->next_sha) ||
        !strcmp(sha, it->bad_sha))
        return;
    if ((m = check_model(tn, path, ref, why, sizeof(why))) == NULL) {
        sw__log("tenant %s: %s version %lld (sha256 "
                "%.16s...) refused, still serving version %lld: "
                "%s\n",
                it->name, ref, (long long)version, sha, (long long)it->version,
                why);
        atomic_fetch_add(&tn->mt->reload_refusals, 1);
        record(tn, ref, version, sha, SW_DEPLOY_REFUSED, why);
        pthread_mutex_lock(&tn->lock);
        t = tn->slots[slot_of(tn, it->name, strlen(it->name))];
        if (t != NULL)
            memcpy(t->bad_sha, sha, sizeof(t->bad_sha));
        pthread_mutex_unlock(&tn->lock);
        return;
    }
    pthread_mutex_lock(&tn->lock);
    t = tn->slots[slot_of(tn, it->name, strlen(it->name))];
    if (t != NULL && t->state == TENANT_LOADED) {
        sw_model_free(t->next); /* superseded before its tenant came */
        t->next = m;
        m = NULL;
        name_version(t->next_model, sizeof(t->next_model), ref, version);
        memcpy(t->next_sha, sha, sizeof(t->next_sha));
        t->next_version = version;
    }
    pthread_mutex_unlock(&tn->lock);
    sw_model_free(m); /* evicted meanwhile: its next load finds it */
}

/* The models the loop replaced freed, and its swaps and retirements
 * written to the deployment log (by the watcher, and once more when it
 * stops). */
static void
flush_swaps(tenants *tn)
{
    for (;;) {
        sw_model *old = NULL;
        char ref[1024], sha[65], why[400];
        int64_t version = 0;
        size_t i;
        int found = 0;

        pthread_mutex_lock(&tn->lock);
        for (i = 0; i < tn->cap && !found; i++) {
            tenant *t = tn->slots[i];

            if (t == NULL || !(t->swapped || t->retired))
                continue;
            if (t->swapped) {
                found = 1;
                t->swapped = 0;
            } else {
                found = 2;
                t->retired = 0;
            }
            old = t->old;
            t->old = NULL;
            tenant_ref(tn->j, t, ref, sizeof(ref));
            version = t->version;
            memcpy(sha, t->sha, sizeof(sha));
            memcpy(why, t->why, sizeof(why));
        }
        pthread_mutex_unlock(&tn->lock);
        if (!found)
            return;
        sw_model_free(old);
        if (found == 1)
            record(tn, ref, version, sha, SW_DEPLOY_SERVING,
                   "the registry moved");
        else
            record(tn, ref, version, sha, SW_DEPLOY_RETIRED, why);
    }
}

/* The control topic's last batch: retirements and deploys of a tenant's
 * reference (the job's template with a name for "{}"). */
static void
control_look(tenants *tn, sw_kafka_source *ks, int64_t count)
{
    const char *tmpl = tn->j->tenant_model, *at = strstr(tmpl, "{}");
    size_t pre = (size_t)(at - tmpl), slen = strlen(at + 2);
    int64_t i;

    for (i = 0; i < count; i++) {
        control_msg c;
        const char *model, *alias, *action, *reason;
        char ref[600];
        size_t rlen, nlen;
        int retire;
        tenant *t;

        sw__control_msg(ks, i, &c);
        model = c.model;
        alias = c.alias;
        action = c.action;
        reason = c.reason;
        retire = action != NULL && !strcmp(action, "retire");

        snprintf(ref, sizeof(ref), "%.250s%s%.250s", model ? model : "",
                 alias ? "@" : "", alias ? alias : "");
        rlen = strlen(ref);
        nlen = rlen - pre - slen;
        if (model == NULL || rlen <= pre + slen ||
            strncmp(ref, tmpl, pre) != 0 || strcmp(ref + rlen - slen, at + 2) ||
            memchr(ref + pre, '@', nlen) != NULL ||
            (!retire && action != NULL && strcmp(action, "deploy"))) {
            json_decref(c.root); /* another model's */
            continue;
        }
        pthread_mutex_lock(&tn->lock);
        t = entry_locked(tn, ref + pre, nlen);
        if (t != NULL && retire) {
            t->retire = 1;
            snprintf(t->why, sizeof(t->why), "retired on %.200s%s%.150s",
                     tn->j->control_topic, reason ? ": " : "",
                     reason ? reason : "");
            sw__log("tenant %s: %s\n", t->name, t->why);
        } else if (t != NULL &&
                   (t->state == TENANT_RETIRED || t->retire > 0)) {
            t->retire = -1;
            sw__log("tenant %s: deployed again on %s\n", t->name,
                    tn->j->control_topic);
        }
        pthread_mutex_unlock(&tn->lock);
        json_decref(c.root);
    }
}

static void *
watch_main(void *arg)
{
    tenants *tn = arg;
    sw_registry_watch *w = NULL;
    sw_kafka_source *ks =
        tn->j->control_topic ? sw__control_open(tn->j, "tenants") : NULL;
    sw_err err = {0};
    int c;

    /* on from where the reading before serving ended */
    for (c = 0; ks != NULL && c < tn->n_ctl; c++) {
        if (sw_kafka_source_start_at(ks, tn->ctl_part[c], tn->ctl_next[c],
                                     &err) != SW_OK)
            sw__log("tenants: control topic: %s\n", err.msg);
    }

    pthread_mutex_lock(&tn->lock);
    while (!tn->stop) {
        struct timespec until;
        look_item *items = NULL;
        size_t i, n_items = 0;
        int changed = 0;
        int64_t count = 0;

        pthread_mutex_unlock(&tn->lock);
        flush_swaps(tn);
        /* waits up to 50 ms */
        if (ks != NULL && sw_kafka_source_next(ks, 64, &count, &err) != SW_OK) {
            sw__log("tenants: control topic: %s (polling "
                    "the registry only)\n",
                    err.msg);
            sw_kafka_source_free(ks);
            ks = NULL;
        } else if (ks != NULL && count > 0) {
            control_look(tn, ks, count);
        }
        if (w == NULL &&
            sw_registry_watch_open(tn->j->registry, &w, &err) != SW_OK) {
            sw__log("tenants: %s\n", err.msg);
        } else if (w != NULL &&
                   sw_registry_watch_poll(w, &changed, &err) != SW_OK) {
            sw__log("tenants: %s\n", err.msg);
            sw_registry_watch_free(w); /* reopen at the next poll */
            w = NULL;
        }
        pthread_mutex_lock(&tn->lock);
        if (changed && tn->n > 0 &&
            (items = calloc(tn->n, sizeof(*items))) != NULL) {
            for (i = 0; i < tn->cap; i++) {
                tenant *t = tn->slots[i];

                if (t == NULL || t->state == TENANT_UNLOADED ||
                    t->name_len >= sizeof(items->name))
                    continue;
                memcpy(items[n_items].name, t->name, t->name_len + 1);
                items[n_items].state = t->state;
                memcpy(items[n_items].sha, t->sha, 65);
                snprintf(items[n_items].next_sha, 65, "%s",
                         t->next != NULL ? t->next_sha : "");
                memcpy(items[n_items].bad_sha, t->bad_sha, 65);
                items[n_items].version = t->version;
                n_items++;
            }
        }
        pthread_mutex_unlock(&tn->lock);
        for (i = 0; i < n_items; i++)
            look_tenant(tn, &items[i]);
        free(items);
        clock_gettime(CLOCK_REALTIME, &until);
        {
            double s = tn->j->reload_seconds;
            long ns = until.tv_nsec + (long)((s - (long)s) * 1e9);

            until.tv_sec += (time_t)s + ns / 1000000000L;
            until.tv_nsec = ns % 1000000000L;
        }
        pthread_mutex_lock(&tn->lock);
        if (!tn->stop)
            pthread_cond_timedwait(&tn->wake, &tn->lock, &until);
    }
    pthread_mutex_unlock(&tn->lock);
    flush_swaps(tn);
    sw_registry_watch_free(w);
    sw_kafka_source_free(ks);
    return NULL;
}
