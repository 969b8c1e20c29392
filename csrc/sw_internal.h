/* SPDX-License-Identifier: MIT */
/*
 * sw_internal.h - what the core's files share and nobody else may use.
 *
 * Struct definitions of the opaque handles, the failure helper, the
 * allocation funnel, the row accessor the learners iterate with, and the
 * little-endian byte helpers of the model file. Symbols here are hidden from
 * the shared objects that link the core (-fvisibility=hidden).
 *
 * Names: a function of the contract (csrc/include/streamwise.h) is sw_x; a
 * function one file of the core, the io adapters or the runner shares with
 * another is sw__x (SQLite's sqlite3_x and sqlite3X), so that a call site
 * says whether it may change without notice. A function of one file is
 * static and has no prefix.
 */
#ifndef SW_INTERNAL_H
#define SW_INTERNAL_H

#include <assert.h>
#include <stdint.h>
#include <string.h>

#include "streamwise.h"

#define SW_ASSERT(cond) assert(cond)

#if defined(__GNUC__)
#define SW_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define SW_PRINTF(a, b)
#endif

/* Record why a call failed and return the code, so that a failing branch is
 * one line. err may be NULL. */
sw_rc sw__fail(sw_err *err, sw_rc rc, const char *fmt, ...) SW_PRINTF(3, 4);

sw_rc sw__fail_wrap(sw_err *err, sw_rc rc, sw_rc got, const char *prefix);

/* ---- allocation: the only malloc/free in csrc/ (sw_alloc.c) ---- */
void *sw__malloc(size_t n);
void *sw__calloc(size_t count, size_t size);
void *sw__alloc_array(size_t count, size_t size);
void *sw__realloc_array(void *p, size_t count, size_t size);
char *sw__strdup(const char *s);
void sw__free(void *p);
/* Zeroed memory for big random-access tables: asks for transparent huge
 * pages, so that a lookup in hundreds of MiB does not miss the TLB. Free it
 * with sw__free_big and the same n. */
void *sw__calloc_big(size_t n);
void sw__free_big(void *p, size_t n);
/* p (from sw__calloc_big, old_n bytes) grown to n bytes, the new bytes
 * zero; big blocks move by remapping, not copying. NULL if out of memory
 * (p is then still valid). */
void *sw__realloc_big(void *p, size_t old_n, size_t n);

/* Test levers (in every build, see sw_alloc.c): make the
 * n-th allocation from now fail (-1: never), and count live blocks. */
void sw__alloc_fail_after(long n);
long sw__alloc_live(void);
/* Allocations refused so far (by the lever or by the system). jansson,
 * whose allocations come here too, reports a refused one as a syntax
 * error or not at all: a step that parses or builds JSON compares this
 * count before and after, and a change is SW_E_NOMEM. */
long sw__alloc_failures(void);
/* The one way the core parses JSON text (len (size_t)-1: NUL-terminated):
 * *out the root, or NULL and SW_E_NOMEM ("<what>: out of memory") when an
 * allocation was refused meanwhile, else bad ("<what>: not JSON (line L,
 * column C: why)"). */
struct json_t;
sw_rc sw__json_parse(const char *text, size_t len, const char *what, sw_rc bad,
                     struct json_t **out, sw_err *err);

/* ---- the words of an events schema (sw_events.c) ----
 * Column types by name (SW_COL_* order) and time units (0 us, 1 ms, 2 s,
 * 3 ns: the pipeline's time_unit); *_of gives -1 for another word, and a
 * NULL unit is microseconds. The messages name the choices from these
 * tables: SW_COL_TYPE_CHOICES, SW_TIME_UNIT_CHOICES. */
#define SW_COL_TYPES 7
#define SW_TIME_UNITS 4
#define SW_COL_TYPE_CHOICES "int64, int32, int8, float64, float32, bool, str"
#define SW_TIME_UNIT_CHOICES "us, ms, s or ns"
extern const char *const sw_col_type_names[SW_COL_TYPES];
extern const char *const sw_time_unit_names[SW_TIME_UNITS];
extern const int64_t sw_time_unit_us_num[SW_TIME_UNITS];
extern const int64_t sw_time_unit_us_den[SW_TIME_UNITS];
int sw__col_type_of(const char *name);
int sw__time_unit_of(const char *name);

/* ---- the events schema (sw_events.c) ----
 * The "events" entry of a spec ({"time": "ts", "time_unit": "us",
 * "fields": {"user": "str", ...}}), walked once for the spec compiler and
 * the io adapters: the columns in the order given, the time column among
 * them (added as int64 when fields lacks it), the unit. Messages start
 * with what (the entry's path, e.g. "events"), then the key:
 * "events.fields.user: unknown type 'text' (int64, ...)". */
#define SW_SCHEMA_MAX_FIELDS 1024

typedef struct sw_events_schema {
    int n;
    char *name[SW_SCHEMA_MAX_FIELDS];
    int type[SW_SCHEMA_MAX_FIELDS]; /* SW_COL_* */
    int time;                       /* index of the time column */
    int unit;                       /* index in sw_time_unit_names */
} sw_events_schema;

/* Read an events object (jansson). Free with sw__events_schema_clear. */
sw_rc sw__events_schema_read(const struct json_t *ev, const char *what,
                             sw_events_schema *s, sw_err *err);
/* The same from JSON text holding the entry or a whole spec, for the io
 * adapters, which also need the time column to be int64 (they give event
 * times as integers). */
sw_rc sw__events_schema_parse(const char *json, const char *what,
                              sw_events_schema *s, sw_err *err);
void sw__events_schema_clear(sw_events_schema *s);
int sw__events_schema_find(const sw_events_schema *s, const char *name);

/* ---- threads (sw_thread.c) ----
 * fn(ctx, chunk, thread) runs once for every chunk 0..n_chunks-1 on up to
 * n_threads threads (thread 0 is the caller); thread < n_threads indexes
 * per-thread scratch. */
typedef void (*sw_chunk_fn)(void *ctx, int64_t chunk, int thread);
sw_rc sw__parallel(int n_threads, int64_t n_chunks, sw_chunk_fn fn, void *ctx,
                   sw_err *err);
int sw__n_cpus(void);
/* The same over a pool kept between calls (threads sleep, never spin);
 * threads are numbered 0..sw__pool_threads(p)-1, the caller being 0. A
 * NULL pool runs every chunk in the caller. */
#define SW_MAX_THREADS 256 /* a pool's threads, the caller included */
typedef struct sw_pool sw_pool;
sw_rc sw__pool_new(int n_threads, sw_pool **out, sw_err *err);
void sw__pool_run(sw_pool *p, int64_t n_chunks, sw_chunk_fn fn, void *ctx);
int sw__pool_threads(const sw_pool *p);
void sw__pool_free(sw_pool *p);

/* Two threads are slower than one when another process holds the second
 * core: each wait for a descheduled worker costs more than the worker
 * gives. A caller whose work comes in units of like cost (a fit's trees)
 * brackets each in sw__pool_unit_begin/end; the pool's pacer times them,
 * done with its workers and done in the caller alone, and says which way
 * the next unit goes (sw__pool_unit_begin returns 1: alone, as with no
 * pool at all, so that none of the work that only threads repay is done).
 * The way that was faster lately wins; the other is tried again now and
 * then (more often when the two were close), so that a load that comes or
 * goes is followed. The caller's results must not depend on the way. */
typedef struct sw_pacer {
    double took[2][3]; /* [solo][k]: the last unit times (us) of each way */
    int n_took[2];     /* how many of took[] hold a time (at most 3) */
    int64_t units;     /* units ended */
    int64_t next_try;  /* the unit at which the other way is tried again */
    int64_t every;     /* units between tries */
    int solo;          /* the current unit's way: 1 in the caller alone */
    int trying;        /* the current unit tries the way not chosen */
} sw_pacer;
void sw__pacer_init(sw_pacer *pc);
int sw__pacer_next(sw_pacer *pc); /* the next unit's way: 1 solo */
void sw__pacer_took(sw_pacer *pc, double us);
int sw__pool_unit_begin(sw_pool *p);
void sw__pool_unit_end(sw_pool *p);

/* ---- configuration (sw_conf.c) ---- */
double sw__conf_num(const sw_conf *conf, const char *name);
int sw__conf_choice(const sw_conf *conf, const char *name);

/* ---- rows (sw_view.c) ----
 * One row as the learners see it: n values, with column numbers in idx for
 * sparse rows and idx == NULL for dense ones (value k is column k). Rows in
 * other dtypes are converted into the caller's scratch buffers, so the
 * kernels have exactly two shapes to handle. */
typedef struct sw_row {
    const double *val;
    const int32_t *idx;
    int64_t n;
} sw_row;

typedef struct sw_scratch {
    double *val;
    int32_t *idx;
    int64_t cap;
} sw_scratch;

sw_rc sw__rows_check_shape(const sw_rows *x, int64_t n_features, sw_err *err);

/* Entries of a CSR view of either index type and either value type. */
static inline int64_t
sw__csr_ptr(const sw_rows *x, int64_t i)
{
    return x->itype == SW_I32 ? ((const int32_t *)x->indptr)[i]
                              : ((const int64_t *)x->indptr)[i];
}

static inline int64_t
sw__csr_col(const sw_rows *x, int64_t e)
{
    return x->itype == SW_I32 ? ((const int32_t *)x->indices)[e]
                              : ((const int64_t *)x->indices)[e];
}

static inline double
sw__csr_val(const sw_rows *x, int64_t e)
{
    return x->dtype == SW_F32 ? ((const float *)x->data)[e]
                              : ((const double *)x->data)[e];
}
sw_rc sw__row_get(const sw_rows *x, int64_t i, sw_row *row, sw_scratch *scratch,
                  sw_err *err);
/* Make room for rows of n values (and column numbers), so that a loop
 * over rows allocates nothing once it has started. */
sw_rc sw__scratch_reserve(sw_scratch *s, int64_t n, sw_err *err);
/* The most values any row of x has: n_cols for dense rows. */
int64_t sw__rows_max_row(const sw_rows *x);
void sw__scratch_free(sw_scratch *s);
/* Find the first non-finite value of a row: its column, or -1. */
int64_t sw__row_find_nonfinite(const sw_row *row);

/* ---- the model handle (sw_model.c) and its kinds ---- */
typedef struct sw_linear sw_linear;

/* ALS (learn/sw_als.c, learn/sw_als_topn.c). */
typedef struct sw_als {
    int explicit_, solver, confidence, reg_scaling, threads;
    int64_t k, n_users, n_items, cg_steps, iterations;
    uint64_t seed;
    double reg, alpha;
    float *X;           /* n_users x k */
    float *Y;           /* n_items x k */
    int64_t *liked_ptr; /* kept interactions: CSR by user, or NULL */
    int32_t *liked_idx;
    int64_t liked_rows;
} sw_als;

/* A gradient-boosted tree ensemble (learn/sw_gbdt*.c). Nodes of all
 * trees in one array; tree t is nodes[roots[t] .. roots[t + 1]), its root
 * first. A leaf has feature -1 and its value (learning rate applied); an
 * inner node goes left when x <= value, or x is NaN and its default is
 * left. 16 bytes a node, so that a 100-tree model of 255 leaves stays in
 * the cache: the children are adjacent, the left one `kids >> 1` nodes
 * after the parent, and bit 0 of kids is the default direction. */
typedef struct sw_gbdt_node {
    double value;
    int32_t feature;
    uint32_t kids;
} sw_gbdt_node;

enum { SW_GBDT_BINARY = 0, SW_GBDT_REGRESSION = 1, SW_GBDT_MULTICLASS = 2 };

typedef struct sw_gbdt {
    int objective;
    int64_t n_features;
    double base_score, learning_rate;
    int64_t best_iteration; /* -1: trained without early stopping */
    int64_t n_trees, cap_trees, n_nodes, cap_nodes;
    int64_t *roots;
    sw_gbdt_node *nodes;
    /* the training bins' upper edges, per feature: continued training
     * bins new data the same way */
    int64_t *edge_start;
    double *edges;
    double *imp_gain;
    int64_t *imp_split;
    /* multiclass: n_classes >= 3 trees per round, tree t scoring class
     * t % n_classes from base_scores[class]; 1 otherwise (base_score) */
    int64_t n_classes;
    double *base_scores;
} sw_gbdt;

/* A model's feature pipeline (sw_bundle.c): spec, inputs, golden events. */
typedef struct sw_bundle sw_bundle;

struct sw_model {
    sw_model_kind kind;
    const struct sw_model_methods *methods; /* what its kind does */
    union {
        void *impl; /* what the methods take */
        sw_linear *linear;
        sw_als *als;
        sw_gbdt *gbdt;
    } u;
    char *metadata; /* JSON text, NULL means "{}" */
    sw_rows golden; /* owned CSR copy; data NULL when unset */
    sw_bundle *bundle; /* the PIPELINE section; NULL: a plain model */
};

void sw__bundle_free(sw_bundle *b);
sw_rc sw__bundle_dup(const sw_bundle *b, sw_bundle **out, sw_err *err);
void sw__bundle_describe(const sw_bundle *b, FILE *fp);

/* Make src (an owned CSR view) the model's golden rows. */
void sw__model_adopt_golden(sw_model *m, sw_rows *src);

/* Kernels compiled for several instruction sets: SW_CLONES picked when
 * the library loads, SW_TARGET(isa) for one of them, called only where
 * sw__als_kernel_level() says the host has it. Every lane of every vector
 * does the same additions in the same order whatever the vector width, so
 * all of them give the same bits. Not in sanitizer or clang builds (their
 * kernels are the build's own). */
#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__) &&         \
    !defined(__SANITIZE_ADDRESS__)
#define SW_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#define SW_TARGET(isa) __attribute__((target(isa)))
#define SW_HAVE_CLONES 1
#else
#define SW_CLONES
#define SW_TARGET(isa)
#define SW_HAVE_CLONES 0
#endif

/* 2 AVX-512, 1 AVX2, 0 neither: the widest vectors that stay in registers
 * here, for the ALS kernels; SW_ALS_KERNELS=avx2 or =narrow caps it. */
int sw__als_kernel_level(void);

/* What the learners share across their own files (the model handle
 * reaches them only through their sw_model_methods). */
int sw__als_threads(const sw_als *a);
sw_rc sw__als_check_csr(const sw_als *a, const sw_rows *x, int64_t n_rows,
                        int64_t n_cols, const char *what, sw_err *err);
sw_rc sw__als_gram(const float *F, int64_t n, int64_t k, int threads, double *G,
                   sw_err *err);
sw_rc sw__als_solve_side(const sw_als *a, const sw_rows *R, float *S,
                         const float *O, int64_t n_other, int cholesky,
                         int threads, sw_err *err);
sw_rc sw__als_loss_of(const sw_als *a, const sw_rows *R, const sw_rows *RT,
                      int threads, double *out, sw_err *err);

void sw__gbdt_free(sw_gbdt *g);
sw_rc sw__gbdt_dup(const sw_gbdt *g, sw_gbdt **out, sw_err *err);
/* Raw scores (before the sigmoid) of the first n_trees trees. */
sw_rc sw__gbdt_raw(const sw_gbdt *g, const sw_rows *x, int64_t n_trees,
                   double *out, sw_err *err);
double sw__gbdt_output(const sw_gbdt *g, double raw);
void sw__gbdt_softmax(double *z, int64_t k);

/* A model section being written: a growable byte buffer. */
typedef struct sw_buf {
    unsigned char *p;
    size_t len;
    size_t cap;
} sw_buf;

sw_rc sw__buf_put(sw_buf *b, const void *src, size_t n, sw_err *err);
sw_rc sw__buf_put_u32(sw_buf *b, uint32_t v, sw_err *err);
sw_rc sw__buf_put_u64(sw_buf *b, uint64_t v, sw_err *err);
sw_rc sw__buf_put_f64s(sw_buf *b, const double *v, size_t n, sw_err *err);
sw_rc sw__buf_put_words(sw_buf *b, const uint64_t *w, size_t n, sw_err *err);
void sw__buf_free(sw_buf *b);

/* A bounded reader over bytes: every get checks the remaining length. */
typedef struct sw_cursor {
    const unsigned char *p;
    size_t len;
    size_t pos;
    const char *what; /* section name, for messages */
} sw_cursor;

sw_rc sw__cur_u32(sw_cursor *c, uint32_t *v, sw_err *err);
sw_rc sw__cur_u64(sw_cursor *c, uint64_t *v, sw_err *err);
sw_rc sw__cur_i64(sw_cursor *c, int64_t *v, sw_err *err);
sw_rc sw__cur_f64(sw_cursor *c, double *v, sw_err *err);
sw_rc sw__cur_f64s(sw_cursor *c, double *v, size_t n, sw_err *err);
sw_rc sw__cur_words(sw_cursor *c, uint64_t *w, size_t n, sw_err *err);

/* Files (sw_model_io.c): write through a temporary file, fsync and rename;
 * read a whole file into an owned buffer. */
sw_rc sw__write_atomic(const char *path, const unsigned char *buf, size_t len,
                       sw_err *err);
/* The same for a file made of several pieces of memory, in order (large
 * blocks are written from where they are instead of copied into one). */
typedef struct sw_part {
    const void *p;
    size_t len;
} sw_part;
sw_rc sw__write_atomic_parts(const char *path, const sw_part *parts, int n,
                             sw_err *err);
sw_rc sw__read_file(const char *path, unsigned char **out, size_t *len,
                    sw_err *err);

/* ------------------------------------------------------------------ */
/* Model kinds                                                          */
/* ------------------------------------------------------------------ */

/* What one kind of model does, as SQLite's sqlite3_io_methods or Redis's
 * dictType: sw_model.c and sw_model_io.c call through a model's methods
 * and never switch on its kind. Adding a kind is one learner file that
 * defines its table and one entry in sw__model_methods_of(). impl is the
 * kind's own object (m->u.impl). */
typedef struct sw_model_methods {
    sw_model_kind kind;
    const char *name; /* "linear", "als", "gbdt": inspect's word */
    void (*free)(void *impl);
    sw_rc (*dup)(const void *impl, void **out, sw_err *err);
    sw_rc (*predict)(const void *impl, const sw_rows *x, double *out,
                     int64_t n_out, sw_err *err);
    int64_t (*n_features)(const void *impl);
    int64_t (*n_outputs)(const void *impl);
    int64_t (*n_classes)(const void *impl); /* 0 for a regressor */
    /* the MODEL section: write it, read it (every length checked), and
     * describe it for inspect */
    sw_rc (*write)(const void *impl, sw_buf *b, sw_err *err);
    sw_rc (*read)(sw_cursor *c, void **out, sw_err *err);
    void (*describe)(const void *impl, FILE *fp);
    /* Golden rows for a model saved without any (owned by the caller);
     * NULL: eight seeded rows over the model's features. A kind that can
     * score nothing yet (ALS without users) gives zero rows. */
    sw_rc (*default_golden)(const void *impl, sw_rows *x, sw_err *err);
} sw_model_methods;

extern const sw_model_methods sw_linear_methods;
extern const sw_model_methods sw_als_methods;
extern const sw_model_methods sw_gbdt_methods;

/* The methods of a kind number (a file's header field), NULL for a kind
 * this build does not know. */
const sw_model_methods *sw__model_methods_of(uint32_t kind);

/* A new model of a kind around impl (owned by it from now on, and freed
 * with it if this fails). */
sw_rc sw__model_wrap(sw_model_kind kind, void *impl, sw_model **out,
                     sw_err *err);

/* The PIPELINE section: write (replaying the golden events to store
 * their predictions) and read (checking the header's hashes and replaying
 * the golden events, which must give the stored bits). */
sw_rc sw__bundle_write(const sw_model *m, sw_buf *out, sw_err *err);
sw_rc sw__bundle_read(sw_model *m, const unsigned char *p, size_t len,
                      uint64_t spec_hash, uint64_t schema_hash, sw_err *err);

static inline void
sw__put_le32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

static inline void
sw__put_le64(unsigned char *p, uint64_t v)
{
    sw__put_le32(p, (uint32_t)v);
    sw__put_le32(p + 4, (uint32_t)(v >> 32));
}

static inline uint32_t
sw__get_le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

static inline uint64_t
sw__get_le64(const unsigned char *p)
{
    return (uint64_t)sw__get_le32(p) | (uint64_t)sw__get_le32(p + 4) << 32;
}

#endif /* SW_INTERNAL_H */
