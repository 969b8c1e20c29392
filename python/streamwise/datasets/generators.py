"""Seeded synthetic streams, exactly as ../shared/BENCHMARKS.md defines them,
so that numbers measured here compare with the peers' figures there."""
import numpy as np

__all__ = ["dense_stream", "hashed_stream", "multiclass_stream", "higgs_like"]


def dense_stream(n=200_000, d=100, seed=0):
    """dense100: X ~ N(0, 1), y = sign(X w + 0.5 noise) in {-1, +1}."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    w = rng.standard_normal(d)
    y = np.sign(X @ w + 0.5 * rng.standard_normal(n))
    y[y == 0] = 1
    return X, y


def hashed_stream(n=200_000, dims=2 ** 20, nnz=30, seed=0):
    """hashed2^20: nnz random columns of value 1.0 per row (duplicates
    summed, as CSR construction does), labels from a random w. Barely
    learnable: a throughput test."""
    import scipy.sparse as sp
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, dims, (n, nnz))
    X = sp.csr_matrix((np.ones(n * nnz), idx.ravel(),
                       np.arange(0, n * nnz + 1, nnz)), shape=(n, dims))
    X.sum_duplicates()
    w = rng.standard_normal(dims)
    y = np.sign(X @ w + 0.5 * rng.standard_normal(n))
    y[y == 0] = 1
    return X, y


def multiclass_stream(n=200_000, d=100, k=10, seed=0):
    """10-class: dense100 features, label = argmax of X W."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    W = rng.standard_normal((d, k))
    return X, np.argmax(X @ W, axis=1)


def higgs_like(n_train=1_000_000, n_test=200_000, seed=20240601):
    """The Higgs-like binary task of BENCHMARKS.md: 28 float32 features
    (x0-x6 log-normal "momenta" exp(0.5 z), x7-x13 uniform angles in
    (-pi, pi), x14-x20 standard normal, x21-x27 |z|^1.5) and a label drawn
    from the sigmoid of the stated logit. Drawn in that order, train and
    test rows together, train first. Returns Xtr, ytr, Xte, yte."""
    rng = np.random.default_rng(seed)
    n = n_train + n_test
    mom = np.exp(0.5 * rng.standard_normal((n, 7)))
    ang = rng.uniform(-np.pi, np.pi, (n, 7))
    nrm = rng.standard_normal((n, 7))
    pw = np.abs(rng.standard_normal((n, 7))) ** 1.5
    X = np.hstack([mom, ang, nrm, pw]).astype(np.float32)
    x = X.astype(np.float64)
    logit = (0.9 * (x[:, 0] - 1.1) * (x[:, 1] - 1.1)
             - 0.8 * np.sin(x[:, 7]) * x[:, 14]
             + 0.7 * np.cos(x[:, 8] - x[:, 9])
             + 0.6 * (x[:, 15] > 0.3) * x[:, 16]
             - 0.5 * np.log1p(x[:, 21]) * x[:, 2]
             + 0.4 * x[:, 17] ** 2 - 0.4
             + 0.3 * np.tanh(x[:, 3] * x[:, 18])
             + 0.25 * x[:, 19] - 0.2 * x[:, 22] + 0.15 * x[:, 4]
             + 0.5 * rng.standard_normal(n))
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(np.float64)
    return X[:n_train], y[:n_train], X[n_train:], y[n_train:]
