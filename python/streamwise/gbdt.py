"""Gradient-boosted trees: scikit-learn-style estimators over the C core.

``GBDTClassifier`` (binary log-loss) and ``GBDTRegressor`` (L2) train
histogram trees leaf-wise in C (``sw_gbdt_fit``); the model scores through
the same table-driven interpreter that ``build/bin/sw-serve`` runs, and
saves as a ``.swm`` file. Parameters keep LightGBM's names and meanings.
See docs/gbdt.md.
"""
from __future__ import annotations

import inspect
import json
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from . import _sw
from ._base import (NotFittedError, Params, check_fit_X, check_y, numeric,
                    proba, row_log_loss, score_reference, sklearn_flavour)

__all__ = ["GBDTClassifier", "GBDTRegressor"]

if TYPE_CHECKING:
    import os
    from typing import Self

    import numpy.typing as npt

    from ._base import Row, Rows

def _matrix(X, names=None):
    """(float array C-contiguous 2-D, column names or None)."""
    cols = None
    if hasattr(X, "columns") and hasattr(X, "to_numpy"):
        cols = [str(c) for c in X.columns]
        X = X.to_numpy(dtype=np.float64, na_value=np.nan)
    elif hasattr(X, "toarray"):
        X = X.toarray()
    X = numeric(np.asarray(X))
    if X.dtype not in (np.float32, np.float64):
        X = X.astype(np.float64)
    if X.ndim != 2:
        raise _sw.ShapeError(f"X must be 2-D, not {X.ndim}-D")
    return np.ascontiguousarray(X), cols


class _Bar:
    """A tqdm bar fed by the C core's per-round callback."""

    def __init__(self, rounds, desc):
        from ._base import progress_bar
        self._bar = progress_bar(rounds, "round", desc)
        if self._bar is None:
            raise ImportError("progress=True needs tqdm")

    def step(self, done, rounds, loss):
        self._bar.update(done - self._bar.n)
        if loss == loss:
            self._bar.set_postfix(valid_loss=f"{loss:.5f}", refresh=False)

    def close(self):
        self._bar.close()


def _bar(progress, work, rounds, desc):
    if progress is None:
        progress = work >= 20_000_000
    if not progress:
        return None
    try:
        return _Bar(rounds, desc)
    except ImportError:                                 # pragma: no cover
        return None


def _metric(name, y, raw):
    """LightGBM's validation metric `name` of raw scores against y (0/1,
    class numbers, or values)."""
    if name in ("l2", "l1", "rmse"):
        e = y - raw
        v = float(np.mean(np.abs(e))) if name == "l1" else \
            float(np.mean(e * e))
        return float(np.sqrt(v)) if name == "rmse" else v
    if name == "auc":
        from .evaluate import roc_auc
        return roc_auc(y == 1, raw)
    # the sigmoid or softmax the model applies, as predict_proba would
    p = proba(raw, 2 if raw.ndim == 1 else raw.shape[1])
    if name in ("binary_error", "multi_error"):
        return float(np.mean(np.argmax(p, axis=1) != y.astype(np.intp)))
    return float(np.mean(row_log_loss(p, y)))


class _GBDT(Params):
    _objective: str | None = None

    def __init__(self, n_estimators=100, learning_rate=0.1, num_leaves=31,
                 max_depth=-1, max_bin=255, min_data_in_leaf=20,
                 min_sum_hessian_in_leaf=1e-3, lambda_l1=0.0, lambda_l2=0.0,
                 min_gain_to_split=0.0, max_delta_step=0.0,
                 bagging_fraction=1.0, feature_fraction=1.0, n_jobs=0,
                 random_state=None, grow_policy="leafwise",
                 min_child_samples=None, min_child_weight=None,
                 reg_alpha=None, reg_lambda=None, subsample=None,
                 colsample_bytree=None, min_split_gain=None):
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.max_depth = max_depth
        self.max_bin = max_bin
        self.min_data_in_leaf = min_data_in_leaf
        self.min_sum_hessian_in_leaf = min_sum_hessian_in_leaf
        self.lambda_l1 = lambda_l1
        self.lambda_l2 = lambda_l2
        self.min_gain_to_split = min_gain_to_split
        self.max_delta_step = max_delta_step
        self.bagging_fraction = bagging_fraction
        self.feature_fraction = feature_fraction
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.grow_policy = grow_policy
        # LightGBM's scikit-learn names (None: the native one's value)
        self.min_child_samples = min_child_samples
        self.min_child_weight = min_child_weight
        self.reg_alpha = reg_alpha
        self.reg_lambda = reg_lambda
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.min_split_gain = min_split_gain

    # What fit sets, None until then: class attributes, so that __init__
    # sets parameters only (scikit-learn's convention, which check_is_fitted
    # relies on).
    _model: Any = None
    feature_names_in_ = None
    evals_result_ = None
    validation_loss_ = None

    def _more_tags(self):
        # NaN is a missing value, routed by every split (as LightGBM)
        return {"allow_nan": True}

    # LightGBM's scikit-learn parameter names -> the native ones
    _ALIASES = {"min_child_samples": "min_data_in_leaf",
                "min_child_weight": "min_sum_hessian_in_leaf",
                "reg_alpha": "lambda_l1", "reg_lambda": "lambda_l2",
                "subsample": "bagging_fraction",
                "colsample_bytree": "feature_fraction",
                "min_split_gain": "min_gain_to_split"}

    def _param(self, native):
        """A parameter's value: its LightGBM scikit-learn alias when set,
        else the native one; both set to different values is refused."""
        value = getattr(self, native)
        for alias, name in self._ALIASES.items():
            given = getattr(self, alias, None)
            if name != native or given is None:
                continue
            default = inspect.signature(
                type(self).__init__).parameters[native].default
            if value != default and value != given:
                raise _sw.InvalidArgument(
                    f"{alias}={given!r} and {native}={value!r} are the same "
                    f"parameter; give one")
            return given
        return value

    def _conf(self, early_stopping_rounds):
        p = self._param
        return {
            "gbdt.objective": self._fit_objective(),
            "gbdt.num_class": str(self._num_class()),
            "gbdt.n_estimators": str(int(self.n_estimators)),
            "gbdt.learning_rate": repr(float(self.learning_rate)),
            "gbdt.num_leaves": str(int(self.num_leaves)),
            "gbdt.max_depth": str(int(self.max_depth)),
            "gbdt.grow_policy": str(self.grow_policy),
            "gbdt.max_bin": str(int(self.max_bin)),
            "gbdt.min_data_in_leaf": str(int(p("min_data_in_leaf"))),
            "gbdt.min_sum_hessian_in_leaf":
                repr(float(p("min_sum_hessian_in_leaf"))),
            "gbdt.lambda_l1": repr(float(p("lambda_l1"))),
            "gbdt.lambda_l2": repr(float(p("lambda_l2"))),
            "gbdt.min_gain_to_split": repr(float(p("min_gain_to_split"))),
            "gbdt.max_delta_step": repr(float(self.max_delta_step)),
            "gbdt.bagging_fraction": repr(float(p("bagging_fraction"))),
            "gbdt.feature_fraction": repr(float(p("feature_fraction"))),
            "gbdt.seed": str(int(self.random_state or 0)),
            "gbdt.early_stopping_rounds": str(int(early_stopping_rounds or 0)),
            "gbdt.threads": str(int(self.n_jobs)),
        }

    def _labels(self, y):
        return np.asarray(check_y(y, False), dtype=np.float64)

    def _fit_objective(self):
        return self._objective

    def _num_class(self):
        return 0

    def fit(self, X: Rows, y: npt.ArrayLike,
            eval_set: Sequence[tuple[Rows, npt.ArrayLike]] | None = None,
            early_stopping_rounds: int | None = None,
            init_model: _GBDT | None = None, progress: Any = None,
            eval_metric: str | Sequence[str] | None = None) -> Self:
        """Train on X (array or DataFrame, NaN = missing) and y. eval_set:
        [(X_valid, y_valid)], whose loss per round lands in
        evals_result_ as LightGBM's dict, {"valid_0": {"binary_logloss":
        [...]}} (multi_logloss, l2 for the other objectives), and in
        validation_loss_ as an array; eval_metric: more of LightGBM's
        metric names for that dict (binary_logloss, binary_error, auc,
        multi_logloss, multi_error, l2, l1, rmse), computed on the rounds
        the model keeps; early_stopping_rounds: stop when the loss has not
        improved for that many rounds and keep the best trees
        (best_iteration_).
        init_model: a fitted estimator of the same kind to continue (its
        bins and trees kept, rounds added). progress: a tqdm bar of the
        rounds (None: when rows x rounds reach 20M). Ctrl-C stops the fit
        (KeyboardInterrupt; the estimator keeps its previous model)."""
        X, cols = _matrix(X)
        check_fit_X(X)
        yv = self._labels(y)
        Xv = yvv = None
        if eval_set:
            if len(eval_set) != 1:
                raise _sw.InvalidArgument("eval_set: one (X, y) pair")
            Xv, _ = _matrix(eval_set[0][0])
            yvv = self._labels(eval_set[0][1])
        elif early_stopping_rounds:
            raise _sw.InvalidArgument("early stopping needs an eval_set")
        init = None
        if init_model is not None:
            init = init_model._fitted()
        bar = _bar(progress, X.shape[0] * int(self.n_estimators),
                   int(self.n_estimators), type(self).__name__)
        try:
            model, curve = _sw.gbdt_fit(
                self._conf(early_stopping_rounds), X, yv, Xv, yvv, init,
                int(self.n_estimators), bar.step if bar else None)
        finally:
            if bar:
                bar.close()
        # the file re-scores these on every load: rows the trees split
        model.set_golden(X[:8])
        self._model = model
        self.feature_names_in_ = cols
        self.n_features_in_ = X.shape[1]
        self.evals_result_ = self.validation_loss_ = None
        if Xv is not None:
            self.validation_loss_ = curve[~np.isnan(curve)]
            self.evals_result_ = {"valid_0": self._eval_curves(
                eval_metric, Xv, yvv, self.validation_loss_)}
        return self

    _LOSS = {"binary": "binary_logloss", "multiclass": "multi_logloss",
             "regression": "l2"}
    _METRICS = {"binary": ("binary_logloss", "binary_error", "auc"),
                "multiclass": ("multi_logloss", "multi_error"),
                "regression": ("l2", "l1", "rmse")}

    def _eval_curves(self, eval_metric, Xv, yv, loss):
        """The validation loss the trainer followed under its LightGBM
        name, and each further metric asked for, round by round over the
        rounds kept: one pass of gbdt_raw over Xv a round."""
        objective = self._fit_objective()
        names = [eval_metric] if isinstance(eval_metric, str) else \
            list(eval_metric or [])
        known = self._METRICS[objective]
        bad = [n for n in names if n not in known]
        if bad:
            raise _sw.InvalidArgument(
                f"eval_metric {bad[0]!r} is not a metric of the {objective} "
                f"objective; expected one of {', '.join(known)}")
        out = {self._LOSS[objective]: loss.tolist()}
        names = [n for n in names if n not in out]
        if not names:
            return out
        m = self._fitted()
        k = max(1, self._num_class())
        raw = None
        curves = {n: [] for n in names}
        for r in range(m.gbdt_info[0] // k):
            part = m.gbdt_raw(Xv, r * k, k)
            raw = part if raw is None else raw + part
            for n in names:
                curves[n].append(_metric(n, yv, raw))
        out.update(curves)
        return out

    def _fitted(self):
        if self._model is None:
            raise sklearn_flavour(NotFittedError, "NotFittedError")(
                f"{type(self).__name__} is not fitted")
        return self._model

    def _check(self, X):
        X, cols = _matrix(X)
        m = self._fitted()
        if X.shape[1] != m.n_features:
            raise _sw.ShapeError(f"X has {X.shape[1]} features, the model "
                                 f"{m.n_features}")
        if cols is not None and self.feature_names_in_ is not None and \
                cols != self.feature_names_in_:
            raise _sw.InvalidArgument(
                "the DataFrame's columns differ from those fitted: "
                f"{cols} vs {self.feature_names_in_}")
        return X

    def _row(self, x):
        """One row for the *_one methods: a 1-D array, or a dict keyed by
        feature name (the model's names) or column number; a feature
        missing from a dict is missing (NaN), as the trees route it."""
        if not isinstance(x, dict):
            return np.ascontiguousarray(np.asarray(x, dtype=np.float64))
        m = self._fitted()
        names = self.feature_names_in_ or []
        where = {n: i for i, n in enumerate(names)}
        row = np.full(m.n_features, np.nan)
        for k, v in x.items():
            i = where.get(k, k if isinstance(k, (int, np.integer)) else None)
            if i is None or not 0 <= i < m.n_features:
                raise _sw.InvalidArgument(
                    f"unknown feature {k!r}; the model's features: "
                    f"{', '.join(map(str, names)) or m.n_features}")
            row[i] = float(v)
        return row

    def predict(self, X: Rows | Row) -> np.ndarray:
        raise NotImplementedError     # GBDTClassifier's, GBDTRegressor's

    def predict_one(self, x: Row) -> Any:
        """River's call: the prediction for one row (a dict or 1-D array)."""
        return self.predict(self._row(x)[None, :])[0]

    def _raw_output(self, X):
        x = np.asarray(X)
        if x.ndim == 1 and not hasattr(X, "columns"):   # one row
            return self._fitted().predict(np.ascontiguousarray(
                x, dtype=np.float64))
        return self._fitted().predict(self._check(X))

    @property
    def n_trees_(self) -> int:
        return self._fitted().gbdt_info[0]

    @property
    def best_iteration_(self) -> int | None:
        """The 0-based round early stopping kept (None without)."""
        b = self._fitted().gbdt_info[1]
        return None if b < 0 else b

    @property
    def feature_importances_(self) -> np.ndarray:
        """Split counts per feature (importance_type="gain": see
        feature_importance)."""
        return self._fitted().gbdt_importance(False)

    def feature_importance(self, importance_type: str = "split"
                           ) -> np.ndarray:
        if importance_type not in ("split", "gain"):
            raise _sw.InvalidArgument("importance_type: 'split' or 'gain'")
        return self._fitted().gbdt_importance(importance_type == "gain")

    def export_c(self, directory: str | os.PathLike, name: str = "model",
                 trees_per_file: int = 50) -> Any:
        """Write the model as C source into directory: name.h, name.c
        (double name_predict(const double *x): the probability of class 1
        for a binary classifier, the prediction for a regressor; name_raw:
        the raw score; multiclass: void name_predict(const double *x,
        double *out) writing name_N_CLASSES probabilities) and name_0.c,
        name_1.c, ... of at most trees_per_file trees each. The code
        computes what predict does, bit for bit (compile it without
        -ffast-math). The directory is created if need be. Returns the
        paths written."""
        import os
        directory = os.fspath(directory)
        os.makedirs(directory, exist_ok=True)
        n = self._fitted().gbdt_export_c(directory, name,
                                         int(trees_per_file))
        paths = [os.path.join(directory, f"{name}.h"),
                 os.path.join(directory, f"{name}.c")]
        paths += [os.path.join(directory, f"{name}_{k}.c")
                  for k in range(n - 2)]
        return paths

    def save(self, path: str | os.PathLike, golden: Rows | None = None,
             pipeline: Any = None, inputs: Any = None, sparse: Any = None,
             golden_events: Any = None,
             reference: Rows | None = None) -> str | os.PathLike:
        """Write the model to a .swm file; with pipeline, a bundle (see
        streamwise.serve.attach). reference: rows whose score deciles the
        runner's live evaluation measures drift against."""
        m = self._fitted()
        if pipeline is not None:
            from .serve import attach
            attach(m, pipeline, inputs, sparse, golden_events)
        meta = {"class": type(self).__name__,
                "params": self.get_params(),
                "feature_names": self.feature_names_in_,
                "streamwise_version": _sw.__version__}
        if reference is not None:
            # a classifier's outputs are probabilities already
            meta["score_reference"] = score_reference(
                m.predict(self._check(reference)),
                proba=m.n_classes > 0)
        m.set_metadata(json.dumps(meta, sort_keys=True))
        if golden is not None:
            m.set_golden(self._check(golden))
        m.save(str(path))
        return path

    @classmethod
    def _from_model(cls, m, meta):
        est = cls(**meta.get("params", {}))
        est._model = m
        est.feature_names_in_ = meta.get("feature_names")
        est.n_features_in_ = m.n_features
        return est


class GBDTClassifier(_GBDT):
    """Classifier: binary log-loss for two classes (labels 0/1, or two
    distinct values mapped in sorted order), softmax with one tree per class
    and round for three or more (classes_ in sorted order)."""
    _objective = "binary"
    _estimator_type = "classifier"        # scikit-learn's is_classifier

    def _n_classes(self):
        classes = getattr(self, "classes_", None)
        return 0 if classes is None else len(classes)

    def _fit_objective(self):
        return "multiclass" if self._n_classes() > 2 else "binary"

    def _num_class(self):
        return self._n_classes() if self._n_classes() > 2 else 0

    def _labels(self, y):
        y = check_y(y, True)
        if y.dtype.kind == "f" and np.isnan(y).any():
            raise _sw.NumericError("labels contain NaN")
        classes = np.unique(y)
        if getattr(self, "classes_", None) is None:
            self.classes_ = classes if len(classes) >= 2 else \
                np.array([0, 1])
        bad = ~np.isin(y, self.classes_)
        if bad.any():
            raise _sw.InvalidArgument(
                f"label {y[bad][0]!r} is not one of {list(self.classes_)}")
        if len(self.classes_) > 2:
            return np.searchsorted(self.classes_, y).astype(np.float64)
        return (y == self.classes_[1]).astype(np.float64)

    def fit(self, X: Rows, y: npt.ArrayLike,
            eval_set: Sequence[tuple[Rows, npt.ArrayLike]] | None = None,
            early_stopping_rounds: int | None = None,
            init_model: Any = None, progress: Any = None,
            eval_metric: str | Sequence[str] | None = None) -> Self:
        self.classes_ = None if init_model is None else init_model.classes_
        return super().fit(X, y, eval_set, early_stopping_rounds,
                           init_model, progress, eval_metric)

    def decision_function(self, X: Rows | Row) -> np.ndarray:
        """The raw scores, before the sigmoid or softmax: (rows,) for two
        classes (the log-odds of classes_[1]), (rows, classes) otherwise
        (as LightGBM's predict(raw_score=True)); a regressor's predict is
        its raw score."""
        m = self._fitted()
        x = np.asarray(X)
        if x.ndim == 1 and not hasattr(X, "columns"):   # one row
            x = np.ascontiguousarray(x, dtype=np.float64)[None, :]
            return m.gbdt_raw(x, 0, m.gbdt_info[0])[0]
        return m.gbdt_raw(self._check(X), 0, m.gbdt_info[0])

    def predict_proba(self, X: Rows | Row) -> np.ndarray:
        """(rows, classes) probabilities; one row: (classes,)."""
        p = self._raw_output(X)
        if len(self.classes_) > 2:
            return p
        if np.ndim(p) == 0:
            return np.array([1.0 - p, p])
        return np.column_stack([1.0 - p, p])

    def predict_proba_one(self, x: Row) -> dict[Any, float]:
        """River's call: {class: probability} for one row (a dict keyed by
        feature name or column number, or a 1-D array)."""
        p = self.predict_proba(self._row(x)[None, :])[0]
        return {c.item() if hasattr(c, "item") else c: float(q)
                for c, q in zip(self.classes_, p)}

    def predict(self, X: Rows | Row) -> np.ndarray:
        p = self._raw_output(X)
        if len(self.classes_) > 2:
            return self.classes_[np.argmax(p, axis=-1)]
        return self.classes_[(np.asarray(p) > 0.5).astype(int)]

    def score(self, X: Rows, y: npt.ArrayLike) -> float:
        """Mean accuracy on X, y (scikit-learn's classifier score)."""
        return float(np.mean(self.predict(X) == np.asarray(y).ravel()))

    def save(self, path: str | os.PathLike, golden: Rows | None = None,
             pipeline: Any = None, inputs: Any = None, sparse: Any = None,
             golden_events: Any = None,
             reference: Rows | None = None) -> str | os.PathLike:
        super().save(path, golden, pipeline, inputs, sparse, golden_events,
                     reference)
        meta = json.loads(self._fitted().metadata)
        meta["classes"] = [c.item() if hasattr(c, "item") else c
                           for c in self.classes_]
        self._fitted().set_metadata(json.dumps(meta, sort_keys=True))
        self._fitted().save(str(path))
        return path

    @classmethod
    def _from_model(cls, m, meta):
        est = super()._from_model(m, meta)
        est.classes_ = np.array(meta.get("classes", [0, 1]))
        return est


class GBDTRegressor(_GBDT):
    """L2 regression."""
    _objective = "regression"
    _estimator_type = "regressor"

    def predict(self, X: Rows | Row) -> np.ndarray:
        return self._raw_output(X)

    def score(self, X: Rows, y: npt.ArrayLike) -> float:
        """R^2 of the predictions on X, y (scikit-learn's regressor
        score)."""
        y = np.asarray(y, dtype=np.float64).ravel()
        p = np.asarray(self.predict(X), dtype=np.float64)
        ss_tot = float(np.sum((y - y.mean()) ** 2))
        return 1.0 - float(np.sum((y - p) ** 2)) / ss_tot if ss_tot > 0 \
            else 0.0
