/* SPDX-License-Identifier: MIT */
/*
 * test_thread.c - the pool's pacer: which way (workers or the caller
 * alone) it runs units in, fed unit times it did not measure itself, and
 * a real pool saying the way it chose.
 */
#include <string.h>

#include "sw_internal.h"
#include "sw_test.h"

/* Run n units whose times are pool_us with the workers and solo_us alone;
 * returns how many of the last `last` units ran alone. */
static int
pace(sw_pacer *pc, int n, double pool_us, double solo_us, int last)
{
    int k, solo = 0;

    for (k = 0; k < n; k++) {
        int s = sw__pacer_next(pc);

        sw__pacer_took(pc, s ? solo_us : pool_us);
        if (k >= n - last)
            solo += s;
    }
    return solo;
}

static void
test_pacer_ways(void)
{
    sw_pacer pc;
    int k, way[5];

    /* a first unit untimed, then two of each way, alternating */
    sw__pacer_init(&pc);
    for (k = 0; k < 5; k++) {
        way[k] = sw__pacer_next(&pc);
        sw__pacer_took(&pc, 100.0);
    }
    CHECK(way[0] == 0 && way[1] == 0 && way[2] == 1 && way[3] == 0 &&
          way[4] == 1);

    /* the workers help (a quiet machine): nearly every unit uses them,
     * and the caller alone is still tried now and then */
    sw__pacer_init(&pc);
    k = pace(&pc, 500, 60.0, 100.0, 400);
    CHECK(k >= 2 && k <= 12);

    /* another process holds the second core: the caller alone */
    sw__pacer_init(&pc);
    k = pace(&pc, 500, 130.0, 100.0, 400);
    CHECK(k >= 388 && k < 400);

    /* within a fifth: the other way is tried every 16 units */
    sw__pacer_init(&pc);
    k = pace(&pc, 500, 110.0, 100.0, 400);
    CHECK(k >= 370 && k <= 380);

    /* the load comes: away from the workers within a few units */
    sw__pacer_init(&pc);
    pace(&pc, 100, 60.0, 100.0, 0);
    CHECK(pace(&pc, 10, 130.0, 100.0, 7) == 7);

    /* while it stays, the workers are tried less and less often: at
     * most two tries in the last 100 of 200 units (every 64 by then) */
    k = pace(&pc, 200, 130.0, 100.0, 100);
    CHECK(k >= 98 && k < 100);

    /* and goes: back to them within two tries (at most 64 + 16 units) */
    k = pace(&pc, 200, 60.0, 100.0, 100);
    CHECK(k <= 2);

    /* one slow unit does not turn the choice */
    sw__pacer_init(&pc);
    pace(&pc, 40, 60.0, 100.0, 0);
    sw__pacer_next(&pc);
    CHECK(pc.solo == 0);
    sw__pacer_took(&pc, 1000.0);
    CHECK(sw__pacer_next(&pc) == 0);
}

/* A real pool says each unit's way as its pacer chose it; a pool of one
 * thread, or none, has nothing to pace and says "with the workers" (the
 * caller then has none to use). */
static void
test_pool_says_the_way(void)
{
    sw_pool *p = NULL;
    sw_err err = {0};
    int u, way[5];

    CHECK_RC(sw__pool_new(2, &p, &err), SW_OK, &err);
    if (p == NULL)
        return;
    for (u = 0; u < 5; u++) {
        way[u] = sw__pool_unit_begin(p);
        sw__pool_unit_end(p);
    }
    CHECK(way[0] == 0 && way[1] == 0 && way[2] == 1 && way[3] == 0 &&
          way[4] == 1);
    sw__pool_free(p);
    CHECK(sw__pool_unit_begin(NULL) == 0);
    sw__pool_unit_end(NULL);
    CHECK_RC(sw__pool_new(1, &p, &err), SW_OK, &err);
    CHECK(sw__pool_unit_begin(p) == 0);
    sw__pool_unit_end(p);
    sw__pool_free(p);
}

void
test_thread(void)
{
    test_pacer_ways();
    test_pool_says_the_way();
}
