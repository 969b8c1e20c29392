"""The C runner scores exactly what Python scores: the same bits, on every
fixture, dense and sparse, binary, multiclass and regression."""
import glob
import os
import subprocess

import numpy as np
import pytest
import scipy.sparse as sp

import streamwise as sw
from streamwise.datasets import write_libsvm

from conftest import FIXTURES, separable


def run(serve, model, text, *args):
    return subprocess.run([serve, str(model), *args], input=text,
                          capture_output=True, text=True)


def csv_text(X):
    return "".join(",".join(repr(float(v)) for v in row) + "\n" for row in X)


def parse(stdout):
    return np.array([[float(v) for v in line.split(",")]
                     for line in stdout.splitlines()])


def models(rng):
    X2, y2 = separable(rng, n=300, d=8, k=2)
    X4, y4 = separable(rng, n=300, d=8, k=4)
    Xr = rng.standard_normal((300, 8))
    yr = Xr @ rng.standard_normal(8)
    return [
        (sw.PassiveAggressiveClassifier().fit(X2, y2), X2),
        (sw.SCWClassifier(variant="scw2").fit(X4, y4), X4),
        (sw.SCWClassifier(covariance="full").fit(X2, y2), X2),
        (sw.PassiveAggressiveRegressor(variant="pa2").fit(Xr, yr), Xr),
    ]


def test_runner_matches_python_dense(rng, tmp_path, serve):
    for i, (est, X) in enumerate(models(rng)):
        path = tmp_path / f"m{i}.swm"
        est.save(path)
        out = run(serve, path, csv_text(X))
        assert out.returncode == 0, out.stderr
        got = parse(out.stdout)
        want = est.decision_function(X) if hasattr(est, "classes_") \
            else est.predict(X)
        want = np.asarray(want).reshape(len(X), -1)
        assert got.shape == want.shape
        assert got.tobytes() == want.tobytes()


def test_runner_matches_python_libsvm(rng, tmp_path, serve):
    X = sp.random(200, 50, density=0.1, random_state=3, format="csr")
    y = (X @ rng.standard_normal(50) > 0).astype(int)
    est = sw.SCWClassifier().fit(X, y)
    path = tmp_path / "s.swm"
    est.save(path)
    rows = tmp_path / "rows.svm"
    write_libsvm(rows, X, y)
    out = run(serve, path, rows.read_text(), "--format", "libsvm")
    assert out.returncode == 0, out.stderr
    assert parse(out.stdout)[:, 0].tobytes() == \
        est.decision_function(X).tobytes()
    rows0 = tmp_path / "rows0.svm"
    write_libsvm(rows0, X, y, zero_based=True)
    out0 = run(serve, path, rows0.read_text(), "--format", "libsvm",
               "--zero-based")
    assert out0.stdout == out.stdout


def test_committed_fixtures(serve):
    """Models written by earlier builds still load (golden vectors match)
    and score their rows identically in the runner and in Python."""
    paths = sorted(glob.glob(os.path.join(FIXTURES, "*.swm")))
    assert len(paths) >= 3
    for path in paths:
        est = sw.load(path)
        rows = path[:-4] + ".csv"
        X = np.loadtxt(rows, delimiter=",", ndmin=2)
        with open(rows) as f:
            out = run(serve, path, f.read())
        assert out.returncode == 0, out.stderr
        want = est.decision_function(X) if hasattr(est, "classes_") \
            else est.predict(X)
        assert parse(out.stdout).tobytes() == \
            np.asarray(want).reshape(len(X), -1).tobytes()


def test_bad_rows_are_reported_and_skipped(rng, tmp_path, serve):
    est, X = models(rng)[0]
    path = tmp_path / "m.swm"
    est.save(path)
    lines = csv_text(X[:4]).splitlines()
    text = "\n".join([lines[0], "1,2,3", lines[1], "1,2,x,4,5,6,7,8", "",
                      "nan,1,1,1,1,1,1,1", lines[2],
                      "1,2,3,4,5,6,7,8,9"]) + "\n"
    out = run(serve, path, text)
    assert out.returncode == 1
    err = out.stderr
    assert "line 2: 3 values, the model expects 8" in err
    assert "line 4: column 2: 'x,4,5,6,7,8' is not a number" in err
    assert "line 5: empty line" in err
    assert "line 6: column 0: nan" in err
    assert "line 8: more than 8 values" in err
    assert "5 bad rows" in err
    got = out.stdout.split("\n")
    assert got[1] == got[3] == got[4] == got[5] == got[7] == ""
    want = est.decision_function(X[:3])
    assert [float(got[0]), float(got[2]), float(got[6])] == list(want)


def test_corrupt_model_refused(rng, tmp_path, serve):
    est, X = models(rng)[0]
    path = tmp_path / "m.swm"
    est.save(path)
    b = bytearray(path.read_bytes())
    b[len(b) // 2] ^= 0x20
    path.write_bytes(bytes(b))
    out = run(serve, path, csv_text(X[:2]))
    assert out.returncode == 1
    assert "SHA-256 mismatch" in out.stderr and "SW_E_FORMAT" in out.stderr
    assert out.stdout == ""


def test_runner_usage(serve, tmp_path):
    out = subprocess.run([serve], capture_output=True, text=True)
    assert out.returncode == 2 and "usage" in out.stderr
    out = subprocess.run([serve, "m.swm", "--format", "xml"],
                         capture_output=True, text=True)
    assert out.returncode == 2 and "expected csv or libsvm" in out.stderr
    out = subprocess.run([serve, "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and "streamwise 0.1.0" in out.stdout
    out = subprocess.run([serve, "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    for what in ("'user,item' rows", "--recommend N", "pandas' to_csv"):
        assert what in out.stdout, what
    out = subprocess.run([serve, str(tmp_path / "none.swm")],
                         capture_output=True, text=True)
    assert out.returncode == 1 and "No such file" in out.stderr


def test_a_long_running_filter_answers_each_line_at_once(rng, tmp_path,
                                                         serve):
    """No answer waits for the 256 lines of a batch or the end of input:
    a line written alone is answered while the runner waits for more."""
    import select
    X, y = separable(rng, n=300, d=4)
    path = str(tmp_path / "m.swm")
    m = sw.SCWClassifier().fit(X, y)
    m.save(path)
    p = subprocess.Popen([serve, path], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True, bufsize=1)
    try:
        for i in range(3):
            p.stdin.write(",".join(repr(v) for v in X[i]) + "\n")
            p.stdin.flush()
            ready, _, _ = select.select([p.stdout], [], [], 5.0)
            assert ready, f"no answer to line {i} within 5 s"
            got = float(p.stdout.readline())
            assert got == m.decision_function(X[i:i + 1])[0]
    finally:
        p.stdin.close()
        p.wait(timeout=10)
    assert p.returncode == 0


def test_one_bad_row_loses_only_its_own_answer(rng, tmp_path, serve):
    """A row the model refuses (an ALS id out of range) used to stop the
    runner and drop the good rows of its batch of 256."""
    R = sp.random(30, 20, density=0.3, random_state=1, format="csr")
    als = sw.ALS(factors=4, iterations=2).fit(R)
    path = str(tmp_path / "als.swm")
    als.save(path)
    lines = [f"{u},{i}" for u, i in [(0, 1), (2, 3)] * 200]
    lines[7] = "999999,1"                       # no such user
    got = run(serve, path, "\n".join(lines) + "\n")
    out = got.stdout.split("\n")[:-1]
    assert len(out) == 400 and out[7] == ""
    assert all(o != "" for k, o in enumerate(out) if k != 7)
    assert "line 8:" in got.stderr and got.returncode == 1
    want = als._fitted().predict(np.array([[0, 1], [2, 3]], float))
    assert float(out[0]) == want[0] and float(out[9]) == want[1]


def test_label_only_libsvm_lines_are_rows_of_zeros(rng, tmp_path, serve):
    """A LIBSVM line with a label and no columns is an all-zero row; a
    batch made only of such lines used to be refused whole ("rows: data is
    NULL"), every line answered empty. fuzz_rows found it."""
    X, y = separable(rng, n=200, d=6, k=3)
    for est in (sw.SCWClassifier().fit(X, y),
                sw.GBDTClassifier(n_estimators=3).fit(X, y)):
        path = str(tmp_path / "m.swm")
        est.save(path)
        got = run(serve, path, "1\n0\n", "--format", "libsvm")
        assert got.returncode == 0, got.stderr
        zero = np.zeros((2, 6))
        want = est.decision_function(zero) if isinstance(
            est, sw.SCWClassifier) else est.predict_proba(zero)
        assert parse(got.stdout).tobytes() == \
            np.asarray(want).reshape(2, -1).tobytes()


def test_tree_models_take_libsvm_rows(rng, tmp_path, serve):
    """A GBDT scored from LIBSVM lines (an absent column is 0) used to
    fail every batch."""
    X = rng.standard_normal((300, 5))
    X[X < 0.3] = 0.0
    y = (X.sum(axis=1) > 1).astype(int)
    g = sw.GBDTClassifier(n_estimators=5).fit(X, y)
    path = str(tmp_path / "g.swm")
    g.save(path)
    svm = tmp_path / "rows.svm"
    write_libsvm(svm, sp.csr_matrix(X), y)
    got = run(serve, path, svm.read_text(), "--format", "libsvm")
    assert got.returncode == 0, got.stderr
    assert np.array([float(v) for v in got.stdout.split()]).tobytes() == \
        g.predict_proba(X)[:, 1].tobytes()


def test_a_csv_header_matches_columns_to_the_models_feature_names(
        rng, tmp_path, serve):
    import pandas as pd         # a dependency (make deps)
    X = rng.standard_normal((200, 4))
    y = (X[:, 0] - 2 * X[:, 3] > 0).astype(int)
    df = pd.DataFrame(X, columns=["age", "spend", "visits", "tenure"])
    m = sw.GBDTClassifier(n_estimators=10).fit(df, y)
    path = tmp_path / "named.swm"
    m.save(path)
    want = m.predict_proba(df)[:, 1]
    # pandas' own CSV: an unnamed index column first, columns reordered
    text = df[["tenure", "visits", "age", "spend"]].to_csv()
    out = run(serve, path, text)
    assert out.returncode == 0, out.stderr
    got = parse(out.stdout).ravel()
    assert len(got) == len(df) and got.tobytes() == want.tobytes()
    # a column the model needs is named when the header lacks it
    out = run(serve, path, df[["tenure", "age", "spend"]].to_csv())
    assert out.returncode != 0
    assert "the header has no column 'visits'" in out.stderr
    # a model without names takes a header of as many columns, in order
    plain = sw.SCWClassifier().fit(X, y)
    plain.save(tmp_path / "plain.swm")
    out = run(serve, tmp_path / "plain.swm",
              "a,b,c,d\n" + csv_text(X[:5]))
    assert out.returncode == 0, out.stderr
    assert parse(out.stdout).ravel().tobytes() == \
        plain.decision_function(X[:5]).tobytes()
    out = run(serve, tmp_path / "plain.swm", "a,b,c\n" + csv_text(X[:5]))
    assert out.returncode != 0 and "takes 4 columns in order" in out.stderr


def test_every_log_line_of_the_runner_carries_its_utc_time(serve, tmp_path):
    import re
    import time
    from datetime import datetime, timezone
    job = tmp_path / "job.json"
    job.write_text("{}")
    t0 = time.time()
    out = subprocess.run([serve, "run", str(job)], capture_output=True,
                         text=True, timeout=60)
    t1 = time.time()
    assert out.returncode == 2
    assert "sw-serve: job: source: expected" in out.stderr
    lines = [x for x in out.stderr.splitlines() if x]
    assert lines
    for line in lines:
        m = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3})Z sw-serve: ",
                     line)
        assert m, line
        t = datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%f").replace(
            tzinfo=timezone.utc).timestamp()
        assert t0 - 1 <= t <= t1 + 1, (line, t0, t1)


def test_a_log_line_too_long_is_cut_and_still_one_line(serve):
    out = subprocess.run([serve, "--format", "x" * 3000],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    first = out.stderr.split("\n")[0]
    assert "sw-serve: --format xxx" in first and first.endswith("...")
    assert len(first) == 2046   # 2048 bytes less the newline and NUL
    assert not out.stderr.split("\n")[1].startswith("x")
