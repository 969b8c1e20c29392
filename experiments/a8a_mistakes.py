"""One pass over LIBSVM a8a (UCI Adult, 22,696 rows, 123 binary features) in
file order: the online mistake rate of every streamwise learner beside
scikit-learn's PassiveAggressiveClassifier on the same order.

    PYTHONPATH=python /usr/bin/python3 experiments/a8a_mistakes.py [DATA_DIR]

The mistake rate is prequential: each row is predicted before it is learned,
and the rate is mistakes / rows. scikit-learn is run the same way, one row
at a time (predict, then partial_fit), with loss "hinge" (PA-I) and
"squared_hinge" (PA-II), C=1, and its defaults otherwise.
"""
import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "python"))

import streamwise as sw  # noqa: E402
from streamwise import datasets  # noqa: E402


def sklearn_mistakes(X, y, loss):
    from sklearn.linear_model import PassiveAggressiveClassifier
    m = PassiveAggressiveClassifier(C=1.0, loss=loss, random_state=0)
    classes = np.array([-1.0, 1.0])
    wrong = 0
    m.partial_fit(X[:1], y[:1], classes=classes)
    # the first row is a mistake for every learner that starts at zero
    wrong += 1
    for i in range(1, X.shape[0]):
        row = X[i:i + 1]
        wrong += m.predict(row)[0] != y[i]
        m.partial_fit(row, y[i:i + 1])
    return wrong / X.shape[0]


def main():
    X, y = datasets.load_a8a(sys.argv[1] if len(sys.argv) > 1 else None)
    print(f"a8a: {X.shape[0]:,} rows x {X.shape[1]} features, "
          f"{int((y > 0).sum()):,} positive; one pass in file order\n")
    print(f"{'learner':32s} {'mistake rate':>12s} {'seconds':>8s}")
    learners = [
        ("streamwise PA", sw.PassiveAggressiveClassifier(variant="pa")),
        ("streamwise PA-I (C=1)", sw.PassiveAggressiveClassifier()),
        ("streamwise PA-II (C=1)",
         sw.PassiveAggressiveClassifier(variant="pa2")),
        ("streamwise SCW-I (C=1, eta=.9)", sw.SCWClassifier()),
        ("streamwise SCW-II (C=1, eta=.9)",
         sw.SCWClassifier(variant="scw2")),
    ]
    for name, est in learners:
        t0 = time.perf_counter()
        acc = sw.evaluate.prequential(est, X, y)
        print(f"{name:32s} {1 - acc[-1]:12.4f} "
              f"{time.perf_counter() - t0:8.3f}")
    for name, loss in [("sklearn PA, hinge (PA-I)", "hinge"),
                       ("sklearn PA, squared_hinge (PA-II)",
                        "squared_hinge")]:
        t0 = time.perf_counter()
        rate = sklearn_mistakes(X, y, loss)
        print(f"{name:32s} {rate:12.4f} {time.perf_counter() - t0:8.3f}")


if __name__ == "__main__":
    main()
