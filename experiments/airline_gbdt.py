"""GBDT on the 100k airline departures: streamwise beside xgboost and
scikit-learn on a fixed split, the same encoded features for all three.

    PYTHONPATH=python /usr/bin/python3 experiments/airline_gbdt.py [DATA]

Split: rows in file order; the first 70,000 train, the next 10,000
validate (early stopping), the last 20,000 test. Encoding: Month,
DayofMonth, DayOfWeek as their numbers, DepTime and Distance as they are;
UniqueCarrier, Origin and Dest as ordinal codes by frequency in the
training rows (most frequent 0; unseen -> NaN, which the trees route by
their learned default). Label dep_delayed_15min (Y = 1).
"""
import sys

import numpy as np

sys.path.insert(0, __file__.rsplit("/experiments/", 1)[0] + "/python")

import streamwise as sw  # noqa: E402
from streamwise import datasets  # noqa: E402

NUMERIC = ["Month", "DayofMonth", "DayOfWeek", "DepTime", "Distance"]
CATEGORICAL = ["UniqueCarrier", "Origin", "Dest"]
FEATURES = NUMERIC + CATEGORICAL


def encode(a, train_rows):
    """Feature matrix (float64, NaN for unseen categories) and labels."""
    X = np.empty((len(a["Month"]), len(FEATURES)))
    for j, k in enumerate(NUMERIC):
        X[:, j] = a[k]
    for j, k in enumerate(CATEGORICAL, len(NUMERIC)):
        vals, counts = np.unique(a[k][train_rows], return_counts=True)
        rank = {v: r for r, v in enumerate(vals[np.argsort(-counts,
                                                          kind="stable")])}
        X[:, j] = [rank.get(v, np.nan) for v in a[k].tolist()]
    return X, a["dep_delayed_15min"].astype(np.float64)


def split(data=None):
    a = datasets.load_airline(data)
    tr, va, te = slice(0, 70_000), slice(70_000, 80_000), slice(80_000, None)
    X, y = encode(a, tr)
    return (X[tr], y[tr]), (X[va], y[va]), (X[te], y[te])


def main(data=None):
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score
    import xgboost as xgb
    (Xtr, ytr), (Xva, yva), (Xte, yte) = split(data)
    ours = sw.GBDTClassifier(n_estimators=1000, learning_rate=0.05,
                             num_leaves=63, min_data_in_leaf=50).fit(
        Xtr, ytr, eval_set=[(Xva, yva)], early_stopping_rounds=50)
    theirs = xgb.XGBClassifier(
        n_estimators=1000, learning_rate=0.05, tree_method="hist",
        grow_policy="lossguide", max_leaves=63, max_depth=0,
        min_child_weight=1e-3, early_stopping_rounds=50, n_jobs=1).fit(
        Xtr, ytr, eval_set=[(Xva, yva)], verbose=False)
    hgb = HistGradientBoostingClassifier(
        max_iter=1000, learning_rate=0.05, max_leaf_nodes=63,
        min_samples_leaf=50, early_stopping=True, validation_fraction=None,
        n_iter_no_change=50).fit(np.vstack([Xtr, Xva]),
                                 np.concatenate([ytr, yva]))
    print(f"airline 100k, test rows {len(yte):,}: test AUC")
    print(f"  streamwise GBDT  {roc_auc_score(yte, ours.predict_proba(Xte)[:, 1]):.4f}"
          f"  ({ours.n_trees_} trees, best round {ours.best_iteration_})")
    print(f"  xgboost 1.7      {roc_auc_score(yte, theirs.predict_proba(Xte)[:, 1]):.4f}"
          f"  (best round {theirs.best_iteration})")
    print(f"  sklearn HGB      {roc_auc_score(yte, hgb.predict_proba(Xte)[:, 1]):.4f}"
          f"  ({hgb.n_iter_} iterations; its own 10% validation split)")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
