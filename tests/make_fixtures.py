"""Write the committed model fixtures in tests/c/data/.

Each fixture is a small .swm model and the rows it scores (.csv). They are
committed on purpose: a later build must still load them (their golden
vectors must still match) and score them identically in Python and in the
runner, so they catch drift in the format and in the arithmetic. Regenerate
only when the format changes on purpose:

    PYTHONPATH=python /usr/bin/python3 tests/make_fixtures.py
"""
import os

import numpy as np

import streamwise as sw

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "c", "data")


def main():
    rng = np.random.default_rng(2026)
    X = rng.standard_normal((120, 6))
    W = rng.standard_normal((6, 3))
    y3 = np.argmax(X @ W, axis=1)
    y2 = (X @ W[:, 0] > 0).astype(int)
    yr = X @ W[:, 1] + 0.5
    cases = {
        "pa1_binary": sw.PassiveAggressiveClassifier().fit(X, y2),
        "scw2_multiclass": sw.SCWClassifier(variant="scw2").fit(X, y3),
        "scw1_full_binary": sw.SCWClassifier(covariance="full").fit(X, y2),
        "pa2_regression": sw.PassiveAggressiveRegressor(variant="pa2")
        .fit(X, yr),
    }
    rows = X[:10]
    os.makedirs(OUT, exist_ok=True)
    for name, est in cases.items():
        est.save(os.path.join(OUT, name + ".swm"), golden=rows[:4])
        with open(os.path.join(OUT, name + ".csv"), "w") as f:
            for r in rows:
                f.write(",".join(repr(float(v)) for v in r) + "\n")
        print("wrote", name)


if __name__ == "__main__":
    main()
