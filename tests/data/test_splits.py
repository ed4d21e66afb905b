"""Train / validation / test: disjoint, deterministic in the split seed, validation held out.

The loaders over fake files (torchvision layouts, Speech Commands, ESC-50) are checked beside
their fixtures in test_torchvision_sets.py and tests/audio/test_audio_data.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from gptfl_ray.data import load_dataset
from gptfl_ray.data.base import Dataset, carve_validation


def test_digits_splits_are_disjoint_deterministic_and_stratified(splits_check):
    from sklearn.datasets import load_digits

    bunch = load_digits()
    source = bunch.images.astype(np.uint8)[:, None]
    ds = splits_check(lambda: load_dataset("digits", seed=7), source, bunch.target)
    assert (len(ds.y_train), len(ds.y_val), len(ds.y_test)) == (1295, 142, 360)
    assert np.bincount(ds.y_val, minlength=10).min() >= 13  # every digit validated
    assert ds.extra["split_seed"] == 7
    other = load_dataset("digits", seed=8)
    assert not np.array_equal(other.y_val, ds.y_val) or not np.array_equal(other.x_val, ds.x_val)


def test_carve_validation_is_stratified_deterministic_and_seeded():
    y = np.repeat(np.arange(4), [50, 20, 2, 1])
    train, val = carve_validation(y, seed=0)
    assert np.array_equal(np.sort(np.concatenate([train, val])), np.arange(len(y)))
    assert np.intersect1d(train, val).size == 0
    # 10% per class, at least one where a class has two; a single-sample class stays in train
    assert np.bincount(y[val], minlength=4).tolist() == [5, 2, 1, 0]
    again = carve_validation(y, seed=0)
    assert all(np.array_equal(a, b) for a, b in zip((train, val), again))
    assert not np.array_equal(carve_validation(y, seed=1)[1], val)
    with pytest.raises(ValueError):
        carve_validation(y, seed=0, fraction=1.0)


def test_clients_only_ever_see_train():
    from gptfl_ray.config import federate_config
    from gptfl_ray.methods.task import load_task

    task = load_task(federate_config(overrides={"clients": 20, "seed": 3}))
    ds = task.dataset
    held = np.concatenate(task.parts)
    # the partition covers the training split exactly; validation and test are not indexable by it
    assert np.array_equal(np.sort(held), np.arange(len(ds.y_train)))
    assert len(ds.y_train) + len(ds.y_val) + len(ds.y_test) == 1797


def test_toy_datasets_get_an_empty_validation_split():
    x = np.zeros((4, 1, 2, 2), np.uint8)
    ds = Dataset("toy", "image", ("a", "b"), x, np.array([0, 1, 0, 1]), x[:2], np.array([0, 1]))
    assert ds.x_val.shape == (0, 1, 2, 2) and len(ds.y_val) == 0 and not ds.has_validation
    with pytest.raises(ValueError, match="x_val and y_val"):
        Dataset("toy", "image", ("a", "b"), x, np.array([0, 1, 0, 1]), x[:2], np.array([0, 1]), x_val=x[:1])
