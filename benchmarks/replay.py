"""Kafka produce and replay throughput against the embedded broker (4
partitions, 100-byte messages), beside bare confluent_kafka in the same
run. HDF5 replay is not built yet (issue 4), so it has no rows here.

    PYTHONPATH=python /usr/bin/python3 benchmarks/replay.py [--messages N]
"""
import argparse
import json
import time

import confluent_kafka as ck
import numpy as np

import streamwise as sw
from streamwise.kafka import Sink, local_broker

SCHEMA = {"time": "ts", "time_unit": "ms",
          "fields": {"user": "str", "item": "int64", "price": "float64",
                     "click": "int8"}}


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


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--messages", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    n = args.messages
    msgs = payloads(n)
    rows = {}
    with local_broker(topics=[("a", 4), ("b", 4)]) as b:
        def sw_produce(topic="a"):
            s = Sink(topic, b.bootstrap)
            s.send(msgs)
            return s.flush(120)["acked"]

        def ck_produce():
            p = ck.Producer({"bootstrap.servers": b.bootstrap,
                             "enable.idempotence": True, "linger.ms": 5})
            for m in msgs:
                while True:
                    try:
                        p.produce("b", m)
                        break
                    except BufferError:
                        p.poll(0.05)
                p.poll(0)
            p.flush(120)
            return n

        def sw_replay(schema=None):
            r = sw.replay.kafka("a", bootstrap=b.bootstrap, schema=schema)
            return sum(len(x["offset"]) for x in r)

        def ck_consume():
            c = ck.Consumer({"bootstrap.servers": b.bootstrap,
                             "group.id": "bench",
                             "enable.auto.commit": False})
            c.assign([ck.TopicPartition("a", p, ck.OFFSET_BEGINNING)
                      for p in range(4)])
            got = 0
            while got < n:
                ms = c.consume(10000, 1.0)
                got += sum(1 for m in ms if not m.error())
            c.close()
            return got

        # one topic each for produce runs would grow the mock past its
        # limits; the replays read topic a as written by the first run
        for name, f in [("produce: streamwise Sink (C)", sw_produce),
                        ("produce: confluent_kafka", ck_produce)]:
            rows[name] = [timed(f)]
        for name, f in [("replay: streamwise, raw", sw_replay),
                        ("replay: streamwise, JSON decoded",
                         lambda: sw_replay(SCHEMA)),
                        ("consume: confluent_kafka assign()", ck_consume)]:
            rows[name] = [timed(f) for _ in range(args.repeat)]
    print(f"\nKafka, embedded broker (librdkafka 2.0.2 mock), {n:,} messages "
          f"of 100 bytes, 4 partitions; median of the runs")
    print(f"{'':40s} {'msgs/s':>10s} {'s':>7s} {'runs':>5s}")
    for name, rs in rows.items():
        rs = sorted(rs, key=lambda r: r[1])
        cnt, sec = rs[len(rs) // 2]
        assert cnt == n, (name, cnt)
        print(f"{name:40s} {cnt / sec:10,.0f} {sec:7.3f} {len(rs):5d}")


if __name__ == "__main__":
    main()
