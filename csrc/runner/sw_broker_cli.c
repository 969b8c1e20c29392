/* SPDX-License-Identifier: MIT */
/*
 * sw_broker_cli.c - build/bin/sw-broker: the embedded Kafka broker as a
 * program. Prints its bootstrap address on the first line of standard
 * output, creates the topics asked for, and runs until SIGINT or SIGTERM.
 * With --control it also reads commands, one a line, from standard input
 * (and stops at its end, so it never outlives the program that drives it):
 *
 *   topic NAME PARTITIONS      create a topic
 *   down ID | up ID            take broker ID (-1: all) down or back up
 *   errors REQUEST COUNT ERROR make the next COUNT requests fail
 *   clear REQUEST              forget the queued errors of REQUEST
 *
 * answering "ok" or "error: <message>" on standard output.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "streamwise.h"

static volatile sig_atomic_t stop;

static void
on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static void
usage(FILE *f)
{
    fprintf(f, "usage: sw-broker [--brokers N] [--partitions N] "
               "[--topic NAME[:PARTITIONS]]... [--control]\n"
               "Starts a Kafka-protocol broker on loopback (librdkafka's "
               "mock cluster),\nprints its bootstrap address and runs until "
               "stopped. In memory only;\nabout 5 MiB or 100k message sets "
               "per partition; no transactions;\nno offsets_for_times.\n");
}

static int
command(sw_broker *b, char *line)
{
    char *argv[5], *save = NULL, *tok;
    int argc = 0;
    sw_err err = {0};
    sw_rc rc;

    for (tok = strtok_r(line, " \t\r\n", &save); tok != NULL && argc < 5;
         tok = strtok_r(NULL, " \t\r\n", &save))
        argv[argc++] = tok;
    if (argc == 0)
        return 0;
    if (!strcmp(argv[0], "topic") && argc == 3)
        rc = sw_broker_create_topic(b, argv[1], atoi(argv[2]), &err);
    else if ((!strcmp(argv[0], "down") || !strcmp(argv[0], "up")) && argc == 2)
        rc = sw_broker_set_down(b, atoi(argv[1]), argv[0][0] == 'd', &err);
    else if (!strcmp(argv[0], "errors") && argc == 4)
        rc = sw_broker_push_errors(b, argv[1], atoi(argv[2]), argv[3], &err);
    else if (!strcmp(argv[0], "clear") && argc == 2)
        rc = sw_broker_push_errors(b, argv[1], 0, "0", &err);
    else {
        printf("error: unknown command (topic NAME N, down ID, up ID, "
               "errors REQUEST COUNT ERROR, clear REQUEST)\n");
        fflush(stdout);
        return 0;
    }
    if (rc == SW_OK)
        printf("ok\n");
    else
        printf("error: %s\n", err.msg);
    fflush(stdout);
    return 0;
}

int
main(int argc, char **argv)
{
    int brokers = 1, partitions = 4, control = 0, i;
    sw_broker *b = NULL;
    sw_err err = {0};
    struct sigaction sa;

    for (i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--brokers") && i + 1 < argc)
            brokers = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--partitions") && i + 1 < argc)
            partitions = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--control"))
            control = 1;
        else if (!strcmp(argv[i], "--topic") && i + 1 < argc)
            i++; /* after the cluster exists */
        else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (sw_broker_new(brokers, &b, &err) != SW_OK) {
        fprintf(stderr, "sw-broker: %s\n", err.msg);
        return 1;
    }
    for (i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--topic")) {
            char name[256], *colon;
            int n = partitions;

            snprintf(name, sizeof(name), "%s", argv[++i]);
            if ((colon = strrchr(name, ':')) != NULL) {
                *colon = '\0';
                n = atoi(colon + 1);
            }
            if (sw_broker_create_topic(b, name, n, &err) != SW_OK) {
                fprintf(stderr, "sw-broker: %s\n", err.msg);
                sw_broker_free(b);
                return 1;
            }
        } else if (!strcmp(argv[i], "--brokers") ||
                   !strcmp(argv[i], "--partitions")) {
            i++;
        }
    }
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal; /* no SA_RESTART: a signal ends a read */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    printf("%s\n", sw_broker_bootstrap(b));
    fflush(stdout);
    if (control) {
        char line[1024];

        while (!stop && fgets(line, sizeof(line), stdin) != NULL)
            command(b, line);
    } else {
        while (!stop)
            pause();
    }
    sw_broker_free(b);
    return 0;
}
