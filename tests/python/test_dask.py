"""streamwise.dask: fits on a Dask cluster (LocalCluster, worker
processes on loopback) give the one-process model's bits at any number of
workers, and a worker that dies fails the fit in bounded time, naming it,
with the last whole sweep kept to continue from."""
import os
import signal
import threading
import time

import numpy as np
import pytest
import scipy.sparse as sp

import streamwise as sw

distributed = pytest.importorskip("distributed")   # Debian python3-distributed

from streamwise.dask import ALS, GBDTClassifier, GBDTRegressor  # noqa: E402


def interactions(n_users=2000, n_items=600, seed=2):
    R = sp.random(n_users, n_items, density=0.01, random_state=seed,
                  format="csr")
    R.data = np.ceil(R.data * 5)
    return R


def signal_when(ready, pid, sig, after=0.0):
    """A thread that sends sig to pid once ready() holds (after a further
    `after` seconds), giving up after 120 s."""
    def run():
        deadline = time.monotonic() + 120
        while not ready():
            if time.monotonic() > deadline:
                return
            time.sleep(0.005)
        time.sleep(after)
        os.kill(pid, sig)
    t = threading.Thread(target=run)
    t.start()
    return t


def cluster(n):
    return distributed.LocalCluster(n_workers=n, threads_per_worker=1,
                                    processes=True, dashboard_address=None,
                                    silence_logs=50)


@pytest.mark.parametrize("n_workers", [1, 2, 3])
def test_als_factors_are_the_one_process_bits(n_workers):
    R = interactions()
    want = {s: sw.ALS(factors=12, iterations=3, random_state=5,
                      solver=s).fit(R) for s in ("cg", "cholesky")}
    with cluster(n_workers) as c, distributed.Client(c) as client:
        for solver, one in want.items():
            for block_rows in (None, 97):
                d = ALS(factors=12, iterations=3, random_state=5,
                        solver=solver, block_rows=block_rows).fit(R, client)
                assert d.user_factors.tobytes() == one.user_factors.tobytes()
                assert d.item_factors.tobytes() == one.item_factors.tobytes()
        assert len(d.transfer_) == 3
        t = d.transfer_[0]
        assert t["gathered_bytes"] == (2000 + 600) * 12 * 4
        assert t["broadcast_bytes"] == t["gathered_bytes"] * n_workers
    # a model like any other: it recommends, saves and loads
    top, _ = d.recommend(np.arange(5), R[:5], N=3)
    assert top.shape == (5, 3)


def test_a_dead_worker_fails_the_fit_in_time_and_it_continues():
    R = interactions(4000, 900)
    full = sw.ALS(factors=16, iterations=30, random_state=3).fit(R)
    with cluster(2) as c, distributed.Client(c) as client:
        pids = client.run(os.getpid)
        victim = sorted(pids)[1]
        d = ALS(factors=16, iterations=30, random_state=3, timeout=8)
        killer = signal_when(lambda: getattr(d, "iterations_done_", 0) >= 1,
                             pids[victim], signal.SIGKILL)
        t0 = time.monotonic()
        with pytest.raises(sw.IOError, match="did not finish within 8 s") \
                as e:
            d.fit(R, client)
        killer.join()
        assert time.monotonic() - t0 < 60
        assert victim in str(e.value)
        done = d.iterations_done_
        assert 1 <= done < 30
        # the nanny brought a worker back: continue from the kept sweeps
        client.wait_for_workers(2, timeout=30)
        rest = ALS(factors=16, iterations=30 - done, random_state=3).fit(
            R, client, init=d)
    assert rest.user_factors.tobytes() == full.user_factors.tobytes()
    assert rest.item_factors.tobytes() == full.item_factors.tobytes()


def test_loss_is_refused_by_name():
    with pytest.raises(sw.InvalidArgument, match="calculate_training_loss"):
        ALS().fit(interactions(), client=object(),
                  calculate_training_loss=True)


def test_top_n_for_every_user_into_shards_on_the_workers(tmp_path):
    from streamwise.recommend import read_topn
    R = interactions(3000, 700)
    als = sw.ALS(factors=8, iterations=2, random_state=1).fit(R)
    want_items, want_scores = als.recommend(np.arange(3000), N=25)
    with cluster(2) as c, distributed.Client(c) as client:
        shards = als.recommend_all(tmp_path / "topn", N=25, block_users=400,
                                   client=client)
    assert len(shards) == 8 and all(os.path.exists(s) for s in shards)
    users, items, scores = read_topn(tmp_path / "topn")
    assert users.tolist() == list(range(3000))
    assert (items == want_items).all()
    assert np.array_equal(scores, want_scores, equal_nan=True)
    # what a user already has is never recommended
    for u in range(0, 3000, 97):
        assert not set(R[u].indices) & set(items[u][items[u] >= 0])
    # another run's directory is refused, not mixed
    with pytest.raises(sw.InvalidArgument, match="another run"):
        als.recommend_all(tmp_path / "topn", N=10, block_users=400)


def test_top_n_restarts_after_a_kill_without_duplicates(tmp_path):
    """A run killed with SIGKILL mid-way leaves whole shards (and maybe a
    temporary one); the rerun keeps those, writes the rest once."""
    import subprocess
    import sys
    import textwrap

    from streamwise.recommend import read_topn
    R = interactions(6000, 800)
    sp.save_npz(tmp_path / "R.npz", R)
    sw.ALS(factors=8, iterations=2, random_state=4).fit(R).save(
        tmp_path / "als.swm")
    out = tmp_path / "topn"
    code = textwrap.dedent(f"""
        import time
        import scipy.sparse as sp
        import streamwise as sw
        import streamwise.recommend as rec
        slow_down = rec._topn_shard
        def slow(*args):
            time.sleep(0.1)
            return slow_down(*args)
        rec._topn_shard = slow
        als = sw.load({str(tmp_path / "als.swm")!r})
        als.recommend_all({str(out)!r}, N=20, block_users=250,
                          user_items=sp.load_npz({str(tmp_path / "R.npz")!r}))
    """)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    p = subprocess.Popen([sys.executable, "-c", code], env=env)
    deadline = time.monotonic() + 60
    while len([n for n in os.listdir(out) if n.endswith(".h5")]
              if out.exists() else []) < 5:
        assert time.monotonic() < deadline and p.poll() is None
        time.sleep(0.01)
    p.kill()
    p.wait(timeout=30)
    before = {n: os.stat(out / n).st_mtime_ns for n in os.listdir(out)
              if n.endswith(".h5")}
    assert 5 <= len(before) < 24
    with pytest.raises(sw.FormatError, match="did not finish"):
        read_topn(out)
    als = sw.load(tmp_path / "als.swm")
    with cluster(2) as c, distributed.Client(c) as client:
        als.recommend_all(out, N=20, block_users=250, user_items=R,
                          client=client)
    for n, t in before.items():                  # kept, not written again
        assert os.stat(out / n).st_mtime_ns == t
    assert not [n for n in os.listdir(out) if ".tmp." in n]
    users, items, scores = read_topn(out)
    want_items, want_scores = als.recommend(np.arange(6000), R, N=20)
    assert users.tolist() == list(range(6000))
    assert (items == want_items).all()
    assert np.array_equal(scores, want_scores, equal_nan=True)


# ---- GBDT ------------------------------------------------------------------

def gbdt_data(n=12000, f=7, seed=4):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, f))
    X[rng.random(X.shape) < 0.05] = np.nan
    z = np.nan_to_num(X[:, 0]) + 0.5 * np.nan_to_num(X[:, 1]) ** 2
    yb = (z + rng.normal(size=n) > 0.5).astype(int)
    yr = 3.3 * z + np.sin(np.nan_to_num(X[:, 2])) + rng.normal(size=n)
    ym = np.digitize(z + 0.3 * rng.normal(size=n), [0.0, 1.0]) * 10 + 1
    return X, yb, yr, ym


def model_id(est):
    """The header's model id: the SHA-256 of the MODEL section (the files
    of two fits differ only in their creation time)."""
    return est._model.to_bytes()[56:72]


# (estimator, labels, parameters): bagging, feature fraction and a bin
# sample smaller than the rows make every rank draw by global row number
GBDT_CASES = {
    "binary": (GBDTClassifier, 1, dict(n_estimators=12, num_leaves=15,
                                       bagging_fraction=0.7,
                                       feature_fraction=0.8,
                                       random_state=3)),
    "regression": (GBDTRegressor, 2, dict(n_estimators=12, n_jobs=2)),
    "multiclass": (GBDTClassifier, 3, dict(n_estimators=5, num_leaves=7)),
}


@pytest.mark.parametrize("n_workers", [1, 2, 3])
def test_gbdt_model_bytes_are_the_one_process_bytes(n_workers):
    da = pytest.importorskip("dask.array")
    data = gbdt_data()
    X = data[0]
    ranks = set()       # Dask places the chunks: ranks <= workers
    with cluster(n_workers) as c, distributed.Client(c) as client:
        for name, (cls, which, params) in GBDT_CASES.items():
            y = data[which]
            local = getattr(sw, cls.__name__)(**params).fit(X, y)
            for chunks in (5000, 1700):     # parts per worker: 1 or several
                d = cls(**params).fit(da.from_array(X, chunks=(chunks, 3)),
                                      da.from_array(y, chunks=chunks),
                                      client=client)
                assert model_id(d) == model_id(local), (name, chunks)
                ranks.add(d.transfer_[0]["ranks"])
            if name != "regression":
                assert list(d.classes_) == list(local.classes_)
            # predictions: numpy in, numpy out; Dask in, Dask out
            p = d.predict(X[:50])
            assert p.tobytes() == local.predict(X[:50]).tobytes()
            lazy = d.predict(da.from_array(X[:50], chunks=20))
            assert lazy.dtype == p.dtype        # Dask's meta says it too
            assert lazy.compute().tobytes() == p.tobytes()
    assert max(ranks) <= n_workers
    assert max(ranks) > 1 or n_workers == 1
    t = d.transfer_[0]
    if t["ranks"] > 1:
        assert t["bytes_per_tree"] > 0 and t["collective_calls"] > 0
    else:
        assert t["bytes_per_tree"] == 0


def test_gbdt_takes_dask_dataframes_and_validation_sets(tmp_path):
    dd = pytest.importorskip("dask.dataframe")
    pd = pytest.importorskip("pandas")
    X, yb, _, _ = gbdt_data(8000, 5)
    cols = [f"f{i}" for i in range(5)]
    df = pd.DataFrame(X, columns=cols)
    params = dict(n_estimators=30, random_state=1)
    Xv, yv = X[:1000], yb[:1000]
    local = sw.GBDTClassifier(**params).fit(
        df, yb, eval_set=[(Xv, yv)], early_stopping_rounds=3,
        eval_metric="auc")
    with cluster(2) as c, distributed.Client(c) as client:
        d = GBDTClassifier(**params).fit(
            dd.from_pandas(df, npartitions=4),
            dd.from_pandas(pd.Series(yb), npartitions=4),
            eval_set=[(Xv, yv)], early_stopping_rounds=3, eval_metric="auc",
            client=client)
    assert model_id(d) == model_id(local)
    assert d.feature_names_in_ == cols
    assert d.best_iteration_ == local.best_iteration_
    assert d.evals_result_ == local.evals_result_
    # saved, it loads as streamwise's own estimator
    d.save(tmp_path / "m.swm")
    back = sw.load(tmp_path / "m.swm")
    assert type(back) is sw.GBDTClassifier
    assert back.predict_proba(X[:9]).tobytes() == \
        local.predict_proba(X[:9]).tobytes()


def test_gbdt_bad_labels_on_a_worker_raise_as_one_process_would():
    da = pytest.importorskip("dask.array")
    X, _, yr, _ = gbdt_data(4000, 4)
    yr[3500] = np.nan
    with cluster(2) as c, distributed.Client(c) as client:
        t0 = time.monotonic()
        with pytest.raises(sw.NumericError, match="label"):
            GBDTRegressor(n_estimators=3, timeout=20).fit(
                da.from_array(X, chunks=2000), da.from_array(yr, chunks=2000),
                client=client)
        assert time.monotonic() - t0 < 15     # not the 20 s timeout


def test_gbdt_a_killed_worker_fails_in_time_and_the_fit_continues():
    X, yb, _, _ = gbdt_data(60000, 8)
    params = dict(n_estimators=240, num_leaves=31, random_state=7)
    full = sw.GBDTClassifier(**params).fit(X, yb)
    with cluster(2) as c, distributed.Client(c) as client:
        pids = client.run(os.getpid)
        victim = sorted(pids)[1]
        d = GBDTClassifier(**params, timeout=10, checkpoint_every=20)
        killer = signal_when(lambda: getattr(d, "rounds_done_", 0) >= 20,
                             pids[victim], signal.SIGKILL)
        t0 = time.monotonic()
        with pytest.raises(sw.IOError, match="left the fit") as e:
            d.fit(X, yb, client=client)
        killer.join()
        assert time.monotonic() - t0 < 100
        assert victim in str(e.value) and "(gone)" in str(e.value)
        done = d.rounds_done_
        assert 20 <= done < 240 and done % 20 == 0
        assert d.n_trees_ == done
        # the nanny brought a worker back: continue from the kept rounds
        client.wait_for_workers(2, timeout=30)
        rest = GBDTClassifier(**{**params, "n_estimators": 240 - done}).fit(
            X, yb, init_model=d, client=client)
    assert model_id(rest) == model_id(full)


def test_gbdt_a_stalled_worker_fails_within_the_timeout():
    X, yb, _, _ = gbdt_data(60000, 8)
    with cluster(2) as c, distributed.Client(c) as client:
        pids = client.run(os.getpid)
        victim = sorted(pids)[0]
        d = GBDTClassifier(n_estimators=400, timeout=3, checkpoint_every=10)
        # 0.2 s into the next stretch, most times
        stopper = signal_when(lambda: getattr(d, "rounds_done_", 0) >= 10,
                              pids[victim], signal.SIGSTOP, after=0.2)
        t0 = time.monotonic()
        try:
            with pytest.raises(sw.IOError, match="left the fit") as e:
                d.fit(X, yb, client=client)
            assert time.monotonic() - t0 < 60
        finally:
            stopper.join()
            try:
                os.kill(pids[victim], signal.SIGCONT)
            except ProcessLookupError:      # the nanny replaced it
                pass
        assert victim in str(e.value) and "(stalled)" in str(e.value)
        # in a stretch (the ring's timeout) or while the next stretch's
        # ring is made: either way after the 3 s given
        assert "timeout 3 s" in str(e.value) or "within 3 s" in str(e.value)
