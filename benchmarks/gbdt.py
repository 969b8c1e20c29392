"""Gradient-boosted trees: fit time and test AUC on the seeded Higgs-like
task of ../shared/BENCHMARKS.md (1M train + 200k test rows, 28 float32
features), 100 trees, 255 leaves, 255 bins, learning rate 0.1, beside
LightGBM, xgboost (hist, lossguide with 255 leaves; depth-wise depth 8)
and scikit-learn's HistGradientBoostingClassifier in the same run, at 1
and 2 threads; then prediction latency and throughput.

    make bench     # or, after make peers:
    PYTHONPATH=python build/peers/bin/python benchmarks/gbdt.py [--rows N]
        [--seed S] [--only sw] [--contention] [--callgrind]

Every fit runs in a process of its own, started with OMP_NUM_THREADS set
to its thread count: an OpenMP runtime reads it once, when it starts, so
setting it in a process where xgboost already started OpenMP changes
nothing (an earlier version of this script ran scikit-learn's "1 thread"
fit on 2 threads that way). Quiet fits use OpenMP's default waiting:
with OMP_WAIT_POLICY=PASSIVE LightGBM's 2-thread fit of 50k rows took
9.95 s against 2.61 s without it (its threads sleep and wake between
its many short parallel regions), which would flatter streamwise. Under
contention (--contention) LightGBM runs with PASSIVE, so that its
threads sleep instead of spinning against the busy loop. The data are
made once and read by every process from .npy files.

Times are wall seconds of fit() including binning, measured inside the
fitting process. streamwise, LightGBM and xgboost-lossguide run --repeat
times each, alternating (the order rotates every repeat), and the ratios
of streamwise to each are medians of per-repeat ratios: this shared
machine's speed drifts by 20% and more between minutes. The other peers
run once.
--contention adds 1- and 2-thread fits of streamwise and of LightGBM
(--repeat rounds, alternating) with a busy-loop process running.
--callgrind counts the instructions per row of sw-serve's scoring
(valgrind's callgrind: the inclusive cost of sw_model_predict over 2,000
test rows, less the model check's golden rows at load).
"""
import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "python"))

import streamwise as sw  # noqa: E402
from streamwise.datasets.generators import higgs_like  # noqa: E402


def auc(y, p):
    from sklearn.metrics import roc_auc_score
    return roc_auc_score(y, p)


def fit_sw(X, y, threads):
    return sw.GBDTClassifier(n_estimators=100, learning_rate=0.1,
                             num_leaves=255, max_bin=255, n_jobs=threads
                             ).fit(X, y, progress=False)


def fit_lgbm(X, y, threads):
    import lightgbm as lgb
    return lgb.LGBMClassifier(n_estimators=100, learning_rate=0.1,
                              num_leaves=255, max_bin=255, n_jobs=threads,
                              min_child_samples=20, verbose=-1).fit(X, y)


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
    return HistGradientBoostingClassifier(
        max_iter=100, learning_rate=0.1, max_leaf_nodes=255, max_bins=255,
        early_stopping=False).fit(X, y)


def _version(mod):
    try:
        return __import__(mod).__version__
    except ImportError:
        return None


ENGINES = {
    # key: (label, fit, passive OpenMP waiting)
    "sw": ("streamwise GBDT", fit_sw, False),
    "lgbm": ("LightGBM", fit_lgbm, True),
    "xgb-lg": ("xgboost hist lossguide", lambda X, y, t:
               fit_xgb(X, y, t, "lossguide"), True),
    "xgb-d8": ("xgboost hist depth 8", lambda X, y, t:
               fit_xgb(X, y, t, "depth"), True),
    "hgb": ("sklearn HistGradientBoosting", fit_hgb, False),
}
VERSION_OF = {"lgbm": "lightgbm", "xgb-lg": "xgboost", "xgb-d8": "xgboost",
              "hgb": "sklearn"}


def child(engine, threads, data, save):
    """One fit in this process (OMP_NUM_THREADS was set before it
    started); prints its time and test AUC as JSON."""
    X, y = np.load(f"{data}/X.npy"), np.load(f"{data}/y.npy")
    Xte, yte = np.load(f"{data}/Xte.npy"), np.load(f"{data}/yte.npy")
    fit = ENGINES[engine][1]
    t0 = time.perf_counter()
    m = fit(X, y, threads)
    sec = time.perf_counter() - t0
    a = auc(yte, m.predict_proba(Xte)[:, 1])
    if save:
        m.save(save)
    print(json.dumps({"fit_s": sec, "auc": a}))


def run_fit(engine, threads, data, save=None, contended=False):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads),
               OPENBLAS_NUM_THREADS="1",
               PYTHONPATH=os.path.join(HERE, "..", "python"))
    env.pop("OMP_WAIT_POLICY", None)
    if contended and ENGINES[engine][2]:
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    out = subprocess.run([sys.executable, os.path.abspath(__file__),
                          "--child", engine, str(threads), data,
                          save or ""], env=env, capture_output=True,
                         text=True)
    if out.returncode != 0:
        raise SystemExit(f"gbdt.py: the {engine} fit at {threads} thread(s) "
                         f"failed:\n{out.stderr[-3000:]}")
    r = json.loads(out.stdout.strip().splitlines()[-1])
    return r["fit_s"], r["auc"]


def busy():
    while True:
        pass


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
        # --threshold=100: every function, however small a share; the
        # dynamic linker's start-up alone can be most of the total
        text = subprocess.run(["callgrind_annotate", "--inclusive=yes",
                               "--tree=caller", "--threshold=100", out],
                              capture_output=True, text=True,
                              check=True).stdout
    # "  18,156,719 (..)  < .../sw_rows.c:flush (8x) [...]" above the
    # "*  .../sw_model.c:sw_model_predict" line (sw-serve's batch loop,
    # in sw_rows.c since the runner's files were split)
    m = re.search(r"([\d,]+) \([^)]*\)\s+<\s+\S*sw_(?:serve|rows)\.c:\w+ "
                  r"\((\d+)x\)[^\n]*\n(?:[^\n]*<[^\n]*\n)*"
                  r"[^\n]*\*\s+\S*sw_model\.c:sw_model_predict", text)
    return int(m.group(1).replace(",", "")) / n if m else None


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        engine, threads, data, save = sys.argv[2:6]
        return child(engine, int(threads), data, save or None)
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=20240601,
                    help="the data's draw (higgs_like's seed): the test "
                         "AUCs of two engines differ by a few thousandths "
                         "from one draw to another")
    ap.add_argument("--only", choices=["sw"])
    ap.add_argument("--engines", default=None,
                    help="comma-separated subset of " + ",".join(ENGINES) +
                         " (default: every one installed)")
    ap.add_argument("--contention", action="store_true")
    ap.add_argument("--callgrind", action="store_true")
    ap.add_argument("--repeat", type=int, default=3,
                    help="alternating runs of streamwise, LightGBM and "
                         "xgboost-lossguide per thread count (the other "
                         "peers run once)")
    args = ap.parse_args()
    load0 = os.getloadavg()[0]
    X, y, Xte, yte = higgs_like(args.rows, 200_000, seed=args.seed)
    keys = ["sw"] if args.only else [
        k for k in ENGINES if k == "sw" or _version(VERSION_OF[k])]
    if args.engines:
        want = args.engines.split(",")
        bad = [k for k in want if k not in ENGINES]
        if bad:
            raise SystemExit(f"gbdt.py: unknown engine {bad[0]!r}; "
                             f"expected {', '.join(ENGINES)}")
        keys = [k for k in keys if k in want]
    missing = [k for k in ENGINES if k not in keys]
    if missing and not args.only and not args.engines:
        print(f"gbdt.py: not installed here: {', '.join(missing)}; `make "
              "peers` installs the peers", file=sys.stderr)
    paired = [k for k in keys if k in ("sw", "lgbm", "xgb-lg")]
    once = [k for k in keys if k not in paired]
    times, aucs = {}, {}
    with tempfile.TemporaryDirectory() as data:
        for name, a in (("X", X), ("y", y), ("Xte", Xte), ("yte", yte)):
            np.save(f"{data}/{name}.npy", a)
        model_path = f"{data}/sw1.swm"
        for threads in (1, 2):
            for r in range(args.repeat):
                # rotate the order, so that each engine goes first once
                k = r % len(paired)
                order = paired[k:] + paired[:k] + (once if r == 0 else [])
                for e in order:
                    save = model_path if (e, threads) == ("sw", 1) else None
                    sec, a = run_fit(e, threads, data, save)
                    times.setdefault((e, threads), []).append(sec)
                    aucs[(e, threads)] = a
                    print(f"  done: {ENGINES[e][0]}, {threads} thread(s): "
                          f"{sec:.1f} s", file=sys.stderr)
        cont = None
        if args.contention:
            # 1- and 2-thread fits alternate, as above: the ratio of each
            # pair
            p = multiprocessing.Process(target=busy, daemon=True)
            p.start()
            cont = {}
            try:
                for _ in range(args.repeat):
                    for e in [k for k in ("sw", "lgbm") if k in keys]:
                        for t in (1, 2):
                            cont.setdefault((e, t), []).append(
                                run_fit(e, t, data, contended=True)[0])
            finally:
                p.terminate()
        m = sw.load(model_path)
        lat, batch, one = latency(m, Xte)
        ipr = instructions_per_row(m, Xte) if args.callgrind else None

    def ver(e):
        v = _version(VERSION_OF[e]) if e in VERSION_OF else sw.__version__
        return f"{ENGINES[e][0]} {v}"

    print(f"\nGBDT, Higgs-like {args.rows:,} x 28 train, 200,000 test "
          f"(seed {args.seed}); 100 "
          "trees, 255 leaves (depth 8 where named), 255 bins, lr 0.1; "
          "wall s of fit incl. binning, one process per fit; "
          f"{'/'.join(ENGINES[e][0] for e in paired)} {args.repeat} "
          "alternating runs each (median, range), the others one run; "
          f"load average {load0:.2f} before, {os.getloadavg()[0]:.2f} after")
    refs = [e for e in paired if e != "sw"]
    print(f"{'':38s} {'threads':>7s} {'fit s':>8s} {'range':>13s} "
          f"{'test AUC':>9s}" + "".join(f" {'sw / ' + ENGINES[e][0]:>24s}"
                                        for e in refs))
    for threads in (1, 2):
        for e in keys:
            ts = times[(e, threads)]
            med = float(np.median(ts))
            rng = f"{min(ts):.2f}-{max(ts):.2f}" if len(ts) > 1 else ""
            cells = ""
            if e == "sw":
                for ref in refs:
                    rs = [a / b for a, b in zip(ts, times[(ref, threads)])]
                    cells += f" {np.median(rs):10.2f} ({min(rs):.2f}-" \
                             f"{max(rs):.2f})"
            print(f"{ver(e):38s} {threads:7d} {med:8.2f} {rng:>13s} "
                  f"{aucs[(e, threads)]:9.4f}{cells}")
    if refs:
        print("sw / peer: median of the per-repeat ratios of fit times "
              "(range); targets: <= 0.5 of LightGBM at 1 thread, <= 0.6 "
              "at 2; AUC within 0.001 of LightGBM's")
    if cont:
        print(f"\nwith one busy-loop process ({args.repeat} alternating "
              "rounds; LightGBM with OMP_WAIT_POLICY=PASSIVE):")
        for e in ("sw", "lgbm"):
            if (e, 1) not in cont:
                continue
            ones, twos = cont[(e, 1)], cont[(e, 2)]
            r = [b / a for a, b in zip(ones, twos)]
            print(f"  {ENGINES[e][0]:22s} 1 thread median "
                  f"{np.median(ones):7.2f} s, 2 threads "
                  f"{np.median(twos):7.2f} s; 2 / 1 per round median "
                  f"{np.median(r):.2f}x ({min(r):.2f}-{max(r):.2f})")
        print("  target for streamwise: 2 / 1 <= 1.0x")
    print(f"\nprediction, {m.n_trees_} trees x 255 leaves x 28 features: "
          f"one row in C (sw_model_predict) median {lat:.2f} us; batch "
          f"{batch:,.0f} rows/s (one core); one-row predict_proba from "
          f"Python median {one:.2f} us")
    if args.callgrind:
        print("instructions per row, sw-serve scoring 2,000 test rows "
              "(callgrind): " + (f"{ipr:,.0f}" if ipr else
                                 "valgrind or build/bin/sw-serve missing, "
                                 "or sw-serve's batch call not found in "
                                 "callgrind_annotate's caller tree"))


if __name__ == "__main__":
    main()
