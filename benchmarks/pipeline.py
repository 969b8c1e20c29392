"""Events per second of a feature pipeline: the C core through the Python
API (large batches) beside a naive C loop and the pure-Python reference in
the same run.

    PYTHONPATH=python /usr/bin/python3 benchmarks/pipeline.py [--events N]

The spec has 10 aggregations over the user key - count, sum, mean, var,
min, max, last, a decayed sum (half-life 1 h), a Beta-smoothed rate and a
1-minute tumbling-window sum - on events with int64 users, float64 amounts
and int8 clicks, one event every 10 us of event time, in order. Three key
sets: 10,000 uniform keys (the state fits in cache), 1,000,000 uniform keys,
and 200,000 keys drawn from a Zipf(1.1) law.

The naive C loop (benchmarks/naive_pipeline.c, compiled here with cc -O2,
as the core is) keeps the same ten aggregations in one open-addressing hash
table and writes each event's ten feature values, as push returns them,
written the obvious way, over the same events held in memory; it
alternates with streamwise (--repeat pairs) and the ratio is the median of
the per-pair ratios of wall time.
The reference runs on the first --ref-events events. A checkpoint of the
pipeline holding the 1M keys is timed too: at one checkpoint every 10 s of
processing, its share of the run time is checkpoint seconds / 10.
(../shared/BENCHMARKS.md: a naive C loop 4-6M events/s at 1M keys, pure
Python 0.8M, Flink's Nexmark q17 0.12M per core.)
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "python"))

import streamwise as sw  # noqa: E402
from streamwise.reference import pipeline_reference  # noqa: E402

SPEC = {
    "events": {"time": "ts", "time_unit": "us",
               "fields": {"user": "int64", "amount": "float64",
                          "click": "int8"}},
    "features": [
        {"name": "n", "op": "count", "key": "user"},
        {"name": "total", "op": "sum", "key": "user", "field": "amount"},
        {"name": "mean", "op": "mean", "key": "user", "field": "amount"},
        {"name": "var", "op": "var", "key": "user", "field": "amount"},
        {"name": "min", "op": "min", "key": "user", "field": "amount"},
        {"name": "max", "op": "max", "key": "user", "field": "amount"},
        {"name": "last", "op": "last", "key": "user", "field": "amount"},
        {"name": "clicks_1h", "op": "decayed_sum", "key": "user",
         "field": "click", "half_life": "1h"},
        {"name": "ctr", "op": "rate", "key": "user", "field": "click",
         "a": 1, "b": 30},
        {"name": "clicks_1m", "op": "sum", "key": "user", "field": "click",
         "window": {"tumbling": "1m"}},
    ],
}


def events(n, keys, zipf, seed=0):
    rng = np.random.default_rng(seed)
    if zipf:
        users = rng.zipf(1.1, n * 2)
        users = users[users <= keys][:n] - 1
    else:
        users = rng.integers(0, keys, n)
    return {"ts": np.arange(n, dtype=np.int64) * 10,
            "user": users.astype(np.int64),
            "amount": rng.gamma(2.0, 20.0, n),
            "click": (rng.random(n) < 0.05).astype(np.int8)}


def run_core(batch, batch_size, ckpt=None):
    """Push the events; with ckpt (a path), start a background checkpoint
    after 3/4 of them (the state then holds almost every key) and wait for
    it at the end. Returns (wall, cpu, pipeline, seconds the start took)."""
    p = sw.Pipeline(SPEC)
    n = len(batch["ts"])
    at = (3 * n // 4) // batch_size * batch_size
    start = 0.0
    c0, w0 = time.process_time(), time.perf_counter()
    for lo in range(0, n, batch_size):
        if ckpt is not None and lo == at:
            s0 = time.perf_counter()
            p.checkpoint(ckpt, b"offset", background=True)
            start = time.perf_counter() - s0
        p.push({k: v[lo:lo + batch_size] for k, v in batch.items()})
    p.flush()
    if ckpt is not None:
        p.checkpoint_wait()
    return time.perf_counter() - w0, time.process_time() - c0, p, start


def naive_loop(d):
    """Compile the naive C loop into d; returns its path."""
    exe = os.path.join(d, "naive_pipeline")
    subprocess.run(["cc", "-O2", "-o", exe,
                    os.path.join(HERE, "naive_pipeline.c"), "-lm"],
                   check=True)
    return exe


def run_naive(exe, d, batch, keys):
    path = os.path.join(d, "events.bin")
    if not os.path.exists(path):
        with open(path, "wb") as f:
            for k in ("ts", "user", "amount", "click"):
                f.write(batch[k].tobytes())
    out = subprocess.run([exe, path, str(len(batch["ts"])), str(keys)],
                         check=True, capture_output=True, text=True).stdout
    sec, held, _ = out.split()
    return float(sec), int(held)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--batch", type=int, default=1_000_000)
    ap.add_argument("--ref-events", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    rows = []
    ratios = {}
    core_1m = None
    build = tempfile.TemporaryDirectory()
    exe = naive_loop(build.name)
    for label, keys, zipf in (("10k uniform keys", 10_000, False),
                              ("1M uniform keys", 1_000_000, False),
                              ("200k Zipf keys", 200_000, True)):
        batch = events(args.events, keys, zipf)
        runs, naive = [], []
        with tempfile.TemporaryDirectory() as d:
            for _ in range(args.repeat):
                runs.append(run_core(batch, args.batch))
                naive.append(run_naive(exe, d, batch, keys))
        ratios[label] = sorted(r[0] / nv[0] for r, nv in zip(runs, naive))
        nv = sorted(naive)[len(naive) // 2]
        runs.sort(key=lambda r: r[0])
        wall, cpu, p, _ = runs[len(runs) // 2]
        rows.append((label, "streamwise C core", args.events / wall, cpu,
                     wall, p.stats["keys"]))
        rows.append((label, "naive C loop", args.events / nv[0], None,
                     nv[0], nv[1]))
        if keys == 1_000_000:
            core_1m = p
        m = args.ref_events
        evs = [{"ts": int(batch["ts"][i]), "user": int(batch["user"][i]),
                "amount": float(batch["amount"][i]),
                "click": int(batch["click"][i])} for i in range(m)]
        c0, w0 = time.process_time(), time.perf_counter()
        pipeline_reference(SPEC, evs)
        rw, rc = time.perf_counter() - w0, time.process_time() - c0
        rows.append((label, "pure-Python reference", m / rw, rc, rw, None))
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "ck.swc")
        times = []
        for _ in range(args.repeat):
            w0 = time.perf_counter()
            core_1m.checkpoint(path, b"offset")
            times.append(time.perf_counter() - w0)
        ck = sorted(times)[len(times) // 2]
        size = os.path.getsize(path)
        # background: paired runs with and without one checkpoint, the
        # cost is the median of the differences in wall time
        batch = events(args.events, 1_000_000, False)
        diffs, starts = [], []
        for _ in range(args.repeat):
            plain = run_core(batch, args.batch)[0]
            wall, _, _, st = run_core(batch, args.batch, path)
            diffs.append(wall - plain)
            starts.append(st)
        bg = sorted(diffs)[len(diffs) // 2]
        bg_start = sorted(starts)[len(starts) // 2]
    print(f"\nfeature pipeline, 10 aggregations a key, {args.events:,} events "
          f"in batches of {args.batch:,}, median of {args.repeat}")
    print(f"{'keys':16s} {'engine':24s} {'events/s':>12s} {'cpu s':>7s} "
          f"{'wall s':>7s} {'keys held':>10s}")
    for label, engine, rate, cpu, wall, keys in rows:
        ctxt = "" if cpu is None else f"{cpu:7.2f}"
        print(f"{label:16s} {engine:24s} {rate:12,.0f} {ctxt:>7s} "
              f"{wall:7.2f} {'' if keys is None else f'{keys:,}':>10s}")
    print(f"\nstreamwise / naive C loop, wall time, median of {args.repeat} "
          f"alternating pairs (range); load average {os.getloadavg()[0]:.2f}")
    for label, rs in ratios.items():
        print(f"  {label:16s} {rs[len(rs) // 2]:.2f}x "
              f"({rs[0]:.2f}-{rs[-1]:.2f})")
    print("  target: <= 1.3x at 10k keys")
    build.cleanup()
    print(f"\ncheckpoint of {core_1m.stats['keys']:,} keys: {ck:.3f} s "
          f"({size / 2**20:.0f} MiB, write + fsync + rename); one every 10 s "
          f"costs {100 * ck / 10:.1f}% of run time")
    print(f"background checkpoint (fork, copy-on-write): stalls the push "
          f"loop {1000 * bg_start:.0f} ms (the synchronous one "
          f"{1000 * ck:.0f} ms); the whole run takes {bg:+.3f} s longer "
          f"(median of {args.repeat} paired differences, copy-on-write "
          f"faults and the writer on the other core), i.e. "
          f"{100 * bg / 10:.1f}% at one every 10 s")


if __name__ == "__main__":
    main()
