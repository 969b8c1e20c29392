/* SPDX-License-Identifier: MIT */
/*
 * sw_pipeline_int.h - what the pipeline's files share: the compiled plan,
 * the keyed state table and the buffered events.
 *
 * A spec compiles into a plan: typed event fields, and features grouped by
 * the set of key fields they aggregate over. Each key set has one table;
 * an entry of the table holds the state of every feature on that key set
 * in one block of doubles, so one probe serves them all.
 */
#ifndef SW_PIPELINE_INT_H
#define SW_PIPELINE_INT_H

#include <math.h>

#include "sw_internal.h"

#define SW_MAX_FIELDS 64
#define TIME_MAX_US 253402300799000000LL /* 9999-12-31 */
#define SW_MAX_KEY_FIELDS 8

typedef enum op {
    OP_COUNT,
    OP_SUM,
    OP_MEAN,
    OP_VAR,
    OP_MIN,
    OP_MAX,
    OP_LAST,
    OP_DECAYED_SUM,
    OP_DECAYED_COUNT,
    OP_TIME_SINCE_LAST,
    OP_RATE,
    OP_HASH,
    OP_DISTINCT,
    OP_HISTOGRAM,
    OP_DAILY_PROFILE,
    OP_STANDARDIZE,
    OP_LOG1P,
    OP_BUCKETIZE,
    OP_ONE_HOT,
    OP_VALUE,
    OP_N
} op;

typedef struct field {
    char *name;
    int type;      /* SW_COL_* of the spec */
    uint64_t salt; /* of its values' hashes, from the name: the order of
                    * the fields in a spec never matters */
    int hashed;    /* a key or crossed field: its values are hashed */
    int private_;  /* privacy.fields: hashed under the secret, never kept */
} field;

enum { WIN_NONE = 0, WIN_TUMBLING = 1, WIN_SESSION = 2, WIN_HOPPING = 3 };

#define HLL_REGISTERS 128 /* distinct: about 9% relative error */

typedef struct feature {
    char *name;
    op kind;
    int table;    /* key table; -1 for stateless transforms and hash */
    int field;    /* the field it reads, -1 for none */
    int64_t slot; /* first double of its state in the table block */
    int64_t n_slots;
    int wkind;        /* WIN_* */
    int64_t window;   /* tumbling width, session gap, hopping size (us) */
    int64_t every;    /* hopping: slide (us) */
    int64_t n_hop;    /* hopping: buckets = window / every */
    double half_life; /* decayed ops, in us */
    double a, b;      /* rate prior */
    int n_hash;       /* hash: crossed fields */
    int hash_fields[SW_MAX_KEY_FIELDS];
    int64_t dims;   /* hash: buckets */
    int64_t offset; /* hash: first column in the sparse block;
                     * others: first column in the dense block */
    int n_out;      /* dense columns it writes */
    uint64_t salt;  /* hash: mixed into every index */
    int n_edges;    /* bucketize, numeric histogram: ascending edges */
    double *edges;
    int n_values; /* one_hot, categorical histogram: value hashes */
    uint64_t *values;
    int64_t days;     /* daily_profile: days kept */
    double day_decay; /* daily_profile: weight of a day per day of age */
    char **cols;      /* n_out column names (owned) */
    int has_default;  /* "default": what its columns give instead of NaN */
    double dflt;
} feature;

/* What step() does for one feature of a table: the common operators
 * without a window, and count and sum over a tumbling window, have a code
 * of their own; STEP_OTHER goes through the general value_of/update. */
enum {
    STEP_COUNT,
    STEP_SUM,
    STEP_MEAN,
    STEP_VAR,
    STEP_MIN,
    STEP_MAX,
    STEP_LAST,
    STEP_DECAYED_SUM,
    STEP_DECAYED_COUNT,
    STEP_SINCE,
    STEP_RATE,
    STEP_TUMBLING_COUNT,
    STEP_TUMBLING_SUM,
    STEP_OTHER
};

/* A feature of a table compiled for the per-event loop: a small record
 * read in sequence instead of the wide feature struct. */
typedef struct step_op {
    int code;       /* STEP_* */
    int field;      /* value it reads; -1: the constant 1 */
    int64_t slot;   /* first state double in the entry */
    int64_t out;    /* first dense column */
    double a, b;    /* rate: prior; decayed: half-life (a) */
    int64_t window; /* tumbling width (us) */
    const feature *f;
} step_op;

typedef struct keytab {
    int n_keys;
    int keys[SW_MAX_KEY_FIELDS]; /* field numbers */
    int64_t block;               /* doubles of state an entry holds */
    int64_t stride;              /* words an entry takes: 2 + block */
    int64_t cap, n;              /* index cells (a power of two), keys */
    uint64_t *idx;               /* cap cells: the key hash's high half << 32 |
                                  * entry number + 1; 0 = empty */
    int64_t room; /* entries e has room for: the most cap allows */
    uint64_t *e;  /* n entries in order of arrival: key hash (never 0),
                   * last update time, state */
    /* changes (sw_changes.c), when tracked: a byte per entry updated
     * since they were last handed out, and the hashes of keys dropped */
    int track;
    unsigned char *dirty;
    int64_t dirty_cap;
    uint64_t *gone;
    int64_t n_gone, cap_gone;
} keytab;

/* Entry i, 0 <= i < n. */
static inline uint64_t *
kt_entry(const keytab *kt, int64_t i)
{
    return kt->e + i * kt->stride;
}

#define KT_CELL_TAG(h) ((h) & ~(uint64_t)0xffffffff)
#define KT_CELL_ENTRY(c) ((int64_t)((c)&0xffffffff) - 1)

/* The cell of hash h (not 0): its entry's, or the empty one where it
 * would go. Inline, as the lookups below: they are most of an event's
 * work when the keys fit in cache. */
static inline int64_t
kt_probe(const keytab *kt, uint64_t h, uint64_t **entry)
{
    uint64_t mask = (uint64_t)kt->cap - 1, i = h & mask, c;

    while ((c = kt->idx[i]) != 0) {
        if (KT_CELL_TAG(c) == KT_CELL_TAG(h)) {
            uint64_t *e = kt_entry(kt, KT_CELL_ENTRY(c));

            if (e[0] == h) {
                *entry = e;
                return (int64_t)i;
            }
        }
        i = (i + 1) & mask;
    }
    *entry = NULL;
    return (int64_t)i;
}

/* One buffered event: its time, arrival number, and per field the value
 * (numbers) and the 64-bit hash (all types). */
typedef struct event {
    int64_t t;
    int64_t seq;
} event;

/* Predictions waiting for their outcome (sw_join.c): slots head..n-1 in
 * processing order (seq -1: claimed or replaced), and an open-addressing
 * index from the join key's hash to a slot. */
typedef struct joinq {
    int64_t head, n, cap;
    int64_t *t, *seq;
    uint64_t *key;
    double *rows; /* cap x n_dense: the row the prediction had */
    int64_t *ind; /* cap x n_hash */
    int64_t *map; /* mcap cells: a slot or -1 */
    int64_t mcap;
} joinq;

typedef struct join {
    int on, negatives; /* unmatched predictions: label 0 or dropped */
    int key_field, type_field, label_field; /* label -1: outcomes are 1 */
    uint64_t pred_h, out_h; /* hashes of the type field's two values */
    int64_t within;         /* us */
    int64_t n_matched, n_unmatched;
    joinq q;
} join;

#define SW_FINGERPRINT_BYTES 16

struct sw_pipeline {
    char *spec_json; /* as given, canonical (for checkpoints) */
    uint64_t spec_hash;
    int time_field;
    int64_t time_scale; /* units of the time column per microsecond... */
    int time_unit;      /* 0 us, 1 ms, 2 s, 3 ns */
    int n_fields;
    field fields[SW_MAX_FIELDS];
    int n_features;
    feature *features;
    int n_dense;
    char **colnames; /* n_dense names of the dense columns */
    int64_t sparse_dims;
    int n_hash;
    int n_tables;
    keytab *tables;
    /* features in the order process() runs them: those of table t at
     * plan[plan_at[t] .. plan_at[t + 1]), then the stateless transforms,
     * then the hashes, each group in spec order (n_tables + 3 bounds) */
    int *plan, *plan_at;
    step_op *ops; /* plan[0 .. plan_at[n_tables]) compiled */
    uint64_t *kh; /* drain's scratch: each event's key hash per table */
    int64_t cap_kh;
    unsigned char *why; /* push's scratch: each row's invalid reason */
    int64_t cap_why;
    int64_t out_of_order, lateness, ttl; /* us; ttl 0: none */
    int64_t idle_timeout;                /* us; 0: partitions never idle */
    int64_t max_keys;  /* per key table; 0: no budget */
    int64_t n_evicted; /* keys dropped for the budget (not checkpointed) */
    int arrival; /* emission "arrival": each event processed as it comes,
                  * in arrival order, with no buffering */
    /* dense columns whose NaN (no history yet) becomes a spec "default" */
    int n_fill;
    int64_t *fill_col;
    double *fill_val;
    /* stream state */
    int64_t next_seq;
    int64_t max_t;      /* INT64_MIN before the first event */
    int64_t wm;         /* events before it are late; buffered ones up to it
                         * are processed */
    int64_t first_t;    /* time of the first event, INT64_MIN before */
    int n_parts;        /* partitions declared, or numbered below one pushed */
    int declared_parts; /* watermark.partitions, 0 if not given */
    int64_t part_max[SW_MAX_PARTITIONS]; /* latest time per partition */
    int64_t now;                         /* time of the last processed event */
    int64_t n_late, n_invalid[8], n_emitted;
    /* pending events, sorted by (t, seq): records of n_fields values and
     * n_fields hashes after each event header */
    unsigned char *pend;
    int64_t n_pend, cap_pend, rec;
    int pend_unsorted; /* an event older than the one before it came */
    int64_t max_block;       /* largest table block, for init states */
    unsigned char *position; /* restored source position (owned) */
    size_t position_len;
    join join;         /* label_join (sw_join.c) */
    int bg_pid, bg_fd; /* a background checkpoint being written */
    /* privacy (sw_privacy.c) */
    int n_private, has_secret, has_fingerprint;
    unsigned char secret_key[16]; /* crypto_shorthash_KEYBYTES */
    unsigned char fingerprint[SW_FINGERPRINT_BYTES];
};

/* A result: the rows emitted by one push (caller-owned handle). */
struct sw_result {
    int64_t n, cap; /* cap: of indptr and indices */
    int64_t cap_rows; /* of dense, seq and t */
    double *dense;    /* n x n_dense */
    int64_t *seq, *t; /* n */
    int64_t *indptr;  /* n + 1 */
    int64_t *indices; /* n x n_hash */
    int64_t n_late, cap_late, *late;
    int64_t n_inv, cap_inv, *inv;
    int *inv_reason;
    int n_dense, n_hash;
    /* label-join pairs: features at prediction time and the label */
    int64_t jn, jcap;
    double *jdense, *jlabel;
    int64_t *jind, *jseq, *jt, *joseq;
};

/* A number column's value as a double (NaN for text). */
static inline double
sw__column_number(const sw_column *c, int64_t i)
{
    switch (c->type) {
    case SW_COL_I64:
        return (double)((const int64_t *)c->data)[i];
    case SW_COL_I32:
        return ((const int32_t *)c->data)[i];
    case SW_COL_I8:
    case SW_COL_BOOL:
        return ((const int8_t *)c->data)[i];
    case SW_COL_F64:
        return ((const double *)c->data)[i];
    case SW_COL_F32:
        return ((const float *)c->data)[i];
    default:
        return NAN;
    }
}

/* Doubles per bucket of a hopping window: its index, events, and the sum
 * (count, sum, mean), the extreme (min, max) or the mean and M2 (var). */
static inline int
sw__hop_width(const feature *f)
{
    return f->kind == OP_VAR ? 4 : 3;
}

/* sw_privacy.c */
struct json_t;
sw_rc sw__privacy_parse(sw_pipeline *p, struct json_t *v, sw_err *err);
uint64_t sw__private_hash(const sw_pipeline *p, const sw_column *c, int64_t i,
                          uint64_t salt);

/* sw_join.c */
sw_rc sw__join_parse(sw_pipeline *p, struct json_t *v, sw_err *err);
sw_rc sw__join_reserve(sw_pipeline *p, sw_result *r, int64_t n, sw_err *err);
void sw__join_event(sw_pipeline *p, int64_t t, int64_t seq, const double *v,
                    const uint64_t *h, sw_result *r, int64_t row);
void sw__join_expire_all(sw_pipeline *p, sw_result *r);
void sw__join_free(joinq *q);
sw_rc sw__join_save(const sw_pipeline *p, sw_buf *b, sw_err *err);
sw_rc sw__join_load(sw_pipeline *p, sw_cursor *c, sw_err *err);

/* sw_spec.c */
int sw__parse_duration(struct json_t *v, int64_t *out);
int sw__value_hash(const sw_pipeline *p, int fi, struct json_t *v,
                   uint64_t *out);
sw_rc sw__spec_compile(const char *json, sw_pipeline *p, sw_err *err);
void sw__spec_free(sw_pipeline *p);

/* sw_keytab.c */
sw_rc sw__keytab_init(keytab *kt, int64_t cap, sw_err *err);
void sw__keytab_free(keytab *kt);
/* The entry of hash h (words: hash, last update time, state), created
 * with state init if absent; NULL only on SW_E_NOMEM. find: NULL if
 * absent. put_raw: a new entry for restoring, NULL if full or present. */
uint64_t *sw__keytab_add(keytab *kt, uint64_t h, const double *init,
                         sw_err *err);
uint64_t *sw__keytab_find(const keytab *kt, uint64_t h);
uint64_t *sw__keytab_put_raw(keytab *kt, uint64_t h);
/* Ask for h's index cell; some events later, for its entry. */

/* Entry e was updated: remember it when changes are tracked. */
static inline sw_rc sw__keytab_touch_at(keytab *kt, int64_t i,
                                        sw_err *err);
sw_rc sw__keytab_rebuild(keytab *kt, int64_t new_cap, int64_t min_seen,
                         sw_err *err);

/* sw_pipeline.c */
sw_rc sw__pipeline_reserve(sw_pipeline *p, int64_t need, sw_err *err);

/* sw_result.c: a result emptied for p's next push; room for n more rows;
 * an arrival number (and its reason) appended to a late or invalid list. */
void sw__result_reset(sw_result *r, const sw_pipeline *p);
sw_rc sw__result_room(sw_result *r, int64_t n, sw_err *err);
sw_rc sw__result_push_id(int64_t **arr, int64_t *n, int64_t *cap, int **reasons,
                         int reason, int64_t seq, sw_err *err);
uint64_t sw__hash_bytes(const void *p, size_t n, uint64_t seed);
uint64_t sw__mix64(uint64_t a, uint64_t b);

/* sw_ops.c: the operators (see there) */
void sw__feature_init_state(const feature *f, double *s);
int sw__state_valid(const sw_pipeline *p, int tb, const double *block);
void sw__op_value(const feature *f, const double *s, int64_t t, double x,
                  double *out);
void sw__op_update(const feature *f, double *s, int64_t t, double x,
                   uint64_t hx);
void sw__op_transform(const feature *f, double x, uint64_t hx, double *out);

/* The decay factor of a decayed feature's state s (s[1]: the last event's
 * time) at t. */
static inline double
decay(const feature *f, const double *s, int64_t t)
{
    return isnan(s[1]) ? 1.0 : exp2(-((double)t - s[1]) / f->half_life);
}

/* Running moments {n, mean, sum of squared deviations} (Welford) take x,
 * counted in n already: one copy of the arithmetic for update(), its
 * hopping buckets and the step programs' fast path, so that all give the
 * same bits. */
static inline void
mean_take(double *s, double x)
{
    s[1] += (x - s[1]) / s[0];
}

static inline void
welford_take(double *s, double x)
{
    double d = x - s[1];

    s[1] += d / s[0];
    s[2] += d * (x - s[1]);
}


/* sw_changes.c */
sw_rc sw__keytab_grow_dirty(keytab *kt, int64_t i, sw_err *err);
sw_rc sw__keytab_note_gone(keytab *kt, uint64_t h, sw_err *err);
void sw__keytab_changes_free(keytab *kt);

/* The number of the entry of key hash h, made from init (block doubles)
 * if new; -1 when out of memory. A number, unlike the entry's address,
 * stays valid when a later key grows the table. */
static inline int64_t
sw__keytab_get_at(keytab *kt, uint64_t h, const double *init, sw_err *err)
{
    uint64_t *e = NULL;
    int64_t cell = 0;

    h = h ? h : 1;
    if (kt->cap > 0)
        cell = kt_probe(kt, h, &e);
    if (e != NULL)
        return KT_CELL_ENTRY(kt->idx[cell]);
    e = sw__keytab_add(kt, h, init, err);
    return e != NULL ? (int64_t)(e - kt->e) / kt->stride : -1;
}

/* The entry itself; NULL when out of memory. */
static inline uint64_t *
sw__keytab_get(keytab *kt, uint64_t h, const double *init, sw_err *err)
{
    int64_t at = sw__keytab_get_at(kt, h, init, err);

    return at >= 0 ? kt_entry(kt, at) : NULL;
}

/* Ask for the index cell of h, then (a few events later, once it is
 * there) for the entry it names. Not inline: inlined into the loops that
 * call them, they made a million keys 1.3-1.5x slower (same run,
 * alternating; the cell's load then waits in the loop). */
void sw__keytab_prefetch(const keytab *kt, uint64_t h);
void sw__keytab_prefetch_entry(const keytab *kt, uint64_t h);

/* Mark entry number i changed, if the table's changes are tracked. */
static inline sw_rc
sw__keytab_touch_at(keytab *kt, int64_t i, sw_err *err)
{
    if (!kt->track)
        return SW_OK;
    if (i >= kt->dirty_cap && sw__keytab_grow_dirty(kt, i, err) != SW_OK)
        return SW_E_NOMEM;
    kt->dirty[i] = 1;
    return SW_OK;
}

#endif
