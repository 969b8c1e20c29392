/* SPDX-License-Identifier: MIT */
/*
 * sw_join.c - the label join: a prediction event (an impression, an offer)
 * waits, with the feature row it had when it happened, for an outcome
 * event with the same join key (its click, its conversion) within a time
 * limit; the pair comes out as a training example. Predictions that no
 * outcome claims in time come out with label 0, or are counted and dropped.
 *
 * Everything happens in processing order (event time, then arrival), so a
 * replay joins exactly as the live run did, and an outcome can only claim
 * a prediction that happened before it. Waiting predictions sit in a FIFO
 * of slots (they arrive in time order, so they expire from the front) with
 * an open-addressing index from the join key's hash to the slot.
 */
#include <jansson.h>

#include "sw_pipeline_int.h"

#define EMPTY (-1)

static int64_t
map_home(const joinq *q, uint64_t key)
{
    return (int64_t)(sw__mix64(key, 0x6a6f696e) & (uint64_t)(q->mcap - 1));
}

static int64_t
map_find(const joinq *q, uint64_t key)
{
    int64_t i;

    if (q->mcap == 0)
        return -1;
    for (i = map_home(q, key); q->map[i] != EMPTY; i = (i + 1) & (q->mcap - 1))
        if (q->key[q->map[i]] == key)
            return i;
    return -1;
}

static void
map_insert(joinq *q, uint64_t key, int64_t slot)
{
    int64_t i = map_home(q, key);

    while (q->map[i] != EMPTY)
        i = (i + 1) & (q->mcap - 1);
    q->map[i] = slot;
}

/* Linear probing without tombstones: shift back the entries that probed
 * past the freed cell (Knuth's algorithm R). */
static void
map_delete(joinq *q, int64_t i)
{
    int64_t j = i, m = q->mcap - 1;

    q->map[i] = EMPTY;
    for (;;) {
        int64_t h;

        j = (j + 1) & m;
        if (q->map[j] == EMPTY)
            return;
        h = map_home(q, q->key[q->map[j]]);
        if ((j > i && (h <= i || h > j)) || (j < i && (h <= i && h > j))) {
            q->map[i] = q->map[j];
            q->map[j] = EMPTY;
            i = j;
        }
    }
}

static void
rebuild_map(joinq *q)
{
    int64_t s, i;

    for (i = 0; i < q->mcap; i++)
        q->map[i] = EMPTY;
    for (s = q->head; s < q->n; s++)
        if (q->seq[s] >= 0)
            map_insert(q, q->key[s], s);
}

void
sw__join_free(joinq *q)
{
    sw__free(q->t);
    sw__free(q->seq);
    sw__free(q->key);
    sw__free(q->rows);
    sw__free(q->ind);
    sw__free(q->map);
    memset(q, 0, sizeof(*q));
}

sw_rc
sw__join_parse(sw_pipeline *p, json_t *v, sw_err *err)
{
    static const char *const keys[] = {
        "key", "type", "prediction", "outcome", "within", "label", "unmatched"};
    json_t *e;
    const char *name;
    int *slots[3] = {&p->join.key_field, &p->join.type_field,
                     &p->join.label_field};
    int k, f;

    if (!json_is_object(v))
        return sw__fail(err, SW_E_INVAL,
                        "label_join: expected {\"key\": ..., \"type\": ..., "
                        "\"prediction\": ..., \"outcome\": ..., \"within\": "
                        "\"30m\"}");
    json_object_foreach(v, name, e)
    {
        for (k = 0; k < 7 && strcmp(name, keys[k]); k++)
            ;
        if (k == 7)
            return sw__fail(err, SW_E_INVAL,
                            "label_join.%s: not a setting (key, type, "
                            "prediction, outcome, within, label, unmatched)",
                            name);
    }
    p->join.label_field = -1;
    for (k = 0; k < 3; k++) {
        const char *what = keys[k == 2 ? 5 : k];

        e = json_object_get(v, what);
        if (e == NULL && k == 2)
            continue; /* no label field: an outcome is label 1 */
        if (!json_is_string(e))
            return sw__fail(err, SW_E_INVAL, "label_join.%s: expected a field",
                            what);
        for (f = 0;
             f < p->n_fields && strcmp(p->fields[f].name, json_string_value(e));
             f++)
            ;
        if (f == p->n_fields)
            return sw__fail(err, SW_E_INVAL,
                            "label_join.%s: '%s' is not an event field", what,
                            json_string_value(e));
        if (k == 2 && p->fields[f].type == SW_COL_STR)
            return sw__fail(err, SW_E_INVAL,
                            "label_join.label: '%s' is a string; a label is a "
                            "number",
                            json_string_value(e));
        if (k > 0 && p->fields[f].private_)
            return sw__fail(err, SW_E_INVAL, "label_join.%s: '%s' is private",
                            what, json_string_value(e));
        *slots[k] = f;
        if (k < 2)
            p->fields[f].hashed = 1;
    }
    if (sw__value_hash(p, p->join.type_field, json_object_get(v, "prediction"),
                       &p->join.pred_h) != 0 ||
        sw__value_hash(p, p->join.type_field, json_object_get(v, "outcome"),
                       &p->join.out_h) != 0 ||
        p->join.pred_h == p->join.out_h)
        return sw__fail(err, SW_E_INVAL,
                        "label_join.prediction, outcome: two different values "
                        "of field '%s'",
                        p->fields[p->join.type_field].name);
    e = json_object_get(v, "within");
    if (e == NULL || sw__parse_duration(e, &p->join.within) != 0 ||
        p->join.within <= 0)
        return sw__fail(err, SW_E_INVAL,
                        "label_join.within: expected a duration such as "
                        "\"30m\"");
    e = json_object_get(v, "unmatched");
    p->join.negatives = 1;
    if (e != NULL && json_is_string(e) && !strcmp(json_string_value(e), "drop"))
        p->join.negatives = 0;
    else if (e != NULL &&
             !(json_is_string(e) && !strcmp(json_string_value(e), "negative")))
        return sw__fail(err, SW_E_INVAL,
                        "label_join.unmatched: \"negative\" or \"drop\"");
    p->join.on = 1;
    return SW_OK;
}

/* Room in r for `more` pairs. */
static sw_rc
pairs_room(sw_result *r, const sw_pipeline *p, int64_t more, sw_err *err)
{
    int64_t cap = r->jcap ? r->jcap : 64;
    size_t nd = (size_t)(p->n_dense ? p->n_dense : 1);
    size_t nh = (size_t)(p->n_hash ? p->n_hash : 1);
    void *a;

    if (r->jn + more <= r->jcap)
        return SW_OK;
    while (cap < r->jn + more)
        cap *= 2;
#define GROW(field, n, size)                                                   \
    do {                                                                       \
        a = sw__realloc_array(r->field, (size_t)cap * (n), size);              \
        if (a == NULL)                                                         \
            return sw__fail(err, SW_E_NOMEM, "result: out of memory");         \
        r->field = a;                                                          \
    } while (0)
    GROW(jdense, nd, sizeof(double));
    GROW(jind, nh, sizeof(int64_t));
    GROW(jseq, 1, sizeof(int64_t));
    GROW(jt, 1, sizeof(int64_t));
    GROW(jlabel, 1, sizeof(double));
    GROW(joseq, 1, sizeof(int64_t));
#undef GROW
    r->jcap = cap;
    return SW_OK;
}

/* Room in the queue and its index for n more predictions. */
static sw_rc
queue_room(sw_pipeline *p, int64_t n, sw_err *err)
{
    joinq *q = &p->join.q;
    int64_t need, cap, s, d;
    size_t nd = (size_t)(p->n_dense ? p->n_dense : 1);
    size_t nh = (size_t)(p->n_hash ? p->n_hash : 1);
    void *a;

    if (q->n + n > q->cap && q->head > 0) { /* slide the live slots down */
        for (s = q->head, d = 0; s < q->n; s++, d++) {
            q->t[d] = q->t[s];
            q->seq[d] = q->seq[s];
            q->key[d] = q->key[s];
            memcpy(q->rows + d * nd, q->rows + s * nd, nd * sizeof(double));
            memcpy(q->ind + d * nh, q->ind + s * nh, nh * sizeof(int64_t));
        }
        q->n -= q->head;
        q->head = 0;
        if (q->mcap > 0)
            rebuild_map(q);
    }
    if (q->n + n > q->cap) {
        cap = q->cap ? q->cap : 256;
        while (cap < q->n + n)
            cap *= 2;
#define GROW(field, k, size)                                                   \
    do {                                                                       \
        a = sw__realloc_array(q->field, (size_t)cap * (k), size);              \
        if (a == NULL)                                                         \
            return sw__fail(err, SW_E_NOMEM, "label join: out of memory");     \
        q->field = a;                                                          \
    } while (0)
        GROW(t, 1, sizeof(int64_t));
        GROW(seq, 1, sizeof(int64_t));
        GROW(key, 1, sizeof(uint64_t));
        GROW(rows, nd, sizeof(double));
        GROW(ind, nh, sizeof(int64_t));
#undef GROW
        q->cap = cap;
    }
    need = 2 * (q->n - q->head + n) + 16; /* load at most one half */
    if (need > q->mcap) {
        int64_t *m;

        cap = 64;
        while (cap < need)
            cap *= 2;
        m = sw__alloc_array((size_t)cap, sizeof(int64_t));
        if (m == NULL)
            return sw__fail(err, SW_E_NOMEM, "label join: out of memory");
        sw__free(q->map);
        q->map = m;
        q->mcap = cap;
        rebuild_map(q);
    }
    return SW_OK;
}

sw_rc
sw__join_reserve(sw_pipeline *p, sw_result *r, int64_t n, sw_err *err)
{
    sw_rc rc;

    if (!p->join.on)
        return SW_OK;
    /* every waiting prediction and every new event can make one pair */
    rc = pairs_room(r, p, p->join.q.n - p->join.q.head + n, err);
    return rc == SW_OK ? queue_room(p, n, err) : rc;
}

static void
emit(sw_pipeline *p, sw_result *r, int64_t slot, double label, int64_t oseq)
{
    joinq *q = &p->join.q;
    size_t nd = (size_t)p->n_dense, nh = (size_t)p->n_hash;
    int64_t j = r->jn++;

    memcpy(r->jdense + (size_t)j * nd, q->rows + (size_t)slot * nd,
           nd * sizeof(double));
    memcpy(r->jind + (size_t)j * nh, q->ind + (size_t)slot * nh,
           nh * sizeof(int64_t));
    r->jseq[j] = q->seq[slot];
    r->jt[j] = q->t[slot];
    r->jlabel[j] = label;
    r->joseq[j] = oseq;
}

/* The prediction in slot leaves unclaimed. */
static void
unmatched(sw_pipeline *p, sw_result *r, int64_t slot)
{
    if (p->join.negatives)
        emit(p, r, slot, 0.0, -1);
    p->join.n_unmatched++;
    p->join.q.seq[slot] = -1;
}

static void
expire(sw_pipeline *p, sw_result *r, int64_t before)
{
    joinq *q = &p->join.q;

    while (q->head < q->n && (q->seq[q->head] < 0 || q->t[q->head] < before)) {
        if (q->seq[q->head] >= 0) {
            map_delete(q, map_find(q, q->key[q->head]));
            unmatched(p, r, q->head);
        }
        q->head++;
    }
}

void
sw__join_event(sw_pipeline *p, int64_t t, int64_t seq, const double *v,
               const uint64_t *h, sw_result *r, int64_t row)
{
    joinq *q = &p->join.q;
    uint64_t type = h[p->join.type_field], key = h[p->join.key_field];
    int64_t m, s;

    expire(p, r, t - p->join.within);
    if (type == p->join.out_h) {
        m = map_find(q, key);
        if (m < 0)
            return;
        s = q->map[m];
        map_delete(q, m);
        emit(p, r, s, p->join.label_field >= 0 ? v[p->join.label_field] : 1.0,
             seq);
        p->join.n_matched++;
        q->seq[s] = -1;
        return;
    }
    if (type != p->join.pred_h)
        return;
    if ((m = map_find(q, key)) >= 0) { /* a newer prediction replaces it */
        s = q->map[m];
        map_delete(q, m);
        unmatched(p, r, s);
    }
    s = q->n++;
    q->t[s] = t;
    q->seq[s] = seq;
    q->key[s] = key;
    memcpy(q->rows + (size_t)s * (size_t)p->n_dense,
           r->dense + (size_t)row * (size_t)p->n_dense,
           (size_t)p->n_dense * sizeof(double));
    memcpy(q->ind + (size_t)s * (size_t)p->n_hash,
           r->indices + (size_t)row * (size_t)p->n_hash,
           (size_t)p->n_hash * sizeof(int64_t));
    map_insert(q, key, s);
}

void
sw__join_expire_all(sw_pipeline *p, sw_result *r)
{
    if (p->join.on)
        expire(p, r, INT64_MAX);
}

sw_rc
sw__join_save(const sw_pipeline *p, sw_buf *b, sw_err *err)
{
    const joinq *q = &p->join.q;
    int64_t s, live = 0;
    sw_rc rc;

    for (s = q->head; s < q->n; s++)
        live += q->seq[s] >= 0;
    if ((rc = sw__buf_put_u64(b, (uint64_t)p->join.n_matched, err)) != SW_OK ||
        (rc = sw__buf_put_u64(b, (uint64_t)p->join.n_unmatched, err)) !=
            SW_OK ||
        (rc = sw__buf_put_u64(b, (uint64_t)live, err)) != SW_OK)
        return rc;
    for (s = q->head; s < q->n && rc == SW_OK; s++) {
        if (q->seq[s] < 0)
            continue;
        if ((rc = sw__buf_put_u64(b, (uint64_t)q->t[s], err)) != SW_OK ||
            (rc = sw__buf_put_u64(b, (uint64_t)q->seq[s], err)) != SW_OK ||
            (rc = sw__buf_put_u64(b, q->key[s], err)) != SW_OK ||
            (rc = sw__buf_put_words(
                 b, (const uint64_t *)(q->rows + s * p->n_dense),
                 (size_t)p->n_dense, err)) != SW_OK)
            return rc;
        rc = sw__buf_put_words(b, (const uint64_t *)(q->ind + s * p->n_hash),
                               (size_t)p->n_hash, err);
    }
    return rc;
}

sw_rc
sw__join_load(sw_pipeline *p, sw_cursor *c, sw_err *err)
{
    joinq *q = &p->join.q;
    uint64_t live, i;
    int64_t s;
    sw_rc rc;

    if ((rc = sw__cur_i64(c, &p->join.n_matched, err)) != SW_OK ||
        (rc = sw__cur_i64(c, &p->join.n_unmatched, err)) != SW_OK ||
        (rc = sw__cur_u64(c, &live, err)) != SW_OK)
        return rc;
    if (live > (c->len - c->pos) / 24 || (live > 0 && !p->join.on))
        return sw__fail(err, SW_E_FORMAT,
                        "checkpoint: %llu waiting predictions do not fit",
                        (unsigned long long)live);
    if (live > 0 && (rc = queue_room(p, (int64_t)live, err)) != SW_OK)
        return rc;
    for (i = 0; i < live; i++) {
        s = q->n;
        if ((rc = sw__cur_i64(c, &q->t[s], err)) != SW_OK ||
            (rc = sw__cur_i64(c, &q->seq[s], err)) != SW_OK ||
            (rc = sw__cur_u64(c, &q->key[s], err)) != SW_OK ||
            (rc = sw__cur_words(c, (uint64_t *)(q->rows + s * p->n_dense),
                                (size_t)p->n_dense, err)) != SW_OK ||
            (rc = sw__cur_words(c, (uint64_t *)(q->ind + s * p->n_hash),
                                (size_t)p->n_hash, err)) != SW_OK)
            return rc;
        if (q->seq[s] < 0 || map_find(q, q->key[s]) >= 0)
            return sw__fail(err, SW_E_FORMAT,
                            "checkpoint: a waiting prediction is damaged");
        q->n++;
        map_insert(q, q->key[s], s);
    }
    return SW_OK;
}
