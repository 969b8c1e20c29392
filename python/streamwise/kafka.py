"""Kafka helpers: the embedded broker.

``local_broker()`` starts ``build/bin/sw-broker`` (librdkafka's mock
cluster: a real Kafka protocol implementation on loopback) and yields a
handle whose ``bootstrap`` is the address for ``bootstrap.servers``::

    with streamwise.kafka.local_broker(partitions=4) as broker:
        producer = confluent_kafka.Producer({"bootstrap.servers":
                                             broker.bootstrap})

It keeps everything in memory, holds about 5 MiB or 100k message sets per
partition, has no real transactions and answers -1 to offsets_for_times. A
real cluster is used by giving its ``bootstrap.servers`` instead. The handle
injects faults for tests: ``set_down()``/``set_up()`` drop a broker's
connections and refuse new ones, ``push_request_errors("Produce", 3,
"NOT_LEADER_FOR_PARTITION")`` fails the next requests of a kind.
"""
from __future__ import annotations

import os
import subprocess
from typing import IO, TYPE_CHECKING, Any, Iterable, Iterator

from . import _sw
from ._base import program

if TYPE_CHECKING:
    from typing import Self

__all__ = ["LocalBroker", "local_broker", "broker_program", "Sink",
           "Consumer", "partition_of"]


def partition_of(keys: Iterable[str | bytes], partitions: int) -> list[int]:
    """The partition of each key among ``partitions``, as Kafka's Java
    client, Kafka Streams and Flink choose it (murmur2 of the key bytes;
    str keys are UTF-8): where ``Sink`` and the runner's outputs put a
    key, so a backtest can shard events the way a live topic does."""
    return _sw.kafka_partition(
        [k.encode() if isinstance(k, str) else bytes(k) for k in keys],
        int(partitions))


def broker_program() -> str:
    """The sw-broker executable: $STREAMWISE_BROKER, the build in place
    (build/bin/sw-broker next to python/), the one pip installed with the
    package, or one on PATH."""
    return program("sw-broker", "STREAMWISE_BROKER")


class LocalBroker:
    """A running embedded broker (a child process driven over a pipe)."""

    def __init__(self, partitions: int = 4,
                 topics: Iterable[str | tuple[str, int]] = (),
                 brokers: int = 1) -> None:
        self.partitions = int(partitions)
        args = [broker_program(), "--control", "--brokers", str(brokers),
                "--partitions", str(self.partitions)]
        for t in topics:
            args += ["--topic", t if isinstance(t, str) else f"{t[0]}:{t[1]}"]
        self._proc = subprocess.Popen(args, stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True,
                                      bufsize=1)
        # the three pipes asked for above
        self._stdin: IO[str] = self._proc.stdin  # type: ignore[assignment]
        self._stdout: IO[str] = self._proc.stdout  # type: ignore[assignment]
        self._stderr: IO[str] = self._proc.stderr  # type: ignore[assignment]
        line = self._stdout.readline().strip()
        if not line:
            err = self._stderr.read().strip()
            self._proc.wait()
            raise _sw.SourceError(f"embedded broker did not start: {err}")
        self.bootstrap = line

    def _command(self, text):
        if self._proc.poll() is not None:
            raise _sw.SourceError("the embedded broker has stopped")
        self._stdin.write(text + "\n")
        self._stdin.flush()
        answer = self._stdout.readline().strip()
        if answer != "ok":
            raise _sw.InvalidArgument(answer.removeprefix("error: ")
                                      or "the embedded broker stopped")

    def create_topic(self, name: str, partitions: int | None = None) -> None:
        """Create a topic (topics a client writes to are also created on
        first use, with 4 partitions)."""
        self._command(f"topic {name} {partitions or self.partitions}")

    def set_down(self, broker: int = -1) -> None:
        """Disconnect broker (1..n, -1: all) and refuse new connections."""
        self._command(f"down {int(broker)}")

    def set_up(self, broker: int = -1) -> None:
        self._command(f"up {int(broker)}")

    def push_request_errors(self, request: str, count: int,
                            error: str) -> None:
        """Fail the next count requests of a kind ("Produce", "Fetch",
        "ListOffsets", "Metadata", ...) with error, a librdkafka error name
        ("NOT_LEADER_FOR_PARTITION", "_TRANSPORT" to disconnect, ...)."""
        self._command(f"errors {request} {int(count)} {error}")

    def clear_request_errors(self, request: str) -> None:
        self._command(f"clear {request}")

    def close(self) -> None:
        """Stop the broker (its messages are gone)."""
        if self._proc.poll() is None:
            self._stdin.close()             # it stops at end of input
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        for f in (self._stdout, self._stderr):
            f.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"LocalBroker({self.bootstrap})"


def local_broker(partitions: int = 4,
                 topics: Iterable[str | tuple[str, int]] = (),
                 brokers: int = 1) -> LocalBroker:
    """Start an embedded broker; use it as a context manager. topics: names
    or (name, partitions) pairs to create up front."""
    return LocalBroker(partitions=partitions, topics=topics, brokers=brokers)


class Sink:
    """Produce to a topic through the C core (librdkafka, idempotent,
    acks=all). A message counts as written only when acknowledged:
    ``flush()`` waits for that and raises if any message failed.

    ``headers`` (a dict of str) go on every message, e.g. the schema and
    model versions."""

    def __init__(self, topic: str, bootstrap: str,
                 config: dict[str, str] | None = None,
                 headers: dict[str, str | bytes] | None = None) -> None:
        self.topic = topic
        self._headers = [str(x) for kv in (headers or {}).items()
                         for x in kv]
        self._final: dict[str, int] | None = None
        self._sink = _sw.kafka_sink_open(
            bootstrap, topic,
            [str(x) for kv in (config or {}).items() for x in kv])

    def send(self, values: Any, keys: Any = None, timestamps: Any = None,
             partition: int | None = None,
             headers: dict[str, str | bytes] | None = None) -> None:
        """Queue messages: values (bytes or str, one or a sequence), keys
        likewise or None, timestamps in ms (int64) or None for now."""
        one = isinstance(values, (bytes, str))
        enc = (lambda v: v.encode() if isinstance(v, str) else v)
        values = [enc(values)] if one else [enc(v) for v in values]
        if keys is not None:
            keys = [enc(keys)] if one else [None if k is None else enc(k)
                                            for k in keys]
        if timestamps is not None and one:
            timestamps = [timestamps]
        h = self._headers + [str(x) for kv in (headers or {}).items()
                             for x in kv]
        self._sink.send(values, keys, timestamps,
                        -1 if partition is None else int(partition), h)

    def flush(self, timeout: float = 30.0) -> dict[str, int]:
        """Wait for every acknowledgement; returns {sent, acked, failed}.
        On a closed sink, the counts of its last flush."""
        if self._sink is None:
            if self._final is None:
                raise _sw.StateError("kafka sink: closed before any flush")
            return dict(self._final)
        sent, acked, failed = self._sink.flush(int(timeout * 1000))
        self._final = {"sent": sent, "acked": acked, "failed": failed}
        return dict(self._final)

    def close(self) -> None:
        """Free the producer (flush first: what is queued is dropped)."""
        if self._sink is not None:
            self._sink.close()
        self._sink = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if exc[0] is None:
                self.flush()
        finally:
            self.close()


class Consumer:
    """Live consumption in a consumer group, through the C core's source
    (librdkafka subscribe): the group shares the partitions among its
    members and keeps each one's committed offset. ``poll()`` returns the
    messages that arrived within ``wait`` seconds (a dict of arrays like a
    replay's batch, decoded by ``schema``/``avro`` when given; possibly
    empty); iterating yields the non-empty ones without end. ``commit()``
    records the offsets after everything returned so far: call it once
    their results are safe (after ``Pipeline.checkpoint``), so that a
    restart resumes there and loses nothing (at least once). A new group
    starts from the earliest offset unless ``config`` sets
    ``auto.offset.reset``. For reproducible experiments use
    ``streamwise.replay.kafka`` instead (exact slices, no group)."""

    def __init__(self, topic: str, group: str, bootstrap: str | None = None,
                 schema: Any = None, avro: Any = None,
                 batch_size: int = 65536, wait: float = 1.0,
                 config: dict[str, str] | None = None,
                 start_at: dict[int, int] | None = None) -> None:
        """start_at: {partition: offset} where partitions resume when
        assigned, winning over the group's committed offsets: the
        positions a restored checkpoint holds, so that a crash between
        the checkpoint and the commit re-applies nothing. Partitions it
        does not name start at their beginning (the checkpoint has seen
        none of their events)."""
        from ._events import make_decoder
        bootstrap = bootstrap or os.environ.get("STREAMWISE_KAFKA_BOOTSTRAP")
        if not bootstrap:
            raise _sw.InvalidArgument(
                "kafka consumer: no bootstrap servers (pass bootstrap= or "
                "set STREAMWISE_KAFKA_BOOTSTRAP)")
        self.topic, self.group = topic, group
        self.batch_size = int(batch_size)
        self._decoder = make_decoder(schema, avro)
        self._src = _sw.kafka_subscribe(
            bootstrap, topic, group, int(wait * 1000),
            [str(x) for kv in (config or {}).items() for x in kv])
        if start_at is not None:
            self._src.start_at(-1, 0)
            for part, off in start_at.items():
                self._src.start_at(int(part), int(off))
        self.dead_letters: list[dict[str, Any]] = []

    def poll(self) -> dict[str, Any]:
        if self._src is None:
            raise _sw.StateError("kafka consumer: closed")
        if self._decoder is None:
            part, off, ts, keys, values = self._src.next(self.batch_size)
            return {"partition": part, "offset": off, "timestamp": ts,
                    "key": keys, "value": values}
        self._src.fetch(self.batch_size)
        cols, dead = self._src.decode(self._decoder)
        self.dead_letters += [{"partition": p, "offset": o, "reason": r,
                               "value": v} for p, o, r, v in dead]
        return cols

    def __iter__(self) -> Iterator[dict[str, Any]]:
        while True:
            b = self.poll()
            if len(b["offset"]):
                yield b

    def commit(self) -> None:
        self._src.commit()

    @property
    def positions(self) -> dict[int, int]:
        """{partition: the offset after the last message returned}."""
        return {p: n for p, a, z, n in self._src.slice()}

    def close(self) -> None:
        """Leave the group (its partitions go to the other members)."""
        if self._src is not None:
            self._src.close()
        self._src = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
