/* SPDX-License-Identifier: MIT */
/*
 * sw_kafka_conf.c - see sw_kafka_conf.h.
 */
#include "sw_internal.h"

#ifdef SW_HAVE_RDKAFKA
#include "sw_kafka_conf.h"

rd_kafka_conf_t *
sw__kafka_conf(const char *who, const char *bootstrap,
               const char *const *defaults, const char *const *user,
               sw_err *err)
{
    const char *const boot[] = {"bootstrap.servers", bootstrap, NULL};
    const char *const *lists[3] = {boot, defaults, user};
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char errstr[512];
    int k, i;

    for (k = 0; k < 3; k++) {
        const char *const *kv = lists[k];

        for (i = 0; kv != NULL && kv[i] != NULL; i += 2) {
            if (kv[i + 1] == NULL ||
                rd_kafka_conf_set(conf, kv[i], kv[i + 1], errstr,
                                  sizeof(errstr)) != RD_KAFKA_CONF_OK) {
                rd_kafka_conf_destroy(conf);
                sw__fail(err, SW_E_INVAL, "%s: config %s: %s", who, kv[i],
                         kv[i + 1] ? errstr : "no value");
                return NULL;
            }
        }
    }
    return conf;
}
#endif
