/* SPDX-License-Identifier: MIT */
/*
 * sw_serve.c - the C-only runner: score rows from stdin with a saved model.
 *
 *     sw-serve MODEL.swm [--format csv|libsvm] [--zero-based] < rows
 *     sw-serve --registry STORE NAME@ALIAS [...] < rows
 *
 * Links libswcore.a and nothing from Python, so it runs exactly the code the
 * notebook ran. The model's golden vectors are re-scored at load. Each input
 * line gives one output line: the decision value (comma-separated per-class
 * scores for a multiclass model) printed with %.17g, which parses back to
 * the same double. A bad line gets a message with its line number on stderr
 * and an empty output line, so output line k always answers input line k;
 * the runner carries on and exits with status 1 at the end.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "streamwise.h"
#include "sw_rows.h"
#include "sw_run.h"

static void
usage(FILE *fp)
{
    fprintf(fp,
            "usage: sw-serve run JOB.json   (raw events -> the bundle's "
            "pipeline and model\n"
            "                                -> predictions; docs/runner.md)"
            "\n"
            "       sw-serve MODEL.swm [--format csv|libsvm] [--zero-based]"
            " < rows\n"
            "       sw-serve --registry STORE NAME[@ALIAS|@VERSION] [...]"
            " < rows\n"
            "       sw-serve --registry STORE --resolve NAME[@ALIAS]\n"
            "       sw-serve --inspect MODEL.swm\n"
            "       sw-serve --config-doc | --version\n"
            "\n"
            "Scores one row per input line and prints one line per row: the\n"
            "decision value, or comma-separated class scores, with %%.17g.\n"
            "  --format csv     dense rows of comma-separated numbers "
            "(default); a\n"
            "                   first line of names (pandas' to_csv) is "
            "matched to\n"
            "                   the model's feature names, in any order\n"
            "  --format libsvm  'label idx:val ...' rows; the label is "
            "ignored\n"
            "  ALS models       'user,item' rows: the predicted preference\n"
            "  --zero-based     libsvm column numbers start at 0, not 1\n"
            "  --registry STORE the model is a registry reference in the\n"
            "                   tracking store STORE: a directory, or a\n"
            "                   postgresql://user@host/db URI (read-only;\n"
            "                   the file's SHA-256 is checked against the\n"
            "                   registry)\n"
            "  --resolve REF    print the resolved path, SHA-256 and "
            "version\n"
            "  --recommend N    ALS models: read user ids, one a line, and "
            "print\n"
            "                   their top N as item:score,item:score,...\n");
}

int
main(int argc, char **argv)
{
    sw_model *m = NULL;
    sw_err err = {0};
    const char *path = NULL, *registry = NULL, *resolve = NULL;
    char resolved[4096], sha[65];
    int64_t version = 0, recommend = 0;
    int fmt = SW_ROWS_CSV, zero_based = 0, i, status = 1;
    long long n_bad = 0;
    static char outbuf[1 << 16];

    if (argc >= 2 && !strcmp(argv[1], "run"))
        return sw__run_main(argc, argv);
    for (i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--format") && i + 1 < argc) {
            i++;
            if (!strcmp(argv[i], "csv")) {
                fmt = SW_ROWS_CSV;
            } else if (!strcmp(argv[i], "libsvm")) {
                fmt = SW_ROWS_LIBSVM;
            } else {
                sw__log("--format %s: expected csv or "
                        "libsvm\n",
                        argv[i]);
                return 2;
            }
        } else if (!strcmp(argv[i], "--zero-based")) {
            zero_based = 1;
        } else if (!strcmp(argv[i], "--registry") && i + 1 < argc) {
            registry = argv[++i];
        } else if (!strcmp(argv[i], "--resolve") && i + 1 < argc) {
            resolve = argv[++i];
        } else if (!strcmp(argv[i], "--recommend") && i + 1 < argc) {
            recommend = strtoll(argv[++i], NULL, 10);
            if (recommend < 1 || recommend > 100000) {
                sw__log("--recommend %s: expected "
                        "1..100000\n",
                        argv[i]);
                return 2;
            }
        } else if (!strcmp(argv[i], "--inspect") && i + 1 < argc) {
            if (sw_model_inspect(argv[i + 1], stdout, &err) != SW_OK) {
                sw__log("%s [%s]\n", err.msg, sw_rc_name(err.rc));
                return 1;
            }
            return 0;
        } else if (!strcmp(argv[i], "--config-doc")) {
            sw_conf_describe(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--version")) {
            printf("%s\n", sw_build_info());
            return 0;
        } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        } else if (argv[i][0] == '-' || path != NULL) {
            if (argv[i][0] != '-')
                sw__log("one model only: %s, then %s\n", path, argv[i]);
            else if (i + 1 == argc && (!strcmp(argv[i], "--format") ||
                                       !strcmp(argv[i], "--registry") ||
                                       !strcmp(argv[i], "--resolve") ||
                                       !strcmp(argv[i], "--recommend") ||
                                       !strcmp(argv[i], "--inspect")))
                sw__log("%s needs a value\n", argv[i]);
            else
                sw__log("unknown option %s\n", argv[i]);
            usage(stderr);
            return 2;
        } else {
            path = argv[i];
        }
    }
    if (resolve != NULL) {
        if (registry == NULL) {
            sw__log("--resolve needs --registry STORE\n");
            return 2;
        }
        if (sw_registry_resolve(registry, resolve, resolved, sizeof(resolved),
                                sha, &version, &err) != SW_OK)
            goto done;
        printf("%s %s %lld\n", resolved, sha, (long long)version);
        return 0;
    }
    if (path == NULL) {
        usage(stderr);
        return 2;
    }
    if (registry != NULL) {
        if (sw_registry_resolve(registry, path, resolved, sizeof(resolved), sha,
                                &version, &err) != SW_OK)
            goto done;
        sw__log("%s is %s (version %lld, sha256 %.16s...)\n", path, resolved,
                (long long)version, sha);
        path = resolved;
    }
    if (sw_version() != SW_VERSION) {
        sw__log("header %x, library %x\n", SW_VERSION, sw_version());
        return 1;
    }
    setvbuf(stdout, outbuf, _IOFBF, sizeof(outbuf));
    if (sw_model_load(path, &m, &err) != SW_OK)
        goto done;
    if (recommend > 0) {
        if (sw_model_kind_of(m) != SW_MODEL_ALS) {
            err.rc = SW_E_INVAL;
            snprintf(err.msg, sizeof(err.msg),
                     "--recommend needs an ALS model, %.200s is not one", path);
            goto done;
        }
        if (sw__rows_recommend(m, recommend, 0, stdout, stderr, &n_bad, &err) !=
            SW_OK)
            goto done;
    } else if (sw__rows_score(m, fmt, zero_based, 0, stdout, stderr, &n_bad,
                              &err) != SW_OK) {
        goto done;
    }
    if (fflush(stdout) != 0) {
        err.rc = SW_E_IO;
        snprintf(err.msg, sizeof(err.msg), "writing stdout: %s",
                 strerror(errno));
        goto done;
    }
    if (n_bad > 0) {
        sw__log("%lld bad row%s\n", n_bad, n_bad == 1 ? "" : "s");
        status = 1;
    } else {
        status = 0;
    }
    sw_model_free(m);
    return status;
done:
    sw__log("%s [%s]\n", err.msg, sw_rc_name(err.rc));
    sw_model_free(m);
    return status;
}
