from __future__ import annotations

import random
from collections import Counter

import pytest

from gptfl_ray.errors import ConfigError
from gptfl_ray.privacy import iblt
from gptfl_ray.privacy.labels import INITIAL_CAPACITY, private_label_union
from gptfl_ray.privacy.secagg import SecAggAbort

CIFAR10 = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def _clients(vocab: list[str], n: int, seed: int) -> list[set[str]]:
    rng = random.Random(seed)
    return [set(rng.sample(vocab, rng.randint(1, min(6, len(vocab))))) for _ in range(n)]


def test_union_with_counts_matches_the_plain_union_under_dropout() -> None:
    clients = _clients(CIFAR10, 12, seed=0)
    names, stats = private_label_union(clients, 16, seed=1, dropout={2, 7}, rng_seed=3)
    expected = Counter(n for i, s in enumerate(clients) if i not in {2, 7} for n in s)
    assert names == dict(expected)
    assert list(names.values()) == sorted(names.values(), reverse=True)
    assert stats.survivors == 10 and stats.attempts == 1 and stats.capacity == 16
    assert stats.bytes_up > stats.plain_bytes_up > 0


def test_automatic_capacity_grows_until_the_union_decodes() -> None:
    vocab = [f"species {i}" for i in range(400)]
    clients = [set(vocab[i : i + 20]) for i in range(0, 400, 20)]  # 400 distinct names
    names, stats = private_label_union(clients, None, seed=2, rng_seed=4)
    assert names == dict.fromkeys(vocab, 1)
    assert stats.attempts > 1 and stats.capacity > INITIAL_CAPACITY


def test_given_capacity_too_small_names_a_capacity() -> None:
    vocab = [f"w{i}" for i in range(300)]
    clients = [set(vocab[i : i + 30]) for i in range(0, 300, 30)]
    with pytest.raises(iblt.IBLTOverflowError, match=r"rerun with capacity >= \d+"):
        private_label_union(clients, 30, seed=0, rng_seed=1)


def test_too_many_dropouts_abort() -> None:
    with pytest.raises(SecAggAbort, match="fewer than the threshold"):
        private_label_union(_clients(CIFAR10, 6, seed=1), 10, dropout={0, 1, 2}, rng_seed=0)


def test_bad_capacity_and_no_clients_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="capacity"):
        private_label_union([{"a"}], 0)
    with pytest.raises(ConfigError, match="at least one client"):
        private_label_union([], 4)
