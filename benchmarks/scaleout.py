"""Scale-out: runners as members of one consumer group ("tasks"), on the
embedded broker.

    PYTHONPATH=python /usr/bin/python3 benchmarks/scaleout.py [--events N]
        [--reps R] [--keys K] [--bootstrap HOST:PORT]

1. Throughput: N events (JSON {ts, user, item, price, click}, 20,000 users,
   keyed by user) on a topic of 8 partitions, read by 1, 2 and 3
   `sw-serve run` processes in one group (tasks, a changelog, checkpoints
   every second), predictions to a topic of 32 partitions; alternating
   1, 2, 3, 1, 2, 3... R times, each from a fresh group. Timed from the
   start of the processes to the moment every partition's last event is
   scored, so each figure includes joining the group (about 3 s).
   This machine has 2 cores and the broker and the members share them:
   the figures say what a member costs, not how a cluster scales.
2. Restore: one partition holding K keys (two events each, a pipeline of
   8 aggregations keyed by user): a member scores them and stops (a
   snapshot), a second run scores another event for a tenth of the keys
   and is killed with SIGKILL after its changelog flush; then the task is
   restored twice, from the snapshot plus the changelog after it, and, with
   the snapshots moved away, from the whole changelog. Records, bytes and
   seconds as the runner reports them. The embedded broker keeps about
   5 MiB a partition, so K is at most a few tens of thousands here; give
   --bootstrap of a real cluster for a partition of a million keys.
"""
import argparse
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "experiments"))

import streamwise as sw  # noqa: E402
from streamwise import serve  # noqa: E402

import betting  # noqa: E402  (the demo's producer and port finder)

SPEC = {
    "events": {"time": "ts", "time_unit": "us",
               "fields": {"user": "str", "item": "int64",
                          "price": "float64", "click": "int8"}},
    "features": [
        {"name": "n", "op": "count", "key": "user"},
        {"name": "spend", "op": "sum", "key": "user", "field": "price"},
        {"name": "mean", "op": "mean", "key": "user", "field": "price",
         "default": 0},
        {"name": "var", "op": "var", "key": "user", "field": "price",
         "default": 0},
        {"name": "hi", "op": "max", "key": "user", "field": "price",
         "default": 0},
        {"name": "ctr", "op": "rate", "key": "user", "field": "click",
         "a": 1, "b": 9},
        {"name": "decay", "op": "decayed_sum", "key": "user",
         "field": "price", "half_life": "1h"},
        {"name": "n_1m", "op": "count", "key": "user",
         "window": {"tumbling": "1m"}},
        {"name": "price", "op": "value", "field": "price"},
    ],
}
T0 = 1_700_000_000_000_000


def events(n, users, seed, t0=T0):
    rng = np.random.default_rng(seed)
    u = rng.integers(0, users, n)
    keys = [f"u{x}" for x in u]
    values = [json.dumps({"ts": t0 + i * 1000, "user": keys[i],
                          "item": int(rng.integers(0, 50)),
                          "price": round(float(rng.gamma(2, 10)), 2),
                          "click": int(rng.random() < 0.2)},
                         separators=(",", ":")) for i in range(n)]
    return keys, values


def bundle(path):
    keys, values = events(20_000, 2000, seed=9)
    cols = {"ts": np.array([json.loads(v)["ts"] for v in values]),
            "user": np.array(keys, dtype=object),
            "item": np.array([json.loads(v)["item"] for v in values]),
            "price": np.array([json.loads(v)["price"] for v in values]),
            "click": np.array([json.loads(v)["click"] for v in values],
                              np.int8)}
    p = sw.Pipeline(SPEC, emission="arrival")
    out = p.push(cols)
    m = sw.GBDTClassifier(n_estimators=20, num_leaves=15).fit(
        serve.features(out, sparse=False), cols["click"][out.index])
    m.save(path, pipeline=p, sparse=False)
    return path


def job(bootstrap, topic, group, out, ckpt, model, **tasks):
    return serve.Job(
        serve.kafka_source(topic, bootstrap, group=group,
                           config={"session.timeout.ms": "6000",
                                   "heartbeat.interval.ms": "500"}),
        model, key="user", sinks=[serve.kafka_sink(out)],
        checkpoint={"dir": ckpt, "every_s": 1},
        tasks=dict({"changelog": f"{group}-changelog"}, **tasks),
        metrics_port=betting.free_port(), batch=5000, log_every_s=0)


def done(runs, ends):
    seen = {}
    for r in runs:
        try:
            st = r.status()
        except OSError:
            continue
        for p in st["partitions"]:
            seen[p["partition"]] = max(seen.get(p["partition"], -1),
                                       p["next_offset"])
    return all(seen.get(p, -1) >= e for p, e in ends.items())


def scored(runs):
    n = 0
    for r in runs:
        try:
            n += r.status()["predictions"]
        except OSError:
            pass
    return n


def ends_of(bootstrap, topic):
    r = sw.replay.kafka(topic, bootstrap)
    return {p["partition"]: p["stop"] for p in r.slice["partitions"]}


def throughput(broker, bootstrap, model, work, n, reps):
    keys, values = events(n, 20_000, seed=1)
    broker.create_topic("in", 8)
    betting.produce(bootstrap, "in", keys, values)
    ends = ends_of(bootstrap, "in")
    results = {1: [], 2: [], 3: []}
    run_no = 0
    for _ in range(reps):
        for k in (1, 2, 3):
            run_no += 1
            g = f"g{run_no}"
            if broker is not None:
                broker.create_topic(f"{g}-changelog", 8)
                broker.create_topic(f"{g}-out", 32)
            ck = os.path.join(work, g)
            t0 = time.time()
            runs = [job(bootstrap, "in", g, f"{g}-out", ck, model).start()
                    for _ in range(k)]
            first = None
            while not done(runs, ends):
                if time.time() - t0 > 600:
                    raise SystemExit(f"{k} members: not done in 600 s")
                if first is None and scored(runs) > 0:
                    first = time.time()
                time.sleep(0.02)
            t1 = time.time()
            first = first or t1
            for r in runs:
                r.stop()
            results[k].append((n / (t1 - t0), n / max(t1 - first, 1e-3)))
            print(f"  {k} member(s): {t1 - t0:.2f} s from start, "
                  f"{t1 - first:.2f} s from the first prediction", flush=True)
    return results


def restore_line(log):
    """(records, bytes) of the changelog tail read, and the seconds the
    whole restore took (snapshot file and tail)."""
    m = re.findall(r"changelog tail from offset (\d+): (\d+) records "
                   r"\((\d+) bytes", log)
    s = re.findall(r"task of partition \d+ restored at [a-z' ]+ "
                   r"\(([0-9.]+) s\)", log)
    return int(m[-1][1]), int(m[-1][2]), s[-1]


def restore(broker, bootstrap, model, work, keys_n):
    broker.create_topic("one", 1)
    broker.create_topic("r-changelog", 1)
    broker.create_topic("r-out", 8)
    users = [f"u{i}" for i in range(keys_n)]
    vals = [json.dumps({"ts": T0 + i * 1000, "user": u, "item": 1,
                        "price": 10.0, "click": 0}, separators=(",", ":"))
            for i, u in enumerate(users * 2)]
    ck = os.path.join(work, "restore")

    def member():
        return job(bootstrap, "one", "r", "r-out", ck, model,
                   snapshot_every_s=3600).start()

    def wait_end(r):
        e = ends_of(bootstrap, "one")
        t0 = time.time()
        while not done([r], e):
            if time.time() - t0 > 300:
                raise SystemExit("restore: not done in 300 s")
            time.sleep(0.05)

    betting.produce(bootstrap, "one", users * 2, vals)
    r = member()
    wait_end(r)
    r.stop()                                   # a snapshot of K keys
    r = member()
    tenth = users[::10]
    betting.produce(bootstrap, "one", tenth,
                    [json.dumps({"ts": T0 + 10**10 + i, "user": u, "item": 2,
                                 "price": 5.0, "click": 1},
                                separators=(",", ":"))
                     for i, u in enumerate(tenth)])
    wait_end(r)
    time.sleep(2.5)                            # a changelog flush
    r.kill()
    r = member()
    wait_end(r)
    tail = restore_line(r.kill())
    shutil.move(os.path.join(ck, "partition-0"),
                os.path.join(work, "moved-away"))
    r = member()
    wait_end(r)
    full = restore_line(r.kill())
    return tail, full


def throughput_table(res):
    print("| members | events/s from start (joining the group included) "
          "| range | events/s from the first prediction | range | vs 1 "
          "member |")
    print("|---:|---:|---:|---:|---:|---:|")
    base = statistics.median(x[1] for x in res[1])
    for k in (1, 2, 3):
        whole = [x[0] for x in res[k]]
        steady = [x[1] for x in res[k]]
        print(f"| {k} | {statistics.median(whole):,.0f} | "
              f"{min(whole):,.0f}..{max(whole):,.0f} | "
              f"{statistics.median(steady):,.0f} | "
              f"{min(steady):,.0f}..{max(steady):,.0f} | "
              f"{statistics.median(steady) / base:.2f} |")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=300_000)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--keys", type=int, default=20_000)
    ap.add_argument("--bootstrap")
    ap.add_argument("--skip-throughput", action="store_true")
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="sw-scaleout-")
    model = bundle(os.path.join(work, "m.swm"))
    load0 = os.getloadavg()
    with sw.kafka.local_broker(partitions=8) as b:
        bootstrap = a.bootstrap or b.bootstrap
        print(f"1. throughput: {a.events:,} events, 8 partitions, "
              f"alternating 1, 2, 3 members x {a.reps}", flush=True)
        res = {} if a.skip_throughput else throughput(
            b, bootstrap, model, work, a.events, a.reps)
        print(f"2. restore: one partition of {a.keys:,} keys", flush=True)
        tail, full = restore(b, bootstrap, model, work, a.keys)
    load1 = os.getloadavg()
    print(f"\nscale-out on this machine ({os.cpu_count()} cores; load "
          f"average {load0[0]:.2f} before, {load1[0]:.2f} after)\n")
    if res:
        throughput_table(res)
    print(f"\nrestore of a partition of {a.keys:,} keys\n")
    print("| from | changelog records read | bytes | seconds (all of the "
          "restore) |")
    print("|---|---:|---:|---:|")
    for name, r in (("snapshot + changelog tail", tail),
                    ("whole changelog (no snapshot)", full)):
        print(f"| {name} | {r[0]:,} | {r[1]:,} | {r[2]} |")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
