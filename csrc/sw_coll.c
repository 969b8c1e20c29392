/* SPDX-License-Identifier: MIT */
/*
 * sw_coll.c - the collective of a distributed fit: its ranks joined in a
 * ring of TCP connections (each rank sends to the next and receives from
 * the previous), with the operations training needs: an integer sum (all
 * of it on every rank, or each rank its share: histograms), a maximum and
 * a gather of variable-sized blocks.
 *
 * The caller makes the connections (streamwise.dask does, through Dask,
 * as LightGBM's Dask module does for its own ring) and hands over the two
 * sockets; this file only moves bytes, so that the C core stays free of
 * any cluster manager. Sums are of integers, exact in any order: every
 * rank ends with the same bits whatever the ring's shape.
 *
 * Every wait is bounded: no progress for timeout_ms, a closed connection
 * or a socket error fails the call naming the rank on the other side, and
 * a rank that fails closes its sockets so that its neighbours fail at
 * once instead of at their timeout (a hang is the complaint most often
 * raised against both peers' distributed training).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "sw_internal.h"

struct sw_coll {
    int rank, size;
    int fd_prev, fd_next; /* -1 with one rank */
    int timeout_ms;
    int broken; /* a call failed: the ring is out of step, refuse more */
    void *tmp;  /* reduce scratch */
    size_t cap_tmp;
    sw_coll_stats stats;
};

enum { HELLO_MAGIC = 0x73776331 }; /* "swc1" */

static double
now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int
prev_rank(const sw_coll *c)
{
    return (c->rank + c->size - 1) % c->size;
}

static int
next_rank(const sw_coll *c)
{
    return (c->rank + 1) % c->size;
}

/* Send slen bytes to the next rank while receiving rlen from the previous
 * one: both at once, so that no rank waits on a full socket buffer while
 * its neighbour waits on it. */
static sw_rc
exchange(sw_coll *c, const void *sbuf, size_t slen, void *rbuf, size_t rlen,
         sw_err *err)
{
    size_t sent = 0, got = 0;

    while (sent < slen || got < rlen) {
        struct pollfd p[2];
        int np = 0, is = -1, ir = -1, r;

        if (sent < slen) {
            p[np] = (struct pollfd){c->fd_next, POLLOUT, 0};
            is = np++;
        }
        if (got < rlen) {
            p[np] = (struct pollfd){c->fd_prev, POLLIN, 0};
            ir = np++;
        }
        r = poll(p, (nfds_t)np, c->timeout_ms);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return sw__fail(err, SW_E_IO, "collective: poll: %s",
                            strerror(errno));
        if (r == 0) {
            if (got < rlen)
                return sw__fail(err, SW_E_IO,
                                "collective: rank %d: no data from rank %d "
                                "for %d ms (stalled or gone)",
                                c->rank, prev_rank(c), c->timeout_ms);
            return sw__fail(err, SW_E_IO,
                            "collective: rank %d: rank %d took no data for %d "
                            "ms (stalled or gone)",
                            c->rank, next_rank(c), c->timeout_ms);
        }
        if (is >= 0 && p[is].revents != 0) {
            ssize_t k = send(c->fd_next, (const char *)sbuf + sent,
                             slen - sent, MSG_NOSIGNAL | MSG_DONTWAIT);

            if (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK &&
                errno != EINTR)
                return sw__fail(err, SW_E_IO,
                                "collective: rank %d: sending to rank %d: %s "
                                "(the rank left the fit)",
                                c->rank, next_rank(c), strerror(errno));
            if (k > 0) {
                sent += (size_t)k;
                c->stats.bytes_sent += k;
            }
        }
        if (ir >= 0 && p[ir].revents != 0) {
            ssize_t k = recv(c->fd_prev, (char *)rbuf + got, rlen - got,
                             MSG_DONTWAIT);

            if (k == 0)
                return sw__fail(err, SW_E_IO,
                                "collective: rank %d: rank %d closed the "
                                "connection (the rank left the fit)",
                                c->rank, prev_rank(c));
            if (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK &&
                errno != EINTR)
                return sw__fail(err, SW_E_IO,
                                "collective: rank %d: receiving from rank %d: "
                                "%s (the rank left the fit)",
                                c->rank, prev_rank(c), strerror(errno));
            if (k > 0) {
                got += (size_t)k;
                c->stats.bytes_received += k;
            }
        }
    }
    return SW_OK;
}

/* A call's bookkeeping around its exchanges: a failed call leaves the
 * ring out of step, so the handle refuses the calls after it and shuts
 * its sockets, which fails the neighbours' waits at once. */
static sw_rc
begin(sw_coll *c, sw_err *err)
{
    if (c->broken)
        return sw__fail(err, SW_E_STATE,
                        "collective: an earlier call failed; the ring is "
                        "out of step");
    c->stats.calls++;
    return SW_OK;
}

static sw_rc
end(sw_coll *c, sw_rc rc, double t0)
{
    c->stats.seconds += now_s() - t0;
    if (rc != SW_OK && c->size > 1) {
        c->broken = 1;
        shutdown(c->fd_prev, SHUT_RDWR);
        shutdown(c->fd_next, SHUT_RDWR);
    }
    return rc;
}

static sw_rc
grow_tmp(sw_coll *c, size_t bytes, sw_err *err)
{
    void *p;

    if (bytes <= c->cap_tmp)
        return SW_OK;
    p = sw__realloc_array(c->tmp, bytes, 1);
    if (p == NULL)
        return sw__fail(err, SW_E_NOMEM, "collective: out of memory");
    c->tmp = p;
    c->cap_tmp = bytes;
    return SW_OK;
}

sw_rc
sw_coll_new(int rank, int size, int fd_prev, int fd_next, int timeout_ms,
            sw_coll **out, sw_err *err)
{
    sw_coll *c;
    int32_t hello[3], got[3];
    sw_rc rc;

    *out = NULL;
    if (size < 1 || size > SW_COLL_MAX_RANKS || rank < 0 || rank >= size)
        return sw__fail(err, SW_E_INVAL,
                        "collective: rank %d of %d; ranks are 0 .. size - 1, "
                        "and at most %d",
                        rank, size, SW_COLL_MAX_RANKS);
    if (timeout_ms <= 0)
        return sw__fail(err, SW_E_INVAL,
                        "collective: timeout_ms is %d; a positive bound is "
                        "needed",
                        timeout_ms);
    if (size > 1 && (fd_prev < 0 || fd_next < 0))
        return sw__fail(err, SW_E_INVAL,
                        "collective: %d ranks need a socket to each "
                        "neighbour",
                        size);
    c = sw__calloc(1, sizeof(*c));
    if (c == NULL)
        return sw__fail(err, SW_E_NOMEM, "collective: out of memory");
    c->rank = rank;
    c->size = size;
    c->timeout_ms = timeout_ms;
    c->fd_prev = c->fd_next = -1;
    if (size > 1) {
        /* copies of the caller's sockets: it keeps (and closes) its own */
        c->fd_prev = fcntl(fd_prev, F_DUPFD_CLOEXEC, 0);
        c->fd_next = fcntl(fd_next, F_DUPFD_CLOEXEC, 0);
        if (c->fd_prev < 0 || c->fd_next < 0) {
            rc = sw__fail(err, SW_E_IO, "collective: dup: %s", strerror(errno));
            sw_coll_free(c);
            return rc;
        }
        /* both ends of the ring checked: the previous rank is who it
         * should be, in a ring of the same size */
        hello[0] = HELLO_MAGIC;
        hello[1] = rank;
        hello[2] = size;
        rc = exchange(c, hello, sizeof(hello), got, sizeof(got), err);
        if (rc == SW_OK &&
            (got[0] != HELLO_MAGIC || got[1] != prev_rank(c) || got[2] != size))
            rc = sw__fail(err, SW_E_INVAL,
                          "collective: rank %d of %d expected rank %d before "
                          "it, and got a peer saying rank %d of %d",
                          rank, size, prev_rank(c), (int)got[1], (int)got[2]);
        if (rc != SW_OK) {
            sw_coll_free(c);
            return rc;
        }
    }
    *out = c;
    return SW_OK;
}

void
sw_coll_free(sw_coll *c)
{
    if (c == NULL)
        return;
    if (c->fd_prev >= 0)
        close(c->fd_prev);
    if (c->fd_next >= 0)
        close(c->fd_next);
    sw__free(c->tmp);
    sw__free(c);
}

int
sw_coll_rank(const sw_coll *c)
{
    return c ? c->rank : 0;
}

int
sw_coll_size(const sw_coll *c)
{
    return c ? c->size : 1;
}

void
sw_coll_get_stats(const sw_coll *c, sw_coll_stats *s)
{
    memset(s, 0, sizeof(*s));
    if (c != NULL)
        *s = c->stats;
}

typedef enum { OP_SUM_I64, OP_MAX_F64 } reduce_op;


/* The reduce-scatter phase of a ring over chunks k = [bounds[k],
 * bounds[k + 1]): at step s rank r sends chunk r - s - shift and folds in
 * the chunk r - s - shift - 1 it receives, so after size - 1 steps it
 * holds the whole reduction of chunk r + 1 - shift (mod size). */
static sw_rc
ring_reduce(sw_coll *c, void *buf, const int64_t *bounds, int shift,
            reduce_op op, sw_err *err)
{
    int64_t i, max = 0;
    int s, P = c->size, r = c->rank;
    sw_rc rc;

    for (s = 0; s < P; s++)
        max = bounds[s + 1] - bounds[s] > max ? bounds[s + 1] - bounds[s]
                                              : max;
    if ((rc = grow_tmp(c, (size_t)(max + 1) * 8, err)) != SW_OK)
        return rc;
    for (s = 0; s < P - 1; s++) {
        int ks = (r - s - shift + 2 * P) % P;
        int kr = (r - s - shift - 1 + 2 * P) % P;
        int64_t len = bounds[kr + 1] - bounds[kr];

        rc = exchange(c, (char *)buf + bounds[ks] * 8,
                      (size_t)(bounds[ks + 1] - bounds[ks]) * 8, c->tmp,
                      (size_t)len * 8, err);
        if (rc != SW_OK)
            return rc;
        if (op == OP_SUM_I64) {
            int64_t *d = (int64_t *)buf + bounds[kr];
            const int64_t *t = c->tmp;

            for (i = 0; i < len; i++)
                d[i] += t[i];
        } else {
            double *d = (double *)buf + bounds[kr];
            const double *t = c->tmp;

            for (i = 0; i < len; i++)
                d[i] = t[i] > d[i] || d[i] != d[i] ? t[i] : d[i];
        }
    }
    return SW_OK;
}

/* Ring allreduce of n 8-byte values: the reduce-scatter phase over equal
 * chunks, then an allgather of the chunks; each rank sends and receives
 * 2 (size - 1) / size of the buffer. */
static sw_rc
allreduce(sw_coll *c, void *buf, int64_t n, reduce_op op, sw_err *err)
{
    int64_t bounds[SW_COLL_MAX_RANKS + 1];
    double t0 = now_s();
    int k, s, P = c->size, r = c->rank;
    sw_rc rc;

    if ((rc = begin(c, err)) != SW_OK)
        return rc;
    if (P == 1 || n == 0)
        return end(c, SW_OK, t0);
    for (k = 0; k <= P; k++)
        bounds[k] = n * k / P;
    if ((rc = ring_reduce(c, buf, bounds, 0, op, err)) != SW_OK)
        return end(c, rc, t0);
    for (s = 0; s < P - 1; s++) {
        int ks = (r + 1 - s + P) % P, kr = (r - s + P) % P;

        rc = exchange(c, (char *)buf + bounds[ks] * 8,
                      (size_t)(bounds[ks + 1] - bounds[ks]) * 8,
                      (char *)buf + bounds[kr] * 8,
                      (size_t)(bounds[kr + 1] - bounds[kr]) * 8, err);
        if (rc != SW_OK)
            return end(c, rc, t0);
    }
    return end(c, SW_OK, t0);
}

/* Ring reduce-scatter of int64 sums: rank r ends with the sum over the
 * ranks of v[bounds[r], bounds[r + 1]); the rest of v is left partial
 * (the reduce-scatter phase shifted by one chunk, so rank r keeps chunk
 * r). */
sw_rc
sw_coll_reduce_scatter_i64(sw_coll *c, int64_t *v, const int64_t *bounds,
                           sw_err *err)
{
    double t0 = now_s();
    sw_rc rc;

    if (c == NULL)
        return SW_OK;
    if ((rc = begin(c, err)) != SW_OK)
        return rc;
    if (c->size == 1)
        return end(c, SW_OK, t0);
    return end(c, ring_reduce(c, v, bounds, 1, OP_SUM_I64, err), t0);
}

sw_rc
sw_coll_sum_i64(sw_coll *c, int64_t *v, int64_t n, sw_err *err)
{
    if (c == NULL)
        return SW_OK;
    return allreduce(c, v, n, OP_SUM_I64, err);
}

sw_rc
sw_coll_max_f64(sw_coll *c, double *v, int64_t n, sw_err *err)
{
    if (c == NULL)
        return SW_OK;
    return allreduce(c, v, n, OP_MAX_F64, err);
}

sw_rc
sw_coll_gather(sw_coll *c, const void *mine, int64_t len, void **all,
               int64_t *lens, sw_err *err)
{
    double t0 = now_s();
    int64_t *at = NULL, total = 0;
    int s, k, P = c ? c->size : 1, r = c ? c->rank : 0;
    char *buf = NULL;
    sw_rc rc = SW_OK;

    *all = NULL;
    if (c != NULL && (rc = begin(c, err)) != SW_OK)
        return rc;
    lens[r] = len;
    for (s = 0; s < P - 1 && rc == SW_OK; s++)
        rc = exchange(c, &lens[(r - s + P) % P], 8, &lens[(r - s - 1 + P) % P],
                      8, err);
    if (rc == SW_OK && (at = sw__alloc_array((size_t)P + 1, 8)) == NULL)
        rc = sw__fail(err, SW_E_NOMEM, "collective: out of memory");
    for (k = 0; rc == SW_OK && k < P; k++) {
        if (lens[k] < 0)
            rc = sw__fail(err, SW_E_FORMAT,
                          "collective: rank %d sent a block of %lld bytes", k,
                          (long long)lens[k]);
        at[k] = total;
        total += lens[k];
    }
    if (rc == SW_OK) {
        at[P] = total;
        if ((buf = sw__alloc_array(total > 0 ? (size_t)total : 1, 1)) == NULL)
            rc = sw__fail(err, SW_E_NOMEM,
                          "collective: out of memory for %lld bytes",
                          (long long)total);
    }
    if (rc == SW_OK) {
        if (len > 0)
            memcpy(buf + at[r], mine, (size_t)len);
        for (s = 0; s < P - 1 && rc == SW_OK; s++) {
            int ks = (r - s + P) % P, kr = (r - s - 1 + P) % P;

            rc = exchange(c, buf + at[ks], (size_t)lens[ks], buf + at[kr],
                          (size_t)lens[kr], err);
        }
        if (rc == SW_OK)
            *all = buf;
        else
            sw__free(buf);
    }
    sw__free(at);
    return c != NULL ? end(c, rc, t0) : rc;
}
