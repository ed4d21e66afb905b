"""Shamir t-out-of-n secret sharing of 32-byte secrets, vectorised over parties and secrets.

Shamir, "How to share a secret", CACM 1979; used by Bonawitz et al. (CCS 2017) to let the server
recover a dropped client's mask key and a surviving client's self-mask seed from any t holders.

The field is GF(p) with p = 2^21 - 9. A 32-byte secret is cut into 13 chunks of 20 bits and each
chunk is shared with its own independent random polynomial of degree t-1, so any t-1 shares are
independent of the secret: the field only has to be larger than the number of parties. The small
prime is chosen for speed: products of two elements stay below 2^42, so a sum of up to 2^11 of
them is exact in float64 and dealing to a thousand parties is one BLAS matrix product per client
instead of a Python loop over big integers.

Party i (0-based position in the agreed roster) holds the polynomial's value at x = i + 1.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from gptfl_ray.privacy.prg import KeyStream

PRIME = 2_097_143  # 2^21 - 9, the largest prime below 2^21
CHUNK_BITS = 20
SECRET_BYTES = 32
CHUNKS = -(-SECRET_BYTES * 8 // CHUNK_BITS)  # 13
SHARE_BYTES = CHUNKS * 3  # each element < 2^21 fits 3 bytes
MAX_PARTIES = PRIME - 1
_EXACT_TERMS = 1 << 11  # float64 sums of this many products < p^2 stay exact


def secret_to_chunks(secret: bytes) -> np.ndarray:
    if len(secret) != SECRET_BYTES:
        raise ValueError(f"secrets have {SECRET_BYTES} bytes, got {len(secret)}")
    v = int.from_bytes(secret, "big")
    mask = (1 << CHUNK_BITS) - 1
    return np.array([(v >> (CHUNK_BITS * i)) & mask for i in range(CHUNKS)], dtype=np.int64)


def chunks_to_secret(chunks: np.ndarray) -> bytes | None:
    """The secret, or None when the chunks cannot come from a valid secret (a corrupted share)."""
    v = 0
    for i, c in enumerate(int(c) for c in chunks):
        if c >> CHUNK_BITS:
            return None
        v |= c << (CHUNK_BITS * i)
    if v >> (8 * SECRET_BYTES):
        return None
    return v.to_bytes(SECRET_BYTES, "big")


def share_to_bytes(share: np.ndarray) -> bytes:
    """Big-endian 3-byte elements, in the array's order (any shape)."""
    a = np.asarray(share, dtype=np.int64).reshape(-1)
    return np.stack([a >> 16, (a >> 8) & 0xFF, a & 0xFF], axis=1).astype(np.uint8).tobytes()


def share_from_bytes(raw: bytes, secrets: int = 1) -> np.ndarray:
    if len(raw) != secrets * SHARE_BYTES:
        raise ValueError(f"a share of {secrets} secret(s) has {secrets * SHARE_BYTES} bytes")
    a = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3).astype(np.int64)
    return ((a[:, 0] << 16) | (a[:, 1] << 8) | a[:, 2]).reshape(secrets, CHUNKS)


def matmul_mod(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(a @ b) mod p, exact, for int64 matrices with entries in [0, p)."""
    af, bf = a.astype(np.float64), b.astype(np.float64)
    out = np.zeros((a.shape[0], b.shape[1]), dtype=np.int64)
    for k in range(0, a.shape[1], _EXACT_TERMS):
        part = af[:, k : k + _EXACT_TERMS] @ bf[k : k + _EXACT_TERMS]
        # Exact integers below 2^53 convert losslessly; integer % is far faster than np.fmod.
        out = (out + part.astype(np.int64) % PRIME) % PRIME
    return out


@lru_cache(maxsize=16)
def _vandermonde(n: int, t: int) -> np.ndarray:
    """V[i, j] = (i + 1)^j mod p: evaluating degree t-1 polynomials at the n parties' points."""
    v = np.ones((n, t), dtype=np.int64)
    x = np.arange(1, n + 1, dtype=np.int64)
    for j in range(1, t):
        v[:, j] = v[:, j - 1] * x % PRIME
    v.setflags(write=False)
    return v


def uniform_field(stream: KeyStream, count: int) -> np.ndarray:
    """`count` uniform elements of GF(p) by rejection from 21-bit words of a keystream."""
    out = np.empty(count, dtype=np.int64)
    filled = 0
    while filled < count:
        w = stream.words(count - filled + 16, np.uint32) & np.uint32((1 << 21) - 1)
        w = w[w < PRIME][: count - filled].astype(np.int64)
        out[filled : filled + w.size] = w
        filled += w.size
    return out


def deal(secrets: list[bytes], n: int, t: int, stream: KeyStream) -> np.ndarray:
    """Shares of each secret for n parties with threshold t: array (n, len(secrets), CHUNKS).

    `stream` must be a secret CSPRNG: the polynomial coefficients are what hides the secrets.
    """
    if not 1 <= t <= n <= MAX_PARTIES:
        raise ValueError(f"need 1 <= t <= n <= {MAX_PARTIES}, got t={t}, n={n}")
    s = len(secrets)
    coeffs = np.empty((t, s * CHUNKS), dtype=np.int64)
    coeffs[0] = np.concatenate([secret_to_chunks(x) for x in secrets])
    coeffs[1:] = uniform_field(stream, (t - 1) * s * CHUNKS).reshape(t - 1, s * CHUNKS)
    return matmul_mod(_vandermonde(n, t), coeffs).reshape(n, s, CHUNKS)


def lagrange_at_zero(xs: np.ndarray) -> np.ndarray:
    """Weights w with f(0) = sum_i w_i f(x_i) for any polynomial of degree < len(xs)."""
    xs = np.asarray(xs, dtype=np.int64) % PRIME
    if len(set(xs.tolist())) != xs.size or np.any(xs == 0):
        raise ValueError("share points must be distinct and non-zero")
    num = np.ones(xs.size, dtype=np.int64)
    den = np.ones(xs.size, dtype=np.int64)
    for j, xj in enumerate(xs.tolist()):
        others = np.arange(xs.size) != j
        num[others] = num[others] * xj % PRIME
        den[others] = den[others] * ((xj - xs[others]) % PRIME) % PRIME
    inv = np.array([pow(int(d), PRIME - 2, PRIME) for d in den], dtype=np.int64)
    return num * inv % PRIME


def reconstruct(xs: np.ndarray, shares: np.ndarray) -> np.ndarray:
    """Secrets' chunks from t shares: `shares` is (t, ...) with party points `xs`; returns (...)."""
    w = lagrange_at_zero(xs)
    flat = shares.reshape(shares.shape[0], -1)
    return matmul_mod(w[None, :], flat).reshape(shares.shape[1:])
