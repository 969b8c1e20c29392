/* SPDX-License-Identifier: MIT */
/*
 * sw_ops.c - the pipeline's operators: a feature's fresh state, its value
 * for an event (what the event's row shows: the state before the event)
 * and its update by the event, the stateless transforms, and the check of
 * a restored state. sw_pipeline.c runs them per event: the common codes
 * through its own fused step programs (same arithmetic, the shared
 * pieces in sw_pipeline_int.h), the others through sw__op_value and
 * sw__op_update.
 */
#include <math.h>
#include <string.h>

#include "sw_pipeline_int.h"

#define DAY_US 86400000000LL

static void distinct_init(double *s);

void
sw__feature_init_state(const feature *f, double *s)
{
    int64_t i;

    for (i = 0; i < f->n_slots; i++)
        s[i] = 0.0;
    if (f->wkind == WIN_HOPPING) {
        for (i = 0; i < f->n_hop; i++)
            s[sw__hop_width(f) * i] = -1.0; /* bucket index: none */
        return;
    }
    switch (f->kind) {
    case OP_MIN:
        s[0] = INFINITY;
        break;
    case OP_MAX:
        s[0] = -INFINITY;
        break;
    case OP_DECAYED_SUM:
    case OP_DECAYED_COUNT:
        s[1] = NAN; /* time of the last update */
        break;
    case OP_TIME_SINCE_LAST:
        s[0] = NAN;
        break;
    case OP_DAILY_PROFILE:
        for (i = 0; i < f->days; i++)
            s[2 * i] = -1.0; /* day index: none */
        break;
    case OP_DISTINCT:
        distinct_init(s);
        break;
    default:
        break;
    }
    if (f->wkind == WIN_TUMBLING)
        s[f->n_slots - 1] = -1.0; /* no window yet */
    if (f->wkind == WIN_SESSION)
        s[f->n_slots - 1] = NAN; /* no event yet */
}

/* Whether t starts afresh: another tumbling window, or a session gap. */
static inline int
window_stale(const feature *f, const double *s, int64_t t)
{
    double last = s[f->n_slots - 1];

    if (f->wkind == WIN_TUMBLING)
        return last != (double)(t / f->window);
    if (f->wkind == WIN_SESSION)
        return !isnan(last) && (double)t - last > (double)f->window;
    return 0;
}

/* distinct keeps its first HLL_EXACT item hashes exactly (small sets are
 * the common case and 128 registers would miscount them by collisions),
 * then switches to HyperLogLog (Flajolet et al. 2007) over the same bytes.
 * Word 0's top byte tells them apart: registers never exceed 58. */
#define HLL_EXACT (HLL_REGISTERS / 8 - 1)
#define HLL_TAG ((uint64_t)0xff << 56)

static inline uint64_t
word_at(const double *s, int i)
{
    uint64_t w;

    memcpy(&w, s + i, sizeof(w));
    return w;
}

static inline void
set_word(double *s, int i, uint64_t w)
{
    memcpy(s + i, &w, sizeof(w));
}

static void
distinct_init(double *s)
{
    set_word(s, 0, HLL_TAG); /* exact, no items yet */
}

static double
hll_estimate(const double *s)
{
    const unsigned char *r = (const unsigned char *)s;
    const double m = HLL_REGISTERS;
    double sum = 0, e;
    int j, zeros = 0;

    if ((word_at(s, 0) & HLL_TAG) == HLL_TAG)
        return (double)(word_at(s, 0) & 0xff);
    for (j = 0; j < HLL_REGISTERS; j++) {
        sum += ldexp(1.0, -(int)r[j]);
        zeros += r[j] == 0;
    }
    e = 0.7213 / (1.0 + 1.079 / m) * m * m / sum;
    if (e <= 2.5 * m && zeros > 0)
        e = m * log(m / zeros); /* linear counting for small sets */
    return zeros == HLL_REGISTERS ? 0.0 : e;
}

static void
hll_register(unsigned char *r, uint64_t h)
{
    uint64_t x = sw__mix64(h, 0x686c6c); /* spread the field's hash */
    int j = (int)(x >> 57);             /* 7 bits: 128 registers */
    uint64_t w = (x << 7) | ((uint64_t)1 << 6);
    unsigned char rank = (unsigned char)(__builtin_clzll(w) + 1);

    if (rank > r[j])
        r[j] = rank;
}

/* Whether the state block of an entry of table tb could have been made
 * by this pipeline, as far as the updates trust it: an exact distinct
 * count holds at most HLL_EXACT values (hll_add copies them to a stack
 * array of that size). For checkpoints, which may be crafted. */
int
sw__state_valid(const sw_pipeline *p, int tb, const double *block)
{
    int j;

    for (j = 0; j < p->n_features; j++) {
        const feature *f = &p->features[j];
        uint64_t head;

        if (f->table != tb || f->kind != OP_DISTINCT)
            continue;
        head = word_at(block + f->slot, 0);
        if ((head & HLL_TAG) == HLL_TAG &&
            (head & ~HLL_TAG) > (uint64_t)HLL_EXACT)
            return 0;
    }
    return 1;
}

static void
hll_add(double *s, uint64_t h)
{
    uint64_t head = word_at(s, 0), kept[HLL_EXACT];
    int n, i;

    if ((head & HLL_TAG) != HLL_TAG) {
        hll_register((unsigned char *)s, h);
        return;
    }
    n = (int)(head & 0xff);
    for (i = 0; i < n; i++)
        if (word_at(s, 1 + i) == h)
            return;
    if (n < HLL_EXACT) {
        set_word(s, 1 + n, h);
        set_word(s, 0, HLL_TAG | (uint64_t)(n + 1));
        return;
    }
    for (i = 0; i < n; i++)
        kept[i] = word_at(s, 1 + i);
    memset(s, 0, HLL_REGISTERS);
    for (i = 0; i < n; i++)
        hll_register((unsigned char *)s, kept[i]);
    hll_register((unsigned char *)s, h);
}

/* Which column of a histogram an event falls in, -1 for none. */
static int
histogram_bin(const feature *f, double x, uint64_t hx)
{
    int j;

    if (f->n_values > 0) {
        for (j = 0; j < f->n_values; j++) {
            if (f->values[j] == hx)
                return j;
        }
        return -1;
    }
    for (j = 0; j < f->n_edges && x >= f->edges[j]; j++)
        ;
    return j;
}

/* The feature's n_out values at time t from state s (s is not changed);
 * x and hx are the event's own value and hash (standardize reads x). */
void
sw__op_value(const feature *f, const double *s, int64_t t, double x,
             double *out)
{
    int64_t i, bi, day;
    double c = 0, sum = 0;

    if (f->wkind == WIN_HOPPING) {
        const int w = sw__hop_width(f);
        double mean = 0, m2 = 0, ext = NAN;

        bi = t / f->every;
        for (i = 0; i < f->n_hop; i++) {
            const double *b = s + w * i;
            double n;

            if (!(b[0] > (double)(bi - f->n_hop) && b[0] <= (double)bi) ||
                b[1] == 0)
                continue;
            switch (f->kind) {
            case OP_VAR: /* merge Welford summaries (Chan et al.) */
                n = c + b[1];
                m2 += b[3] + (b[2] - mean) * (b[2] - mean) * c * b[1] / n;
                mean += (b[2] - mean) * b[1] / n;
                break;
            case OP_MIN:
                ext = isnan(ext) || b[2] < ext ? b[2] : ext;
                break;
            case OP_MAX:
                ext = isnan(ext) || b[2] > ext ? b[2] : ext;
                break;
            default:
                sum += b[2];
                break;
            }
            c += b[1];
        }
        out[0] = f->kind == OP_COUNT ? c
                 : f->kind == OP_SUM ? sum
                 : f->kind == OP_VAR ? (c > 1 ? m2 / (c - 1) : NAN)
                 : f->kind == OP_MIN || f->kind == OP_MAX ? ext
                 : c > 0                                  ? sum / c
                                                          : NAN;
        return;
    }
    if ((f->wkind == WIN_TUMBLING || f->wkind == WIN_SESSION) &&
        window_stale(f, s, t)) {
        /* no earlier event of the key in this window or session */
        for (i = 0; i < f->n_out; i++)
            out[i] = f->kind == OP_COUNT || f->kind == OP_SUM ||
                             f->kind == OP_DISTINCT
                         ? 0.0
                     : f->kind == OP_RATE ? f->a / (f->a + f->b)
                                          : NAN;
        return;
    }
    switch (f->kind) {
    case OP_COUNT:
    case OP_SUM:
        out[0] = s[0];
        return;
    case OP_MEAN:
        out[0] = s[0] > 0 ? s[1] : NAN;
        return;
    case OP_VAR:
        out[0] = s[0] > 1 ? s[2] / (s[0] - 1.0) : NAN;
        return;
    case OP_MIN:
    case OP_MAX:
        out[0] = isinf(s[0]) ? NAN : s[0];
        return;
    case OP_LAST:
        out[0] = s[1] != 0 ? s[0] : NAN;
        return;
    case OP_DECAYED_SUM:
    case OP_DECAYED_COUNT:
        out[0] = s[0] * decay(f, s, t);
        return;
    case OP_TIME_SINCE_LAST:
        out[0] = isnan(s[0]) ? NAN : ((double)t - s[0]) / 1e6;
        return;
    case OP_RATE:
        out[0] = (s[0] + f->a) / (s[1] + f->a + f->b);
        return;
    case OP_DISTINCT:
        out[0] = hll_estimate(s);
        return;
    case OP_HISTOGRAM:
        for (i = 0; i < f->n_out; i++)
            out[i] = s[f->n_out] > 0 ? s[i] / s[f->n_out] : NAN;
        return;
    case OP_DAILY_PROFILE:
        day = t / DAY_US;
        for (i = 0; i < f->days; i++) {
            const double *b = s + 2 * i;

            if (b[0] > (double)(day - f->days) && b[0] <= (double)day)
                sum += pow(f->day_decay, (double)day - b[0]) * b[1];
        }
        out[0] = sum;
        return;
    case OP_STANDARDIZE:
        out[0] =
            s[0] > 1 && s[2] > 0 ? (x - s[1]) / sqrt(s[2] / (s[0] - 1.0)) : NAN;
        return;
    default:
        out[0] = NAN;
        return;
    }
}

/* Add one event (time t, value x, hash hx) to state s. */
void
sw__op_update(const feature *f, double *s, int64_t t, double x, uint64_t hx)
{
    int64_t bi, j;

    if (f->wkind == WIN_HOPPING) {
        const int w = sw__hop_width(f);
        double *b;

        bi = t / f->every;
        b = s + w * (bi % f->n_hop);
        if (b[0] != (double)bi) { /* the bucket's previous turn is over */
            b[0] = (double)bi;
            b[1] = 0.0;
            b[2] = f->kind == OP_MIN   ? INFINITY
                   : f->kind == OP_MAX ? -INFINITY
                                       : 0.0;
            if (w > 3)
                b[3] = 0.0;
        }
        b[1] += 1.0;
        switch (f->kind) {
        case OP_VAR:
            welford_take(b + 1, x);
            break;
        case OP_MIN:
            b[2] = x < b[2] ? x : b[2];
            break;
        case OP_MAX:
            b[2] = x > b[2] ? x : b[2];
            break;
        default:
            b[2] += x;
            break;
        }
        return;
    }
    if ((f->wkind == WIN_TUMBLING || f->wkind == WIN_SESSION) &&
        window_stale(f, s, t))
        sw__feature_init_state(f, s);
    if (f->wkind == WIN_TUMBLING)
        s[f->n_slots - 1] = (double)(t / f->window);
    if (f->wkind == WIN_SESSION)
        s[f->n_slots - 1] = (double)t;
    switch (f->kind) {
    case OP_COUNT:
        s[0] += 1.0;
        break;
    case OP_SUM:
        s[0] += x;
        break;
    case OP_MEAN:
        s[0] += 1.0;
        mean_take(s, x);
        break;
    case OP_VAR:
    case OP_STANDARDIZE:
        s[0] += 1.0;
        welford_take(s, x);
        break;
    case OP_MIN:
        s[0] = x < s[0] ? x : s[0];
        break;
    case OP_MAX:
        s[0] = x > s[0] ? x : s[0];
        break;
    case OP_LAST:
        s[0] = x;
        s[1] = 1.0;
        break;
    case OP_DECAYED_SUM:
    case OP_DECAYED_COUNT:
        /* s[0] was decayed to t when the row was read (process) */
        s[0] += f->kind == OP_DECAYED_SUM ? x : 1.0;
        s[1] = (double)t;
        break;
    case OP_TIME_SINCE_LAST:
        s[0] = (double)t;
        break;
    case OP_RATE:
        s[0] += x;
        s[1] += 1.0;
        break;
    case OP_DISTINCT:
        hll_add(s, hx);
        break;
    case OP_HISTOGRAM:
        j = histogram_bin(f, x, hx);
        if (j >= 0)
            s[j] += 1.0;
        s[f->n_out] += 1.0;
        break;
    case OP_DAILY_PROFILE:
        bi = t / DAY_US;
        j = bi % f->days;
        if (s[2 * j] != (double)bi) {
            s[2 * j] = (double)bi;
            s[2 * j + 1] = 0.0;
        }
        s[2 * j + 1] += x;
        break;
    default:
        break;
    }
}

/* Stateless transforms of the event's own value. */
void
sw__op_transform(const feature *f, double x, uint64_t hx, double *out)
{
    int j;

    switch (f->kind) {
    case OP_LOG1P:
        out[0] = x > -1.0 ? log1p(x) : NAN;
        return;
    case OP_BUCKETIZE:
        for (j = 0; j < f->n_edges && x >= f->edges[j]; j++)
            ;
        out[0] = (double)j;
        return;
    case OP_ONE_HOT:
        for (j = 0; j < f->n_values; j++)
            out[j] = f->values[j] == hx ? 1.0 : 0.0;
        return;
    case OP_VALUE:
        out[0] = x;
        return;
    default:
        out[0] = NAN;
    }
}

