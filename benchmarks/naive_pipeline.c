/* The naive C loop benchmarks/pipeline.py measures streamwise against: one
 * open-addressing hash table of per-user state, the benchmark spec's ten
 * updates per event, and the event's ten feature values written out (what
 * a feature pipeline is for, and what streamwise's push returns) into one
 * buffer of 1,000,000 rows reused batch after batch; written the obvious
 * way, with nothing streamwise has to offer (no spec, no schema, no event
 * time order checks, no watermark, no checkpointable layout, no missing
 * values).
 *
 *     cc -O2 -o naive_pipeline naive_pipeline.c -lm
 *     naive_pipeline EVENTS_FILE N KEYS_HINT
 *
 * EVENTS_FILE holds N int64 times (us), then N int64 users, N float64
 * amounts and N int8 clicks, little-endian. Prints "seconds keys checksum"
 * for the loop alone (the file read is outside the time; the checksum of
 * the features keeps the compiler from dropping them). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
    int64_t user;           /* -1: empty slot */
    int64_t n, last_t, window, clicks;
    double sum, mean, m2, min, max, last, decayed, window_sum;
} state;

static uint64_t
mix(uint64_t x) /* splitmix64's finalizer */
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

static state *table;
static uint64_t cap, used;

static state *
slot(int64_t user)
{
    uint64_t i = mix((uint64_t)user) & (cap - 1);

    while (table[i].user != -1 && table[i].user != user)
        i = (i + 1) & (cap - 1);
    return &table[i];
}

static void
grow(void)
{
    state *old = table;
    uint64_t i, n = cap;

    cap *= 2;
    table = malloc(cap * sizeof(state));
    for (i = 0; i < cap; i++)
        table[i].user = -1;
    for (i = 0; i < n; i++)
        if (old[i].user != -1)
            *slot(old[i].user) = old[i];
    free(old);
}

int
main(int argc, char **argv)
{
    const double half_life_us = 3600e6, window_us = 60e6;
    enum { BATCH = 1000000, NF = 10 };
    int64_t n, i, *ts, *users;
    double *out, check = 0;
    double *amount;
    int8_t *click;
    struct timespec t0, t1;
    FILE *f;

    if (argc != 4) {
        fprintf(stderr, "usage: naive_pipeline EVENTS_FILE N KEYS_HINT\n");
        return 2;
    }
    n = atoll(argv[2]);
    for (cap = 1024; cap < 2 * (uint64_t)atoll(argv[3]); cap *= 2)
        ;
    ts = malloc(n * 8);
    users = malloc(n * 8);
    amount = malloc(n * 8);
    click = malloc(n);
    f = fopen(argv[1], "rb");
    if (f == NULL || fread(ts, 8, n, f) != (size_t)n ||
        fread(users, 8, n, f) != (size_t)n ||
        fread(amount, 8, n, f) != (size_t)n ||
        fread(click, 1, n, f) != (size_t)n) {
        fprintf(stderr, "naive_pipeline: cannot read %lld events from %s\n",
                (long long)n, argv[1]);
        return 1;
    }
    fclose(f);
    table = malloc(cap * sizeof(state));
    for (uint64_t k = 0; k < cap; k++)
        table[k].user = -1;
    out = malloc((size_t)BATCH * NF * sizeof(double));

    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (i = 0; i < n; i++) {
        state *s = slot(users[i]);
        double x = amount[i], c = click[i], d;
        int64_t w = (int64_t)(ts[i] / window_us);

        if (s->user == -1) {
            if (2 * (used + 1) > cap) {
                grow();
                s = slot(users[i]);
            }
            memset(s, 0, sizeof(*s));
            s->user = users[i];
            s->min = INFINITY;
            s->max = -INFINITY;
            s->last_t = ts[i];
            s->window = w;
            used++;
        }
        s->n++;                                 /* count */
        s->sum += x;                            /* sum */
        d = x - s->mean;                        /* mean, var (Welford) */
        s->mean += d / (double)s->n;
        s->m2 += d * (x - s->mean);
        if (x < s->min)                         /* min, max, last */
            s->min = x;
        if (x > s->max)
            s->max = x;
        s->last = x;
        s->decayed = s->decayed *               /* decayed sum, 1 h */
                         exp2(-(double)(ts[i] - s->last_t) / half_life_us) +
                     c;
        s->last_t = ts[i];
        s->clicks += click[i];                  /* Beta-smoothed rate */
        if (w != s->window) {                   /* 1-minute tumbling sum */
            s->window = w;
            s->window_sum = 0;
        }
        s->window_sum += c;
        {                                       /* the event's features */
            double *o = out + (i % BATCH) * NF;

            o[0] = (double)s->n;
            o[1] = s->sum;
            o[2] = s->mean;
            o[3] = s->n > 1 ? s->m2 / (double)(s->n - 1) : 0.0;
            o[4] = s->min;
            o[5] = s->max;
            o[6] = s->last;
            o[7] = s->decayed;
            o[8] = (1.0 + (double)s->clicks) / (31.0 + (double)s->n);
            o[9] = s->window_sum;
        }
        if (i % BATCH == BATCH - 1 || i == n - 1)
            check += out[(i % BATCH) * NF + 1];
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("%.6f %llu %.17g\n",
           (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (t1.tv_nsec - t0.tv_nsec),
           (unsigned long long)used, check);
    return 0;
}
