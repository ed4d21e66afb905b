"""The input plots: sample grid (images and spectrograms), partition, pre-training curve."""

import numpy as np
import pytest
from matplotlib.image import imread

from gptfl_ray.data import load_dataset
from gptfl_ray.data.base import Dataset
from gptfl_ray.data.partition import partition
from gptfl_ray.plots import partition_counts, partition_plot, pretrain_curve, render_partition_plot, sample_grid


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def _png(path):
    img = imread(str(path))
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100
    return img


def test_sample_grid_images_and_spectrograms(digits, tmp_path):
    img = _png(sample_grid(digits, digits.x_train, digits.y_train, tmp_path / "grid.png", per_class=4))
    assert img.std() > 0.05  # samples drawn, not a blank figure
    rng = np.random.default_rng(0)
    waves = rng.normal(0, 0.1, (4, 4000)).astype(np.float32)
    audio = Dataset(
        "toy-audio",
        "audio",
        ("yes", "no"),
        waves,
        np.array([0, 1, 0, 1]),
        waves[:2],
        np.array([0, 1]),
        max_value=1.0,
        extra={"sample_rate": 16_000},
    )
    _png(sample_grid(audio, waves, audio.y_train, tmp_path / "spec.png"))


def test_partition_counts_and_plot(digits, tmp_path):
    parts = partition(digits.y_train, 20, "dirichlet", seed=0, alpha=0.1)
    counts = partition_counts(parts, digits.y_train, digits.num_classes)
    assert counts.shape == (20, 10)
    assert counts.sum(1).tolist() == [len(p) for p in parts]
    assert counts.sum(0).tolist() == np.bincount(digits.y_train, minlength=10).tolist()
    _png(partition_plot(parts, digits.y_train, digits.class_names, tmp_path / "partition.png"))


def test_partition_plot_drawn_on_a_thread_is_the_same_png(digits, tmp_path):
    """federate draws partition.png on a thread while Ray starts: the same bytes as on the main thread,
    and no temporary file left beside the written one."""
    from concurrent.futures import ThreadPoolExecutor

    parts = partition(digits.y_train, 20, "dirichlet", seed=0, alpha=0.1)
    path = partition_plot(parts, digits.y_train, digits.class_names, tmp_path / "partition.png", title="t")
    with ThreadPoolExecutor(2) as pool:
        drawn = list(
            pool.map(lambda _: render_partition_plot(parts, digits.y_train, digits.class_names, "t"), range(2))
        )
    assert drawn[0] == drawn[1] == path.read_bytes()
    assert [p.name for p in tmp_path.iterdir()] == ["partition.png"]
    other = render_partition_plot(parts[::-1], digits.y_train, digits.class_names, "t")
    assert other != drawn[0]  # the bytes depend on the partition drawn


def test_pretrain_curve(tmp_path):
    hist = [
        {"epoch": e, "train_loss": 2.0 / e, "accuracy": 0.1 * e, "val_accuracy": 0.1 * e + 0.02} for e in range(1, 6)
    ]
    _png(pretrain_curve(hist, tmp_path / "curve.png"))
