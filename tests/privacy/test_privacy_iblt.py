from __future__ import annotations

import random
import unicodedata
from collections import Counter

import numpy as np
import pytest

from gptfl_ray.errors import ConfigError
from gptfl_ray.privacy import iblt


def _names(n: int, tag: str = "") -> list[str]:
    # Mixed scripts and lengths, up to the 64-byte key limit.
    base = ["airplane", "automobile", "bird", "chat noir", "Hund", "飛行機", "собака", "ü" * 32]
    return [f"{base[i % len(base)][:12]}{tag}{i}" for i in range(n)]


@pytest.mark.parametrize("capacity", [1, 10, 100])
@pytest.mark.parametrize("fill", [0.5, 1.0])
def test_round_trip_at_and_below_capacity(capacity: int, fill: float) -> None:
    params = iblt.IBLTParams(capacity=capacity, seed=7)
    names = _names(max(1, int(capacity * fill)))
    assert iblt.decode(iblt.encode(names, params), params) == dict.fromkeys(names, 1)


def test_longest_allowed_name_round_trips_and_longer_is_refused() -> None:
    params = iblt.IBLTParams(capacity=4, max_key_bytes=64)
    longest = "é" * 32  # 64 bytes in UTF-8
    assert iblt.decode(iblt.encode([longest, "x"], params), params) == {longest: 1, "x": 1}
    with pytest.raises(ConfigError, match="max_key_bytes=64"):
        iblt.encode([longest + "a"], params)


def test_sum_of_tables_decodes_to_union_with_client_counts() -> None:
    params = iblt.IBLTParams(capacity=60, seed=3)
    rng = random.Random(0)
    vocab = _names(60, "c")
    clients = [rng.sample(vocab, rng.randint(1, 15)) for _ in range(25)]
    total = np.zeros(params.size, dtype=np.int64)
    for names in clients:
        total = iblt.add(total, iblt.encode(names, params), params)
    expected = Counter(n for names in clients for n in names)
    assert iblt.decode(total, params, contributors=len(clients)) == dict(expected)
    assert max(expected.values()) > 1  # the counts, not just membership, are checked


def test_tables_add_commutatively_and_duplicates_count_once_per_client() -> None:
    params = iblt.IBLTParams(capacity=8)
    a = iblt.encode(["cat", "cat", "dog"], params)
    b = iblt.encode(["dog"], params)
    assert np.array_equal(iblt.add(a, b, params), iblt.add(b, a, params))
    assert iblt.decode(iblt.add(a, b, params), params) == {"cat": 1, "dog": 2}


def test_unicode_forms_are_one_name() -> None:
    params = iblt.IBLTParams(capacity=4)
    composed, decomposed = "café", unicodedata.normalize("NFD", "café")
    assert composed != decomposed
    total = iblt.add(iblt.encode([composed], params), iblt.encode([decomposed], params), params)
    assert iblt.decode(total, params) == {composed: 2}


def test_overfull_table_fails_clearly_and_the_suggestion_leads_to_a_decode() -> None:
    capacity = 10
    vocab = _names(200, "o")
    clients = [vocab[i : i + 10] for i in range(0, 200, 10)]  # 200 distinct names
    params = iblt.IBLTParams(capacity=capacity, seed=1)
    total = sum(iblt.encode(c, params) for c in clients) % params.prime
    with pytest.raises(iblt.IBLTOverflowError) as err:
        iblt.decode(total, params, contributors=len(clients))
    assert err.value.subject == "capacity"
    assert f"rerun with capacity >= {err.value.suggested_capacity}" in str(err.value)
    assert "\n" not in str(err.value)
    # Following the suggestions reaches a decodable table in a few steps.
    cap, steps = capacity, 0
    while True:
        params = iblt.IBLTParams(capacity=cap, seed=1)
        total = sum(iblt.encode(c, params) for c in clients) % params.prime
        try:
            assert iblt.decode(total, params, contributors=len(clients)) == dict.fromkeys(vocab, 1)
            break
        except iblt.IBLTOverflowError as e:
            assert e.suggested_capacity > cap
            cap, steps = e.suggested_capacity, steps + 1
    assert 1 <= steps <= 5  # doubling, capped by the upper bound: ceil(log2(200 / 10))


def test_client_with_more_names_than_capacity_is_refused() -> None:
    with pytest.raises(ConfigError, match="capacity=3"):
        iblt.encode(["a", "b", "c", "d"], iblt.IBLTParams(capacity=3))


@pytest.mark.parametrize(
    ("kwargs", "subject"),
    [
        ({"capacity": 0}, "capacity"),
        ({"capacity": 4, "hashes": 2}, "hashes"),
        ({"capacity": 4, "prime": 2**61}, "prime"),
        ({"capacity": 4, "max_key_bytes": 0}, "max_key_bytes"),
    ],
)
def test_bad_parameters_name_the_option(kwargs: dict, subject: str) -> None:
    with pytest.raises(ConfigError) as err:
        iblt.IBLTParams(**kwargs)
    assert err.value.subject == subject


def test_empty_name_and_wrong_table_length_are_refused() -> None:
    params = iblt.IBLTParams(capacity=4)
    with pytest.raises(ConfigError, match="non-empty"):
        iblt.encode([""], params)
    with pytest.raises(ConfigError, match="flat vector"):
        iblt.decode(np.zeros(params.size + 1, dtype=np.int64), params)
