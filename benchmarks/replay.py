"""Replay throughput. HDF5: 5M events of (int64 ts, int32 user, int32
item, float32 value) in 64k-row chunks (../shared/BENCHMARKS.md), written
by streamwise uncompressed and with shuffle+gzip, replayed in C (rows read
and dropped), through Python (a dict of numpy arrays per chunk) and read by
h5py in the same run. Kafka: produce and replay against the embedded
broker (4 partitions, 100-byte messages), beside bare confluent_kafka.

    PYTHONPATH=python /usr/bin/python3 benchmarks/replay.py \
        [--rows N] [--messages N] [--repeat K] [--only hdf5|kafka]
"""
import argparse
import json
import os
import tempfile
import time

import confluent_kafka as ck
import numpy as np

import streamwise as sw
from streamwise.kafka import Sink, local_broker

SCHEMA = {"time": "ts", "time_unit": "ms",
          "fields": {"user": "str", "item": "int64", "price": "float64",
                     "click": "int8"}}


AVRO = {"type": "record", "name": "Event", "fields": [
    {"name": "ts", "type": "long"}, {"name": "user", "type": "string"},
    {"name": "item", "type": "long"}, {"name": "price", "type": "double"},
    {"name": "click", "type": "int"}]}


def avro_payloads(n, seed=0):
    """The same events as Avro records in Confluent framing (schema id 1),
    encoded by Apache Avro's Python implementation."""
    import io
    import avro.io
    import avro.schema
    w = avro.io.DatumWriter(avro.schema.parse(json.dumps(AVRO)))
    out = []
    for m in payloads(n, seed):
        buf = io.BytesIO()
        buf.write(b"\0\0\0\0\1")
        w.write(json.loads(m), avro.io.BinaryEncoder(buf))
        out.append(buf.getvalue())
    return out


def payloads(n, seed=0):
    """n JSON events padded to 100 bytes each."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        e = {"ts": 1_700_000_000_000 + i, "user": f"u{rng.integers(1e6)}",
             "item": int(rng.integers(1e5)),
             "price": float(np.round(rng.gamma(2, 10), 2)),
             "click": int(rng.random() < 0.05)}
        s = json.dumps(e)
        out.append((s + " " * (100 - len(s))).encode())
    return out


def timed(f):
    t0 = time.perf_counter()
    n = f()
    return n, time.perf_counter() - t0


def table(rows, n, unit, width):
    """One line per measured thing: the median run's rate, seconds and the
    number of runs; every run must have read all n."""
    print(f"{'':{width}s} {unit:>12s} {'s':>7s} {'runs':>5s}")
    for name, rs in rows.items():
        rs = sorted(rs, key=lambda r: r[1])
        cnt, sec = rs[len(rs) // 2]
        assert cnt == n, (name, cnt)
        print(f"{name:{width}s} {cnt / sec:12,.0f} {sec:7.3f} {len(rs):5d}")


def hdf5_events(n, seed=0):
    rng = np.random.default_rng(seed)
    return {"ts": np.sort(rng.integers(0, 10**12, n)),
            "user": rng.integers(0, 10**6, n).astype(np.int32),
            "item": rng.integers(0, 10**5, n).astype(np.int32),
            "value": rng.random(n, dtype=np.float32)}


def hdf5_bench(n, repeat):
    import h5py
    schema = {"time": "ts", "time_unit": "us",
              "fields": {"user": "int32", "item": "int32",
                         "value": "float32"}}
    ev = hdf5_events(n)
    rows = {}
    with tempfile.TemporaryDirectory() as d:
        for comp, label in [(None, "uncompressed"), ("gzip", "shuffle+gzip")]:
            path = os.path.join(d, f"{label}.h5")
            rows[f"write, {label}: streamwise"] = [timed(
                lambda: sw.hdf5.write_events(path, "e", ev, schema,
                                             compression=comp) and n)]
            mib = os.path.getsize(path) / 2**20

            def c_path():
                return sw.replay.hdf5(path, "e").count()

            def py_path():
                return sum(len(b["ts"]) for b in sw.replay.hdf5(path, "e"))

            def h5py_read():
                with h5py.File(path, "r") as f:
                    g = f["events/e"]
                    return len([g[k][:] for k in ev][0])

            for name, f in [("C", c_path), ("Python", py_path),
                            ("h5py, whole columns", h5py_read)]:
                rows[f"replay, {label} ({mib:.0f} MiB): {name}"] = \
                    [timed(f) for _ in range(repeat)]
    print(f"\nHDF5 event dataset, {n:,} rows (int64 ts, int32 user, int32 "
          f"item, float32 value), 64k-row chunks, Fletcher-32; files hot in "
          f"the page cache; median of the runs")
    table(rows, n, "rows/s", 50)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--messages", type=int, default=100_000)
    ap.add_argument("--rows", type=int, default=5_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--only", choices=["hdf5", "kafka"])
    args = ap.parse_args()
    if args.only != "kafka":
        hdf5_bench(args.rows, args.repeat)
    if args.only != "hdf5":
        kafka_bench(args.messages, args.repeat)


def kafka_bench(n, repeat):
    msgs = payloads(n)
    rows = {}
    with local_broker(topics=[("a", 4), ("b", 4), ("c", 4)]) as b:
        av = Sink("c", b.bootstrap)
        avro_msgs = avro_payloads(n)
        for part in range(4):
            av.send(avro_msgs[part::4], partition=part)
        av.flush(120)

        # messages go round-robin over the partitions: the mock keeps about
        # 5 MiB per partition and drops the oldest beyond that, which a
        # partitioner's uneven spread can reach (seen: 27% gone)
        def sw_produce(topic="a"):
            s = Sink(topic, b.bootstrap)
            for part in range(4):
                s.send(msgs[part::4], partition=part)
            return s.flush(120)["acked"]

        def ck_produce():
            p = ck.Producer({"bootstrap.servers": b.bootstrap,
                             "enable.idempotence": True, "linger.ms": 5})
            for i, m in enumerate(msgs):
                while True:
                    try:
                        p.produce("b", m, partition=i % 4)
                        break
                    except BufferError:
                        p.poll(0.05)
                p.poll(0)
            p.flush(120)
            return n

        def sw_replay(schema=None, topic="a", avro=None):
            r = sw.replay.kafka(topic, bootstrap=b.bootstrap, schema=schema,
                                avro=avro)
            return sum(len(x["offset"]) for x in r)

        def ck_consume():
            c = ck.Consumer({"bootstrap.servers": b.bootstrap,
                             "group.id": "bench",
                             "enable.auto.commit": False})
            c.assign([ck.TopicPartition("a", p, ck.OFFSET_BEGINNING)
                      for p in range(4)])
            got, errors, idle = 0, [], time.monotonic()
            while got < n and time.monotonic() - idle < 30:
                ms = c.consume(10000, 1.0)
                errors += [m.error() for m in ms if m.error()]
                ok = sum(1 for m in ms if not m.error())
                got += ok
                if ok:
                    idle = time.monotonic()
            c.close()
            if got < n:
                print(f"confluent_kafka consumer: {got:,} of {n:,} after 30 s "
                      f"without progress; errors: {errors[:3]}")
            return got

        # one topic each for produce runs would grow the mock past its
        # limits; the replays read topic a as written by the first run
        for name, f in [("produce: streamwise Sink (C)", sw_produce),
                        ("produce: confluent_kafka", ck_produce)]:
            rows[name] = [timed(f)]
        for name, f in [("replay: streamwise, raw", sw_replay),
                        ("replay: streamwise, JSON decoded",
                         lambda: sw_replay(SCHEMA)),
                        ("replay: streamwise, Avro decoded",
                         lambda: sw_replay(SCHEMA, "c", {
                             "schema": AVRO, "writers": {1: AVRO}})),
                        ("consume: confluent_kafka assign()", ck_consume)]:
            rows[name] = [timed(f) for _ in range(repeat)]
    print(f"\nKafka, embedded broker (librdkafka 2.0.2 mock), {n:,} messages "
          f"of 100 bytes, 4 partitions; median of the runs")
    table(rows, n, "msgs/s", 40)


if __name__ == "__main__":
    main()
