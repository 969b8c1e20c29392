"""ALS speed on the synthetic set of ../shared/BENCHMARKS.md, beside
implicit (the library a user would pick instead) and a plain numpy/scipy
ALS, in the same run.

    make bench     # or, after make peers:
    OPENBLAS_NUM_THREADS=1 PYTHONPATH=python build/peers/bin/python benchmarks/als.py
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

implicit (build/peers, pinned in benchmarks/peers.txt) runs in the same
process on the same matrices with the same settings, 1 thread, with its
defaults otherwise: CG with 3 steps and no training loss computed (a
loss callback would add a pass per sweep to its time). At each size
(--sizes, non-zeros over the same 50k x 20k shape) the two fit 80% of the
interactions --repeat times, alternating; the ratio is the median of the
per-repeat ratios of median CPU seconds per sweep. Equal quality is shown
by the same loss formula computed in numpy on both models' factors
(implicit's objective, unnormalized: sum over observed c(1 - x.y)^2 plus
over the rest (x.y)^2 plus lambda(|X|^2 + |Y|^2), c = alpha r) and by
MAP@10 on the held-out 20% (implicit's definition; streamwise's
ranking_metrics_at_k for ours, implicit.evaluation for implicit's).
recommend-all, similar_items and fold-in are timed on both too.
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


def objective(R, X, Y, reg, alpha):
    """implicit's ALS objective, unnormalized, for factors X, Y on R."""
    X = X.astype(np.float64)
    Y = Y.astype(np.float64)
    coo = R.tocoo()
    s = np.empty(coo.nnz)
    for lo in range(0, coo.nnz, 1 << 20):
        hi = lo + (1 << 20)
        s[lo:hi] = np.einsum("ij,ij->i", X[coo.row[lo:hi]], Y[coo.col[lo:hi]])
    c = alpha * coo.data.astype(np.float64)
    observed = np.sum(c * (1 - s) ** 2 - s ** 2)
    everything = np.sum((X.T @ X) * (Y.T @ Y))
    return observed + everything + reg * (np.sum(X * X) + np.sum(Y * Y))


def implicit_sweeps(train, iterations, threads):
    from implicit.cpu.als import AlternatingLeastSquares
    model = AlternatingLeastSquares(
        factors=64, regularization=0.01, alpha=1.0, iterations=iterations,
        use_cg=True, calculate_training_loss=False, num_threads=threads,
        random_state=0)
    stamps = [cpu()]
    model.fit(train, show_progress=False,
              callback=lambda it, elapsed, loss: stamps.append(cpu()))
    return model, np.diff(stamps)


def versus_implicit(sizes, iterations, repeat):
    """Rows of the same-run comparison with implicit at each size."""
    import implicit
    from implicit.evaluation import mean_average_precision_at_k
    from streamwise.recommend import ranking_metrics_at_k, train_test_split
    out = []
    for nnz in sizes:
        m = synthetic(50_000, 20_000, nnz)
        train, test = train_test_split(m, 0.8, random_state=1)
        ours, theirs, ratios = [], [], []
        for r in range(repeat):
            pair = {}
            for who in (("sw", "implicit") if r % 2 == 0 else
                        ("implicit", "sw")):
                if who == "sw":
                    est, sw_s, _ = fit_sweeps(train, "cg", iterations, 1)
                    pair["sw"] = statistics.median(sw_s)
                else:
                    imp, imp_s = implicit_sweeps(train, iterations, 1)
                    pair["implicit"] = statistics.median(imp_s)
            ours.append(pair["sw"])
            theirs.append(pair["implicit"])
            ratios.append(pair["sw"] / pair["implicit"])
        lo_sw = objective(train, est.user_factors, est.item_factors, 0.01, 1.0)
        lo_im = objective(train, imp.user_factors, imp.item_factors, 0.01,
                          1.0)
        map_sw = ranking_metrics_at_k(est, train, test, K=10)["map"]
        map_im = mean_average_precision_at_k(imp, train, test, K=10,
                                             show_progress=False)
        out.append((nnz, ours, theirs, ratios, lo_sw, lo_im, map_sw, map_im))
        # the other calls, at the first size only
        if nnz == sizes[0]:
            users = np.arange(train.shape[0])
            items = np.arange(train.shape[1])
            t = {}
            for who, fn in (
                    ("recommend", (lambda: est.recommend(users, train, N=10),
                                   lambda: imp.recommend(users, train[users],
                                                         N=10))),
                    ("similar_items", (lambda: est.similar_items(items, N=10),
                                       lambda: imp.similar_items(items, N=10))),
                    ("fold-in 10k", (lambda: est.recalculate_user(
                        np.arange(10_000), train[:10_000]),
                        lambda: imp.recalculate_user(
                            np.arange(10_000), train[:10_000])))):
                vals = []
                for f in fn:
                    c0 = cpu()
                    f()
                    vals.append(cpu() - c0)
                t[who] = vals
            out_calls = t
    return implicit.__version__, out, out_calls


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--iterations", type=int, default=15)
    ap.add_argument("--sizes", default="2000000,8000000",
                    help="non-zeros of the same-run comparison with "
                         "implicit, comma-separated")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--scale", action="store_true",
                    help="also one sweep on 400k x 300k x 20M")
    ap.add_argument("--peer-users", type=int, default=2000)
    args = ap.parse_args()
    if os.environ.get("OPENBLAS_NUM_THREADS") != "1":
        print("note: run with OPENBLAS_NUM_THREADS=1 (one thread for "
              "implicit's BLAS calls too)", file=sys.stderr)
    vs = None
    try:
        import implicit  # noqa: F401
        vs = versus_implicit([int(v) for v in args.sizes.split(",")],
                             args.iterations, args.repeat)
    except ImportError:
        print("als.py: implicit is not installed here; `make peers` "
              "installs it", file=sys.stderr)
    m = synthetic(50_000, 20_000, 2_000_000)
    rows = []

    est, sweeps, loss = fit_sweeps(m, "cg", args.iterations, 1)
    rows.append(("fit CG (3 steps), 1 thread", "CPU-s/sweep",
                 statistics.median(sweeps), 0.55, f"loss {loss:.7g}"))
    _, sweeps_ch, loss_ch = fit_sweeps(m, "cholesky", args.iterations, 1)
    rows.append(("fit Cholesky, 1 thread", "CPU-s/sweep",
                 statistics.median(sweeps_ch), 1.6,
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
                 None, f"1 thread {w1:.2f} s: {w1 / w2:.2f}x"))

    users = np.arange(m.shape[0])
    est.num_threads = 1
    est._model.als_info   # noqa: B018 - fitted
    c0 = cpu()
    ids, _ = est.recommend(users, N=10)
    rows.append(("recommend all 50k users, N=10, liked left out", "CPU-s",
                 cpu() - c0, 2.0, ""))
    c0 = cpu()
    est.similar_items(np.arange(m.shape[1]), N=10)
    rows.append(("similar_items, all 20k items", "CPU-s", cpu() - c0,
                 0.7, ""))
    fold = m[:10_000]
    c0 = cpu()
    est.recalculate_user(np.arange(10_000), fold)
    rows.append(("fold-in (recalculate_user) of 10k users", "CPU-s",
                 cpu() - c0, 0.3, "exact Cholesky"))

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
                 sum(per), None,
                 f"from {n_peer} users + {n_peer} items, scaled"))

    if args.scale:
        big = synthetic(400_000, 300_000, 20_000_000)
        c0 = cpu()
        w0 = time.perf_counter()
        sw.ALS(factors=64, iterations=1, random_state=0,
               num_threads=1).fit(big)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        sweep = cpu() - c0
        rows.append(("400k x 300k x 20M, one CG sweep", "CPU-s", sweep,
                     7.0, f"peak RSS {rss:.0f} MiB; 600M interactions ~ "
                          f"{sweep * 30:.0f} CPU-s/sweep (linear in nnz)"))
        del big

    print(f"\nALS on 50k x 20k x 2M, k=64, OPENBLAS_NUM_THREADS="
          f"{os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}")
    print(f"{'measure':48s} {'unit':12s} {'streamwise':>10s} "
          f"{'target':>7s}  note")
    for name, unit, value, target, note in rows:
        t = f"{target:7.2f}" if target is not None else f"{'':7s}"
        print(f"{name:48s} {unit:12s} {value:10.3f} {t}  {note}")
    if vs is None:
        return
    version, sizes, calls = vs
    print(f"\nbeside implicit {version} in this run, 1 thread, CG 3 steps, "
          f"k=64, {args.iterations} sweeps on 80% of the interactions, "
          f"{args.repeat} alternating fits each; load average "
          f"{os.getloadavg()[0]:.2f}")
    print(f"{'non-zeros':>10s} {'sw CPU-s/sweep':>22s} "
          f"{'implicit CPU-s/sweep':>22s} {'sw / implicit':>20s} "
          f"{'loss sw / implicit':>18s} {'MAP@10 sw':>10s} "
          f"{'MAP@10 implicit':>16s}")
    for nnz, ours, theirs, ratios, lo_sw, lo_im, map_sw, map_im in sizes:
        def mr(xs):
            return (f"{statistics.median(xs):.3f} "
                    f"({min(xs):.3f}-{max(xs):.3f})")
        print(f"{nnz:10,d} {mr(ours):>22s} {mr(theirs):>22s} "
              f"{mr(ratios):>20s} {lo_sw / lo_im:18.5f} {map_sw:10.5f} "
              f"{map_im:16.5f}")
    print("target: sw / implicit <= 0.4 with equal loss and MAP@10")
    print(f"\n{'call (first size)':28s} {'sw CPU-s':>9s} "
          f"{'implicit CPU-s':>15s} {'sw / implicit':>14s}")
    for name, (a, b) in calls.items():
        print(f"{name:28s} {a:9.3f} {b:15.3f} {a / b:14.2f}")


if __name__ == "__main__":
    main()
