"""Replay recorded streams into batches.

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
import datetime as _dt
import os

import numpy as np

from . import _sw

__all__ = ["kafka", "KafkaReplay"]


def _point(value, is_stop):
    """(kind, value): 0 beginning/end, 1 offset, 2 time in ms."""
    if value in (None, "beginning", "end"):
        if value == ("beginning" if is_stop else "end"):
            raise _sw.InvalidArgument(
                f"{'stop' if is_stop else 'start'}={value!r}: start takes "
                "'beginning', stop takes 'end'")
        return 0, 0
    if isinstance(value, (bool, np.bool_)):
        raise _sw.InvalidArgument("an offset or a time, not a bool")
    if isinstance(value, (int, np.integer)):
        if value < 0:
            raise _sw.InvalidArgument(f"offset {value} < 0")
        return 1, int(value)
    if isinstance(value, np.datetime64):
        return 2, int(value.astype("datetime64[ms]").astype(np.int64))
    if hasattr(value, "to_pydatetime"):            # pandas Timestamp
        value = value.to_pydatetime()
    if isinstance(value, _dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=_dt.timezone.utc)
        return 2, int(round(value.timestamp() * 1000))
    raise _sw.InvalidArgument(f"not an offset or a time: {value!r}")


class KafkaReplay:
    """An iterator of batches; see the module documentation."""

    def __init__(self, topic, bootstrap=None, start="beginning", stop="end",
                 partitions=None, batch_size=65536, timeout=30.0,
                 progress=False, config=None, schema=None):
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
        self._decoder = None
        self.dead_letters = []
        if schema is not None:
            import json
            self._decoder = _sw.json_decoder(json.dumps(
                schema.get("events", schema)))
        self._bar = None
        if progress:
            try:
                from tqdm.auto import tqdm
            except ImportError:                       # pragma: no cover
                tqdm = None
            if tqdm is not None:
                total = sum(s[2] - s[1] for s in _sw.kafka_slice(self._src))
                self._bar = tqdm(total=total, unit="msg", desc=topic)

    @property
    def slice(self):
        """What has been read: topic, bootstrap, and per partition the
        first offset, the stop, and the offset after the last message read
        (equal to stop once the replay is complete)."""
        if self._src is None:
            return self._final
        parts = [{"partition": p, "start": a, "stop": b, "next": n,
                  "messages": n - a}
                 for p, a, b, n in _sw.kafka_slice(self._src)]
        return {"topic": self.topic, "bootstrap": self.bootstrap,
                "partitions": parts,
                "messages": sum(p["messages"] for p in parts),
                "dead_letters": len(self.dead_letters),
                "complete": all(p["next"] >= p["stop"] for p in parts)}

    def __iter__(self):
        return self

    def __next__(self):
        if self._src is None:
            raise StopIteration
        if self._decoder is not None:
            return self._next_decoded()
        part, off, ts, keys, values = _sw.kafka_next(self._src,
                                                     self.batch_size)
        if len(off) == 0:
            self._finish()
        if self._bar is not None:
            self._bar.update(len(off))
        return {"partition": part, "offset": off, "timestamp": ts,
                "key": keys, "value": values}

    def _finish(self):
        """Complete: keep the slice, let the consumer go."""
        self._final = self.slice
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
            n = _sw.kafka_fetch(self._src, self.batch_size)
            if n == 0:
                self._finish()
            cols, dead = _sw.kafka_decode(self._src, self._decoder)
            self.dead_letters += [{"partition": p, "offset": o, "reason": r,
                                   "value": v} for p, o, r, v in dead]
            if self._bar is not None:
                self._bar.update(n)
            if len(cols["offset"]):
                return cols


def kafka(topic, bootstrap=None, start="beginning", stop="end",
          partitions=None, batch_size=65536, timeout=30.0, progress=False,
          config=None, schema=None):
    """Replay a topic; see the module documentation. config: further
    librdkafka properties (security.protocol, sasl.*, fetch sizes...);
    timeout: seconds the broker may make no progress before an error.
    schema: a pipeline spec or its "events" entry; JSON values are then
    decoded into its fields; see KafkaReplay._next_decoded."""
    return KafkaReplay(topic, bootstrap=bootstrap, start=start, stop=stop,
                       partitions=partitions, batch_size=batch_size,
                       timeout=timeout, progress=progress, config=config,
                       schema=schema)
