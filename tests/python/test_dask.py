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

from streamwise.dask import ALS  # noqa: E402


def interactions(n_users=2000, n_items=600, seed=2):
    R = sp.random(n_users, n_items, density=0.01, random_state=seed,
                  format="csr")
    R.data = np.ceil(R.data * 5)
    return R


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

        def kill_after_first_sweep():
            deadline = time.monotonic() + 60
            while getattr(d, "iterations_done_", 0) < 1:
                if time.monotonic() > deadline:
                    return
                time.sleep(0.005)
            os.kill(pids[victim], signal.SIGKILL)
        killer = threading.Thread(target=kill_after_first_sweep)
        killer.start()
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
