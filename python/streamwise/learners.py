"""Online linear learners with a scikit-learn face: PA and SCW.

The estimators here hold a core model handle (``streamwise._sw.Model``) and
translate between Python labels and the core's class numbers; every number
they produce is computed in C by the same code the runner uses. Settings go
to the core as text through its property table (``streamwise.conf_table()``),
which validates them and documents them in CONFIGURATION.md.
"""
from __future__ import annotations

import inspect
import json
from typing import TYPE_CHECKING, Any

import numpy as np

from . import _sw
from ._base import (DataConversionWarning, NotFittedError, Params,
                    check_fit_X, check_y, numeric, proba, score_reference,
                    sklearn_flavour, text)

if TYPE_CHECKING:
    import os
    from typing import Self

    import numpy.typing as npt

    from ._base import Row, Rows

__all__ = [
    "PassiveAggressiveClassifier",
    "PassiveAggressiveRegressor",
    "SCWClassifier",
    "NotFittedError",
    "DataConversionWarning",
    "load",
]

#: When learn_one meets a dict before the width is known, the model gets
#: this many features (a hashed space of 2^20 columns).
DEFAULT_SPARSE_FEATURES = 1 << 20


def _is_sparse(X):
    # scipy.sparse in every format (dok_matrix is also a dict: look first)
    return hasattr(X, "tocsr") and hasattr(X, "format")


def _as_input(X):
    """X as the extension takes it: ndarray, CSR, dict or (idx, val)."""
    if _is_sparse(X):
        return X if X.format == "csr" else X.tocsr()
    if isinstance(X, (dict, tuple)):
        return X
    if hasattr(X, "to_numpy") and not isinstance(X, np.ndarray):  # pandas
        X = X.to_numpy()
    return numeric(np.asarray(X))


def _n_rows(X):
    if _is_sparse(X):
        return X.shape[0]
    if isinstance(X, dict) or isinstance(X, tuple):
        return 1
    shape = getattr(X, "shape", None)
    if shape is not None:
        return 1 if len(shape) == 1 else shape[0]
    return len(X)


def _one_row(X):
    """Whether X is one row (a dict, or a 1-D array) rather than rows."""
    return not _is_sparse(X) and (isinstance(X, dict) or (
        isinstance(X, np.ndarray) and X.ndim == 1))


def _n_cols(X):
    if _is_sparse(X):
        return X.shape[1]
    if isinstance(X, (dict, tuple)):
        return None
    shape = getattr(X, "shape", None)
    if shape is None:
        X = np.asarray(X)
        shape = X.shape
    return shape[-1]


def _plain(v):
    """A label as a JSON-able Python value."""
    return v.item() if isinstance(v, np.generic) else v


class _Linear(Params):
    """What the PA and SCW estimators share: params, the core handle, I/O.

    Subclasses set ``_fixed`` (properties the class implies) and
    ``_conf_keys`` (keyword argument -> property name).
    """

    _fixed: dict[str, str] = {}
    _conf_keys: dict[str, str] = {}
    _is_classifier = True
    _model: Any = None   # the core handle; an instance attribute once made
    max_iter: int

    # ---- scikit-learn plumbing ------------------------------------------

    def _conf(self):
        conf = dict(self._fixed)
        for arg, key in self._conf_keys.items():
            conf[key] = text(getattr(self, arg))
        return conf

    def _register(self, labels: Any) -> dict:
        raise TypeError(f"{type(self).__name__} is a regressor: it has no "
                        "classes")

    # ---- state ---------------------------------------------------------

    def _reset(self):
        self._model = None
        self._classes = []
        self._class_index = {}

    def _name_index(self, names):
        """name -> column number, made once per list of names rather than
        on every learn_one/predict_one call."""
        cache = self.__dict__.get("_names_cache")
        if cache is None or cache[0] is not names:
            cache = self._names_cache = (names,
                                         {n: i for i, n in enumerate(names)})
        return cache[1]

    def _named(self, X):
        """X with its columns in the model's order when they have names: a
        DataFrame's columns or a dict's str keys, matched to the names the
        model learned first (which the first named input sets). Columns in
        another order are reordered; a name the model does not know, or
        one it needs that is missing from a DataFrame, is refused."""
        names = getattr(self, "feature_names_in_", None)
        if isinstance(X, dict) and not _is_sparse(X):
            keys = list(X)
            if not keys or not all(isinstance(k, str) for k in keys):
                return X
            if names is None:
                if self._model is not None:
                    raise _sw.InvalidArgument(
                        "this model learned from columns without names; "
                        "give a dict keyed by column number")
                self.feature_names_in_ = names = keys
            where = self._name_index(names)
            unknown = [k for k in keys if k not in where]
            if unknown:
                raise _sw.InvalidArgument(
                    f"unknown feature {unknown[0]!r}; the model's features: "
                    f"{', '.join(names)}")
            return {where[k]: v for k, v in X.items()}
        cols = getattr(X, "columns", None)
        if cols is None or not hasattr(X, "to_numpy") or \
                not all(isinstance(c, str) for c in cols):
            return X
        cols = list(cols)
        if names is None:
            if self._model is not None:
                raise _sw.InvalidArgument(
                    "this model learned from columns without names; a "
                    "DataFrame's names cannot be matched to them")
            self.feature_names_in_ = names = cols
        if cols == names:
            return X
        missing = [n for n in names if n not in cols]
        extra = [c for c in cols if c not in names]
        if missing or extra:
            raise _sw.ShapeError(
                f"the columns are not the model's features: missing "
                f"{missing}, unknown {extra} (the model's: {names})")
        return X[names]

    def _ensure(self, X, n_classes=0):
        """The core model, created on first use with X's width."""
        m = self._model
        if m is not None:
            return m
        if not hasattr(self, "_classes"):
            self._reset()
        width = self.n_features if self.n_features is not None else _n_cols(X)
        if width is None and getattr(self, "feature_names_in_", None):
            width = len(self.feature_names_in_)   # dicts keyed by name
        if width is None:
            width = DEFAULT_SPARSE_FEATURES
        self._model = _sw.linear_new(self._conf(), int(width), n_classes)
        self._n_features_in = int(width)
        return self._model

    def _fitted(self):
        m = self._model
        if m is None:
            raise sklearn_flavour(NotFittedError, "NotFittedError")(
                f"this {type(self).__name__} has not learned anything yet: "
                "call fit, partial_fit or learn_one first")
        return m

    @property
    def n_features_in_(self) -> int:
        return self._fitted().n_features

    @property
    def coef_(self) -> np.ndarray:
        """Weights, one row per weight vector (intercept excluded)."""
        w = self._fitted().weights
        return w[:, :self._model.n_features]

    @property
    def intercept_(self) -> np.ndarray:
        w = self._fitted().weights
        if w.shape[1] == self._model.n_features:
            return np.zeros(w.shape[0])
        return w[:, -1].copy()

    @property
    def n_updates_(self) -> int:
        return self._fitted().counts[1]

    @property
    def n_seen_(self) -> int:
        return self._fitted().counts[0]

    # ---- learning --------------------------------------------------------

    def fit(self, X: Rows, y: npt.ArrayLike) -> Self:
        """Forget everything, then learn X, y in order, max_iter times."""
        self._reset()
        self.feature_names_in_ = None
        X = _as_input(self._named(X))
        check_fit_X(X)
        y = check_y(y, self._is_classifier)
        if _n_rows(X) == 0:
            raise _sw.InvalidArgument("fit: X has no rows")
        if self._is_classifier:
            self._register(np.unique(y))
        for _ in range(int(self.max_iter)):
            self._learn(X, y)
        self.n_iter_ = int(self.max_iter)
        return self

    def _learn(self, X, y):
        if self._is_classifier:
            y = self._encode(np.asarray(y).reshape(-1))   # registers labels
            m = self._ensure(X, len(self._classes))
        else:
            y = np.asarray(y, dtype=np.float64).reshape(-1)
            m = self._ensure(X, 0)
        m.learn(X, y)

    def learn_one(self, x: Row, y: Any) -> Self:
        """Learn one example: x a 1-D array or {column: value}.

        A label never seen before is accepted and numbered after the known
        ones (in order of arrival), so with learn_one alone classes_ is in
        arrival order; partial_fit(..., classes=[...]) fixes it up front.
        """
        x = self._named(x)
        m = self._model
        if m is None:
            m = self._ensure(x, 0)
        if self._is_classifier:
            i = self._class_index.get(y)
            if i is None:
                i = self._register([y])[y]
            m.learn_one(x, float(i))
        else:
            m.learn_one(x, float(y))
        return self

    def _prequential(self, X, y, scores=False):
        """Test-then-train over X, y in C: (predictions, running metric),
        and with scores the scores before learning each row (n, n_vectors)
        and, for a classifier, y's class numbers."""
        X = _as_input(self._named(X))
        y = np.asarray(y)
        if self._is_classifier:
            self._register([v for v in np.unique(y)
                            if v not in getattr(self, "_class_index", {})])
        m = self._ensure(X, len(self._classes) if self._is_classifier else 0)
        if self._is_classifier:
            codes = self._encode(y.reshape(-1))
            out = m.prequential(X, codes, scores)
            labels = np.asarray(self._classes, dtype=object)[
                out[0].astype(np.intp)] if out[0].size else out[0]
            return (labels, *out[1:], codes) if scores else (labels, out[1])
        return m.prequential(X, np.asarray(y, dtype=np.float64).reshape(-1),
                             scores)

    # ---- scoring ---------------------------------------------------------

    def _scores(self, X):
        self._fitted()
        return self._model.predict(_as_input(self._named(X)))

    # ---- persistence -----------------------------------------------------

    def _metadata(self):
        meta = {
            "class": type(self).__name__,
            "params": {k: _plain(v) for k, v in self.get_params().items()},
            "n_features": self._model.n_features,
            "streamwise_version": _sw.__version__,
        }
        if self._is_classifier:
            meta["classes"] = [_plain(c) for c in self._classes]
        if getattr(self, "feature_names_in_", None) is not None:
            meta["feature_names"] = list(self.feature_names_in_)
        return meta

    def save(self, path: str | os.PathLike, golden: Rows | None = None,
             pipeline: Any = None, inputs: Any = None,
             sparse: Any = None,
             golden_events: Any = None,
             reference: Rows | None = None) -> str | os.PathLike:
        """Write the model to a .swm file; golden rows are optional. With
        pipeline (the streamwise.Pipeline it was trained on) the file is a
        bundle the runner serves from raw events: see
        streamwise.serve.attach for inputs, sparse and golden_events.
        reference: rows (training or validation) whose score deciles the
        runner's live evaluation measures drift against."""
        m = self._fitted()
        if pipeline is not None:
            from .serve import attach
            attach(m, pipeline, inputs, sparse, golden_events)
        meta = self._metadata()
        if reference is not None:
            meta["score_reference"] = score_reference(self._scores(reference))
        try:
            text = json.dumps(meta, sort_keys=True)
        except TypeError as e:
            raise _sw.InvalidArgument(
                f"save: labels and parameters must be JSON values ({e})"
            ) from None
        m.set_metadata(text)
        if golden is not None:
            m.set_golden(_as_input(golden))
        m.save(str(path))
        return path

    # pickle / joblib / copy.deepcopy: the Model pickles itself as its
    # .swm bytes (verified when unpickled); nothing to add here.


class _Classifier(_Linear):
    _estimator_type = "classifier"

    @property
    def classes_(self) -> np.ndarray:
        self._fitted()
        return np.asarray(self._classes)

    def _register(self, labels):
        """Give new labels class numbers (in sorted order within one call)
        and grow the core model; returns the label -> number map."""
        if not hasattr(self, "_classes"):
            self._reset()
        # Plain Python labels: a dict lookup of a float against numpy keys
        # would go through numpy's slow equality on every learn_one.
        new = [_plain(v) for v in labels if v not in self._class_index]
        if new:
            try:
                new = sorted(set(new))
            except TypeError:
                new = list(dict.fromkeys(new))
            for v in new:
                self._class_index[v] = len(self._classes)
                self._classes.append(v)
            if self._model is not None:
                self._model.add_classes(len(self._classes))
        return self._class_index

    def _encode(self, y):
        y = np.asarray(y)
        if y.dtype.kind == "f" and not np.isfinite(y).all():
            bad = int(np.flatnonzero(~np.isfinite(y))[0])
            raise _sw.InvalidArgument(
                f"y[{bad}] is {y[bad]}: a class label must be a value, not "
                f"NaN or infinity")
        if y.dtype.kind == "O" and any(v is None or (isinstance(v, float)
                                                     and v != v) for v in y):
            bad = next(i for i, v in enumerate(y)
                       if v is None or (isinstance(v, float) and v != v))
            raise _sw.InvalidArgument(f"y[{bad}] is {y[bad]}: a class "
                                      f"label must be a value")
        codes = self._known_codes(y)
        if codes is not None:
            return codes
        uniq, inv = np.unique(y, return_inverse=True)
        self._register(list(uniq))
        lut = np.array([self._class_index[v] for v in uniq], dtype=np.float64)
        return lut[inv]

    def _known_codes(self, y):
        """y's class numbers when every label is a number already known
        (of at most 16), else None: a comparison per known label, where
        np.unique sorts all of y (8x slower on 200,000 labels of two
        classes, and 3 ms of a 25 ms partial_fit of 200,000 hashed rows)."""
        known = getattr(self, "_classes", None)
        if (y.dtype.kind not in "biuf" or not known or len(known) > 16 or
                not all(isinstance(c, (int, float)) for c in known)):
            return None
        found = y == known[0]
        codes = np.zeros(y.shape)
        for i in range(1, len(known)):
            m = y == known[i]
            codes[m] = i
            found |= m
        return codes if found.all() else None

    def partial_fit(self, X: Rows, y: npt.ArrayLike,
                    classes: npt.ArrayLike | None = None) -> Self:
        """Learn X, y in order. Labels never seen before are accepted."""
        X = _as_input(self._named(X))
        check_fit_X(X, "partial_fit")
        y = check_y(y, True)
        if classes is not None:
            self._register(list(np.unique(np.asarray(classes))))
        self._learn(X, y)
        self.n_iter_ = 1
        return self

    def decision_function(self, X: Rows | Row) -> np.ndarray | float:
        """Binary: w.x + b, shape (n,); multiclass: (n, n_classes)."""
        return self._scores(X)

    def _labels(self, scores):
        classes = np.asarray(self._classes)
        if scores.ndim == 1 or len(self._classes) <= 2:
            if len(self._classes) < 2:
                return np.full(np.shape(scores)[:1], classes[0])
            return classes[(scores > 0).astype(np.intp)]
        return classes[np.argmax(scores, axis=1)]

    def predict(self, X: Rows | Row) -> np.ndarray | Any:
        s = self._scores(X)
        if np.ndim(s) == 0:
            return self._labels(np.array([s]))[0]
        if _one_row(X):
            return self._labels(s[None, :])[0]
        return self._labels(s)

    def predict_proba(self, X: Rows | Row) -> np.ndarray:
        """Class probabilities, (n, n_classes), in classes_ order, by
        squashing the scores: the logistic function of the decision value
        (binary), the softmax of the class scores (multiclass), as River's
        PAClassifier does. PA and SCW are margin learners, so these are
        not calibrated; sklearn.calibration.CalibratedClassifierCV
        calibrates them. Their argmax is always predict's label."""
        s = np.asarray(self._scores(X), dtype=np.float64)
        k = len(self._classes)
        if _one_row(X):
            return proba(s.reshape(1, -1), k)[0]
        return proba(s if s.ndim == 2 else s.reshape(-1, 1), k)

    def predict_proba_one(self, x: Row) -> dict[Any, float]:
        """River's call: {label: probability} for one row (see
        predict_proba)."""
        m = self._fitted()
        s = np.atleast_1d(np.asarray(m.predict(self._named(x)),
                                     dtype=np.float64))
        p = proba(s.reshape(1, -1), len(self._classes))[0]
        return dict(zip(self._classes, p.tolist()))

    def predict_one(self, x: Row) -> Any:
        """The label predicted for one row (1-D array or dict, keyed by
        column number or, once the model has names, by name)."""
        m = self._fitted()
        s = m.predict(self._named(x))
        if isinstance(s, float):
            if len(self._classes) < 2:
                return self._classes[0]
            return self._classes[1] if s > 0 else self._classes[0]
        return self._classes[int(np.argmax(s))]

    def score(self, X: Rows, y: npt.ArrayLike) -> float:
        """Mean accuracy on X, y."""
        return float(np.mean(self.predict(X) == np.asarray(y)))


class _Regressor(_Linear):
    _estimator_type = "regressor"
    _is_classifier = False

    def partial_fit(self, X: Rows, y: npt.ArrayLike) -> Self:
        X = _as_input(self._named(X))
        check_fit_X(X, "partial_fit")
        self._learn(X, check_y(y, False))
        self.n_iter_ = 1
        return self

    def predict(self, X: Rows | Row) -> np.ndarray | float:
        return self._scores(X)

    def predict_one(self, x: Row) -> float:
        m = self._fitted()
        return float(m.predict(self._named(x)))

    def score(self, X: Rows, y: npt.ArrayLike) -> float:
        """R^2 of the predictions on X, y."""
        y = np.asarray(y, dtype=np.float64)
        p = self.predict(X)
        ss_res = float(np.sum((y - p) ** 2))
        ss_tot = float(np.sum((y - y.mean()) ** 2))
        return 1.0 - ss_res / ss_tot if ss_tot > 0 else 0.0


class PassiveAggressiveClassifier(_Classifier):
    """Passive-aggressive classification (Crammer et al., JMLR 2006).

    Binary or multiclass (max-score violation), learned one row at a time;
    ``variant`` is ``"pa"``, ``"pa1"`` (step capped at C) or ``"pa2"``.
    ``fit`` makes ``max_iter`` passes in order; ``partial_fit`` and
    ``learn_one`` continue learning, and accept labels never seen before.
    """

    _fixed = {"linear.task": "classification", "linear.algorithm": "pa"}
    _conf_keys = {"C": "pa.C", "variant": "pa.variant",
                  "fit_intercept": "linear.fit_intercept"}

    def __init__(self, C: float = 1.0, variant: str = "pa1",
                 fit_intercept: bool = True, n_features: int | None = None,
                 max_iter: int = 1) -> None:
        self.C = C
        self.variant = variant
        self.fit_intercept = fit_intercept
        self.n_features = n_features
        self.max_iter = max_iter


class PassiveAggressiveRegressor(_Regressor):
    """Passive-aggressive epsilon-insensitive regression (JMLR 2006, Sec. 4)."""

    _fixed = {"linear.task": "regression", "linear.algorithm": "pa"}
    _conf_keys = {"C": "pa.C", "epsilon": "pa.epsilon",
                  "variant": "pa.variant",
                  "fit_intercept": "linear.fit_intercept"}

    def __init__(self, C: float = 1.0, epsilon: float = 0.1,
                 variant: str = "pa1", fit_intercept: bool = True,
                 n_features: int | None = None, max_iter: int = 1) -> None:
        self.C = C
        self.epsilon = epsilon
        self.variant = variant
        self.fit_intercept = fit_intercept
        self.n_features = n_features
        self.max_iter = max_iter


class SCWClassifier(_Classifier):
    """Soft confidence-weighted classification (Wang, Zhao, Hoi, ICML 2012).

    ``variant`` is ``"scw1"`` or ``"scw2"``; ``covariance`` is ``"diag"``
    (any width, hashed sparse input) or ``"full"`` (small widths); ``a`` is
    the initial variance. Binary or multiclass.
    """

    _fixed = {"linear.task": "classification", "linear.algorithm": "scw"}
    _conf_keys = {"C": "scw.C", "eta": "scw.eta", "variant": "scw.variant",
                  "covariance": "scw.covariance", "a": "scw.a",
                  "fit_intercept": "linear.fit_intercept"}

    def __init__(self, C: float = 1.0, eta: float = 0.9, variant: str = "scw1",
                 covariance: str = "diag", a: float = 1.0,
                 fit_intercept: bool = True, n_features: int | None = None,
                 max_iter: int = 1) -> None:
        self.C = C
        self.eta = eta
        self.variant = variant
        self.covariance = covariance
        self.a = a
        self.fit_intercept = fit_intercept
        self.n_features = n_features
        self.max_iter = max_iter


def _document(cls):
    """Append the keyword arguments' documentation, taken from the core's
    property table (the same text CONFIGURATION.md shows)."""
    table = {name: (typ, default, accepted, doc)
             for name, typ, default, accepted, doc in _sw.conf_props()}
    lines = ["", "    Parameters", "    ----------"]
    for arg, key in cls._conf_keys.items():
        typ, default, accepted, doc = table[key]
        lines.append(f"    {arg} : {typ}, default {default} (``{key}``)")
        lines.append(f"        {doc} Accepted: {accepted}.")
    lines.append("    n_features : int or None")
    lines.append("        Width of the rows; None takes it from the first "
                 "data (2^20 for a dict).")
    lines.append("    max_iter : int, default 1")
    lines.append("        Passes that ``fit`` makes over the data, in order.")
    cls.__doc__ = (cls.__doc__ or "") + "\n".join(lines) + "\n"


for _cls in (PassiveAggressiveClassifier, PassiveAggressiveRegressor,
             SCWClassifier):
    _document(_cls)

_CLASSES = {c.__name__: c for c in (PassiveAggressiveClassifier,
                                    PassiveAggressiveRegressor,
                                    SCWClassifier)}


def load(path: str | os.PathLike) -> Any:
    """Load a .swm file (verified: checksums, version, golden vectors) and
    return the estimator that saved it, ready to predict and keep learning."""
    m = _sw.load(str(path))
    meta = json.loads(m.metadata)
    if meta.get("class") == "ALS":
        from .recommend import ALS
        return ALS._from_model(m, meta)
    if meta.get("class") in ("GBDTClassifier", "GBDTRegressor"):
        from . import gbdt
        return getattr(gbdt, meta["class"])._from_model(m, meta)
    cls = _CLASSES.get(meta.get("class"))
    if cls is None:
        raise _sw.FormatError(
            f"{path}: METADATA names class {meta.get('class')!r}, which this "
            f"streamwise does not know ({', '.join(_CLASSES)}, ALS)")
    est = cls(**meta.get("params", {}))
    est._reset()
    est._model = m
    est._n_features_in = m.n_features
    est.feature_names_in_ = meta.get("feature_names")
    if est._is_classifier:
        for label in meta.get("classes", []):
            est._class_index[label] = len(est._classes)
            est._classes.append(label)
    return est
