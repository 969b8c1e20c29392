"""Prequential log-loss, AUC and RMSE, and the linear classifiers'
probabilities: checked against a row-by-row loop through the public API
(decision_function, then partial_fit) and scikit-learn's metrics."""
import numpy as np
import pytest
from sklearn.metrics import log_loss, roc_auc_score

import streamwise as sw
from streamwise.evaluate import prequential, roc_auc

from conftest import separable


def row_by_row(make, X, y, classes):
    """Each row's scores before it is learned, by the public API."""
    m = make()
    out = []
    for i in range(len(y)):
        if i == 0:
            out.append(np.zeros(1 if len(classes) == 2 else len(classes)))
        else:
            out.append(np.atleast_1d(m.decision_function(X[i:i + 1])[0]))
        m.partial_fit(X[i:i + 1], y[i:i + 1], classes=classes)
    return np.array(out)


def squash(s):
    if s.shape[1] == 1:
        p1 = 1 / (1 + np.exp(-s[:, 0]))
        return np.column_stack([1 - p1, p1])
    z = np.exp(s - s.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("k", [2, 4])
@pytest.mark.parametrize("make", [
    lambda: sw.PassiveAggressiveClassifier(C=0.1),
    lambda: sw.SCWClassifier(C=0.5, eta=0.8)])
def test_classifier_metrics_match_a_row_by_row_loop(make, k, rng):
    X, y = separable(rng, n=400, d=5, k=k, noise=1.0)
    classes = np.unique(y)
    res, pred = prequential(make(), X, y, metrics=["accuracy", "log_loss",
                                                   "roc_auc"],
                            return_predictions=True)
    s = row_by_row(make, X, y, classes)
    p = squash(s)
    # the first row is predicted by an empty model in both
    for n in (50, 200, 400):
        assert res["log_loss"][n - 1] == pytest.approx(
            log_loss(y[:n], p[:n], labels=classes), rel=1e-9)
    if k == 2:
        want = roc_auc_score(y, s[:, 0])
    else:
        want = roc_auc_score(y, p, multi_class="ovr", labels=classes)
    assert res["roc_auc"] == pytest.approx(want, rel=1e-12)
    assert res["accuracy"][-1] == pytest.approx(np.mean(pred == y))
    # the old call still returns the running accuracy alone
    acc = prequential(make(), X, y)
    assert np.array_equal(acc, res["accuracy"])


def test_regressor_rmse_and_mae(rng):
    X = rng.standard_normal((300, 4))
    y = X @ np.array([1.0, -2.0, 0.5, 0.0]) + 0.1 * rng.standard_normal(300)
    res, pred = prequential(sw.PassiveAggressiveRegressor(), X, y,
                            metrics=["mae", "rmse"], return_predictions=True)
    err = y - pred
    assert res["rmse"][-1] == pytest.approx(np.sqrt(np.mean(err ** 2)))
    assert res["mae"][99] == pytest.approx(np.mean(np.abs(err[:100])))


def test_unknown_metric_is_named():
    X, y = np.zeros((3, 2)), np.array([0, 1, 0])
    with pytest.raises(sw.InvalidArgument, match="'auc'.*accuracy, log_loss, "
                                                  "roc_auc"):
        prequential(sw.PassiveAggressiveClassifier(), X, y, metrics=["auc"])
    with pytest.raises(sw.InvalidArgument, match="'log_loss'.*mae, rmse"):
        prequential(sw.PassiveAggressiveRegressor(), X, y,
                    metrics=["log_loss"])


def test_roc_auc_with_ties_matches_sklearn(rng):
    y = rng.integers(0, 2, 500).astype(bool)
    s = rng.integers(0, 7, 500).astype(float)   # many ties
    assert roc_auc(y, s) == pytest.approx(roc_auc_score(y, s), rel=1e-12)
    assert np.isnan(roc_auc(np.ones(5, bool), np.arange(5.0)))


@pytest.mark.parametrize("k", [2, 3])
def test_predict_proba_is_squashed_scores(k, rng):
    X, y = separable(rng, n=300, d=4, k=k, noise=0.8)
    m = sw.PassiveAggressiveClassifier(C=0.1).fit(X, y)
    s = m.decision_function(X)
    p = m.predict_proba(X)
    assert p.shape == (300, k)
    assert np.allclose(p.sum(axis=1), 1.0)
    assert np.array_equal(np.asarray(m.classes_)[p.argmax(axis=1)],
                          m.predict(X))
    assert np.allclose(p, squash(s.reshape(300, -1)), rtol=1e-12)
    one = m.predict_proba_one(X[7])
    assert list(one) == list(m.classes_)
    assert np.allclose(list(one.values()), p[7], rtol=1e-12)
    assert np.allclose(m.predict_proba(X[7]), p[7], rtol=1e-12)
    # large margins do not overflow
    big = m.predict_proba(X * 1e6)
    assert np.all(np.isfinite(big)) and np.allclose(big.sum(axis=1), 1.0)


def test_named_rows_follow_a_new_set_of_names(rng):
    import pandas as pd
    X = rng.standard_normal((50, 2))
    y = (X[:, 0] > 0).astype(int)
    m = sw.PassiveAggressiveClassifier()
    m.fit(pd.DataFrame(X, columns=["a", "b"]), y)
    d = m.decision_function(X[:1])[0]
    assert m.decision_function({"b": X[0, 1], "a": X[0, 0]}) == \
        pytest.approx(d)
    m.fit(pd.DataFrame(X[:, ::-1], columns=["b", "a"]), y)  # a new model
    d2 = m.decision_function(X[:1, ::-1])[0]
    assert m.decision_function({"a": X[0, 0], "b": X[0, 1]}) == \
        pytest.approx(d2)
