"""Recommendations by alternating least squares, with implicit's API surface.

    model = streamwise.ALS(factors=64, regularization=0.01, iterations=15)
    model.fit(user_items)                       # scipy CSR, users x items
    ids, scores = model.recommend(user_ids, N=10)
    ids, scores = model.similar_items(item_id, N=10)

All the numerics run in the C core (csrc/learn/sw_als*.c) with the GIL
released; this file converts arguments, loops over sweeps (so Ctrl-C stops
a fit between sweeps), reports progress, and applies the unknown-id policy.
"""
from __future__ import annotations

import os
import sys
import time
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from . import _sw
from ._base import (NotFittedError, Params, remove_stale_tmp,
                    sklearn_flavour, text)

__all__ = ["ALS", "train_test_split", "leave_k_out_split",
           "ranking_metrics_at_k", "rmse", "read_topn"]

if TYPE_CHECKING:
    from typing import Self

    import numpy.typing as npt
    import scipy.sparse

    Ids = npt.ArrayLike          # one id, or an array of ids

_CONF = {"factors": "als.factors", "regularization": "als.regularization",
         "alpha": "als.alpha", "iterations": "als.iterations",
         "solver": "als.solver", "cg_steps": "als.cg_steps",
         "confidence": "als.confidence", "reg_scaling": "als.reg_scaling",
         "explicit": "als.explicit", "num_threads": "als.threads",
         "init_scale": "als.init_scale"}


def _csr(m, what):
    import scipy.sparse as sp
    if not sp.issparse(m):
        raise TypeError(f"{what} must be a scipy.sparse matrix (users x "
                        f"items), got {type(m).__name__}")
    if m.format != "csr":
        m = m.tocsr()
    return m


class _Progress:
    """A one-line progress report on stderr (tqdm when installed)."""

    def __init__(self, total, show):
        self.bar = None
        self.show = show
        self.total = total
        self.n = 0
        if show:
            from ._base import progress_bar
            self.bar = progress_bar(total, "sweep")

    def update(self, loss):
        self.n += 1
        if not self.show:
            return
        if self.bar is not None:
            self.bar.update(1)
            if loss is not None:
                self.bar.set_postfix(loss=f"{loss:.6g}")
            return
        width = 30
        done = int(width * self.n / max(self.total, 1))
        tail = f" loss {loss:.6g}" if loss is not None else ""
        sys.stderr.write(f"\rALS [{'#' * done}{'.' * (width - done)}] "
                         f"{self.n}/{self.total}{tail}")
        sys.stderr.flush()

    def close(self):
        if self.bar is not None:
            self.bar.close()
        elif self.show:
            sys.stderr.write("\n")


class ALS(Params):
    """Matrix factorization by alternating least squares.

    Implicit feedback (Hu, Koren, Volinsky 2008) with a conjugate-gradient
    (``solver="cg"``, ``cg_steps``) or exact Cholesky solver, confidence
    ``"linear"`` (c = alpha r, as implicit) or ``"hu"`` (c = 1 + alpha r, as
    Spark), regularization ``reg_scaling`` ``"none"`` or ``"n_u"`` (ALS-WR);
    or explicit ratings (``explicit=True``; ALS-WR with ``reg_scaling="n_u"``).
    float32 factors, seeded (``random_state``), deterministic whatever
    ``num_threads`` (0: every CPU).
    """

    def __init__(self, factors: int = 64, regularization: float = 0.01,
                 alpha: float = 1.0, iterations: int = 15, solver: str = "cg",
                 cg_steps: int = 3, confidence: str = "linear",
                 reg_scaling: str = "none", explicit: bool = False,
                 random_state: int | None = None, num_threads: int = 0,
                 keep_liked: bool = True, unknown: str = "nan",
                 init_scale: float = 0.0) -> None:
        self.factors = factors
        self.regularization = regularization
        self.alpha = alpha
        self.iterations = iterations
        self.solver = solver
        self.cg_steps = cg_steps
        self.confidence = confidence
        self.reg_scaling = reg_scaling
        self.explicit = explicit
        self.random_state = random_state
        self.num_threads = num_threads
        self.keep_liked = keep_liked
        self.unknown = unknown
        self.init_scale = init_scale
        self._model = None

    def __repr__(self):
        return (f"ALS(factors={self.factors}, regularization="
                f"{self.regularization}, iterations={self.iterations}, "
                f"solver={self.solver!r})")

    def _seed(self):
        rs = self.random_state
        if rs is None:
            self.seed_ = int.from_bytes(os.urandom(6), "little")
        elif isinstance(rs, (int, np.integer)):
            self.seed_ = int(rs)
        else:   # a numpy Generator or RandomState
            self.seed_ = int(rs.integers(0, 2 ** 48)) if hasattr(
                rs, "integers") else int(rs.randint(0, 2 ** 31))
        return self.seed_

    def _conf(self):
        conf = {key: text(getattr(self, arg)) for arg, key in _CONF.items()}
        conf["als.seed"] = str(self._seed())
        return conf

    def _fitted(self):
        if self._model is None:
            raise sklearn_flavour(NotFittedError, "NotFittedError")(
                "this ALS model is not fitted yet: call fit")
        return self._model

    # ---- training ----------------------------------------------------------

    def fit(self, user_items: scipy.sparse.spmatrix,
            callback: Callable[[int, float, float | None], Any] | None = None,
            show_progress: bool = False,
            calculate_training_loss: bool = False) -> Self:
        """Fit on a users x items scipy CSR matrix of interactions (counts,
        weights or ratings). callback(iteration, elapsed_seconds, loss) runs
        after every sweep; loss is computed when a callback or
        calculate_training_loss asks for it (else None). Ctrl-C stops the
        fit between sweeps and keeps the factors so far."""
        user_items = _csr(user_items, "user_items")
        n_users, n_items = user_items.shape
        model = _sw.als_new(self._conf(), n_users, n_items)
        item_users = user_items.T.tocsr()    # one transpose for the fit
        want = callback is not None or calculate_training_loss
        progress = _Progress(int(self.iterations), show_progress)
        t0 = time.perf_counter()
        self.loss_ = None
        self._model = model
        try:
            for it in range(int(self.iterations)):
                loss = model.als_iterate(user_items, item_users, want)
                self.loss_ = loss
                progress.update(loss)
                if callback is not None:
                    callback(it, time.perf_counter() - t0, loss)
        finally:
            progress.close()
        if self.keep_liked:
            model.als_set_liked(user_items)
        return self

    # ---- factors -----------------------------------------------------------

    @property
    def user_factors(self) -> np.ndarray:
        """Users' factors, float32 (n_users, factors): a copy."""
        return self._fitted().als_factors(_sw.USERS)

    @property
    def item_factors(self) -> np.ndarray:
        """Items' factors, float32 (n_items, factors): a copy."""
        return self._fitted().als_factors(_sw.ITEMS)

    @property
    def n_users(self) -> int:
        return self._fitted().als_info[0]

    @property
    def n_items(self) -> int:
        return self._fitted().als_info[1]

    # ---- the unknown-id policy -----------------------------------------------

    def _known(self, ids, limit, what):
        ids = np.asarray(ids, dtype=np.int64)
        known = (ids >= 0) & (ids < limit)
        if not known.all() and self.unknown not in ("nan", "drop", "zero"):
            raise _sw.InvalidArgument(
                f"{what} {ids[~known][:5].tolist()} not in the model "
                f"(0..{limit - 1}); unknown must be 'nan', 'drop' or 'zero'")
        return ids, known

    # ---- inference -----------------------------------------------------------

    def recommend(self, userid: Ids,
                  user_items: scipy.sparse.spmatrix | None = None,
                  N: int = 10, filter_already_liked: bool = True,
                  filter_items: npt.ArrayLike | None = None,
                  items: npt.ArrayLike | None = None,
                  recalculate_user: bool = False,
                  filter_already_liked_items: bool | None = None
                  ) -> tuple[np.ndarray, ...]:
        """Top-N items for one user id (returns ids (N,), scores (N,)) or an
        array of ids (returns (n, N) arrays, padded with id -1 / NaN).

        filter_already_liked leaves out the user's interactions: rows of
        user_items when given (one per requested user, or the full users x
        items matrix), else those kept at fit. filter_items: item ids never
        to recommend; items: the only candidates. recalculate_user solves
        the user's factors from user_items first (fold-in), so a user the
        model has not seen can be served. Unknown ids follow ``unknown``:
        'nan' (row of -1 / NaN), 'drop' (rows removed; the result then has
        a third element, the ids kept) or 'zero' (a zero vector).
        filter_already_liked_items is implicit's name for
        filter_already_liked, accepted for code written for implicit, as is
        its call style recommend(userid, user_items, N=10); the older
        recommend(userid, N) still works."""
        if user_items is not None and np.ndim(user_items) == 0 and \
                not hasattr(user_items, "tocsr"):
            N, user_items = int(user_items), None      # recommend(id, N)
        if filter_already_liked_items is not None:
            filter_already_liked = filter_already_liked_items
        m = self._fitted()
        n_users, n_items = m.als_info[:2]
        single = np.ndim(userid) == 0
        ids = np.atleast_1d(np.asarray(userid, dtype=np.int64))
        liked = None
        if user_items is not None:
            user_items = _csr(user_items, "user_items")
            if user_items.shape[0] != len(ids):
                if user_items.shape[0] < int(ids.max(initial=-1)) + 1:
                    raise _sw.ShapeError(
                        f"user_items has {user_items.shape[0]} rows for "
                        f"{len(ids)} users")
                user_items = user_items[ids]
            liked = user_items
        vecs = None
        if recalculate_user:
            if user_items is None:
                raise _sw.InvalidArgument("recalculate_user needs user_items")
            vecs = m.als_solve_rows(_sw.USERS, user_items)
            known = np.ones(len(ids), dtype=bool)
        else:
            ids, known = self._known(ids, n_users, "user")
            if not known.all():
                vecs = np.zeros((len(ids), self.factors), dtype=np.float32)
                vecs[known] = m.als_factors(_sw.USERS)[ids[known]]
        exclude = None
        if filter_items is not None:
            exclude = np.zeros(n_items, dtype=np.uint8)
            exclude[np.asarray(filter_items, dtype=np.int64)] = 1
        cand = None if items is None else np.asarray(items, dtype=np.int64)
        flags = _sw.REC_FILTER_LIKED if filter_already_liked else 0
        if flags and liked is None and not m.als_info[3]:
            flags = 0     # nothing kept to filter with
        out_ids, scores = m.als_recommend(
            None if vecs is not None else ids, vecs, int(N), flags,
            liked if flags else None, exclude, cand)
        scores = scores.astype(np.float32)
        scores[out_ids < 0] = np.nan
        kept = ids
        if not known.all():
            if self.unknown == "nan":
                out_ids[~known] = -1
                scores[~known] = np.nan
            elif self.unknown == "drop":
                out_ids, scores, kept = out_ids[known], scores[known], \
                    ids[known]
        if single:
            if len(out_ids) == 0:
                return out_ids.reshape(0), scores.reshape(0)
            if not known[0] and self.unknown == "nan":
                return out_ids[0], scores[0]    # N times -1 / NaN, as said
            valid = out_ids[0] >= 0
            return out_ids[0][valid], scores[0][valid]
        if self.unknown == "drop" and not known.all():
            return out_ids, scores, kept
        return out_ids, scores

    def _similar(self, side, ids, N, candidates):
        m = self._fitted()
        single = np.ndim(ids) == 0
        q = np.atleast_1d(np.asarray(ids, dtype=np.int64))
        cand = None if candidates is None else np.asarray(candidates,
                                                          dtype=np.int64)
        out, scores = m.als_similar(side, q, int(N), cand)
        if single:
            valid = out[0] >= 0
            return out[0][valid], scores[0][valid]
        return out, scores

    def similar_items(self, itemid: Ids, N: int = 10,
                      items: npt.ArrayLike | None = None
                      ) -> tuple[np.ndarray, np.ndarray]:
        """The N items closest to itemid by cosine of factors (itself
        included, first)."""
        return self._similar(_sw.ITEMS, itemid, N, items)

    def similar_users(self, userid: Ids, N: int = 10,
                      users: npt.ArrayLike | None = None
                      ) -> tuple[np.ndarray, np.ndarray]:
        """The N users closest to userid by cosine of factors."""
        return self._similar(_sw.USERS, userid, N, users)

    def _fold_in(self, side, ids, rows):
        m = self._fitted()
        q = np.atleast_1d(np.asarray(ids, dtype=np.int64))
        rows = _csr(rows, "interactions")
        if rows.shape[0] != len(q):
            rows = rows[q]
        f = m.als_solve_rows(side, rows)
        return f[0] if np.ndim(ids) == 0 else f

    def recalculate_user(self, userid: Ids,
                         user_items: scipy.sparse.spmatrix) -> np.ndarray:
        """Fold-in: factors for users from their interactions (rows of
        user_items, one per id, or the full matrix), solved exactly against
        the current item factors; the model is not changed."""
        return self._fold_in(0, userid, user_items)

    def recalculate_item(self, itemid: Ids,
                         item_users: scipy.sparse.spmatrix) -> np.ndarray:
        """Fold-in for items from their users (rows over users)."""
        return self._fold_in(1, itemid, item_users)

    def partial_fit_users(self, userids: npt.ArrayLike,
                          user_items: scipy.sparse.spmatrix) -> Self:
        """Solve and store the factors of these users (new ids grow the
        model) from their rows of interactions."""
        m = self._fitted()
        ids = np.atleast_1d(np.asarray(userids, dtype=np.int64))
        rows = _csr(user_items, "user_items")
        if rows.shape[0] != len(ids):
            raise _sw.ShapeError(f"{rows.shape[0]} rows for {len(ids)} users")
        m.als_put_rows(_sw.USERS, ids, m.als_solve_rows(_sw.USERS, rows))
        return self

    def partial_fit_items(self, itemids: npt.ArrayLike,
                          item_users: scipy.sparse.spmatrix) -> Self:
        """Solve and store the factors of these items from their users."""
        m = self._fitted()
        ids = np.atleast_1d(np.asarray(itemids, dtype=np.int64))
        rows = _csr(item_users, "item_users")
        if rows.shape[0] != len(ids):
            raise _sw.ShapeError(f"{rows.shape[0]} rows for {len(ids)} items")
        m.als_put_rows(_sw.ITEMS, ids, m.als_solve_rows(_sw.ITEMS, rows))
        return self

    def predict(self, userids: npt.ArrayLike,
                itemids: npt.ArrayLike) -> np.ndarray:
        """Scores of (user, item) pairs: the dot products of their factors
        (float32, summed in factor order), NaN for unknown ids ('nan')."""
        m = self._fitted()
        n_users, n_items = m.als_info[:2]
        u = np.asarray(userids, dtype=np.int64).ravel()
        i = np.asarray(itemids, dtype=np.int64).ravel()
        ok = (u >= 0) & (u < n_users) & (i >= 0) & (i < n_items)
        if not ok.all() and self.unknown not in ("nan", "zero"):
            raise _sw.InvalidArgument("predict: unknown user or item ids")
        out = np.full(len(u), np.nan if self.unknown == "nan" else 0.0)
        pairs = np.stack([u[ok], i[ok]], axis=1).astype(np.float64)
        if len(pairs):
            out[ok] = m.predict(pairs).astype(np.float32)
        return out

    # ---- persistence ---------------------------------------------------------

    def save(self, path: str | os.PathLike) -> str | os.PathLike:
        import json
        m = self._fitted()
        meta = {"class": "ALS", "params": {k: v for k, v in
                                           self.get_params().items()
                                           if k != "random_state"},
                "seed": self.seed_, "loss": self.loss_,
                "streamwise_version": _sw.__version__}
        m.set_metadata(json.dumps(meta, sort_keys=True, default=str))
        m.save(str(path))
        return path

    def recommend_all(self, path: str | os.PathLike, N: int = 10,
                      user_items: scipy.sparse.spmatrix | None = None,
                      block_users: int = 65536, client: Any = None,
                      filter_already_liked: bool = True) -> list[str]:
        """Top-N for every user into HDF5 shards under the directory path,
        one per block of block_users users (``users-<first>-<end>.h5``:
        datasets ``user`` int64 (n,), ``item`` int32 (n, N), -1 padded,
        ``score`` float32 (n, N)), each written whole (a temporary file
        fsynced and renamed). A run cut short restarts where it stopped:
        shards already there are kept and never written again, so every
        user is in exactly one shard. The user's history is left out (rows
        of user_items, else the interactions kept at fit). client: a
        dask.distributed client to spread the blocks over its workers
        (each loads the model once); without it they run here. Returns
        the shard paths in user order; read them back with read_topn."""
        import json
        m = self._fitted()
        n_users = m.als_info[0]
        N, block_users = int(N), int(block_users)
        if N < 1 or block_users < 1:
            raise _sw.InvalidArgument(f"recommend_all: N={N} and "
                                      f"block_users={block_users}, expected "
                                      f">= 1")
        if user_items is not None:
            user_items = _csr(user_items, "user_items")
            if user_items.shape[0] != n_users:
                raise _sw.ShapeError(f"recommend_all: user_items has "
                                     f"{user_items.shape[0]} rows, the model "
                                     f"{n_users} users")
        path = os.fspath(path)
        os.makedirs(path, exist_ok=True)
        import hashlib
        digest = hashlib.sha256(m.als_factors(_sw.USERS).tobytes())
        digest.update(m.als_factors(_sw.ITEMS).tobytes())
        plan = {"n_users": n_users, "N": N, "block_users": block_users,
                "model": digest.hexdigest()[:32],
                "filter": bool(filter_already_liked)}
        manifest = os.path.join(path, "topn.json")
        if os.path.exists(manifest):
            with open(manifest) as f:
                had = json.load(f)
            if had != plan:
                raise _sw.InvalidArgument(
                    f"recommend_all: {path} holds shards of another run "
                    f"({had}); this one is {plan}: give another directory")
        else:
            _write_whole(manifest, json.dumps(plan, sort_keys=True).encode())
        remove_stale_tmp(path)
        todo, shards = [], []
        for lo in range(0, n_users, block_users):
            hi = min(n_users, lo + block_users)
            out = os.path.join(path, f"users-{lo:012d}-{hi:012d}.h5")
            shards.append(out)
            if not os.path.exists(out):
                liked = user_items[lo:hi] if user_items is not None else None
                todo.append((lo, hi, liked, out))
        if client is None:
            for lo, hi, liked, out in todo:
                _topn_shard(self, lo, hi, liked, N, filter_already_liked, out)
        elif todo:
            est = client.scatter(self, broadcast=True, hash=False)
            futs = [client.submit(_topn_shard, est, lo, hi, liked, N,
                                  filter_already_liked, out, pure=False)
                    for lo, hi, liked, out in todo]
            client.gather(futs)
        return shards

    @classmethod
    def _from_model(cls, m, meta):
        est = cls(**meta.get("params", {}))
        est._model = m
        est.seed_ = meta.get("seed")
        est.random_state = est.seed_
        est.loss_ = meta.get("loss")
        return est


# ---------------------------------------------------------------------------
# Batch top-N (recommend_all)
# ---------------------------------------------------------------------------

def _write_whole(path, data=None, write=None):
    """path written whole: a temporary file (bytes data, or write(tmp))
    fsynced and renamed, so a reader (or a restart) sees all or nothing."""
    tmp = f"{path}.tmp.{os.getpid()}"
    if write is not None:
        write(tmp)
    else:
        with open(tmp, "wb") as f:
            f.write(data)
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dfd = os.open(os.path.dirname(path) or ".", os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def _topn_shard(est, lo, hi, liked, N, filter_liked, out):
    """One block's top N into its shard (runs here or on a worker)."""
    import h5py
    users = np.arange(lo, hi, dtype=np.int64)
    items, scores = est.recommend(users, liked, N=N,
                                  filter_already_liked=filter_liked)

    def write(tmp):
        with h5py.File(tmp, "w") as f:
            f.create_dataset("user", data=users)
            f.create_dataset("item", data=np.asarray(items, np.int32))
            f.create_dataset("score", data=np.asarray(scores, np.float32))
            f.attrs["N"] = N
    _write_whole(out, write=write)
    return out


def read_topn(path: str | os.PathLike) -> tuple[np.ndarray, ...]:
    """The shards recommend_all wrote under path, in user order: (user
    (n,), item (n, N), score (n, N)). Refuses a directory whose shards
    are missing or overlap."""
    import json

    import h5py
    path = os.fspath(path)
    with open(os.path.join(path, "topn.json")) as f:
        plan = json.load(f)
    names = sorted(n for n in os.listdir(path)
                   if n.startswith("users-") and n.endswith(".h5"))
    want = -(-plan["n_users"] // plan["block_users"])
    if len(names) != want:
        raise _sw.FormatError(f"read_topn: {path} has {len(names)} shards of "
                              f"{want}: recommend_all did not finish")
    parts = []
    for n in names:
        with h5py.File(os.path.join(path, n), "r") as f:
            parts.append((f["user"][:], f["item"][:], f["score"][:]))
    users = np.concatenate([p[0] for p in parts])
    if not np.array_equal(users, np.arange(plan["n_users"])):
        raise _sw.FormatError(f"read_topn: {path}: the shards do not cover "
                              f"every user once")
    return (users, np.concatenate([p[1] for p in parts]),
            np.concatenate([p[2] for p in parts]))


# ---------------------------------------------------------------------------
# Splits and evaluation
# ---------------------------------------------------------------------------

def _from_mask(m, mask):
    import scipy.sparse as sp
    coo = m.tocoo()
    keep = mask.astype(bool)

    def part(sel):
        return sp.csr_matrix((coo.data[sel], (coo.row[sel], coo.col[sel])),
                             shape=m.shape, dtype=m.dtype)
    return part(~keep), part(keep)


def train_test_split(ratings: scipy.sparse.spmatrix,
                     train_percentage: float = 0.8, random_state: int = 0
                     ) -> tuple[scipy.sparse.csr_matrix,
                                scipy.sparse.csr_matrix]:
    """Each interaction goes to test with probability 1 - train_percentage,
    by a seeded draw in C; returns (train, test) CSR matrices."""
    m = _csr(ratings, "ratings")
    m = m.tocsr(copy=True)
    m.sum_duplicates()
    mask = _sw.split_random(m.nnz, 1.0 - float(train_percentage),
                            int(random_state))
    return _from_mask(m, mask)


def leave_k_out_split(ratings: scipy.sparse.spmatrix, K: int = 1,
                      random_state: int = 0
                      ) -> tuple[scipy.sparse.csr_matrix,
                                 scipy.sparse.csr_matrix]:
    """K interactions of every user with more than K go to test (seeded, in
    C); returns (train, test)."""
    m = _csr(ratings, "ratings").tocsr(copy=True)
    m.sum_duplicates()
    mask = _sw.split_leave_k_out(m, int(K), int(random_state))
    return _from_mask(m, mask)


def ranking_metrics_at_k(model: ALS,
                         train_user_items: scipy.sparse.spmatrix | None,
                         test_user_items: scipy.sparse.spmatrix,
                         K: int = 10) -> dict[str, float]:
    """precision@K, MAP@K, NDCG@K and AUC@K with the implicit library's
    definitions, computed in C; train interactions are left out of the
    recommendations."""
    m = model._fitted()
    train = None if train_user_items is None else _csr(train_user_items,
                                                       "train")
    p, mapk, ndcg, auc, n = m.ranking_metrics(train, _csr(test_user_items,
                                                         "test"), int(K))
    return {"precision": p, "map": mapk, "ndcg": ndcg, "auc": auc,
            "users": n}


def rmse(model: ALS, test_ratings: scipy.sparse.spmatrix,
         clip: tuple[float, float] | None = (1.0, 5.0)) -> float:
    """Root mean squared error of predicted ratings on the test entries,
    predictions clipped to clip (None: unclipped)."""
    t = _csr(test_ratings, "test").tocoo()
    pred = model.predict(t.row, t.col)
    if clip is not None:
        pred = np.clip(pred, clip[0], clip[1])
    return float(np.sqrt(np.mean((pred - t.data) ** 2)))
