"""Evaluation of online learners on streams."""
import numpy as np

__all__ = ["prequential", "ranking_metrics_at_k", "train_test_split",
           "leave_k_out_split", "rmse"]


def prequential(model, X, y, return_predictions=False):
    """Test-then-train over the rows of X in order, in C.

    For each row the model first predicts, then learns it. Returns the
    running accuracy (classifiers) or mean absolute error (regressors)
    after each row, as a float64 array of len(y); with
    ``return_predictions=True`` returns ``(metric, predictions)``. The model
    keeps what it learned.
    """
    if not hasattr(model, "_prequential"):
        raise TypeError(f"{type(model).__name__} is not a streamwise online "
                        "learner")
    pred, metric = model._prequential(X, y)
    if return_predictions:
        return metric, np.asarray(pred)
    return metric


def __getattr__(name):
    # the recommendation metrics and splits live with ALS; reachable here
    if name in ("ranking_metrics_at_k", "train_test_split",
                "leave_k_out_split", "rmse"):
        from . import recommend
        return getattr(recommend, name)
    raise AttributeError(name)
