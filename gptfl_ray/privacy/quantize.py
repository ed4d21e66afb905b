"""Fixed-point encoding of float updates for secure aggregation, and its error bound.

Secure aggregation (Bonawitz et al., CCS 2017) sums integers modulo R, so float model updates are
clipped and rounded to a fixed-point grid first.

Encoding with clip c > 0 and b bits: Q = 2^(b-1) - 1 levels per sign, step s = c / Q, and
q(x) = round(clip(x, -c, c) / s), an integer in [-Q, Q].

Modulus: a sum of n encodings lies in [-nQ, nQ], which has 2nQ + 1 values, so the modulus is
R = 2^k, the smallest power of two above 2nQ. Every possible sum then has a unique centred
residue in (-R/2, R/2] and the decoded sum never wraps around.

Error bound: rounding moves each value by at most s/2, so for n summands and every coordinate

    | sum_i clip(x_i, -c, c) - decode(sum_i q(x_i)) |  <=  n * c / (2Q)  =  n * c / (2^b - 2),

up to float64 rounding in the final multiply. Clipping itself is not bounded: values outside
[-c, c] are moved to the boundary, so choose c to cover the update's range.
"""

from __future__ import annotations

import numpy as np

from gptfl_ray.errors import ConfigError
from gptfl_ray.privacy.ring import MAX_MODULUS


def levels(bits: int) -> int:
    """Q: the largest encoded magnitude."""
    return (1 << (bits - 1)) - 1


def check(n: int, clip: float, bits: int) -> None:
    if not (isinstance(clip, (int, float)) and np.isfinite(clip) and clip > 0):
        raise ConfigError("clip", f"must be a positive finite number, got {clip!r}")
    if not isinstance(bits, int) or not 2 <= bits <= 32:
        raise ConfigError("bits", f"must be an integer in [2, 32], got {bits!r}")
    if n < 1:
        raise ConfigError("vectors", "secure aggregation needs at least one client")
    if 2 * n * levels(bits) >= MAX_MODULUS:
        raise ConfigError("bits", f"{bits} bits for {n} clients needs a modulus above 2^62")


def sum_modulus(n: int, bits: int) -> int:
    """R = 2^k, the smallest power of two greater than 2nQ: room for any sum of n encodings."""
    return 1 << (2 * n * levels(bits)).bit_length()


def quantization_error_bound(n: int, clip: float, bits: int) -> float:
    """Per-coordinate bound on |decoded sum - sum of clipped inputs| for n summands."""
    return n * clip / (2 * levels(bits))


def quantize(x: np.ndarray, clip: float, bits: int) -> np.ndarray:
    """Signed fixed-point integers in [-Q, Q] (int64)."""
    q = levels(bits)
    return np.rint(np.clip(np.asarray(x, dtype=np.float64), -clip, clip) * (q / clip)).astype(np.int64)


def dequantize(s: np.ndarray, clip: float, bits: int) -> np.ndarray:
    return np.asarray(s, dtype=np.float64) * (clip / levels(bits))
