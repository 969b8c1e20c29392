/* SPDX-License-Identifier: MIT */
/*
 * test_conf.c - the property table: defaults, range edges, bad text,
 * unknown names, and that a failed set leaves the conf unchanged.
 */
#include <string.h>

#include "sw_test.h"

static void
check_get(const sw_conf *conf, const char *name, const char *want)
{
    char buf[64];
    sw_err err = {0};

    CHECK_RC(sw_conf_get(conf, name, buf, sizeof(buf), &err), SW_OK, &err);
    CHECK(strcmp(buf, want) == 0);
    if (strcmp(buf, want) != 0)
        fprintf(stderr, "  %s = '%s', expected '%s'\n", name, buf, want);
}

void
test_conf(void)
{
    sw_conf *conf = NULL, *copy = NULL;
    sw_err err = {0};
    const char *name, *def, *doc;
    char range[64];
    sw_prop_type type;
    int i;

    CHECK_RC(sw_conf_new(&conf, &err), SW_OK, &err);
    check_get(conf, "pa.C", "1");
    check_get(conf, "pa.variant", "pa1");
    check_get(conf, "scw.eta", "0.90000000000000002");
    check_get(conf, "linear.fit_intercept", "true");

    /* every default parses back to itself through sw_conf_set */
    for (i = 0; i < sw_conf_n_props(); i++) {
        CHECK_RC(sw_conf_prop(i, &name, &type, &def, range, sizeof(range), &doc,
                              &err),
                 SW_OK, &err);
        CHECK_RC(sw_conf_set(conf, name, def, &err), SW_OK, &err);
        CHECK(strlen(doc) > 10);
        CHECK(strlen(range) > 0);
    }
    CHECK_RC(
        sw_conf_prop(sw_conf_n_props(), &name, NULL, NULL, NULL, 0, NULL, &err),
        SW_E_INVAL, &err);

    /* range edges: pa.C is (0, 1e12] */
    CHECK_RC(sw_conf_set(conf, "pa.C", "0", &err), SW_E_INVAL, &err);
    CHECK(strstr(err.msg, "pa.C") != NULL && strstr(err.msg, "(0") != NULL);
    CHECK_RC(sw_conf_set(conf, "pa.C", "1e12", &err), SW_OK, &err);
    CHECK_RC(sw_conf_set(conf, "pa.C", "1.0000001e12", &err), SW_E_INVAL, &err);
    CHECK_RC(sw_conf_set(conf, "pa.C", "-1", &err), SW_E_INVAL, &err);
    check_get(conf, "pa.C", "1000000000000"); /* failed sets changed nothing */
    /* scw.eta is (0.5, 1): both ends excluded */
    CHECK_RC(sw_conf_set(conf, "scw.eta", "0.5", &err), SW_E_INVAL, &err);
    CHECK_RC(sw_conf_set(conf, "scw.eta", "1", &err), SW_E_INVAL, &err);
    CHECK_RC(sw_conf_set(conf, "scw.eta", "0.95", &err), SW_OK, &err);
    /* bad text */
    CHECK_RC(sw_conf_set(conf, "pa.C", "abc", &err), SW_E_INVAL, &err);
    CHECK(strstr(err.msg, "'abc' is not a number") != NULL);
    CHECK_RC(sw_conf_set(conf, "pa.C", "1.5x", &err), SW_E_INVAL, &err);
    CHECK_RC(sw_conf_set(conf, "pa.C", "nan", &err), SW_E_INVAL, &err);
    CHECK_RC(sw_conf_set(conf, "pa.C", "", &err), SW_E_INVAL, &err);
    CHECK_RC(sw_conf_set(conf, "pa.variant", "pa3", &err), SW_E_INVAL, &err);
    CHECK(strstr(err.msg, "pa,pa1,pa2") != NULL);
    CHECK_RC(sw_conf_set(conf, "linear.fit_intercept", "maybe", &err),
             SW_E_INVAL, &err);
    CHECK_RC(sw_conf_set(conf, "linear.fit_intercept", "false", &err), SW_OK,
             &err);
    check_get(conf, "linear.fit_intercept", "false");
    /* unknown name */
    CHECK_RC(sw_conf_set(conf, "pa.c", "1", &err), SW_E_INVAL, &err);
    CHECK(strstr(err.msg, "unknown property 'pa.c'") != NULL);
    CHECK_RC(sw_conf_get(conf, "nope", range, sizeof(range), &err), SW_E_INVAL,
             &err);
    /* dup copies values */
    CHECK_RC(sw_conf_dup(conf, &copy, &err), SW_OK, &err);
    check_get(copy, "scw.eta", "0.94999999999999996");
    sw_conf_free(copy);
    sw_conf_free(conf);
    sw_conf_free(NULL);
}

/* The header's contract: every destructor takes NULL and does nothing. */
void
test_null_destructors(void)
{
    sw_conf_free(NULL);
    sw_buffer_free(NULL);
    sw_model_free(NULL);
    sw_coll_free(NULL);
    sw_pipeline_free(NULL);
    sw_result_free(NULL);
    sw_registry_watch_free(NULL);
    sw_broker_free(NULL);
    sw_kafka_source_free(NULL);
    sw_kafka_sink_free(NULL);
    sw_json_decoder_free(NULL);
    sw_h5_writer_free(NULL);
    sw_h5_source_free(NULL);
    CHECK(1); /* reached: none of them dereferenced NULL */
}
