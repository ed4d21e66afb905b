"""Vectors over the integers modulo m, the space secure aggregation masks live in.

Bonawitz et al. (CCS 2017) sum inputs in Z_R: a uniform mask makes any single input uniform there.
Two kinds of modulus occur: a power of two (the fixed-point float path, where unsigned machine
arithmetic wraps for free) and a prime (the IBLT's field, Goodrich and Mitzenmacher 2011), where
every addition reduces explicitly. Moduli are capped at 2^62 so that the sum of two residues never
overflows an unsigned 64-bit word.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from gptfl_ray.errors import ConfigError
from gptfl_ray.privacy.prg import KeyStream

MAX_MODULUS = 1 << 62


@dataclass(frozen=True)
class Ring:
    """Z_m with vectorised add, subtract and uniform sampling."""

    modulus: int

    def __post_init__(self) -> None:
        if not isinstance(self.modulus, int) or not 2 <= self.modulus <= MAX_MODULUS:
            raise ConfigError("modulus", f"must be an integer in [2, 2^62], got {self.modulus!r}")

    @property
    def is_pow2(self) -> bool:
        return self.modulus & (self.modulus - 1) == 0

    @property
    def dtype(self) -> type[np.unsignedinteger]:
        # 32-bit words halve the keystream and memory traffic whenever the modulus allows.
        return np.uint32 if self.is_pow2 and self.modulus <= 1 << 32 else np.uint64

    @property
    def bits(self) -> int:
        """Bits per element on the wire (elements are bit-packed)."""
        return (self.modulus - 1).bit_length()

    def wire_bytes(self, length: int) -> int:
        return math.ceil(length * self.bits / 8)

    def _reduce_pow2(self, a: np.ndarray) -> np.ndarray:
        if self.modulus != 1 << (8 * np.dtype(self.dtype).itemsize):
            np.bitwise_and(a, self.dtype(self.modulus - 1), out=a)
        return a

    def element(self, x: np.ndarray) -> np.ndarray:
        """Map an integer array into canonical residues [0, m) of this ring's dtype (a copy)."""
        x = np.asarray(x)
        if not np.issubdtype(x.dtype, np.integer):
            raise ConfigError("vectors", f"integer secure sum needs integer arrays, got {x.dtype}")
        if np.issubdtype(x.dtype, np.signedinteger):
            x = np.mod(x.astype(np.int64), np.int64(self.modulus))
        else:
            x = np.mod(x.astype(np.uint64), np.uint64(self.modulus))
        return x.astype(self.dtype)

    def zeros(self, length: int) -> np.ndarray:
        return np.zeros(length, dtype=self.dtype)

    def add_(self, acc: np.ndarray, b: np.ndarray) -> None:
        """acc += b (mod m), in place."""
        np.add(acc, b, out=acc)
        if self.is_pow2:
            self._reduce_pow2(acc)
        else:
            np.subtract(acc, self.dtype(self.modulus), out=acc, where=acc >= self.modulus)

    def sub_(self, acc: np.ndarray, b: np.ndarray) -> None:
        """acc -= b (mod m), in place."""
        if self.is_pow2:
            np.subtract(acc, b, out=acc)
            self._reduce_pow2(acc)
        else:
            np.add(acc, self.dtype(self.modulus) - b, out=acc)
            np.subtract(acc, self.dtype(self.modulus), out=acc, where=acc >= self.modulus)

    def uniform(self, stream: KeyStream, length: int) -> np.ndarray:
        """`length` independent uniform residues drawn from a keystream.

        A power of two takes the low bits of each word. Any other modulus uses rejection
        sampling (words at or above the largest multiple of m below 2^64 are discarded), so the
        residues are exactly uniform rather than carrying the bias of a plain `% m`.
        """
        if self.is_pow2:
            w = stream.words(length, self.dtype)
            if self.modulus == 1 << (8 * np.dtype(self.dtype).itemsize):
                return w
            return np.bitwise_and(w, self.dtype(self.modulus - 1))
        limit = np.uint64(((1 << 64) // self.modulus) * self.modulus)
        out = np.empty(length, dtype=np.uint64)
        filled = 0
        while filled < length:
            need = length - filled
            w = stream.words(need + need // 64 + 8, np.uint64)
            w = w[w < limit][:need]
            out[filled : filled + w.size] = w % np.uint64(self.modulus)
            filled += w.size
        return out

    def centered(self, x: np.ndarray) -> np.ndarray:
        """Residues as signed integers in (-m/2, m/2]: how a sum of signed inputs is read back."""
        x = x.astype(np.int64)
        return np.where(x > self.modulus // 2, x - self.modulus, x)
