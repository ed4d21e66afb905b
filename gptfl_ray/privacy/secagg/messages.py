"""What travels in a secure-aggregation round: the public round parameters and one small frozen
dataclass per message, each with its wire size in bytes (`nbytes`).

Every message has a `sender` and a `recipient`, a client id or None for the server, and a
`payload`, the part a relaying server holds in its hands (bytes, or the masked vector). Sizes
count what the protocol would put on the wire: 4-byte client ids, ciphertexts with their 16-byte
GCM tag and no nonce (it is implied by the sender's roster position), vector elements bit-packed
to ceil(log2 R) bits (the simulation passes unpacked arrays).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from gptfl_ray.privacy import shamir
from gptfl_ray.privacy.ring import Ring

ID_BYTES = 4
MAX_CLIENT_ID = (1 << 32) - 1
PK_BYTES = 32
TAG_BYTES = 16
ADVERT_BYTES = ID_BYTES + 2 * PK_BYTES + 32  # id, c_pk, s_pk, SHA-256 commitment to b
SHARE_PLAINTEXT = 2 * ID_BYTES + 2 * shamir.SHARE_BYTES
SHARE_CIPHERTEXT = SHARE_PLAINTEXT + TAG_BYTES


class SecAggAbort(RuntimeError):
    """The protocol cannot finish safely: too few clients left, or a share failed a check."""


@dataclass(frozen=True)
class RoundSpec:
    """The public parameters of one aggregation round."""

    session: bytes
    threshold: int
    modulus: int
    length: int

    @property
    def ring(self) -> Ring:
        return Ring(self.modulus)


@dataclass(frozen=True)
class Advertisement:
    """A client's public keys and its commitment to the self-mask seed, as the server parses them."""

    client: int
    c_pk: bytes
    s_pk: bytes
    b_commit: bytes

    def to_bytes(self) -> bytes:
        return self.client.to_bytes(ID_BYTES, "big") + self.c_pk + self.s_pk + self.b_commit

    @classmethod
    def from_bytes(cls, raw: bytes) -> Advertisement:
        if len(raw) != ADVERT_BYTES:
            raise SecAggAbort(f"a key advertisement has {len(raw)} bytes, expected {ADVERT_BYTES}")
        i = ID_BYTES
        return cls(int.from_bytes(raw[:i], "big"), raw[i : i + 32], raw[i + 32 : i + 64], raw[i + 64 :])


@dataclass(frozen=True)
class AdvertiseKeys:
    """Round 0, client -> server: the client's serialised Advertisement."""

    stage: ClassVar[str] = "advertise"
    recipient: ClassVar[None] = None
    sender: int
    payload: bytes

    @property
    def nbytes(self) -> int:
        return len(self.payload)


@dataclass(frozen=True)
class Roster:
    """Round 0, server -> each client: every advertisement the server accepted."""

    stage: ClassVar[str] = "roster"
    sender: ClassVar[None] = None
    recipient: int
    payload: Mapping[int, Advertisement]

    @property
    def nbytes(self) -> int:
        return len(self.payload) * ADVERT_BYTES


@dataclass(frozen=True)
class EncryptedShare:
    """Round 1, client -> client through the server: the sender's shares for the recipient, encrypted."""

    stage: ClassVar[str] = "share"
    sender: int
    recipient: int
    payload: bytes  # AES-256-GCM ciphertext with its tag

    @property
    def nbytes(self) -> int:
        return 2 * ID_BYTES + len(self.payload)


@dataclass(frozen=True)
class MaskedInput:
    """Round 2, client -> server: the masked vector, residues mod `modulus`."""

    stage: ClassVar[str] = "masked"
    recipient: ClassVar[None] = None
    sender: int
    payload: np.ndarray
    modulus: int

    @property
    def nbytes(self) -> int:
        return ID_BYTES + Ring(self.modulus).wire_bytes(int(np.size(self.payload)))


@dataclass(frozen=True)
class Survivors:
    """Round 3, server -> each client that sent a masked input: who did."""

    stage: ClassVar[str] = "survivors"
    sender: ClassVar[None] = None
    recipient: int
    payload: tuple[int, ...]

    @property
    def nbytes(self) -> int:
        return len(self.payload) * ID_BYTES


@dataclass(frozen=True)
class RevealedShares:
    """Round 3, client -> server: shares of b for survivors, then of s_sk for dropped clients, in the clear."""

    stage: ClassVar[str] = "unmask"
    recipient: ClassVar[None] = None
    sender: int
    payload: bytes

    @property
    def nbytes(self) -> int:
        return ID_BYTES + len(self.payload)


Message = AdvertiseKeys | Roster | EncryptedShare | MaskedInput | Survivors | RevealedShares
