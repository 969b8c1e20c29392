"""The scikit-learn face of the learners, their inputs and their errors."""
import pickle
import sys
import threading
import tracemalloc

import numpy as np
import pytest
import scipy.sparse as sp

import streamwise as sw

from conftest import separable

ESTIMATORS = [sw.PassiveAggressiveClassifier, sw.SCWClassifier,
              sw.PassiveAggressiveRegressor]


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_sklearn_clone_and_params(cls):
    from sklearn.base import clone
    est = cls(C=0.5, fit_intercept=False)
    c = clone(est)
    assert c.get_params() == est.get_params()
    assert c is not est
    c.set_params(C=2.0)
    assert c.C == 2.0 and est.C == 0.5
    with pytest.raises(ValueError, match="invalid parameter 'nope'"):
        c.set_params(nope=1)
    assert "C=0.5" in repr(est)


@pytest.mark.parametrize("cls,param,value", [
    (sw.GBDTClassifier, "num_leaves", 7), (sw.GBDTRegressor, "max_bin", 63),
    (sw.ALS, "factors", 12)])
def test_every_estimator_speaks_the_same_parameter_protocol(cls, param,
                                                            value):
    from sklearn.base import clone
    est = cls(**{param: value})
    c = clone(est)
    assert c.get_params() == est.get_params() and c is not est
    assert c.get_params()[param] == value
    with pytest.raises(sw.InvalidArgument, match="invalid parameter 'nope'"):
        c.set_params(nope=1)


def test_sklearn_pipeline_and_cross_val(rng):
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    X, y = separable(rng, n=300, d=5, k=2)
    pipe = make_pipeline(StandardScaler(), sw.SCWClassifier())
    scores = cross_val_score(pipe, X, y, cv=3)
    assert scores.mean() > 0.8


def test_new_classes_are_accepted(rng):
    X, y = separable(rng, n=400, d=5, k=4)
    est = sw.PassiveAggressiveClassifier()
    est.partial_fit(X[:50], np.where(y[:50] < 2, y[:50], 0))   # 0 and 1 only
    assert list(est.classes_) == [0, 1]
    before = est.decision_function(X[:5])
    est.partial_fit(X[50:52], [3, 3])                 # a third class: 3
    assert list(est.classes_) == [0, 1, 3]
    est.partial_fit(X[52:], y[52:])                   # and 2
    assert list(est.classes_) == [0, 1, 3, 2]
    assert est.decision_function(X[:5]).shape == (5, 4)
    assert set(est.predict(X)) <= {0, 1, 2, 3}
    assert est.score(X, y) > 0.5
    # before the third class, decisions were binary
    assert before.shape == (5,)


def test_known_labels_keep_their_class_numbers(rng):
    """Labels that are all known are coded by a comparison per label, not
    np.unique: their class numbers are still those of registration (here
    not in sorted order), whatever the labels' dtype."""
    X, y = separable(rng, n=300, d=4, k=4)
    a, b = sw.PassiveAggressiveClassifier(), sw.PassiveAggressiveClassifier()
    for est in (a, b):
        est.partial_fit(X[:3], [0, 1, 3])
        est.partial_fit(X[3:4], [2])
    a.partial_fit(X[4:], y[4:].astype(np.float64))
    for xi, yi in zip(X[4:], y[4:]):
        b.learn_one(xi, int(yi))
    assert list(a.classes_) == [0, 1, 3, 2]
    assert a.decision_function(X).tobytes() == \
        b.decision_function(X).tobytes()
    a.partial_fit(X[:2], [7, 0])                      # one unknown: registered
    assert list(a.classes_) == [0, 1, 3, 2, 7]


def test_string_labels_and_learn_one(rng):
    X, y = separable(rng, n=200, d=4, k=3)
    names = np.array(["red", "green", "blue"])[y]
    est = sw.SCWClassifier()
    for xi, yi in zip(X, names):
        est.learn_one(xi, yi)
    assert set(est.classes_) == {"red", "green", "blue"}
    assert est.predict_one(X[0]) in {"red", "green", "blue"}
    assert est.score(X, names) > 0.7
    assert est.predict(X[0]) == est.predict_one(X[0])


def test_dict_and_pair_inputs(rng):
    est = sw.PassiveAggressiveClassifier(n_features=10)
    est.partial_fit({1: 2.0, 7: -1.0}, [1], classes=[0, 1])
    est.learn_one({3: 1.0}, 0)
    est.learn_one((np.array([1, 3]), np.array([0.5, 0.5])), 1)
    dense = np.zeros(10)
    dense[[1, 7]] = [2.0, -1.0]
    assert est.decision_function({1: 2.0, 7: -1.0}) == \
        est.decision_function(dense)
    with pytest.raises(sw.InvalidArgument,
                       match="learned from columns without names"):
        est.learn_one({"a": 1.0}, 1)
    with pytest.raises(sw.InvalidArgument, match="column 10"):
        est.learn_one({10: 1.0}, 1)


def test_dict_before_width_known_uses_hashed_space():
    est = sw.SCWClassifier()
    est.learn_one({123456: 1.0}, "a")
    assert est.n_features_in_ == 1 << 20


def test_errors_are_typed_and_clear(rng):
    X, y = separable(rng, n=50, d=3)
    est = sw.PassiveAggressiveClassifier().fit(X, y)
    with pytest.raises(sw.ShapeError, match=r"3 features per row, the model "
                                            r"expects 3|expects 3"):
        est.predict(np.zeros((2, 4)))
    with pytest.raises(ValueError):          # ShapeError is a ValueError
        est.predict(np.zeros((2, 4)))
    bad = X.copy()
    bad[7, 2] = np.nan
    with pytest.raises(sw.NumericError,
                       match=r"row 7, column 2: value is NaN.*rows 0\.\.6 "
                             r"were learned"):
        est.partial_fit(bad, y)
    with pytest.raises(sw.NumericError, match="row 0, column 2"):
        est.predict(bad[7:8])
    with pytest.raises(sw.InvalidArgument, match=r"pa\.C: -1.0 is outside"):
        sw.PassiveAggressiveClassifier(C=-1.0).fit(X, y)
    with pytest.raises(sw.InvalidArgument, match="'pa3' is not one of"):
        sw.PassiveAggressiveClassifier(variant="pa3").fit(X, y)
    with pytest.raises(sw.InvalidArgument, match=r"scw\.eta: 0.5 is outside "
                                                 r"\(0.5, 1\)"):
        sw.SCWClassifier(eta=0.5).fit(X, y)
    with pytest.raises(sw.StateError, match="has not learned anything"):
        sw.SCWClassifier().predict(X)
    with pytest.raises(sw.InvalidArgument, match="full"):
        sw.SCWClassifier(covariance="full").fit(np.zeros((2, 5000)), [0, 1])
    with pytest.raises(ValueError, match="y has 3 values"):
        est.partial_fit(X[:2], y[:3])
    with pytest.raises(sw.NumericError, match="target is nan"):
        sw.PassiveAggressiveRegressor().fit(X[:2], [1.0, np.nan])
    assert issubclass(sw.IOError, OSError) and issubclass(sw.Error, Exception)
    assert issubclass(sw.FormatError, ValueError)


def test_zero_rows_and_degenerate_input():
    est = sw.PassiveAggressiveClassifier(fit_intercept=False, n_features=3)
    est.partial_fit(np.zeros((5, 3)), [0, 1, 0, 1, 1], classes=[0, 1])
    assert est.n_seen_ == 5 and est.n_updates_ == 0
    assert np.all(est.coef_ == 0)
    with pytest.raises(sw.InvalidArgument, match="no rows"):
        sw.PassiveAggressiveClassifier().fit(np.zeros((0, 3)), [])


def test_non_contiguous_and_int_inputs(rng):
    X, y = separable(rng, n=200, d=6)
    a = sw.PassiveAggressiveClassifier().fit(X[:, ::2].copy(), y)
    b = sw.PassiveAggressiveClassifier().fit(X[:, ::2], y)
    np.testing.assert_array_equal(a.coef_, b.coef_)
    Xi = (X * 10).astype(np.int64)
    c = sw.PassiveAggressiveClassifier().fit(Xi, y)
    d = sw.PassiveAggressiveClassifier().fit(Xi.astype(np.float64), y)
    np.testing.assert_array_equal(c.coef_, d.coef_)
    e = sw.PassiveAggressiveClassifier().fit(sp.csc_matrix(X), y)
    np.testing.assert_allclose(e.coef_, sw.PassiveAggressiveClassifier()
                               .fit(X, y).coef_, rtol=1e-12)


def test_pickle_round_trip(rng):
    X, y = separable(rng, n=100, d=4, k=3)
    est = sw.SCWClassifier().fit(X, y)
    back = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(back.decision_function(X),
                                  est.decision_function(X))
    back.partial_fit(X, y)       # and it keeps learning


def test_reference_counts_stable(rng):
    X, y = separable(rng, n=20, d=4)
    est = sw.PassiveAggressiveClassifier().fit(X, y)
    x0 = X[0]
    d = {0: 1.0, 2: 0.5}
    before = (sys.getrefcount(X), sys.getrefcount(x0), sys.getrefcount(d))
    tracemalloc.start()
    for _ in range(1000):
        est.learn_one(x0, 1)
        est.learn_one(d, 0)
        est.decision_function(X)
        est.partial_fit(X, y)
    snap1 = tracemalloc.take_snapshot()
    for _ in range(1000):
        est.learn_one(x0, 1)
        est.learn_one(d, 0)
        est.decision_function(X)
        est.partial_fit(X, y)
    snap2 = tracemalloc.take_snapshot()
    tracemalloc.stop()
    assert (sys.getrefcount(X), sys.getrefcount(x0), sys.getrefcount(d)) == \
        before
    grown = sum(s.size_diff for s in snap2.compare_to(snap1, "filename"))
    assert grown < 64 * 1024


def test_threads_share_a_model_safely(rng):
    """Long calls release the GIL; the handle's lock keeps calls whole."""
    X, y = separable(rng, n=20000, d=20)
    est = sw.PassiveAggressiveClassifier().fit(X[:10], y[:10])
    errors = []

    def work():
        try:
            for _ in range(5):
                est.partial_fit(X, y)
                est.decision_function(X)
        except Exception as e:            # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert est.n_seen_ == 10 + 4 * 5 * 20000


def test_regressor_api(rng):
    X = rng.standard_normal((400, 3))
    y = X @ [1.0, -2.0, 0.5] + 3.0
    est = sw.PassiveAggressiveRegressor(epsilon=0.0, max_iter=5).fit(X, y)
    assert est.score(X, y) > 0.99
    assert abs(est.intercept_[0] - 3.0) < 0.1
    assert abs(est.predict_one(X[0]) - y[0]) < 0.2
    mae = sw.evaluate.prequential(sw.PassiveAggressiveRegressor(), X, y)
    assert mae.shape == (400,) and mae[-1] < mae[20]


@pytest.mark.parametrize("make", [
    lambda rng: rng.standard_normal((4000, 300)),
    lambda rng: rng.standard_normal((4000, 300)).astype(np.float32),
    lambda rng: np.asfortranarray(rng.standard_normal((4000, 300)))[::2],
    lambda rng: sp.random(4000, 300, density=0.3, format="csr",
                          random_state=1, dtype=np.float64),
])
def test_inputs_read_in_place(rng, make):
    """float64/float32 rows with contiguous columns and CSR with matching
    index types are read where they are: no copy of X is made."""
    X = make(rng)
    y = rng.integers(0, 2, X.shape[0])
    est = sw.SCWClassifier().fit(X[:10], y[:10])
    size = X.data.nbytes if hasattr(X, "indptr") else X.nbytes
    tracemalloc.start()
    est.partial_fit(X, y)
    est.decision_function(X)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    copied = peak > size / 2
    contiguous_rows = not isinstance(X, np.ndarray) or \
        X.strides[-1] == X.itemsize
    assert copied != contiguous_rows, (peak, size)


def test_docstrings_come_from_the_property_table():
    for cls in (sw.PassiveAggressiveClassifier, sw.SCWClassifier,
                sw.PassiveAggressiveRegressor):
        for name, _, default, accepted, doc in sw.conf_table():
            if name in cls._conf_keys.values():
                assert doc in cls.__doc__ and accepted in cls.__doc__


def test_linear_learners_keep_feature_names_and_match_by_name(tmp_path):
    import pandas as pd
    rng = np.random.default_rng(3)
    X = rng.standard_normal((300, 3))
    y = (X[:, 0] - X[:, 2] > 0).astype(int)
    df = pd.DataFrame(X, columns=["age", "spend", "visits"])
    m = sw.SCWClassifier().fit(df, y)
    assert m.feature_names_in_ == ["age", "spend", "visits"]
    want = m.decision_function(df)
    # another column order gives the same scores, not silently wrong ones
    got = m.decision_function(df[["visits", "age", "spend"]])
    assert got.tobytes() == want.tobytes()
    with pytest.raises(sw.ShapeError, match=r"missing \['visits'\]"):
        m.decision_function(df[["age", "spend"]])
    # River's style: one row as a dict keyed by name, in any order
    row = {"visits": X[0, 2], "age": X[0, 0], "spend": X[0, 1]}
    assert m.predict_one(row) == m.predict(df.iloc[:1])[0]
    with pytest.raises(sw.InvalidArgument, match="unknown feature 'agee'"):
        m.predict_one({"agee": 1.0})
    # the names survive save and load
    m.save(tmp_path / "named.swm")
    back = sw.load(tmp_path / "named.swm")
    assert back.feature_names_in_ == m.feature_names_in_
    assert back.decision_function(df[["spend", "visits", "age"]]).tobytes() \
        == want.tobytes()
    # learn_one with dicts alone: the first dict's keys name the columns
    r = sw.PassiveAggressiveRegressor()
    for i in range(50):
        r.learn_one({"b": X[i, 1], "a": X[i, 0]}, X[i, 0] + 2 * X[i, 1])
    assert r.feature_names_in_ == ["b", "a"]
    assert r.predict_one({"a": 1.0, "b": 0.0}) == \
        r.predict(np.array([[0.0, 1.0]]))[0]


def test_import_star_does_not_shadow_builtins():
    ns = {}
    exec("from streamwise import *", ns)
    assert "IOError" not in ns and "SCWClassifier" in ns
    assert issubclass(sw.IOError, OSError)
