/* SPDX-License-Identifier: MIT */
/*
 * sw_json_decode.c - JSON event messages into typed columns, by the
 * "events" schema of a pipeline spec ({"time": "ts", "time_unit": "ms",
 * "fields": {"user": "str", ...}, "defaults": {"field": value}}, parsed
 * by sw_events_schema.c as the HDF5 tables' schema is). A message that is
 * not JSON, not an object, lacks a field that has no default, or holds a
 * value of the wrong type is not decoded: its row and reason go to the
 * dead letters, and the others keep their order. Defaults let older
 * events that lack a newer field decode (backward-compatible event
 * versions). A message without the time field takes the Kafka timestamp,
 * in the schema's time unit.
 *
 * JSON is read by yajl's streaming parser: the values of the schema's
 * fields are taken as they pass, and no tree is built (jansson's tree, a
 * few allocations per value, was half of the runner's time). The rules
 * are jansson's, which this file used before: strict RFC 8259, UTF-8
 * checked, no NUL in strings, an integer that overflows 64 bits or a real
 * that overflows a double makes the message not JSON, a duplicated key
 * keeps its last value. Avro records arrive as jansson values
 * (sw__avro_to_json) and go through the same typing.
 */
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_parse.h>

#include "sw_avro.h"
#include "sw_internal.h"

#define MAX_FIELDS 64

const char *const sw_dead_reasons[] = {
    "not_json", "not_object", "missing", "wrong_type",
    "not_avro", "unknown_schema", NULL};

typedef struct dfield {
    char *name;
    size_t name_len;
    int type; /* SW_COL_* */
    json_t *dflt;
    /* decoded values of the current batch */
    double *num;
    int64_t *i64;
    int64_t *s_at, *s_len;
} dfield;

struct sw_json_decoder {
    int n;
    dfield f[MAX_FIELDS];
    int time_field;   /* index in f */
    int64_t ms_scale; /* time units per ms (ns: 1e6 ... s: 1/1000 -> -1000) */
    int64_t cap, rows, n_dead, cap_dead;
    int64_t *row_src; /* source index of each decoded row */
    int64_t *dead_row;
    int *dead_why;
    int *dead_field; /* the field at fault, -1 for the whole message */
    unsigned char *arena;
    size_t used, arena_cap;
    char *sbuf; /* a message's string values while it is parsed */
    size_t scap;
    struct pool *pool; /* yajl's blocks (sw_json_decode.c, below) */
    sw_avro *avro; /* messages are Avro, not JSON */
};

static void pool_clear(struct pool *pl);

void
sw_json_decoder_free(sw_json_decoder *d)
{
    int i;

    if (d == NULL)
        return;
    for (i = 0; i < d->n; i++) {
        sw__free(d->f[i].name);
        json_decref(d->f[i].dflt);
        sw__free(d->f[i].num);
        sw__free(d->f[i].i64);
        sw__free(d->f[i].s_at);
        sw__free(d->f[i].s_len);
    }
    sw__free(d->row_src);
    sw__free(d->sbuf);
    if (d->pool != NULL) {
        pool_clear(d->pool);
        sw__free(d->pool);
    }
    sw__free(d->dead_row);
    sw__free(d->dead_field);
    sw__free(d->dead_why);
    sw__free(d->arena);
    sw__avro_free(d->avro);
    sw__free(d);
}

sw_rc
sw_json_decoder_set_avro(sw_json_decoder *d, const char *reader_schema_json,
                         sw_framing framing, sw_err *err)
{
    sw_avro *a;
    sw_rc rc = sw__avro_new(reader_schema_json, framing, &a, err);

    if (rc != SW_OK)
        return rc;
    sw__avro_free(d->avro);
    d->avro = a;
    return SW_OK;
}

sw_rc
sw_json_decoder_add_avro_writer(sw_json_decoder *d, int32_t schema_id,
                                const char *writer_schema_json, sw_err *err)
{
    if (d->avro == NULL)
        return sw__fail(err, SW_E_STATE,
                        "avro: set the reader schema before writer schemas");
    return sw__avro_add_writer(d->avro, schema_id, writer_schema_json, err);
}

static int
add_field(sw_json_decoder *d, const char *name, int type)
{
    dfield *f = &d->f[d->n];

    f->name = sw__strdup(name);
    if (f->name == NULL)
        return -1;
    f->name_len = strlen(name);
    f->type = type;
    return d->n++;
}

sw_rc
sw_json_decoder_new(const char *schema, sw_json_decoder **out, sw_err *err)
{
    sw_events_schema sc;
    json_t *root = NULL, *ev, *v;
    sw_json_decoder *d = NULL;
    const char *name;
    sw_rc rc;
    int i;

    *out = NULL;
    if ((rc = sw__events_schema_parse(schema, "schema", &sc, err)) != SW_OK)
        return rc;
    if (sc.n > MAX_FIELDS) {
        rc = sw__fail(err, SW_E_INVAL, "schema: more than %d fields",
                      MAX_FIELDS);
        goto done;
    }
    d = sw__calloc(1, sizeof(*d));
    if (d == NULL) {
        rc = sw__fail(err, SW_E_NOMEM, "schema: out of memory");
        goto done;
    }
    for (i = 0; i < sc.n; i++) {
        if (add_field(d, sc.name[i], sc.type[i]) < 0) {
            rc = sw__fail(err, SW_E_NOMEM, "schema: out of memory");
            goto done;
        }
    }
    d->time_field = sc.time;
    {
        /* the schema's unit per millisecond (read and checked above) */
        int u = sc.unit;
        int64_t per_ms = 1000 * sw_time_unit_us_den[u],
                us = sw_time_unit_us_num[u];

        d->ms_scale = per_ms >= us ? per_ms / us : -(us / per_ms);
    }
    /* defaults for fields that older events lack: parsed already, so
     * only memory can fail the parse */
    root = json_loads(schema, 0, NULL);
    if (root == NULL) {
        rc = sw__fail(err, SW_E_NOMEM, "decoder: out of memory");
        goto done;
    }
    ev = json_object_get(root, "events");
    ev = json_is_object(ev) ? ev : root;
    json_object_foreach(json_object_get(ev, "defaults"), name, v)
    {
        int k = sw__events_schema_find(&sc, name);

        if (k < 0) {
            rc = sw__fail(err, SW_E_INVAL, "schema: defaults.%s: not a field",
                          name);
            goto done;
        }
        d->f[k].dflt = json_incref(v);
    }
done:
    json_decref(root);
    sw__events_schema_clear(&sc);
    if (rc != SW_OK) {
        sw_json_decoder_free(d);
        return rc;
    }
    *out = d;
    return SW_OK;
}

static sw_rc
room(sw_json_decoder *d, int64_t n, sw_err *err)
{
    int i;

    if (n <= d->cap)
        return SW_OK;
    for (i = 0; i < d->n; i++) {
        dfield *f = &d->f[i];
        void *a, *b;

        if (f->type == SW_COL_STR) {
            a = sw__realloc_array(f->s_at, (size_t)n, sizeof(int64_t));
            if (a != NULL)
                f->s_at = a;
            b = sw__realloc_array(f->s_len, (size_t)n, sizeof(int64_t));
            if (b != NULL)
                f->s_len = b;
        } else if (f->type == SW_COL_F64 || f->type == SW_COL_F32) {
            a = b = sw__realloc_array(f->num, (size_t)n, sizeof(double));
            if (a != NULL)
                f->num = a;
        } else {
            a = b = sw__realloc_array(f->i64, (size_t)n, sizeof(int64_t));
            if (a != NULL)
                f->i64 = a;
        }
        if (a == NULL || b == NULL)
            return sw__fail(err, SW_E_NOMEM, "decode: out of memory");
    }
    {
        void *a = sw__realloc_array(d->row_src, (size_t)n, sizeof(int64_t));

        if (a == NULL)
            return sw__fail(err, SW_E_NOMEM, "decode: out of memory");
        d->row_src = a;
    }
    d->cap = n;
    return SW_OK;
}

static sw_rc
dead(sw_json_decoder *d, int64_t row, int why, int field, sw_err *err)
{
    if (d->n_dead == d->cap_dead) {
        int64_t c = d->cap_dead ? 2 * d->cap_dead : 64;
        int64_t *a = sw__realloc_array(d->dead_row, (size_t)c, sizeof(int64_t));
        int *b, *f;

        if (a == NULL)
            return sw__fail(err, SW_E_NOMEM, "decode: out of memory");
        d->dead_row = a;
        b = sw__realloc_array(d->dead_why, (size_t)c, sizeof(int));
        if (b == NULL)
            return sw__fail(err, SW_E_NOMEM, "decode: out of memory");
        d->dead_why = b;
        f = sw__realloc_array(d->dead_field, (size_t)c, sizeof(int));
        if (f == NULL)
            return sw__fail(err, SW_E_NOMEM, "decode: out of memory");
        d->dead_field = f;
        d->cap_dead = c;
    }
    d->dead_row[d->n_dead] = row;
    d->dead_field[d->n_dead] = field;
    d->dead_why[d->n_dead++] = why;
    return SW_OK;
}

/* A JSON value as the typing rules see it: its kind, and the text (at
 * into the parse's string buffer, or a default's own text), integer,
 * real or boolean it holds. */
enum { JV_ABSENT, JV_NULL, JV_BOOL, JV_INT, JV_REAL, JV_STR, JV_OTHER };

typedef struct jv {
    int kind;
    int64_t i; /* JV_INT; JV_BOOL 0 or 1 */
    double x;  /* JV_REAL */
    const char *s;
    size_t at, len; /* JV_STR: s, or the parse buffer at `at` when s NULL */
} jv;

static jv
jv_of_json(json_t *v)
{
    jv out = {JV_ABSENT, 0, 0.0, NULL, 0, 0};

    if (v == NULL)
        return out;
    if (json_is_null(v)) {
        out.kind = JV_NULL;
    } else if (json_is_boolean(v)) {
        out.kind = JV_BOOL;
        out.i = json_is_true(v);
    } else if (json_is_integer(v)) {
        out.kind = JV_INT;
        out.i = (int64_t)json_integer_value(v);
    } else if (json_is_real(v)) {
        out.kind = JV_REAL;
        out.x = json_real_value(v);
    } else if (json_is_string(v)) {
        out.kind = JV_STR;
        out.s = json_string_value(v);
        out.len = json_string_length(v);
    } else {
        out.kind = JV_OTHER;
    }
    return out;
}

/* Store v as field i of row r (strings from sbuf when v->s is NULL); -1
 * if v has the wrong type, -2 out of memory. */
static int
put(sw_json_decoder *d, int i, int64_t r, const jv *v, const char *sbuf)
{
    dfield *f = &d->f[i];

    switch (f->type) {
    case SW_COL_STR: {
        size_t n = v->len;

        if (v->kind != JV_STR)
            return -1;
        if (d->used + n > d->arena_cap) {
            size_t c = d->arena_cap ? d->arena_cap : 65536;
            unsigned char *a;

            while (c < d->used + n)
                c *= 2;
            a = sw__realloc_array(d->arena, c, 1);
            if (a == NULL)
                return -2;
            d->arena = a;
            d->arena_cap = c;
        }
        if (n > 0)
            memcpy(d->arena + d->used, v->s ? v->s : sbuf + v->at, n);
        f->s_at[r] = (int64_t)d->used;
        f->s_len[r] = (int64_t)n;
        d->used += n;
        return 0;
    }
    case SW_COL_F64:
    case SW_COL_F32:
        if (v->kind == JV_INT)
            f->num[r] = (double)v->i;
        else if (v->kind == JV_REAL)
            f->num[r] = v->x;
        else
            return -1;
        return 0;
    case SW_COL_BOOL:
        if (v->kind != JV_BOOL && v->kind != JV_INT)
            return -1;
        f->i64[r] = v->i != 0;
        return 0;
    default:
        if (v->kind == JV_INT) {
            f->i64[r] = v->i;
            return 0;
        }
        if (v->kind == JV_REAL && v->x == floor(v->x) && fabs(v->x) < 9.0e15) {
            f->i64[r] = (int64_t)v->x;
            return 0;
        }
        return -1;
    }
}

/* ---- the streaming parse of one message ----------------------------- */

typedef struct pstate {
    const sw_json_decoder *d;
    int depth, top;   /* top: 1 object, 2 array, 3 a bare value */
    int cur;          /* the field the current key names, -1 none */
    int bad;          /* a value jansson would not take: not JSON */
    jv *val;          /* per field */
    char *sbuf;       /* the message's string values, copied */
    size_t sused, scap;
    struct pool *pool; /* yajl's blocks, kept between messages */
} pstate;

/* A value at depth 1 belongs to the field its key named; at depth 0 it
 * is the whole message. */
static jv *
slot(pstate *ps)
{
    if (ps->depth == 0) {
        ps->top = 3;
        return NULL;
    }
    if (ps->depth == 1 && ps->cur >= 0)
        return &ps->val[ps->cur];
    return NULL;
}

static int
cb_null(void *ctx)
{
    jv *v = slot(ctx);

    if (v != NULL)
        v->kind = JV_NULL;
    return 1;
}

static int
cb_bool(void *ctx, int b)
{
    jv *v = slot(ctx);

    if (v != NULL) {
        v->kind = JV_BOOL;
        v->i = b != 0;
    }
    return 1;
}

static int
cb_number(void *ctx, const char *t, size_t n)
{
    pstate *ps = ctx;
    jv *v = slot(ps);
    char small[64], *tmp = small, *end;
    size_t k;
    int real = 0;

    if (v == NULL)
        return 1;
    for (k = 0; k < n && !real; k++)
        real = t[k] == '.' || t[k] == 'e' || t[k] == 'E';
    if (n >= sizeof(small)) {
        if (!real) {
            ps->bad = 1; /* an integer beyond 64 bits */
            return 1;
        }
        tmp = sw__malloc(n + 1); /* a long real: rare, and exact */
        if (tmp == NULL)
            return 0;
    }
    memcpy(tmp, t, n);
    tmp[n] = '\0';
    errno = 0;
    if (real) {
        v->kind = JV_REAL;
        v->x = strtod(tmp, &end);
        if (errno == ERANGE && isinf(v->x))
            ps->bad = 1;
    } else {
        v->kind = JV_INT;
        v->i = (int64_t)strtoll(tmp, &end, 10);
        if (errno == ERANGE)
            ps->bad = 1;
    }
    if (tmp != small)
        sw__free(tmp);
    return 1;
}

static int
cb_string(void *ctx, const unsigned char *t, size_t n)
{
    pstate *ps = ctx;
    jv *v;

    if (memchr(t, 0, n) != NULL) { /* "\u0000": jansson refuses it */
        ps->bad = 1;
        return 1;
    }
    v = slot(ps);
    if (v == NULL)
        return 1;
    if (ps->sused + n > ps->scap) {
        size_t c = ps->scap ? ps->scap : 4096;
        char *b;

        while (c < ps->sused + n)
            c *= 2;
        b = sw__realloc_array(ps->sbuf, c, 1);
        if (b == NULL)
            return 0; /* yajl stops: reported as out of memory */
        ps->sbuf = b;
        ps->scap = c;
    }
    if (n > 0) /* an empty string may come before any buffer */
        memcpy(ps->sbuf + ps->sused, t, n);
    v->kind = JV_STR;
    v->s = NULL;
    v->at = ps->sused;
    v->len = n;
    ps->sused += n;
    return 1;
}

static int
cb_start(pstate *ps, int top)
{
    jv *v;

    if (ps->depth == 0) {
        ps->top = top;
    } else if ((v = slot(ps)) != NULL) {
        v->kind = JV_OTHER;
    }
    ps->depth++;
    ps->cur = -1;
    return 1;
}

static int
cb_start_map(void *ctx)
{
    return cb_start(ctx, 1);
}

static int
cb_start_array(void *ctx)
{
    return cb_start(ctx, 2);
}

static int
cb_end(void *ctx)
{
    pstate *ps = ctx;

    ps->depth--;
    ps->cur = -1;
    return 1;
}

static int
cb_key(void *ctx, const unsigned char *k, size_t n)
{
    pstate *ps = ctx;
    int i;

    if (memchr(k, 0, n) != NULL) {
        ps->bad = 1;
        return 1;
    }
    ps->cur = -1;
    if (ps->depth != 1)
        return 1;
    for (i = 0; i < ps->d->n; i++) {
        if (ps->d->f[i].name_len == n && !memcmp(ps->d->f[i].name, k, n)) {
            ps->cur = i;
            break;
        }
    }
    return 1;
}

static const yajl_callbacks callbacks = {
    cb_null,      cb_bool,  NULL,   NULL,           cb_number,
    cb_string,    cb_start_map, cb_key, cb_end, cb_start_array,
    cb_end};

/* yajl wants a new handle for every message and allocates the same few
 * blocks each time: they are kept for the next message instead of going
 * back to malloc (a block carries its capacity in front).
 *
 * yajl (2.1) does not check its own allocations: a NULL crashes it (the
 * fault loop found this in yajl_alloc). So the pool never gives it one: an
 * allocation refused is carved from a reserve made with the pool, the
 * pool is marked starved, and the message's parse ends as out of memory
 * once yajl is done with it. A message whose parse needs more than the
 * reserve while memory is refused would still crash yajl. */
#define POOL_MAX 16
#define POOL_RESERVE (256 * 1024)
#define FROM_RESERVE ((size_t)0x5265736572766521ULL) /* in b[-1] */

typedef struct pool {
    int n;
    void *block[POOL_MAX];
    unsigned char *reserve; /* POOL_RESERVE bytes */
    size_t reserve_used;
    int starved; /* the reserve was used for this message */
} pool;

static void *
pool_malloc(void *ctx, size_t sz)
{
    pool *pl = ctx;
    int i;
    size_t *b;

    for (i = 0; i < pl->n; i++) {
        b = pl->block[i];
        if (b[-2] >= sz) {
            pl->block[i] = pl->block[--pl->n];
            return b;
        }
    }
    b = sw__malloc(sz + 16);
    if (b == NULL) {
        size_t need = (sz + 16 + 15) & ~(size_t)15;

        if (pl->reserve == NULL || need > POOL_RESERVE - pl->reserve_used)
            return NULL; /* past the reserve: yajl's own crash */
        b = (size_t *)(void *)(pl->reserve + pl->reserve_used);
        pl->reserve_used += need;
        pl->starved = 1;
        b[0] = sz;
        b[1] = FROM_RESERVE;
        return b + 2;
    }
    b[0] = sz;
    b[1] = 0; /* pads the block to 16 bytes */
    return b + 2;
}

static void
pool_free(void *ctx, void *p)
{
    pool *pl = ctx;

    if (p == NULL || ((size_t *)p)[-1] == FROM_RESERVE)
        return; /* the reserve is emptied whole after the message */
    if (pl->n < POOL_MAX) {
        pl->block[pl->n++] = p;
        return;
    }
    sw__free((size_t *)p - 2);
}

static void *
pool_realloc(void *ctx, void *p, size_t sz)
{
    void *q;

    if (p != NULL && ((size_t *)p)[-2] >= sz)
        return p;
    q = pool_malloc(ctx, sz);
    if (q != NULL && p != NULL) {
        memcpy(q, p, ((size_t *)p)[-2]);
        pool_free(ctx, p);
    }
    return q;
}

static void
pool_clear(pool *pl)
{
    while (pl->n > 0)
        sw__free((size_t *)pl->block[--pl->n] - 2);
    sw__free(pl->reserve);
    pl->reserve = NULL;
}

/* Parse one JSON message into ps->val: -1 not JSON, 1 not an object, 0
 * an object (its fields' values in val), -2 out of memory. */
static int
parse_json(pstate *ps, const unsigned char *p, size_t len)
{
    yajl_alloc_funcs af = {pool_malloc, pool_realloc, pool_free, ps->pool};
    yajl_handle h = yajl_alloc(&callbacks, &af, ps);
    yajl_status st;

    if (h == NULL)
        return -2;
    ps->depth = ps->top = ps->bad = 0;
    ps->cur = -1;
    ps->sused = 0;
    st = yajl_parse(h, p, len);
    if (st == yajl_status_ok)
        st = yajl_complete_parse(h);
    yajl_free(h);
    if (ps->pool->starved) {
        ps->pool->starved = 0;
        ps->pool->reserve_used = 0;
        return -2;
    }
    if (st == yajl_status_client_canceled)
        return -2;
    if (st != yajl_status_ok || ps->bad || ps->top == 0 || ps->top == 3)
        return -1;
    return ps->top == 1 ? 0 : 1;
}

sw_rc
sw_json_decode(sw_json_decoder *d, const unsigned char *bytes,
               const int64_t *at, const int64_t *len,
               const int64_t *timestamp_ms, int64_t n, int64_t *rows,
               sw_err *err)
{
    jv val[MAX_FIELDS];
    pstate ps;
    int64_t k;
    sw_rc rc = SW_OK;

    d->rows = d->n_dead = 0;
    d->used = 0;
    *rows = 0;
    if ((rc = room(d, n, err)) != SW_OK)
        return rc;
    if (d->pool == NULL && (d->pool = sw__calloc(1, sizeof(pool))) == NULL)
        return sw__fail(err, SW_E_NOMEM, "decode: out of memory");
    if (d->pool->reserve == NULL &&
        (d->pool->reserve = sw__malloc(POOL_RESERVE)) == NULL)
        return sw__fail(err, SW_E_NOMEM, "decode: out of memory");
    memset(&ps, 0, sizeof(ps));
    ps.pool = d->pool;
    ps.d = d;
    ps.val = val;
    ps.sbuf = d->sbuf;
    ps.scap = d->scap;
    for (k = 0; k < n; k++) {
        int i, why = -1, bad_field = -1;
        int64_t r = d->rows;
        json_t *o = NULL;

        for (i = 0; i < d->n; i++)
            val[i].kind = JV_ABSENT;
        if (len[k] < 0) {
            why = d->avro != NULL ? SW_DEAD_NOT_AVRO : 0;
        } else if (d->avro != NULL) {
            o = sw__avro_to_json(d->avro, bytes + at[k], (size_t)len[k], &why);
            if (o == NULL && why < 0)
                why = SW_DEAD_NOT_AVRO;
            for (i = 0; o != NULL && i < d->n; i++)
                val[i] = jv_of_json(json_object_get(o, d->f[i].name));
        } else {
            int got = parse_json(&ps, bytes + at[k], (size_t)len[k]);

            if (got == -2) {
                rc = sw__fail(err, SW_E_NOMEM, "decode: out of memory");
                break;
            }
            if (got != 0)
                why = got < 0 ? 0 : 1;
        }
        for (i = 0; why < 0 && i < d->n; i++) {
            jv dv;
            int p;

            bad_field = i;
            if (val[i].kind == JV_ABSENT || val[i].kind == JV_NULL) {
                if (i == d->time_field && d->f[i].dflt == NULL &&
                    timestamp_ms != NULL) {
                    int64_t t = timestamp_ms[k];

                    if (d->ms_scale > 0 && (t > INT64_MAX / d->ms_scale ||
                                            t < INT64_MIN / d->ms_scale)) {
                        why = 2; /* in ns, a time past 2262 does not fit */
                        break;
                    }
                    d->f[i].i64[r] =
                        d->ms_scale > 0 ? t * d->ms_scale : t / -d->ms_scale;
                    if (d->f[i].type == SW_COL_F64 ||
                        d->f[i].type == SW_COL_F32)
                        d->f[i].num[r] = (double)d->f[i].i64[r];
                    continue;
                }
                if (d->f[i].dflt == NULL) {
                    why = 2;
                    break;
                }
                dv = jv_of_json(d->f[i].dflt);
                p = put(d, i, r, &dv, NULL);
            } else {
                p = put(d, i, r, &val[i], ps.sbuf);
            }
            if (p == -2) {
                json_decref(o);
                rc = sw__fail(err, SW_E_NOMEM, "decode: out of memory");
                goto done;
            }
            if (p < 0)
                why = 3;
        }
        json_decref(o);
        if (why >= 0) {
            if (why < 2)
                bad_field = -1;
            if ((rc = dead(d, k, why, bad_field, err)) != SW_OK)
                goto done;
            continue;
        }
        d->row_src[r] = k;
        d->rows++;
    }
    *rows = d->rows;
done:
    d->sbuf = ps.sbuf; /* kept for the next batch */
    d->scap = ps.scap;
    return rc;
}

int
sw_json_decoder_n_fields(const sw_json_decoder *d)
{
    return d->n;
}

void
sw_json_decoder_field(const sw_json_decoder *d, int i, const char **name,
                      int *type, const double **num, const int64_t **ints,
                      const int64_t **str_at, const int64_t **str_len)
{
    const dfield *f = &d->f[i];

    *name = f->name;
    *type = f->type;
    *num = f->num;
    *ints = f->i64;
    *str_at = f->s_at;
    *str_len = f->s_len;
}

const unsigned char *
sw_json_decoder_strings(const sw_json_decoder *d)
{
    return d->arena;
}

const int64_t *
sw_json_decoder_rows(const sw_json_decoder *d)
{
    return d->row_src;
}

int64_t
sw_json_decoder_dead(const sw_json_decoder *d, const int64_t **row,
                     const int **reason)
{
    *row = d->dead_row;
    *reason = d->dead_why;
    return d->n_dead;
}

const char *
sw_json_decoder_dead_field(const sw_json_decoder *d, int64_t k)
{
    if (k < 0 || k >= d->n_dead || d->dead_field[k] < 0)
        return NULL;
    return d->f[d->dead_field[k]].name;
}
