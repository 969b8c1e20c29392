"""Throughput of the online linear learners beside scikit-learn's
PassiveAggressiveClassifier and River's PAClassifier, in the same run, on
the streams of ../shared/BENCHMARKS.md (dense100, hashed2^20, 10-class).

    make bench            # or, after make peers:
    PYTHONPATH=python build/peers/bin/python benchmarks/online_linear.py

For each case the table gives the median examples/s over --repeat runs, the
process CPU seconds and wall seconds of that median run, and the ratio to
scikit-learn on the same stream and mode. scikit-learn's one-row-per-call
mode is measured on the first --sk-rows rows only (it runs at a few
thousand rows a second); streamwise's on all rows. Modes:
  one call     learn_one per example (streamwise), partial_fit on a 1-row
               slice (scikit-learn); rows are sliced before timing
  batch 1000   partial_fit on consecutive 1,000-row slices (sliced
               before timing, as above)
  whole array  one partial_fit on all rows
River learns one example a call only (`learn_one` on a dict, as its users
feed it), measured on the first --river-rows rows, with PA-I (mode=1,
C=1); on 10 classes wrapped in its OneVsRestClassifier. Ratios in the
"vs River" column are against its one-call rate for every mode, since it
has no other.

10 classes: streamwise's multiclass PA keeps one vector per class and
updates the best-scoring wrong class against the true one; scikit-learn
(and River's wrapper) train 10 binary one-vs-rest models. The rows
"sw PA-I OvR" do what scikit-learn does, 10 binary streamwise models on
(y == c), so that the like-for-like ratio is there beside the other.
"""
import argparse
import os
import statistics
import sys
import time

# One thread for every learner (scikit-learn's sparse paths use OpenMP):
# set before numpy or any OpenMP runtime starts, which read it once.
for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import numpy as np  # noqa: E402

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


def batches(X, y, size):
    """The (X, y) slices of size rows, cut before timing (a scipy CSR slice
    copies its rows: cutting 200,000 hashed rows in the timed loop took
    longer than streamwise learning them); a whole array is not cut."""
    if size >= X.shape[0]:
        return [(X, y)]
    return [(X[lo:lo + size], y[lo:lo + size])
            for lo in range(0, X.shape[0], size)]


def sw_batch(make, X, y, classes, size):
    parts = batches(X, y, size)

    def run():
        m = make()
        for Xb, yb in parts:
            m.partial_fit(Xb, yb, classes=classes)
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

    parts = batches(X, y, size)

    def run():
        m = PassiveAggressiveClassifier(C=1.0, random_state=0)
        for Xb, yb in parts:
            m.partial_fit(Xb, yb, classes=classes)
    return run


def sw_ovr(X, y, classes, size):
    """One-vs-rest from binary streamwise models, as scikit-learn trains
    multiclass PA."""
    parts = batches(X, y, size)

    def run():
        ms = [sw.PassiveAggressiveClassifier() for _ in classes]
        for Xb, yb in parts:
            for c, m in zip(classes, ms):
                m.partial_fit(Xb, (yb == c).astype(np.int64),
                              classes=np.array([0, 1]))
    return run


def river_one(rows, y, multiclass):
    from river import linear_model
    from river import multiclass as rmc

    def run():
        m = linear_model.PAClassifier(C=1.0, mode=1)
        if multiclass:
            m = rmc.OneVsRestClassifier(m)
        learn = m.learn_one
        for r, t in zip(rows, y):
            learn(r, t)
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
    ap.add_argument("--river-rows", type=int, default=20000)
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
        print(f"  {stream:10s} {mode:11s} {learner:12s} "
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
        if name == "10-class":
            add(name, "batch 1000", "sw PA-I OvR", n,
                sw_ovr(X, y, classes, 1000))
            add(name, "whole", "sw PA-I OvR", n, sw_ovr(X, y, classes, n))
        try:
            import river  # noqa: F401
        except ImportError:
            print("online_linear.py: River is not installed here; `make "
                  "peers` installs it", file=sys.stderr)
            continue
        rn = min(args.river_rows, n)
        if wide:
            rrows = rows[:rn]
        else:
            rrows = [dict(enumerate(r.tolist())) for r in X[:rn]]
        ry = [bool(t) for t in yl[:rn]] if len(classes) == 2 else yl[:rn]
        add(name, "one call", "River", rn,
            river_one(rrows, ry, len(classes) > 2))

    peer = {(s, m): r / w for s, m, l, r, w, c in results if l == "sklearn"}
    rpeer = {s: r / w for s, m, l, r, w, c in results if l == "River"}
    print(f"\nonline linear learners: {n:,} examples a stream, median of "
          f"{rep} runs, 1 thread; load average {os.getloadavg()[0]:.2f}")
    print(f"{'stream':11s} {'mode':11s} {'learner':12s} {'rows':>7s} "
          f"{'ex/s':>13s} {'cpu s':>7s} {'wall s':>7s} {'vs sklearn':>10s} "
          f"{'vs River':>9s}")
    for s, m, l, r, w, c in results:
        ratio = peer.get((s, m))
        rtxt = f"{(r / w) / ratio:9.1f}x" if ratio and l != "sklearn" \
            and l != "River" else ""
        rr = rpeer.get(s)
        rvtxt = f"{(r / w) / rr:8.1f}x" if rr and l.startswith("sw") else ""
        print(f"{s:11s} {m:11s} {l:12s} {r:7d} {r / w:13,.0f} {c:7.3f} "
              f"{w:7.3f} {rtxt:>10s} {rvtxt:>9s}")


if __name__ == "__main__":
    main()
