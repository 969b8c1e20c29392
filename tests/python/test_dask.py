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
