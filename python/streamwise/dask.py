"""Training beyond one process on Dask (``dask.distributed``): the same
model bytes at any number of workers.

    from dask.distributed import Client, LocalCluster
    from streamwise.dask import ALS, GBDTClassifier
    with Client(LocalCluster(n_workers=3)) as client:
        als = ALS(factors=64, iterations=15, random_state=1).fit(R, client)
        clf = GBDTClassifier(n_estimators=200).fit(X, y, client=client)
    # als is a streamwise.ALS, clf a streamwise.GBDTClassifier (to_local())

GBDT: X and y are Dask arrays or DataFrames (numpy and pandas are cut into
one part per worker). Every worker keeps its partitions and runs one rank
of ``sw_gbdt_fit_shard`` in the C core on them: it bins its rows with the
edges of a bin sample drawn by global row number and gathered from every
rank, builds its histograms, and the ranks sum them over a ring of TCP
connections (``sw_coll``: the workers connect to each other directly,
addressed through Dask, as LightGBM's Dask fit does). The sums are of
fixed-point integers, exact in any order, and bags are drawn by row
number: the model is the one ``streamwise.GBDTClassifier().fit`` gives on
the whole data in one process, byte for byte, at any number of workers.
``transfer_`` says how many bytes a rank sent per tree and how long the
collective took. Every wait in the ring is bounded by ``timeout``: a
worker that dies or stalls fails the fit with ``streamwise.IOError``
naming it; with ``checkpoint_every=k`` the fit runs in stretches of k
rounds (continued training, the same bytes as one stretch) and keeps the
last whole stretch to continue from.

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

import inspect
import os
import secrets
import socket
import struct
import time
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:
    from typing import Self

import numpy as np

from . import _sw
from . import gbdt as _gbdt
from .recommend import ALS as _ALS
from .recommend import _csr

__all__ = ["ALS", "GBDTClassifier", "GBDTRegressor"]


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

    def fit(  # type: ignore[override]
            self, user_items: Any, client: Any = None,
            init: _ALS | None = None,
            callback: Any = None, show_progress: bool = False,
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


# ---- GBDT ----------------------------------------------------------------

# On a worker: the listening socket of each fit's ring, from _listen until
# the fit's task takes it (or _forget drops it).
_LISTENERS: dict[str, socket.socket] = {}


def _listen(token, dask_worker=None):
    """On a worker (client.run): a socket the previous rank connects to,
    on the address the worker itself listens on."""
    from distributed.comm import get_address_host
    host = get_address_host(dask_worker.address)
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    s.bind((host, 0))
    s.listen(4)
    _LISTENERS[token] = s
    return host, s.getsockname()[1]


async def _forget(token):
    """On a worker: drop a fit's listening socket if its task never took
    it (a coroutine: client.run only sends those without waiting)."""
    s = _LISTENERS.pop(token, None)
    if s is not None:
        s.close()


def _hello(token, rank):
    return struct.pack("<16si", bytes.fromhex(token), rank)


def _recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        more = s.recv(n - len(buf))
        if not more:
            raise _sw.IOError("dask GBDT: a rank closed its connection "
                              "while joining the ring")
        buf += more
    return buf


def _join_ring(token, rank, addrs, timeout):
    """Connect to the next rank and accept the previous one: the two
    sockets of this rank's place in the ring (None, None alone)."""
    size = len(addrs)
    if size == 1:
        return None, None
    listener = _LISTENERS.pop(token)
    nxt = prev = None
    nrank = (rank + 1) % size
    deadline = time.monotonic() + timeout
    try:
        while nxt is None:
            try:
                nxt = socket.create_connection(tuple(addrs[nrank]),
                                               timeout=timeout)
            except OSError as e:
                if time.monotonic() > deadline:
                    raise _sw.IOError(
                        f"dask GBDT: rank {rank} cannot reach rank {nrank} "
                        f"at {addrs[nrank][0]}:{addrs[nrank][1]}: {e}") \
                        from None
                time.sleep(0.05)
        nxt.sendall(_hello(token, rank))
        listener.settimeout(timeout)
        try:
            prev, _ = listener.accept()
        except socket.timeout:
            raise _sw.IOError(
                f"dask GBDT: rank {rank}: rank {(rank - 1) % size} did not "
                f"connect within {timeout:g} s") from None
        prev.settimeout(timeout)
        if _recv_exact(prev, 20) != _hello(token, (rank - 1) % size):
            raise _sw.IOError(f"dask GBDT: rank {rank}: a stranger "
                              f"connected in place of rank "
                              f"{(rank - 1) % size}")
        for s in (prev, nxt):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return prev, nxt
    except BaseException:
        for s in (prev, nxt):
            if s is not None:
                s.close()
        raise
    finally:
        listener.close()


def _alive(client, workers, settle=0.0):
    """The workers the scheduler still knows; with settle, waits up to
    that many seconds for one that failed to answer to be noticed gone."""
    deadline = time.monotonic() + settle
    while True:
        try:
            alive = set(client.scheduler_info()["workers"])
        except Exception:                   # noqa: BLE001 - scheduler too
            return set()
        if time.monotonic() >= deadline or not set(workers) <= alive:
            return alive
        time.sleep(0.1)


def _listen_all(client, token, workers, timeout, kept):
    """Every worker's ring address, asked of each worker in a thread of
    its own: client.run waits for its workers without bound, and a
    stalled one never answers. A worker that does not answer within
    timeout seconds, or cannot be reached, is named."""
    import concurrent.futures as cf
    pool = cf.ThreadPoolExecutor(len(workers))
    try:
        futs = [pool.submit(client.run, _listen, token, workers=[w])
                for w in workers]
        cf.wait(futs, timeout=timeout)
        failed = [f for f in futs if not f.done() or f.exception()]
        alive = _alive(client, workers, 5.0 if failed else 0.0)
        for rank, (w, f) in enumerate(zip(workers, futs)):
            why = None
            if w not in alive:
                why = "gone"
            elif not f.done():
                why = "stalled"
            elif f.exception() is not None:
                why = "unreachable"
            if why is not None:
                detail = f": {type(f.exception()).__name__}: " \
                    f"{f.exception()}" if f.done() and f.exception() else ""
                raise _sw.IOError(
                    f"dask GBDT: rank {rank} on worker {w} ({why}) left the "
                    f"fit: it did not open its ring socket within "
                    f"{timeout:g} s{detail}{kept}")
        return [f.result()[w] for w, f in zip(workers, futs)]
    finally:
        pool.shutdown(wait=False)


def _local_class(name):
    return getattr(_gbdt, name)


def _gbdt_rank(token, rank, addrs, cls_name, params, classes, conf, rounds,
               xs, ys, starts, valid, init, timeout):
    """On a worker: one rank of the fit over this worker's partitions
    (xs, ys, starting at global rows starts). Returns (model and the
    validation curve on rank 0, the model id, the collective's stats)."""
    est = _local_class(cls_name)(**params)
    if classes is not None:
        est.classes_ = classes
    parts = [_gbdt._matrix(x)[0] for x in xs]
    X = parts[0] if len(parts) == 1 else np.concatenate(parts)
    y = est._labels(np.concatenate([np.asarray(v).ravel() for v in ys]))
    ids = np.concatenate([np.arange(s, s + len(p), dtype=np.int64)
                          for s, p in zip(starts, parts)])
    Xv, yv = valid if valid is not None else (None, None)
    prev, nxt = _join_ring(token, rank, addrs, timeout)
    try:
        with _sw.collective(rank, len(addrs),
                            prev.fileno() if prev else -1,
                            nxt.fileno() if nxt else -1,
                            max(1, int(timeout * 1000))) as c:
            model, curve = _sw.gbdt_fit(conf, X, y, Xv, yv, init, rounds,
                                        None, ids, c)
            stats = c.stats
    finally:
        for s in (prev, nxt):
            if s is not None:
                s.close()
    model_id = model.to_bytes()[56:72]      # the header's: SHA-256 of MODEL
    return (model if rank == 0 else None, curve if rank == 0 else None,
            model_id, stats)


def _is_dask(x):
    return hasattr(x, "dask") and hasattr(x, "__dask_graph__")


def _dask_params(base):
    """base's __init__ signature plus timeout and checkpoint_every, so
    that get_params, clone and repr see them as parameters."""
    sig = inspect.signature(base.__init__)
    extra = [inspect.Parameter("timeout", inspect.Parameter.KEYWORD_ONLY,
                               default=120.0),
             inspect.Parameter("checkpoint_every",
                               inspect.Parameter.KEYWORD_ONLY, default=None)]

    def __init__(self, *args, timeout=120.0, checkpoint_every=None, **kw):
        base.__init__(self, *args, **kw)
        self.timeout = timeout
        self.checkpoint_every = checkpoint_every

    __init__.__signature__ = sig.replace(
        parameters=list(sig.parameters.values()) + extra)
    __init__.__doc__ = base.__init__.__doc__
    return __init__


class _DaskGBDT(_gbdt._GBDT):
    """The fit on a Dask cluster; everything else is the local class's."""
    timeout: float
    checkpoint_every: int | None
    classes_: Any
    rounds_done_: int
    transfer_: list[dict[str, Any]]

    def fit(self, X: Any, y: Any,  # type: ignore[override]
            eval_set: Sequence[tuple[Any, Any]] | None = None,
            early_stopping_rounds: int | None = None,
            init_model: Any = None,
            eval_metric: str | Sequence[str] | None = None,
            client: Any = None) -> Self:
        """Fit on X (a Dask array or DataFrame, or numpy/pandas, cut into
        one part per worker) and y (a Dask array or Series partitioned as
        X, or numpy), on the workers of client (default: the current
        client). eval_set, early_stopping_rounds, init_model and
        eval_metric as streamwise's GBDT (the validation rows go to every
        rank). The model is the one-process fit's, byte for byte."""
        from distributed import get_client
        client = client or get_client()
        if self.checkpoint_every is not None and early_stopping_rounds:
            raise _sw.InvalidArgument(
                "dask GBDT: checkpoint_every cuts the fit into stretches, "
                "early stopping needs it whole; give one")
        parts, cols, first = self._parts(client, X, y)
        base = _local_class(type(self).__name__)
        local = base(**{k: v for k, v in self.get_params().items()
                        if k not in ("timeout", "checkpoint_every")})
        # the labels' classes, from every partition
        if isinstance(local, _gbdt.GBDTClassifier):
            if init_model is not None:
                local.classes_ = init_model.classes_
            else:
                local.classes_ = None
                local.classes_ = self._classes(client, parts)
        classes = getattr(local, "classes_", None)
        Xv = yv = None
        if eval_set:
            if len(eval_set) != 1:
                raise _sw.InvalidArgument("eval_set: one (X, y) pair")
            ev = [e.compute() if _is_dask(e) else e for e in eval_set[0]]
            Xv = _gbdt._matrix(ev[0])[0]
            yv = local._labels(ev[1])
        elif early_stopping_rounds:
            raise _sw.InvalidArgument("early stopping needs an eval_set")
        init = init_model._fitted() if init_model is not None else None
        total = int(self.n_estimators)
        step = int(self.checkpoint_every or total) or total
        self.transfer_ = []
        self.rounds_done_ = 0
        curves = []
        while self.rounds_done_ < total or total == 0:
            rounds = min(step, total - self.rounds_done_)
            conf = local._conf(early_stopping_rounds)
            conf["gbdt.n_estimators"] = str(rounds)
            model, curve, stats = self._run(
                client, parts, classes, conf, rounds,
                None if Xv is None else (Xv, yv), init)
            model.set_golden(first)
            init = model
            self._model = local._model = model
            if classes is not None:
                self.classes_ = classes
            self.feature_names_in_ = local.feature_names_in_ = cols
            self.n_features_in_ = local.n_features_in_ = model.n_features
            self.rounds_done_ += rounds
            self.transfer_.append(stats)
            curves.append(curve)
            if total == 0:
                break
        self.evals_result_ = self.validation_loss_ = None
        if Xv is not None:
            curve = np.concatenate(curves)
            self.validation_loss_ = curve[~np.isnan(curve)]
            self.evals_result_ = {"valid_0": self._eval_curves(
                eval_metric, Xv, yv, self.validation_loss_)}
        return self

    def to_local(self) -> _gbdt._GBDT:
        """The fitted model as streamwise's own estimator (no Dask)."""
        base = _local_class(type(self).__name__)
        est = base(**{k: v for k, v in self.get_params().items()
                      if k not in ("timeout", "checkpoint_every")})
        for a in ("_model", "classes_", "feature_names_in_",
                  "n_features_in_", "evals_result_", "validation_loss_"):
            if hasattr(self, a):
                setattr(est, a, getattr(self, a))
        return est

    def save(self, path: str | os.PathLike, *args: Any,
             **kwargs: Any) -> str | os.PathLike:
        """As streamwise's estimator saves (it loads as one)."""
        return self.to_local().save(path, *args, **kwargs)

    # -- the data -------------------------------------------------------

    def _parts(self, client, X, y):
        """[(part index, X future, y future, first row, rows, worker)], the
        column names, and the first 8 rows (the model's golden rows, as a
        one-process fit keeps)."""
        from distributed import wait
        cols = None
        if _is_dask(X):
            if hasattr(X, "columns"):              # a Dask DataFrame
                cols = [str(c) for c in X.columns]
                xd = X.to_delayed()
                first = X.head(8, npartitions=-1)
            else:
                if X.ndim != 2:
                    raise _sw.ShapeError(f"X must be 2-D, not {X.ndim}-D")
                X = X.rechunk({1: -1})
                xd = list(X.to_delayed().ravel())
                first = X[:8].compute()
            if not _is_dask(y):
                raise _sw.InvalidArgument(
                    "dask GBDT: X is a Dask collection, y is not; give y as "
                    "a Dask array or Series partitioned as X")
            if not hasattr(y, "to_delayed") or hasattr(y, "columns"):
                raise _sw.InvalidArgument("dask GBDT: y must be 1-D")
            if hasattr(X, "chunks") and hasattr(y, "chunks"):
                y = y.rechunk((X.chunks[0],))
            yd = list(np.ravel(y.to_delayed()))
            if len(yd) != len(xd):
                raise _sw.ShapeError(
                    f"dask GBDT: X has {len(xd)} partitions, y {len(yd)}; "
                    f"y must be partitioned as X")
            xf = client.compute(xd)
            yf = client.compute(yd)
        else:
            if hasattr(X, "columns"):
                cols = [str(c) for c in X.columns]
            Xm = _gbdt._matrix(X)[0]
            ym = np.asarray(y).ravel()
            if len(ym) != len(Xm):
                raise _sw.ShapeError(f"{len(ym)} labels for {len(Xm)} rows")
            k = max(1, len(client.scheduler_info()["workers"]))
            cuts = [len(Xm) * i // k for i in range(k + 1)]
            xf = client.scatter([Xm[a:b] for a, b in zip(cuts, cuts[1:])])
            yf = client.scatter([ym[a:b] for a, b in zip(cuts, cuts[1:])])
            first = Xm[:8]
        wait(xf + yf)
        lens = client.gather([client.submit(len, f, pure=False) for f in xf])
        ylens = client.gather([client.submit(len, f, pure=False)
                               for f in yf])
        if lens != ylens:
            raise _sw.ShapeError(
                f"dask GBDT: partitions of {lens} rows but labels of "
                f"{ylens}; y must be partitioned as X")
        who = client.who_has(xf)
        parts, at = [], 0
        for i, (a, b, n) in enumerate(zip(xf, yf, lens)):
            if n:
                # keys come back as strings in older distributed
                held = who.get(a.key) or who.get(str(a.key)) or ()
                if not held:
                    raise _sw.IOError(f"dask GBDT: partition {i} is on no "
                                      f"worker (lost?)")
                parts.append((i, a, b, at, n, sorted(held)[0]))
            at += n
        if not parts:
            raise _sw.InvalidArgument("dask GBDT: the training set is empty")
        return parts, cols, _gbdt._matrix(first)[0][:8]

    def _classes(self, client, parts):
        """The sorted distinct labels over every partition."""
        def distinct(v):
            return np.unique(np.asarray(v).ravel())
        each = client.gather([client.submit(distinct, p[2], pure=False)
                              for p in parts])
        local = _local_class(type(self).__name__)()
        # the local class's rules (NaN refused, one class -> [0, 1])
        local._labels(np.concatenate(each))
        return local.classes_

    # -- the ranks ------------------------------------------------------

    def _run(self, client, parts, classes, conf, rounds, valid, init):
        """One fit over the ring of the workers holding parts: (model,
        validation curve, transfer stats)."""
        from distributed import as_completed, wait
        workers = sorted({p[5] for p in parts})
        token = secrets.token_hex(16)
        t0 = time.perf_counter()
        futs = []
        try:
            addrs = _listen_all(client, token, workers, float(self.timeout),
                                self._kept())
            params = {k: v for k, v in self.get_params().items()
                      if k not in ("timeout", "checkpoint_every")}
            for rank, w in enumerate(workers):
                mine = [p for p in parts if p[5] == w]
                futs.append(client.submit(
                    _gbdt_rank, token, rank, addrs, type(self).__name__,
                    params, classes, conf, rounds, [p[1] for p in mine],
                    [p[2] for p in mine], [p[3] for p in mine], valid, init,
                    float(self.timeout), workers=[w],
                    allow_other_workers=False, pure=False))
            # no bound on a healthy fit (hours may be right); after a
            # rank's failure the others fail within the timeout
            for f in as_completed(futs):
                if f.status != "finished":
                    try:
                        wait(futs, timeout=float(self.timeout) + 10)
                    except Exception:       # noqa: BLE001 - judged below
                        pass
                    break
            if all(f.status == "finished" for f in futs):
                out = self._results(client, workers, futs)
                ids = {o[2] for o in out}
                if len(ids) != 1:
                    raise _sw.InternalError(
                        "dask GBDT: the ranks built different models; "
                        "please report this")
                model, curve = out[0][0], out[0][1]
                sent = [o[3]["bytes_sent"] for o in out]
                trees = max(1, model.gbdt_info[0] -
                            (init.gbdt_info[0] if init is not None else 0))
                return model, curve, {
                    "ranks": len(workers), "workers": workers,
                    "rounds": rounds, "trees": trees,
                    "bytes_sent_per_rank": sent,
                    "bytes_per_tree": max(sent) / trees,
                    "collective_seconds": max(o[3]["seconds"] for o in out),
                    "collective_calls": out[0][3]["calls"],
                    "seconds": time.perf_counter() - t0}
            self._fail(client, workers, futs)
        finally:
            for f in futs:
                if f.status not in ("finished", "error"):
                    f.cancel()
            try:    # without waiting: a stalled worker would never answer
                client.run(_forget, token, workers=workers, wait=False)
            except Exception:               # noqa: BLE001 - workers gone
                pass

    def _results(self, client, workers, futs):
        """The ranks' results, each fetched within the timeout: a worker
        stalled or gone after its rank finished holds its result."""
        out = []
        for rank, (w, f) in enumerate(zip(workers, futs)):
            try:
                out.append(f.result(timeout=float(self.timeout)))
            except Exception as e:          # noqa: BLE001 - named here
                why = "gone" if w not in _alive(client, workers, 5.0) \
                    else "stalled"
                raise _sw.IOError(
                    f"dask GBDT: rank {rank} on worker {w} ({why}) left the "
                    f"fit: its result could not be fetched within "
                    f"{self.timeout:g} s ({type(e).__name__}){self._kept()}"
                ) from None
        return out

    def _kept(self):
        """What a failure leaves to continue from, said in its message."""
        return (f"; {self.rounds_done_} rounds are kept (rounds_done_): "
                f"fit(X, y, init_model=this estimator, n_estimators="
                f"remaining) continues" if self.rounds_done_ else "")

    def _fail(self, client, workers, futs):
        """Raise what went wrong, naming the rank and worker to blame: one
        that is gone, else one that failed on its own (its error raised
        as it is: bad labels stay InvalidArgument), else one that never
        finished."""
        alive = _alive(client, workers,
                       5.0 if any(f.status != "finished" for f in futs)
                       else 0.0)
        errors = {}
        for r, f in enumerate(futs):
            if f.status == "error":
                try:
                    errors[r] = f.exception(timeout=5)
                except Exception as e:      # noqa: BLE001
                    errors[r] = e
        gone = [r for r, w in enumerate(workers) if w not in alive]
        own = [r for r, e in errors.items()
               if "collective:" not in str(e) and "dask GBDT" not in str(e)]
        stuck = [r for r, f in enumerate(futs)
                 if f.status not in ("finished", "error")]
        kept = self._kept()
        if own and not gone:
            err = errors[own[0]]
            if isinstance(err, _sw.Error):
                raise err
            raise _sw.IOError(f"dask GBDT: rank {own[0]} on worker "
                              f"{workers[own[0]]}: {type(err).__name__}: "
                              f"{err}")
        blame = gone or stuck or sorted(errors) or list(range(len(workers)))
        what = " (gone)" if gone else " (stalled)" if stuck else ""
        seen = "; ".join(f"rank {r}: {e}" for r, e in sorted(errors.items()))
        raise _sw.IOError(
            f"dask GBDT: rank {blame[0]} on worker {workers[blame[0]]}"
            f"{what} left the fit (timeout {self.timeout:g} s): "
            f"{seen or 'no rank finished'}{kept}")

    # -- predictions on Dask collections --------------------------------

    def _blocks(self, X, fn, proba):
        if not _is_dask(X):
            return fn(X)
        if hasattr(X, "columns"):
            X = X.to_dask_array(lengths=True)
        X = X.rechunk({1: -1})
        if proba:
            k = len(self.classes_)
            return X.map_blocks(fn, chunks=(X.chunks[0], (k,)),
                                dtype=np.float64)
        classes = getattr(self, "classes_", None)
        return X.map_blocks(fn, drop_axis=1, dtype=np.float64
                            if classes is None else np.asarray(classes).dtype)

    def predict(self, X: Any) -> Any:
        local: Any = self.to_local()
        return self._blocks(X, local.predict, False)


# _DaskGBDT.fit (with client=) comes first in the MRO, in place of the
# local fit: mypy sees two fits of different signatures
class GBDTClassifier(_DaskGBDT, _gbdt.GBDTClassifier):  # type: ignore[misc]
    """streamwise.GBDTClassifier fitted on a Dask cluster: the same
    parameters (plus timeout: seconds any wait between ranks may last;
    checkpoint_every: rounds per stretch), the same model bytes."""
    __init__ = _dask_params(_gbdt.GBDTClassifier)

    def predict_proba(self, X: Any) -> Any:
        local: Any = self.to_local()
        return self._blocks(X, local.predict_proba, True)


class GBDTRegressor(_DaskGBDT, _gbdt.GBDTRegressor):
    """streamwise.GBDTRegressor fitted on a Dask cluster: the same
    parameters (plus timeout and checkpoint_every), the same model
    bytes."""
    __init__ = _dask_params(_gbdt.GBDTRegressor)
