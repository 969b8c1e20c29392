"""Serving: bundles, jobs for the C runner, and backtests.

A *bundle* is a model file that carries the feature pipeline its model was
trained on (spec, event schema, privacy settings without the secret, the
columns the model reads) and golden events: raw events replayed from empty
state whose exact predictions every load checks again::

    p = streamwise.Pipeline(spec, emission="arrival")
    out = p.push(events)
    X = streamwise.serve.features(out, inputs)       # what the model reads
    clf = streamwise.GBDTClassifier().fit(X, y)
    clf.save("bonus.swm", pipeline=p, inputs=inputs)
    streamwise.serve.score(clf, p, out)               # the runner's bits

A *job* is what ``build/bin/sw-serve run JOB`` runs without Python: a
source (Kafka, a topic slice or an HDF5 event file), the bundle (a path or
a registry reference ``name@alias``), the emission mode, sinks, dead
letters and checkpoints. ``Job(...).save(path)`` writes one,
``.start()`` runs it and ``.backtest(...)`` runs it over recorded events
and returns the predictions as a DataFrame. See docs/runner.md.
"""
from __future__ import annotations

import json
import os
from typing import Any, Iterable, Sequence

import numpy as np

from . import _sw

__all__ = ["features", "score", "attach", "score_stream", "Job",
           "RunningJob", "kafka_source", "hdf5_source", "kafka_sink",
           "jsonl", "csv", "hdf5", "read_predictions", "runner_program"]

_GOLDEN_EVENTS = 64


def _core_of(model):
    """The core model of an estimator (or a core model as is)."""
    if hasattr(model, "_fitted"):
        return model._fitted()
    return model


def features(out: Any, inputs: Sequence[str] | None = None,
             sparse: bool | None = None) -> Any:
    """The matrix a bundle's model reads from a PipelineOutput: the dense
    columns named in inputs (default: all), then, with sparse (default:
    when the pipeline hashes), the hashed block, as a scipy CSR matrix;
    without it a float64 array. Train on this; score with score()."""
    cols = list(out.columns)
    inputs = cols if inputs is None else list(inputs)
    missing = [c for c in inputs if c not in cols]
    if missing:
        raise _sw.InvalidArgument(f"inputs {missing} are not dense columns "
                                  f"of the pipeline ({cols})")
    X = out.dense[:, [cols.index(c) for c in inputs]]
    if sparse is None:
        sparse = out.sparse is not None
    if not sparse:
        return X
    if out.sparse is None:
        raise _sw.InvalidArgument("sparse=True, but the pipeline has no "
                                  "hash feature")
    import scipy.sparse as sp
    return sp.hstack([sp.csr_matrix(X), out.sparse], format="csr")


def attach(model: Any, pipeline: Any, inputs: Sequence[str] | None = None,
           sparse: bool | None = None, golden_events: Any = None) -> Any:
    """Make model (an estimator or a core model) a bundle of pipeline:
    inputs are the dense columns it reads (default: all), sparse whether
    the hashed block follows them (default: when the model's width says
    so). golden_events: a batch (dict of arrays, DataFrame) of raw events;
    default: up to 64 valid events of the first batch the pipeline was
    pushed."""
    m = _core_of(model)
    inputs = list(pipeline.columns if inputs is None else inputs)
    if sparse is None:
        sparse = bool(pipeline.sparse_dims) and \
            m.n_features == len(inputs) + pipeline.sparse_dims
    m.set_pipeline(pipeline._core, [str(c) for c in inputs], bool(sparse))
    if golden_events is not None:
        encoded, _, _ = pipeline._encode(golden_events)
    else:
        encoded = _valid_head(pipeline._first)
    if encoded:
        m.set_golden_events(encoded)
    return model


def _valid_head(encoded):
    """The first events of an encoded batch that no column marks bad."""
    if not encoded:
        return None
    n = len(encoded[0][2])
    ok = np.ones(n, bool)
    for _, _, _, _, bad in encoded:
        if bad is not None:
            ok &= np.asarray(bad) == 0
    keep = np.flatnonzero(ok)[:_GOLDEN_EVENTS]
    if not len(keep):
        return None
    return [(name, kind, np.ascontiguousarray(np.asarray(a)[keep]), width,
             None) for name, kind, a, width, _ in encoded]


def score(model: Any, pipeline: Any, out: Any) -> np.ndarray:
    """The bundle's predictions for the rows of a PipelineOutput, computed
    by the core function the runner calls (sw_model_predict_features):
    the same bits the runner writes. Binary GBDT: the probability of class
    1; linear: the decision value; multiclass: one column per class."""
    m = _core_of(model)
    return m.predict_features(pipeline._core, out.dense, out.hashed)


# ---------------------------------------------------------------------------
# Jobs for the C runner
# ---------------------------------------------------------------------------

def runner_program() -> str:
    """The sw-serve executable: $STREAMWISE_SERVE, the build in place, the
    one pip installed with the package, or one on PATH."""
    from ._base import program
    return program("sw-serve", "STREAMWISE_SERVE")


def kafka_source(topic: str, bootstrap: str | None = None,
                 group: str | None = None, start: Any = None,
                 stop: Any = None, config: dict[str, str] | None = None,
                 avro: Any = None) -> dict[str, Any]:
    """A Kafka source for a job: live as a member of group, or (without a
    group) the slice from start ("beginning" or an offset) to stop ("end"
    or an offset), a backtest."""
    bootstrap = bootstrap or os.environ.get("STREAMWISE_KAFKA_BOOTSTRAP")
    if not bootstrap:
        raise _sw.InvalidArgument("kafka_source: no bootstrap servers (pass "
                                  "bootstrap= or set "
                                  "STREAMWISE_KAFKA_BOOTSTRAP)")
    src: dict[str, Any] = {"bootstrap": bootstrap, "topic": topic}
    if group is not None:
        if start is not None or stop is not None:
            raise _sw.InvalidArgument("kafka_source: a group (live) or "
                                      "start/stop (a slice), not both")
        src["group"] = group
    else:
        src["start"] = "beginning" if start is None else start
        src["stop"] = "end" if stop is None else stop
    if config:
        src["config"] = {str(k): str(v) for k, v in config.items()}
    if avro:
        src["avro"] = avro
    return {"kafka": src}


def hdf5_source(path: str | os.PathLike, event_type: str) -> dict[str, Any]:
    """An HDF5 event table (streamwise.hdf5) as a job's source."""
    return {"hdf5": {"path": os.fspath(path), "event_type": event_type}}


def kafka_sink(topic: str, bootstrap: str | None = None,
               config: dict[str, str] | None = None,
               format: str | None = None,
               schema_id: int | None = None) -> dict[str, Any]:
    """A topic for a job's outputs. format: "json" or "avro" (default:
    Avro when the source is Avro; the record's schema is in docs/runner.md
    and in the runner's log); schema_id: frame Avro as Confluent's wire
    format with this registry id."""
    out: dict[str, Any] = {"topic": topic}
    if bootstrap:
        out["bootstrap"] = bootstrap
    if config:
        out["config"] = {str(k): str(v) for k, v in config.items()}
    if format is not None:
        out["format"] = format
    if schema_id is not None:
        out["schema_id"] = int(schema_id)
    return {"kafka": out}


def jsonl(path: str | os.PathLike) -> dict[str, str]:
    return {"jsonl": os.fspath(path)}


def csv(path: str | os.PathLike) -> dict[str, str]:
    return {"csv": os.fspath(path)}


def hdf5(path: str | os.PathLike) -> dict[str, str]:
    """A backtest's HDF5 sink: one event table /events/predictions (key,
    prediction, model, sha256, partition, offset; time time_us), sorted
    by time, written whole when the backtest ends."""
    return {"hdf5": os.fspath(path)}


class Job:
    """A job for ``sw-serve run``: see the module documentation and
    docs/runner.md for every setting.

    source: kafka_source(...) or hdf5_source(...); bundle: a .swm path, or
    a reference "name@alias" with registry= the tracking store directory;
    emission: "arrival" (the live default) or "watermark"; key: the event
    field the messages are keyed by (the output's key); sinks: a list of
    kafka_sink(...), jsonl(...), csv(...); features: one output for the
    feature rows; dead_letters: a kafka_sink or jsonl for what cannot be
    scored; checkpoint: {"dir": ..., "every_s": 10, "every_events": 0,
    "keep": 3, "background": True}; metrics_port: the HTTP endpoint.
    reload: how a registry reference "name@alias" (or "name") is followed:
    None polls the store every second, {"poll_s": 0.2} as often as said,
    False pins the version found at start; runner_name: how the runner
    signs the registry's deployment log (default host:pid). shadow: a
    bundle or reference (e.g. "name@challenger") scored beside the main
    one on the same feature rows, its predictions published in each
    output's "shadow"; canary: {"model": ref, "fraction": 0.05} scores
    that fraction of the keys (by the XXH3-64 hash of the key) instead of
    the main model. Both follow their registry aliases like the bundle.
    learn: True (or {"snapshot_every": n, "snapshot_every_s": s, "name":
    ...}: register the learned model every n pairs, or every s seconds and
    at a clean stop, with lineage) makes a passive-aggressive
    or SCW bundle learn the pairs of its pipeline's label join online,
    test then train in processing order;
    the learned model is checkpointed with the state (watermark emission;
    the main bundle's alias is then not followed). tenants: {"field":
    "shop", "model": "shop-{}@champion", "max_loaded": 64} scores each
    event with its tenant's model (the bundle then defines the pipeline
    every tenant's model shares); a tenant whose model cannot serve gets
    its events dead-lettered with reason tenant_refused. control:
    {"topic": ..., "bootstrap": ...} a control topic on which
    registry.promote(..., control=...) announces promotions: the runner
    looks at the registry at once instead of at its next poll. tasks:
    True makes the runner one member of its consumer group, with one task
    per partition it is given (state, watermark, checkpoints in
    checkpoint["dir"]/partition-N, which every member must see), so that
    several runners share a topic and a partition's state moves with it;
    see docs/scaling.md. exactly_once: True (or {"transactional_id":
    name}) writes every Kafka output and the group's offsets in one Kafka
    transaction per checkpoint, so read_committed consumers see each
    prediction once after any crash (docs/runner.md says what the
    embedded broker cannot show of it). evaluate: True (or {"every_s": 5,
    "window": 10000, "experiment": "deployments"}) scores every pair of
    the bundle's label join with the main model (before it learns the
    pair; the canary for the canary's keys) and the shadow, and logs live accuracy, log-loss, AUC and drift
    (or MAE and RMSE), volume and latency every every_s seconds to
    /metrics and, with a registry, to a run of the tracking store per
    model version served (streamwise.track reads it). feedback: the topic
    of the labels (or {"topic", "bootstrap", "config"}) when they do not
    come with the events: read beside the source (the same slice, or the
    group <group>-feedback), its partitions after the source's in the
    pipeline's watermark, its events joined but never scored into the
    outputs (learn or evaluate)."""

    def __init__(self, source: dict[str, Any], bundle: str | os.PathLike,
                 registry: str | os.PathLike | None = None,
                 name: str | None = None, emission: str = "arrival",
                 key: str | None = None, sinks: Sequence[dict[str, Any]] = (),
                 features: dict[str, Any] | None = None,
                 dead_letters: dict[str, Any] | None = None,
                 checkpoint: str | os.PathLike | dict[str, Any] | None = None,
                 metrics_port: int | None = None, batch: int | None = None,
                 wait_ms: int | None = None,
                 broker_outage_s: float | None = None,
                 log_every_s: float | None = None,
                 secret_env: str | None = None, reload: Any = None,
                 runner_name: str | None = None,
                 shadow: str | os.PathLike | None = None, canary: Any = None,
                 learn: dict[str, Any] | None = None,
                 tenants: dict[str, Any] | None = None,
                 control: dict[str, Any] | None = None,
                 tasks: int | None = None,
                 exactly_once: bool | dict[str, Any] | None = None,
                 evaluate: bool | dict[str, Any] | None = None,
                 feedback: str | dict[str, Any] | None = None) -> None:
        if emission not in ("arrival", "watermark"):
            raise _sw.InvalidArgument(f"emission={emission!r}: 'arrival' or "
                                      "'watermark'")
        if isinstance(checkpoint, (str, os.PathLike)):
            checkpoint = {"dir": os.fspath(checkpoint)}
        self.spec = {"source": source, "bundle": os.fspath(bundle),
                     "registry": None if registry is None
                     else os.fspath(registry),
                     "name": name, "emission": emission, "key": key,
                     "sinks": list(sinks), "features": features,
                     "dead_letters": dead_letters, "checkpoint": checkpoint,
                     "metrics_port": metrics_port, "batch": batch,
                     "wait_ms": wait_ms, "broker_outage_s": broker_outage_s,
                     "log_every_s": log_every_s, "secret_env": secret_env,
                     "reload": reload, "runner_name": runner_name,
                     "shadow": None if shadow is None else os.fspath(shadow),
                     "canary": canary, "learn": learn, "tenants": tenants,
                     "control": control, "tasks": tasks,
                     "exactly_once": exactly_once, "evaluate": evaluate,
                     "feedback": feedback}

    def to_json(self) -> str:
        return json.dumps({k: v for k, v in self.spec.items()
                           if v is not None}, indent=2)

    def save(self, path: str | os.PathLike) -> str | os.PathLike:
        """Write the job file sw-serve runs."""
        with open(path, "w") as f:
            f.write(self.to_json() + "\n")
        return path

    def start(self, path: str | os.PathLike | None = None,
              log: str | os.PathLike | None = None) -> RunningJob:
        """Run the job in a sw-serve process; returns a RunningJob. path:
        where the job file goes (a temporary file by default); log: a file
        for the runner's messages (default: kept in memory)."""
        import tempfile
        if path is None:
            fd, path = tempfile.mkstemp(suffix=".json", prefix="sw-job-")
            os.close(fd)
        self.save(path)
        return RunningJob(path, self.spec.get("metrics_port"), log)

    def backtest(self, source: dict[str, Any] | None = None,
                 timeout: float = 600) -> Any:
        """Run the job over recorded events (source: an hdf5_source or a
        kafka_source slice; default: this job's source, which must be one)
        to its end, with no checkpoint, and return its predictions as a
        pandas DataFrame: key, prediction, model, sha256, partition,
        offset, time_us."""
        import subprocess
        import tempfile
        spec = dict(self.spec)
        if source is not None:
            spec["source"] = source
        kafka = spec["source"].get("kafka")
        if kafka is not None and "group" in kafka:
            raise _sw.InvalidArgument("backtest: the source is live (it has "
                                      "a group); give a slice: "
                                      "kafka_source(topic, start=..., "
                                      "stop=...)")
        with tempfile.TemporaryDirectory(prefix="sw-backtest-") as tmp:
            out = os.path.join(tmp, "predictions.jsonl")
            spec.update(sinks=[jsonl(out)], checkpoint=None,
                        metrics_port=None, features=None, dead_letters=None,
                        exactly_once=None)
            job = os.path.join(tmp, "job.json")
            with open(job, "w") as f:
                json.dump({k: v for k, v in spec.items() if v is not None},
                          f)
            done = subprocess.run([runner_program(), "run", job],
                                  capture_output=True, text=True,
                                  timeout=timeout)
            if done.returncode != 0:
                raise _sw.Error(f"backtest failed: {done.stderr.strip()}")
            return read_predictions(out)


def read_predictions(path: str | os.PathLike) -> Any:
    """A runner's JSON-lines predictions as a DataFrame (read with Python's
    json, which parses each %.17g number back to the same double; pandas'
    read_json does not), or its HDF5 sink's (sorted by time). A job with a shadow adds shadow_prediction and
    shadow_model."""
    import pandas as pd
    cols = ["key", "prediction", "model", "sha256", "partition", "offset",
            "time_us"]
    with open(path, "rb") as head:
        is_hdf5 = head.read(8) == b"\x89HDF\r\n\x1a\n"
    if is_hdf5:
        from . import replay
        def text(a):
            a = np.asarray(a)
            if a.dtype.kind == "S":
                return np.char.decode(a, "utf-8").astype(object)
            return np.array([v.decode() if isinstance(v, bytes) else v
                             for v in a], dtype=object)
        parts = [pd.DataFrame({c: text(b[c]) if c in ("key", "model",
                                                      "sha256") else b[c]
                               for c in cols})
                 for b in replay.hdf5(path, "predictions")]
        if not parts:
            return pd.DataFrame(columns=cols)
        return pd.concat(parts, ignore_index=True)
    rows = []
    with open(path) as f:
        for line in f:
            d = json.loads(line)
            s = d.pop("shadow", None)
            if s is not None:
                d["shadow_prediction"] = s["prediction"]
                d["shadow_model"] = s["model"]
            rows.append(d)
    if rows and "shadow_model" in rows[0]:
        cols += ["shadow_prediction", "shadow_model"]
    return pd.DataFrame(rows, columns=cols)


_RUNNING: list[Any] = []  # runners started here, ended at exit


def _end_all():
    for r in list(_RUNNING):
        if r.alive():
            r.kill()


class RunningJob:
    """A sw-serve process running a job. One still running when Python
    exits is killed, so a failed notebook or test leaves none behind."""

    def __init__(self, path: str | os.PathLike, metrics_port: int | None = None,
                 log: str | os.PathLike | None = None) -> None:
        import subprocess
        import tempfile
        self.path = path
        self.metrics_port = metrics_port
        # the runner's messages go to a file (a pipe nobody reads would
        # fill up and stop the runner); stop() and kill() return them
        if log is None:
            fd, log = tempfile.mkstemp(prefix="sw-serve-", suffix=".log")
            os.close(fd)
        self.log = os.fspath(log)
        self._log = open(self.log, "w")
        # a session of its own: kill() ends a checkpoint being written in
        # a forked child too, as a machine that goes down would
        self.proc = subprocess.Popen(
            [runner_program(), "run", path], stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=self._log,
            start_new_session=True)
        if not _RUNNING:
            import atexit
            atexit.register(_end_all)
        _RUNNING.append(self)

    def _get(self, what, timeout=5):
        import urllib.request
        if not self.metrics_port:
            raise _sw.InvalidArgument("the job has no metrics_port")
        url = f"http://127.0.0.1:{self.metrics_port}/{what}"
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.read().decode()

    def metrics(self) -> dict[str, float]:
        """The Prometheus metrics as {name{labels}: value}."""
        out = {}
        for line in self._get("metrics").splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                out[name] = float(value)
        return out

    def status(self) -> dict[str, Any]:
        return json.loads(self._get("status"))

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 60) -> str:
        """SIGTERM: the runner checkpoints, flushes, commits and exits;
        returns its stderr (raises if it failed)."""
        import signal
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except Exception:
            self.proc.kill()
            self.proc.wait()
            raise
        err = self._messages()
        if self.proc.returncode != 0:
            raise _sw.Error(f"sw-serve exited with {self.proc.returncode}: "
                            f"{err.strip()}")
        return err

    def kill(self) -> str:
        """SIGKILL to the runner and any checkpoint it is writing, as a
        crash; returns what it had written to stderr."""
        import signal
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()
        return self._messages()

    def _messages(self):
        """What the runner wrote to stderr (librdkafka's lines left out)."""
        self._log.close()
        with open(self.log, errors="replace") as f:
            return "".join(x for x in f if not x.startswith("%"))


def score_stream(model: Any, batches: Iterable[dict[str, Any]],
                 key: str | None = None, emission: str = "arrival",
                 partitions: int | None = None) -> Any:
    """The notebook's twin of a runner: replayed batches (from
    streamwise.replay.kafka(..., schema=spec) or replay.hdf5) through the
    bundle's pipeline, partition by partition, scored with score(); returns
    the DataFrame a backtest returns (key, prediction, partition, offset,
    time_us). partitions: the source's partition count (default: what a
    Kafka replay's slice says), announced as the runner does."""
    import pandas as pd
    from .pipeline import Pipeline
    m = _core_of(model)
    if partitions is None and hasattr(batches, "slice") and \
            isinstance(batches.slice.get("partitions"), list):
        partitions = len(batches.slice["partitions"])
    if m.pipeline is None:
        raise _sw.InvalidArgument("score_stream: the model carries no "
                                  "pipeline")
    spec = json.loads(m.pipeline[0])
    p = Pipeline(spec, emission=emission, partitions=partitions)
    meta: dict[int, Any] = {}  # arrival number -> (partition, offset, key)
    frames = []

    def collect(out):
        if not len(out):
            return
        pred = score(m, p, out)
        where = [meta.pop(int(s)) for s in out.index]
        frames.append(pd.DataFrame({
            "key": [w[2] for w in where],
            "prediction": list(pred) if pred.ndim == 1 else pred.tolist(),
            "partition": [w[0] for w in where],
            "offset": [w[1] for w in where],
            "time_us": out.event_time}))

    row = 0                # a file's events are numbered by row
    for b in batches:
        n = len(next(iter(b.values()))) if b else 0
        part = np.asarray(b.get("partition", np.zeros(n, np.int32)))
        offs = np.asarray(b["offset"]) if "offset" in b else \
            np.arange(row, row + n)
        row += n
        for q in dict.fromkeys(part.tolist()):
            sel = np.flatnonzero(part == q)
            sub = {k: np.asarray(v)[sel] for k, v in b.items()}
            first = p._next
            keys: Any = sub[key] if key is not None else [""] * len(sel)
            for i in range(len(sel)):
                k = keys[i]
                k = k.decode() if isinstance(k, bytes) else str(k)
                meta[first + i] = (int(q), int(offs[sel[i]]), k)
            out = p.push(sub, partition=int(q))
            for s in np.concatenate([np.asarray(out.late),
                                     np.asarray(out.invalid["rows"])]):
                meta.pop(first + int(s), None)
            collect(out)
    collect(p.flush())
    if not frames:
        return pd.DataFrame(columns=["key", "prediction", "partition",
                                     "offset", "time_us"])
    return pd.concat(frames, ignore_index=True)
