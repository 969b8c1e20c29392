"""Evaluation of online learners on streams."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

if TYPE_CHECKING:
    import numpy.typing as npt

__all__ = ["prequential", "roc_auc", "ranking_metrics_at_k",
           "train_test_split", "leave_k_out_split", "rmse"]

CLASSIFIER_METRICS = ("accuracy", "log_loss", "roc_auc")
REGRESSOR_METRICS = ("mae", "rmse")


def prequential(model: Any, X: Any, y: npt.ArrayLike,
                return_predictions: bool = False,
                metrics: str | Sequence[str] | None = None) -> Any:
    """Test-then-train over the rows of X in order, in C.

    For each row the model first predicts, then learns it. The model keeps
    what it learned.

    With ``metrics=None`` returns the running accuracy (classifiers) or
    mean absolute error (regressors) after each row, as a float64 array of
    len(y). With a list of names returns a dict name -> value:

    * ``"accuracy"``, ``"log_loss"`` (classifiers), ``"mae"``, ``"rmse"``
      (regressors): the running value after each row, a float64 array of
      len(y), as River's progressive validation reports it;
    * ``"roc_auc"`` (classifiers): the area under the ROC curve of every
      row's scores before it was learned, one float (binary; for more
      classes the one-vs-rest average over the classes present, as
      scikit-learn's ``roc_auc_score(multi_class="ovr")``).

    Log-loss uses the probabilities of ``predict_proba`` (the logistic or
    softmax of the scores, uncalibrated), clipped to [1e-15, 1 - 1e-15].
    ``return_predictions=True`` returns ``(result, predictions)``.
    """
    if not hasattr(model, "_prequential"):
        raise TypeError(f"{type(model).__name__} is not a streamwise online "
                        "learner")
    if metrics is None:
        pred, metric = model._prequential(X, y)
        result = metric
    else:
        metrics = [metrics] if isinstance(metrics, str) else list(metrics)
        known = CLASSIFIER_METRICS if model._is_classifier \
            else REGRESSOR_METRICS
        bad = [m for m in metrics if m not in known]
        if bad:
            from . import _sw
            raise _sw.InvalidArgument(
                f"prequential: unknown metric {bad[0]!r} for a "
                f"{'classifier' if model._is_classifier else 'regressor'}; "
                f"expected one of {', '.join(known)}")
        if model._is_classifier:
            pred, metric, scores, codes = model._prequential(X, y, True)
            result = _classifier_metrics(metrics, metric, scores,
                                         codes.astype(np.intp),
                                         len(model.classes_))
        else:
            pred, metric, scores = model._prequential(X, y, True)
            err = np.asarray(y, dtype=np.float64).reshape(-1) - scores[:, 0]
            n = np.arange(1, len(err) + 1)
            result = {}
            for m in metrics:
                result[m] = metric if m == "mae" else \
                    np.sqrt(np.cumsum(err * err) / n)
    if return_predictions:
        return result, np.asarray(pred)
    return result


def _classifier_metrics(names, accuracy, scores, codes, n_classes):
    from ._base import proba, row_log_loss
    p = proba(scores, n_classes)          # once, for log-loss and AUC
    out = {}
    for name in names:
        if name == "accuracy":
            out[name] = accuracy
        elif name == "log_loss":
            out[name] = np.cumsum(row_log_loss(p, codes)) / \
                np.arange(1, len(codes) + 1)
        elif n_classes <= 2:
            out[name] = roc_auc(codes == 1, scores[:, 0])
        else:
            present = [c for c in range(n_classes)
                       if 0 < np.sum(codes == c) < len(codes)]
            out[name] = float(np.mean([roc_auc(codes == c, p[:, c])
                                       for c in present])) \
                if present else float("nan")
    return out


def roc_auc(positive: npt.ArrayLike, score: npt.ArrayLike) -> float:
    """Area under the ROC curve: the probability that a positive row
    scores above a negative one, ties counting one half (the Mann-Whitney
    statistic from average ranks). NaN when one side is empty."""
    positive = np.asarray(positive, dtype=bool)
    score = np.asarray(score, dtype=np.float64)
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(score, kind="mergesort")
    s = score[order]
    # average rank (1-based) of each run of equal scores
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    ends = np.r_[starts[1:], len(s)]
    avg = (starts + ends + 1) / 2.0
    ranks = np.empty(len(s))
    ranks[order] = np.repeat(avg, ends - starts)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0)
                 / (n_pos * n_neg))


def __getattr__(name):
    # the recommendation metrics and splits live with ALS; reachable here
    if name in ("ranking_metrics_at_k", "train_test_split",
                "leave_k_out_split", "rmse"):
        from . import recommend
        return getattr(recommend, name)
    raise AttributeError(name)
