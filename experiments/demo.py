"""The streamwise demo (`make demo`): the whole loop, then online learners.

First the production loop on embedded defaults (experiments/betting.py):
transactions on the embedded broker, features and a GBDT trained on
replayed events, the bundle registered and promoted, the C runner serving
it from Kafka, its predictions equal to the notebook's bit for bit, a
SIGKILL and a restart with nothing lost or counted twice. Then:

On data that needs no download (the tables Debian's python3-sklearn ships;
banknote too when ../shared/datasets is there), train PA-I and SCW-I one
row at a time with prequential evaluation, print a table, save the models,
score the held-out rows with the C-only runner build/bin/sw-serve, and
check that its scores equal Python's bit for bit. Exits non-zero if not.
"""
import os
import subprocess
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "python"))

import streamwise as sw  # noqa: E402
from streamwise import datasets  # noqa: E402

SERVE = os.path.join(ROOT, "build", "bin", "sw-serve")
OUT = os.path.join(ROOT, "experiments", "out")


def split(X, y, seed=0, train=0.8, scale=True):
    """Shuffle with a seed, hold out the last 20%, and z-score with the
    training rows' mean and deviation (never the held-out rows')."""
    order = np.random.default_rng(seed).permutation(len(y))
    X, y = X[order], y[order]
    n = int(train * len(y))
    if scale:
        mu, sd = X[:n].mean(0), X[:n].std(0)
        sd[sd == 0] = 1.0
        X = (X - mu) / sd
    return X[:n], y[:n], X[n:], y[n:]


def tables():
    out = []
    X, y = datasets.load_bundled("breast_cancer")
    out.append(("breast_cancer", "z-scored (train stats)", split(X, y)))
    X, y = datasets.load_bundled("digits")
    out.append(("digits (10 cl.)", "z-scored (train stats)", split(X, y)))
    try:
        X, y = datasets.load_banknote(shuffle=False)
        out.append(("banknote", "unscaled", split(X, y, scale=False)))
    except datasets.DataNotFound:
        print("(banknote skipped: ../shared/datasets not found)")
    return out


def runner_scores(path, X):
    rows = "".join(",".join(repr(float(v)) for v in r) + "\n" for r in X)
    run = subprocess.run([SERVE, path], input=rows, capture_output=True,
                         text=True)
    if run.returncode != 0:
        raise SystemExit(f"sw-serve failed: {run.stderr}")
    return np.array([[float(v) for v in line.split(",")]
                     for line in run.stdout.splitlines()])


def main():
    os.makedirs(OUT, exist_ok=True)
    print(f"streamwise demo - {sw.build_info()}\n")
    print(f"{'data':16s} {'features':24s} {'learner':7s} {'rows':>5s} "
          f"{'prequential':>11s} {'held-out':>8s} {'sw-serve = Python':>18s}")
    ok = True
    for name, how, (Xtr, ytr, Xte, yte) in tables():
        for label, est in [("PA-I", sw.PassiveAggressiveClassifier()),
                           ("SCW-I", sw.SCWClassifier())]:
            acc = sw.evaluate.prequential(est, Xtr, ytr)
            path = os.path.join(OUT, f"demo-{name.split()[0]}-{label}.swm")
            est.save(path)
            got = runner_scores(path, Xte)
            want = np.asarray(est.decision_function(Xte)).reshape(len(Xte),
                                                                   -1)
            same = got.tobytes() == want.tobytes()
            ok &= same
            print(f"{name:16s} {how:24s} {label:7s} {len(ytr):5d} "
                  f"{acc[-1]:11.4f} {est.score(Xte, yte):8.4f} "
                  f"{('bit-identical' if same else 'DIFFERENT') + f' ({len(Xte)})':>18s}")
    print(f"\nmodels in {OUT}; look inside one with:\n"
          f"  build/bin/streamwise inspect {path}")
    print("\nall runner scores bit-identical to Python" if ok else
          "\nRUNNER AND PYTHON DISAGREE")
    return 0 if ok else 1


def whole_loop():
    sys.path.insert(0, os.path.join(ROOT, "experiments"))
    import betting
    return betting.main([])


if __name__ == "__main__":
    status = whole_loop()
    print("\n" + "-" * 72 + "\n")
    sys.exit(main() or status)
