"""The digits loader reads scikit-learn's file and draws its test set without importing
scikit-learn: the same samples, and the same split as `train_test_split(stratify=y)`."""

import numpy as np
import pytest

from gptfl_ray.data.digits import digits_arrays, digits_csv, stratified_test_split


def test_the_file_is_scikit_learns_digits():
    from sklearn.datasets import load_digits

    assert digits_csv() is not None
    x, y = digits_arrays()
    bunch = load_digits()
    assert x.shape == (1797, 1, 8, 8) and x.dtype == np.uint8 and y.dtype == np.int64
    np.testing.assert_array_equal(x[:, 0], bunch.images.astype(np.uint8))
    np.testing.assert_array_equal(y, bunch.target)


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4, 7, 42, 12345])
@pytest.mark.parametrize("fraction", [0.2, 0.1, 0.33])
def test_the_test_split_is_train_test_split_stratified(seed, fraction):
    from sklearn.model_selection import train_test_split

    _, y = digits_arrays()
    idx = np.arange(len(y))
    want_train, want_test = train_test_split(idx, test_size=fraction, random_state=seed, stratify=y)
    train, test = stratified_test_split(y, fraction, seed)
    np.testing.assert_array_equal(train, want_train)
    np.testing.assert_array_equal(test, want_test)


def test_ties_in_the_remainders_are_broken_as_scikit_learn_breaks_them():
    from sklearn.model_selection import train_test_split

    # equal class sizes: every remainder ties, so the random tie-break decides the counts
    y = np.repeat(np.arange(7), [5, 5, 5, 5, 5, 3, 3])
    for seed in range(20):
        want = train_test_split(np.arange(len(y)), test_size=0.3, random_state=seed, stratify=y)
        got = stratified_test_split(y, 0.3, seed)
        for a, b in zip(got, want, strict=True):
            np.testing.assert_array_equal(a, b)


def test_loading_digits_does_not_import_scikit_learn():
    import subprocess
    import sys

    code = (
        "import sys; from gptfl_ray.data.digits import load_digits_dataset; "
        "from gptfl_ray.fl.metrics import HeldOut; d = load_digits_dataset(0); "
        "assert len(d.y_train) == 1295 and len(d.y_val) == 142 and len(d.y_test) == 360; "
        "print('sklearn' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
