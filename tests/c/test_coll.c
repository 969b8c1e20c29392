/* SPDX-License-Identifier: MIT */
/*
 * test_coll.c - the collective (sw_coll) over rings of socketpairs, one
 * thread per rank: sums, maxima and gathers agree on every rank; a rank
 * that leaves or stalls makes the others fail with an error naming it,
 * within the timeout; and a GBDT fit cut into 3 shards gives the model
 * of one fit on all the rows, byte for byte.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "sw_test.h"

enum { MAXR = 4 };

typedef struct ring {
    int P;
    int prev[MAXR], next[MAXR]; /* rank k's sockets */
} ring;

static void
ring_make(ring *r, int P)
{
    int k, sv[MAXR][2];

    r->P = P;
    for (k = 0; k < P; k++)
        CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv[k]) == 0);
    for (k = 0; k < P; k++) {
        r->next[k] = sv[k][0];
        r->prev[k] = sv[(k + P - 1) % P][1];
    }
}

static void
ring_close(ring *r)
{
    int k;

    for (k = 0; k < r->P; k++) {
        close(r->next[k]);
        close(r->prev[k]);
    }
}

typedef struct job {
    ring *r;
    int rank, timeout_ms;
    int mode; /* 0: reductions; 1: rank 1 leaves; 2: rank 1 stalls */
    sw_rc rc;
    sw_err err;
    int64_t sums[1000];
    int64_t rs[10], rs_lo, rs_hi; /* reduce-scattered: this rank's share */
    double maxes[3];
    char *gathered;
    int64_t lens[MAXR];
} job;

static void *
run(void *arg)
{
    job *j = arg;
    sw_coll *c = NULL;
    void *all = NULL;
    char mine[16];
    int64_t i;

    j->rc = sw_coll_new(j->rank, j->r->P, j->r->prev[j->rank],
                        j->r->next[j->rank], j->timeout_ms, &c, &j->err);
    if (j->rc != SW_OK)
        return NULL;
    if (j->mode == 1 && j->rank == 1) { /* gone before the first sum */
        sw_coll_free(c);
        shutdown(j->r->prev[1], SHUT_RDWR);
        shutdown(j->r->next[1], SHUT_RDWR);
        return NULL;
    }
    if (j->mode == 2 && j->rank == 1) { /* stalls past the timeout */
        struct timespec ts = {0, 0};

        ts.tv_sec = j->timeout_ms * 3 / 1000;
        ts.tv_nsec = (long)(j->timeout_ms * 3 % 1000) * 1000000L;
        nanosleep(&ts, NULL);
        sw_coll_free(c);
        return NULL;
    }
    for (i = 0; i < 1000; i++)
        j->sums[i] = (int64_t)(j->rank + 1) * i - 7;
    j->maxes[0] = j->rank;
    j->maxes[1] = -j->rank;
    j->maxes[2] = j->rank == 1 ? NAN : 0.5;
    j->rc = sw_coll_sum_i64(c, j->sums, 1000, &j->err);
    if (j->rc == SW_OK)
        j->rc = sw_coll_max_f64(c, j->maxes, 3, &j->err);
    for (i = 0; i < 10; i++)
        j->rs[i] = (int64_t)(j->rank + 1) * 100 + i;
    {
        /* uneven shares, rank 0's empty when there are 3 or more ranks */
        int64_t bounds[MAXR + 1];
        int k;

        bounds[0] = 0;
        for (k = 1; k <= j->r->P; k++)
            bounds[k] = k == 1 && j->r->P > 2 ? 0 : 10 * k / j->r->P;
        if (j->rc == SW_OK)
            j->rc = sw_coll_reduce_scatter_i64(c, j->rs, bounds, &j->err);
        j->rs_lo = bounds[j->rank];
        j->rs_hi = bounds[j->rank + 1];
    }
    memset(mine, 'a' + j->rank, sizeof(mine));
    if (j->rc == SW_OK)
        j->rc = sw_coll_gather(c, mine, j->rank + 1, &all, j->lens, &j->err);
    j->gathered = all;
    sw_coll_free(c);
    return NULL;
}

static void
run_ring(int P, int mode, int timeout_ms, job *jobs)
{
    pthread_t th[MAXR];
    ring r;
    int k;

    ring_make(&r, P);
    for (k = 0; k < P; k++) {
        memset(&jobs[k], 0, sizeof(jobs[k]));
        jobs[k].r = &r;
        jobs[k].rank = k;
        jobs[k].mode = mode;
        jobs[k].timeout_ms = timeout_ms;
        pthread_create(&th[k], NULL, run, &jobs[k]);
    }
    for (k = 0; k < P; k++)
        pthread_join(th[k], NULL);
    ring_close(&r);
}

static void
test_reductions(void)
{
    int P, k, i;

    for (P = 1; P <= MAXR; P++) {
        job jobs[MAXR];

        run_ring(P, 0, 5000, jobs);
        for (k = 0; k < P; k++) {
            int64_t want_sum = 0;
            int64_t at = 0;

            CHECK_RC(jobs[k].rc, SW_OK, &jobs[k].err);
            for (i = 0; i < P; i++)
                want_sum += (int64_t)(i + 1) * 999 - 7;
            CHECK(jobs[k].sums[999] == want_sum);
            CHECK(jobs[k].sums[0] == -7 * P);
            CHECK(jobs[k].maxes[0] == P - 1);
            CHECK(jobs[k].maxes[1] == 0);
            CHECK(jobs[k].maxes[2] == 0.5); /* NaN loses */
            for (i = (int)jobs[k].rs_lo; i < jobs[k].rs_hi; i++)
                CHECK(jobs[k].rs[i] == 100 * P * (P + 1) / 2 + (int64_t)i * P);
            CHECK(k != 0 || P < 3 || jobs[k].rs_hi == 0);
            for (i = 0; i < P && jobs[k].gathered; i++) {
                CHECK(jobs[k].lens[i] == i + 1);
                CHECK(jobs[k].gathered[at] == 'a' + i);
                CHECK(jobs[k].gathered[at + i] == 'a' + i);
                at += jobs[k].lens[i];
            }
            sw_buffer_free(jobs[k].gathered);
        }
    }
}

/* A rank that leaves: the others fail at once (not at the 20 s
 * timeout), and a neighbour names it. */
static void
test_rank_leaves(void)
{
    job jobs[3];
    int k;

    run_ring(3, 1, 20000, jobs);
    for (k = 0; k < 3; k++) {
        if (k == 1)
            continue;
        CHECK(jobs[k].rc == SW_E_IO || jobs[k].rc == SW_E_STATE);
        CHECK(strstr(jobs[k].err.msg, "rank 1") != NULL ||
              strstr(jobs[k].err.msg, "rank 2") != NULL ||
              strstr(jobs[k].err.msg, "rank 0") != NULL);
        sw_buffer_free(jobs[k].gathered);
    }
    /* the first to notice is a neighbour of rank 1 and names it; the
     * other may see that neighbour give up first (which rank is really
     * gone, streamwise.dask learns from Dask) */
    CHECK(strstr(jobs[0].err.msg, "to rank 1") != NULL ||
          strstr(jobs[2].err.msg, "rank 1 closed") != NULL ||
          strstr(jobs[2].err.msg, "from rank 1") != NULL);
}

/* A rank that stalls: the others fail after the timeout. */
static void
test_rank_stalls(void)
{
    job jobs[2];

    run_ring(2, 2, 200, jobs);
    CHECK_RC(jobs[0].rc, SW_E_IO, &jobs[0].err);
    CHECK(strstr(jobs[0].err.msg, "rank 1") != NULL);
    CHECK(strstr(jobs[0].err.msg, "200 ms") != NULL);
}

static void
test_bad_args(void)
{
    sw_coll *c;
    sw_err err = {0};

    CHECK_RC(sw_coll_new(2, 2, -1, -1, 100, &c, &err), SW_E_INVAL, &err);
    CHECK_RC(sw_coll_new(0, 2, -1, -1, 100, &c, &err), SW_E_INVAL, &err);
    CHECK(strstr(err.msg, "socket") != NULL);
    CHECK_RC(sw_coll_new(0, 1, -1, -1, 0, &c, &err), SW_E_INVAL, &err);
}

/* ---- a GBDT fit in shards ----------------------------------------- */

enum { GN = 6000, GF = 5 };

typedef struct shard_job {
    ring *r;
    int rank;
    const double *X, *y;
    int64_t lo, hi, *ids;
    sw_conf *conf;
    sw_model *out;
    sw_rc rc;
    sw_err err;
} shard_job;

static void *
run_shard(void *arg)
{
    shard_job *j = arg;
    sw_coll *c = NULL;
    sw_rows v;

    memset(&v, 0, sizeof(v));
    v.layout = SW_DENSE;
    v.dtype = SW_F64;
    v.n_rows = j->hi - j->lo;
    v.n_cols = v.row_stride = GF;
    v.data = j->X + j->lo * GF;
    j->rc = sw_coll_new(j->rank, j->r->P, j->r->prev[j->rank],
                        j->r->next[j->rank], 10000, &c, &j->err);
    if (j->rc == SW_OK)
        j->rc = sw_gbdt_fit_shard(j->conf, &v, j->y + j->lo, j->ids + j->lo,
                                  c, NULL, NULL, NULL, NULL, NULL, NULL,
                                  &j->out, &j->err);
    sw_coll_free(c);
    return NULL;
}

static void
test_gbdt_shards(void)
{
    double *X = malloc(sizeof(double) * GN * GF), *y = malloc(sizeof(double) * GN);
    int64_t *ids = malloc(sizeof(int64_t) * GN), i, f;
    uint64_t s = 12345;
    sw_conf *conf = NULL;
    sw_model *one = NULL;
    sw_rows v;
    sw_err err = {0};
    unsigned char *b1 = NULL, *b3 = NULL;
    size_t n1 = 0, n3 = 0;
    shard_job jobs[3];
    pthread_t th[3];
    ring r;
    int k;

    for (i = 0; i < GN; i++) {
        double sum = 0;

        for (f = 0; f < GF; f++) {
            s = s * 6364136223846793005ULL + 1442695040888963407ULL;
            X[i * GF + f] = (double)(s >> 11) * 0x1.0p-53 - 0.5;
            if ((s >> 3) % 50 == 0)
                X[i * GF + f] = NAN;
            else
                sum += X[i * GF + f] * (f + 1);
        }
        y[i] = sum > 0.1;
        ids[i] = i;
    }
    CHECK_RC(sw_conf_new(&conf, &err), SW_OK, &err);
    sw_conf_set(conf, "gbdt.n_estimators", "15", &err);
    sw_conf_set(conf, "gbdt.bagging_fraction", "0.8", &err);
    sw_conf_set(conf, "gbdt.feature_fraction", "0.8", &err);
    sw_conf_set(conf, "gbdt.bin_sample", "1000", &err);
    sw_conf_set(conf, "gbdt.seed", "5", &err);
    memset(&v, 0, sizeof(v));
    v.layout = SW_DENSE;
    v.dtype = SW_F64;
    v.n_rows = GN;
    v.n_cols = v.row_stride = GF;
    v.data = X;
    CHECK_RC(sw_gbdt_fit(conf, &v, y, NULL, NULL, NULL, NULL, NULL, NULL, &one,
                         &err),
             SW_OK, &err);
    ring_make(&r, 3);
    for (k = 0; k < 3; k++) {
        memset(&jobs[k], 0, sizeof(jobs[k]));
        jobs[k] = (shard_job){&r, k, X, y, GN * k / 3, GN * (k + 1) / 3, ids,
                              conf, NULL, SW_OK, {0}};
        pthread_create(&th[k], NULL, run_shard, &jobs[k]);
    }
    for (k = 0; k < 3; k++)
        pthread_join(th[k], NULL);
    ring_close(&r);
    CHECK(one != NULL);
    for (k = 0; k < 3; k++) {
        CHECK_RC(jobs[k].rc, SW_OK, &jobs[k].err);
        if (one == NULL || jobs[k].out == NULL)
            continue;
        CHECK_RC(sw_model_save_buffer(one, &b1, &n1, &err), SW_OK, &err);
        CHECK_RC(sw_model_save_buffer(jobs[k].out, &b3, &n3, &err), SW_OK,
                 &err);
        /* the header's model id: the SHA-256 of the MODEL section (the
         * files differ in their creation time) */
        CHECK(n1 == n3 && b1 && b3 && memcmp(b1 + 56, b3 + 56, 16) == 0);
        sw_buffer_free(b1);
        sw_buffer_free(b3);
        b1 = b3 = NULL;
        sw_model_free(jobs[k].out);
    }
    /* the same rows in overlapping shards are refused, naming the id */
    ring_make(&r, 2);
    for (k = 0; k < 2; k++) {
        jobs[k] = (shard_job){&r, k, X, y, k * 100, k * 100 + 3000, ids,
                              conf, NULL, SW_OK, {0}};
        pthread_create(&th[k], NULL, run_shard, &jobs[k]);
    }
    for (k = 0; k < 2; k++)
        pthread_join(th[k], NULL);
    ring_close(&r);
    CHECK_RC(jobs[0].rc, SW_E_INVAL, &jobs[0].err);
    CHECK(strstr(jobs[0].err.msg, "repeated") != NULL);
    sw_model_free(jobs[0].out);
    sw_model_free(jobs[1].out);
    sw_model_free(one);
    sw_conf_free(conf);
    free(X);
    free(y);
    free(ids);
}

void
test_coll(void)
{
    test_bad_args();
    test_reductions();
    test_rank_leaves();
    test_rank_stalls();
    test_gbdt_shards();
}
