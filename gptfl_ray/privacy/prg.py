"""Seed expansion and key derivation for secure aggregation.

Bonawitz et al., "Practical Secure Aggregation for Privacy-Preserving Machine Learning", CCS 2017,
expand short shared seeds into vector-length masks with a pseudorandom generator. Here that PRG is
AES-256 in counter mode (the keystream over an all-zero plaintext), taken from the `cryptography`
package so it runs on AES-NI at a few GB/s; numpy's PCG64 would be fast too but is predictable
from its output, which would let the server strip a mask it has seen part of. Every seed passes
through HKDF-SHA256 with a purpose label first, so one secret never keys two different uses.
"""

from __future__ import annotations

import hashlib
import hmac
import os

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

KEY_BYTES = 32
_ZERO_SALT = bytes(32)  # RFC 5869: no salt means HashLen zero bytes


def _encode_context(part: bytes | int | str) -> bytes:
    # Length-prefixed so that ("ab", "c") and ("a", "bc") derive different keys.
    if isinstance(part, int):
        raw = part.to_bytes(16, "big", signed=True)
    elif isinstance(part, str):
        raw = part.encode("utf-8")
    else:
        raw = bytes(part)
    return len(raw).to_bytes(4, "big") + raw


def derive_key(secret: bytes, purpose: str, *context: bytes | int | str) -> bytes:
    """A 32-byte key for one purpose, bound to its context (session, client ids).

    HKDF-SHA256 (RFC 5869) with an all-zero salt, written out with `hmac.digest`: one output
    block needs two HMACs, and building a `cryptography` HKDF object per call cost more than
    the hashing itself with a million pairwise keys per round.
    """
    info = b"gptfl-ray/" + purpose.encode("ascii") + b"".join(_encode_context(c) for c in context)
    prk = hmac.digest(_ZERO_SALT, secret, "sha256")
    return hmac.digest(prk, info + b"\x01", "sha256")


def commit(secret: bytes, purpose: str, *context: bytes | int | str) -> bytes:
    """A SHA-256 commitment; hiding because the committed secrets are 256-bit uniform seeds."""
    h = hashlib.sha256(b"gptfl-ray/commit/" + purpose.encode("ascii"))
    for c in context:
        h.update(_encode_context(c))
    h.update(secret)
    return h.digest()


def master_secret(rng_seed: int | None) -> bytes:
    """The root of a simulation's randomness: reproducible from a seed, or fresh OS entropy.

    A deployment must use `None` (each client then draws its own secrets from the OS); a seed
    exists so that simulations and tests replay exactly.
    """
    if rng_seed is None:
        return os.urandom(KEY_BYTES)
    return hashlib.sha256(b"gptfl-ray/rng-seed/" + str(int(rng_seed)).encode()).digest()


class KeyStream:
    """An AES-256-CTR keystream: a cryptographically secure generator seeded by a 32-byte key."""

    def __init__(self, key: bytes):
        if len(key) != KEY_BYTES:
            raise ValueError(f"a keystream key has {KEY_BYTES} bytes, got {len(key)}")
        # A fixed counter block is safe because every key here is derived for a single stream.
        self._encryptor = Cipher(algorithms.AES(key), modes.CTR(bytes(16))).encryptor()

    def read(self, n: int) -> bytes:
        return self._encryptor.update(bytes(n))

    def words(self, count: int, dtype: type[np.unsignedinteger]) -> np.ndarray:
        """`count` uniform words; read-only, since copying 80 KB per pairwise mask adds up."""
        itemsize = np.dtype(dtype).itemsize
        return np.frombuffer(self.read(count * itemsize), dtype=dtype)
