"""ALS against the slow numpy reference, and its API, metrics, splits,
bad input and the runner's --recommend."""
import os
import subprocess

import numpy as np
import pytest
import scipy.sparse as sp

import streamwise as sw
from streamwise import _sw, reference
from streamwise.recommend import (leave_k_out_split, ranking_metrics_at_k,
                                  rmse, train_test_split)


def interactions(rng, n_users=60, n_items=40, density=0.15, ratings=False):
    m = sp.random(n_users, n_items, density=density, format="csr",
                  random_state=rng.integers(1 << 30), dtype=np.float64)
    m.data = (rng.integers(1, 6, m.nnz) if ratings
              else rng.integers(1, 11, m.nnz)).astype(np.float64)
    m.indptr[5:] = m.indptr[5:]     # keep structure; user 3 emptied below
    m = m.tolil()
    m[3, :] = 0                      # an empty user
    m[:, 7] = 0                      # an empty item
    m = m.tocsr()
    m.eliminate_zeros()
    return m


def one_sweep(R, X0, Y0, **conf):
    full = {"als.factors": str(X0.shape[1])}
    full.update({f"als.{k}": str(v) for k, v in conf.items()})
    m = _sw.als_new(full, *R.shape)
    m.als_set_factors(0, X0)
    m.als_set_factors(1, Y0)
    loss = m.als_iterate(R, R.T.tocsr(), True)
    return m, loss


@pytest.mark.parametrize("conv,scaling", [("linear", "none"), ("hu", "none"),
                                          ("linear", "n_u"), ("hu", "n_u")])
def test_cholesky_sweep_is_the_exact_solution(rng, conv, scaling):
    R = interactions(rng)
    k = 6
    X0 = rng.random((R.shape[0], k)).astype(np.float32) * 0.1
    Y0 = rng.random((R.shape[1], k)).astype(np.float32) * 0.1
    m, loss = one_sweep(R, X0, Y0, solver="cholesky", regularization=0.5,
                        alpha=2.0, confidence=conv, reg_scaling=scaling)
    X1 = reference.als_solve_exact(R, Y0, 0.5, 2.0, conv, scaling)
    np.testing.assert_allclose(m.als_factors(0), X1, rtol=2e-4, atol=1e-6)
    Y1 = reference.als_solve_exact(R.T.tocsr(), m.als_factors(0), 0.5, 2.0,
                                   conv, scaling)
    np.testing.assert_allclose(m.als_factors(1), Y1, rtol=2e-4, atol=1e-6)
    assert np.all(m.als_factors(0)[3] == 0) and np.all(m.als_factors(1)[7]
                                                       == 0)
    want = reference.als_implicit_loss(R, m.als_factors(0), m.als_factors(1),
                                       0.5, 2.0, conv, scaling)
    assert loss == pytest.approx(want, rel=1e-5)


@pytest.mark.parametrize("steps", [1, 3, 10])
def test_cg_sweep_follows_implicits_recurrence(rng, steps):
    R = interactions(rng, n_users=50, n_items=30)
    k = 8
    X0 = rng.random((R.shape[0], k)).astype(np.float32) * 0.01
    Y0 = rng.random((R.shape[1], k)).astype(np.float32) * 0.01
    m, _ = one_sweep(R, X0, Y0, solver="cg", cg_steps=steps,
                     regularization=0.1)
    X1 = reference.als_solve_cg(R, X0, Y0, 0.1, steps=steps)
    np.testing.assert_allclose(m.als_factors(0), X1, rtol=1e-3, atol=1e-5)
    if steps == 10:   # converged CG is the exact solution
        np.testing.assert_allclose(
            m.als_factors(0), reference.als_solve_exact(R, Y0, 0.1),
            rtol=1e-3, atol=1e-5)


def test_explicit_sweep_and_rmse(rng):
    R = interactions(rng, ratings=True)
    k = 5
    X0 = rng.random((R.shape[0], k)).astype(np.float32)
    Y0 = rng.random((R.shape[1], k)).astype(np.float32)
    m, loss = one_sweep(R, X0, Y0, explicit="true", regularization=0.1,
                        reg_scaling="n_u")
    X1 = reference.als_solve_exact(R, Y0, 0.1, reg_scaling="n_u",
                                   explicit=True)
    np.testing.assert_allclose(m.als_factors(0), X1, rtol=2e-4, atol=1e-5)
    est = sw.ALS(factors=4, regularization=0.1, explicit=True,
                 reg_scaling="n_u", iterations=15, random_state=0).fit(R)
    assert rmse(est, R) < 0.8          # fits its training ratings
    coo = R.tocoo()
    pred = est.predict(coo.row, coo.col)
    want = np.einsum("ij,ij->i", est.user_factors[coo.row].astype(np.float64),
                     est.item_factors[coo.col].astype(np.float64))
    np.testing.assert_allclose(pred, want, rtol=1e-5)


def test_loss_decreases_and_solvers_agree(rng):
    R = interactions(rng, n_users=200, n_items=100, density=0.05)
    losses = {}
    for solver in ("cg", "cholesky"):
        seen = []
        sw.ALS(factors=8, iterations=8, solver=solver, regularization=0.1,
               random_state=1).fit(R, callback=lambda it, t, loss:
                                   seen.append(loss))
        assert all(b <= a * (1 + 1e-4) for a, b in zip(seen, seen[1:]))
        losses[solver] = seen[-1]
    assert losses["cg"] == pytest.approx(losses["cholesky"], rel=1e-2)


def test_deterministic_across_thread_counts(rng):
    R = interactions(rng, n_users=3000, n_items=500, density=0.02)
    runs = [sw.ALS(factors=16, iterations=3, random_state=7,
                   num_threads=t).fit(R) for t in (1, 2, 3)]
    for other in runs[1:]:
        assert other.user_factors.tobytes() == runs[0].user_factors.tobytes()
        assert other.item_factors.tobytes() == runs[0].item_factors.tobytes()
    again = sw.ALS(factors=16, iterations=3, random_state=7).fit(R)
    assert again.item_factors.tobytes() == runs[0].item_factors.tobytes()


NARROW_FIT = """
import hashlib, sys
import numpy as np, scipy.sparse as sp
import streamwise as sw
rng = np.random.default_rng(3)
R = sp.random(700, 300, density=0.05, format="csr", random_state=4,
              dtype=np.float32)
R.data = rng.integers(1, 9, R.nnz).astype(np.float32)
h = hashlib.sha256()
for k, solver in ((5, "cg"), (37, "cg"), (64, "cg"), (72, "cg"),
                  (13, "cholesky")):
    m = sw.ALS(factors=k, iterations=2, random_state=7, solver=solver,
               num_threads=2).fit(R, calculate_training_loss=True)
    h.update(m.user_factors.tobytes())
    h.update(m.item_factors.tobytes())
    ids, scores = m.recommend(np.arange(700), R, N=7)
    h.update(ids.tobytes())
    h.update(scores.tobytes())
print(h.hexdigest())
"""


def test_kernels_of_every_width_give_the_same_bits():
    """Hosts with AVX-512, with AVX2 only and with neither run the CG
    sweep's and recommend's kernels in 16-, 8- and 4-lane vectors;
    SW_ALS_KERNELS=avx2 and =narrow run the narrower ones here. Factor
    counts with tails past every width, both solvers, recommendations:
    the same bits at every width."""
    import sys
    root = os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))))
    out = []
    for kernels in ("", "avx2", "narrow"):
        r = subprocess.run(
            [sys.executable, "-c", NARROW_FIT], capture_output=True,
            text=True, timeout=300,
            env=dict(os.environ, SW_ALS_KERNELS=kernels,
                     PYTHONPATH=os.path.join(root, "python")))
        assert r.returncode == 0, r.stderr[-3000:]
        out.append(r.stdout.strip())
    assert len(out[0]) == 64 and out[0] == out[1] == out[2]


def test_recommend_matches_brute_force(rng):
    R = interactions(rng, n_users=80, n_items=300, density=0.05)
    est = sw.ALS(factors=12, iterations=5, random_state=3).fit(R)
    U, V = est.user_factors.astype(np.float64), est.item_factors.astype(
        np.float64)
    ids, scores = est.recommend(np.arange(80), N=7)
    for u in range(80):
        s = U[u] @ V.T
        s[R.indices[R.indptr[u]:R.indptr[u + 1]]] = -np.inf
        order = np.lexsort((np.arange(300), -s))[:7]
        assert list(ids[u]) == list(order)
        np.testing.assert_allclose(scores[u], s[order], rtol=1e-5)
    # one user at a time gives the same bits as the batch
    one_ids, one_scores = est.recommend(5, N=7)
    assert list(one_ids) == list(ids[5])
    assert one_scores.tobytes() == scores[5].tobytes()
    # and a (user, item) pair scores the same bits again
    assert est.predict([5], [ids[5][0]]).astype(np.float32)[0] == \
        scores[5][0]
    # filters
    ids2, _ = est.recommend(5, N=7, filter_already_liked=False)
    assert set(ids2) != set(ids[5]) or R[5].nnz == 0
    banned = ids[5][:3]
    ids3, _ = est.recommend(5, N=7, filter_items=banned)
    assert not set(banned) & set(ids3)
    cands = np.arange(0, 300, 3)
    ids4, _ = est.recommend(5, N=7, items=cands)
    assert set(ids4) <= set(cands)
    ids5, sc5 = est.recommend(5, N=400)           # fewer than N available
    assert len(ids5) == 300 - R[5].nnz and np.all(np.isfinite(sc5))


def test_unknown_ids_policy(rng):
    R = interactions(rng)
    est = sw.ALS(factors=4, iterations=2, random_state=0).fit(R)
    ids, scores = est.recommend([1, 999], N=3)
    assert list(ids[1]) == [-1, -1, -1] and np.isnan(scores[1]).all()
    # one id alone: the same row, not an empty answer
    one, sc = est.recommend(999, N=3)
    assert list(one) == [-1, -1, -1] and np.isnan(sc).all()
    est.unknown = "drop"
    one, sc = est.recommend(999, N=3)
    assert len(one) == 0 and len(sc) == 0
    ids, scores, kept = est.recommend([1, 999], N=3)
    assert list(kept) == [1] and ids.shape == (1, 3)
    est.unknown = "zero"
    ids, scores = est.recommend([999], N=3, filter_already_liked=False)
    assert np.all(scores == 0)
    est.unknown = "raise"
    with pytest.raises(sw.InvalidArgument, match="not in the model"):
        est.recommend([999], N=3)
    est.unknown = "nan"
    assert np.isnan(est.predict([999], [0])[0])


def test_similar_items_is_cosine(rng):
    R = interactions(rng, n_users=100, n_items=50, density=0.1)
    est = sw.ALS(factors=8, iterations=4, random_state=2).fit(R)
    V = est.item_factors.astype(np.float64)
    norms = np.linalg.norm(V, axis=1)
    norms[norms == 0] = 1
    cos = (V @ V[4]) / (norms * norms[4])
    ids, scores = est.similar_items(4, N=5)
    assert ids[0] == 4 and scores[0] == pytest.approx(1.0, abs=1e-5)
    assert list(ids) == list(np.lexsort((np.arange(50), -cos))[:5])
    uid, _ = est.similar_users(np.array([0, 1]), N=3)
    assert uid.shape == (2, 3) and uid[0][0] == 0


def test_fold_in_and_partial_fit(rng, tmp_path):
    R = interactions(rng, n_users=100, n_items=60, density=0.1)
    est = sw.ALS(factors=6, iterations=6, regularization=0.1,
                 random_state=4).fit(R)
    f = est.recalculate_user(2, R[2])
    want = reference.als_solve_exact(R[2], est.item_factors, 0.1)[0]
    np.testing.assert_allclose(f, want, rtol=1e-3, atol=1e-5)
    # a brand-new user served by folding in
    new_row = R[10]
    ids, _ = est.recommend(0, user_items=new_row, recalculate_user=True, N=5)
    assert len(ids) == 5 and not set(ids) & set(new_row.indices)
    # grow the model with two new users
    before = est.n_users
    est.partial_fit_users([before, before + 1], R[[10, 11]])
    assert est.n_users == before + 2
    np.testing.assert_allclose(est.user_factors[before],
                               est.recalculate_user(0, R[10]), rtol=1e-6)
    est.partial_fit_items([3], R.T.tocsr()[3])
    with pytest.raises(sw.ShapeError):
        est.partial_fit_users([1, 2], R[[1]])
    # a grown model saves and loads, and its new users have nothing kept
    path = tmp_path / "grown.swm"
    est.save(path)
    back = sw.load(path)
    assert back.n_users == before + 2
    ids, _ = back.recommend(before, N=60)
    assert len(ids) == 60


def test_metrics_match_implicits_definitions(rng):
    R = interactions(rng, n_users=150, n_items=80, density=0.12)
    train, test = train_test_split(R, 0.8, random_state=5)
    est = sw.ALS(factors=8, iterations=5, random_state=0).fit(train)
    got = ranking_metrics_at_k(est, train, test, K=10)
    recs, _ = est.recommend(np.arange(150), N=10, user_items=train)
    want = reference.ranking_metrics(recs.tolist(), test, 80, 10)
    for key in ("precision", "map", "ndcg", "auc"):
        assert got[key] == pytest.approx(want[key], rel=1e-12), key
    assert got["users"] == int((np.diff(test.indptr) > 0).sum())


def test_splits(rng):
    R = interactions(rng, n_users=200, n_items=100, density=0.1)
    a_tr, a_te = train_test_split(R, 0.8, random_state=1)
    b_tr, b_te = train_test_split(R, 0.8, random_state=1)
    assert (a_te != b_te).nnz == 0 and (a_tr + a_te != R).nnz == 0
    assert 0.15 < a_te.nnz / R.nnz < 0.25
    c_tr, c_te = train_test_split(R, 0.8, random_state=2)
    assert (c_te != a_te).nnz > 0
    tr, te = leave_k_out_split(R, K=2, random_state=0)
    per_user = np.diff(te.indptr)
    counts = np.diff(R.indptr)
    assert np.all(per_user[counts > 2] == 2) and np.all(per_user[counts <= 2]
                                                       == 0)
    assert (tr + te != R).nnz == 0


def test_bad_input_is_refused(rng):
    R = interactions(rng)
    bad = R.copy()
    bad.data[0] = np.nan
    with pytest.raises(sw.NumericError, match="value is nan"):
        sw.ALS(iterations=1).fit(bad)
    neg = R.copy()
    neg.data[0] = -1
    with pytest.raises(sw.InvalidArgument, match="must be >= 0"):
        sw.ALS(iterations=1).fit(neg)
    sw.ALS(iterations=1, explicit=True, factors=2).fit(neg)   # ratings: fine
    # the fast pass over all values finds a fault anywhere; the message
    # names its row and column, in float64 and float32 alike
    for dtype in (np.float64, np.float32):
        last = R.astype(dtype)
        last.data[-1] = np.inf
        row = int(np.searchsorted(last.indptr, last.nnz - 1, side="right")) - 1
        with pytest.raises(sw.NumericError,
                           match=f"user_items: row {row}, column "
                                 f"{last.indices[-1]}: value is inf"):
            sw.ALS(iterations=1).fit(last)
        mid = R.astype(dtype)
        e = mid.nnz // 2
        mid.data[e] = -2
        row = int(np.searchsorted(mid.indptr, e, side="right")) - 1
        with pytest.raises(sw.InvalidArgument,
                           match=f"row {row}, column {mid.indices[e]}: -2; "
                                 "implicit feedback must be >= 0"):
            sw.ALS(iterations=1).fit(mid)
    with pytest.raises(sw.InvalidArgument, match="als.factors"):
        sw.ALS(factors=0).fit(R)
    with pytest.raises(TypeError, match="scipy.sparse"):
        sw.ALS().fit(R.toarray())
    est = sw.ALS(factors=3, iterations=1, random_state=0).fit(R)
    with pytest.raises(sw.InvalidArgument, match="outside"):
        est.similar_items(10_000)
    with pytest.raises(sw.StateError, match="not fitted"):
        sw.ALS().recommend(0)
    # no regularization on an explicit problem: a singular system
    with pytest.raises(sw.NumericError, match="positive definite"):
        sw.ALS(factors=8, regularization=0.0, explicit=True,
               iterations=1).fit(R)


def test_int64_indices_and_float32_data(rng):
    R = interactions(rng, n_users=70, n_items=50)
    R64 = sp.csr_matrix((R.data.astype(np.float32), R.indices.astype(np.int64),
                         R.indptr.astype(np.int64)), shape=R.shape)
    a = sw.ALS(factors=5, iterations=3, random_state=9).fit(R)
    b = sw.ALS(factors=5, iterations=3, random_state=9).fit(R64)
    assert a.user_factors.tobytes() == b.user_factors.tobytes()


def test_save_load_and_runner(rng, tmp_path, serve):
    R = interactions(rng, n_users=90, n_items=70)
    est = sw.ALS(factors=6, iterations=4, random_state=0).fit(R)
    path = tmp_path / "als.swm"
    est.save(path)
    back = sw.load(path)
    assert back.user_factors.tobytes() == est.user_factors.tobytes()
    assert "ALS, implicit feedback" in sw.inspect(path)
    users = [0, 5, 3, 89]
    out = subprocess.run([serve, str(path), "--recommend", "5"],
                         input="".join(f"{u}\n" for u in users) + "90\n",
                         capture_output=True, text=True)
    assert out.returncode == 1 and "line 5" in out.stderr
    lines = out.stdout.split("\n")
    ids, scores = back.recommend(np.array(users), N=5)
    for row, line in enumerate(lines[:4]):
        pairs = [p.split(":") for p in line.split(",")] if line else []
        got_ids = [int(i) for i, _ in pairs]
        got = np.array([float(s) for _, s in pairs], dtype=np.float32)
        valid = ids[row] >= 0
        assert got_ids == list(ids[row][valid])
        assert got.tobytes() == scores[row][valid].tobytes()
    assert lines[4] == ""


def test_implicits_call_style_and_the_older_one_agree():
    R = sp.random(60, 40, density=0.2, format="csr", random_state=4)
    est = sw.ALS(factors=4, iterations=3, random_state=0).fit(R)
    # implicit: recommend(userid, user_items, N=...), user_items the row
    a_ids, a_sc = est.recommend(3, R[3], N=5)
    b_ids, b_sc = est.recommend(3, N=5, user_items=R[3])
    assert a_ids.tolist() == b_ids.tolist()
    assert a_sc.tobytes() == b_sc.tobytes()
    assert not set(a_ids.tolist()) & set(R[3].indices.tolist())
    # the older recommend(userid, N) still means N
    c_ids, c_sc = est.recommend(3, 5)
    d_ids, d_sc = est.recommend(3, N=5)
    assert c_ids.tolist() == d_ids.tolist() and len(c_ids) == 5


def test_kaizen_scale_benchmark_runs_end_to_end_at_ci_size(tmp_path):
    """benchmarks/kaizen_scale.py at S = 0.001 (CI's size): the log is
    written as HDF5, the matrix built out of core holds every event once,
    ALS fits and every customer's top 1250 lands in shards that the
    script checks against recommend()."""
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))))
    r = subprocess.run([sys.executable,
                        os.path.join(root, "benchmarks", "kaizen_scale.py"),
                        "--scale", "0.001", "--iterations", "3",
                        "--dir", str(tmp_path), "--keep"],
                       env=dict(os.environ,
                                PYTHONPATH=os.path.join(root, "python")),
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "| **total** |" in r.stdout
    import h5py
    with h5py.File(tmp_path / "bets.h5", "r") as f:
        assert f["events/bet/customer"].shape == (600_000,)
    from streamwise.recommend import read_topn
    users, items, _ = read_topn(tmp_path / "topn")
    assert items.shape == (12649, 1250) and len(users) == 12649
