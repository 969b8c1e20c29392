/* SPDX-License-Identifier: MIT */
/*
 * sw_thread.c - a parallel for over chunks, for the training kernels.
 *
 * Chunks are handed out in order from an atomic counter, so threads that
 * finish early take more; a chunk's result never depends on which thread
 * ran it, which is what keeps results independent of the thread count.
 * Threads are created per call: the kernels that use this run for
 * milliseconds to seconds per call, against microseconds for a
 * pthread_create. Threads wait on nothing and never spin.
 */
#include <math.h>
#include <pthread.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sw_internal.h"

typedef struct job {
    sw_chunk_fn fn;
    void *ctx;
    int64_t n_chunks;
    int64_t next; /* atomic: the next chunk to hand out */
} job;

typedef struct worker {
    job *j;
    int thread;
} worker;

static void
drain(job *j, int thread)
{
    for (;;) {
        int64_t c = __atomic_fetch_add(&j->next, 1, __ATOMIC_RELAXED);

        if (c >= j->n_chunks)
            return;
        j->fn(j->ctx, c, thread);
    }
}

static void *
run_worker(void *arg)
{
    worker *w = arg;

    drain(w->j, w->thread);
    return NULL;
}

int
sw__n_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);

    return n < 1 ? 1 : n > SW_MAX_THREADS ? SW_MAX_THREADS : (int)n;
}

sw_rc
sw__parallel(int n_threads, int64_t n_chunks, sw_chunk_fn fn, void *ctx,
             sw_err *err)
{
    pthread_t tid[SW_MAX_THREADS];
    worker w[SW_MAX_THREADS];
    job j = {fn, ctx, n_chunks, 0};
    int t, started = 0;

    if (n_threads < 1)
        n_threads = 1;
    if (n_threads > SW_MAX_THREADS)
        n_threads = SW_MAX_THREADS;
    if (n_threads > n_chunks)
        n_threads = n_chunks > 0 ? (int)n_chunks : 1;
    for (t = 1; t < n_threads; t++) {
        w[t].j = &j;
        w[t].thread = t;
        if (pthread_create(&tid[t], NULL, run_worker, &w[t]) != 0)
            break;
        started++;
    }
    drain(&j, 0); /* the calling thread is thread 0 */
    for (t = 1; t <= started; t++)
        pthread_join(tid[t], NULL);
    (void)err; /* a thread that failed to start just leaves more work */
    return SW_OK;
}

/* A pool of threads kept for a whole training run, for kernels called too
 * often to start threads each time (a tree's histograms and split
 * searches). Workers sleep on a condition variable between jobs: nothing
 * spins, so a pool on a busy machine costs its owner nothing but the
 * wake-ups. The caller runs chunks too, and chunks are taken in order from
 * an atomic counter, as in sw__parallel. */
struct sw_pool {
    pthread_mutex_t mu;
    pthread_cond_t go, done;
    int started, stop;
    uint64_t generation; /* a new job when it changes */
    int busy;            /* workers still on the current job */
    int64_t serial;      /* jobs left to run in the caller alone */
    sw_pacer pace;       /* the way of the current unit, when paced */
    int64_t unit_t0;     /* when it began (us); -1 outside a unit */
    job j;
    pthread_t tid[SW_MAX_THREADS];
    struct pool_seat {
        struct sw_pool *p;
        int thread;
    } seat[SW_MAX_THREADS];
};

static void *
pool_worker(void *arg)
{
    struct pool_seat *w = arg;
    sw_pool *p = w->p;
    uint64_t seen = 0;

    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->stop && p->generation == seen)
            pthread_cond_wait(&p->go, &p->mu);
        if (p->stop)
            break;
        seen = p->generation;
        pthread_mutex_unlock(&p->mu);
        drain(&p->j, w->thread);
        pthread_mutex_lock(&p->mu);
        if (--p->busy == 0)
            pthread_cond_signal(&p->done);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

sw_rc
sw__pool_new(int n_threads, sw_pool **out, sw_err *err)
{
    sw_pool *p = sw__calloc(1, sizeof(*p));
    int t;

    *out = NULL;
    if (p == NULL)
        return sw__fail(err, SW_E_NOMEM, "threads: out of memory");
    n_threads = n_threads < 1                ? 1
                : n_threads > SW_MAX_THREADS ? SW_MAX_THREADS
                                             : n_threads;
    sw__pacer_init(&p->pace);
    p->unit_t0 = -1;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->go, NULL);
    pthread_cond_init(&p->done, NULL);
    for (t = 1; t < n_threads; t++) {
        p->seat[t].p = p;
        p->seat[t].thread = t;
        if (pthread_create(&p->tid[t], NULL, pool_worker, &p->seat[t]) != 0)
            break; /* fewer threads: the caller does more */
        p->started++;
    }
    *out = p;
    return SW_OK;
}

static int64_t
now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* A worker that another process keeps off its core holds up the chunk it
 * took for a whole time slice (3 ms and more) while the caller waits: when
 * the caller has waited more than 2 ms for one, the next 256 jobs run in
 * the caller alone, and then the pool is tried again. Most chunks take
 * well under 1 ms; a tree's leaf splits computed ahead can take a few, so
 * an uneven job trips this too (1-3 times a fit here, a few trees on one
 * thread): telling the two apart by the workers' CPU time was slower on
 * this machine. Who runs a chunk never changes its result. */
void
sw__pool_run(sw_pool *p, int64_t n_chunks, sw_chunk_fn fn, void *ctx)
{
    int64_t t0;

    if (p == NULL || p->started == 0 || n_chunks <= 1 || p->serial > 0) {
        job j = {fn, ctx, n_chunks, 0};

        if (p != NULL && p->serial > 0)
            p->serial--;
        drain(&j, 0);
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->j = (job){fn, ctx, n_chunks, 0};
    p->busy = p->started;
    p->generation++;
    pthread_cond_broadcast(&p->go);
    pthread_mutex_unlock(&p->mu);
    drain(&p->j, 0);
    t0 = now_us();
    pthread_mutex_lock(&p->mu);
    while (p->busy > 0)
        pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
    if (now_us() - t0 > 2000)
        p->serial = 256;
}

enum {
    PACE_EVERY = 16, /* units between tries of the way not chosen... */
    PACE_MOST = 64   /* ...up to this many while it keeps losing clearly */
};

void
sw__pacer_init(sw_pacer *pc)
{
    memset(pc, 0, sizeof(*pc));
    pc->every = PACE_EVERY;
    pc->next_try = -1;
}

/* The median of a way's last times (the mean of two): one unit slowed by
 * a passing process does not turn the choice. */
static double
pace_typical(const sw_pacer *pc, int solo)
{
    const double *t = pc->took[solo];

    if (pc->n_took[solo] == 1)
        return t[0];
    if (pc->n_took[solo] == 2)
        return (t[0] + t[1]) / 2;
    return fmax(fmin(t[0], t[1]), fmin(fmax(t[0], t[1]), t[2]));
}

int
sw__pacer_next(sw_pacer *pc)
{
    int best;

    pc->trying = 0;
    if (pc->units == 0) {
        /* the first unit warms caches and pages for both ways: untimed */
        pc->solo = 0;
    } else if (pc->n_took[0] < 2 || pc->n_took[1] < 2) {
        /* two of each to begin with, alternating */
        pc->solo = pc->n_took[1] < pc->n_took[0];
    } else {
        best = pace_typical(pc, 1) < pace_typical(pc, 0);
        if (pc->next_try < 0)
            pc->next_try = pc->units + pc->every;
        pc->trying = pc->units >= pc->next_try;
        pc->solo = pc->trying ? !best : best;
    }
    return pc->solo;
}

void
sw__pacer_took(sw_pacer *pc, double us)
{
    int w = pc->solo;

    if (pc->units++ == 0)
        return;
    memmove(pc->took[w] + 1, pc->took[w], 2 * sizeof(double));
    pc->took[w][0] = us;
    if (pc->n_took[w] < 3)
        pc->n_took[w]++;
    if (pc->trying) {
        /* a way that lost by a fifth is tried half as often, down to
         * PACE_MOST; one that came close, every PACE_EVERY units */
        double other = pace_typical(pc, !w);

        pc->every = us > 1.2 * other ? (pc->every * 2 < PACE_MOST
                                             ? pc->every * 2
                                             : PACE_MOST)
                                     : PACE_EVERY;
        pc->next_try = pc->units + pc->every;
    }
}

int
sw__pool_unit_begin(sw_pool *p)
{
    if (p == NULL || p->started == 0)
        return 0;
    sw__pacer_next(&p->pace);
    p->serial = 0; /* a unit's way is the pacer's alone */
    p->unit_t0 = now_us();
    return p->pace.solo;
}

void
sw__pool_unit_end(sw_pool *p)
{
    if (p == NULL || p->unit_t0 < 0)
        return;
    sw__pacer_took(&p->pace, (double)(now_us() - p->unit_t0));
    p->unit_t0 = -1;
}

int
sw__pool_threads(const sw_pool *p)
{
    return p == NULL ? 1 : p->started + 1;
}

void
sw__pool_free(sw_pool *p)
{
    int t;

    if (p == NULL)
        return;
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_broadcast(&p->go);
    pthread_mutex_unlock(&p->mu);
    for (t = 1; t <= p->started; t++)
        pthread_join(p->tid[t], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->go);
    pthread_cond_destroy(&p->done);
    sw__free(p);
}
