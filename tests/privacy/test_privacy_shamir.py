from __future__ import annotations

import os

import numpy as np
import pytest

from gptfl_ray.privacy import shamir
from gptfl_ray.privacy.prg import KeyStream


def _deal(n: int, t: int, secrets: list[bytes]) -> np.ndarray:
    return shamir.deal(secrets, n, t, KeyStream(bytes(range(32))))


@pytest.mark.parametrize(("n", "t"), [(1, 1), (5, 3), (20, 14)])
def test_any_t_shares_rebuild_the_secrets(n: int, t: int) -> None:
    secrets = [bytes([i]) * 32 for i in (1, 255)] + [b"\xff" * 32]
    shares = _deal(n, t, secrets)
    rng = np.random.default_rng(n)
    for _ in range(5):
        rows = np.sort(rng.choice(n, size=t, replace=False))
        got = shamir.reconstruct(rows + 1, shares[rows])
        assert [shamir.chunks_to_secret(c) for c in got] == secrets


def test_fewer_than_t_shares_give_a_different_value() -> None:
    secret = os.urandom(32)
    shares = _deal(10, 6, [secret])
    got = shamir.reconstruct(np.arange(1, 6), shares[:5])
    assert shamir.chunks_to_secret(got[0]) != secret


def test_share_bytes_round_trip() -> None:
    shares = _deal(4, 2, [os.urandom(32), os.urandom(32)])
    raw = shamir.share_to_bytes(shares[1])
    assert len(raw) == 2 * shamir.SHARE_BYTES
    assert np.array_equal(shamir.share_from_bytes(raw, 2), shares[1])


def test_float_matmul_mod_is_exact_beyond_one_block() -> None:
    rng = np.random.default_rng(0)
    k = 2 * 2048 + 5  # three blocks of the exact float64 accumulation
    a = rng.integers(shamir.PRIME - 1000, shamir.PRIME, (3, k))  # large entries: worst case
    b = rng.integers(shamir.PRIME - 1000, shamir.PRIME, (k, 2))
    expected = [
        [sum(int(x) * int(y) for x, y in zip(a[i], b[:, j])) % shamir.PRIME for j in range(2)] for i in range(3)
    ]
    assert shamir.matmul_mod(a, b).tolist() == expected
