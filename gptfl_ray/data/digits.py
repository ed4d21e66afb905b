"""scikit-learn's digits: 1797 real 8x8 handwritten digits, the embedded offline default.

The data ship inside scikit-learn, so this task needs no network. Pixels are counts of set
pixels in 4x4 blocks of a 32x32 bitmap, 0..16; the glyph generator produces exactly this format.

Split (fixed by `seed`): a stratified 20% test set (360), then a stratified 10% of the rest as
validation (142), leaving 1,295 training samples for the clients.

The file is read and the test set drawn without importing scikit-learn, whose import (about
2 s on a 2-core machine) would otherwise sit on the critical path of every digits run: the
CSV is found through scikit-learn's package location, and `stratified_test_split` draws the
same indices as `sklearn.model_selection.train_test_split(..., stratify=y, random_state=seed)`
(tests/data/test_digits_split.py compares them, so the published numbers keep their split).
"""

from __future__ import annotations

import gzip
import importlib.util
import math
from pathlib import Path

import numpy as np

from gptfl_ray.data.base import Dataset, carve_validation

DIGITS_CLASS_NAMES = tuple(str(i) for i in range(10))


def load_digits_dataset(seed: int = 0, test_fraction: float = 0.2, **_) -> Dataset:
    x, y = digits_arrays()
    train_all, test = stratified_test_split(y, test_fraction, seed)
    x_tr, y_tr, x_te, y_te = x[train_all], y[train_all], x[test], y[test]
    train, val = carve_validation(y_tr, seed)
    return Dataset(
        name="digits",
        modality="image",
        class_names=DIGITS_CLASS_NAMES,
        x_train=x_tr[train],
        y_train=y_tr[train],
        x_test=x_te,
        y_test=y_te,
        x_val=x_tr[val],
        y_val=y_tr[val],
        max_value=16.0,
        mean=(0.3,),
        std=(0.4,),
        extra={"split_seed": int(seed)},
    )


def digits_csv() -> Path | None:
    """scikit-learn's digits.csv.gz (64 pixel columns, then the label), located without importing it."""
    spec = importlib.util.find_spec("sklearn")
    for root in (spec.submodule_search_locations or []) if spec else []:
        path = Path(root) / "datasets" / "data" / "digits.csv.gz"
        if path.is_file():
            return path
    return None


def digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """Images (1797, 1, 8, 8) uint8 in 0..16 and labels (1797,) int64, in the file's order."""
    path = digits_csv()
    if path is None:  # an unusual install: let scikit-learn find its own file
        from sklearn.datasets import load_digits

        bunch = load_digits()
        return bunch.images.astype(np.uint8)[:, None, :, :], bunch.target.astype(np.int64)
    with gzip.open(path, "rt") as fh:
        data = np.loadtxt(fh, delimiter=",")
    return data[:, :-1].reshape(-1, 1, 8, 8).astype(np.uint8), data[:, -1].astype(np.int64)


def stratified_test_split(y: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) indices: scikit-learn's stratified shuffle split, one split, for an int seed.

    The test set takes ceil(fraction * n) samples. Each class's share of the train and then the
    test set is its proportional count rounded down, and the samples still missing go to the
    classes with the largest remainders, ties broken at random; then each class's samples are
    shuffled and cut, and both index lists are shuffled. The random draws come from a
    `np.random.RandomState(seed)` in the order scikit-learn makes them.
    """
    y = np.asarray(y)
    n = len(y)
    n_test = math.ceil(test_fraction * n)
    n_train = n - n_test
    _, y_idx, counts = np.unique(y, return_inverse=True, return_counts=True)
    by_class = np.split(np.argsort(y_idx, kind="stable"), np.cumsum(counts)[:-1])
    rng = np.random.RandomState(seed)
    n_i = _shares(counts, n_train, rng)
    t_i = _shares(counts - n_i, n_test, rng)
    train: list[int] = []
    test: list[int] = []
    for c, members in enumerate(by_class):
        order = members.take(rng.permutation(counts[c]), mode="clip")
        train.extend(order[: n_i[c]])
        test.extend(order[n_i[c] : n_i[c] + t_i[c]])
    return rng.permutation(train).astype(np.int64), rng.permutation(test).astype(np.int64)


def _shares(counts: np.ndarray, draws: int, rng: np.random.RandomState) -> np.ndarray:
    """Samples per class out of `draws`: floor of the proportional share, the rest by largest
    remainder (a random pick among equal remainders)."""
    exact = counts / counts.sum() * draws
    shares = np.floor(exact)
    missing = int(draws - shares.sum())
    if missing > 0:
        remainder = exact - shares
        for value in np.sort(np.unique(remainder))[::-1]:
            (tied,) = np.where(remainder == value)
            take = min(len(tied), missing)
            shares[rng.choice(tied, size=take, replace=False)] += 1
            missing -= take
            if missing == 0:
                break
    return shares.astype(int)
