"""Seeded synthetic streams, exactly as ../shared/BENCHMARKS.md defines them,
so that numbers measured here compare with the peers' figures there."""
import numpy as np

__all__ = ["dense_stream", "hashed_stream", "multiclass_stream"]


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
