"""Loaders over tiny fake data written in torchvision's real on-disk layouts (no network)."""

from __future__ import annotations

import os
import pickle
import struct
import urllib.error

import numpy as np
import pytest

from gptfl_ray.data import load_dataset
from gptfl_ray.data.torchvision_sets import FLOWERS102_CLASS_NAMES
from gptfl_ray.errors import ConfigError


@pytest.fixture
def no_md5(monkeypatch):
    """Fake files cannot match torchvision's md5 sums; keep its existence checks only."""
    import torchvision.datasets.cifar as cifar
    import torchvision.datasets.flowers102 as flowers

    def exists(fpath, md5=None):
        return os.path.isfile(fpath)

    monkeypatch.setattr(cifar, "check_integrity", exists)
    monkeypatch.setattr(flowers, "check_integrity", exists)


def _idx(path, arr: np.ndarray):
    with open(path, "wb") as f:
        f.write(bytes([0, 0, 0x08, arr.ndim]))
        f.write(struct.pack(">" + "i" * arr.ndim, *arr.shape))
        f.write(arr.astype(np.uint8).tobytes())


def _mnist_files(tmp_path, xtr, ytr, xte, yte):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    _idx(raw / "train-images-idx3-ubyte", xtr)
    _idx(raw / "train-labels-idx1-ubyte", ytr)
    _idx(raw / "t10k-images-idx3-ubyte", xte)
    _idx(raw / "t10k-labels-idx1-ubyte", yte)


def test_mnist(tmp_path):
    rng = np.random.default_rng(0)
    xtr, ytr = rng.integers(0, 256, (5, 28, 28)), np.array([3, 1, 4, 1, 5])
    xte, yte = rng.integers(0, 256, (2, 28, 28)), np.array([9, 2])
    _mnist_files(tmp_path, xtr, ytr, xte, yte)
    ds = load_dataset("mnist", data_dir=str(tmp_path))
    # the one class with two training samples gives one to validation; the rest stay in train
    assert ds.x_train.shape == (4, 1, 28, 28) and ds.x_train.dtype == np.uint8
    assert ds.x_val.shape == (1, 1, 28, 28) and ds.y_val.tolist() == [1]
    assert ds.x_test.shape == (2, 1, 28, 28)
    kept = [i for i in range(5) if (xtr[i] != ds.x_val[0, 0]).any()]
    np.testing.assert_array_equal(ds.x_train[:, 0], xtr[kept])  # file order kept
    assert ds.y_train.dtype == np.int64 and ds.y_train.tolist() == ytr[kept].tolist()
    assert ds.y_test.tolist() == [9, 2]
    assert ds.class_names == tuple("0123456789")
    assert ds.input_shape == (1, 28, 28) and ds.mean == (0.1307,)


def _pickle(path, obj):
    with open(path, "wb") as f:
        pickle.dump(obj, f)


def _cifar_images(rng, n):
    return rng.integers(0, 256, (n, 3 * 32 * 32), dtype=np.uint8)


def test_cifar10(tmp_path, no_md5):
    d = tmp_path / "cifar-10-batches-py"
    d.mkdir()
    rng = np.random.default_rng(0)
    batches = []
    for i in range(1, 6):
        b = {"data": _cifar_images(rng, 2), "labels": [i, 9 - i]}
        batches.append(b)
        _pickle(d / f"data_batch_{i}", b)
    _pickle(d / "test_batch", {"data": _cifar_images(rng, 3), "labels": [0, 1, 2]})
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    _pickle(d / "batches.meta", {"label_names": names})
    ds = load_dataset("cifar10", data_dir=str(tmp_path))
    # classes 4 and 5 have two samples each: one of each goes to validation
    assert ds.x_train.shape == (8, 3, 32, 32) and ds.x_test.shape == (3, 3, 32, 32)
    assert sorted(ds.y_val.tolist()) == [4, 5]
    # torchvision's NHWC round trip must land back on the pickle's own CHW pixel order
    np.testing.assert_array_equal(ds.x_train[0].reshape(-1), batches[0]["data"][0])
    assert sorted(ds.y_train.tolist()) == [1, 2, 3, 4, 5, 6, 7, 8]
    assert ds.class_names == tuple(names) and ds.num_classes == 10
    assert len(ds.mean) == 3


def test_cifar100(tmp_path, no_md5):
    d = tmp_path / "cifar-100-python"
    d.mkdir()
    rng = np.random.default_rng(1)
    _pickle(d / "train", {"data": _cifar_images(rng, 4), "fine_labels": [0, 99, 5, 5], "coarse_labels": [0] * 4})
    _pickle(d / "test", {"data": _cifar_images(rng, 2), "fine_labels": [7, 8], "coarse_labels": [0] * 2})
    names = [f"class{i}" for i in range(100)]
    _pickle(d / "meta", {"fine_label_names": names, "coarse_label_names": ["x"] * 20})
    ds = load_dataset("cifar100", data_dir=str(tmp_path))
    assert ds.num_classes == 100 and ds.y_train.tolist() == [0, 99, 5] and ds.y_val.tolist() == [5]
    assert ds.x_test.shape == (2, 3, 32, 32)


def test_flowers102(tmp_path, no_md5):
    from PIL import Image
    from scipy.io import savemat

    base = tmp_path / "flowers-102"
    (base / "jpg").mkdir(parents=True)
    sizes = [(80, 60), (50, 90), (64, 64), (100, 70), (70, 100), (66, 66)]
    for i, (w, h) in enumerate(sizes, 1):
        Image.new("RGB", (w, h), (40 * i, 10, 200)).save(base / "jpg" / f"image_{i:05d}.jpg")
    savemat(base / "imagelabels.mat", {"labels": np.array([[1, 102, 3, 4, 5, 6]])})
    # (scipy squeezes a one-element split to a scalar, which torchvision cannot read: use two)
    savemat(base / "setid.mat", {"trnid": np.array([[1, 2]]), "valid": np.array([[3, 6]]), "tstid": np.array([[4, 5]])})
    ds = load_dataset("flowers102", data_dir=str(tmp_path))
    # every class here has one sample, so the carve leaves validation empty on this toy tree
    assert ds.x_train.shape == (4, 3, 64, 64) and ds.x_test.shape == (2, 3, 64, 64)
    assert ds.y_train.tolist() == [0, 101, 2, 5] and ds.y_test.tolist() == [3, 4] and len(ds.y_val) == 0
    assert ds.num_classes == 102 and ds.class_names[0] == "pink primrose"
    assert abs(int(ds.x_train[0, 0, 32, 32]) - 40) <= 3  # colour survives resize + JPEG
    assert (base / "gptfl_64px.npz").is_file()
    again = load_dataset("flowers102", data_dir=str(tmp_path))  # served from the cache
    np.testing.assert_array_equal(again.x_train, ds.x_train)


def _cifar10_tree(tmp_path, rng, per_batch=20):
    d = tmp_path / "cifar-10-batches-py"
    d.mkdir()
    xs, ys = [], []
    for i in range(1, 6):
        b = {"data": _cifar_images(rng, per_batch), "labels": (np.arange(per_batch) % 10).tolist()}
        xs.append(b["data"])
        ys += b["labels"]
        _pickle(d / f"data_batch_{i}", b)
    test = {"data": _cifar_images(rng, 10), "labels": list(range(10))}
    _pickle(d / "test_batch", test)
    _pickle(d / "batches.meta", {"label_names": [f"c{i}" for i in range(10)]})
    nchw = lambda flat: flat.reshape(-1, 3, 32, 32)  # noqa: E731
    return nchw(np.concatenate(xs + [test["data"]])), np.array(ys + test["labels"])


def test_torchvision_splits_are_disjoint_deterministic_and_stratified(tmp_path, no_md5, splits_check):
    from gptfl_ray.data.torchvision_sets import load_cifar10, load_mnist

    rng = np.random.default_rng(5)
    x_all, y_all = _cifar10_tree(tmp_path, rng)
    ds = splits_check(lambda: load_cifar10(data_dir=str(tmp_path), seed=3), x_all, y_all)
    # 10 training samples per class: exactly one of each to validation; the official test stays test
    assert sorted(ds.y_val.tolist()) == list(range(10)) and len(ds.y_train) == 90
    assert ds.y_test.tolist() == list(range(10)) and ds.extra["split_seed"] == 3
    other = load_cifar10(data_dir=str(tmp_path), seed=4)
    assert not np.array_equal(other.x_val, ds.x_val)  # the split seed picks the validation draw
    np.testing.assert_array_equal(other.x_test, ds.x_test)

    xtr, ytr = rng.integers(0, 256, (60, 28, 28)), np.arange(60) % 3
    xte, yte = rng.integers(0, 256, (6, 28, 28)), np.arange(6) % 3
    _mnist_files(tmp_path, xtr, ytr, xte, yte)
    m = splits_check(
        lambda: load_mnist(data_dir=str(tmp_path), seed=0),
        np.concatenate([xtr, xte])[:, None].astype(np.uint8),
        np.concatenate([ytr, yte]),
    )
    assert np.bincount(m.y_val).tolist() == [2, 2, 2]  # 10% of 20 per class


def test_flowers_split_carves_validation_from_the_pooled_train_and_val(tmp_path, no_md5, splits_check):
    from PIL import Image
    from scipy.io import savemat

    base = tmp_path / "flowers-102"
    (base / "jpg").mkdir(parents=True)
    labels = [1 + i % 3 for i in range(30)]  # three classes, ten images each
    for i in range(30):
        Image.new("RGB", (64, 64), (8 * i, 10 * (i % 3), 200)).save(base / "jpg" / f"image_{i + 1:05d}.jpg")
    savemat(base / "imagelabels.mat", {"labels": np.array([labels])})
    savemat(
        base / "setid.mat",
        {
            "trnid": np.array([list(range(1, 13))]),
            "valid": np.array([list(range(13, 25))]),
            "tstid": np.array([list(range(25, 31))]),
        },
    )
    from gptfl_ray.data.torchvision_sets import load_flowers102

    ds = load_flowers102(data_dir=str(tmp_path))
    pooled_x = np.concatenate([ds.x_train, ds.x_val, ds.x_test])
    pooled_y = np.concatenate([ds.y_train, ds.y_val, ds.y_test])
    assert len(pooled_y) == 30 and sorted(ds.y_val.tolist()) == [0, 1, 2] and len(ds.y_test) == 6
    splits_check(lambda: load_flowers102(data_dir=str(tmp_path)), pooled_x, pooled_y)


def test_flower_names_match_torchvision():
    from torchvision.datasets import Flowers102

    tv = getattr(Flowers102, "classes", None)
    if tv is None:
        pytest.skip("this torchvision has no Flowers102.classes")
    assert FLOWERS102_CLASS_NAMES == tuple(c.rstrip("?") for c in tv)
    assert len(set(FLOWERS102_CLASS_NAMES)) == 102


@pytest.mark.parametrize("name", ["mnist", "cifar10", "cifar100", "flowers102"])
def test_missing_data_is_one_line(tmp_path, name):
    with pytest.raises(ConfigError) as e:
        load_dataset(name, data_dir=str(tmp_path))
    assert e.value.subject == "data.data_dir"
    assert str(e.value) == (
        f"data.data_dir: {name} not found under {tmp_path} (pass `data.download` to fetch it, needs network)"
    )


@pytest.mark.parametrize("name, cls", [("mnist", "MNIST"), ("cifar10", "CIFAR10"), ("flowers102", "Flowers102")])
def test_download_failure_is_one_line(tmp_path, monkeypatch, name, cls):
    import torchvision.datasets as tvd

    def offline(self):
        if cls == "MNIST":  # torchvision's MNIST error: a header line, then one line per mirror
            raise RuntimeError(
                "Error downloading train-images-idx3-ubyte.gz:\nTried https://a/, got:\n"
                "<urlopen error [Errno -3] Temporary failure in name resolution>\n"
            )
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(getattr(tvd, cls), "download", offline)
    with pytest.raises(ConfigError) as e:
        load_dataset(name, data_dir=str(tmp_path), download=True)
    assert e.value.subject == "data.download"
    assert f"could not fetch {name} into {tmp_path}" in e.value.problem
    assert "name resolution" in e.value.problem and "\n" not in str(e.value)


def test_default_data_dir(monkeypatch, tmp_path):
    from gptfl_ray.data.torchvision_sets import data_root

    monkeypatch.setenv("HOME", str(tmp_path))
    assert data_root(None) == tmp_path / ".cache" / "gptfl-ray" / "data"
    assert data_root("~/x") == tmp_path / "x"
