/* SPDX-License-Identifier: MIT */
/*
 * sw_pipeline_io.c - checkpoints of a pipeline: its spec, its state, its
 * watermark, the events it still buffers, and the caller's source position,
 * in one file written atomically and sealed by an XXH3-64 checksum.
 *
 * Layout (little-endian 8-byte words unless said): magic "SWCKPT\r\n",
 * u32 version (2), u32 0, spec hash, spec length + JSON, position length +
 * bytes, whether a privacy secret was set and its 16-byte fingerprint
 * (version 2 on), counters, the watermark, the first event time and the
 * partitions' latest times (version 2 on), pending events (count, record size,
 * the records word by word), tables (count; per table its capacity, entries,
 * block, then each occupied entry: key hash, last-seen time, state doubles),
 * and last the XXH3-64 checksum (libxxhash) of all that precedes. A checkpoint
 * guards against accidents, not attackers, and XXH3 checks the hundreds of MiB
 * of a million keys in tens of milliseconds where SHA-256 needs a third of a
 * second. Restoring rebuilds the pipeline from the spec and refuses a file
 * whose spec hash, sizes or checksum do not match.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
#include <xxhash.h>

#include "sw_pipeline_int.h"

static const unsigned char magic[8] = {'S', 'W', 'C',  'K',
                                       'P', 'T', '\r', '\n'};

/* Everything before the tables: header, spec, position, fingerprint,
 * clock, buffered events, and the table count. */
static sw_rc
put_head(const sw_pipeline *p, const void *pos, size_t pos_len, sw_buf *b,
         sw_err *err)
{
    size_t spec_len = strlen(p->spec_json);
    int64_t i;
    sw_rc rc;

    if ((rc = sw__buf_put(b, magic, 8, err)) != SW_OK ||
        (rc = sw__buf_put_u32(b, 2, err)) != SW_OK ||
        (rc = sw__buf_put_u32(b, 0, err)) != SW_OK ||
        (rc = sw__buf_put_u64(b, p->spec_hash, err)) != SW_OK ||
        (rc = sw__buf_put_u64(b, spec_len, err)) != SW_OK ||
        (rc = sw__buf_put(b, p->spec_json, spec_len, err)) != SW_OK ||
        (rc = sw__buf_put_u64(b, pos_len, err)) != SW_OK ||
        (rc = sw__buf_put(b, pos, pos_len, err)) != SW_OK ||
        (rc = sw__buf_put_u64(b, (uint64_t)p->has_fingerprint, err)) != SW_OK ||
        (rc = sw__buf_put(b, p->fingerprint, SW_FINGERPRINT_BYTES, err)) !=
            SW_OK)
        return rc;
    {
        const int64_t counters[9] = {
            p->next_seq,     p->max_t,        p->now,
            p->n_late,       p->n_emitted,    p->n_invalid[1],
            p->n_invalid[2], p->n_invalid[3], p->n_invalid[4]};

        for (i = 0; i < 9 && rc == SW_OK; i++)
            rc = sw__buf_put_u64(b, (uint64_t)counters[i], err);
        if (rc == SW_OK)
            rc = sw__buf_put_u64(b, (uint64_t)p->wm, err);
        if (rc == SW_OK)
            rc = sw__buf_put_u64(b, (uint64_t)p->first_t, err);
        if (rc == SW_OK)
            rc = sw__buf_put_u64(b, (uint64_t)p->n_parts, err);
        for (i = 0; i < p->n_parts && rc == SW_OK; i++)
            rc = sw__buf_put_u64(b, (uint64_t)p->part_max[i], err);
        if (rc != SW_OK)
            return rc;
    }
    if ((rc = sw__buf_put_u64(b, (uint64_t)p->n_pend, err)) != SW_OK ||
        (rc = sw__buf_put_u64(b, (uint64_t)p->rec, err)) != SW_OK ||
        (rc = sw__buf_put_words(b, (const uint64_t *)p->pend,
                                (size_t)(p->n_pend * p->rec / 8), err)) !=
            SW_OK)
        return rc;
    return sw__buf_put_u64(b, (uint64_t)p->n_tables, err);
}

sw_rc
sw_pipeline_save_meta(const sw_pipeline *p, const void *pos, size_t pos_len,
                      unsigned char **out, size_t *len, sw_err *err)
{
    sw_buf b = {0};
    unsigned char sum[8];
    int t;
    sw_rc rc;

    *out = NULL;
    *len = 0;
    if (p == NULL || (pos == NULL && pos_len > 0))
        return sw__fail(err, SW_E_INVAL, "checkpoint: NULL argument");
    if ((rc = put_head(p, pos, pos_len, &b, err)) != SW_OK)
        goto done;
    /* the tables' shapes, without their entries */
    for (t = 0; t < p->n_tables && rc == SW_OK; t++) {
        if ((rc = sw__buf_put_u64(&b, 0, err)) == SW_OK &&
            (rc = sw__buf_put_u64(&b, 0, err)) == SW_OK)
            rc = sw__buf_put_u64(&b, (uint64_t)p->tables[t].block, err);
    }
    if (rc != SW_OK || (rc = sw__join_save(p, &b, err)) != SW_OK)
        goto done;
    sw__put_le64(sum, XXH3_64bits(b.p, b.len));
    if ((rc = sw__buf_put(&b, sum, 8, err)) != SW_OK)
        goto done;
    *out = b.p;
    *len = b.len;
    return SW_OK;
done:
    sw__buf_free(&b);
    return rc;
}

sw_rc
sw_pipeline_checkpoint(const sw_pipeline *p, const char *path, const void *pos,
                       size_t pos_len, sw_err *err)
{
    sw_buf b = {0};
    size_t *at;
    sw_part *parts;
    unsigned char sum[8];
    int t, n_at = 0;
    sw_rc rc;

    if (p == NULL || path == NULL || (pos == NULL && pos_len > 0))
        return sw__fail(err, SW_E_INVAL, "checkpoint: NULL argument");
    /* where each table's entries go in the buffer's bytes, and the file
     * as pieces: buffer, entries, buffer, ..., checksum */
    at = sw__alloc_array((size_t)p->n_tables + 1, sizeof(size_t));
    parts = sw__alloc_array(2 * (size_t)p->n_tables + 2, sizeof(sw_part));
    if (at == NULL || parts == NULL) {
        sw__free(at);
        sw__free(parts);
        return sw__fail(err, SW_E_NOMEM, "checkpoint: out of memory");
    }
    if ((rc = put_head(p, pos, pos_len, &b, err)) != SW_OK)
        goto done;
    for (t = 0; t < p->n_tables; t++) {
        const keytab *kt = &p->tables[t];

        if ((rc = sw__buf_put_u64(&b, (uint64_t)kt->cap, err)) != SW_OK ||
            (rc = sw__buf_put_u64(&b, (uint64_t)kt->n, err)) != SW_OK ||
            (rc = sw__buf_put_u64(&b, (uint64_t)kt->block, err)) != SW_OK)
            goto done;
        if (kt->n == 0)
            continue;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        /* the entries are the file's words already: written from the
         * table, not copied (hundreds of MiB at a million keys) */
        at[n_at] = b.len;
        parts[2 * n_at + 1].p = kt->e;
        parts[2 * n_at + 1].len = (size_t)(kt->n * kt->stride) * 8;
        n_at++;
#else
        rc = sw__buf_put_words(&b, kt->e, (size_t)(kt->n * kt->stride), err);
        if (rc != SW_OK)
            goto done;
#endif
    }
    if ((rc = sw__join_save(p, &b, err)) != SW_OK)
        goto done;
    /* the buffer's pieces between the tables' entries, then the sum */
    {
        XXH3_state_t *h = XXH3_createState();
        size_t from = 0;
        int k;

        if (h == NULL) {
            rc = sw__fail(err, SW_E_NOMEM, "checkpoint: out of memory");
            goto done;
        }
        XXH3_64bits_reset(h);
        for (k = 0; k <= n_at; k++) {
            size_t to = k < n_at ? at[k] : b.len;

            parts[2 * k].p = b.p + from;
            parts[2 * k].len = to - from;
            XXH3_64bits_update(h, parts[2 * k].p, parts[2 * k].len);
            if (k < n_at)
                XXH3_64bits_update(h, parts[2 * k + 1].p, parts[2 * k + 1].len);
            from = to;
        }
        sw__put_le64(sum, XXH3_64bits_digest(h));
        XXH3_freeState(h);
        parts[2 * n_at + 1].p = sum;
        parts[2 * n_at + 1].len = 8;
    }
    rc = sw__write_atomic_parts(path, parts, 2 * n_at + 2, err);
done:
    sw__free(at);
    sw__free(parts);
    sw__buf_free(&b);
    return rc;
}

static sw_rc
get_bytes(sw_cursor *c, size_t n, const unsigned char **out, sw_err *err)
{
    if (n > c->len - c->pos)
        return sw__fail(err, SW_E_FORMAT, "checkpoint: truncated at byte %zu",
                        c->pos);
    *out = c->p + c->pos;
    c->pos += n;
    return SW_OK;
}

/* The file's frame: magic and the XXH3 checksum over everything before
 * it; then a cursor over the contents and the format version. */
static sw_rc
restore_frame(const char *path, const unsigned char *buf, size_t len,
              sw_cursor *c, uint32_t *version, sw_err *err)
{
    uint32_t pad;
    sw_rc rc;

    if (len < 8 + 8 || memcmp(buf, magic, 8) != 0)
        return sw__fail(err, SW_E_FORMAT, "%s: not a streamwise checkpoint",
                        path);
    if ((uint64_t)XXH3_64bits(buf, len - 8) != sw__get_le64(buf + len - 8))
        return sw__fail(err, SW_E_FORMAT,
                        "%s: checksum mismatch (truncated or corrupt)", path);
    c->p = buf;
    c->len = len - 8;
    c->pos = 8;
    c->what = "checkpoint";
    if ((rc = sw__cur_u32(c, version, err)) != SW_OK ||
        (rc = sw__cur_u32(c, &pad, err)) != SW_OK)
        return rc;
    if (*version != 1 && *version != 2)
        return sw__fail(err, SW_E_FORMAT,
                        "%s: checkpoint version %u, this build reads 1 and 2",
                        path, *version);
    return SW_OK;
}

/* The spec, compiled again into a new pipeline, which must have the hash
 * the file recorded. */
static sw_rc
restore_spec(const char *path, sw_cursor *c, sw_pipeline **out, sw_err *err)
{
    const unsigned char *bytes = NULL;
    uint64_t hash, n;
    char *spec;
    sw_rc rc;

    if ((rc = sw__cur_u64(c, &hash, err)) != SW_OK ||
        (rc = sw__cur_u64(c, &n, err)) != SW_OK ||
        (rc = get_bytes(c, (size_t)n, &bytes, err)) != SW_OK)
        return rc;
    spec = sw__malloc((size_t)n + 1);
    if (spec == NULL)
        return sw__fail(err, SW_E_NOMEM, "restore: out of memory");
    memcpy(spec, bytes, (size_t)n);
    spec[n] = '\0';
    rc = sw_pipeline_new(spec, out, err);
    sw__free(spec);
    if (rc == SW_OK && (*out)->spec_hash != hash)
        rc = sw__fail(err, SW_E_FORMAT, "%s: the spec does not match its hash",
                      path);
    return rc;
}

/* The caller's position blob and (version 2) the privacy fingerprint. */
static sw_rc
restore_position(const char *path, sw_cursor *c, uint32_t version,
                 sw_pipeline *p, sw_err *err)
{
    const unsigned char *bytes = NULL;
    uint64_t n;
    sw_rc rc;

    if ((rc = sw__cur_u64(c, &n, err)) != SW_OK ||
        (rc = get_bytes(c, (size_t)n, &bytes, err)) != SW_OK)
        return rc;
    p->position = sw__malloc(n ? (size_t)n : 1);
    if (p->position == NULL)
        return sw__fail(err, SW_E_NOMEM, "restore: out of memory");
    memcpy(p->position, bytes, (size_t)n);
    p->position_len = (size_t)n;
    if (version >= 2) {
        uint64_t has;

        if ((rc = sw__cur_u64(c, &has, err)) != SW_OK ||
            (rc = get_bytes(c, SW_FINGERPRINT_BYTES, &bytes, err)) != SW_OK)
            return rc;
        p->has_fingerprint = has != 0;
        memcpy(p->fingerprint, bytes, SW_FINGERPRINT_BYTES);
    }
    if (p->n_private > 0 && !p->has_fingerprint)
        return sw__fail(err, SW_E_FORMAT,
                        "%s: private fields but no secret fingerprint", path);
    return SW_OK;
}

/* The counters, the watermark and each partition's latest time. */
/* A time a checkpoint may hold: never (INT64_MIN), or what push accepts;
 * lo is below 0 for the watermark (latest time less the lateness). Any
 * other value would overflow the "now - then" of a ttl or a window. */
static int
time_ok(int64_t t, int64_t lo)
{
    return t == INT64_MIN || (t >= lo && t <= TIME_MAX_US);
}

static sw_rc
restore_clock(const char *path, sw_cursor *c, uint32_t version,
              sw_pipeline *p, sw_err *err)
{
    int64_t counters[9], i;
    uint64_t n;
    sw_rc rc;

    for (i = 0; i < 9; i++) {
        if ((rc = sw__cur_i64(c, &counters[i], err)) != SW_OK)
            return rc;
        if (i != 1 && i != 2 && counters[i] < 0) /* 1, 2 are times */
            return sw__fail(err, SW_E_FORMAT, "%s: counter %lld is %lld", path,
                            (long long)i, (long long)counters[i]);
    }
    p->next_seq = counters[0];
    p->max_t = counters[1];
    p->now = counters[2];
    p->n_late = counters[3];
    p->n_emitted = counters[4];
    for (i = 0; i < 4; i++)
        p->n_invalid[i + 1] = counters[5 + i];
    if (version >= 2) {
        if ((rc = sw__cur_i64(c, &p->wm, err)) != SW_OK ||
            (rc = sw__cur_i64(c, &p->first_t, err)) != SW_OK ||
            (rc = sw__cur_u64(c, &n, err)) != SW_OK)
            return rc;
        if (n > SW_MAX_PARTITIONS || (int64_t)n < p->declared_parts)
            return sw__fail(err, SW_E_FORMAT, "%s: %llu partitions", path,
                            (unsigned long long)n);
        p->n_parts = (int)n;
        for (i = 0; i < p->n_parts; i++) {
            if ((rc = sw__cur_i64(c, &p->part_max[i], err)) != SW_OK)
                return rc;
            if (!time_ok(p->part_max[i], 0))
                return sw__fail(err, SW_E_FORMAT,
                                "%s: partition %lld's clock is %lld (expected "
                                "0..%lld)",
                                path, (long long)i, (long long)p->part_max[i],
                                (long long)TIME_MAX_US);
        }
    }
    if (!time_ok(p->max_t, 0) || !time_ok(p->now, 0) ||
        !time_ok(p->first_t, 0) || !time_ok(p->wm, -TIME_MAX_US))
        return sw__fail(err, SW_E_FORMAT,
                        "%s: a clock outside 1970..9999 (latest %lld, now "
                        "%lld, first %lld, watermark %lld)",
                        path, (long long)p->max_t, (long long)p->now,
                        (long long)p->first_t, (long long)p->wm);
    if (version < 2 && p->max_t != INT64_MIN) { /* one partition */
        p->n_parts = 1;
        p->part_max[0] = p->max_t;
        p->first_t = p->max_t; /* only its use for unseen partitions */
        p->wm = p->max_t - p->out_of_order - p->lateness;
    }
    return SW_OK;
}

/* The events the watermark had not released, each checked: the checksum
 * says the file is whole, not that it is ours, and a time outside what
 * push accepts would index windows backwards. */
static sw_rc
restore_buffered(const char *path, sw_cursor *c, sw_pipeline *p,
                 sw_err *err)
{
    uint64_t n, u;
    int64_t i;
    sw_rc rc;

    if ((rc = sw__cur_u64(c, &n, err)) != SW_OK ||
        (rc = sw__cur_u64(c, &u, err)) != SW_OK)
        return rc;
    if (u != (uint64_t)p->rec || n > (c->len - c->pos) / u)
        return sw__fail(err, SW_E_FORMAT,
                        "%s: buffered events do not fit the spec", path);
    if ((rc = sw__pipeline_reserve(p, (int64_t)n, err)) != SW_OK ||
        (rc = sw__cur_words(c, (uint64_t *)p->pend, (size_t)(n * u / 8),
                            err)) != SW_OK)
        return rc;
    for (i = 0; i < (int64_t)n; i++) {
        const int64_t *head = (const int64_t *)(p->pend + i * p->rec);

        if (head[0] < 0 || head[0] > TIME_MAX_US || head[1] < 0 ||
            head[1] >= p->next_seq)
            return sw__fail(err, SW_E_FORMAT,
                            "%s: buffered event %lld has time %lld and "
                            "arrival %lld (expected 0..%lld and 0..%lld)",
                            path, (long long)i, (long long)head[0],
                            (long long)head[1], (long long)TIME_MAX_US,
                            (long long)p->next_seq - 1);
    }
    p->n_pend = (int64_t)n;
    p->pend_unsorted = n > 1; /* drain checks, and sorts if need be */
    return SW_OK;
}

/* The key tables: every entry, each state checked against what an update
 * could have made. */
static sw_rc
restore_tables(const char *path, sw_cursor *c, sw_pipeline *p, sw_err *err)
{
    uint64_t n;
    int t;
    sw_rc rc;

    if ((rc = sw__cur_u64(c, &n, err)) != SW_OK)
        return rc;
    if (n != (uint64_t)p->n_tables)
        return sw__fail(err, SW_E_FORMAT, "%s: %llu tables, the spec has %d",
                        path, (unsigned long long)n, p->n_tables);
    for (t = 0; t < p->n_tables; t++) {
        keytab *kt = &p->tables[t];
        uint64_t cap, used, block, k;

        if ((rc = sw__cur_u64(c, &cap, err)) != SW_OK ||
            (rc = sw__cur_u64(c, &used, err)) != SW_OK ||
            (rc = sw__cur_u64(c, &block, err)) != SW_OK)
            return rc;
        if (block != (uint64_t)kt->block || used > cap ||
            (cap & (cap - 1)) != 0 ||
            used > (c->len - c->pos) / (16 + 8 * (block ? block : 1)))
            return sw__fail(err, SW_E_FORMAT,
                            "%s: table %d does not fit the spec", path, t);
        if (cap > 0 && (rc = sw__keytab_init(kt, (int64_t)cap, err)) != SW_OK)
            return rc;
        for (k = 0; k < used; k++) {
            uint64_t h, *ent;

            if ((rc = sw__cur_u64(c, &h, err)) != SW_OK)
                return rc;
            ent = sw__keytab_put_raw(kt, h);
            if (ent == NULL)
                return sw__fail(err, SW_E_FORMAT, "%s: table %d is overfull",
                                path, t);
            if ((rc = sw__cur_words(c, ent + 1, (size_t)kt->stride - 1, err)) !=
                SW_OK)
                return rc;
            if (!time_ok((int64_t)ent[1], 0))
                return sw__fail(err, SW_E_FORMAT,
                                "%s: table %d, key %llu: last seen at %lld "
                                "(expected 0..%lld)",
                                path, t, (unsigned long long)k,
                                (long long)(int64_t)ent[1],
                                (long long)TIME_MAX_US);
            if (!sw__state_valid(p, t, (const double *)(ent + 2)))
                return sw__fail(err, SW_E_FORMAT,
                                "%s: table %d, key %llu: a state no update "
                                "could have made (a distinct count of more "
                                "exact values than it holds)",
                                path, t, (unsigned long long)k);
        }
    }
    return SW_OK;
}

/* A checkpoint's bytes (named path in messages) back into a pipeline. */
static sw_rc
restore_bytes(const char *path, const unsigned char *buf, size_t len,
              sw_pipeline **out, sw_err *err)
{
    sw_pipeline *p = NULL;
    sw_cursor c;
    uint32_t version = 0;
    sw_rc rc;

    *out = NULL;
    if ((rc = restore_frame(path, buf, len, &c, &version, err)) != SW_OK ||
        (rc = restore_spec(path, &c, &p, err)) != SW_OK ||
        (rc = restore_position(path, &c, version, p, err)) != SW_OK ||
        (rc = restore_clock(path, &c, version, p, err)) != SW_OK ||
        (rc = restore_buffered(path, &c, p, err)) != SW_OK ||
        (rc = restore_tables(path, &c, p, err)) != SW_OK ||
        (version >= 2 && (rc = sw__join_load(p, &c, err)) != SW_OK))
        goto done;
    if (c.pos != c.len) {
        rc = sw__fail(err, SW_E_FORMAT, "%s: %zu unread bytes", path,
                      c.len - c.pos);
        goto done;
    }
    *out = p;
    p = NULL;
done:
    sw_pipeline_free(p);
    return rc;
}

sw_rc
sw_pipeline_restore(const char *path, sw_pipeline **out, sw_err *err)
{
    unsigned char *buf = NULL;
    size_t len;
    sw_rc rc;

    *out = NULL;
    rc = sw__read_file(path, &buf, &len, err);
    if (rc != SW_OK)
        return rc;
    rc = restore_bytes(path, buf, len, out, err);
    sw__free(buf);
    return rc;
}

sw_rc
sw_pipeline_restore_buffer(const void *buf, size_t len, sw_pipeline **out,
                           sw_err *err)
{
    if (buf == NULL || out == NULL)
        return sw__fail(err, SW_E_INVAL, "restore: NULL argument");
    return restore_bytes("checkpoint bytes", buf, len, out, err);
}

/* A background checkpoint is Redis's BGSAVE: fork, and let the child write
 * the copy-on-write snapshot of the state while the parent goes on
 * processing. The child reports a failure through a pipe and its exit
 * status; it runs no code but the writer and _exit. */
sw_rc
sw_pipeline_checkpoint_start(sw_pipeline *p, const char *path, const void *pos,
                             size_t pos_len, sw_err *err)
{
    int fds[2];
    pid_t pid;

    if (p == NULL || path == NULL || (pos == NULL && pos_len > 0))
        return sw__fail(err, SW_E_INVAL, "checkpoint: NULL argument");
    if (p->bg_pid > 0)
        return sw__fail(err, SW_E_INVAL,
                        "checkpoint: the previous one is still being "
                        "written; wait for it first");
    if (pipe(fds) != 0)
        return sw__fail(err, SW_E_IO, "checkpoint: pipe: %s", strerror(errno));
    pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return sw__fail(err, SW_E_IO, "checkpoint: fork: %s", strerror(errno));
    }
    if (pid == 0) {
        sw_err e = {0};
        sw_rc rc;
        ssize_t w;

        close(fds[0]);
        rc = sw_pipeline_checkpoint(p, path, pos, pos_len, &e);
        if (rc != SW_OK)
            w = write(fds[1], e.msg, strlen(e.msg));
        (void)w;
        _exit(rc == SW_OK ? 0 : 1);
    }
    close(fds[1]);
    p->bg_pid = pid;
    p->bg_fd = fds[0];
    return SW_OK;
}

sw_rc
sw_pipeline_checkpoint_wait(sw_pipeline *p, int block, int *done, sw_err *err)
{
    char msg[sizeof(((sw_err *)0)->msg)];
    ssize_t n;
    pid_t w;
    int status = 0;

    *done = 1;
    if (p == NULL || p->bg_pid <= 0)
        return SW_OK;
    do
        w = waitpid(p->bg_pid, &status, block ? 0 : WNOHANG);
    while (w < 0 && errno == EINTR);
    if (w == 0) {
        *done = 0;
        return SW_OK;
    }
    n = read(p->bg_fd, msg, sizeof(msg) - 1);
    close(p->bg_fd);
    p->bg_pid = 0;
    p->bg_fd = -1;
    if (w < 0)
        return sw__fail(err, SW_E_IO, "checkpoint: waitpid: %s",
                        strerror(errno));
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return SW_OK;
    msg[n > 0 ? n : 0] = '\0';
    return sw__fail(err, SW_E_IO, "checkpoint (background): %s",
                    n > 0 ? msg : "the writer died");
}
