/* SPDX-License-Identifier: MIT */
/*
 * sw_gbdt.c - a gradient-boosted tree ensemble as a model: the
 * table-driven interpreter that scores it (the one sw-serve and Python
 * use), its MODEL section, inspect's description. Training is in
 * sw_gbdt_train.c.
 *
 * Trees are flat arrays of nodes; a row goes left when its value is <= the
 * node's threshold, or when it is NaN and the node's default is left. The
 * raw score is base_score plus the sum of the leaves reached; a binary
 * model outputs the sigmoid of it.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "sw_internal.h"

#if defined(__x86_64__) && defined(__SSE2__)
#include <emmintrin.h>
#endif

void
sw__gbdt_free(sw_gbdt *g)
{
    if (g == NULL)
        return;
    sw__free(g->nodes);
    sw__free(g->roots);
    sw__free(g->edge_start);
    sw__free(g->edges);
    sw__free(g->imp_gain);
    sw__free(g->imp_split);
    sw__free(g->base_scores);
    sw__free(g);
}

/* Whether any of x[0..n) is NaN: two at a time where SSE2 is (a sixth
 * of a row's scoring was this scan, one value at a time). */
static int
any_nan(const double *x, int64_t n)
{
    int64_t j = 0;
    int found = 0;

#if defined(__x86_64__) && defined(__SSE2__)
    __m128d acc = _mm_setzero_pd();

    for (; j + 2 <= n; j += 2) {
        __m128d v = _mm_loadu_pd(x + j);

        acc = _mm_or_pd(acc, _mm_cmpunord_pd(v, v));
    }
    found = _mm_movemask_pd(acc) != 0;
#endif
    for (; j < n; j++)
        found |= x[j] != x[j];
    return found;
}

/* The leaf a row without NaN reaches from node n: no default-direction
 * test. (kids >> 1) nodes of 16 bytes are (kids & ~1) * 8 bytes: a mask
 * and two scaled adds per node instead of a shift, a zero-extension,
 * another shift and an add. */
static inline const sw_gbdt_node *
leaf_plain(const sw_gbdt_node *n, const double *x)
{
    while (n->feature >= 0) {
        uint64_t step = (uint64_t)(n->kids & ~1u) +
                        2 * (uint64_t) !(x[n->feature] <= n->value);

        n = (const sw_gbdt_node *)((const char *)n + step * 8);
    }
    return n;
}

/* The same for any row: NaN goes the node's default way. */
static inline const sw_gbdt_node *
leaf_any(const sw_gbdt_node *n, const double *x)
{
    while (n->feature >= 0) {
        double v = x[n->feature];
        int left = v <= n->value || (v != v && (n->kids & 1));

        n += (n->kids >> 1) + !left;
    }
    return n;
}

/* One row through trees first .. n_trees - 1: the raw score, with the
 * base score when first is 0 (the whole sum, in the order training
 * added it; a later range is what those trees add to it). A row without
 * NaN (the usual case) takes leaf_plain, a fifth fewer instructions per
 * node; for a binary or regression model (the hot loop of sw-serve) in a
 * loop over trees with nothing else in it. */
static void
raw_score(const sw_gbdt *g, const double *x, int64_t first, int64_t n_trees,
          double *out)
{
    const sw_gbdt_node *nodes = g->nodes;
    const int64_t *roots = g->roots;
    double s = first == 0 ? g->base_score : 0.0;
    int64_t t, j, k = g->n_classes;
    int has_nan = any_nan(x, g->n_features);

    if (!has_nan && k <= 1) {
        for (t = first; t < n_trees; t++)
            s += leaf_plain(nodes + roots[t], x)->value;
        out[0] = s;
        return;
    }
    for (j = 0; j < k && k > 1; j++)
        out[j] = first == 0 ? g->base_scores[j] : 0.0;
    for (t = first; t < n_trees; t++) {
        const sw_gbdt_node *n = has_nan ? leaf_any(nodes + roots[t], x)
                                        : leaf_plain(nodes + roots[t], x);

        if (k > 1) /* multiclass: tree t scores class t % k */
            out[t % k] += n->value;
        else
            s += n->value;
    }
    if (k <= 1)
        out[0] = s;
}

double
sw__gbdt_output(const sw_gbdt *g, double raw)
{
    return g->objective == SW_GBDT_BINARY ? 1.0 / (1.0 + exp(-raw)) : raw;
}

static sw_rc gbdt_range(const sw_gbdt *g, const sw_rows *x, int64_t first,
                        int64_t n_trees, double *out, sw_err *err);

sw_rc
sw__gbdt_raw(const sw_gbdt *g, const sw_rows *x, int64_t n_trees, double *out,
             sw_err *err)
{
    return gbdt_range(g, x, 0, n_trees, out, err);
}

static sw_rc
gbdt_range(const sw_gbdt *g, const sw_rows *x, int64_t first, int64_t n_trees,
           double *out, sw_err *err)
{
    double stack[256], *row = stack;
    int64_t i, j, nf = g->n_features;

    if (x->layout != SW_DENSE)
        return sw__fail(err, SW_E_INVAL,
                        "gbdt: rows must be dense (NaN marks a missing value)");
    if (x->n_cols != nf)
        return sw__fail(err, SW_E_SHAPE,
                        "gbdt: rows have %lld features, the model %lld",
                        (long long)x->n_cols, (long long)nf);
    if (nf > 256 && (row = sw__alloc_array((size_t)nf, sizeof(double))) == NULL)
        return sw__fail(err, SW_E_NOMEM, "gbdt: out of memory");
    for (i = 0; i < x->n_rows; i++) {
        const double *xr;

        if (x->dtype == SW_F64) {
            xr = (const double *)x->data + i * x->row_stride;
        } else {
            const float *f = (const float *)x->data + i * x->row_stride;

            for (j = 0; j < nf; j++)
                row[j] = f[j];
            xr = row;
        }
        raw_score(g, xr, first, n_trees,
                  out + i * (g->n_classes > 1 ? g->n_classes : 1));
    }
    if (row != stack)
        sw__free(row);
    return SW_OK;
}

/* Softmax of k raw scores in place: exp(z - max) / sum. */
void
sw__gbdt_softmax(double *z, int64_t k)
{
    double m = z[0], s = 0;
    int64_t j;

    for (j = 1; j < k; j++)
        m = z[j] > m ? z[j] : m;
    for (j = 0; j < k; j++) {
        z[j] = exp(z[j] - m);
        s += z[j];
    }
    for (j = 0; j < k; j++)
        z[j] /= s;
}

static sw_rc
gbdt_predict(const sw_gbdt *g, const sw_rows *x, double *out, int64_t n_out,
             sw_err *err)
{
    int64_t i, k = g->n_classes > 1 ? g->n_classes : 1;
    sw_rc rc;

    if (n_out < x->n_rows * k)
        return sw__fail(err, SW_E_SHAPE, "gbdt: %lld outputs for %lld rows",
                        (long long)n_out, (long long)x->n_rows);
    if ((rc = sw__gbdt_raw(g, x, g->n_trees, out, err)) != SW_OK)
        return rc;
    for (i = 0; i < x->n_rows; i++) {
        if (k > 1)
            sw__gbdt_softmax(out + i * k, k);
        else
            out[i] = sw__gbdt_output(g, out[i]);
    }
    return SW_OK;
}

sw_rc
sw__gbdt_dup(const sw_gbdt *g, sw_gbdt **out, sw_err *err)
{
    sw_gbdt *c = sw__calloc(1, sizeof(*c));
    int64_t nf = g->n_features, ne = g->edge_start[nf];

    *out = NULL;
    if (c == NULL)
        return sw__fail(err, SW_E_NOMEM, "gbdt: out of memory");
    *c = *g;
    c->base_scores = g->n_classes > 1
                         ? sw__alloc_array((size_t)g->n_classes, sizeof(double))
                         : NULL;
    c->nodes = sw__alloc_array((size_t)(g->n_nodes ? g->n_nodes : 1),
                               sizeof(sw_gbdt_node));
    c->roots = sw__alloc_array((size_t)g->n_trees + 1, sizeof(int64_t));
    c->edge_start = sw__alloc_array((size_t)nf + 1, sizeof(int64_t));
    c->edges = sw__alloc_array((size_t)(ne ? ne : 1), sizeof(double));
    c->imp_gain = sw__alloc_array((size_t)nf, sizeof(double));
    c->imp_split = sw__alloc_array((size_t)nf, sizeof(int64_t));
    c->cap_nodes = g->n_nodes;
    c->cap_trees = g->n_trees;

    if (!c->nodes || !c->roots || !c->edge_start || !c->edges || !c->imp_gain ||
        !c->imp_split || (g->n_classes > 1 && !c->base_scores)) {
        sw__gbdt_free(c);
        return sw__fail(err, SW_E_NOMEM, "gbdt: out of memory");
    }
    memcpy(c->nodes, g->nodes, (size_t)g->n_nodes * sizeof(sw_gbdt_node));
    memcpy(c->roots, g->roots, ((size_t)g->n_trees + 1) * sizeof(int64_t));
    memcpy(c->edge_start, g->edge_start, ((size_t)nf + 1) * sizeof(int64_t));
    memcpy(c->edges, g->edges, (size_t)ne * sizeof(double));
    memcpy(c->imp_gain, g->imp_gain, (size_t)nf * sizeof(double));
    memcpy(c->imp_split, g->imp_split, (size_t)nf * sizeof(int64_t));
    if (g->n_classes > 1)
        memcpy(c->base_scores, g->base_scores,
               (size_t)g->n_classes * sizeof(double));
    *out = c;
    return SW_OK;
}

/* MODEL section: u32 objective, u32 0, u64 n_features, f64 base_score,
 * f64 learning_rate, u64 best_iteration + 1 (0: none), u64 n_trees, u64
 * n_nodes,
 * u64 roots[n_trees + 1], per node (f64 value, u32 feature + 1, u32
 * default_left, u64 left, u64 right), u64 edge_start[n_features + 1],
 * f64 edges[...], f64 importance_gain[n_features], u64
 * importance_split[n_features]. */
static sw_rc
gbdt_write(const sw_gbdt *g, sw_buf *b, sw_err *err)
{
    const double par[2] = {g->base_score, g->learning_rate};
    int64_t i, nf = g->n_features;
    sw_rc rc;

    if ((rc = sw__buf_put_u32(b, (uint32_t)g->objective, err)) != SW_OK ||
        (rc = sw__buf_put_u32(b, g->n_classes > 1 ? (uint32_t)g->n_classes : 0,
                              err)) != SW_OK ||
        (rc = sw__buf_put_u64(b, (uint64_t)nf, err)) != SW_OK ||
        (rc = sw__buf_put_f64s(b, par, 2, err)) != SW_OK ||
        (rc = sw__buf_put_u64(b, (uint64_t)(g->best_iteration + 1), err)) !=
            SW_OK ||
        (rc = sw__buf_put_u64(b, (uint64_t)g->n_trees, err)) != SW_OK ||
        (rc = sw__buf_put_u64(b, (uint64_t)g->n_nodes, err)) != SW_OK)
        return rc;
    for (i = 0; rc == SW_OK && i <= g->n_trees; i++)
        rc = sw__buf_put_u64(b, (uint64_t)g->roots[i], err);
    for (i = 0; rc == SW_OK && i < g->n_nodes; i++) {
        const sw_gbdt_node *n = &g->nodes[i];

        uint64_t left = n->feature < 0 ? 0 : (uint64_t)i + (n->kids >> 1);

        if ((rc = sw__buf_put_f64s(b, &n->value, 1, err)) != SW_OK ||
            (rc = sw__buf_put_u32(b, (uint32_t)(n->feature + 1), err)) !=
                SW_OK ||
            (rc = sw__buf_put_u32(b, n->kids & 1, err)) != SW_OK ||
            (rc = sw__buf_put_u64(b, left, err)) != SW_OK)
            break;
        rc = sw__buf_put_u64(b, n->feature < 0 ? 0 : left + 1, err);
    }
    for (i = 0; rc == SW_OK && i <= nf; i++)
        rc = sw__buf_put_u64(b, (uint64_t)g->edge_start[i], err);
    if (rc == SW_OK)
        rc = sw__buf_put_f64s(b, g->edges, (size_t)g->edge_start[nf], err);
    if (rc == SW_OK)
        rc = sw__buf_put_f64s(b, g->imp_gain, (size_t)nf, err);
    for (i = 0; rc == SW_OK && i < nf; i++)
        rc = sw__buf_put_u64(b, (uint64_t)g->imp_split[i], err);
    if (rc == SW_OK && g->n_classes > 1)
        rc = sw__buf_put_f64s(b, g->base_scores, (size_t)g->n_classes, err);
    return rc;
}

static sw_rc
bad(sw_err *err, const char *what)
{
    return sw__fail(err, SW_E_FORMAT, "MODEL: gbdt %s", what);
}

/* Node i of the tree [lo, hi) from its stored fields: children must be
 * adjacent and point forward inside the tree, so that scoring a loaded
 * file can neither loop nor read out of bounds. */
static sw_rc
set_node(sw_gbdt *g, int64_t i, int64_t hi, uint32_t f, uint32_t dl, uint64_t l,
         uint64_t r, sw_err *err)
{
    sw_gbdt_node *n = &g->nodes[i];

    n->feature = (int32_t)f - 1;
    n->kids = 0;
    if (f == 0)
        return SW_OK;
    if ((int64_t)f > g->n_features || dl > 1 || l <= (uint64_t)i ||
        r != l + 1 || r >= (uint64_t)hi || l - (uint64_t)i > 0x7fffffffu ||
        n->value != n->value)
        return bad(err, "node out of range");
    n->kids = (uint32_t)(l - (uint64_t)i) << 1 | dl;
    return SW_OK;
}

static sw_rc
gbdt_read(sw_cursor *c, sw_gbdt **out, sw_err *err)
{
    sw_gbdt *g = sw__calloc(1, sizeof(*g));
    uint32_t obj, pad;
    uint64_t nf, best, nt, nn, u;
    double par[2];
    int64_t i, t;
    sw_rc rc;

    *out = NULL;
    if (g == NULL)
        return sw__fail(err, SW_E_NOMEM, "load: out of memory");
    if ((rc = sw__cur_u32(c, &obj, err)) != SW_OK ||
        (rc = sw__cur_u32(c, &pad, err)) != SW_OK ||
        (rc = sw__cur_u64(c, &nf, err)) != SW_OK ||
        (rc = sw__cur_f64s(c, par, 2, err)) != SW_OK ||
        (rc = sw__cur_u64(c, &best, err)) != SW_OK ||
        (rc = sw__cur_u64(c, &nt, err)) != SW_OK ||
        (rc = sw__cur_u64(c, &nn, err)) != SW_OK)
        goto done;
    /* every node takes 32 bytes: a count beyond the section is a lie */
    if (obj > 2 || nf == 0 || nf > (1u << 24) || nt > nn ||
        nn > (c->len - c->pos) / 32 || best > nt ||
        (obj == SW_GBDT_MULTICLASS) != (pad != 0) ||
        (pad != 0 && (pad < 3 || pad > 65536 || nt % pad != 0))) {
        rc = bad(err, "header out of range");
        goto done;
    }
    g->n_classes = pad ? (int64_t)pad : 1;
    g->objective = (int)obj;
    g->n_features = (int64_t)nf;
    g->base_score = par[0];
    g->learning_rate = par[1];
    g->best_iteration = (int64_t)best - 1; /* -1: no early stopping */
    g->n_trees = g->cap_trees = (int64_t)nt;
    g->n_nodes = g->cap_nodes = (int64_t)nn;
    g->roots = sw__alloc_array(nt + 1, sizeof(int64_t));
    g->nodes = sw__alloc_array(nn ? nn : 1, sizeof(sw_gbdt_node));
    g->edge_start = sw__alloc_array(nf + 1, sizeof(int64_t));
    g->imp_gain = sw__alloc_array(nf, sizeof(double));
    g->imp_split = sw__alloc_array(nf, sizeof(int64_t));
    if (!g->roots || !g->nodes || !g->edge_start || !g->imp_gain ||
        !g->imp_split) {
        rc = sw__fail(err, SW_E_NOMEM, "load: out of memory");
        goto done;
    }
    for (i = 0; rc == SW_OK && i <= (int64_t)nt; i++) {
        rc = sw__cur_u64(c, &u, err);
        g->roots[i] = (int64_t)u;
        if (rc == SW_OK && (u > nn || (i > 0 && g->roots[i] < g->roots[i - 1])))
            rc = bad(err, "tree offsets out of order");
    }
    if (rc == SW_OK && (g->roots[0] != 0 || g->roots[nt] != (int64_t)nn))
        rc = bad(err, "tree offsets do not cover the nodes");
    for (t = 0; rc == SW_OK && t < (int64_t)nt; t++) {
        if (g->roots[t + 1] <= g->roots[t])
            rc = bad(err, "tree without nodes");
        for (i = g->roots[t]; rc == SW_OK && i < g->roots[t + 1]; i++) {
            uint32_t f, dl;
            uint64_t l, r;

            if ((rc = sw__cur_f64(c, &g->nodes[i].value, err)) != SW_OK ||
                (rc = sw__cur_u32(c, &f, err)) != SW_OK ||
                (rc = sw__cur_u32(c, &dl, err)) != SW_OK ||
                (rc = sw__cur_u64(c, &l, err)) != SW_OK ||
                (rc = sw__cur_u64(c, &r, err)) != SW_OK)
                break;
            rc = set_node(g, i, g->roots[t + 1], f, dl, l, r, err);
        }
    }
    for (i = 0; rc == SW_OK && i <= (int64_t)nf; i++) {
        rc = sw__cur_u64(c, &u, err);
        g->edge_start[i] = (int64_t)u;
        if (rc == SW_OK &&
            (u > (c->len - c->pos) / 8 + g->edge_start[0] ||
             (i > 0 && g->edge_start[i] < g->edge_start[i - 1]) ||
             /* 255 bins at most: 254 edges, then the NaN bin in a byte */
             (i > 0 && g->edge_start[i] - g->edge_start[i - 1] > 254) ||
             (i == 0 && u != 0)))
            rc = bad(err, "bin edges out of range");
    }
    if (rc != SW_OK)
        goto done;
    g->edges = sw__alloc_array(
        (size_t)(g->edge_start[nf] ? g->edge_start[nf] : 1), sizeof(double));
    if (g->edges == NULL) {
        rc = sw__fail(err, SW_E_NOMEM, "load: out of memory");
        goto done;
    }
    if ((rc = sw__cur_f64s(c, g->edges, (size_t)g->edge_start[nf], err)) !=
            SW_OK ||
        (rc = sw__cur_f64s(c, g->imp_gain, (size_t)nf, err)) != SW_OK)
        goto done;
    for (i = 0; rc == SW_OK && i < (int64_t)nf; i++) {
        rc = sw__cur_u64(c, &u, err);
        g->imp_split[i] = (int64_t)u;
    }
    if (rc == SW_OK && g->n_classes > 1) {
        g->base_scores = sw__alloc_array((size_t)g->n_classes, sizeof(double));
        if (g->base_scores == NULL)
            rc = sw__fail(err, SW_E_NOMEM, "load: out of memory");
        else
            rc = sw__cur_f64s(c, g->base_scores, (size_t)g->n_classes, err);
    }
done:
    if (rc != SW_OK) {
        sw__gbdt_free(g);
        return rc;
    }
    *out = g;
    return SW_OK;
}

static void
gbdt_describe(const sw_gbdt *g, FILE *fp)
{
    int64_t t, leaves = 0, depth = 0;

    for (t = 0; t < g->n_nodes; t++)
        leaves += g->nodes[t].feature < 0;
    (void)depth;
    fprintf(fp,
            "  gbdt         %s, %lld trees (best iteration %lld), %lld "
            "leaves\n",
            g->objective == SW_GBDT_BINARY       ? "binary log-loss"
            : g->objective == SW_GBDT_MULTICLASS ? "multiclass softmax"
                                                 : "L2 regression",
            (long long)g->n_trees, (long long)g->best_iteration,
            (long long)leaves);
    fprintf(fp, "  base score   %.17g, learning rate %g\n", g->base_score,
            g->learning_rate);
}

/* Public accessors. */
static const sw_gbdt *
gbdt_of(const sw_model *m)
{
    return m != NULL && m->kind == SW_MODEL_GBDT ? m->u.gbdt : NULL;
}

int64_t
sw_gbdt_n_trees(const sw_model *m)
{
    const sw_gbdt *g = gbdt_of(m);

    return g ? g->n_trees : 0;
}

int64_t
sw_gbdt_best_iteration(const sw_model *m)
{
    const sw_gbdt *g = gbdt_of(m);

    return g ? g->best_iteration : -1;
}

sw_rc
sw_gbdt_predict_raw(const sw_model *m, const sw_rows *x, int64_t first,
                    int64_t n_trees, double *out, int64_t n_out, sw_err *err)
{
    const sw_gbdt *g = gbdt_of(m);
    int64_t k;

    if (g == NULL)
        return sw__fail(err, SW_E_INVAL, "predict_raw: not a gbdt model");
    if (first < 0 || n_trees < 0 || first > g->n_trees ||
        n_trees > g->n_trees - first)
        return sw__fail(err, SW_E_INVAL,
                        "predict_raw: trees %lld .. %lld, the model has %lld",
                        (long long)first, (long long)(first + n_trees - 1),
                        (long long)g->n_trees);
    k = g->n_classes > 1 ? g->n_classes : 1;
    if (n_out != x->n_rows * k)
        return sw__fail(
            err, SW_E_SHAPE,
            "predict_raw: %lld outputs for %lld rows, expected %lld",
            (long long)n_out, (long long)x->n_rows, (long long)(x->n_rows * k));
    return gbdt_range(g, x, first, first + n_trees, out, err);
}

sw_rc
sw_gbdt_importance(const sw_model *m, sw_importance by_gain, double *out,
                   int64_t n, sw_err *err)
{
    const sw_gbdt *g = gbdt_of(m);
    int64_t i;

    if (g == NULL)
        return sw__fail(err, SW_E_INVAL, "importance: not a gbdt model");
    if (n != g->n_features)
        return sw__fail(err, SW_E_SHAPE,
                        "importance: %lld values for %lld "
                        "features",
                        (long long)n, (long long)g->n_features);
    for (i = 0; i < n; i++)
        out[i] = by_gain ? g->imp_gain[i] : (double)g->imp_split[i];
    return SW_OK;
}

/* ------------------------------------------------------------------ */
/* The gbdt kind's methods (sw_model_methods)                           */
/* ------------------------------------------------------------------ */

static void
m_free(void *impl)
{
    sw__gbdt_free(impl);
}

static sw_rc
m_dup(const void *impl, void **out, sw_err *err)
{
    sw_gbdt *c = NULL;
    sw_rc rc = sw__gbdt_dup(impl, &c, err);

    *out = c;
    return rc;
}

static sw_rc
m_predict(const void *impl, const sw_rows *x, double *out, int64_t n_out,
          sw_err *err)
{
    return gbdt_predict(impl, x, out, n_out, err);
}

static int64_t
m_n_features(const void *impl)
{
    return ((const sw_gbdt *)impl)->n_features;
}

static int64_t
m_n_outputs(const void *impl)
{
    const sw_gbdt *g = impl;

    return g->n_classes > 1 ? g->n_classes : 1;
}

static int64_t
m_n_classes(const void *impl)
{
    const sw_gbdt *g = impl;

    return g->objective == SW_GBDT_BINARY       ? 2
           : g->objective == SW_GBDT_MULTICLASS ? g->n_classes
                                                : 0;
}

static sw_rc
m_write(const void *impl, sw_buf *b, sw_err *err)
{
    return gbdt_write(impl, b, err);
}

static sw_rc
m_read(sw_cursor *c, void **out, sw_err *err)
{
    sw_gbdt *g = NULL;
    sw_rc rc = gbdt_read(c, &g, err);

    *out = g;
    return rc;
}

static void
m_describe(const void *impl, FILE *fp)
{
    gbdt_describe(impl, fp);
}

const sw_model_methods sw_gbdt_methods = {
    .kind = SW_MODEL_GBDT,
    .name = "gbdt",
    .free = m_free,
    .dup = m_dup,
    .predict = m_predict,
    .n_features = m_n_features,
    .n_outputs = m_n_outputs,
    .n_classes = m_n_classes,
    .write = m_write,
    .read = m_read,
    .describe = m_describe,
    .default_golden = NULL,
};
