"""Streaming feature pipelines: keyed, event-time state in the C core.

    spec = {"events": {"time": "ts", "time_unit": "us",
                       "fields": {"user": "str", "price": "float64"}},
            "features": [{"name": "user_n", "op": "count", "key": ["user"]},
                         {"name": "user_price_mu", "op": "mean",
                          "key": ["user"], "field": "price"}],
            "watermark": {"out_of_orderness": "5s",
                          "allowed_lateness": "1m"}}
    p = streamwise.Pipeline(spec)
    out = p.push({"ts": ts, "user": users, "price": prices})
    out.dense, out.columns, out.sparse, out.late, out.invalid, out.events

Point-in-time rule: the feature row of an event reflects every earlier
event of its keys (by event time, ties by arrival order) and never the
event itself, so a label cannot leak into its own features. Events wait
until the watermark passes them, so a row may come out of a later push than
the event went into; ``out.index`` gives each row's arrival number and
``out.events`` the event's own columns (labels included). The output does
not depend on how the stream is cut into batches. See docs/pipelines.md.
"""
from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from . import _sw
from ._events import columns_of, convert

__all__ = ["Pipeline", "PipelineOutput", "REASONS"]

#: Why an event was refused, by reason code (the core's words).
REASONS = {code: word for code, word in enumerate(_sw.INVALID_REASONS)
           if code}


def _csr(pipeline, indices, n):
    if not pipeline.sparse_dims:
        return None
    import scipy.sparse as sp
    h = pipeline._n_hash
    return sp.csr_matrix((np.ones(n * h), indices.reshape(-1),
                          np.arange(n + 1) * h),
                         shape=(n, pipeline.sparse_dims))


def _gather(batches, seq):
    """The input columns of the events with these arrival numbers, as
    typed arrays (object arrays only where batches disagree on type)."""
    if len(seq) == 0 or not batches:
        return {}
    starts = np.array([b[0] for b in batches])
    which = np.searchsorted(starts, seq, side="right") - 1
    used = np.unique(which)
    out = {}
    for name in batches[-1][1]:
        pieces = []
        for b in used:
            if b < 0:
                continue    # buffered before a restore: not kept here
            s0, cols, _ = batches[b]
            if name in cols:
                sel = np.flatnonzero(which == b)
                pieces.append((sel, np.asarray(cols[name])[seq[sel] - s0]))
        if not pieces:
            continue
        if len(pieces) == 1 and len(pieces[0][0]) == len(seq):
            out[name] = pieces[0][1]
            continue
        dtype = np.result_type(*[v.dtype for _, v in pieces]) \
            if used.min() >= 0 else object
        col = np.empty(len(seq), dtype=dtype)
        if dtype == object:
            col[:] = None
        for sel, v in pieces:
            col[sel] = v
        out[name] = col
    return out


class LabelPairs:
    """Training pairs of the label join that one push (or flush) closed:
    dense and sparse are the features the prediction event had when it
    happened, label the outcome's label (1 without a label field; 0 for a
    prediction no outcome claimed within the limit, unless unmatched is
    "drop"), index and event_time the prediction's arrival number and
    time, outcome_index the outcome's arrival number (-1 if unmatched)."""

    def __init__(self, pipeline, res):
        dense, indices, seq, t, label, oseq = res
        self.columns = pipeline.columns
        self.dense = dense
        self.sparse = _csr(pipeline, indices, len(seq))
        self.index = seq
        self.event_time = t
        self.label = label
        self.outcome_index = oseq

    def __len__(self):
        return len(self.index)

    def __repr__(self):
        return (f"LabelPairs({len(self)} pairs, "
                f"{int((self.outcome_index >= 0).sum())} matched)")


class PipelineOutput:
    """What one push (or flush) produced.

    dense: float64 (rows, len(columns)) feature values; columns: their
    names; sparse: the hashed features as a scipy CSR matrix (rows,
    sparse_dims) of ones (or None when the spec has no hash feature);
    index: each row's arrival number; event_time: its event time (int64
    microseconds); events: the input columns of the rows' events (labels
    included); late: positions in the pushed batch of late events;
    invalid: positions and reasons of refused events; pairs: the label
    join's training pairs (LabelPairs) when the spec has label_join.

    dense, index and event_time are the core's own rows, not a copy: they
    stay as they are through later pushes, and once every array over them
    is gone the next push writes into the same memory."""

    def __init__(self, pipeline, res, start):
        dense, seq, t, indices, late, inv, why, pairs = res
        self.columns = pipeline.columns
        self.dense = dense
        self.index = seq
        self.event_time = t
        self.sparse = _csr(pipeline, indices, len(seq))
        # the hashed block as the core wrote it: n_hashed column numbers a
        # row (what a bundle's scoring reads)
        self.hashed = np.asarray(indices, dtype=np.int64).reshape(
            len(seq), pipeline._n_hash)
        self.pairs = LabelPairs(pipeline, pairs) \
            if "label_join" in pipeline.spec else None
        self.late = late - start
        self.invalid = {"rows": inv - start,
                        "reason": np.array([REASONS[int(r)] for r in why],
                                           dtype=object)}
        # the input columns are gathered when asked for (a copy of the
        # list: the pipeline drops batches whose events are all out)
        self._batches = list(pipeline._batches)
        self._events = None

    @property
    def events(self):
        if self._events is None:
            self._events = _gather(self._batches, self.index)
        return self._events

    def __len__(self):
        return len(self.index)

    def to_frame(self) -> Any:
        """The dense features as a pandas DataFrame indexed by arrival."""
        import pandas as pd
        return pd.DataFrame(self.dense, columns=self.columns,
                            index=pd.Index(self.index, name="arrival"))

    def __repr__(self):
        return (f"PipelineOutput({len(self)} rows, {len(self.late)} late, "
                f"{len(self.invalid['rows'])} invalid)")


class Pipeline:
    """A compiled spec and its state; see the module documentation."""

    def __repr__(self):
        st = self._core.stats
        return (f"Pipeline({len(self.columns)} columns, "
                f"{self.spec.get('emission', 'watermark')} emission, "
                f"{st['keys']} keys, {st['emitted']} events out, "
                f"{st['buffered']} buffered)")

    def __init__(self, spec: Mapping[str, Any],
                 secret: bytes | str | None = None,
                 emission: str | None = None, partitions: int | None = None,
                 _core: Any = None) -> None:
        """secret (bytes or str, at least 16 bytes) keys the hashes that
        replace the ids of the spec's privacy.fields; without it the
        STREAMWISE_PRIVACY_SECRET environment variable is used. It is never
        stored: a checkpoint keeps a fingerprint, and restore needs the
        same secret. emission: "watermark" (event-time exact, the default)
        or "arrival" (each event at once, in arrival order, as the live
        runner scores it); the same as the spec's "emission".
        partitions: how many partitions the source has (a topic's count),
        announced at once so that the watermark waits for each until it is
        read, as the runner does."""
        if emission is not None:
            spec = dict(spec, emission=emission)
        self.spec: Mapping[str, Any] = spec
        self._core = _core if _core is not None else _sw.pipeline_new(
            json.dumps(spec))
        self._private = set(spec.get("privacy", {}).get("fields", []))
        if self._private:
            if secret is None:
                secret = os.environ.get("STREAMWISE_PRIVACY_SECRET")
            if secret is None:
                raise _sw.InvalidArgument(
                    "privacy: the spec hashes private fields "
                    f"{sorted(self._private)}; pass secret= or set "
                    "STREAMWISE_PRIVACY_SECRET")
            self._core.set_secret(secret.encode()
                                  if isinstance(secret, str) else
                                  bytes(secret))
        ev = spec["events"]
        self._fields = dict(ev["fields"])
        self._time = ev["time"]
        self._unit = ev.get("time_unit", "us")
        self._fields.setdefault(self._time, "int64")
        self._n_hash = sum(f.get("op") == "hash" for f in spec["features"])
        self._batches: list[Any] = []  # (first arrival, {name: array})
        self._first = None     # the first batch pushed, encoded
        self._next = self._core.stats["arrivals"]
        if partitions is not None:
            self._core.announce_partitions(int(partitions))

    @property
    def columns(self) -> list[str]:
        return self._core.columns

    @property
    def sparse_dims(self):
        return self._core.sparse_dims

    @property
    def stats(self) -> dict[str, Any]:
        """Counters: rows emitted, late, invalid (and by reason), events
        buffered, keys held, keys evicted for max_keys, and state_bytes
        (what the state holds, as allocated)."""
        return self._core.stats

    def _encode(self, batch):
        cols = columns_of(batch)
        missing = [f for f in self._fields if f not in cols]
        if missing and cols:
            # a whole column absent is a mistake, not events lacking it
            import difflib
            extra = [c for c in cols if c not in self._fields]
            hints = [f"'{c}' for '{m}'" for m in missing
                     for c in difflib.get_close_matches(m, extra, 1, 0.6)]
            raise _sw.InvalidArgument(
                f"the batch has no column {', '.join(map(repr, missing))} "
                f"(a field of the spec's events); its columns are "
                f"{sorted(cols)}"
                + (f"; misspelled? {', '.join(hints)}" if hints else ""))
        out = []
        for name, kind in self._fields.items():
            if name in cols:
                out.append(convert(name, kind, cols[name],
                                    self._unit if name == self._time
                                    else None))
        n = {len(np.asarray(v)) for v in cols.values()}
        if len(n) > 1:
            raise _sw.ShapeError(f"batch columns have different lengths "
                                 f"{sorted(n)}")
        return out, cols, (n.pop() if n else 0)

    def push(self, batch: Any, partition: int = 0) -> PipelineOutput:
        """Feed a batch of events; returns a PipelineOutput. partition
        (0..1023) says which partition of the source the batch comes from
        when the source's partitions are ordered separately (Kafka): the
        watermark then follows the slowest partition."""
        encoded, cols, n = self._encode(batch)
        if self._private:
            # out.events shows the keyed hash, never the id
            cols = dict(cols)
            for col in encoded:
                if col[0] in self._private:
                    cols[col[0]] = self._core.hash_column([col])
        start = self._next
        if self._first is None and n:
            self._first = encoded     # golden events for a bundle
        self._batches.append((start, cols, n))
        self._next += n
        res = self._core.push(encoded, int(partition))
        out = PipelineOutput(self, res, start)
        self._drop_done()
        return out

    def flush(self) -> PipelineOutput:
        """Emit every buffered event (at the end of a stream)."""
        out = PipelineOutput(self, self._core.flush(), self._next)
        self._drop_done()
        return out

    def _drop_done(self):
        oldest = self._core.stats["oldest_pending"]
        while self._batches and self._batches[0][0] + self._batches[0][2] \
                <= oldest:
            self._batches.pop(0)

    def state(self, key: Any) -> dict[str, Any] | None:
        """The current profile of one key, e.g. state({"user": "u1"}):
        {feature: value} for the features keyed by exactly those fields,
        as of the last processed event time."""
        encoded = [convert(k, self._fields[k], [v]) for k, v in key.items()
                   if k in self._fields]
        if len(encoded) != len(key):
            unknown = [k for k in key if k not in self._fields]
            raise _sw.InvalidArgument(f"state: {unknown} are not event "
                                      f"fields")
        values = self._core.profile(encoded)
        keys = frozenset(key)
        return {c: float(v) for c, v in zip(self.columns, values)
                if self._column_keys().get(c) == keys}

    def _column_keys(self):
        """{dense column: the set of key fields of its feature}; stateless
        features (log1p, bucketize, one_hot, value) have no state to show."""
        if getattr(self, "_colkeys", None) is None:
            from .reference import feature_columns
            self._colkeys = {}
            for f in self.spec["features"]:
                if f["op"] in ("hash", "log1p", "bucketize", "one_hot",
                               "value"):
                    continue
                k = f.get("key", [])
                k = frozenset([k] if isinstance(k, str) else k)
                for c in feature_columns(f):
                    self._colkeys[c] = k
        return self._colkeys

    def checkpoint(self, path: str | os.PathLike,
                   source_position: bytes = b"",
                   background: bool = False) -> str | os.PathLike:
        """Write state, watermark, buffered events, the spec hash and your
        source position atomically (temporary file, fsync, rename).

        background=True writes the same file from a forked child (a
        copy-on-write snapshot of this moment, as Redis's BGSAVE) and
        returns at once; checkpoint_wait() tells when it is written.
        Commit the source position only then."""
        if isinstance(source_position, str):
            source_position = source_position.encode()
        if background:
            self._core.checkpoint_start(str(path), bytes(source_position))
        else:
            self._core.checkpoint(str(path), bytes(source_position))
        return path

    def checkpoint_wait(self, block: bool = True) -> bool:
        """Whether the background checkpoint is written (True also when
        none is running); raises its error if it failed."""
        return self._core.checkpoint_wait(block)

    @classmethod
    def restore(cls, path: str | os.PathLike,
                secret: bytes | str | None = None
                ) -> tuple[Pipeline, bytes]:
        """(pipeline, source_position) from a checkpoint. Rows of events
        that were buffered at the checkpoint come out without their input
        columns in ``events`` (re-read them from the source if needed)."""
        core, pos = _sw.pipeline_restore(str(path))
        spec_text = None
        with open(path, "rb") as f:
            head = f.read(64)
            n = int.from_bytes(head[24:32], "little")
            f.seek(32)
            spec_text = f.read(n).decode()
        p = cls(json.loads(spec_text), secret=secret, _core=core)
        return p, pos
