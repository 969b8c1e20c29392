"""The closing note's numbers, checked on the real data when it is there:
one pass of prequential evaluation on banknote, features unscaled."""
import numpy as np
import pytest

import streamwise as sw
from streamwise import datasets

from conftest import have_data

pytestmark = pytest.mark.skipif(not have_data("banknote"),
                                reason="no ../shared/datasets")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_banknote_prequential(seed):
    X, y = datasets.load_banknote(seed=seed)
    pa = sw.evaluate.prequential(sw.PassiveAggressiveClassifier(), X, y)
    scw = sw.evaluate.prequential(sw.SCWClassifier(), X, y)
    assert pa[-1] >= 0.95
    assert scw[-1] >= 0.97
