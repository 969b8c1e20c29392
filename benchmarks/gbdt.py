"""Gradient-boosted trees: fit time and test AUC on the seeded Higgs-like
task of ../shared/BENCHMARKS.md (1M train + 200k test rows, 28 float32
features), 100 trees, 255 leaves, 255 bins, learning rate 0.1, beside
xgboost (hist, lossguide with 255 leaves; depth-wise depth 8) and
scikit-learn's HistGradientBoostingClassifier in the same run, at 1 and 2
threads; then prediction latency and throughput.

    PYTHONPATH=python /usr/bin/python3 benchmarks/gbdt.py [--rows N]
        [--only sw] [--contention] [--callgrind]

Times are wall seconds of fit() including binning. streamwise and
xgboost-lossguide (the reference of the targets) run --repeat times each,
alternating, and the ratio of each pair is reported as a median: this
shared machine's speed drifts by 20% and more between minutes.
--contention adds 1- and 2-thread fits (--repeat pairs, alternating) with
a busy-loop process running.
--callgrind counts the instructions per row of sw-serve's scoring
(valgrind's callgrind: the inclusive cost of sw_model_predict over 2,000
test rows, less the model check's golden rows at load).
"""
import argparse
import multiprocessing
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "python"))

import streamwise as sw  # noqa: E402
from streamwise.datasets.generators import higgs_like  # noqa: E402


def auc(y, p):
    from sklearn.metrics import roc_auc_score
    return roc_auc_score(y, p)


def fit_sw(X, y, threads):
    return sw.GBDTClassifier(n_estimators=100, learning_rate=0.1,
                             num_leaves=255, max_bin=255, n_jobs=threads
                             ).fit(X, y, progress=False)


def fit_xgb(X, y, threads, policy):
    import xgboost as xgb
    kw = dict(n_estimators=100, learning_rate=0.1, tree_method="hist",
              max_bin=255, n_jobs=threads)
    if policy == "lossguide":
        kw.update(grow_policy="lossguide", max_leaves=255, max_depth=0)
    else:
        kw.update(grow_policy="depthwise", max_depth=8)
    return xgb.XGBClassifier(**kw).fit(X, y)


def fit_hgb(X, y, threads):
    from sklearn.ensemble import HistGradientBoostingClassifier
    os.environ["OMP_NUM_THREADS"] = str(threads)
    return HistGradientBoostingClassifier(
        max_iter=100, learning_rate=0.1, max_leaf_nodes=255, max_bins=255,
        early_stopping=False).fit(X, y)


def busy():
    while True:
        pass


def timed_fit(f):
    t0 = time.perf_counter()
    m = f()
    return m, time.perf_counter() - t0


def latency(model, Xte, n=20000):
    """Per-row C scoring (sw_model_predict on one row, the call sw-serve
    makes) timed in C; batch rows/s; one-row predict_proba from Python."""
    raw = model._fitted()
    ns = sw._sw.predict_latency(raw, np.ascontiguousarray(Xte[:n],
                                                          dtype=np.float64))
    t0 = time.perf_counter()
    raw.predict(np.ascontiguousarray(Xte, dtype=np.float64))
    batch = len(Xte) / (time.perf_counter() - t0)
    one = []
    for i in range(2000):
        x = Xte[i]
        t0 = time.perf_counter_ns()
        model.predict_proba(x)
        one.append(time.perf_counter_ns() - t0)
    return float(np.median(ns)) / 1000, batch, float(np.median(one)) / 1000


def instructions_per_row(model, Xte, n=2000):
    """callgrind on build/bin/sw-serve scoring n test rows: the inclusive
    instruction count of sw_model_predict called from sw-serve's loop, per
    row (the load's check of the golden rows is another caller)."""
    import re
    import shutil
    import subprocess
    import tempfile
    root = os.path.join(os.path.dirname(__file__), "..")
    serve = os.path.join(root, "build", "bin", "sw-serve")
    if not shutil.which("valgrind") or not os.path.exists(serve):
        return None
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "m.swm")
        model.save(path)
        rows = "\n".join(",".join(repr(float(v)) for v in r)
                         for r in Xte[:n]) + "\n"
        out = os.path.join(d, "cg.out")
        subprocess.run(["valgrind", "--tool=callgrind",
                        f"--callgrind-out-file={out}", serve, path],
                       input=rows.encode(), capture_output=True, check=True)
        text = subprocess.run(["callgrind_annotate", "--inclusive=yes",
                               "--tree=caller", out], capture_output=True,
                              text=True, check=True).stdout
    # "  18,156,719 (..)  < .../sw_serve.c:flush (8x) [...]" above the
    # "*  .../sw_model.c:sw_model_predict" line
    m = re.search(r"([\d,]+) \([^)]*\)\s+<\s+\S*sw_serve\.c:\w+ "
                  r"\((\d+)x\)[^\n]*\n(?:[^\n]*<[^\n]*\n)*"
                  r"[^\n]*\*\s+\S*sw_model\.c:sw_model_predict", text)
    return int(m.group(1).replace(",", "")) / n if m else None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--only", choices=["sw"])
    ap.add_argument("--contention", action="store_true")
    ap.add_argument("--callgrind", action="store_true")
    ap.add_argument("--repeat", type=int, default=3,
                    help="paired runs of streamwise and xgboost-lossguide "
                         "per thread count (the other peers run once)")
    args = ap.parse_args()
    X, y, Xte, yte = higgs_like(args.rows, 200_000)
    peers = {
        "streamwise GBDT": lambda t: fit_sw(X, y, t),
        "xgboost 1.7 hist lossguide": lambda t: fit_xgb(X, y, t, "lossguide"),
        "xgboost 1.7 hist depth 8": lambda t: fit_xgb(X, y, t, "depth"),
        "sklearn HistGradientBoosting": lambda t: fit_hgb(X, y, t),
    }
    names = list(peers)[:1] if args.only else list(peers)
    times, aucs, ratios, sw_models = {}, {}, {}, {}
    for threads in (1, 2):
        # streamwise and its reference peer alternate, so that a slow
        # spell of this shared machine hits both; the ratio of each pair
        # is the measure, its median over the repeats the result
        order = []
        for r in range(args.repeat):
            order += [n for n in names[:2]]
            if r == 0:
                order += names[2:]
        for name in order:
            m, sec = timed_fit(lambda: peers[name](threads))
            times.setdefault((name, threads), []).append(sec)
            if (name, threads) not in aucs:
                aucs[(name, threads)] = auc(yte, m.predict_proba(Xte)[:, 1])
            if name.startswith("streamwise"):
                sw_models[threads] = m
            print(f"  done: {name}, {threads} thread(s): {sec:.1f} s",
                  file=sys.stderr)
        if not args.only:
            ratios[threads] = [a / b for a, b in zip(
                times[(names[0], threads)], times[(names[1], threads)])]
    print(f"\nGBDT, Higgs-like {args.rows:,} x 28 train, 200,000 test; 100 "
          "trees, 255 leaves (depth 8 where named), 255 bins, lr 0.1; "
          f"wall s of fit incl. binning; streamwise and xgboost-lossguide "
          f"{args.repeat} alternating runs each (median, range), the others "
          "one run")
    print(f"{'':32s} {'threads':>7s} {'fit s':>8s} {'range':>13s} "
          f"{'test AUC':>9s} {'x lossguide':>12s}")
    for (name, threads), ts in times.items():
        med = float(np.median(ts))
        rng = f"{min(ts):.2f}-{max(ts):.2f}" if len(ts) > 1 else ""
        ref = times.get((names[1], threads)) if len(names) > 1 else None
        if name == names[0] and threads in ratios:
            r = ratios[threads]
            ratio = f"{np.median(r):.2f}" + (
                f" ({min(r):.2f}-{max(r):.2f})" if len(r) > 1 else "")
        elif ref:
            ratio = f"{med / float(np.median(ref)):.2f}"
        else:
            ratio = "-"
        print(f"{name:32s} {threads:7d} {med:8.2f} {rng:>13s} "
              f"{aucs[(name, threads)]:9.4f} {ratio:>12s}")
    if ratios:
        print("x lossguide of streamwise: median of the per-pair ratios "
              "(range); targets 0.6 at 1 thread, 0.7 at 2")
    if args.contention:
        # 1- and 2-thread fits alternate, as above: the ratio of each pair
        p = multiprocessing.Process(target=busy, daemon=True)
        p.start()
        ones, twos = [], []
        try:
            for _ in range(args.repeat):
                ones.append(timed_fit(lambda: fit_sw(X, y, 1))[1])
                twos.append(timed_fit(lambda: fit_sw(X, y, 2))[1])
        finally:
            p.terminate()
        r = [b / a for a, b in zip(ones, twos)]
        print(f"\nwith one busy-loop process ({args.repeat} alternating "
              f"pairs): 1 thread median {np.median(ones):.2f} s, 2 threads "
              f"{np.median(twos):.2f} s; 2 / 1 per pair median "
              f"{np.median(r):.2f}x ({min(r):.2f}-{max(r):.2f}; target <= "
              "1.2x)")
    m = sw_models[1]
    lat, batch, one = latency(m, Xte)
    print(f"\nprediction, {m.n_trees_} trees x 255 leaves x 28 features: "
          f"one row in C (sw_model_predict) median {lat:.2f} us; batch "
          f"{batch:,.0f} rows/s (one core); one-row predict_proba from "
          f"Python median {one:.2f} us")
    if args.callgrind:
        ipr = instructions_per_row(m, Xte)
        print("instructions per row, sw-serve scoring 2,000 test rows "
              "(callgrind): " + (f"{ipr:,.0f}" if ipr else
                                 "valgrind or build/bin/sw-serve missing"))


if __name__ == "__main__":
    main()
