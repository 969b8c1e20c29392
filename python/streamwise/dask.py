"""Training beyond one process on Dask (``dask.distributed``): the same
model bytes at any number of workers.

    from dask.distributed import Client, LocalCluster
    from streamwise.dask import ALS
    with Client(LocalCluster(n_workers=3)) as client:
        als = ALS(factors=64, iterations=15, random_state=1).fit(R, client)
    # als is a streamwise.ALS: recommend, save, promote as usual

ALS: the interactions are cut into blocks of rows (users for one
half-sweep, items for the other), each block sent once to one worker and
kept there; every half-sweep broadcasts the other side's factors, each
worker solves its blocks in the C core (``sw_als_solve_block``, row for
row what a one-process sweep computes) and the driver gathers the new
factors. Rows are solved independently against a Gram matrix whose sum
order is fixed, so the factors are identical, bit for bit, to
``streamwise.ALS().fit`` on one process, whatever the number of workers or
blocks. Per sweep it moves both sides' factors twice (a broadcast and a
gather of n_users x k and n_items x k float32s); ``transfer_`` says how
many bytes each sweep broadcast (to every worker) and gathered, and how
long it took.

A worker that dies, or a sweep that does not finish within ``timeout``
seconds, fails the fit with ``streamwise.IOError`` naming the workers that
held the unfinished blocks; the factors of the last whole sweep are kept
(``iterations_done_``), and ``fit(..., init=model)`` continues from them.

streamwise adds no cluster manager: any ``dask.distributed`` cluster (a
LocalCluster, dask-jobqueue, Kubernetes) runs it, as it runs LightGBM's
and XGBoost's Dask fits.
"""
from __future__ import annotations

import time
from typing import Any

import numpy as np

from . import _sw
from .recommend import ALS as _ALS
from .recommend import _csr

__all__ = ["ALS"]


def _solve_block(conf, rows, other, factors):
    """On a worker: one block's new factors (conf gives the settings; a
    one-by-one model holds nothing else)."""
    return _sw.als_new(conf, 1, 1).als_solve_block(rows, other, factors)


class ALS(_ALS):
    """streamwise.ALS fitted on a Dask cluster; the same parameters, and
    the same factors bit for bit. ``block_rows`` (default: a quarter of an
    even share per worker) sets how many rows a task solves."""

    def __init__(self, *args: Any, block_rows: int | None = None,
                 timeout: float = 600.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.block_rows = block_rows
        self.timeout = timeout

    def fit(self, user_items, client=None, init: _ALS | None = None,
            callback=None, show_progress: bool = False,
            calculate_training_loss: bool = False) -> "ALS":
        """Fit on a users x items scipy sparse matrix, on the workers of
        client (default: the current dask.distributed client). init: a
        fitted ALS of the same shape to continue from (a fit a worker's
        death cut short). callback(iteration, elapsed_seconds, None) runs
        after every sweep; the training loss is not computed here (fit
        streamwise.ALS on one process for it)."""
        from distributed import get_client
        if calculate_training_loss:
            raise _sw.InvalidArgument(
                "dask ALS: calculate_training_loss is not computed on a "
                "cluster; streamwise.ALS gives the same factors with it")
        client = client or get_client()
        R = _csr(user_items, "user_items")
        n_users, n_items = R.shape
        conf = self._conf()
        model = _sw.als_new(conf, n_users, n_items)
        if init is not None:
            for side, F in ((_sw.USERS, init.user_factors),
                            (_sw.ITEMS, init.item_factors)):
                model.als_set_factors(side, F)
        X = model.als_factors(_sw.USERS)
        Y = model.als_factors(_sw.ITEMS)
        workers = sorted(client.scheduler_info()["workers"])
        if not workers:
            raise _sw.IOError("dask ALS: the cluster has no workers")
        users = self._place(client, workers, R, X)
        items = self._place(client, workers, R.T.tocsr(), Y)
        self._model = model
        self.transfer_ = []
        self.iterations_done_ = 0
        self.loss_ = None
        start = time.perf_counter()
        for it in range(int(self.iterations)):
            t0 = time.perf_counter()
            users, X = self._half(client, conf, users, Y, it, "users")
            items, Y = self._half(client, conf, items, X, it, "items")
            # the last whole sweep is the model: a later failure keeps it
            model.als_set_factors(_sw.USERS, X)
            model.als_set_factors(_sw.ITEMS, Y)
            self.iterations_done_ = it + 1
            self.transfer_.append({
                "sweep": it,
                "broadcast_bytes": (X.nbytes + Y.nbytes) * len(workers),
                "gathered_bytes": X.nbytes + Y.nbytes,
                "seconds": time.perf_counter() - t0})
            if show_progress:
                print(f"sweep {it + 1}/{self.iterations}: "
                      f"{self.transfer_[-1]['seconds']:.2f} s")
            if callback is not None:
                callback(it, time.perf_counter() - start, None)
        if self.keep_liked:
            model.als_set_liked(R)
        return self

    def _place(self, client, workers, M, F):
        """Cut M (and its rows' factors F) into blocks, each sent to one
        worker and kept there: [(lo, hi, worker, rows future, factors
        future)]."""
        n = M.shape[0]
        size = self.block_rows or max(1, -(-n // (4 * len(workers))))
        blocks = []
        for b, lo in enumerate(range(0, n, size)):
            hi = min(n, lo + size)
            w = workers[b % len(workers)]
            rows, fac = client.scatter([M[lo:hi], F[lo:hi]], workers=[w],
                                       hash=False)
            blocks.append((lo, hi, w, rows, fac))
        return blocks

    def _half(self, client, conf, blocks, other, it, side):
        from distributed import wait
        futs, cause = [], None
        try:
            other_f = client.scatter(other, broadcast=True, hash=False,
                                     timeout=self.timeout)
            futs = [client.submit(_solve_block, conf, rows, other_f, fac,
                                  workers=[w], allow_other_workers=False,
                                  pure=False)
                    for lo, hi, w, rows, fac in blocks]
            wait(futs, timeout=self.timeout)
        except Exception as e:          # noqa: BLE001 - named below
            cause = e
        bad = [b for b, f in zip(blocks, futs) if f.status != "finished"]
        if cause is None and not bad and len(futs) == len(blocks):
            try:
                new = client.gather(futs)
            except Exception as e:      # noqa: BLE001 - named below
                cause = e
            else:
                return ([(lo, hi, w, rows, f) for (lo, hi, w, rows, _), f
                         in zip(blocks, futs)], np.concatenate(new))
        for f in futs:
            f.cancel()
        try:
            alive = set(client.scheduler_info()["workers"])
        except Exception:               # noqa: BLE001 - the scheduler too
            alive = set()
        gone = sorted({b[2] for b in blocks} - alive)
        stuck = sorted({b[2] for b in bad})
        who = gone or stuck or sorted({b[2] for b in blocks})
        why = (f"{type(cause).__name__}: {cause}" if cause is not None else
               f"{len(bad)} of {len(blocks)} blocks unfinished")
        raise _sw.IOError(
            f"dask ALS: sweep {it + 1} ({side}) did not finish within "
            f"{self.timeout:g} s on worker(s) {', '.join(who)}"
            f"{' (gone)' if gone else ''}: {why}; the factors of sweep "
            f"{self.iterations_done_} are kept: fit(..., init=this model) "
            f"continues from them")
