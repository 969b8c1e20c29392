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
 */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS, MADV_HUGEPAGE */
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "sw_internal.h"

static long fail_countdown = -1; /* -1: never fail */
static long live;                /* allocated and not yet freed */

void
sw_alloc_fail_after(long n)
{
    __atomic_store_n(&fail_countdown, n, __ATOMIC_RELAXED);
}

long
sw_alloc_live(void)
{
    return __atomic_load_n(&live, __ATOMIC_RELAXED);
}

static int
should_fail(void)
{
    long n = __atomic_load_n(&fail_countdown, __ATOMIC_RELAXED);

    if (n < 0)
        return 0;
    if (n == 0)
        return 1;
    __atomic_sub_fetch(&fail_countdown, 1, __ATOMIC_RELAXED);
    return 0;
}

void *
sw_malloc(size_t n)
{
    void *p;

    if (should_fail())
        return NULL;
    p = malloc(n ? n : 1);
    if (p != NULL)
        __atomic_add_fetch(&live, 1, __ATOMIC_RELAXED);
    return p;
}

/* malloc(count * size), or NULL if the product overflows size_t. */
void *
sw_alloc_array(size_t count, size_t size)
{
    if (size != 0 && count > SIZE_MAX / size)
        return NULL;
    return sw_malloc(count * size);
}

/* Zeroed memory. calloc itself, not malloc + memset: fresh pages from the
 * system come zeroed, so a large table is not touched (and faulted in)
 * twice. */
void *
sw_calloc(size_t count, size_t size)
{
    void *p;

    if (size != 0 && count > SIZE_MAX / size)
        return NULL;
    if (should_fail())
        return NULL;
    p = calloc(count ? count : 1, size ? size : 1);
    if (p != NULL)
        __atomic_add_fetch(&live, 1, __ATOMIC_RELAXED);
    return p;
}

/* realloc(p, count * size); on failure p is untouched and still owned by
 * the caller. */
void *
sw_realloc_array(void *p, size_t count, size_t size)
{
    void *q;
    size_t n;

    if (size != 0 && count > SIZE_MAX / size)
        return NULL;
    n = count * size;
    if (should_fail())
        return NULL;
    q = realloc(p, n ? n : 1);
    if (q != NULL && p == NULL)
        __atomic_add_fetch(&live, 1, __ATOMIC_RELAXED);
    return q;
}

char *
sw_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = sw_malloc(n);

    if (p != NULL)
        memcpy(p, s, n);
    return p;
}

void
sw_free(void *p)
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

void *
sw_calloc_big(size_t n)
{
    size_t len;
    unsigned char *m;
    uintptr_t a;

    if (n < BIG)
        return sw_calloc(1, n);
    if (should_fail())
        return NULL;
    len = (n + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1);
    /* over-map by one huge page and trim, for 2 MiB alignment */
    m = mmap(NULL, len + HUGE_PAGE, PROT_READ | PROT_WRITE,
             MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        return NULL;
    a = ((uintptr_t)m + HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1);
    if (a > (uintptr_t)m)
        munmap(m, a - (uintptr_t)m);
    if ((uintptr_t)m + HUGE_PAGE > a)
        munmap((void *)(a + len), (uintptr_t)m + HUGE_PAGE - a);
#ifdef MADV_HUGEPAGE
    madvise((void *)a, len, MADV_HUGEPAGE); /* advice: fine if refused */
#endif
    __atomic_add_fetch(&live, 1, __ATOMIC_RELAXED);
    return (void *)a;
}

void
sw_free_big(void *p, size_t n)
{
    if (p == NULL)
        return;
    if (n < BIG) {
        sw_free(p);
        return;
    }
    __atomic_sub_fetch(&live, 1, __ATOMIC_RELAXED);
    munmap(p, (n + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1));
}
