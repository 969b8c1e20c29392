"""Cost of logging metric points: streamwise.track beside one committed
SQLite transaction per point, in the same run.

    PYTHONPATH=python /usr/bin/python3 benchmarks/tracking.py [--n 100000]

streamwise: `run.log_metric(key, value, step=i, event_time=t)` in a loop,
timed until the run has ended and every point is on disk (the flush is
included). Peer: the straightforward logger that inserts each point and
commits (WAL; synchronous NORMAL, as our store, and FULL). Medians of
--repeat runs; each run uses a fresh store in a temporary directory.
"""
import argparse
import os
import sqlite3
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "python"))

from streamwise import track  # noqa: E402


def streamwise_loop(n, root):
    t0 = time.perf_counter()
    with track.run(experiment="bench", store=root) as r:
        log = r.log_metric
        for i in range(n):
            log("loss", 1.0 / (i + 1), step=i, event_time=i * 1000)
    wall = time.perf_counter() - t0
    assert track.get_run(r.id, store=root)["metrics"]["loss"]["n"] == n
    return wall


def per_point_commit(n, root, synchronous):
    con = sqlite3.connect(os.path.join(root, "naive.db"),
                          isolation_level=None)
    con.execute("PRAGMA journal_mode = WAL")
    con.execute(f"PRAGMA synchronous = {synchronous}")
    con.execute("CREATE TABLE points (run_id TEXT, key TEXT, step INTEGER, "
                "event_time INTEGER, wall_time REAL, value REAL)")
    t0 = time.perf_counter()
    for i in range(n):
        con.execute("BEGIN")
        con.execute("INSERT INTO points VALUES (?, ?, ?, ?, ?, ?)",
                    ("r", "loss", i, i * 1000, time.time(), 1.0 / (i + 1)))
        con.execute("COMMIT")
    wall = time.perf_counter() - t0
    con.close()
    return wall


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    cases = [("streamwise log_metric (batched)",
              lambda root: streamwise_loop(args.n, root)),
             ("commit per point, synchronous=NORMAL",
              lambda root: per_point_commit(args.n, root, "NORMAL")),
             ("commit per point, synchronous=FULL",
              lambda root: per_point_commit(args.n, root, "FULL"))]
    results = []
    for name, fn in cases:
        times = []
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory() as root:
                times.append(fn(root))
        results.append((name, statistics.median(times)))
    base = results[0][1]
    print(f"\nlogging {args.n:,} metric points, median of {args.repeat} runs")
    print(f"{'logger':40s} {'total s':>8s} {'us/point':>9s} "
          f"{'vs streamwise':>13s}")
    for name, t in results:
        print(f"{name:40s} {t:8.3f} {t / args.n * 1e6:9.2f} "
              f"{t / base:12.1f}x")


if __name__ == "__main__":
    main()
