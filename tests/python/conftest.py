"""Shared fixtures: seeded data, the runner binary, fixture paths."""
import os
import subprocess

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))
SERVE = os.path.join(ROOT, "build", "bin", "sw-serve")
FIXTURES = os.path.join(ROOT, "tests", "c", "data")


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture(scope="session")
def serve():
    """Path of the C runner; `make` builds it before the tests run."""
    if not os.path.exists(SERVE):
        subprocess.check_call(["make", "-C", ROOT, "runner"])
    return SERVE


def have_data(*parts):
    from streamwise.datasets import DataNotFound, data_dir
    try:
        return os.path.exists(os.path.join(data_dir(), *parts))
    except DataNotFound:
        return False


def separable(rng, n=300, d=6, k=2, noise=0.3):
    X = rng.standard_normal((n, d))
    W = rng.standard_normal((d, k))
    y = np.argmax(X @ W + noise * rng.standard_normal((n, k)), axis=1)
    return X, y
