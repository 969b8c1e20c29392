"""Replay recorded streams into batches.

``hdf5(path, event_type, start=..., stop=...)`` reads a table of an HDF5
event dataset (see ``streamwise.hdf5``) through the C core, chunk by
chunk, between two rows (int) or two event times (datetime, numpy
datetime64, pandas Timestamp; found by binary search on the sorted time
column), and yields batches as dicts of numpy arrays, one per schema field
(str fields as fixed-width bytes). ``.slice`` names the file's SHA-256, the
dataset path and the exact row range read.

``kafka(topic, bootstrap=..., start=..., stop=...)`` reads exactly the
messages of a topic between two points, through the C core's Kafka source
(librdkafka, ``assign()``: no consumer group, nothing committed), and
yields batches as dicts of numpy arrays: ``partition`` (int32), ``offset``
(int64), ``timestamp`` (int64 ms since 1970), ``key`` and ``value``
(bytes, None for null). Afterwards ``.slice`` says exactly what was read.

start: "beginning", an offset (int), or a time (datetime, numpy
datetime64, pandas Timestamp: the first message at or after it). stop:
"end" (the end as of opening), an offset (the first one not read) or a
time (the first message not read). Times go through offsets_for_times where
the broker answers it, else a binary search on message timestamps
(librdkafka's mock broker answers -1, so the embedded broker always uses
the search).
"""
from __future__ import annotations

import datetime as _dt
import os
from typing import TYPE_CHECKING, Any, Iterable

import numpy as np

if TYPE_CHECKING:
    from typing import Self

#: where a replay starts or stops: an edge ("beginning", "end"), an offset
#: or row number, or a time (datetime, numpy or pandas): checked at run
#: time, so Any to the type checker
Point = Any

from . import _sw
from ._base import progress_bar
from ._events import make_decoder

__all__ = ["kafka", "KafkaReplay", "hdf5", "HDF5Replay"]


def _point(value, is_stop):
    """(kind, value): POINT_EDGE (beginning/end), POINT_OFFSET, or
    POINT_TIME in ms."""
    if value in (None, "beginning", "end"):
        if value == ("beginning" if is_stop else "end"):
            raise _sw.InvalidArgument(
                f"{'stop' if is_stop else 'start'}={value!r}: start takes "
                "'beginning', stop takes 'end'")
        return _sw.POINT_EDGE, 0
    if isinstance(value, (bool, np.bool_)):
        raise _sw.InvalidArgument("an offset or a time, not a bool")
    if isinstance(value, (int, np.integer)):
        if value < 0:
            raise _sw.InvalidArgument(f"offset {value} < 0")
        return _sw.POINT_OFFSET, int(value)
    if _is_time(value):
        return _sw.POINT_TIME, _time_in(value, "ms")
    raise _sw.InvalidArgument(f"not an offset or a time: {value!r}")


class KafkaReplay:
    """An iterator of batches; see the module documentation."""

    def __init__(self, topic: str, bootstrap: str | None = None,
                 start: Point = "beginning", stop: Point = "end",
                 partitions: Iterable[int] | None = None,
                 batch_size: int = 65536, timeout: float = 30.0,
                 progress: bool = False, config: dict[str, str] | None = None,
                 schema: Any = None, order: str | None = None,
                 avro: Any = None) -> None:
        if order not in (None, "partition", "event_time"):
            raise _sw.InvalidArgument(
                f"order={order!r}: None (each partition in offset order, as "
                "fetched) or 'event_time'")
        if avro is not None and schema is None:
            raise _sw.InvalidArgument("avro= needs schema= (the events "
                                      "schema the records decode into)")
        self.order = order
        self._pending = None
        self._latest: dict[int, Any] = {}
        bootstrap = bootstrap or os.environ.get("STREAMWISE_KAFKA_BOOTSTRAP")
        if not bootstrap:
            raise _sw.InvalidArgument(
                "kafka replay: no bootstrap servers (pass bootstrap=, set "
                "STREAMWISE_KAFKA_BOOTSTRAP, or start "
                "streamwise.kafka.local_broker())")
        sk, sv = _point(start, False)
        tk, tv = _point(stop, True)
        self.topic = topic
        self.bootstrap = bootstrap
        self.batch_size = int(batch_size)
        self._src = _sw.kafka_open(
            bootstrap, topic,
            None if partitions is None else [int(p) for p in partitions],
            sk, sv, tk, tv, int(timeout * 1000),
            [str(x) for kv in (config or {}).items() for x in kv])
        self._decoder = make_decoder(schema, avro)
        self.dead_letters: list[dict[str, Any]] = []

        self._bar = None
        if progress:
            total = sum(s[2] - s[1] for s in self._src.slice())
            self._bar = progress_bar(total, "msg", topic)

    @property
    def slice(self) -> dict[str, Any]:
        """What has been read: topic, bootstrap, and per partition the
        first offset, the stop, and the offset after the last message read
        (equal to stop once the replay is complete)."""
        if self._src is None:
            return self._final
        parts = [{"partition": p, "start": a, "stop": b, "next": n,
                  "messages": n - a}
                 for p, a, b, n in self._src.slice()]
        return {"topic": self.topic, "bootstrap": self.bootstrap,
                "partitions": parts,
                "messages": sum(p["messages"] for p in parts),
                "dead_letters": len(self.dead_letters),
                "complete": all(p["next"] >= p["stop"] for p in parts)}

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> dict[str, np.ndarray]:
        if self.order == "event_time":
            return self._next_merged()
        return self._next_fetched()

    def _next_fetched(self):
        if self._src is None:
            raise StopIteration
        if self._decoder is not None:
            return self._next_decoded()
        part, off, ts, keys, values = self._src.next(self.batch_size)
        if len(off) == 0:
            self._finish()
        if self._bar is not None:
            self._bar.update(len(off))
        return {"partition": part, "offset": off, "timestamp": ts,
                "key": keys, "value": values}

    def _next_merged(self):
        """The partitions merged in (timestamp, partition, offset) order:
        a message is released once every partition not yet read to its
        stop has shown a timestamp at or after it, so the sequence of rows
        is the same however the fetches interleave (timestamps must not go
        back within a partition, as in a topic published from an event
        log)."""
        while True:
            try:
                b = self._next_fetched()
            except StopIteration:
                if self._pending is None or not len(self._pending["offset"]):
                    raise
                out, self._pending = self._sorted(self._pending, None), None
                return out
            b = {k: (v if isinstance(v, np.ndarray)
                     else np.asarray(v, dtype=object)) for k, v in b.items()}
            if len(b["offset"]):
                for p in np.unique(b["partition"]).tolist():
                    self._latest[p] = int(b["timestamp"][
                        b["partition"] == p].max())
            self._pending = b if self._pending is None else {
                k: np.concatenate([self._pending[k], b[k]]) for k in b}
            open_parts = [p for p, a, z, n in self._src.slice()
                          if n < z]
            if any(p not in self._latest for p in open_parts):
                continue
            wm = min((self._latest[p] for p in open_parts), default=None)
            out = self._sorted(self._pending, wm)
            if len(out["offset"]):
                return out

    def _sorted(self, b, wm):
        """Rows of b with timestamp <= wm (all if wm is None), in order;
        the rest stay pending."""
        ready = np.ones(len(b["offset"]), bool) if wm is None \
            else b["timestamp"] <= wm
        idx = np.flatnonzero(ready)
        idx = idx[np.lexsort((b["offset"][idx], b["partition"][idx],
                              b["timestamp"][idx]))]
        rest = np.flatnonzero(~ready)
        out = {k: v[idx] for k, v in b.items()}
        self._pending = {k: v[rest] for k, v in b.items()}
        return out

    def _finish(self):
        """Complete: keep the slice, let the consumer go."""
        self._final = self.slice
        self._src.close()
        self._src = None
        if self._bar is not None:
            self._bar.close()
        raise StopIteration

    def _next_decoded(self):
        """A batch decoded by the schema: its fields plus partition,
        offset and timestamp; messages that do not decode go to
        self.dead_letters (a dict each: partition, offset, reason, value)
        and are counted in the slice, never skipped silently."""
        while True:
            n = self._src.fetch(self.batch_size)
            if n == 0:
                self._finish()
            cols, dead = self._src.decode(self._decoder)
            self.dead_letters += [{"partition": p, "offset": o, "reason": r,
                                   "value": v} for p, o, r, v in dead]
            if self._bar is not None:
                self._bar.update(n)
            if len(cols["offset"]):
                return cols


def kafka(topic: str, bootstrap: str | None = None,
          start: Point = "beginning", stop: Point = "end",
          partitions: Iterable[int] | None = None,
          batch_size: int = 65536, timeout: float = 30.0,
          progress: bool = False, config: dict[str, str] | None = None,
          schema: Any = None, order: str | None = None,
          avro: Any = None) -> KafkaReplay:
    """Replay a topic; see the module documentation. config: further
    librdkafka properties (security.protocol, sasl.*, fetch sizes...);
    timeout: seconds the broker may make no progress before an error.
    schema: a pipeline spec or its "events" entry; JSON values are then
    decoded into its fields; see KafkaReplay._next_decoded. order:
    None reads each partition in offset order as fetched; "event_time"
    merges the partitions by message timestamp (ties by partition, then
    offset), the same sequence on every replay. avro: decode Avro records
    instead of JSON (see streamwise._events.avro_decoder); the records' fields map by name
    onto the schema's."""
    return KafkaReplay(topic, bootstrap=bootstrap, start=start, stop=stop,
                       partitions=partitions, batch_size=batch_size,
                       timeout=timeout, progress=progress, config=config,
                       schema=schema, order=order, avro=avro)


def _time_in(value, unit):
    """A datetime-like value as an integer count of unit since 1970."""
    if isinstance(value, np.datetime64):
        return int(value.astype(f"datetime64[{unit}]").astype(np.int64))
    if hasattr(value, "to_datetime64"):            # pandas Timestamp
        return _time_in(value.to_datetime64(), unit)
    if isinstance(value, _dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=_dt.timezone.utc)
        return _time_in(np.datetime64(
            value.astimezone(_dt.timezone.utc).replace(tzinfo=None), "us"),
            unit)
    raise _sw.InvalidArgument(f"not a time: {value!r}")


def _is_time(value):
    return isinstance(value, (np.datetime64, _dt.datetime)) or \
        hasattr(value, "to_datetime64")


class HDF5Replay:
    """An iterator of batches from an HDF5 event table; see the module
    documentation."""

    def __init__(self, path: str | os.PathLike, event_type: str,
                 start: Point | None = None, stop: Point | None = None,
                 batch_size: int = 65536, progress: bool = False,
                 by: str | None = None) -> None:
        import json
        self.path = os.path.realpath(os.fspath(path))
        self.event_type = event_type
        self.batch_size = int(batch_size)
        if self.batch_size <= 0:
            raise _sw.InvalidArgument(f"batch_size {batch_size}")
        if by not in (None, "row", "time"):
            raise _sw.InvalidArgument(f"by={by!r}: 'row' or 'time'")
        for v in (start, stop):
            if isinstance(v, (bool, np.bool_)) or not (
                    v is None or _is_time(v) or
                    isinstance(v, (int, np.integer))):
                raise _sw.InvalidArgument(
                    f"start/stop: a row (int), a time or None, not {v!r}")
        by_time = by == "time" or (by is None and (_is_time(start) or
                                                   _is_time(stop)))
        if by_time and not all(v is None or _is_time(v) or by == "time"
                               for v in (start, stop)):
            raise _sw.InvalidArgument(
                "start and stop: both times (or pass by='time' for times "
                "in the schema's unit)")
        if not by_time:
            self._src = _sw.h5_open(self.path, event_type, _sw.H5_BY_ROW,
                                    0 if start is None else int(start),
                                    -1 if stop is None else int(stop))
        else:
            with _sw.h5_open(self.path, event_type, _sw.H5_BY_ROW, 0,
                             0) as probe:
                ev = json.loads(probe.info()[1])
            unit = ev.get("events", ev).get("time_unit", "us")
            lo = -2**63 if start is None else (
                _time_in(start, unit) if _is_time(start) else int(start))
            hi = 2**63 - 1 if stop is None else (
                _time_in(stop, unit) if _is_time(stop) else int(stop))
            self._src = _sw.h5_open(self.path, event_type, _sw.H5_BY_TIME,
                                    lo, hi)
        info = self._src.info()
        self.dataset, self.schema = info[0], json.loads(info[1])
        self.schema = self.schema.get("events", self.schema)
        self.provenance = json.loads(info[2] or "{}")
        self.rows = info[3]
        self._sha = None
        self._bar = None
        if progress:
            self._bar = progress_bar(
                info[5] - info[4], "row",
                f"{os.path.basename(self.path)}{self.dataset}")

    @property
    def slice(self) -> dict[str, Any]:
        """Exactly what has been read: the file (path, SHA-256 of its
        bytes), the dataset, the rows [start, stop) asked for and the row
        after the last one read (``next`` == ``stop`` once complete)."""
        _, _, _, rows, start, stop, nxt = self._src.info()
        if self._sha is None:
            self._sha = self._src.sha256()
        return {"path": self.path, "sha256": self._sha,
                "dataset": self.dataset, "start": start, "stop": stop,
                "next": nxt, "rows": nxt - start,
                "complete": nxt >= stop}

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> dict[str, np.ndarray]:
        cols = self._src.next(self.batch_size)
        n = len(next(iter(cols.values())))
        if n == 0:
            if self._bar is not None:
                self._bar.close()
                self._bar = None
            raise StopIteration
        if self._bar is not None:
            self._bar.update(n)
        return cols

    def read_all(self) -> dict[str, np.ndarray]:
        """The rest of the slice as one dict of arrays."""
        parts = list(self)
        if not parts:
            return self._src.next(1)
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    def count(self) -> int:
        """Read the rest of the slice in C without keeping it; the rows
        read (what the C path costs)."""
        return self._src.drain(self.batch_size)


def hdf5(path: str | os.PathLike, event_type: str,
         start: Point | None = None, stop: Point | None = None,
         batch_size: int = 65536, progress: bool = False,
         by: str | None = None) -> HDF5Replay:
    """Replay table /events/<event_type> of an HDF5 event dataset.

    start/stop: None (the first row / the end), a row number (int; stop is
    the first row not read), or a time (datetime, numpy datetime64, pandas
    Timestamp: the first event at or after it / the first event not read).
    by="time" reads ints as times in the schema's unit instead. A time
    range is found by binary search on the sorted time column."""
    return HDF5Replay(path, event_type, start=start, stop=stop,
                      batch_size=batch_size, progress=progress, by=by)
