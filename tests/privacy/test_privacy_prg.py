from __future__ import annotations

import numpy as np
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from gptfl_ray.errors import ConfigError
from gptfl_ray.privacy.prg import KeyStream, derive_key
from gptfl_ray.privacy.ring import Ring


def test_derive_key_is_rfc5869_hkdf_sha256() -> None:
    secret = bytes(range(32))
    info = b"gptfl-ray/mask" + (3).to_bytes(4, "big") + b"abc"
    reference = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(secret)
    assert derive_key(secret, "mask", "abc") == reference
    # Context is length-prefixed, so shifting a boundary changes the key.
    assert derive_key(secret, "m", "ab", "c") != derive_key(secret, "m", "a", "bc")


def test_keystream_is_deterministic_per_key() -> None:
    a, b, c = KeyStream(bytes(32)), KeyStream(bytes(32)), KeyStream(b"\x01" * 32)
    assert a.read(64) == b.read(64) != c.read(64)


@pytest.mark.parametrize("modulus", [2, 1 << 20, 1 << 32, 1 << 40, 1_000_003, (1 << 61) - 1])
def test_ring_arithmetic_matches_python_integers(modulus: int) -> None:
    ring = Ring(modulus)
    a = ring.uniform(KeyStream(bytes(32)), 500)
    b = ring.uniform(KeyStream(b"\x02" * 32), 500)
    assert int(a.max()) < modulus and int(b.max()) < modulus
    s, d = a.copy(), a.copy()
    ring.add_(s, b)
    ring.sub_(d, b)
    assert s.tolist() == [(int(x) + int(y)) % modulus for x, y in zip(a, b)]
    assert d.tolist() == [(int(x) - int(y)) % modulus for x, y in zip(a, b)]
    assert ring.element(np.array([-1, modulus + 2])).tolist() == [modulus - 1, 2 % modulus]


def test_ring_refuses_moduli_that_could_overflow() -> None:
    with pytest.raises(ConfigError, match="modulus"):
        Ring((1 << 62) + 1)
