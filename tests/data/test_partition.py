from __future__ import annotations

import numpy as np
import pytest

from gptfl_ray.data.partition import partition, partition_summary, partition_table
from gptfl_ray.errors import ConfigError


def _labels(n_per_class: int = 50, num_classes: int = 10) -> np.ndarray:
    return np.repeat(np.arange(num_classes), n_per_class)


def _check_cover(parts, n):
    assert all(p.dtype == np.int64 for p in parts)
    assert all(len(p) > 0 for p in parts)
    assert all(np.all(np.diff(p) > 0) for p in parts)  # sorted, no duplicates inside a client
    allidx = np.concatenate(parts)
    assert len(allidx) == n
    np.testing.assert_array_equal(np.sort(allidx), np.arange(n))


@pytest.mark.parametrize("method", ["iid", "dirichlet", "shards", "natural"])
def test_cover_disjoint_deterministic(method):
    labels = _labels()
    groups = np.arange(len(labels)) % 40
    kw = dict(groups=groups)
    a = partition(labels, 20, method, seed=3, **kw)
    b = partition(labels, 20, method, seed=3, **kw)
    c = partition(labels, 20, method, seed=4, **kw)
    assert len(a) == 20
    _check_cover(a, len(labels))
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))


def test_iid_sizes_hand_checked():
    parts = partition(np.zeros(10, np.int64), 3, "iid", seed=0)
    assert sorted(len(p) for p in parts) == [3, 3, 4]


def test_shards_two_labels_per_client():
    # 4 classes x 5 samples, 5 clients x 2 shards of 2 samples: each shard is label-pure, so
    # every client holds at most 2 labels.
    labels = np.repeat(np.arange(5), 4)
    parts = partition(labels, 5, "shards", seed=1, shards_per_client=2)
    _check_cover(parts, 20)
    assert all(len(p) == 4 for p in parts)
    assert all(len(np.unique(labels[p])) <= 2 for p in parts)


def test_natural_one_client_per_group_and_merge():
    labels = np.zeros(9, np.int64)
    groups = np.array(["a", "b", "c", "a", "b", "c", "a", "b", "d"])
    parts = partition(labels, 4, "natural", seed=0, groups=groups)
    got = sorted(tuple(groups[p].tolist()) for p in parts)
    assert got == [("a", "a", "a"), ("b", "b", "b"), ("c", "c"), ("d",)]
    merged = partition(labels, 2, "natural", seed=0, groups=groups)
    _check_cover(merged, 9)
    # whole groups only: no key appears on two clients
    keys = [set(groups[p]) for p in merged]
    assert not keys[0] & keys[1]


def test_dirichlet_skew_grows_as_alpha_shrinks():
    labels = _labels(100, 10)

    def mean_classes(alpha):
        parts = partition(labels, 20, "dirichlet", seed=0, alpha=alpha)
        return np.mean([r["classes_present"] for r in partition_summary(parts, labels, 10)])

    skewed, flat = mean_classes(0.1), mean_classes(100.0)
    assert flat > 9.5
    assert skewed < 5.0


def test_dirichlet_min_size_respected():
    labels = _labels(20, 10)
    parts = partition(labels, 10, "dirichlet", seed=0, alpha=0.1, min_client_size=10)
    _check_cover(parts, 200)
    assert min(len(p) for p in parts) >= 10


@pytest.mark.parametrize(
    "kwargs, subject, fragment",
    [
        (dict(num_clients=2000, method="iid"), "data.clients", "2000 clients but only 500 training samples"),
        (dict(num_clients=0, method="iid"), "data.clients", "at least 1"),
        (dict(num_clients=5, method="dirichlet", alpha=0.0), "data.alpha", "> 0"),
        (dict(num_clients=5, method="dirichlet", alpha=-1.0), "data.alpha", "> 0"),
        (dict(num_clients=5, method="lda"), "data.partition", "unknown method 'lda'"),
        (dict(num_clients=5, method="natural"), "data.partition", "groups"),
        (dict(num_clients=300, method="shards", shards_per_client=2), "data.shards_per_client", "600 shards"),
        (dict(num_clients=300, method="dirichlet", min_client_size=2), "data.clients", "only 500"),
    ],
)
def test_errors(kwargs, subject, fragment):
    with pytest.raises(ConfigError) as e:
        partition(_labels(), seed=0, **kwargs)
    assert e.value.subject == subject
    assert fragment in e.value.problem
    assert "\n" not in str(e.value)


def test_dirichlet_infeasible_fails_bounded():
    # 240 clients over 500 samples at alpha=0.01 and min size 2: essentially never satisfiable.
    with pytest.raises(ConfigError) as e:
        partition(_labels(), 240, "dirichlet", seed=0, alpha=0.01, min_client_size=2)
    assert e.value.subject == "data.clients" and "draws" in e.value.problem


def test_natural_too_many_clients():
    with pytest.raises(ConfigError, match="only 3 groups"):
        partition(np.zeros(6, np.int64), 4, "natural", seed=0, groups=np.array([1, 1, 2, 2, 3, 3]))


def test_summary_and_table():
    labels = np.array([0, 0, 1, 2, 2, 2])
    parts = [np.array([0, 2]), np.array([1, 3, 4, 5])]
    s = partition_summary(parts, labels, 3)
    assert s == [
        {"client": 0, "size": 2, "class_counts": [1, 1, 0], "classes_present": 2},
        {"client": 1, "size": 4, "class_counts": [1, 0, 3], "classes_present": 2},
    ]
    from rich.console import Console

    console = Console(record=True, width=120)
    console.print(partition_table(s, class_names=["cat", "dog", "eel"]))
    text = console.export_text()
    assert "eel" in text and "6 samples" in text
    many = partition_summary(parts, labels, 3)
    console.print(partition_table(many, class_names=["cat", "dog", "eel"], max_class_columns=2))
    assert "eel:3" in console.export_text()
