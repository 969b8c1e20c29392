"""scikit-learn's own estimator checks (Debian's scikit-learn), run on
every estimator that claims its API. The checks that cannot pass are
listed here and in docs/sklearn.md with the reason; the test fails if one
of them starts passing (update both) or any other check fails."""
import warnings

import pytest
from sklearn.utils.estimator_checks import check_estimator

import streamwise as sw

# a 1-D array is one row (River's style: predict(x) for one example), which
# check_fit2d_predict1d wants refused
ONE_ROW = {"check_fit2d_predict1d"}

ESTIMATORS = [
    (sw.PassiveAggressiveClassifier(), ONE_ROW),
    (sw.PassiveAggressiveRegressor(), ONE_ROW),
    (sw.SCWClassifier(), ONE_ROW),
    # the checks' binary set has 20 rows: at the default min_data_in_leaf
    # (20, as LightGBM's min_child_samples) no split is possible and every
    # row gets one class, which check_classifiers_classes refuses
    (sw.GBDTClassifier(min_data_in_leaf=1), ONE_ROW),
    (sw.GBDTRegressor(), ONE_ROW),
]


def _name(check):
    return getattr(check, "func", check).__name__


@pytest.mark.parametrize("est,expected", ESTIMATORS,
                         ids=[type(e).__name__ for e, _ in ESTIMATORS])
def test_check_estimator(est, expected):
    failed, ran = {}, 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        for e, check in check_estimator(est, generate_only=True):
            ran += 1
            try:
                check(e)
            except Exception as ex:  # noqa: BLE001 - a failed check is data
                failed[_name(check)] = f"{type(ex).__name__}: {ex}"[:300]
    assert ran > 30
    assert set(failed) == expected, failed


def test_gbdt_classes_check_fails_only_for_want_of_rows():
    from sklearn.utils.estimator_checks import check_classifiers_classes
    with pytest.raises(AssertionError):
        check_classifiers_classes("GBDTClassifier", sw.GBDTClassifier())


def test_not_fitted_is_sklearn_s_error_and_ours():
    from sklearn.exceptions import NotFittedError
    for est in (sw.PassiveAggressiveClassifier(), sw.SCWClassifier(),
                sw.GBDTRegressor(), sw.ALS()):
        with pytest.raises(NotFittedError) as e:
            est.predict([[0.0, 1.0]]) if not isinstance(est, sw.ALS) \
                else est.recommend(0)
        assert isinstance(e.value, (sw.NotFittedError, sw.StateError,
                                    AttributeError))
    assert not hasattr(sw.PassiveAggressiveClassifier(), "n_features_in_")
