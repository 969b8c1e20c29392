"""What the package's modules share that belongs to none of them: the
estimators' parameter protocol and input checks, their exceptions, the
one progress bar, who is running."""
from __future__ import annotations

import getpass
import inspect
import os
import socket
from typing import TYPE_CHECKING, Any, Mapping, Union

import numpy as np

from . import _sw

if TYPE_CHECKING:
    from typing import Self

    import numpy.typing as npt
    import pandas
    import scipy.sparse

    #: rows: an array (n, d), a scipy.sparse matrix or a DataFrame
    Rows = Union[npt.ArrayLike, scipy.sparse.spmatrix, pandas.DataFrame]
    #: one row: a 1-D array, or {column number or name: value}
    Row = Union[npt.ArrayLike, Mapping[Any, float]]


def text(value):
    """A keyword value as the property table's text (exact for floats)."""
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (float, np.floating)):
        return repr(float(value))
    return str(value)


class NotFittedError(_sw.StateError, ValueError, AttributeError):
    """An estimator used before it learned anything. A StateError, and a
    ValueError and AttributeError as scikit-learn's NotFittedError is, so
    that code written for scikit-learn (and hasattr on fitted attributes)
    behaves the same; when scikit-learn is loaded, what is raised is also
    its NotFittedError (see sklearn_flavour)."""


NotFittedError.__module__ = "streamwise"


class DataConversionWarning(UserWarning):
    """Input that was converted to what the estimator expects (a column
    vector y, raveled), as scikit-learn's warning of the same name."""


DataConversionWarning.__module__ = "streamwise"

_FLAVOURED: dict[str, type] = {}


def sklearn_flavour(cls, name):
    """cls, or, once scikit-learn is imported (never by streamwise: it
    costs 0.6 s), a subclass of cls and of scikit-learn's class of the same
    name, so that `except sklearn.exceptions.NotFittedError` and
    scikit-learn's own checks see theirs."""
    import sys
    sk = sys.modules.get("sklearn.exceptions")
    if sk is None:
        return cls
    got = _FLAVOURED.get(name)
    if got is None:
        got = _FLAVOURED[name] = type(name, (cls, getattr(sk, name)),
                                      {"__module__": cls.__module__})
    return got


def numeric(X):
    """An array of numbers: object arrays of numbers converted (anything
    else in them raises the TypeError float() raises), complex refused."""
    if X.dtype.kind == "c":
        raise _sw.InvalidArgument("Complex data not supported: X holds "
                                  f"{X.dtype} values, expected real numbers")
    if X.dtype.kind == "O":
        return X.astype(np.float64)
    return X


def check_fit_X(X, what="fit"):
    """Training data that holds something: scikit-learn's messages for no
    rows and no columns."""
    shape = getattr(X, "shape", None)
    if shape is None or len(shape) != 2:
        return
    if shape[0] == 0:
        raise _sw.InvalidArgument(
            f"{what}: X has no rows: Found array with 0 sample(s) "
            f"(shape={shape}) while a minimum of 1 is required.")
    if shape[1] == 0:
        raise _sw.InvalidArgument(
            f"{what}: 0 feature(s) (shape={shape}) while a minimum of 1 is "
            "required.")


def check_y(y, classifier):
    """y as one column: a column vector is raveled with a warning, more
    columns are refused; a classifier refuses continuous values (labels
    are classes, and a float target is almost always a regression
    mistake: scikit-learn's "Unknown label type")."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        import warnings
        warnings.warn(
            "A column-vector y was passed when a 1d array was expected. "
            "Please change the shape of y to (n_samples, ), for example "
            "using ravel().",
            sklearn_flavour(DataConversionWarning, "DataConversionWarning"),
            stacklevel=3)
        y = y.ravel()
    elif y.ndim > 1:
        raise _sw.ShapeError(f"y has shape {y.shape}; expected one target "
                             "per row (1-D)")
    if classifier and y.dtype.kind == "f" and y.size and \
            np.all(np.isfinite(y)) and np.any(y != np.floor(y)):
        raise _sw.InvalidArgument(
            "Unknown label type: continuous. A classifier's labels are "
            f"classes, and y holds values such as {y[y != np.floor(y)][0]!r}"
            "; use a regressor for a continuous target")
    return y


def proba(scores, n_classes):
    """Probabilities from scores (rows of n_vectors values): logistic for
    one decision value, softmax for one score per class."""
    if n_classes < 2:
        return np.ones((scores.shape[0], 1))
    if scores.ndim == 1:
        scores = scores.reshape(-1, 1)
    if scores.shape[1] == 1:
        # 1 / (1 + e^-d), written so that neither side overflows
        d = scores[:, 0]
        e = np.exp(-np.abs(d))
        p1 = np.where(d >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
        return np.column_stack([1.0 - p1, p1])
    z = np.exp(scores - scores.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def score_reference(raw, proba=False):
    """What a runner's live evaluation measures drift against
    (docs/runner.md, "Live evaluation"), from the core's outputs on
    reference rows (n x outputs): the nine decile edges of the scores
    (one output: the value itself, a decision value, a probability or a
    prediction; several: the top class's probability, softmax of scores
    unless proba says they are probabilities already, as
    csrc/runner/sw_evaluate.c takes them) and the fractions of the rows in
    the ten bins they make (a score equal to an edge falls below it)."""
    raw = np.asarray(raw, dtype=np.float64)
    raw = raw.reshape(len(raw), -1)
    if len(raw) < 10 or not np.all(np.isfinite(raw)):
        from . import _sw
        raise _sw.InvalidArgument(
            f"reference: {len(raw)} rows; expected at least 10 with finite "
            f"scores, to make deciles of")
    if raw.shape[1] == 1:
        s = raw[:, 0]
    elif proba:
        s = raw.max(axis=1)
    else:
        s = 1.0 / np.exp(raw - raw.max(axis=1, keepdims=True)).sum(axis=1)
    n = len(s)
    edges = np.sort(s)[[(n * (b + 1)) // 10 for b in range(9)]]
    frac = np.bincount(np.searchsorted(edges, s, side="left"),
                       minlength=10) / n
    return {"edges": edges.tolist(), "fractions": frac.tolist(), "rows": n}


def row_log_loss(p, codes):
    """Each row's log-loss: -log of the probability p (rows x classes) gave
    its class number, clipped to [1e-15, 1 - 1e-15] as scikit-learn does."""
    codes = np.asarray(codes, dtype=np.intp)
    return -np.log(np.clip(p[np.arange(len(codes)), codes], 1e-15,
                           1 - 1e-15))


class Params:
    """scikit-learn's parameter protocol for every estimator here: the
    parameters are the arguments of __init__, kept as attributes."""

    @classmethod
    def _param_names(cls):
        sig = inspect.signature(cls.__init__)
        return [p for p in sig.parameters if p != "self"]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self._param_names()}

    def __repr__(self):
        """scikit-learn's: the class and the parameters not at their
        defaults, e.g. GBDTClassifier(n_estimators=3)."""
        defaults = inspect.signature(type(self).__init__).parameters
        changed = [f"{k}={v!r}" for k, v in self.get_params().items()
                   if defaults[k].default is not v and defaults[k].default != v]
        return f"{type(self).__name__}({', '.join(changed)})"

    def set_params(self, **params: Any) -> Self:
        names = self._param_names()
        for key, value in params.items():
            if key not in names:
                raise _sw.InvalidArgument(
                    f"invalid parameter {key!r} for {type(self).__name__}; "
                    f"valid parameters: {', '.join(names)}")
            setattr(self, key, value)
        return self




def who():
    """user@host, as the tracking store and the registry record it."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


def program(name, env):
    """The path of one of streamwise's executables (sw-serve, sw-broker):
    $env, the build in place (build/bin next to python/), the copy
    installed with the package (streamwise/bin, by pip install), or one
    on PATH; raises UnsupportedError naming where it looked."""
    import shutil
    from . import _sw
    given = os.environ.get(env)
    if given:
        return given
    here = os.path.dirname(os.path.abspath(__file__))
    for path in (os.path.join(here, "..", "..", "build", "bin", name),
                 os.path.join(here, "bin", name)):
        if os.path.exists(path):
            return os.path.normpath(path)
    found = shutil.which(name)
    if found:
        return found
    raise _sw.UnsupportedError(
        f"{name} not found: run make (it builds build/bin/{name}), pip "
        f"install the package (it installs streamwise/bin/{name}), or set "
        f"{env}")


def progress_bar(total, unit, desc=None):
    """The package's one progress bar (tqdm): the notebook widget where
    ipywidgets is installed, text otherwise (tqdm.auto would warn
    "IProgress not found" when it has to fall back); None without tqdm."""
    try:
        import ipywidgets  # noqa: F401
        from tqdm.auto import tqdm
    except ImportError:
        try:
            from tqdm import tqdm
        except ImportError:                           # pragma: no cover
            return None
    return tqdm(total=total, unit=unit, desc=desc)


def remove_stale_tmp(folder):
    """Temporary files (``name.tmp.<pid>``) of writers killed between
    writing and renaming (registrations, top-N shards): nobody else would
    ever remove them."""
    for f in os.listdir(folder):
        head, sep, pid = f.rpartition(".tmp.")
        if not sep or not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            try:
                os.unlink(os.path.join(folder, f))
            except FileNotFoundError:
                pass
        except PermissionError:
            pass                       # alive, someone else's
