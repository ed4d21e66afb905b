"""`macro_f1` is scikit-learn's macro F1 (zero_division=0), computed without importing it."""

import numpy as np
import pytest

from gptfl_ray.fl.metrics import macro_f1


@pytest.mark.parametrize("seed", range(12))
def test_macro_f1_equals_scikit_learns(seed):
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(seed)
    n, k = int(rng.integers(1, 300)), int(rng.integers(2, 12))
    true = rng.integers(0, k, n)
    # some predictions right, some classes never predicted, some predicted but absent from true
    pred = np.where(rng.random(n) < 0.5, true, rng.integers(0, k + 2, n))
    if seed % 3 == 0:
        pred = np.zeros_like(true)  # one class predicted for everything
    want = f1_score(true, pred, average="macro", zero_division=0)
    assert macro_f1(true, pred) == pytest.approx(want, rel=1e-12, abs=1e-15)


def test_macro_f1_edge_cases():
    assert macro_f1(np.array([1, 1]), np.array([1, 1])) == 1.0
    assert macro_f1(np.array([0, 1]), np.array([1, 0])) == 0.0
    assert macro_f1(np.array([], np.int64), np.array([], np.int64)) == 0.0
