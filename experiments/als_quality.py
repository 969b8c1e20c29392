"""Recommendation quality of streamwise.ALS on real data, with the
protocols of ../shared/BENCHMARKS.md, so the numbers compare with implicit's.

    PYTHONPATH=python /usr/bin/python3 experiments/als_quality.py [DATA_DIR]

MovieLens 100K, implicit: ratings >= 4 are positives (value 1), a random
80/20 split per interaction (seeds 0, 1, 2), k=64, lambda=10, alpha=1, 15
sweeps, confidence "linear"; MAP@10 and P@10 with implicit's definitions,
train interactions left out. implicit's own figures under this protocol:
MAP@10 0.187, P@10 0.323.
MovieLens 100K, explicit: the 1-5 ratings, the same splits, ALS-WR (k=10,
lambda=0.1 times n_u, 15 sweeps), predictions clipped to 1-5: test RMSE
(a numpy reference: 0.923).
Last.fm (hetrec 2011, 1,892 users x 17,632 artists, play counts): counts
scaled by log1p (play counts span 1 to 350k; raw counts make a few users
dominate), 80/20 split, k=64, lambda=0.1, alpha=1, 15 sweeps: MAP@10, P@10.
"""
import sys
import time

import numpy as np

sys.path.insert(0, __file__.rsplit("/experiments/", 1)[0] + "/python")

import streamwise as sw  # noqa: E402
from streamwise import datasets  # noqa: E402
from streamwise.recommend import (ranking_metrics_at_k, rmse,  # noqa: E402
                                  train_test_split)


def main():
    data = sys.argv[1] if len(sys.argv) > 1 else None
    R, _ = datasets.load_movielens_100k(data)
    pos = R.copy()
    pos.data = (pos.data >= 4).astype(np.float32)
    pos.eliminate_zeros()
    print(f"MovieLens 100K: {R.shape[0]} users x {R.shape[1]} movies, "
          f"{R.nnz:,} ratings, {pos.nnz:,} >= 4\n")
    print(f"{'experiment':44s} {'seed':>4s} {'MAP@10':>8s} {'P@10':>8s} "
          f"{'RMSE':>8s} {'fit s':>6s}")
    maps, precs, rmses = [], [], []
    for seed in (0, 1, 2):
        tr, te = train_test_split(pos, 0.8, random_state=seed)
        t0 = time.perf_counter()
        est = sw.ALS(factors=64, regularization=10, alpha=1, iterations=15,
                     confidence="linear", random_state=seed).fit(tr)
        fit_s = time.perf_counter() - t0
        m = ranking_metrics_at_k(est, tr, te, K=10)
        maps.append(m["map"])
        precs.append(m["precision"])
        print(f"{'implicit ALS (positives)':44s} {seed:4d} {m['map']:8.4f} "
              f"{m['precision']:8.4f} {'':>8s} {fit_s:6.2f}")
    for seed in (0, 1, 2):
        tr, te = train_test_split(R, 0.8, random_state=seed)
        t0 = time.perf_counter()
        est = sw.ALS(factors=10, regularization=0.1, reg_scaling="n_u",
                     explicit=True, iterations=15, random_state=seed).fit(tr)
        fit_s = time.perf_counter() - t0
        rmses.append(rmse(est, te, clip=(1, 5)))
        print(f"{'explicit ALS-WR (ratings)':44s} {seed:4d} {'':>8s} "
              f"{'':>8s} {rmses[-1]:8.4f} {fit_s:6.2f}")
    print(f"{'mean over seeds 0-2':44s} {'':4s} {np.mean(maps):8.4f} "
          f"{np.mean(precs):8.4f} {np.mean(rmses):8.4f}")
    print(f"{'implicit 0.7.3 / numpy reference':44s} {'':4s} {0.187:8.4f} "
          f"{0.323:8.4f} {0.923:8.4f}")

    try:
        plays, _, _ = datasets.load_lastfm(data)
    except datasets.DataNotFound as e:
        print(f"\nLast.fm skipped: {e}")
        return 0
    scaled = plays.copy()
    scaled.data = np.log1p(scaled.data).astype(np.float32)
    print(f"\nLast.fm: {plays.shape[0]:,} users x {plays.shape[1]:,} artists, "
          f"{plays.nnz:,} play counts, scaled by log1p")
    for seed in (0, 1, 2):
        tr, te = train_test_split(scaled, 0.8, random_state=seed)
        est = sw.ALS(factors=64, regularization=0.1, alpha=1.0, iterations=15,
                     random_state=seed).fit(tr)
        m = ranking_metrics_at_k(est, tr, te, K=10)
        print(f"{'Last.fm implicit ALS (log1p plays)':44s} {seed:4d} "
              f"{m['map']:8.4f} {m['precision']:8.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
