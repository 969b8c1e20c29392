"""Readers, loaders and generators."""
import gzip

import numpy as np
import pytest

from streamwise import datasets

from conftest import have_data


def test_libsvm_round_trip(tmp_path, rng):
    import scipy.sparse as sp
    X = sp.random(30, 12, density=0.3, random_state=1, format="csr")
    y = rng.integers(0, 2, 30) * 2 - 1
    path = tmp_path / "d.svm"
    datasets.write_libsvm(path, X, y)
    X2, y2 = datasets.load_libsvm(path, n_features=12)
    assert (X2 != X).nnz == 0 and np.array_equal(y2, y)
    gz = tmp_path / "d.svm.gz"
    with gzip.open(gz, "wt") as f:
        f.write(path.read_text())
    X3, _ = datasets.load_libsvm(gz, n_features=12)
    assert (X3 != X).nnz == 0


def test_libsvm_errors(tmp_path):
    p = tmp_path / "bad.svm"
    p.write_text("1 1:0.5 2:1\n-1 3:abc\n")
    with pytest.raises(ValueError, match="line 2"):
        datasets.load_libsvm(p)
    p.write_text("1 0:1\n")
    with pytest.raises(ValueError, match="line 1: column 0 is below 1"):
        datasets.load_libsvm(p)
    p.write_text("1 5:1\n")
    with pytest.raises(ValueError, match="does not fit"):
        datasets.load_libsvm(p, n_features=3)


def test_generators_match_benchmarks_md():
    X, y = datasets.dense_stream(n=1000)
    assert X.shape == (1000, 100) and set(np.unique(y)) == {-1.0, 1.0}
    rng = np.random.default_rng(0)
    assert np.array_equal(X, rng.standard_normal((1000, 100)))
    Xs, ys = datasets.hashed_stream(n=500)
    assert Xs.shape == (500, 2 ** 20) and Xs.max() >= 1.0
    Xm, ym = datasets.multiclass_stream(n=500)
    assert set(np.unique(ym)) <= set(range(10))


def test_missing_data_dir_is_clear(tmp_path, monkeypatch):
    monkeypatch.setenv("STREAMWISE_DATA", str(tmp_path))
    with pytest.raises(datasets.DataNotFound, match="banknote"):
        datasets.load_banknote(data=str(tmp_path))


@pytest.mark.skipif(not have_data("banknote"), reason="no ../shared/datasets")
def test_banknote_loader():
    X, y = datasets.load_banknote()
    assert X.shape == (1372, 4) and np.bincount(y).tolist() == [762, 610]
    X0, y0 = datasets.load_banknote(shuffle=False)
    assert y0[:762].sum() == 0
    assert np.array_equal(np.sort(X0, axis=0), np.sort(X, axis=0))


@pytest.mark.skipif(not have_data("libsvm-a8a"), reason="no ../shared/datasets")
def test_a8a_loader():
    X, y = datasets.load_a8a()
    assert X.shape == (22696, 123) and X.nnz == 314815
    assert (y == 1).sum() == 5506


def test_bundled_tables():
    X, y = datasets.load_bundled("breast_cancer")
    assert X.shape == (569, 30) and set(y) == {0, 1}


@pytest.mark.skipif(not have_data("movielens-100k"),
                    reason="no ../shared/datasets")
def test_movielens_loader():
    R, titles = datasets.load_movielens_100k()
    assert R.shape == (943, 1682) and R.nnz == 100000
    assert titles[0] == "Toy Story (1995)"
    assert sorted(set(R.data.tolist())) == [1, 2, 3, 4, 5]


@pytest.mark.skipif(not have_data("lastfm-hetrec2011-2k"),
                    reason="no ../shared/datasets")
def test_lastfm_loader():
    plays, users, artists = datasets.load_lastfm()
    assert plays.shape == (len(users), len(artists)) == (1892, 17632)
    assert plays.nnz == 92834 and plays.data.min() >= 1
