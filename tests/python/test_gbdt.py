"""Gradient-boosted trees: gains and leaf values against a slow exact
reference, NaN defaults, determinism across threads, early stopping,
continued training, the file and the C runner, bad input."""
import os
import subprocess

import numpy as np
import pytest

import streamwise as sw
from streamwise import GBDTClassifier, GBDTRegressor


def best_split_reference(X, g, h, l1, l2, min_data, max_delta=0.0):
    """Exhaustive search over every feature and every threshold between
    distinct values: the split with the largest gain (LightGBM's formula)
    and the two leaf outputs."""
    def thr(G):
        return np.sign(G) * max(abs(G) - l1, 0.0)

    def out(G, H):
        w = -thr(G) / (H + l2)
        if max_delta > 0:
            w = float(np.clip(w, -max_delta, max_delta))
        return w

    def gain(G, H):
        w = out(G, H)
        return -(2 * thr(G) * w + (H + l2) * w * w)

    G, H = g.sum(), h.sum()
    best = (0.0, None)
    for f in range(X.shape[1]):
        order = np.argsort(X[:, f], kind="stable")
        xs = X[order, f]
        gl = hl = 0.0
        for k in range(len(xs) - 1):
            gl += g[order[k]]
            hl += h[order[k]]
            if xs[k] == xs[k + 1] or k + 1 < min_data or \
                    len(xs) - k - 1 < min_data:
                continue
            s = gain(gl, hl) + gain(G - gl, H - hl) - gain(G, H)
            if s > best[0]:
                best = (s, (f, (xs[k] + xs[k + 1]) / 2,
                            out(gl, hl), out(G - gl, H - hl)))
    return best


@pytest.mark.parametrize("l1,l2,max_delta", [(0, 0, 0), (0, 3.0, 0),
                                             (5.0, 1.0, 0), (0, 0, 0.2)])
def test_one_split_matches_the_exact_reference(rng, l1, l2, max_delta):
    n = 400
    X = np.round(rng.standard_normal((n, 3)), 2)   # < 255 distinct values
    y = 2 * X[:, 1] + 0.3 * rng.standard_normal(n)
    m = GBDTRegressor(n_estimators=1, num_leaves=2, learning_rate=1.0,
                      min_data_in_leaf=5, lambda_l1=l1, lambda_l2=l2,
                      max_delta_step=max_delta).fit(X, y)
    base = y.mean()
    gain, (f, t, wl, wr) = best_split_reference(
        X, base - y, np.ones(n), l1, l2, 5, max_delta)
    assert gain > 0
    p = m.predict(X)
    left = X[:, f] <= t
    assert np.allclose(p[left], base + wl, rtol=0, atol=1e-12)
    assert np.allclose(p[~left], base + wr, rtol=0, atol=1e-12)
    assert m.feature_importances_.tolist() == [float(j == f)
                                               for j in range(3)]


def test_binary_leaf_values_use_gradients_and_hessians(rng):
    n = 300
    X = np.round(rng.uniform(0, 1, (n, 2)), 2)
    y = (X[:, 0] + 0.2 * rng.standard_normal(n) > 0.5).astype(float)
    m = GBDTClassifier(n_estimators=1, num_leaves=2, learning_rate=1.0,
                       min_data_in_leaf=3).fit(X, y)
    p0 = y.mean()
    base = np.log(p0 / (1 - p0))
    _, (f, t, wl, wr) = best_split_reference(
        X, np.full(n, p0) - y, np.full(n, p0 * (1 - p0)), 0, 0, 3)
    left = X[:, f] <= t
    raw = np.where(left, base + wl, base + wr)
    assert np.allclose(m.predict_proba(X)[:, 1], 1 / (1 + np.exp(-raw)),
                       rtol=0, atol=1e-12)
    # later rounds: gradients from scores far from 0 (the trainer's own
    # e^x, against numpy's), two more single splits
    m3 = GBDTClassifier(n_estimators=3, num_leaves=2, learning_rate=1.0,
                        min_data_in_leaf=3).fit(X, y)
    for _ in range(2):
        p = 1 / (1 + np.exp(-raw))
        _, (f, t, wl, wr) = best_split_reference(X, p - y, p * (1 - p),
                                                 0, 0, 3)
        raw = raw + np.where(X[:, f] <= t, wl, wr)
    assert np.abs(raw).min() > 1     # e^x scaled by 2^k, k != 0
    assert np.allclose(m3.predict_proba(X)[:, 1], 1 / (1 + np.exp(-raw)),
                       rtol=0, atol=1e-12)


@pytest.mark.parametrize("threads", [1, 2])
def test_every_leaf_holds_the_rows_its_splits_send_it(rng, threads):
    """The trainer moves rows between leaves in its own copy (in place,
    by blocks, and by all the threads for large leaves), and sums a leaf
    from the rows it moved there. A row moved to the wrong leaf would
    leave that leaf's value off the mean of the rows the tree's own
    thresholds send it (L2 loss, learning rate 1: a leaf's value is its
    rows' mean residual)."""
    n = 150_000    # leaves of more than 32768 rows: split by all threads
    X = rng.standard_normal((n, 6))
    X[rng.random(n) < 0.15, 2] = np.nan          # NaN: by the default
    y = np.sin(2 * X[:, 0]) + np.nan_to_num(X[:, 2]) * X[:, 1] \
        + 0.1 * rng.standard_normal(n)
    m = GBDTRegressor(n_estimators=1, num_leaves=63, learning_rate=1.0,
                      lambda_l2=0.0, min_data_in_leaf=20,
                      n_jobs=threads).fit(X, y)
    p = m.predict(X)
    values, leaf = np.unique(p, return_inverse=True)
    assert len(values) == 63
    base = y.mean()
    means = np.bincount(leaf, weights=y - base) / np.bincount(leaf)
    assert np.allclose(values - base, means, rtol=1e-6, atol=1e-9)
    assert np.bincount(leaf).min() >= 20


def test_missing_values_take_the_learned_default(rng):
    n = 2000
    x = rng.uniform(0, 1, n)
    y = (x > 0.5).astype(float)
    x[rng.random(n) < 0.2] = np.nan
    y[np.isnan(x)] = 1.0          # missing behaves like the high side
    X = np.column_stack([x, rng.uniform(0, 1, n)])
    m = GBDTClassifier(n_estimators=30, num_leaves=4).fit(X, y)
    p = m.predict_proba(np.array([[np.nan, 0.5], [0.9, 0.5], [0.1, 0.5]]))
    assert p[0, 1] > 0.9 and p[1, 1] > 0.9 and p[2, 1] < 0.1
    # a value never seen in training follows the thresholds
    assert m.predict_proba(np.array([[1e9, 0.5]]))[0, 1] > 0.9


def test_quality_beside_xgboost_on_breast_cancer():
    xgb = pytest.importorskip("xgboost")
    from sklearn.datasets import load_breast_cancer
    from sklearn.metrics import roc_auc_score
    X, y = load_breast_cancer(return_X_y=True)
    o = np.random.default_rng(0).permutation(len(y))
    X, y = X[o], y[o]
    ours = GBDTClassifier(n_estimators=100, num_leaves=15,
                          min_data_in_leaf=5).fit(X[:400], y[:400])
    theirs = xgb.XGBClassifier(n_estimators=100, tree_method="hist",
                               grow_policy="lossguide", max_leaves=15,
                               max_depth=0, learning_rate=0.1, reg_lambda=0,
                               min_child_weight=1e-3).fit(X[:400], y[:400])
    a = roc_auc_score(y[400:], ours.predict_proba(X[400:])[:, 1])
    b = roc_auc_score(y[400:], theirs.predict_proba(X[400:])[:, 1])
    assert a > 0.97 and abs(a - b) < 0.01


def test_same_model_at_any_thread_count(rng):
    from streamwise.datasets.generators import higgs_like
    X, y, Xt, _ = higgs_like(60_000, 2000, seed=5)
    # missing values in the most used feature: large leaves, split by all
    # the threads, send them by each split's default
    X[(X[:, 17] < np.quantile(X[:, 17], 0.2)) & (rng.random(len(X)) < 0.5),
      17] = np.nan
    kw = dict(n_estimators=8, num_leaves=63, bagging_fraction=0.8,
              feature_fraction=0.7, random_state=3)
    p = [GBDTClassifier(n_jobs=j, **kw).fit(X, y).predict_proba(Xt)
         for j in (1, 2, 3)]
    assert p[0].tobytes() == p[1].tobytes() == p[2].tobytes()
    other = GBDTClassifier(n_jobs=1, **dict(kw, random_state=4)).fit(X, y)
    assert other.predict_proba(Xt).tobytes() != p[0].tobytes()


@pytest.mark.parametrize("kind,policy", [("regressor", "leafwise"),
                                         ("classifier", "depthwise")])
def test_same_model_at_any_thread_count_other_modes(rng, kind, policy):
    """Splits computed ahead of their turn on other threads, fixed-point
    sums of unbounded regression gradients, and trees 3 and 5 of a 2- or
    3-thread fit grown by the caller alone (the pool's pacer tries that
    way there): the same bytes at 1-3 threads."""
    from streamwise.datasets.generators import higgs_like
    X, y, Xt, _ = higgs_like(40_000, 2000, seed=6)
    if kind == "regressor":
        y = X[:, 0] * 50 + rng.standard_normal(len(y)) * 10   # |g| >> 1
        est = GBDTRegressor
    else:
        est = GBDTClassifier
    kw = dict(n_estimators=6, num_leaves=63, grow_policy=policy,
              max_depth=6 if policy == "depthwise" else -1,
              bagging_fraction=0.9, random_state=2)
    p = [est(n_jobs=j, **kw).fit(X, y) for j in (1, 2, 3)]
    out = [(m.predict(Xt) if kind == "regressor"
            else m.predict_proba(Xt)).tobytes() for m in p]
    assert out[0] == out[1] == out[2]


def test_early_stopping_keeps_the_best_round(rng):
    from sklearn.datasets import load_breast_cancer
    X, y = load_breast_cancer(return_X_y=True)
    o = rng.permutation(len(y))
    X, y = X[o], y[o]
    m = GBDTClassifier(n_estimators=500, learning_rate=0.3,
                       min_data_in_leaf=5).fit(
        X[:400], y[:400], eval_set=[(X[400:], y[400:])],
        early_stopping_rounds=10)
    curve = m.validation_loss_
    assert m.evals_result_ == {"valid_0": {"binary_logloss": list(curve)}}
    assert m.best_iteration_ == int(np.argmin(curve))
    assert m.n_trees_ == m.best_iteration_ + 1
    assert len(curve) == m.best_iteration_ + 11 < 500


def test_continued_training_equals_training_longer(rng):
    X = rng.standard_normal((3000, 5))
    X[rng.random(X.shape) < 0.05] = np.nan
    y = (np.nan_to_num(X[:, 0]) * np.nan_to_num(X[:, 1]) > 0).astype(float)
    whole = GBDTClassifier(n_estimators=30, num_leaves=8).fit(X, y)
    first = GBDTClassifier(n_estimators=12, num_leaves=8).fit(X, y)
    more = GBDTClassifier(n_estimators=18, num_leaves=8).fit(
        X, y, init_model=first)
    assert more.n_trees_ == 30
    assert more.predict_proba(X).tobytes() == whole.predict_proba(X).tobytes()
    # new data binned by the first model's edges
    fresh = GBDTClassifier(n_estimators=5, num_leaves=8).fit(
        X[:1000] + 0.01, y[:1000], init_model=first)
    assert fresh.n_trees_ == 17


def test_file_and_runner_give_the_same_bits(tmp_path, serve, rng):
    import pandas as pd
    X = rng.standard_normal((2000, 4))
    X[rng.random(X.shape) < 0.1] = np.nan
    y = (np.nan_to_num(X[:, 0]) + np.nan_to_num(X[:, 2]) > 0).astype(int)
    df = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    m = GBDTClassifier(n_estimators=40, num_leaves=16).fit(df, y)
    path = m.save(tmp_path / "m.swm", golden=df[:10])
    back = sw.load(path)
    assert isinstance(back, GBDTClassifier)
    assert back.feature_names_in_ == ["a", "b", "c", "d"]
    probe = X[:300]
    ours = back.predict_proba(probe)[:, 1]
    assert ours.tobytes() == m.predict_proba(probe)[:, 1].tobytes()
    text = "\n".join(",".join(repr(float(v)) for v in row) for row in probe)
    out = subprocess.run([serve, str(path)], input=text + "\n",
                         capture_output=True, text=True, check=True).stdout
    assert np.array([float(v) for v in out.split()]).tobytes() == \
        ours.tobytes()
    # one row from Python: the same value, the C path
    assert back.predict_proba(probe[7])[1] == ours[7]
    assert "gbdt" in sw.inspect(path)


def test_bad_input_is_refused_clearly(rng):
    X = rng.standard_normal((100, 3))
    y = (X[:, 0] > 0).astype(float)
    with pytest.raises(sw.NumericError, match="NaN"):
        GBDTClassifier().fit(X, np.where(np.arange(100) == 3, np.nan, y))
    # three classes train a softmax model; the core refuses fewer
    three = GBDTClassifier(n_estimators=2).fit(X, np.arange(100) % 3)
    assert three.predict_proba(X).shape == (100, 3)
    conf = three._conf(0)
    with pytest.raises(sw.InvalidArgument, match="at least 3 classes"):
        sw._sw.gbdt_fit(dict(conf, **{"gbdt.num_class": "0"}), X, y, None,
                        None, None, 2, None)
    with pytest.raises(sw.InvalidArgument, match="multiclass labels are 0"):
        sw._sw.gbdt_fit(conf, X, np.arange(100) % 4.0, None, None, None, 2,
                        None)
    with pytest.raises(sw.NumericError, match="label 5 is inf"):
        GBDTRegressor().fit(X, np.where(np.arange(100) == 5, np.inf, y))
    with pytest.raises(sw.InvalidArgument, match="X has no rows"):
        GBDTRegressor().fit(X[:0], y[:0])
    m = GBDTRegressor(n_estimators=3).fit(X, y)
    with pytest.raises(sw.ShapeError, match="4 features, the model 3"):
        m.predict(rng.standard_normal((5, 4)))
    with pytest.raises(sw.StateError, match="not fitted"):
        GBDTRegressor().predict(X)
    with pytest.raises(sw.InvalidArgument, match="eval_set"):
        GBDTRegressor().fit(X, y, early_stopping_rounds=5)
    # constant features: nothing to split, the prediction is the mean
    c = GBDTRegressor(n_estimators=5).fit(np.ones((50, 2)), np.arange(50.0))
    assert np.allclose(c.predict(np.ones((3, 2))), 24.5)
    assert c.feature_importances_.tolist() == [0.0, 0.0]


@pytest.mark.parametrize("distinct", [256, 300, 1000])
def test_many_equally_common_values_keep_their_bins(rng, distinct):
    # more distinct values than bins, each repeated: the quantile cuts must
    # move to value boundaries, not vanish inside runs of equal values
    x = rng.integers(0, distinct, 20000).astype(float)
    y = (x > distinct / 2).astype(int)
    m = GBDTClassifier(n_estimators=2, num_leaves=4).fit(x[:, None], y)
    p = m.predict_proba(np.array([[0.0], [distinct - 1.0]]))[:, 1]
    assert p[1] - p[0] > 0.15
    assert m.feature_importances_.tolist() == [6.0]


def test_progress_bar_and_stopping_a_long_fit(rng, capsys):
    X = rng.standard_normal((500, 3))
    y = (X[:, 0] > 0).astype(float)
    m = GBDTClassifier(n_estimators=7).fit(X, y, progress=True)
    assert "7/7" in capsys.readouterr().err and m.n_trees_ == 7
    calls = []

    def stop_at_3(done, rounds, loss):
        calls.append((done, rounds))
        if done == 3:
            raise KeyboardInterrupt

    est = GBDTClassifier(n_estimators=50)
    with pytest.raises(KeyboardInterrupt):
        sw._sw.gbdt_fit(est._conf(0), X, y, None, None, None, 50, stop_at_3)
    assert calls == [(1, 50), (2, 50), (3, 50)]


def test_depthwise_growth_fills_levels_in_order(rng):
    X = rng.standard_normal((4000, 4))
    y = X[:, 0] + np.sin(3 * X[:, 1]) + 0.1 * rng.standard_normal(4000)
    d = GBDTRegressor(n_estimators=1, learning_rate=1.0, num_leaves=1000,
                      max_depth=3, min_data_in_leaf=5,
                      grow_policy="depthwise").fit(X, y)
    # a full tree of depth 3: 8 distinct leaves, 7 splits
    assert len(np.unique(d.predict(X))) == 8
    assert d.feature_importances_.sum() == 7
    # leaf-wise with the same leaf budget may go deeper and unbalanced
    w = GBDTRegressor(n_estimators=1, learning_rate=1.0, num_leaves=8,
                      min_data_in_leaf=5).fit(X, y)
    assert len(np.unique(w.predict(X))) == 8
    # with a leaf cap, depth-wise stops mid-level, shallowest leaves first
    c = GBDTRegressor(n_estimators=1, learning_rate=1.0, num_leaves=5,
                      max_depth=3, min_data_in_leaf=5,
                      grow_policy="depthwise").fit(X, y)
    assert len(np.unique(c.predict(X))) == 5
    # a nested target: leaf-wise with 4 leaves follows x0 > 0, x1 > 0,
    # x2 > 0 down one path; depth-wise fills level 1 first (splitting the
    # x0 <= 0 side on x3) and gives the full depth-2 tree
    p = X[:, 0] > 0
    y2 = 8 * p + 4 * p * (X[:, 1] > 0) + 2 * p * (X[:, 1] > 0) * \
        (X[:, 2] > 0) + 0.3 * X[:, 3]
    kw = dict(n_estimators=1, learning_rate=1.0, min_data_in_leaf=5)
    leafwise = GBDTRegressor(num_leaves=4, **kw).fit(X, y2)
    capped = GBDTRegressor(num_leaves=4, max_depth=5, grow_policy="depthwise",
                           **kw).fit(X, y2)
    full2 = GBDTRegressor(num_leaves=1000, max_depth=2,
                          grow_policy="depthwise", **kw).fit(X, y2)
    assert leafwise.feature_importances_.tolist() == [1, 1, 1, 0]
    assert capped.feature_importances_.tolist() == [1, 1, 0, 1]
    assert capped.predict(X).tobytes() == full2.predict(X).tobytes()
    with pytest.raises(sw.InvalidArgument, match="max_depth"):
        GBDTRegressor(grow_policy="depthwise").fit(X, y)


def test_pickle_round_trip(rng):
    import pickle
    X = rng.standard_normal((300, 3))
    y = np.where(X[:, 0] > 0, "yes", "no")
    m = GBDTClassifier(n_estimators=5).fit(X, y)
    back = pickle.loads(pickle.dumps(m))
    assert back.predict_proba(X).tobytes() == m.predict_proba(X).tobytes()
    assert back.predict(X[:5]).tolist() == m.predict(X[:5]).tolist()
    assert set(back.classes_) == {"no", "yes"}
    assert pickle.loads(pickle.dumps(GBDTRegressor()))._model is None


_DRIVER = r"""
#include <stdio.h>
#include <stdlib.h>
#include "%(name)s.h"

int main(void)
{
    double x[%(name)s_N_FEATURES], p;

    while (fread(x, sizeof(double), %(name)s_N_FEATURES, stdin) ==
           %(name)s_N_FEATURES) {
        p = %(name)s_predict(x);
        fwrite(&p, sizeof(double), 1, stdout);
    }
    return 0;
}
"""

_DRIVER_MULTI = r"""
#include <stdio.h>
#include <stdlib.h>
#include "%(name)s.h"

int main(void)
{
    double x[%(name)s_N_FEATURES], p[%(name)s_N_CLASSES];

    while (fread(x, sizeof(double), %(name)s_N_FEATURES, stdin) ==
           %(name)s_N_FEATURES) {
        %(name)s_predict(x, p);
        fwrite(p, sizeof(double), %(name)s_N_CLASSES, stdout);
    }
    return 0;
}
"""


@pytest.mark.parametrize("kind", ["classifier", "regressor", "multiclass"])
def test_c_export_matches_the_interpreter_bit_for_bit(tmp_path, rng, kind):
    """The generated C, compiled by the system's compiler and split over
    several files, gives the interpreter's outputs byte for byte, NaN
    defaults included (an odd feature count: the interpreter's NaN scan
    takes two at a time)."""
    import shutil
    X = rng.standard_normal((4000, 7))
    X[rng.random(X.shape) < 0.1] = np.nan
    signal = np.nan_to_num(X[:, 0], nan=1.5) + np.nan_to_num(X[:, 1]) ** 2
    if kind == "classifier":
        y = (signal + 0.3 * rng.standard_normal(len(X)) > 1.0).astype(int)
        m = GBDTClassifier(n_estimators=23, num_leaves=31).fit(X, y)
        want = m.predict_proba(X)[:, 1]
    elif kind == "multiclass":
        y = np.digitize(signal + 0.3 * rng.standard_normal(len(X)),
                        [0.0, 1.0, 2.5])
        m = GBDTClassifier(n_estimators=9, num_leaves=15).fit(X, y)
        want = m.predict_proba(X)
        assert want.shape == (len(X), 4)
    else:
        y = 3 * signal + rng.standard_normal(len(X))
        m = GBDTRegressor(n_estimators=17, num_leaves=15).fit(X, y)
        want = m.predict(X)
    name = f"m_{kind}"
    paths = m.export_c(tmp_path, name=name, trees_per_file=5)
    sources = [p for p in paths if p.endswith(".c")]
    assert len(sources) == 1 + -(-m.n_trees_ // 5)     # name.c + the trees
    driver = _DRIVER_MULTI if kind == "multiclass" else _DRIVER
    (tmp_path / "main.c").write_text(driver % {"name": name})
    cc = shutil.which("cc") or shutil.which("gcc")
    exe = tmp_path / "score"
    subprocess.run([cc, "-std=c99", "-O2", "-I", str(tmp_path),
                    str(tmp_path / "main.c"), *sources, "-lm", "-o",
                    str(exe)], check=True)
    got = subprocess.run([str(exe)], input=np.ascontiguousarray(
        X, dtype=np.float64).tobytes(), capture_output=True,
        check=True).stdout
    assert got == np.ascontiguousarray(want).tobytes()


def test_c_export_refuses_bad_names(tmp_path, rng):
    X = rng.standard_normal((300, 3))
    m = GBDTRegressor(n_estimators=2).fit(X, X[:, 0])
    with pytest.raises(sw.InvalidArgument, match="not a C identifier"):
        m.export_c(tmp_path, name="9lives")
    # a folder that is not there yet is made, as a user expects
    paths = m.export_c(tmp_path / "new" / "dir", name="ok")
    assert all(os.path.getsize(p) > 0 for p in paths)
    (tmp_path / "a-file").write_text("")
    with pytest.raises(OSError):
        m.export_c(tmp_path / "a-file" / "dir", name="ok")


def test_cli_export_c_writes_what_the_method_writes(tmp_path, rng):
    import os
    import sys
    X = rng.standard_normal((500, 4))
    m = GBDTClassifier(n_estimators=7, num_leaves=7).fit(
        X, (X[:, 0] > 0).astype(int))
    m.save(tmp_path / "m.swm")
    direct = m.export_c(tmp_path, name="direct", trees_per_file=3)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    out = subprocess.run([sys.executable, "-m", "streamwise", "export-c",
                          str(tmp_path / "m.swm"), "--out",
                          str(tmp_path / "cli"), "--name", "direct",
                          "--trees-per-file", "3"],
                         capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    listed = out.stdout.split()
    assert [os.path.basename(p) for p in listed] == \
        [os.path.basename(p) for p in direct]
    for a, b in zip(direct, listed):
        assert open(a).read() == open(b).read()


def _digits():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    X, y = load_digits(return_X_y=True)
    return train_test_split(X, y, test_size=0.3, random_state=0)


def _mlogloss(p, y):
    return float(-np.mean(np.log(np.clip(p[np.arange(len(y)), y], 1e-15,
                                         None))))


def test_multiclass_softmax_beside_xgboost():
    """Ten digit classes (the data scikit-learn ships): probabilities sum
    to 1, accuracy and log-loss close to xgboost's softprob with the same
    rounds, leaves and learning rate."""
    import xgboost as xgb
    Xtr, Xte, ytr, yte = _digits()
    m = GBDTClassifier(n_estimators=60, num_leaves=15,
                       min_data_in_leaf=5).fit(Xtr, ytr)
    p = m.predict_proba(Xte)
    assert p.shape == (len(Xte), 10) and m.n_trees_ == 600
    assert np.allclose(p.sum(axis=1), 1.0, atol=1e-12)
    assert list(m.classes_) == list(range(10))
    xm = xgb.XGBClassifier(n_estimators=60, max_leaves=15, max_depth=0,
                           grow_policy="lossguide", tree_method="hist",
                           learning_rate=0.1, min_child_weight=0,
                           n_jobs=1).fit(Xtr, ytr)
    px = xm.predict_proba(Xte)
    acc, xacc = (m.predict(Xte) == yte).mean(), (px.argmax(1) == yte).mean()
    assert acc > 0.9 and acc > xacc - 0.03, (acc, xacc)
    assert _mlogloss(p, yte) < 1.15 * _mlogloss(px, yte)
    one = m.predict_proba(Xte[3])
    assert one.shape == (10,) and one.tobytes() == p[3].tobytes()


def test_multiclass_labels_threads_continuation_and_runner(tmp_path, serve):
    """String labels in sorted order; the same bytes at 1-3 threads; 10 + 15
    rounds equal 25; early stopping keeps whole rounds; the file and
    sw-serve give the same probabilities, bit for bit."""
    Xtr, Xte, ytr, yte = _digits()
    keep = ytr < 4
    Xtr, ytr = Xtr[keep], np.array(["zero", "one", "two", "three"])[ytr[keep]]
    kw = dict(num_leaves=7, bagging_fraction=0.8, random_state=1)
    ms = [GBDTClassifier(n_estimators=8, n_jobs=j, **kw).fit(Xtr, ytr)
          for j in (1, 2, 3)]
    assert list(ms[0].classes_) == ["one", "three", "two", "zero"]
    outs = [m.predict_proba(Xte).tobytes() for m in ms]
    assert outs[0] == outs[1] == outs[2]
    whole = GBDTClassifier(n_estimators=25, **kw).fit(Xtr, ytr)
    first = GBDTClassifier(n_estimators=10, **kw).fit(Xtr, ytr)
    more = GBDTClassifier(n_estimators=15, **kw).fit(Xtr, ytr,
                                                     init_model=first)
    assert more.predict_proba(Xte).tobytes() == \
        whole.predict_proba(Xte).tobytes()
    es = GBDTClassifier(n_estimators=300, num_leaves=7).fit(
        Xtr[:400], ytr[:400], eval_set=[(Xtr[400:], ytr[400:])],
        early_stopping_rounds=5)
    assert es.n_trees_ == 4 * (es.best_iteration_ + 1)
    assert es.validation_loss_.argmin() == es.best_iteration_
    assert list(es.evals_result_["valid_0"]) == ["multi_logloss"]
    path = whole.save(tmp_path / "m.swm")
    back = sw.load(path)
    probe = Xte[:200]
    ours = back.predict_proba(probe)
    assert ours.tobytes() == whole.predict_proba(probe).tobytes()
    text = "\n".join(",".join(repr(float(v)) for v in row) for row in probe)
    out = subprocess.run([serve, str(path)], input=text + "\n",
                         capture_output=True, text=True, check=True).stdout
    got = np.array([[float(v) for v in line.split(",")]
                    for line in out.split()])
    assert got.tobytes() == ours.tobytes()
    with pytest.raises(sw.InvalidArgument, match="not one of"):
        GBDTClassifier(n_estimators=2).fit(
            Xtr, ytr, eval_set=[(Xtr[:5], ["five"] * 5)])


def test_file_with_too_many_bin_edges_is_refused(rng, tmp_path):
    """A feature has at most 254 edges (its NaN bin must fit a byte): a
    file claiming 255, sealed again so that only this check can catch it,
    is refused; the untouched file loads."""
    import hashlib
    import struct
    import zlib
    X = rng.standard_normal((2000, 2))
    y = (X[:, 0] > 0).astype(float)
    m = GBDTClassifier(n_estimators=2, num_leaves=4).fit(X, y)
    path = tmp_path / "m.swm"
    m.save(path)
    b = bytearray(path.read_bytes())
    n_sec = struct.unpack_from("<I", b, 112)[0]
    for i in range(n_sec):
        typ, _, off, ln, _ = struct.unpack_from("<IIQQI", b, 128 + 32 * i)
        if typ == 2:
            entry = 128 + 32 * i
            break
    # the MODEL section: u32 objective, classes; u64 nf; f64 base, lr;
    # u64 best + 1, trees, nodes; u64 tree offsets; 32-byte nodes; u64
    # edge offsets
    nf, = struct.unpack_from("<Q", b, off + 8)
    trees, nodes = struct.unpack_from("<QQ", b, off + 40)
    at = off + 56 + 8 * (trees + 1) + 32 * nodes
    starts = struct.unpack_from("<%dQ" % (nf + 1), b, at)
    assert nf == 2 and starts[0] == 0 and 254 < starts[2] <= 2 * 254
    assert sw.load(path).predict_proba(X).tobytes() == \
        m.predict_proba(X).tobytes()
    struct.pack_into("<Q", b, at + 8, 255)     # feature 0: 255 edges
    section = bytes(b[off:off + ln])
    struct.pack_into("<I", b, entry + 24, zlib.crc32(section))
    b[56:72] = hashlib.sha256(section).digest()[:16]   # the model id
    b[124:128] = struct.pack("<I", zlib.crc32(bytes(b[:124])))
    b[-32:] = hashlib.sha256(bytes(b[:-32])).digest()
    bad = tmp_path / "bad.swm"
    bad.write_bytes(bytes(b))
    with pytest.raises(sw.FormatError, match="bin edges out of range"):
        sw.load(bad)


def test_repr_shows_the_parameters_set():
    assert repr(GBDTClassifier(n_estimators=3, num_leaves=7)) == \
        "GBDTClassifier(n_estimators=3, num_leaves=7)"
    assert repr(GBDTRegressor()) == "GBDTRegressor()"


def test_lightgbm_scikit_learn_names_are_aliases(rng):
    import sklearn.base
    X = rng.standard_normal((600, 5))
    y = (X[:, 0] + X[:, 1] ** 2 > 1).astype(int)
    native = GBDTClassifier(n_estimators=8, min_data_in_leaf=7,
                            lambda_l2=2.0, bagging_fraction=0.8,
                            feature_fraction=0.6, lambda_l1=0.5,
                            min_gain_to_split=0.01,
                            min_sum_hessian_in_leaf=0.01,
                            random_state=3).fit(X, y)
    alias = GBDTClassifier(n_estimators=8, min_child_samples=7,
                           reg_lambda=2.0, subsample=0.8,
                           colsample_bytree=0.6, reg_alpha=0.5,
                           min_split_gain=0.01, min_child_weight=0.01,
                           random_state=3).fit(X, y)
    # the same trees (the files differ only in the parameters recorded)
    assert alias.predict_proba(X).tobytes() == \
        native.predict_proba(X).tobytes()
    assert alias.feature_importance("gain").tobytes() == \
        native.feature_importance("gain").tobytes()
    assert alias.predict_proba(X).tobytes() != \
        GBDTClassifier(n_estimators=8, random_state=3).fit(X, y)\
        .predict_proba(X).tobytes()
    assert repr(alias).startswith("GBDTClassifier(n_estimators=8, ")
    with pytest.raises(sw.InvalidArgument, match="same parameter"):
        GBDTClassifier(min_data_in_leaf=5, min_child_samples=9).fit(X, y)
    # scikit-learn knows what they are, and score says what it says there
    assert sklearn.base.is_classifier(native)
    assert sklearn.base.is_regressor(GBDTRegressor())
    assert native.score(X, y) == float(np.mean(native.predict(X) == y))
    r = GBDTRegressor(n_estimators=20).fit(X, X[:, 0])
    p = r.predict(X)
    want = 1 - np.sum((X[:, 0] - p) ** 2) / np.sum(
        (X[:, 0] - X[:, 0].mean()) ** 2)
    assert abs(r.score(X, X[:, 0]) - want) < 1e-12


def test_one_row_river_style(rng):
    import pandas as pd
    X = rng.standard_normal((400, 3))
    y = (X[:, 0] - X[:, 2] > 0).astype(int)
    df = pd.DataFrame(X, columns=["a", "b", "c"])
    m = GBDTClassifier(n_estimators=10).fit(df, y)
    row = {"c": X[5, 2], "a": X[5, 0], "b": X[5, 1]}    # any order
    got = m.predict_proba_one(row)
    want = m.predict_proba(df.iloc[5:6])[0]
    assert list(got) == [0, 1]
    assert np.array([got[0], got[1]]).tobytes() == want.tobytes()
    assert m.predict_one(row) == m.predict(df.iloc[5:6])[0]
    # a feature left out is missing, as NaN is
    nan_row = df.iloc[5:6].copy()
    nan_row["b"] = np.nan
    assert m.predict_proba_one({"a": X[5, 0], "c": X[5, 2]})[1] == \
        m.predict_proba(nan_row)[0, 1]
    with pytest.raises(sw.InvalidArgument, match="unknown feature 'd'"):
        m.predict_one({"d": 1.0})
    r = GBDTRegressor(n_estimators=5).fit(X, X[:, 1])
    assert r.predict_one(X[7]) == r.predict(X[7:8])[0]


def test_decision_function_is_the_raw_score(rng):
    X = rng.standard_normal((600, 4))
    y = (X[:, 0] + X[:, 1] ** 2 > 1).astype(int)
    m = GBDTClassifier(n_estimators=30, num_leaves=7).fit(X, y)
    d = m.decision_function(X)
    assert d.shape == (600,)
    assert np.allclose(1 / (1 + np.exp(-d)), m.predict_proba(X)[:, 1],
                       rtol=1e-13, atol=0)
    assert m.decision_function(X[3]) == pytest.approx(d[3], rel=1e-15)
    # ranges of trees add up to the whole; a range past the end is refused
    raw = m._fitted().gbdt_raw
    assert np.allclose(raw(X, 0, 10) + raw(X, 10, 20), d, rtol=1e-12)
    with pytest.raises(sw.InvalidArgument, match=r"trees 25 \.\. 34, the "
                                                  r"model has 30"):
        raw(X, 25, 10)
    y3 = np.digitize(X[:, 0], [-0.5, 0.5])
    m3 = GBDTClassifier(n_estimators=20, num_leaves=7).fit(X, y3)
    d3 = m3.decision_function(X)
    z = np.exp(d3 - d3.max(axis=1, keepdims=True))
    assert np.allclose(z / z.sum(axis=1, keepdims=True),
                       m3.predict_proba(X), rtol=1e-12, atol=1e-15)
    # scikit-learn: a regressor has no decision_function
    assert not hasattr(GBDTRegressor(), "decision_function")


def test_eval_metric_curves_match_sklearn_on_shorter_fits(rng):
    from sklearn.metrics import log_loss, roc_auc_score
    X = rng.standard_normal((1500, 5))
    y = (X[:, 0] - X[:, 2] + 0.5 * rng.standard_normal(1500) > 0).astype(int)
    Xt, yt, Xv, yv = X[:1000], y[:1000], X[1000:], y[1000:]
    m = GBDTClassifier(n_estimators=12, num_leaves=7).fit(
        Xt, yt, eval_set=[(Xv, yv)], eval_metric=["auc", "binary_error"])
    res = m.evals_result_["valid_0"]
    assert sorted(res) == ["auc", "binary_error", "binary_logloss"]
    assert all(len(v) == 12 for v in res.values())
    for r in (0, 5, 11):
        # the first r + 1 rounds are the model a fit of r + 1 rounds makes
        p = GBDTClassifier(n_estimators=r + 1, num_leaves=7).fit(
            Xt, yt).predict_proba(Xv)[:, 1]
        assert res["auc"][r] == pytest.approx(roc_auc_score(yv, p),
                                              rel=1e-9)
        assert res["binary_logloss"][r] == pytest.approx(log_loss(yv, p),
                                                         rel=1e-9)
        assert res["binary_error"][r] == pytest.approx(
            np.mean((p > 0.5) != yv))
    with pytest.raises(sw.InvalidArgument, match="'l2'.*binary_logloss, "
                                                  "binary_error, auc"):
        GBDTClassifier(n_estimators=2).fit(Xt, yt, eval_set=[(Xv, yv)],
                                           eval_metric="l2")
    reg = GBDTRegressor(n_estimators=5).fit(
        Xt, X[:1000, 0], eval_set=[(Xv, X[1000:, 0])],
        eval_metric=["l1", "rmse"])
    res = reg.evals_result_["valid_0"]
    assert np.allclose(np.sqrt(res["l2"]), res["rmse"], rtol=1e-9)
    assert res["l1"][-1] == pytest.approx(
        np.mean(np.abs(reg.predict(Xv) - X[1000:, 0])), rel=1e-9)
