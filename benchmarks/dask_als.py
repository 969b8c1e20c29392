"""ALS on a Dask cluster beside the one-process fit, in the same run: the
same factors bit for bit, and what the cluster costs.

    PYTHONPATH=python /usr/bin/python3 benchmarks/dask_als.py [--iterations 5]

Data: the ALS benchmark's set (benchmarks/als.py): 50,000 users x 20,000
items x 2,000,000 non-zeros, default_rng(42), k=64, CG 3 steps. Rows:
streamwise.ALS on one process with 1 and 2 threads; streamwise.dask.ALS on
a LocalCluster of 1 and 2 worker processes (1 thread each, loopback),
alternating --repeat times (A B C D, A B C D ...). Wall seconds per
sweep (median [min-max] over repeats of the median sweep), and per sweep
the bytes broadcast to the workers and gathered from them. Every Dask
fit's factors are compared with the one-process fit's bytes.
"""
import argparse
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "python"))
sys.path.insert(0, HERE)

import streamwise as sw  # noqa: E402
from als import synthetic  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--iterations", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--users", type=int, default=50_000)
    ap.add_argument("--items", type=int, default=20_000)
    ap.add_argument("--nnz", type=int, default=2_000_000)
    args = ap.parse_args()
    from distributed import Client, LocalCluster
    from streamwise.dask import ALS

    R = synthetic(args.users, args.items, args.nnz)
    params = dict(factors=64, iterations=args.iterations, random_state=1)
    clusters = {n: LocalCluster(n_workers=n, threads_per_worker=1,
                                processes=True, dashboard_address=None,
                                silence_logs=50) for n in (1, 2)}
    clients = {n: Client(c) for n, c in clusters.items()}
    rows = {"one process, 1 thread": [], "one process, 2 threads": [],
            "dask, 1 worker": [], "dask, 2 workers": []}
    moved = {}
    ref = None
    for rep in range(args.repeat):
        for name in rows:
            sweeps = []
            if name.startswith("one"):
                threads = 1 if "1 thread" in name else 2
                m = sw.ALS(num_threads=threads, **params)
                last = [time.perf_counter()]

                def cb(it, elapsed, loss, last=last, sweeps=sweeps):
                    now = time.perf_counter()
                    sweeps.append(now - last[0])
                    last[0] = now
                m.fit(R, callback=cb)
                if ref is None:
                    ref = m
                same = (m.user_factors.tobytes() ==
                        ref.user_factors.tobytes())
            else:
                n = 1 if "1 worker" in name else 2
                m = ALS(**params).fit(R, clients[n])
                sweeps = [t["seconds"] for t in m.transfer_]
                moved[name] = m.transfer_[0]
                same = (m.user_factors.tobytes() ==
                        ref.user_factors.tobytes() and
                        m.item_factors.tobytes() ==
                        ref.item_factors.tobytes())
            rows[name].append((statistics.median(sweeps), same))
            print(f"  rep {rep} {name}: {statistics.median(sweeps):.2f} "
                  f"s/sweep, same bits: {same}", flush=True)
    print(f"\n{args.users:,} x {args.items:,} x {R.nnz:,}, k=64, "
          f"{args.iterations} sweeps, {args.repeat} repeats; load "
          f"{os.getloadavg()[0]:.2f}\n")
    print("| fit | s / sweep, median [range] | same bits as one process "
          "| MB broadcast / gathered per sweep |")
    print("|---|---:|---|---:|")
    for name, v in rows.items():
        t = [x[0] for x in v]
        mv = moved.get(name)
        print(f"| {name} | {statistics.median(t):.2f} [{min(t):.2f}-"
              f"{max(t):.2f}] | {all(x[1] for x in v)} | "
              + (f"{mv['broadcast_bytes'] / 1e6:.1f} / "
                 f"{mv['gathered_bytes'] / 1e6:.1f}" if mv else "-") + " |")
    for c in clients.values():
        c.close()
    for c in clusters.values():
        c.close()


if __name__ == "__main__":
    main()
