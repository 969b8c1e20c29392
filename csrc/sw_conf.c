/* SPDX-License-Identifier: MIT */
/*
 * sw_conf.c - every tunable in streamwise, in one table.
 *
 * sw_conf_set() validates against the table, sw_conf_describe() prints it,
 * the Python classes read it for their keyword arguments, and `make
 * conf-doc` turns it into CONFIGURATION.md, so the code, the error messages
 * and the documentation cannot drift apart. A conf stores every value as a
 * double: numbers as themselves, enums as the index of the choice, booleans
 * as 0 or 1.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "sw_internal.h"

typedef struct sw_prop {
    const char *name;
    sw_prop_type type;
    double min, max;
    int min_open, max_open; /* 1: the bound itself is excluded */
    const char *def;
    const char *choices; /* enums: "a,b,c" */
    const char *doc;
} sw_prop;

static const sw_prop props[] = {
    {"linear.task", SW_T_ENUM, 0, 0, 0, 0, "classification",
     "classification,regression",
     "What a linear learner predicts: classes (binary or multiclass) or a "
     "real value (epsilon-insensitive regression, PA only)."},
    {"linear.algorithm", SW_T_ENUM, 0, 0, 0, 0, "pa", "pa,scw",
     "Update rule family: passive-aggressive (Crammer et al. 2006) or soft "
     "confidence-weighted (Wang, Zhao, Hoi 2012)."},
    {"linear.fit_intercept", SW_T_BOOL, 0, 1, 0, 0, "true", NULL,
     "Learn an intercept as the weight of an extra feature that is always 1 "
     "(it counts in the norm of x)."},
    {"pa.C", SW_T_DBL, 0, 1e12, 1, 0, "1.0", NULL,
     "Aggressiveness C of PA-I and PA-II; unused by plain PA."},
    {"pa.variant", SW_T_ENUM, 0, 0, 0, 0, "pa1", "pa,pa1,pa2",
     "PA update: pa (hard margin), pa1 (step capped at C) or pa2 (squared "
     "slack, step shrunk by 1/(2C))."},
    {"pa.epsilon", SW_T_DBL, 0, 1e300, 0, 0, "0.1", NULL,
     "Width of the insensitive band of PA regression: errors up to epsilon "
     "cost nothing."},
    {"scw.C", SW_T_DBL, 0, 1e12, 1, 0, "1.0", NULL,
     "Aggressiveness C of SCW-I and SCW-II."},
    {"scw.eta", SW_T_DBL, 0.5, 1, 1, 1, "0.9", NULL,
     "Confidence eta of SCW: the probability of a correct prediction the "
     "update asks for; phi = inverse normal CDF of eta."},
    {"scw.variant", SW_T_ENUM, 0, 0, 0, 0, "scw1", "scw1,scw2",
     "SCW update: scw1 (step capped at C) or scw2 (squared slack)."},
    {"scw.covariance", SW_T_ENUM, 0, 0, 0, 0, "diag", "diag,full",
     "Covariance of SCW: diagonal (any dimension, hashed sparse input) or "
     "full (n_features + intercept at most 2048)."},
    {"scw.a", SW_T_DBL, 0, 1e12, 1, 0, "1.0", NULL,
     "Initial variance a of every weight of SCW (Sigma_0 = a I)."},
    {"als.factors", SW_T_INT, 1, 4096, 0, 0, "64", NULL,
     "Latent factors k of ALS: the length of every user and item vector."},
    {"als.regularization", SW_T_DBL, 0, 1e12, 0, 0, "0.01", NULL,
     "L2 regularization lambda of ALS (times n_u per row with "
     "als.reg_scaling=n_u)."},
    {"als.alpha", SW_T_DBL, 0, 1e12, 1, 0, "1.0", NULL,
     "Confidence scale alpha of implicit ALS: c = alpha r (linear) or "
     "1 + alpha r (hu)."},
    {"als.iterations", SW_T_INT, 0, 1e6, 0, 0, "15", NULL,
     "Sweeps (users, then items) that fit makes."},
    {"als.solver", SW_T_ENUM, 0, 0, 0, 0, "cg", "cg,cholesky",
     "Implicit ALS row solver: conjugate gradient warm-started from the "
     "previous factors (als.cg_steps steps) or an exact Cholesky solve."},
    {"als.cg_steps", SW_T_INT, 1, 1000, 0, 0, "3", NULL,
     "Conjugate-gradient steps per row and sweep."},
    {"als.confidence", SW_T_ENUM, 0, 0, 0, 0, "linear", "linear,hu",
     "Confidence of an interaction r: linear c = alpha r (as the implicit "
     "library) or hu c = 1 + alpha r (Hu, Koren, Volinsky 2008; Spark)."},
    {"als.reg_scaling", SW_T_ENUM, 0, 0, 0, 0, "none", "none,n_u",
     "Regularization per row: none (lambda) or n_u (lambda times the row's "
     "interactions, ALS-WR as Zhou et al. 2008 and Spark)."},
    {"als.explicit", SW_T_BOOL, 0, 1, 0, 0, "false", NULL,
     "Explicit feedback: fit ratings on the observed entries only (squared "
     "error), instead of implicit preferences with confidences."},
    {"als.seed", SW_T_INT, 0, 9007199254740991.0, 0, 0, "0", NULL,
     "Seed of the initial factors (uniform in [0, als.init_scale))."},
    {"als.init_scale", SW_T_DBL, 0, 1e6, 0, 0, "0", NULL,
     "Initial factors are uniform in [0, init_scale); 0 picks 0.01 for "
     "implicit feedback (as the implicit library) and 0.1 for explicit "
     "ratings, where small starts converge slowly."},
    {"als.threads", SW_T_INT, 0, 256, 0, 0, "0", NULL,
     "Threads of ALS training and batch recommendation; 0 uses every CPU. "
     "Results do not depend on it."},
    {"gbdt.objective", SW_T_ENUM, 0, 0, 0, 0, "binary",
     "binary,regression,multiclass",
     "What the trees fit: binary log-loss (labels 0/1, output the "
     "probability of 1), L2 regression, or multiclass softmax (labels "
     "0..gbdt.num_class-1, one tree per class and round, output the "
     "class probabilities)."},
    {"gbdt.num_class", SW_T_INT, 0, 65536, 0, 0, "0", NULL,
     "Classes of a multiclass model (at least 3); 0 takes the largest "
     "label + 1."},
    {"gbdt.n_estimators", SW_T_INT, 0, 1e6, 0, 0, "100", NULL,
     "Boosting rounds: one tree each."},
    {"gbdt.learning_rate", SW_T_DBL, 0, 1e6, 1, 0, "0.1", NULL,
     "Shrinkage: every leaf value is multiplied by it."},
    {"gbdt.num_leaves", SW_T_INT, 2, 131072, 0, 0, "31", NULL,
     "Most leaves per tree (leaf-wise growth: the leaf with the best gain "
     "splits next)."},
    {"gbdt.max_depth", SW_T_INT, -1, 64, 0, 0, "-1", NULL,
     "Deepest a leaf may be; -1 or 0: no limit."},
    {"gbdt.grow_policy", SW_T_ENUM, 0, 0, 0, 0, "leafwise",
     "leafwise,depthwise",
     "leafwise: the leaf with the best gain splits next; depthwise: level by "
     "level down to gbdt.max_depth (required), as xgboost's default. "
     "gbdt.num_leaves caps both."},
    {"gbdt.max_bin", SW_T_INT, 2, 255, 0, 0, "255", NULL,
     "Most value bins per feature (plus one for NaN), from quantiles of a "
     "row sample."},
    {"gbdt.bin_sample", SW_T_INT, 1, 1e9, 0, 0, "200000", NULL,
     "Rows sampled (seeded) to find the bin edges."},
    {"gbdt.min_data_in_leaf", SW_T_INT, 1, 1e12, 0, 0, "20", NULL,
     "Fewest training rows a leaf may hold."},
    {"gbdt.min_sum_hessian_in_leaf", SW_T_DBL, 0, 1e300, 0, 0, "1e-3", NULL,
     "Smallest sum of hessians a leaf may hold."},
    {"gbdt.lambda_l1", SW_T_DBL, 0, 1e300, 0, 0, "0", NULL,
     "L1 penalty on leaf values (soft-thresholds the gradient sum)."},
    {"gbdt.lambda_l2", SW_T_DBL, 0, 1e300, 0, 0, "0", NULL,
     "L2 penalty on leaf values."},
    {"gbdt.min_gain_to_split", SW_T_DBL, 0, 1e300, 0, 0, "0", NULL,
     "Smallest gain (un-halved, as LightGBM and xgboost) a split needs."},
    {"gbdt.max_delta_step", SW_T_DBL, 0, 1e300, 0, 0, "0", NULL,
     "Largest absolute leaf value before the learning rate; 0: no limit."},
    {"gbdt.bagging_fraction", SW_T_DBL, 0, 1, 1, 0, "1.0", NULL,
     "Share of rows (seeded draw, new each round) each tree is grown on."},
    {"gbdt.feature_fraction", SW_T_DBL, 0, 1, 1, 0, "1.0", NULL,
     "Share of features (seeded draw, new each tree) a tree may split on."},
    {"gbdt.seed", SW_T_INT, 0, 9007199254740991.0, 0, 0, "0", NULL,
     "Seed of the bin sample, bagging and feature fraction."},
    {"gbdt.early_stopping_rounds", SW_T_INT, 0, 1e6, 0, 0, "0", NULL,
     "With a validation set: stop when its loss has not improved for this "
     "many rounds and keep the trees up to the best; 0: never."},
    {"gbdt.threads", SW_T_INT, 0, 256, 0, 0, "1", NULL,
     "Threads of histogram building; 0 uses every CPU. The model does not "
     "depend on it."},
};

#define N_PROPS ((int)(sizeof(props) / sizeof(props[0])))

struct sw_conf {
    double val[N_PROPS];
};

static const sw_prop *
find_prop(const char *name)
{
    int i;

    for (i = 0; i < N_PROPS; i++) {
        if (strcmp(props[i].name, name) == 0)
            return &props[i];
    }
    return NULL;
}

/* Index of value among the comma-separated choices, or -1. */
static int
choice_index(const char *choices, const char *value)
{
    size_t n = strlen(value);
    const char *p = choices;
    int i = 0;

    while (*p != '\0') {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);

        if (len == n && strncmp(p, value, n) == 0)
            return i;
        if (end == NULL)
            break;
        p = end + 1;
        i++;
    }
    return -1;
}

/* Copy choice number k of choices into buf. */
static void
choice_name(const char *choices, int k, char *buf, size_t buf_len)
{
    const char *p = choices;
    size_t len;

    while (k-- > 0 && strchr(p, ',') != NULL)
        p = strchr(p, ',') + 1;
    len = strchr(p, ',') ? (size_t)(strchr(p, ',') - p) : strlen(p);
    snprintf(buf, buf_len, "%.*s", (int)len, p);
}

static sw_rc
parse_value(const sw_prop *p, const char *value, double *out, sw_err *err)
{
    char *end;
    double v;
    int k;

    switch (p->type) {
    case SW_T_ENUM:
        k = choice_index(p->choices, value);
        if (k < 0)
            return sw__fail(err, SW_E_INVAL, "%s: '%s' is not one of %s",
                            p->name, value, p->choices);
        *out = k;
        return SW_OK;
    case SW_T_BOOL:
        if (!strcmp(value, "true") || !strcmp(value, "1") ||
            !strcmp(value, "yes")) {
            *out = 1;
        } else if (!strcmp(value, "false") || !strcmp(value, "0") ||
                   !strcmp(value, "no")) {
            *out = 0;
        } else {
            return sw__fail(err, SW_E_INVAL,
                            "%s: '%s' is not a boolean (true or false)",
                            p->name, value);
        }
        return SW_OK;
    case SW_T_DBL:
    case SW_T_INT:
        break;
    }
    errno = 0;
    v = strtod(value, &end);
    if (end == value || *end != '\0' || errno == ERANGE || isnan(v))
        return sw__fail(err, SW_E_INVAL, "%s: '%s' is not a number", p->name,
                        value);
    if (p->type == SW_T_INT && (v != floor(v) || fabs(v) > 9.0e15))
        return sw__fail(err, SW_E_INVAL, "%s: '%s' is not an integer", p->name,
                        value);
    if (v < p->min || v > p->max || (p->min_open && v == p->min) ||
        (p->max_open && v == p->max))
        return sw__fail(err, SW_E_INVAL, "%s: %s is outside %s%g, %g%s",
                        p->name, value, p->min_open ? "(" : "[", p->min, p->max,
                        p->max_open ? ")" : "]");
    *out = v;
    return SW_OK;
}

sw_rc
sw_conf_new(sw_conf **out, sw_err *err)
{
    sw_conf *conf;
    int i;

    *out = NULL;
    conf = sw__malloc(sizeof(*conf));
    if (conf == NULL)
        return sw__fail(err, SW_E_NOMEM, "conf: out of memory");
    for (i = 0; i < N_PROPS; i++) {
        /* The defaults are ours: a failure here is a bug in the table. */
        if (parse_value(&props[i], props[i].def, &conf->val[i], err) != SW_OK) {
            sw__free(conf);
            return sw__fail(err, SW_E_INTERNAL, "conf: bad default for %s",
                            props[i].name);
        }
    }
    *out = conf;
    return SW_OK;
}

sw_rc
sw_conf_set(sw_conf *conf, const char *name, const char *value, sw_err *err)
{
    const sw_prop *p;
    double v;
    sw_rc rc;

    if (conf == NULL || name == NULL || value == NULL)
        return sw__fail(err, SW_E_INVAL, "sw_conf_set: NULL argument");
    p = find_prop(name);
    if (p == NULL)
        return sw__fail(err, SW_E_INVAL, "unknown property '%s'", name);
    rc = parse_value(p, value, &v, err);
    if (rc != SW_OK)
        return rc;
    conf->val[p - props] = v;
    return SW_OK;
}

sw_rc
sw_conf_get(const sw_conf *conf, const char *name, char *buf, size_t buf_len,
            sw_err *err)
{
    const sw_prop *p;
    double v;

    if (conf == NULL || name == NULL || buf == NULL || buf_len == 0)
        return sw__fail(err, SW_E_INVAL, "sw_conf_get: NULL argument");
    p = find_prop(name);
    if (p == NULL)
        return sw__fail(err, SW_E_INVAL, "unknown property '%s'", name);
    v = conf->val[p - props];
    switch (p->type) {
    case SW_T_ENUM:
        choice_name(p->choices, (int)v, buf, buf_len);
        break;
    case SW_T_BOOL:
        snprintf(buf, buf_len, "%s", v != 0 ? "true" : "false");
        break;
    case SW_T_INT:
        snprintf(buf, buf_len, "%.0f", v);
        break;
    case SW_T_DBL:
        snprintf(buf, buf_len, "%.17g", v);
        break;
    }
    return SW_OK;
}

sw_rc
sw_conf_dup(const sw_conf *conf, sw_conf **out, sw_err *err)
{
    sw_conf *c;

    *out = NULL;
    c = sw__malloc(sizeof(*c));
    if (c == NULL)
        return sw__fail(err, SW_E_NOMEM, "conf: out of memory");
    memcpy(c, conf, sizeof(*c));
    *out = c;
    return SW_OK;
}

void
sw_conf_free(sw_conf *conf)
{
    sw__free(conf);
}

/* Internal readers: the name must be in the table (a bug otherwise). */
double
sw__conf_num(const sw_conf *conf, const char *name)
{
    const sw_prop *p = find_prop(name);

    SW_ASSERT(p != NULL);
    return conf->val[p - props];
}

int
sw__conf_choice(const sw_conf *conf, const char *name)
{
    return (int)sw__conf_num(conf, name);
}

int
sw_conf_n_props(void)
{
    return N_PROPS;
}

static void
format_range(const sw_prop *p, char *buf, size_t buf_len)
{
    size_t i, j = 0;

    switch (p->type) {
    case SW_T_ENUM:
        for (i = 0; p->choices[i] != '\0' && j + 3 < buf_len; i++) {
            buf[j++] = p->choices[i];
            if (p->choices[i] == ',')
                buf[j++] = ' ';
        }
        buf[j] = '\0';
        break;
    case SW_T_BOOL:
        snprintf(buf, buf_len, "true, false");
        break;
    default:
        snprintf(buf, buf_len, "%s%g, %g%s", p->min_open ? "(" : "[", p->min,
                 p->max, p->max_open ? ")" : "]");
        break;
    }
}

sw_rc
sw_conf_prop(int i, const char **name, sw_prop_type *type, const char **def,
             char *range, size_t range_len, const char **doc, sw_err *err)
{
    const sw_prop *p;

    if (i < 0 || i >= N_PROPS)
        return sw__fail(err, SW_E_INVAL, "property %d: expected 0..%d", i,
                        N_PROPS - 1);
    p = &props[i];
    if (name != NULL)
        *name = p->name;
    if (type != NULL)
        *type = p->type;
    if (def != NULL)
        *def = p->def;
    if (range != NULL && range_len > 0)
        format_range(p, range, range_len);
    if (doc != NULL)
        *doc = p->doc;
    return SW_OK;
}

void
sw_conf_describe(FILE *fp)
{
    static const char *const type_names[] = {"float", "integer", "choice",
                                             "boolean"};
    char range[128];
    int i;

    fprintf(fp, "# Configuration properties\n\n"
                "Generated by `make conf-doc` from the property table in "
                "`csrc/sw_conf.c`; do not edit.\n"
                "The Python keyword arguments and the C API (`sw_conf_set`) "
                "set these properties\nand share their validation.\n\n"
                "| property | type | default | accepted | what it does |\n"
                "|---|---|---|---|---|\n");
    for (i = 0; i < N_PROPS; i++) {
        format_range(&props[i], range, sizeof(range));
        fprintf(fp, "| `%s` | %s | `%s` | %s | %s |\n", props[i].name,
                type_names[props[i].type], props[i].def, range, props[i].doc);
    }
}
