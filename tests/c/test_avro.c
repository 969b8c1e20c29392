/* SPDX-License-Identifier: MIT */
/*
 * test_avro.c - hostile Avro messages: a length, count, branch or symbol
 * that the message's bytes cannot hold is a not_avro dead letter before
 * libavro allocates what it declares (libavro 1.11 allocated a declared
 * 10 MB string for a 12-byte message and never freed it). libavro's own
 * allocator hook counts what it asks for.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sw_test.h"

#ifdef SW_HAVE_AVRO
#include <avro.h>

#include "io/sw_avro.h"

static size_t live, biggest;

static void *
counting(void *ud, void *ptr, size_t osize, size_t nsize)
{
    (void)ud;
    live = live - osize + nsize;
    if (nsize > biggest)
        biggest = nsize;
    if (nsize == 0) {
        free(ptr);
        return NULL;
    }
    return realloc(ptr, nsize);
}

static const char *WRITER =
    "{\"type\": \"record\", \"name\": \"E\", \"fields\": ["
    "{\"name\": \"ts\", \"type\": \"long\"},"
    "{\"name\": \"user\", \"type\": \"string\"},"
    "{\"name\": \"amount\", \"type\": \"double\"},"
    "{\"name\": \"n\", \"type\": \"int\"},"
    "{\"name\": \"c\", \"type\": {\"type\": \"enum\", \"name\": \"C\", "
    "\"symbols\": [\"a\", \"b\"]}},"
    "{\"name\": \"promo\", \"type\": [\"null\", \"boolean\"]},"
    "{\"name\": \"tags\", \"type\": {\"type\": \"array\", \"items\": "
    "\"string\"}}]}";

/* Zig-zag varint, as Avro writes int and long. */
static size_t
varint(unsigned char *p, int64_t v)
{
    uint64_t z = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
    size_t n = 0;

    while (z >= 0x80) {
        p[n++] = (unsigned char)(z | 0x80);
        z >>= 7;
    }
    p[n++] = (unsigned char)z;
    return n;
}

typedef struct msg {
    unsigned char b[64];
    size_t n;
} msg;

static void
put(msg *m, const void *p, size_t n)
{
    memcpy(m->b + m->n, p, n);
    m->n += n;
}

/* A message field by field; a length or index given as `over` replaces
 * the honest one at field `at` (-1: none). */
static msg
record(int at, int64_t over)
{
    msg m = {{0}, 0};
    double amount = 12.5;

    m.n += varint(m.b + m.n, 1600000000000LL);                 /* ts */
    m.n += varint(m.b + m.n, at == 1 ? over : 3);              /* user */
    put(&m, "bob", 3);
    put(&m, &amount, 8);                                       /* amount */
    if (at == 3) {                                             /* n > int */
        unsigned char big[] = {0xff, 0xff, 0xff, 0xff, 0x7f};
        put(&m, big, sizeof(big));
    } else {
        m.n += varint(m.b + m.n, 7);
    }
    m.n += varint(m.b + m.n, at == 4 ? over : 1);              /* c */
    m.n += varint(m.b + m.n, at == 5 ? over : 1);              /* promo */
    m.b[m.n++] = 1;
    m.n += varint(m.b + m.n, at == 6 ? over : 1);              /* tags */
    m.n += varint(m.b + m.n, 1);
    put(&m, "x", 1);
    m.n += varint(m.b + m.n, 0);
    return m;
}

void
test_avro(void)
{
    struct avro_allocator_state saved = AVRO_CURRENT_ALLOCATOR;
    sw_avro *a = NULL;
    sw_err err = {0};
    json_t *o;
    msg m;
    size_t before;
    int why, i;
    static const struct {
        int at;
        int64_t over;
    } bad[] = {
        {1, 10 * 1000 * 1000},   /* a 10 MB string in a small message */
        {1, INT64_C(13) << 30},  /* 13 GB */
        {1, -5},                 /* negative length */
        {3, 0},                  /* an int wider than 32 bits */
        {4, 2},                  /* enum symbol 2 of 2 */
        {5, 7},                  /* union branch 7 of 2 */
        {5, -1},
        {6, INT64_C(1) << 40},   /* an array block of 2^40 items */
        {6, INT64_MIN / 2},      /* negative count, then a byte size */
    };

    avro_set_allocator(counting, NULL);
    CHECK_RC(sw__avro_new(WRITER, 0, &a, &err), SW_OK, &err);
    if (a == NULL)
        goto out;

    m = record(-1, 0);
    o = sw__avro_to_json(a, m.b, m.n, &why);
    CHECK(o != NULL && why == -1);
    if (o != NULL) {
        CHECK(strcmp(json_string_value(json_object_get(o, "user")), "bob") ==
              0);
        CHECK(json_integer_value(json_object_get(o, "n")) == 7);
        CHECK(json_is_true(json_object_get(o, "promo")));
        json_decref(o);
    }

    before = live;
    biggest = 0;
    for (i = 0; i < (int)(sizeof(bad) / sizeof(bad[0])); i++) {
        int rep;

        m = record(bad[i].at, bad[i].over);
        for (rep = 0; rep < 200; rep++) {
            o = sw__avro_to_json(a, m.b, m.n, &why);
            if (o != NULL || why != SW_DEAD_NOT_AVRO) {
                fprintf(stderr, "crafted Avro message %d was accepted\n", i);
                CHECK(0);
                json_decref(o);
                break;
            }
        }
        CHECK(live == before);
    }
    /* a message no longer than 64 bytes never costs a large block */
    CHECK(biggest < 4096);

    /* cut anywhere, a good message is a dead letter and costs nothing */
    m = record(-1, 0);
    for (i = 0; i < (int)m.n; i++) {
        o = sw__avro_to_json(a, m.b, (size_t)i, &why);
        CHECK(o == NULL && why == SW_DEAD_NOT_AVRO);
    }
    /* and a trailing byte means another schema wrote it */
    m.b[m.n++] = 0;
    CHECK(sw__avro_to_json(a, m.b, m.n, &why) == NULL);
    CHECK(live == before);
    sw__avro_free(a);
out:
    avro_set_allocator(saved.alloc, saved.user_data);
}

#else

void
test_avro(void)
{
    fprintf(stderr, "test_avro: built without libavro\n");
}

#endif
