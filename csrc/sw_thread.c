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
#include <pthread.h>
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
sw_n_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);

    return n < 1 ? 1 : n > 256 ? 256 : (int)n;
}

sw_rc
sw_parallel(int n_threads, int64_t n_chunks, sw_chunk_fn fn, void *ctx,
            sw_err *err)
{
    pthread_t tid[256];
    worker w[256];
    job j = {fn, ctx, n_chunks, 0};
    int t, started = 0;

    if (n_threads < 1)
        n_threads = 1;
    if (n_threads > 256)
        n_threads = 256;
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
