"""Throughput of the online linear learners beside scikit-learn's
PassiveAggressiveClassifier, in the same run, on the streams of
../shared/BENCHMARKS.md (dense100, hashed2^20, 10-class).

    make bench            # or: PYTHONPATH=python /usr/bin/python3 benchmarks/online_linear.py

For each case the table gives the median examples/s over --repeat runs, the
process CPU seconds and wall seconds of that median run, and the ratio to
scikit-learn on the same stream and mode. scikit-learn's one-row-per-call
mode is measured on the first --sk-rows rows only (it runs at a few
thousand rows a second); streamwise's on all rows. Modes:
  one call     learn_one per example (streamwise), partial_fit on a 1-row
               slice (scikit-learn); rows are sliced before timing
  batch 1000   partial_fit on consecutive 1,000-row slices
  whole array  one partial_fit on all rows
"""
import argparse
import os
import statistics
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "python"))

import streamwise as sw  # noqa: E402
from streamwise.datasets import (dense_stream, hashed_stream,  # noqa: E402
                                 multiclass_stream)


def timed(fn, repeat):
    """Median (wall, cpu) over repeat runs; fn makes a fresh model each run."""
    runs = []
    for _ in range(repeat):
        c0, w0 = time.process_time(), time.perf_counter()
        fn()
        runs.append((time.perf_counter() - w0, time.process_time() - c0))
    runs.sort()
    return runs[len(runs) // 2]


def sw_one(make, rows, y, classes):
    def run():
        m = make()
        m.partial_fit(rows[0] if isinstance(rows[0], dict) else
                      rows[0][None, :], [y[0]], classes=classes)
        learn = m.learn_one
        for r, t in zip(rows[1:], y[1:]):
            learn(r, t)
    return run


def sw_batch(make, X, y, classes, size):
    def run():
        m = make()
        for lo in range(0, X.shape[0], size):
            m.partial_fit(X[lo:lo + size], y[lo:lo + size], classes=classes)
    return run


def sk_one(rows, y, classes):
    from sklearn.linear_model import PassiveAggressiveClassifier

    def run():
        m = PassiveAggressiveClassifier(C=1.0, random_state=0)
        for r, t in zip(rows, y):
            m.partial_fit(r, t, classes=classes)
    return run


def sk_batch(X, y, classes, size):
    from sklearn.linear_model import PassiveAggressiveClassifier

    def run():
        m = PassiveAggressiveClassifier(C=1.0, random_state=0)
        for lo in range(0, X.shape[0], size):
            m.partial_fit(X[lo:lo + size], y[lo:lo + size], classes=classes)
    return run


def dict_rows(X):
    ind, dat, ptr = X.indices, X.data, X.indptr
    return [dict(zip(ind[ptr[i]:ptr[i + 1]].tolist(),
                     dat[ptr[i]:ptr[i + 1]].tolist()))
            for i in range(X.shape[0])]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--sk-rows", type=int, default=4000)
    ap.add_argument("--no-sklearn", action="store_true")
    args = ap.parse_args()
    n, rep = args.n, args.repeat
    skn = min(args.sk_rows, n)

    streams = {
        "dense100": dense_stream(n),
        "hashed2^20": hashed_stream(n),
        "10-class": multiclass_stream(n),
    }
    results = []   # (stream, mode, learner, rows, wall, cpu)

    def add(stream, mode, learner, rows, fn):
        wall, cpu = timed(fn, rep)
        results.append((stream, mode, learner, rows, wall, cpu))
        print(f"  {stream:10s} {mode:11s} {learner:9s} "
              f"{rows / wall:>12,.0f} ex/s", file=sys.stderr)

    for name, (X, y) in streams.items():
        classes = np.unique(y)
        yl = y.tolist()
        wide = name == "hashed2^20"
        pa = (lambda: sw.PassiveAggressiveClassifier(n_features=2 ** 20)) \
            if wide else sw.PassiveAggressiveClassifier
        rows = dict_rows(X) if wide else list(X)
        add(name, "one call", "sw PA-I", n, sw_one(pa, rows, yl, classes))
        add(name, "batch 1000", "sw PA-I", n,
            sw_batch(pa, X, y, classes, 1000))
        add(name, "whole", "sw PA-I", n, sw_batch(pa, X, y, classes, n))
        if wide:
            scw = lambda: sw.SCWClassifier(n_features=2 ** 20)  # noqa: E731
            add(name, "whole", "sw SCW-I", n, sw_batch(scw, X, y, classes, n))
            add(name, "one call", "sw SCW-I", n,
                sw_one(scw, rows, yl, classes))
        if args.no_sklearn:
            continue
        sk_rows = [X[i:i + 1] for i in range(skn)]
        sk_y = [y[i:i + 1] for i in range(skn)]
        add(name, "one call", "sklearn", skn, sk_one(sk_rows, sk_y, classes))
        add(name, "batch 1000", "sklearn", n, sk_batch(X, y, classes, 1000))
        add(name, "whole", "sklearn", n, sk_batch(X, y, classes, n))

    peer = {(s, m): r / w for s, m, l, r, w, c in results if l == "sklearn"}
    print(f"\nonline linear learners: {n:,} examples a stream, median of "
          f"{rep} runs, 1 thread")
    print(f"{'stream':11s} {'mode':11s} {'learner':9s} {'ex/s':>13s} "
          f"{'cpu s':>7s} {'wall s':>7s} {'vs sklearn':>10s}")
    for s, m, l, r, w, c in results:
        ratio = peer.get((s, m))
        rtxt = f"{(r / w) / ratio:9.1f}x" if ratio and l != "sklearn" else ""
        print(f"{s:11s} {m:11s} {l:9s} {r / w:13,.0f} {c:7.3f} {w:7.3f} "
              f"{rtxt:>10s}")


if __name__ == "__main__":
    main()
