/* SPDX-License-Identifier: MIT */
/*
 * sw_track.h - a runner's own run in the tracking store: what it serves
 * and how well, logged where the notebooks log their experiments, so that
 * streamwise.track reads a deployment's live metrics as it reads any run.
 *
 * The tables are python/streamwise/store.py's (MIGRATIONS) and the points
 * are laid out as its POINT (int64 step, int64 event_time in microseconds
 * or INT64_MIN, float64 wall_time, float64 value, little-endian): a SQLite
 * store keeps each series in a file under runs/<run_id>/metrics/ named by
 * the series column, a PostgreSQL store in its metric_points table. As
 * streamwise.track does, a series' row is committed (n = 0) before its
 * first point, and every point is appended in the transaction that folds
 * it into its summary row (n, last, min, max).
 */
#ifndef SW_TRACK_H
#define SW_TRACK_H

#include "sw_internal.h"

typedef struct sw__track sw__track;

/* Open a run RUNNING in experiment (made if new) of the store (a store
 * directory or a postgresql:// URI), named name, with tags (NULL, or
 * NULL-terminated key, value, ...), and the series of keys (n_keys names)
 * it will log. */
sw_rc sw__track_start(const char *store, const char *experiment,
                      const char *name, const char *const *tags,
                      const char *const *keys, int n_keys, sw__track **out,
                      sw_err *err);
/* The run's id (32 hex digits, as streamwise.track's). */
const char *sw__track_run_id(const sw__track *t);
/* One point of each of the run's series (values[k] for keys[k] of start):
 * step, event_time in microseconds (INT64_MIN: none), now as wall time.
 * NaN values are points without a summary min/max, as in Python. */
sw_rc sw__track_log(sw__track *t, const double *values, int64_t step,
                    int64_t event_time_us, sw_err *err);
/* Close the run with status ("FINISHED", "FAILED"...) and free t; NULL
 * is a no-op. */
sw_rc sw__track_end(sw__track *t, const char *status, sw_err *err);

#endif
