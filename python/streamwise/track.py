"""Experiment tracking built for streams: runs, params, metrics over event
time, the exact data slices a run read, and its models.

    from streamwise import track
    with track.run(experiment="ctr", params={"C": 1.0}) as run:
        for step, batch in enumerate(replay):
            ...
            run.log_metric("acc", acc, step=events_seen, event_time=t)
        run.log_model(model, "pa")

Metric points cost about a microsecond each: ``log_metric`` appends to an
in-memory buffer and a background thread writes the buffer out in batches
(series files plus last/min/max/count summaries in SQL). ``with`` exits
flush everything and record the status: FINISHED, FAILED on an exception,
KILLED on Ctrl-C. Everything lands in the store described in
``streamwise.store`` (``$STREAMWISE_TRACKING_URI`` or ./streamwise-runs).
"""
from __future__ import annotations

import atexit
import collections
import contextlib
import datetime as _dt
import hashlib
import json
import os
import shutil
import socket
import subprocess
import threading
import time
import uuid
from typing import Any, Iterator, Sequence

import numpy as np

from . import _sw
from ._base import who
from ._filter import compile_filter, compile_order
from .store import (NO_TIME, POINT, StoreError, fold_summary, get_store,
                    set_store)

__all__ = ["run", "start_run", "get_run", "search_runs", "Run",
           "active_run", "flush", "set_store"]


FINISHED, FAILED, KILLED, RUNNING = "FINISHED", "FAILED", "KILLED", "RUNNING"


def _event_us(t):
    """An event time as int64 microseconds since 1970 (UTC)."""
    if t is None:
        return NO_TIME
    if isinstance(t, _dt.datetime):
        if t.tzinfo is None:
            t = t.replace(tzinfo=_dt.timezone.utc)
        return int(round(t.timestamp() * 1e6))
    if isinstance(t, np.datetime64):
        return int(t.astype("datetime64[us]").astype(np.int64))
    return int(t)


def _param_text(v):
    if isinstance(v, str):
        return v
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, (int, float, bool)) or v is None:
        return str(v)
    return json.dumps(v, sort_keys=True, default=str)


def _git(cwd):
    """(commit, dirty) of the repository around cwd, or (None, None)."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd,
                                capture_output=True, text=True, timeout=5)
        if commit.returncode != 0:
            return None, None
        dirty = subprocess.run(["git", "status", "--porcelain",
                                "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True, timeout=10)
        return commit.stdout.strip(), int(bool(dirty.stdout.strip()))
    except (OSError, subprocess.SubprocessError):
        return None, None


def _sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ---------------------------------------------------------------------------
# The background writer
# ---------------------------------------------------------------------------

class _Writer:
    """Buffers metric points of every open run of this process and writes
    them in batches: each flush appends to the series files, then updates
    the summaries of all touched (run, key) pairs in one transaction."""

    INTERVAL = 0.25       # seconds between flushes
    HIGH_WATER = 50_000   # points that trigger an early flush

    def __init__(self):
        # deque append and popleft are atomic, so log_metric never takes a
        # lock and no point can slip between a swap and a write.
        self._buf = collections.deque()
        self._flush_lock = threading.Lock()
        self._wake = threading.Event()
        self._thread = None
        self._pid = None
        self._error = None
        # Runs whose end the store did not take (server away): recorded
        # when it is back, as FAILED, with the reason in a tag.
        self._ends = {}

    def _ensure_thread(self):
        if self._thread is None or self._pid != os.getpid():
            self._pid = os.getpid()
            self._buf = collections.deque()   # a fork's copy is the parent's
            self._thread = threading.Thread(target=self._loop,
                                            name="streamwise-metrics",
                                            daemon=True)
            self._thread.start()

    def add(self, point):
        """point: (run, key, step, event_time, wall_time, value)."""
        if self._pid != os.getpid():
            self._ensure_thread()
        self._buf.append(point)
        if len(self._buf) >= self.HIGH_WATER:
            self._wake.set()

    def _loop(self):
        while True:
            self._wake.wait(self.INTERVAL)
            self._wake.clear()
            try:
                self.flush()
            except Exception as e:          # noqa: BLE001 - kept for flush()
                self._error = e
            else:
                # points a database store refused are written now: the
                # error they met cost nothing
                if self._error is not None and getattr(self._error,
                                                       "retried", False):
                    self._error = None

    def flush(self):
        """Write out everything buffered so far, then the end of any run
        that could not be recorded when it ended; raise a write error that
        the background thread met since the last flush."""
        with self._flush_lock:
            buf, pop = [], self._buf.popleft
            for _ in range(len(self._buf)):
                buf.append(pop())
            if buf:
                self._write(buf)
            self._write_ends()
        if self._error is not None:
            err, self._error = self._error, None
            # what a database store refused was kept and is written now
            if not getattr(err, "retried", False):
                raise err

    def end_later(self, run_, status, when, why):
        self._ends[run_.id] = (run_, status, when, why)
        self._ensure_thread()

    def _write_ends(self):
        for rid, (run_, status, when, why) in list(self._ends.items()):
            def put(con, run_=run_, status=status, when=when, why=why):
                con.execute("UPDATE runs SET status = ?, end_time = ? "
                            "WHERE run_id = ?", (status, when, run_.id))
                con.execute("INSERT INTO tags VALUES (?, ?, ?) ON CONFLICT "
                            "(run_id, key) DO UPDATE SET value = "
                            "excluded.value",
                            (run_.id, "streamwise.failure", why))
            try:
                run_.store.write(put)
            except StoreError as e:
                e.retried = True           # still kept in _ends
                raise
            del self._ends[rid]

    @staticmethod
    def _write(buf):
        groups = {}
        for run_, key, step, et, wt, value in buf:
            groups.setdefault((run_, key), []).append((step, et, wt, value))
        by_store = {}
        for (run_, key), pts in groups.items():
            by_store.setdefault(run_.store, []).append(
                (run_, key, np.array(pts, dtype=POINT)))

        failed = None
        for store, items in by_store.items():
            new = [(r, k) for r, k, _ in items if k not in r._registered]

            def update(con, items=items, store=store):
                for run_, key, arr in items:
                    series, arr = store.add_points(con, run_.id, key, arr)
                    fold_summary(con, run_.id, key, series, arr)
            try:
                if new and not store.points_in_db:
                    store.register_series([(r.id, k, r._series_path(k))
                                           for r, k in new])
                for r, k in new:
                    r._registered.add(k)
                store.write(update)
            except StoreError as e:
                if not store.points_in_db:
                    raise
                e.retried = True
                # A database store wrote none of them (one transaction):
                # they wait for the server, in order, ahead of newer ones.
                failed = failed or e
                for run_, key, arr in reversed(items):
                    for p in reversed(arr.tolist()):
                        _WRITER._buf.appendleft((run_, key, *p))
        if failed is not None:
            raise failed


_WRITER = _Writer()
atexit.register(lambda: _WRITER.flush() if _WRITER._buf else None)


def flush() -> None:
    """Write out every buffered metric point now."""
    _WRITER.flush()


# ---------------------------------------------------------------------------
# Runs
# ---------------------------------------------------------------------------

_ACTIVE = threading.local()


def active_run() -> Run | None:
    """The innermost run this thread is inside, or None."""
    stack = getattr(_ACTIVE, "stack", [])
    return stack[-1] if stack else None


class Run:
    """One run: what was tried, on which data, and what came out."""

    def __init__(self, store: Any, run_id: str) -> None:
        self.store = store
        self.id = run_id
        self._steps: dict[str, int] = {}
        self._series: dict[str, Any] = {}
        self._registered: set[str] = set()  # keys whose metrics row exists

    def __repr__(self):
        return f"Run({self.id!r})"

    # ---- logging ---------------------------------------------------------

    def log_metric(self, key: str, value: float, step: int | None = None,
                   event_time: Any = None) -> None:
        """Record value for key. step defaults to the number of points of
        this key logged so far (for streams: pass the events consumed);
        event_time (datetime, numpy datetime64 or int microseconds) is kept
        beside the wall time."""
        at = self._steps.get(key, 0) if step is None else int(step)
        self._steps[key] = at + 1
        _WRITER.add((self, key, at, _event_us(event_time),
                     time.time(), float(value)))

    def log_metrics(self, metrics: dict[str, float], step: int | None = None,
                    event_time: Any = None) -> None:
        for key, value in metrics.items():
            self.log_metric(key, value, step=step, event_time=event_time)

    def log_param(self, key: str, value: Any) -> None:
        """Params are write-once: logging a different value for a key is an
        error; the same value again is fine."""
        self.log_params({key: value})

    def log_params(self, params: dict[str, Any]) -> None:
        items = [(str(k), _param_text(v)) for k, v in params.items()]

        def put(con):
            for k, v in items:
                row = con.execute("SELECT value FROM params WHERE run_id = ? "
                                  "AND key = ?", (self.id, k)).fetchone()
                if row is None:
                    con.execute("INSERT INTO params VALUES (?, ?, ?)",
                                (self.id, k, v))
                elif row[0] != v:
                    raise _sw.InvalidArgument(
                        f"param {k!r} of run {self.id} is {row[0]!r}; params "
                        f"are write-once, so {v!r} cannot replace it")
        self.store.write(put)

    def set_tag(self, key: str, value: Any) -> None:
        self.set_tags({key: value})

    def set_tags(self, tags: dict[str, Any]) -> None:
        items = [(str(k), _param_text(v)) for k, v in tags.items()]

        def put(con):
            for k, v in items:
                con.execute("INSERT INTO tags VALUES (?, ?, ?) ON CONFLICT "
                            "(run_id, key) DO UPDATE SET value = "
                            "excluded.value", (self.id, k, v))
        self.store.write(put)

    def log_artifact(self, path: str | os.PathLike,
                     name: str | None = None) -> str:
        """Copy a file into the run's artifacts; returns the copy's path."""
        name = name or os.path.basename(path)
        dest = self.store.run_dir(self.id, "artifacts", name)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        shutil.copyfile(path, dest)
        digest, size = _sha256(dest), os.path.getsize(dest)
        self.store.write(lambda con: con.execute(
            "INSERT INTO artifacts VALUES (?, ?, ?, ?) ON CONFLICT "
            "(run_id, path) DO UPDATE SET sha256 = excluded.sha256, "
            "size = excluded.size",
            (self.id, self.store.relpath(dest), digest, size)))
        return dest

    def log_model(self, model: Any, name: str) -> str:
        """Save a streamwise model into the run (a verified .swm); returns
        its path, which registry.register() accepts, as does
        ``runs:/<run_id>/<name>``."""
        dest = self.store.run_dir(self.id, "models", f"{name}.swm")
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        model.save(dest)
        self.store.write(lambda con: con.execute(
            "INSERT INTO artifacts VALUES (?, ?, ?, ?) ON CONFLICT "
            "(run_id, path) DO UPDATE SET sha256 = excluded.sha256, "
            "size = excluded.size",
            (self.id, self.store.relpath(dest), _sha256(dest),
             os.path.getsize(dest))))
        return dest

    def log_input(self, data_slice: dict[str, Any],
                  kind: str | None = None) -> None:
        """Record exactly which data the run read: a replay's ``.slice``, or
        a dict such as {"kind": "hdf5", "sha256": ..., "path": ...,
        "rows": [start, stop]} or {"kind": "kafka", "topic": ...,
        "partitions": {0: [first, last], ...}}."""
        if hasattr(data_slice, "to_dict"):
            data_slice = data_slice.to_dict()
        elif not isinstance(data_slice, dict):
            data_slice = dict(vars(data_slice))
        kind = kind or data_slice.get("kind", "data")
        text = json.dumps(data_slice, sort_keys=True, default=str)
        self.store.write(lambda con: con.execute(
            "INSERT INTO inputs (run_id, kind, slice, logged) VALUES "
            "(?, ?, ?, ?)", (self.id, kind, text, time.time())))

    # ---- reading ---------------------------------------------------------

    def _series_path(self, key):
        path = self._series.get(key)
        if path is None:
            safe = "".join(c if c.isalnum() or c in "-_." else "_"
                           for c in key)[:80]
            digest = hashlib.sha1(key.encode()).hexdigest()[:10]
            path = self.store.run_dir(self.id, "metrics",
                                      f"{safe}.{digest}.bin")
            os.makedirs(os.path.dirname(path), exist_ok=True)
            self._series[key] = path
        return path

    def metric_history(self, key: str) -> Any:
        """Every point of a metric as a DataFrame: step, event_time
        (datetime64[us], NaT when not given), wall_time, value."""
        import pandas as pd
        flush()
        rows = self.store.read("SELECT series FROM metrics WHERE run_id = ? "
                               "AND key = ?", (self.id, key))
        if rows and self.store.points_in_db:
            arr = np.array(self.store.read_points(self.id, key), dtype=POINT)
        elif rows:
            arr = np.fromfile(self.store.abspath(rows[0][0]), dtype=POINT)
        else:
            arr = np.zeros(0, dtype=POINT)
        et = arr["event_time"].astype("datetime64[us]")
        et[arr["event_time"] == NO_TIME] = np.datetime64("NaT")
        return pd.DataFrame({
            "step": arr["step"], "event_time": et,
            "wall_time": pd.to_datetime(arr["wall_time"], unit="s"),
            "value": arr["value"]})

    def info(self) -> dict[str, Any]:
        """The run's attributes, params, tags, metric summaries and inputs."""
        flush()
        return get_run(self.id, store=self.store, _run=self)

    @property
    def status(self) -> str:
        return self.store.read("SELECT status FROM runs WHERE run_id = ?",
                               (self.id,))[0][0]

    def end(self, status: str = FINISHED) -> None:
        """Flush the metrics and close the run with a status. When a
        database store cannot be reached, the error is raised and the run
        is recorded as FAILED (why in its tag streamwise.failure) once the
        server is back, its metric points before it: nothing is lost while
        this process lives."""
        when = time.time()

        def close(con):
            con.execute("UPDATE runs SET status = ?, end_time = ? WHERE "
                        "run_id = ?", (status, when, self.id))
        try:
            flush()
        except StoreError as e:
            if not self.store.points_in_db:
                self.store.write(close)
                raise
            _WRITER.end_later(self, FAILED, when, f"the tracking store was "
                              f"unreachable when the run ended: {e}")
            raise
        try:
            self.store.write(close)
        except StoreError as e:
            if not self.store.points_in_db:
                raise
            _WRITER.end_later(self, FAILED, when, f"the tracking store was "
                              f"unreachable when the run ended: {e}")
            raise


def start_run(experiment: str = "default", name: str | None = None,
              params: dict[str, Any] | None = None,
              tags: dict[str, Any] | None = None, parent: Any = None,
              seed: int | None = None, store: Any = None) -> Run:
    """Open a run (prefer the ``run`` context manager, which closes it)."""
    st = get_store(store)
    run_id = uuid.uuid4().hex
    commit, dirty = _git(os.getcwd())
    if seed is None:
        for k in ("seed", "random_state"):
            if params and isinstance(params.get(k), (int, np.integer)):
                seed = int(params[k])
    parent_id = parent.id if isinstance(parent, Run) else parent
    outer = active_run()
    if parent_id is None and outer is not None:
        parent_id = outer.id

    def create(con):
        row = con.execute("SELECT experiment_id FROM experiments WHERE "
                          "name = ?", (experiment,)).fetchone()
        if row is None:
            con.execute("INSERT INTO experiments (name, created) VALUES "
                        "(?, ?)", (experiment, time.time()))
            row = con.execute("SELECT experiment_id FROM experiments WHERE "
                              "name = ?", (experiment,)).fetchone()
        con.execute(
            "INSERT INTO runs (run_id, experiment_id, name, parent_id, "
            "status, start_time, user_name, host, git_commit, git_dirty, "
            "streamwise_version, core_build, seed) VALUES "
            "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (run_id, row[0], name or run_id[:8], parent_id, RUNNING,
             time.time(), who().split("@")[0], socket.gethostname(), commit,
             dirty, _sw.__version__, _sw.build_id(), seed))
    st.write(create)
    r = Run(st, run_id)
    if params:
        r.log_params(params)
    if tags:
        r.set_tags(tags)
    return r


@contextlib.contextmanager
def run(experiment: str = "default", name: str | None = None,
        params: dict[str, Any] | None = None,
        tags: dict[str, Any] | None = None, parent: Any = None,
        seed: int | None = None, store: Any = None) -> Iterator[Run]:
    """A run as a context manager: FINISHED when the block ends, FAILED on
    an exception, KILLED on Ctrl-C (the exception goes on); metrics are
    flushed in every case."""
    r = start_run(experiment, name, params, tags, parent, seed, store)
    stack = getattr(_ACTIVE, "stack", None)
    if stack is None:
        stack = _ACTIVE.stack = []
    stack.append(r)
    status = FINISHED
    try:
        yield r
    except KeyboardInterrupt:
        status = KILLED
        raise
    except BaseException:
        status = FAILED
        raise
    finally:
        stack.pop()
        r.end(status)


# ---------------------------------------------------------------------------
# Searching
# ---------------------------------------------------------------------------

def _frame(store, run_ids):
    """Runs as one DataFrame row each: attributes, params.*, metrics.*,
    tags.* columns."""
    import pandas as pd
    if not run_ids:
        return pd.DataFrame(columns=["run_id", "experiment", "name",
                                     "status", "start_time", "end_time"])
    marks = ", ".join("?" * len(run_ids))
    attrs = store.read(
        f"SELECT r.run_id, e.name, r.name, r.status, r.start_time, "
        f"r.end_time, r.parent_id, r.user_name, r.host, r.git_commit, "
        f"r.git_dirty, r.streamwise_version, r.core_build, r.seed "
        f"FROM runs r JOIN experiments e USING (experiment_id) "
        f"WHERE r.run_id IN ({marks})", run_ids)
    cols = ["run_id", "experiment", "name", "status", "start_time",
            "end_time", "parent_id", "user", "host", "git_commit",
            "git_dirty", "streamwise_version", "core_build", "seed"]
    by_id = {row[0]: dict(zip(cols, row)) for row in attrs}
    for table, prefix, col in (("params", "params.", "value"),
                               ("tags", "tags.", "value"),
                               ("metrics", "metrics.", "last_value")):
        for rid, key, value in store.read(
                f"SELECT run_id, key, {col} FROM {table} "
                f"WHERE run_id IN ({marks})", run_ids):
            by_id[rid][prefix + key] = value
    df = pd.DataFrame([by_id[r] for r in run_ids if r in by_id])
    for c in ("start_time", "end_time"):
        df[c] = pd.to_datetime(df[c], unit="s")
    return df


def search_runs(filter: str | None = None,
                order_by: str | Sequence[str] | None = None,
                max_results: int = 100, experiment: str | None = None,
                store: Any = None) -> Any:
    """Runs matching a filter (see streamwise._filter for the language),
    as a pandas DataFrame, newest first unless order_by says otherwise:

        track.search_runs("metrics.auc > 0.7 AND (params.model = 'gbdt' "
                          "OR params.model = 'pa')",
                          order_by=["metrics.auc DESC"])
    """
    flush()
    st = get_store(store)
    where, args = compile_filter(filter, st.dialect)
    order, oargs = compile_order(order_by)
    if experiment is not None:
        where = f"({where}) AND e.name = ?"
        args = args + [experiment]
    rows = st.read(
        f"SELECT r.run_id FROM runs r JOIN experiments e "
        f"USING (experiment_id) WHERE {where} ORDER BY {order} LIMIT ?",
        args + oargs + [int(max_results)])
    return _frame(st, [r[0] for r in rows])


def get_run(run_id: str, store: Any = None,
            _run: Run | None = None) -> dict[str, Any]:
    """One run as a dict: attributes, params, tags, metrics (summaries),
    inputs and artifacts."""
    flush()
    st = _run.store if _run is not None else get_store(store)
    rows = st.read("SELECT run_id FROM runs WHERE run_id = ? OR "
                   "run_id LIKE ?", (run_id, f"{run_id}%"))
    if len(rows) != 1:
        raise _sw.InvalidArgument(
            f"run {run_id!r}: {'no such run' if not rows else 'ambiguous'} "
            f"in {st.name}")
    rid = rows[0][0]
    st.reconcile(rid)
    info = _frame(st, [rid]).iloc[0].dropna().to_dict()
    info = {k: v for k, v in info.items() if "." not in k}
    info["params"] = dict(st.read("SELECT key, value FROM params WHERE "
                                  "run_id = ?", (rid,)))
    info["tags"] = dict(st.read("SELECT key, value FROM tags WHERE "
                                "run_id = ?", (rid,)))
    info["metrics"] = {
        k: {"last": last, "min": lo, "max": hi, "n": n, "last_step": s}
        for k, n, last, lo, hi, s in st.read(
            "SELECT key, n, last_value, min_value, max_value, last_step "
            "FROM metrics WHERE run_id = ? AND n > 0", (rid,))}
    info["inputs"] = [dict(kind=k, slice=json.loads(s)) for k, s in st.read(
        "SELECT kind, slice FROM inputs WHERE run_id = ? ORDER BY input_id",
        (rid,))]
    info["artifacts"] = [p for (p,) in st.read(
        "SELECT path FROM artifacts WHERE run_id = ? ORDER BY path", (rid,))]
    return info


def open_run(run_id: str, store: Any = None) -> Run:
    """A Run handle for an existing run (to read its metric history)."""
    st = get_store(store)
    rows = st.read("SELECT run_id FROM runs WHERE run_id = ? OR "
                   "run_id LIKE ?", (run_id, f"{run_id}%"))
    if len(rows) != 1:
        raise _sw.InvalidArgument(f"run {run_id!r}: no such run in {st.name}"
                                  if not rows else f"run {run_id!r}: "
                                  "ambiguous prefix")
    r = Run(st, rows[0][0])
    if not st.points_in_db:
        for key, series in st.read("SELECT key, series FROM metrics WHERE "
                                   "run_id = ?", (r.id,)):
            r._series[key] = st.abspath(series)
    return r
