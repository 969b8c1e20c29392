/* SPDX-License-Identifier: MIT */
/*
 * sw_rows.h - sw-serve's row streams (sw_rows.c): rows or ALS user ids
 * read from fd until its end, one output line per input line on out.
 * A bad line is told on log with its line number and gets an empty
 * output line; *n_bad counts them; a return other than
 * SW_OK is a failure of the whole stream (out of memory, a read error,
 * a CSV header the model cannot take), with err filled.
 */
#ifndef SW_ROWS_H
#define SW_ROWS_H

#include <stdio.h>

#include "streamwise.h"

enum { SW_ROWS_CSV, SW_ROWS_LIBSVM };

/* fmt: SW_ROWS_CSV (a first line of names is matched to the model's
 * feature names) or SW_ROWS_LIBSVM (column numbers from 1, or from 0
 * with zero_based). */
sw_rc sw__rows_score(const sw_model *m, int fmt, int zero_based, int fd,
                     FILE *out, FILE *log, long long *n_bad, sw_err *err);
/* An ALS model's top n items for each user id line. */
sw_rc sw__rows_recommend(const sw_model *m, int64_t n, int fd, FILE *out,
                         FILE *log, long long *n_bad, sw_err *err);

#endif
