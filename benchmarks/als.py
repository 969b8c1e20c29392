"""ALS speed on the synthetic set of ../shared/BENCHMARKS.md, beside a plain
numpy/scipy ALS (the in-run peer) in the same run.

    OPENBLAS_NUM_THREADS=1 PYTHONPATH=python /usr/bin/python3 benchmarks/als.py
    ... benchmarks/als.py --scale      # also 400k x 300k x 20M, one sweep

Data: 50,000 users x 20,000 items x 2,000,000 distinct non-zeros,
default_rng(42), values integers 1..10 as float32. k=64, lambda=0.01,
alpha=1, confidence "linear" (implicit's convention). The table gives
process CPU seconds per sweep (median over the sweeps) for CG (3 steps)
and Cholesky with one thread, the final loss after --iterations sweeps,
the wall time of a 2-thread fit, recommend for all users (N=10, liked items
left out), similar_items for every item and the fold-in of 10,000 users.
The numpy peer does the same CG recurrence with vectorized numpy per row
block (it is measured on a slice of the users and scaled up, being slow).
implicit 0.7.3, not installable here, was measured on these machines:
CG 1.1, Cholesky 4.8 CPU-s/sweep, recommend-all 4.9, similar_items 1.4,
fold-in 0.54 CPU-s (../shared/BENCHMARKS.md).
"""
import argparse
import os
import resource
import statistics
import sys
import time

import numpy as np
import scipy.sparse as sp

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "python"))

import streamwise as sw  # noqa: E402


def synthetic(n_users, n_items, nnz, seed=42):
    rng = np.random.default_rng(seed)
    lin = rng.choice(n_users * n_items, size=nnz, replace=False)
    rows, cols = divmod(lin, n_items)
    vals = rng.integers(1, 11, nnz).astype(np.float32)
    return sp.csr_matrix((vals, (rows, cols)), shape=(n_users, n_items))


def cpu():
    return time.process_time()


def fit_sweeps(m, solver, iterations, threads):
    """CPU seconds of every sweep, and the final loss."""
    stamps = [cpu()]
    losses = []

    def cb(it, elapsed, loss):
        stamps.append(cpu())
        losses.append(loss)
    est = sw.ALS(factors=64, regularization=0.01, alpha=1.0,
                 iterations=iterations, solver=solver, random_state=0,
                 num_threads=threads)
    est.fit(m, callback=cb)
    sweeps = np.diff(stamps)
    return est, sweeps, losses[-1]


def numpy_cg_users(m, X, Y, reg, steps=3, block=2000):
    """A plain numpy ALS half-sweep (users), the implicit CG recurrence
    vectorized over rows: the peer."""
    YtY = Y.T @ Y + reg * np.eye(Y.shape[1], dtype=np.float32)
    for lo in range(0, m.shape[0], block):
        sub = m[lo:lo + block]
        for u in range(sub.shape[0]):
            a, b = sub.indptr[u], sub.indptr[u + 1]
            if a == b:
                X[lo + u] = 0
                continue
            Yu = Y[sub.indices[a:b]]
            c = sub.data[a:b]
            x = X[lo + u]
            r = -YtY @ x + (c - (c - 1) * (Yu @ x)) @ Yu
            p = r.copy()
            rs = r @ r
            for _ in range(steps):
                Ap = YtY @ p + ((c - 1) * (Yu @ p)) @ Yu
                alpha = rs / (p @ Ap)
                x = x + alpha * p
                r = r - alpha * Ap
                rn = r @ r
                if rn < 1e-20:
                    break
                p = r + (rn / rs) * p
                rs = rn
            X[lo + u] = x


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--iterations", type=int, default=15)
    ap.add_argument("--scale", action="store_true",
                    help="also one sweep on 400k x 300k x 20M")
    ap.add_argument("--peer-users", type=int, default=2000)
    args = ap.parse_args()
    if os.environ.get("OPENBLAS_NUM_THREADS") != "1":
        print("note: run with OPENBLAS_NUM_THREADS=1 to compare with the "
              "figures in ../shared/BENCHMARKS.md", file=sys.stderr)
    m = synthetic(50_000, 20_000, 2_000_000)
    rows = []

    est, sweeps, loss = fit_sweeps(m, "cg", args.iterations, 1)
    rows.append(("fit CG (3 steps), 1 thread", "CPU-s/sweep",
                 statistics.median(sweeps), 1.1, 0.55, f"loss {loss:.7g}"))
    _, sweeps_ch, loss_ch = fit_sweeps(m, "cholesky", args.iterations, 1)
    rows.append(("fit Cholesky, 1 thread", "CPU-s/sweep",
                 statistics.median(sweeps_ch), 4.8, 1.6,
                 f"loss {loss_ch:.7g}"))
    w1 = time.perf_counter()
    sw.ALS(factors=64, iterations=args.iterations, random_state=0,
           num_threads=1).fit(m)
    w1 = time.perf_counter() - w1
    w2 = time.perf_counter()
    sw.ALS(factors=64, iterations=args.iterations, random_state=0,
           num_threads=2).fit(m)
    w2 = time.perf_counter() - w2
    rows.append((f"fit CG, {args.iterations} sweeps, 2 threads", "wall s", w2,
                 None, None, f"1 thread {w1:.2f} s: {w1 / w2:.2f}x"))

    users = np.arange(m.shape[0])
    est.num_threads = 1
    est._model.als_info   # noqa: B018 - fitted
    c0 = cpu()
    ids, _ = est.recommend(users, N=10)
    rows.append(("recommend all 50k users, N=10, liked left out", "CPU-s",
                 cpu() - c0, 4.9, 2.0, ""))
    c0 = cpu()
    est.similar_items(np.arange(m.shape[1]), N=10)
    rows.append(("similar_items, all 20k items", "CPU-s", cpu() - c0, 1.4,
                 0.7, ""))
    fold = m[:10_000]
    c0 = cpu()
    est.recalculate_user(np.arange(10_000), fold)
    rows.append(("fold-in (recalculate_user) of 10k users", "CPU-s",
                 cpu() - c0, 0.54, 0.3, "exact Cholesky"))

    # the numpy peer, on slices of the users and of the items, each scaled
    # to all of its rows
    rng = np.random.default_rng(0)
    n_peer = args.peer_users
    per = []
    for R, other in ((m, est.item_factors), (m.T.tocsr(), est.user_factors)):
        X = (rng.random((n_peer, 64)) * 0.01).astype(np.float32)
        c0 = cpu()
        numpy_cg_users(R[:n_peer], X, other, 0.01)
        per.append((cpu() - c0) / n_peer * R.shape[0])
    rows.append(("numpy/scipy ALS, CG (3 steps), in this run", "CPU-s/sweep",
                 sum(per), None, None,
                 f"from {n_peer} users + {n_peer} items, scaled"))

    if args.scale:
        big = synthetic(400_000, 300_000, 20_000_000)
        c0 = cpu()
        w0 = time.perf_counter()
        sw.ALS(factors=64, iterations=1, random_state=0,
               num_threads=1).fit(big)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        sweep = cpu() - c0
        rows.append(("400k x 300k x 20M, one CG sweep", "CPU-s", sweep, 14.3,
                     7.0, f"peak RSS {rss:.0f} MiB; 600M interactions ~ "
                          f"{sweep * 30:.0f} CPU-s/sweep (linear in nnz)"))
        del big

    print(f"\nALS on 50k x 20k x 2M, k=64, OPENBLAS_NUM_THREADS="
          f"{os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}")
    print(f"{'measure':48s} {'unit':12s} {'streamwise':>10s} "
          f"{'implicit*':>9s} {'target':>7s}  note")
    for name, unit, value, peer, target, note in rows:
        p = f"{peer:9.2f}" if peer is not None else f"{'':9s}"
        t = f"{target:7.2f}" if target is not None else f"{'':7s}"
        print(f"{name:48s} {unit:12s} {value:10.3f} {p} {t}  {note}")
    print("* implicit 0.7.3 measured by hand on these machines "
          "(../shared/BENCHMARKS.md), not in this run")


if __name__ == "__main__":
    main()
