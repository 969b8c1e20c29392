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
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
};

void
sw_tenants_free(tenants *tn)
{
    size_t i;

    if (tn == NULL)
        return;
    for (i = 0; i < tn->cap; i++) {
        if (tn->slots[i] != NULL) {
            sw_model_free(tn->slots[i]->m);
            free(tn->slots[i]->name);
            free(tn->slots[i]);
        }
    }
    free(tn->slots);
    pthread_mutex_destroy(&tn->lock);
    free(tn);
}

sw_rc
sw_tenants_new(const job *j, uint64_t spec_hash, run_metrics *mt,
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
    tn->j = j;
    tn->spec_hash = spec_hash;
    tn->mt = mt;
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
        lru->m = NULL;
        lru->state = TENANT_UNLOADED;
        tn->loaded--;
        atomic_fetch_add(&tn->mt->tenant_evictions, 1);
    }
}

/* Load t's model: t->m and its output naming, or a refusal in t->why. */
static void
load(tenants *tn, tenant *t)
{
    const job *j = tn->j;
    char ref[1024], path[4096], sha[65];
    const char *at = strstr(j->tenant_model, "{}");
    int64_t version = 0;
    uint64_t spec = 0, schema;
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
    snprintf(ref, sizeof(ref), "%.*s%s%s", (int)(at - j->tenant_model),
             j->tenant_model, t->name, at + 2);
    if (j->registry != NULL) {
        if (sw_registry_resolve(j->registry, ref, path, sizeof(path), sha,
                                &version, &err) != SW_OK) {
            snprintf(t->why, sizeof(t->why), "%s", err.msg);
            goto refused;
        }
    } else {
        snprintf(path, sizeof(path), "%s", ref);
    }
    if (sw_model_load(path, &m, &err) != SW_OK) {
        snprintf(t->why, sizeof(t->why), "%s", err.msg);
        goto refused;
    }
    if (sw_model_pipeline_spec(m) != NULL)
        sw_model_pipeline_hashes(m, &spec, &schema);
    if (spec != tn->spec_hash) {
        snprintf(t->why, sizeof(t->why),
                 "%.200s: its pipeline is not the job's bundle's: every "
                 "tenant's model scores the shared pipeline's rows",
                 ref);
        sw_model_free(m);
        goto refused;
    }
    if (j->registry == NULL) {
        /* a file model is named by the SHA-256 of its bytes as well */
        if (run_file_sha256(path, sha, &err) != SW_OK) {
            snprintf(t->why, sizeof(t->why), "%s", err.msg);
            sw_model_free(m);
            goto refused;
        }
        snprintf(t->model, sizeof(t->model), "%.200s", ref);
    } else {
        snprintf(t->model, sizeof(t->model), "%.*s@%lld",
                 (int)(strcspn(ref, "@") < 200 ? strcspn(ref, "@") : 200),
                 ref, (long long)version);
    }
    memcpy(t->sha, sha, sizeof(t->sha));
    t->m = m;
    t->state = TENANT_LOADED;
    tn->loaded++;
    atomic_fetch_add(&tn->mt->tenant_loads, 1);
    return;
refused:
    t->state = TENANT_REFUSED;
    fprintf(stderr, "sw-serve: tenant %.*s refused: %s\n", (int)t->name_len,
            t->name, t->why);
    atomic_fetch_add(&tn->mt->tenant_refusals, 1);
}

void
sw_tenants_each(tenants *tn, void (*fn)(void *ctx, const tenant *t),
                void *ctx)
{
    size_t i;

    pthread_mutex_lock(&tn->lock);
    for (i = 0; i < tn->cap; i++) {
        if (tn->slots[i] != NULL)
            fn(ctx, tn->slots[i]);
    }
    pthread_mutex_unlock(&tn->lock);
}

static tenant *
get_locked(tenants *tn, const char *name, size_t len, double now)
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
    t->last_use = ++tn->clock;
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
sw_tenants_get(tenants *tn, const char *name, size_t len, double now)
{
    tenant *t;

    pthread_mutex_lock(&tn->lock);
    t = get_locked(tn, name, len, now);
    pthread_mutex_unlock(&tn->lock);
    return t;
}
