"""Every update rule of the C core against the slow numpy reference
(streamwise.reference), row by row, on seeded random streams."""
import numpy as np
import pytest
import scipy.sparse as sp

import streamwise as sw
from streamwise.reference import LinearReference

from conftest import separable

CASES = [
    # (estimator factory, reference settings)
    (lambda: sw.PassiveAggressiveClassifier(variant="pa"),
     dict(algorithm="pa", variant="pa")),
    (lambda: sw.PassiveAggressiveClassifier(variant="pa1", C=0.05),
     dict(algorithm="pa", variant="pa1", C=0.05)),
    (lambda: sw.PassiveAggressiveClassifier(variant="pa2", C=0.3),
     dict(algorithm="pa", variant="pa2", C=0.3)),
    (lambda: sw.PassiveAggressiveClassifier(fit_intercept=False),
     dict(algorithm="pa", variant="pa1", fit_intercept=False)),
    (lambda: sw.SCWClassifier(variant="scw1", C=0.5, eta=0.8),
     dict(algorithm="scw", variant="scw1", C=0.5, eta=0.8)),
    (lambda: sw.SCWClassifier(variant="scw2", C=2.0, eta=0.95, a=0.5),
     dict(algorithm="scw", variant="scw2", C=2.0, eta=0.95, a=0.5)),
    (lambda: sw.SCWClassifier(covariance="full"),
     dict(algorithm="scw", variant="scw1", covariance="full")),
    (lambda: sw.SCWClassifier(variant="scw2", covariance="full", C=0.2),
     dict(algorithm="scw", variant="scw2", covariance="full", C=0.2)),
]


def reference_run(settings, X, y, n_classes):
    ref = LinearReference(X.shape[1], n_classes=n_classes, **settings)
    pred = ref.prequential(X, y)
    return ref, pred


@pytest.mark.parametrize("k", [2, 4])
@pytest.mark.parametrize("make,settings", CASES)
def test_classifier_matches_reference(rng, make, settings, k):
    X, y = separable(rng, n=250, d=7, k=k)
    est = make()
    metric, pred = sw.evaluate.prequential(est, X, y, return_predictions=True)
    ref, ref_pred = reference_run(settings, X, y, k)
    W = est._model.weights
    np.testing.assert_allclose(W, ref.W, rtol=1e-9, atol=1e-12)
    if settings["algorithm"] == "scw":
        np.testing.assert_allclose(est._model.sigma, ref.S, rtol=1e-9,
                                   atol=1e-12)
    np.testing.assert_array_equal(pred.astype(int), ref_pred.astype(int))
    # the running accuracy is the running mean of those predictions
    np.testing.assert_allclose(
        metric, np.cumsum(ref_pred == y) / np.arange(1, len(y) + 1))
    # and the model learned something
    assert metric[-1] > 0.6


@pytest.mark.parametrize("variant,C,eps", [("pa", 1.0, 0.1), ("pa1", 0.05, 0.0),
                                           ("pa2", 0.5, 0.3)])
def test_regressor_matches_reference(rng, variant, C, eps):
    X = rng.standard_normal((300, 5))
    y = X @ rng.standard_normal(5) + 0.7 + 0.1 * rng.standard_normal(300)
    est = sw.PassiveAggressiveRegressor(C=C, epsilon=eps, variant=variant)
    mae, pred = sw.evaluate.prequential(est, X, y, return_predictions=True)
    ref = LinearReference(5, task="regression", algorithm="pa",
                          variant=variant, C=C, epsilon=eps)
    ref_pred = ref.prequential(X, y)
    np.testing.assert_allclose(pred, ref_pred, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(est._model.weights, ref.W, rtol=1e-9,
                               atol=1e-12)
    np.testing.assert_allclose(
        mae, np.cumsum(np.abs(y - ref_pred)) / np.arange(1, 301), rtol=1e-12)
    assert mae[-1] < np.mean(np.abs(y - y.mean()))


@pytest.mark.parametrize("make", [lambda: sw.PassiveAggressiveClassifier(),
                                  lambda: sw.SCWClassifier()])
def test_dense_sparse_float32_agree(rng, make):
    X, y = separable(rng, n=200, d=9, k=3)
    X[rng.random(X.shape) < 0.5] = 0.0
    X32 = X.astype(np.float32)
    a, b, c = make(), make(), make()
    a.fit(X32.astype(np.float64), y)
    b.fit(sp.csr_matrix(X32), y)
    c.fit(X32, y)
    np.testing.assert_allclose(a._model.weights, b._model.weights, rtol=1e-12,
                               atol=1e-14)
    # float32 rows are widened exactly: same bits as the float64 copy
    np.testing.assert_array_equal(a._model.weights, c._model.weights)


def test_partial_fit_chunks_equal_one_pass(rng):
    X, y = separable(rng, n=500, d=6, k=3)
    one = sw.SCWClassifier().fit(X, y)
    parts = sw.SCWClassifier()
    for lo in range(0, 500, 37):
        parts.partial_fit(X[lo:lo + 37], y[lo:lo + 37], classes=[0, 1, 2])
    np.testing.assert_array_equal(one._model.weights, parts._model.weights)
    rows = sw.SCWClassifier()
    rows.partial_fit(X[:1], y[:1], classes=[0, 1, 2])
    for i in range(1, 500):
        rows.learn_one(X[i], y[i])
    np.testing.assert_array_equal(one._model.weights, rows._model.weights)


def test_determinism(rng):
    X, y = separable(rng, n=300, d=5, k=2)
    a = sw.PassiveAggressiveClassifier().fit(X, y)
    b = sw.PassiveAggressiveClassifier().fit(X, y)
    np.testing.assert_array_equal(a.decision_function(X),
                                  b.decision_function(X))


def test_hashed_sparse_space():
    """2^24 columns, dict rows and CSR rows: same model."""
    rng = np.random.default_rng(7)
    dims = 1 << 24
    rows = [dict(zip(rng.integers(0, dims, 20).tolist(),
                     rng.standard_normal(20).tolist())) for _ in range(300)]
    y = []
    for r in rows:
        s = sum(v * ((j * 2654435761) % 7 - 3) for j, v in r.items())
        y.append(int(s > 0))
    a = sw.SCWClassifier(n_features=dims)
    a.partial_fit(rows[0], [y[0]], classes=[0, 1])
    for r, t in zip(rows[1:], y[1:]):
        a.learn_one(r, t)
    indptr = np.cumsum([0] + [len(r) for r in rows])
    indices = np.concatenate([list(r.keys()) for r in rows])
    data = np.concatenate([list(r.values()) for r in rows])
    X = sp.csr_matrix((data, indices, indptr), shape=(300, dims))
    b = sw.SCWClassifier(n_features=dims).fit(X, y)
    np.testing.assert_array_equal(a.decision_function(X),
                                  b.decision_function(X))
    assert a.n_features_in_ == dims
