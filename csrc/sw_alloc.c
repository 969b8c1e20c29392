/* SPDX-License-Identifier: MIT */
/*
 * sw_alloc.c - the only file of the core library that calls malloc() and
 * free() (the runner, a program of its own, manages its buffers itself).
 *
 * Routing every allocation through here gives tests two levers, in the
 * spirit of SQLite's fault simulator: make the n-th allocation fail, and
 * count allocations not yet freed. The levers are compiled into every build
 * (a relaxed atomic per call costs nothing measurable) so that the C tests,
 * the runner and the Python extension all link one and the same archive.
 *
 * jansson's allocations come here too (json_set_alloc_funcs, set before
 * main or when the extension loads): the fault loop reaches the spec and
 * schema parsers, a json_t leaked shows in the live count, and a string
 * from json_dumps is released with sw__free.
 */
#define _GNU_SOURCE /* MAP_ANONYMOUS, MADV_HUGEPAGE, mremap */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <jansson.h>

#include "sw_internal.h"

static long fail_countdown = -1; /* -1: never fail */
static long live;                /* allocated and not yet freed */
static long refused;             /* allocations that returned NULL */

void
sw__alloc_fail_after(long n)
{
    __atomic_store_n(&fail_countdown, n, __ATOMIC_RELAXED);
}

long
sw__alloc_live(void)
{
    return __atomic_load_n(&live, __ATOMIC_RELAXED);
}

long
sw__alloc_failures(void)
{
    return __atomic_load_n(&refused, __ATOMIC_RELAXED);
}

static int
should_fail(void)
{
    long n = __atomic_load_n(&fail_countdown, __ATOMIC_RELAXED);

    if (n < 0)
        return 0;
    if (n == 0) {
        __atomic_add_fetch(&refused, 1, __ATOMIC_RELAXED);
        return 1;
    }
    __atomic_sub_fetch(&fail_countdown, 1, __ATOMIC_RELAXED);
    return 0;
}

void *
sw__malloc(size_t n)
{
    void *p;

    if (should_fail())
        return NULL;
    p = malloc(n ? n : 1);
    __atomic_add_fetch(p != NULL ? &live : &refused, 1, __ATOMIC_RELAXED);
    return p;
}

/* malloc(count * size), or NULL if the product overflows size_t. */
void *
sw__alloc_array(size_t count, size_t size)
{
    if (size != 0 && count > SIZE_MAX / size)
        return NULL;
    return sw__malloc(count * size);
}

/* Zeroed memory. calloc itself, not malloc + memset: fresh pages from the
 * system come zeroed, so a large table is not touched (and faulted in)
 * twice. */
void *
sw__calloc(size_t count, size_t size)
{
    void *p;

    if (size != 0 && count > SIZE_MAX / size)
        return NULL;
    if (should_fail())
        return NULL;
    p = calloc(count ? count : 1, size ? size : 1);
    __atomic_add_fetch(p != NULL ? &live : &refused, 1, __ATOMIC_RELAXED);
    return p;
}

/* realloc(p, count * size); on failure p is untouched and still owned by
 * the caller. */
void *
sw__realloc_array(void *p, size_t count, size_t size)
{
    void *q;
    size_t n;

    if (size != 0 && count > SIZE_MAX / size)
        return NULL;
    n = count * size;
    if (should_fail())
        return NULL;
    q = realloc(p, n ? n : 1);
    if (q == NULL)
        __atomic_add_fetch(&refused, 1, __ATOMIC_RELAXED);
    else if (p == NULL)
        __atomic_add_fetch(&live, 1, __ATOMIC_RELAXED);
    return q;
}

char *
sw__strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = sw__malloc(n);

    if (p != NULL)
        memcpy(p, s, n);
    return p;
}

void
sw__free(void *p)
{
    if (p == NULL)
        return;
    __atomic_sub_fetch(&live, 1, __ATOMIC_RELAXED);
    free(p);
}

/* Below this, malloc's own pages do; above, a mapping of whole 2 MiB pages
 * (the kernel hands them out zeroed, as calloc would). */
#define BIG (4u << 20)
#define HUGE_PAGE ((size_t)2 << 20)

static size_t
big_len(size_t n)
{
    return (n + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1);
}

/* A 2 MiB-aligned mapping of len bytes (a multiple of 2 MiB), NULL if
 * none: over-map by one huge page and trim. */
static void *
map_aligned(size_t len, int prot)
{
    unsigned char *m;
    uintptr_t a;

    m = mmap(NULL, len + HUGE_PAGE, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        return NULL;
    a = ((uintptr_t)m + HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1);
    if (a > (uintptr_t)m)
        munmap(m, a - (uintptr_t)m);
    if ((uintptr_t)m + HUGE_PAGE > a)
        munmap((void *)(a + len), (uintptr_t)m + HUGE_PAGE - a);
    return (void *)a;
}

void *
sw__calloc_big(size_t n)
{
    size_t len;
    void *a;

    if (n < BIG)
        return sw__calloc(1, n);
    if (should_fail())
        return NULL;
    len = big_len(n);
    a = map_aligned(len, PROT_READ | PROT_WRITE);
    if (a == NULL)
        return NULL;
#ifdef MADV_HUGEPAGE
    madvise(a, len, MADV_HUGEPAGE); /* advice: fine if refused */
#endif
    __atomic_add_fetch(&live, 1, __ATOMIC_RELAXED);
    return a;
}

void *
sw__realloc_big(void *p, size_t old_n, size_t n)
{
    void *q, *a;

    if (p == NULL)
        return sw__calloc_big(n);
    if (n <= old_n || (old_n >= BIG && big_len(n) == big_len(old_n)))
        return p;
    if (old_n < BIG) {
        /* small to big (or small to small): copy once */
        if ((q = sw__calloc_big(n)) == NULL)
            return NULL;
        memcpy(q, p, old_n);
        sw__free_big(p, old_n);
        return q;
    }
    if (should_fail())
        return NULL;
    /* move the pages, not their bytes: mremap onto an aligned
     * reservation keeps the huge pages whole and copies nothing; the
     * grown tail reads as zeros like any fresh mapping */
    a = map_aligned(big_len(n), PROT_NONE);
    if (a == NULL)
        return NULL;
    q = mremap(p, big_len(old_n), big_len(n), MREMAP_MAYMOVE | MREMAP_FIXED, a);
    if (q == MAP_FAILED) {
        munmap(a, big_len(n));
        return NULL;
    }
#ifdef MADV_HUGEPAGE
    madvise(q, big_len(n), MADV_HUGEPAGE);
#endif
    return q;
}

void
sw__free_big(void *p, size_t n)
{
    if (p == NULL)
        return;
    if (n < BIG) {
        sw__free(p);
        return;
    }
    __atomic_sub_fetch(&live, 1, __ATOMIC_RELAXED);
    munmap(p, big_len(n));
}

static void *
json_alloc(size_t n)
{
    return sw__malloc(n);
}

static void
json_release(void *p)
{
    sw__free(p);
}

/* jansson keeps one pair of functions per process; set it before anything
 * parses (libavro's schema code, which uses jansson, comes here too). */
__attribute__((constructor)) static void
route_jansson(void)
{
    json_set_alloc_funcs(json_alloc, json_release);
}

sw_rc
sw__json_parse(const char *text, size_t len, const char *what, sw_rc bad,
               struct json_t **out, sw_err *err)
{
    long before = sw__alloc_failures();
    json_error_t jerr;

    *out = text == NULL ? NULL
           : len == (size_t)-1 ? json_loads(text, 0, &jerr)
                               : json_loadb(text, len, 0, &jerr);
    if (*out != NULL)
        return SW_OK;
    if (sw__alloc_failures() != before)
        return sw__fail(err, SW_E_NOMEM, "%s: out of memory", what);
    if (text == NULL)
        return sw__fail(err, bad, "%s: not JSON (none given)", what);
    return sw__fail(err, bad, "%s: not JSON (line %d, column %d: %s)", what,
                    jerr.line, jerr.column, jerr.text);
}
