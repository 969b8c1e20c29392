/* SPDX-License-Identifier: MIT */
/*
 * sw_avro_decode.c - Avro binary records (raw, or in Confluent's wire
 * format with a schema id) read with libavro, resolved from the writer's
 * schema to the reader's (so older events missing newer fields take the
 * reader schema's defaults), and handed to the event decoder as JSON
 * objects. Numbers, booleans, strings, bytes and enum symbols map onto
 * the event schema's column types; a union takes its branch; null is a
 * missing value.
 */
#include <string.h>

#include "sw_internal.h"

#ifdef SW_HAVE_AVRO
#include <avro.h>

#include "sw_avro.h"

#define MAX_WRITERS 64

/* A schema records were written with, read as it is: avro-c's resolver
 * does not apply reader defaults, so resolution happens on the JSON
 * object (reader defaults for the fields a writer lacks, then the events
 * schema's own defaults and type checks). */
typedef struct writer {
    int32_t id;
    avro_schema_t schema;
    avro_value_iface_t *iface;
    avro_value_t value;
    int have_value;
} writer;

struct sw_avro {
    int framing;
    avro_schema_t schema;
    json_t *defaults; /* reader field -> its default */
    avro_reader_t reader;
    int n;
    writer w[MAX_WRITERS];
};

static void
writer_clear(writer *w)
{
    if (w->have_value)
        avro_value_decref(&w->value);
    if (w->iface != NULL)
        avro_value_iface_decref(w->iface);
    if (w->schema != NULL)
        avro_schema_decref(w->schema);
    memset(w, 0, sizeof(*w));
}

void
sw__avro_free(sw_avro *a)
{
    int i;

    if (a == NULL)
        return;
    for (i = 0; i < a->n; i++)
        writer_clear(&a->w[i]);
    if (a->schema != NULL)
        avro_schema_decref(a->schema);
    json_decref(a->defaults);
    if (a->reader != NULL)
        avro_reader_free(a->reader);
    sw__free(a);
}

static sw_rc
parse(const char *json, avro_schema_t *s, const char *what, sw_err *err)
{
    if (json == NULL ||
        avro_schema_from_json_length(json, strlen(json), s) != 0)
        return sw__fail(err, SW_E_INVAL, "avro: %s schema: %s", what,
                        avro_strerror());
    if (avro_typeof(*s) != AVRO_RECORD) {
        avro_schema_decref(*s);
        *s = NULL;
        return sw__fail(err, SW_E_INVAL, "avro: the %s schema must be a record",
                        what);
    }
    return SW_OK;
}

/* The reader fields' defaults, from the schema's JSON text. */
static sw_rc
reader_defaults(sw_avro *a, const char *json, sw_err *err)
{
    json_t *root = json_loads(json, 0, NULL), *f;
    size_t i;

    a->defaults = json_object();
    if (a->defaults == NULL || root == NULL) { /* libavro parsed it */
        json_decref(root);
        return sw__fail(err, SW_E_NOMEM, "avro: out of memory");
    }
    json_array_foreach(json_object_get(root, "fields"), i, f)
    {
        const char *name = json_string_value(json_object_get(f, "name"));
        json_t *d = json_object_get(f, "default");

        if (name != NULL && d != NULL && !json_is_null(d))
            json_object_set(a->defaults, name, d);
    }
    json_decref(root);
    return SW_OK;
}

sw_rc
sw__avro_new(const char *reader_schema_json, int framing, sw_avro **out,
             sw_err *err)
{
    sw_avro *a = sw__calloc(1, sizeof(*a));
    sw_rc rc;

    *out = NULL;
    if (a == NULL)
        return sw__fail(err, SW_E_NOMEM, "avro: out of memory");
    a->framing = framing;
    rc = parse(reader_schema_json, &a->schema, "reader", err);
    if (rc == SW_OK)
        rc = reader_defaults(a, reader_schema_json, err);
    if (rc == SW_OK && (a->reader = avro_reader_memory("", 0)) == NULL)
        rc = sw__fail(err, SW_E_NOMEM, "avro: out of memory");
    if (rc != SW_OK) {
        sw__avro_free(a);
        return rc;
    }
    *out = a;
    return SW_OK;
}

/* The kind of value a schema holds, for resolution: 'n'umber, 's'tring,
 * 'b'oolean, 'u'nion (anything may match), 'o'ther. */
static int
kind(avro_schema_t s)
{
    switch (avro_typeof(s)) {
    case AVRO_INT32:
    case AVRO_INT64:
    case AVRO_FLOAT:
    case AVRO_DOUBLE:
        return 'n';
    case AVRO_STRING:
    case AVRO_BYTES:
    case AVRO_ENUM:
        return 's';
    case AVRO_BOOLEAN:
        return 'b';
    case AVRO_UNION:
        return 'u';
    default:
        return 'o';
    }
}

/* Avro's resolution rules, as far as columns need them: every reader
 * field either is in the writer, of a compatible kind, or has a default. */
static sw_rc
check_resolves(const sw_avro *a, avro_schema_t w, int32_t id, sw_err *err)
{
    size_t i, n = avro_schema_record_size(a->schema);

    for (i = 0; i < n; i++) {
        const char *name = avro_schema_record_field_name(a->schema, (int)i);
        avro_schema_t rf =
            avro_schema_record_field_get_by_index(a->schema, (int)i);
        avro_schema_t wf = avro_schema_record_field_get(w, name);
        int rk = kind(rf), wk;

        if (wf == NULL) {
            if (json_object_get(a->defaults, name) == NULL && rk != 'u')
                return sw__fail(err, SW_E_INVAL,
                                "avro: writer schema %d does not resolve to "
                                "the reader schema: field '%s' is missing and "
                                "has no default",
                                (int)id, name);
            continue;
        }
        wk = kind(wf);
        if (rk != 'u' && wk != 'u' && rk != wk)
            return sw__fail(err, SW_E_INVAL,
                            "avro: writer schema %d does not resolve to the "
                            "reader schema: field '%s' changed kind",
                            (int)id, name);
    }
    return SW_OK;
}

static sw_rc
writer_init(writer *w, avro_schema_t s, int32_t id, sw_err *err)
{
    w->id = id;
    w->schema = avro_schema_incref(s);
    w->iface = avro_generic_class_from_schema(s);
    if (w->iface != NULL && avro_generic_value_new(w->iface, &w->value) == 0)
        w->have_value = 1;
    if (!w->have_value) {
        writer_clear(w);
        return sw__fail(err, SW_E_NOMEM, "avro: %s", avro_strerror());
    }
    return SW_OK;
}

sw_rc
sw__avro_add_writer(sw_avro *a, int32_t id, const char *writer_schema_json,
                    sw_err *err)
{
    avro_schema_t s = NULL;
    int i;
    sw_rc rc;

    for (i = 0; i < a->n; i++) {
        if (a->w[i].id == id)
            return sw__fail(err, SW_E_INVAL,
                            "avro: writer schema %d given twice", (int)id);
    }
    if (a->n == MAX_WRITERS)
        return sw__fail(err, SW_E_INVAL, "avro: more than %d writer schemas",
                        MAX_WRITERS);
    if ((rc = parse(writer_schema_json, &s, "writer", err)) != SW_OK)
        return rc;
    rc = check_resolves(a, s, id, err);
    if (rc == SW_OK && (rc = writer_init(&a->w[a->n], s, id, err)) == SW_OK)
        a->n++;
    avro_schema_decref(s);
    return rc;
}

/* One Avro value as JSON; NULL for null (a missing value). Types that
 * have no column (records, arrays, maps, fixed) become an empty array, so
 * that a field holding one is a wrong-type dead letter. */
static json_t *
to_json(avro_value_t *v)
{
    switch (avro_value_get_type(v)) {
    case AVRO_STRING:
    case AVRO_BYTES: {
        const void *p = NULL;
        size_t n = 0;

        if (avro_value_get_type(v) == AVRO_STRING) {
            const char *s = NULL;

            avro_value_get_string(v, &s, &n);
            p = s;
            n = n > 0 ? n - 1 : 0; /* the size counts the NUL */
        } else {
            avro_value_get_bytes(v, &p, &n);
        }
        return json_stringn_nocheck(p ? p : "", n);
    }
    case AVRO_INT32: {
        int32_t x = 0;

        avro_value_get_int(v, &x);
        return json_integer(x);
    }
    case AVRO_INT64: {
        int64_t x = 0;

        avro_value_get_long(v, &x);
        return json_integer((json_int_t)x);
    }
    case AVRO_FLOAT: {
        float x = 0;

        avro_value_get_float(v, &x);
        return json_real(x);
    }
    case AVRO_DOUBLE: {
        double x = 0;

        avro_value_get_double(v, &x);
        return json_real(x);
    }
    case AVRO_BOOLEAN: {
        int x = 0;

        avro_value_get_boolean(v, &x);
        return json_boolean(x);
    }
    case AVRO_ENUM: {
        int x = 0;
        const char *s;

        avro_value_get_enum(v, &x);
        s = avro_schema_enum_get(avro_value_get_schema(v), x);
        return json_string(s ? s : "");
    }
    case AVRO_UNION: {
        avro_value_t b;

        if (avro_value_get_current_branch(v, &b) != 0)
            return NULL;
        return to_json(&b);
    }
    case AVRO_NULL:
        return NULL;
    default:
        return json_array();
    }
}

/* libavro allocates the length a string, bytes or array block declares
 * before it looks at how many bytes remain (a 12-byte message declaring
 * a 10 MB string cost 10 MB, never freed on the error path), so each
 * message is first walked here against its writer schema: every length,
 * count, branch and symbol index is checked against what remains. A
 * message that passes is one libavro reads without asking for more
 * memory than the message's own size implies. */
typedef struct cursor {
    const unsigned char *p, *end;
} cursor;

#define WALK_DEPTH 64

/* A zig-zag varint of at most max_bytes (5 for int, 10 for long). */
static int
walk_varint(cursor *c, int max_bytes, int64_t *out)
{
    uint64_t v = 0;
    int i;

    for (i = 0; i < max_bytes && c->p < c->end; i++) {
        unsigned char b = *c->p++;

        v |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            *out = (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
            return 0;
        }
    }
    return -1;
}

static int
walk_skip(cursor *c, int64_t n)
{
    if (n < 0 || n > c->end - c->p)
        return -1;
    c->p += n;
    return 0;
}

static int walk(avro_schema_t s, cursor *c, int depth);

/* Arrays and maps come in blocks: a count (negative: a byte size
 * follows), its items, and a zero count at the end. An item takes at
 * least one byte here, so no block may claim more items than bytes
 * remain (an array of nulls longer than its message is refused: event
 * columns hold no arrays, and such a record would be a dead letter
 * anyway). */
static int
walk_blocks(avro_schema_t item, int is_map, cursor *c, int depth)
{
    for (;;) {
        int64_t count, size, i;

        if (walk_varint(c, 10, &count) != 0)
            return -1;
        if (count == 0)
            return 0;
        if (count < 0) {
            if (count == INT64_MIN || walk_varint(c, 10, &size) != 0 ||
                size < 0 || size > c->end - c->p)
                return -1;
            count = -count;
        }
        if (count > c->end - c->p)
            return -1;
        for (i = 0; i < count; i++) {
            int64_t len;

            if (is_map && (walk_varint(c, 10, &len) != 0 ||
                           walk_skip(c, len) != 0))
                return -1;
            if (walk(item, c, depth + 1) != 0)
                return -1;
        }
    }
}

static int
walk(avro_schema_t s, cursor *c, int depth)
{
    int64_t v;
    size_t i, n;

    if (depth > WALK_DEPTH)
        return -1;
    switch (avro_typeof(s)) {
    case AVRO_NULL:
        return 0;
    case AVRO_BOOLEAN:
        if (c->p == c->end || *c->p > 1)
            return -1;
        c->p++;
        return 0;
    case AVRO_INT32:
        return walk_varint(c, 5, &v) != 0 || v != (int32_t)v ? -1 : 0;
    case AVRO_INT64:
        return walk_varint(c, 10, &v);
    case AVRO_FLOAT:
        return walk_skip(c, 4);
    case AVRO_DOUBLE:
        return walk_skip(c, 8);
    case AVRO_STRING:
    case AVRO_BYTES:
        return walk_varint(c, 10, &v) != 0 ? -1 : walk_skip(c, v);
    case AVRO_FIXED:
        return walk_skip(c, avro_schema_fixed_size(s));
    case AVRO_ENUM:
        return walk_varint(c, 10, &v) != 0 || v < 0 ||
                       v >= avro_schema_enum_number_of_symbols(s)
                   ? -1
                   : 0;
    case AVRO_UNION:
        if (walk_varint(c, 10, &v) != 0 || v < 0 ||
            (uint64_t)v >= avro_schema_union_size(s))
            return -1;
        return walk(avro_schema_union_branch(s, (int)v), c, depth + 1);
    case AVRO_RECORD:
        n = avro_schema_record_size(s);
        for (i = 0; i < n; i++) {
            if (walk(avro_schema_record_field_get_by_index(s, (int)i), c,
                     depth + 1) != 0)
                return -1;
        }
        return 0;
    case AVRO_ARRAY:
        return walk_blocks(avro_schema_array_items(s), 0, c, depth);
    case AVRO_MAP:
        return walk_blocks(avro_schema_map_values(s), 1, c, depth);
    case AVRO_LINK:
        return walk(avro_schema_link_target(s), c, depth + 1);
    default:
        return -1;
    }
}

json_t *
sw__avro_to_json(sw_avro *a, const unsigned char *p, size_t n, int *why)
{
    writer *w;
    json_t *o, *d;
    const char *name;
    size_t i, count = 0, used = 0;
    int k = 0;

    *why = SW_DEAD_NOT_AVRO;
    if (a->framing) {
        int32_t id;

        if (n < 5 || p[0] != 0)
            return NULL;
        id = (int32_t)((uint32_t)p[1] << 24 | (uint32_t)p[2] << 16 |
                       (uint32_t)p[3] << 8 | p[4]);
        for (k = 0; k < a->n && a->w[k].id != id; k++)
            ;
        if (k == a->n) {
            *why = SW_DEAD_UNKNOWN_SCHEMA;
            return NULL;
        }
        p += 5;
        n -= 5;
    } else if (a->n == 0) {
        /* unframed, no writer given: written with the reader schema */
        sw_err err;

        if (writer_init(&a->w[0], a->schema, -1, &err) != SW_OK)
            return NULL;
        a->n = 1;
    }
    w = &a->w[k];
    {
        cursor c = {p, p + n};

        /* a record must use the whole message: bytes left over mean
         * another schema wrote it */
        if (walk(w->schema, &c, 0) != 0 || c.p != c.end)
            return NULL;
    }
    avro_value_reset(&w->value);
    avro_reader_memory_set_source(a->reader, (const char *)p, (int64_t)n);
    /* the walk and libavro agree on where the record ends (avro-c cannot
     * say where a memory reader stopped, so the encoded size is compared) */
    if (avro_value_read(a->reader, &w->value) != 0 ||
        avro_value_sizeof(&w->value, &used) != 0 || used != n)
        return NULL;
    if ((o = json_object()) == NULL)
        return NULL;
    avro_value_get_size(&w->value, &count);
    for (i = 0; i < count; i++) {
        avro_value_t f;
        json_t *j;

        name = NULL;
        if (avro_value_get_by_index(&w->value, i, &f, &name) != 0)
            continue;
        j = to_json(&f);
        if (j != NULL)
            json_object_set_new(o, name, j);
    }
    json_object_foreach(a->defaults, name, d)
    {
        if (json_object_get(o, name) == NULL)
            json_object_set(o, name, d);
    }
    *why = -1;
    return o;
}

#else /* !SW_HAVE_AVRO */
#include "sw_avro.h"

sw_rc
sw__avro_new(const char *reader_schema_json, int framing, sw_avro **out,
             sw_err *err)
{
    (void)reader_schema_json, (void)framing;
    *out = NULL;
    return sw__fail(err, SW_E_UNSUPPORTED, "avro: built without libavro");
}

sw_rc
sw__avro_add_writer(sw_avro *a, int32_t id, const char *writer_schema_json,
                    sw_err *err)
{
    (void)a, (void)id, (void)writer_schema_json;
    return sw__fail(err, SW_E_UNSUPPORTED, "avro: built without libavro");
}

json_t *
sw__avro_to_json(sw_avro *a, const unsigned char *p, size_t n, int *why)
{
    (void)a, (void)p, (void)n;
    *why = SW_DEAD_NOT_AVRO;
    return NULL;
}

void
sw__avro_free(sw_avro *a)
{
    (void)a;
}
#endif
