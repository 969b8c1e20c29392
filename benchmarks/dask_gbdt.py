"""GBDT on a Dask cluster beside XGBoost's Dask fit, in the same run: fit
time at 1 and 2 workers, bytes exchanged per tree, and how far each
engine's 2-worker model is from its one-process model.

    make peers      # then (the peers' venv has PyPI's dask for xgboost.dask)
    PYTHONPATH=python build/peers/bin/python benchmarks/dask_gbdt.py
        [--rows 1000000] [--trees 100] [--repeat 2]

Data: the GBDT benchmark's seeded Higgs-like task (benchmarks/gbdt.py,
../shared/BENCHMARKS.md): --rows training rows x 28 float32 features,
200k test rows. Both engines: --trees trees, 255 leaves grown leaf-wise
(xgboost: hist, lossguide, max_leaves 255, max_depth 0), 255 bins,
learning rate 0.1. Rows of the table: each engine in one process (2
threads), then on a LocalCluster of 1 and of 2 worker processes (1
thread each, loopback), the data persisted on the workers in 8 chunks
before the clock starts; alternating --repeat times (sw, xgb, sw, xgb
...). Wall seconds of fit: median [min-max] over repeats. "max |dp|" is
the largest difference, over the test rows, between the probabilities of
the Dask model and the one-process model of the same engine; streamwise
also compares model ids (the SHA-256 of the model bytes).
"""
import argparse
import os
import statistics
import sys
import time
import warnings

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "python"))

import streamwise as sw  # noqa: E402
from streamwise.datasets.generators import higgs_like  # noqa: E402

SW = dict(n_estimators=100, learning_rate=0.1, num_leaves=255, max_bin=255)
XGB = dict(n_estimators=100, learning_rate=0.1, tree_method="hist",
           max_bin=255, grow_policy="lossguide", max_leaves=255, max_depth=0)


def auc(y, p):
    from sklearn.metrics import roc_auc_score
    return roc_auc_score(y, p)


def one_process(engine, X, y):
    t0 = time.perf_counter()
    if engine == "sw":
        m = sw.GBDTClassifier(**SW, n_jobs=2).fit(X, y, progress=False)
    else:
        import xgboost as xgb
        m = xgb.XGBClassifier(**XGB, n_jobs=2).fit(X, y)
    return m, time.perf_counter() - t0


def on_dask(engine, client, X, y, n_workers):
    import dask.array as da
    from distributed import wait
    chunk = -(-len(X) // 8)
    Xd = da.from_array(X, chunks=(chunk, X.shape[1]))
    yd = da.from_array(y, chunks=chunk)
    Xd, yd = client.persist([Xd, yd])
    wait([Xd, yd])
    t0 = time.perf_counter()
    if engine == "sw":
        from streamwise.dask import GBDTClassifier
        m = GBDTClassifier(**SW, n_jobs=1).fit(Xd, yd, client=client)
    else:
        import xgboost.dask as xd
        m = xd.DaskXGBClassifier(**XGB, n_jobs=1)
        m.client = client
        m.fit(Xd, yd)
    return m, time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--trees", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    # from_array puts the data in the graph, once per fit: not timed
    warnings.filterwarnings("ignore", message="Sending large graph")
    SW["n_estimators"] = XGB["n_estimators"] = args.trees
    import distributed
    import xgboost
    print(f"load average before: {open('/proc/loadavg').read().split()[:3]}")
    X, y, Xte, yte = higgs_like(args.rows, 200_000)
    print(f"data: {X.shape[0]:,} x {X.shape[1]} {X.dtype}, test "
          f"{len(Xte):,}; {args.trees} trees, 255 leaves, 255 bins; "
          f"streamwise {sw.__version__}, xgboost {xgboost.__version__}, "
          f"dask/distributed {distributed.__version__}")
    times = {}
    ref, dp, auc_of, ident, per_tree = {}, {}, {}, {}, {}
    for rep in range(args.repeat):
        for engine in ("sw", "xgb"):
            m, t = one_process(engine, X, y)
            times.setdefault((engine, "1 process, 2 threads"), []).append(t)
            p = m.predict_proba(Xte)[:, 1] if engine == "sw" else \
                m.get_booster().inplace_predict(Xte)
            ref[engine] = (m, p)
            auc_of[(engine, "1 process, 2 threads")] = auc(yte, p)
        for n_workers in (1, 2):
            with distributed.LocalCluster(
                    n_workers=n_workers, threads_per_worker=1,
                    processes=True, dashboard_address=None,
                    silence_logs=50) as c, distributed.Client(c) as client:
                for engine in ("sw", "xgb"):
                    m, t = on_dask(engine, client, X, y, n_workers)
                    row = (engine, f"Dask, {n_workers} worker"
                           f"{'s' if n_workers > 1 else ''}")
                    times.setdefault(row, []).append(t)
                    if engine == "sw":
                        p = m.predict_proba(Xte)[:, 1]
                        ident[row] = (m._model.to_bytes()[56:72] ==
                                      ref["sw"][0]._model.to_bytes()[56:72])
                        per_tree[row] = m.transfer_[0]
                    else:
                        p = m.get_booster().inplace_predict(Xte)
                    dp[row] = float(np.max(np.abs(p - ref[engine][1])))
                    auc_of[row] = auc(yte, p)
    print()
    print(f"{'engine':<11}{'where':<24}{'fit s (median [range])':<28}"
          f"{'test AUC':<10}{'max |dp| vs 1 process':<24}"
          f"{'KB per tree per rank'}")
    for (engine, where), ts in times.items():
        med = statistics.median(ts)
        rng = f"{med:7.2f} [{min(ts):.2f}-{max(ts):.2f}]"
        d = dp.get((engine, where))
        extra = ""
        if (engine, where) in per_tree:
            s = per_tree[(engine, where)]
            extra = f"{s['bytes_per_tree'] / 1024:,.0f} " \
                    f"({s['collective_seconds']:.2f} s in the ring)"
        same = "" if d is None else (
            f"{d:.3g}" + (" (same model id)" if ident.get((engine, where))
                          else ""))
        name = "streamwise" if engine == "sw" else "xgboost"
        print(f"{name:<11}{where:<24}{rng:<28}"
              f"{auc_of[(engine, where)]:<10.5f}{same:<24}{extra}")
    for where in ("Dask, 1 worker", "Dask, 2 workers"):
        a = statistics.median(times[("sw", where)])
        b = statistics.median(times[("xgb", where)])
        print(f"streamwise / xgboost fit time, {where}: {a / b:.2f}")
    print(f"load average after: {open('/proc/loadavg').read().split()[:3]}")


if __name__ == "__main__":
    main()
