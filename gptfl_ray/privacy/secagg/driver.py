"""One simulated round of secure aggregation: every client and the server in one process.

The driver builds the roles, moves each message between them through one `Relay`, which counts
every byte once (per client, up and down) and lets a test play a tampering server, and turns the
unmasked sum into the round's `SecAggResult`, built here and nowhere else. `secure_sum_int` sums
integer vectors mod m, `secure_sum` the fixed-point encoding of float vectors (`quantize.py`).
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import numpy as np

from gptfl_ray.errors import ConfigError
from gptfl_ray.privacy import quantize
from gptfl_ray.privacy.prg import derive_key, master_secret
from gptfl_ray.privacy.ring import Ring
from gptfl_ray.privacy.secagg.client import Client
from gptfl_ray.privacy.secagg.messages import MAX_CLIENT_ID, Message, RoundSpec, SecAggAbort
from gptfl_ray.privacy.secagg.server import Server

__all__ = ["Relay", "RelayHook", "SecAggAbort", "SecAggResult", "secure_sum", "secure_sum_int"]

# A relay hook sees every message the server receives or forwards, once, and returns what is
# delivered: hook(stage, sender, recipient, payload). Stages: "advertise", "share" (ciphertexts,
# as forwarded to their recipient), "masked" (the masked vector, an array), "unmask" (one
# survivor's revealed shares, bytes). The server's own broadcasts (roster, survivors) are not
# offered. The default delivers everything unchanged; tests use it to play a tampering server.
RelayHook = Callable[[str, int, int | None, Any], Any]

M = TypeVar("M", bound=Message)


def _deliver(stage: str, sender: int, recipient: int | None, payload: Any) -> Any:
    return payload


class Relay:
    """The server's switchboard: every message of a round passes here and is counted once.

    `up[c]` is what client c sent, counted as sent; `down[c]` what was delivered to it. A message
    for the server is offered to the hook on arrival, one the server forwards between clients as
    it leaves.
    """

    def __init__(self, hook: RelayHook | None = None):
        self._hook = hook or _deliver
        self.up: Counter[int] = Counter()
        self.down: Counter[int] = Counter()

    def upload(self, msg: M) -> M:
        self.up[msg.sender] += msg.nbytes
        return self._offer(msg) if msg.recipient is None else msg

    def download(self, msg: M) -> M:
        if msg.sender is not None:
            msg = self._offer(msg)
        self.down[msg.recipient] += msg.nbytes
        return msg

    def _offer(self, msg: M) -> M:
        return replace(msg, payload=self._hook(msg.stage, msg.sender, msg.recipient, msg.payload))

    @property
    def bytes_up(self) -> int:
        return sum(self.up.values())

    @property
    def bytes_down(self) -> int:
        return sum(self.down.values())


def default_threshold(n: int) -> int:
    """floor(2n/3) + 1: Bonawitz et al.'s choice, tolerating just under a third dropping out."""
    return min(n, 2 * n // 3 + 1)


def check_threshold(n: int, threshold: int) -> None:
    lo = n // 2 + 1
    if not isinstance(threshold, int) or not lo <= threshold <= n:
        raise ConfigError(
            "threshold",
            f"must be an integer in [{lo}, {n}] for {n} clients (a strict majority, so two "
            f"disjoint groups cannot both reach it), got {threshold!r}",
        )


@dataclass(frozen=True)
class SecAggResult:
    """A secure sum and what it cost.

    Byte counts are what the protocol puts on the wire (`messages.py`: vector elements bit-packed
    to ceil(log2 R) bits, 4-byte client ids, ciphertexts with a 16-byte GCM tag and no nonce).
    `plain_bytes_up` is what the same surviving clients would upload without secure
    aggregation: 4 bytes per float32 coordinate for `secure_sum`, the bit-packed residues for
    `secure_sum_int`. Seconds are CPU seconds of this process (so machines shared with other work
    do not inflate them), summed over all simulated clients, who in a deployment run in parallel;
    `server_seconds` is the aggregator's own work.
    """

    total: np.ndarray
    survivors: list[int]
    dropped: list[int]
    threshold: int
    modulus: int
    bytes_up: int
    bytes_down: int
    plain_bytes_up: int
    client_seconds: float
    server_seconds: float
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def upload_overhead(self) -> float:
        """Secure-aggregation upload bytes per plain upload byte."""
        return self.bytes_up / self.plain_bytes_up if self.plain_bytes_up else float("inf")


@dataclass(frozen=True)
class _Integers:
    """Inputs are residues already: summed as they are."""

    ring: Ring

    def encode(self, cid: int, v: np.ndarray) -> np.ndarray:
        return v

    def decode(self, total: np.ndarray) -> np.ndarray:
        return total.astype(np.int64)

    def plain_bytes(self, length: int) -> int:
        return self.ring.wire_bytes(length)

    def extra(self, survivors: int) -> dict[str, Any]:
        return {}


@dataclass(frozen=True)
class _FixedPoint:
    """Float inputs clipped to [-clip, clip] on a `bits`-bit grid (`quantize.py`)."""

    ring: Ring
    clip: float
    bits: int

    def encode(self, cid: int, v: np.ndarray) -> np.ndarray:
        v = np.asarray(v, dtype=np.float64)
        if not np.all(np.isfinite(v)):
            raise ConfigError("vectors", f"client {cid}'s vector has NaN or infinite values")
        return quantize.quantize(v, self.clip, self.bits)

    def decode(self, total: np.ndarray) -> np.ndarray:
        return quantize.dequantize(self.ring.centered(total), self.clip, self.bits)

    def plain_bytes(self, length: int) -> int:
        return 4 * length  # float32

    def extra(self, survivors: int) -> dict[str, Any]:
        return {
            "clip": self.clip,
            "bits": self.bits,
            "error_bound": quantize.quantization_error_bound(survivors, self.clip, self.bits),
        }


def _session(secret: bytes) -> bytes:
    return derive_key(secret, "session")[:16]


def _check_ids(ids: Collection[int], dropout: Collection[int], late: Collection[int]) -> None:
    for cid in ids:
        if not isinstance(cid, (int, np.integer)) or not 0 <= int(cid) <= MAX_CLIENT_ID:
            raise ConfigError("vectors", f"client ids must be integers in [0, 2^32), got {cid!r}")
    for name, group in (("dropout", dropout), ("dropout_unmask", late)):
        unknown = set(group) - set(ids)
        if unknown:
            raise ConfigError(name, f"names clients with no vector: {sorted(unknown)[:5]}")


def _run(
    inputs: Mapping[int, np.ndarray],
    code: _Integers | _FixedPoint,
    *,
    threshold: int | None,
    dropout: Collection[int],
    dropout_unmask: Collection[int],
    rng_seed: int | None,
    relay: RelayHook | None,
    shape: tuple[int, ...],
) -> SecAggResult:
    ids = sorted(int(c) for c in inputs)
    _check_ids(ids, dropout, dropout_unmask)
    n = len(ids)
    t = default_threshold(n) if threshold is None else threshold
    check_threshold(n, t)
    length = math.prod(shape)
    secret = master_secret(rng_seed)
    spec = RoundSpec(_session(secret), t, code.ring.modulus, length)
    wire = Relay(relay)
    clock = {"client": 0.0, "server": 0.0}

    def timed(role: str, fn: Callable[..., Any], *args: Any) -> Any:
        t0 = time.process_time()
        try:
            return fn(*args)
        finally:
            clock[role] += time.process_time() - t0

    server = Server(spec)
    clients = {cid: timed("client", Client, cid, spec, secret) for cid in ids}

    # 0. AdvertiseKeys
    ads = [wire.upload(timed("client", c.advertise)) for c in clients.values()]
    rosters = [wire.download(m) for m in timed("server", server.collect_advertisements, ads)]

    # 1. ShareKeys
    outboxes = {
        m.recipient: [wire.upload(s) for s in timed("client", clients[m.recipient].share_keys, m)] for m in rosters
    }
    inboxes = {v: [wire.download(s) for s in box] for v, box in timed("server", server.route_shares, outboxes).items()}

    # 2. MaskedInput
    gone = set(dropout)
    for cid in ids:
        if cid in gone:
            continue
        # Read here, one client at a time: a lazy Mapping never has every update in memory.
        v = np.asarray(inputs[cid])
        if v.shape != shape:
            raise ConfigError(
                "vectors", f"client {cid}'s vector has shape {v.shape}, the first had {shape}: all must match"
            )
        x = code.encode(cid, v).reshape(-1)
        y = wire.upload(timed("client", clients[cid].masked_input, inboxes[cid], x))
        timed("server", server.add_masked, y)

    # 3. Unmasking
    late = set(dropout_unmask)
    revealed = []
    for m in timed("server", server.close_inputs):
        m = wire.download(m)
        if m.recipient not in late:
            revealed.append(wire.upload(timed("client", clients[m.recipient].unmask, m)))
    total = timed("server", server.unmask, revealed)

    survivors = list(server.survivors)
    return SecAggResult(
        total=code.decode(total).reshape(shape),
        survivors=survivors,
        dropped=server.dropped(),
        threshold=spec.threshold,
        modulus=code.ring.modulus,
        bytes_up=wire.bytes_up,
        bytes_down=wire.bytes_down,
        plain_bytes_up=len(survivors) * code.plain_bytes(length),
        client_seconds=clock["client"],
        server_seconds=clock["server"],
        extra=code.extra(len(survivors)),
    )


def _shape(vectors: Mapping[int, np.ndarray]) -> tuple[int, ...]:
    if not vectors:
        raise ConfigError("vectors", "secure aggregation needs at least one client vector")
    shape = np.shape(vectors[next(iter(vectors))])
    if type(vectors) is dict:  # already in memory: fail before any protocol work starts
        for cid, v in vectors.items():
            if np.shape(v) != shape:
                raise ConfigError(
                    "vectors", f"client {cid}'s vector has shape {np.shape(v)}, the first had {shape}: all must match"
                )
    return shape


def secure_sum_int(
    vectors: Mapping[int, np.ndarray],
    modulus: int,
    *,
    threshold: int | None = None,
    dropout: Collection[int] = frozenset(),
    dropout_unmask: Collection[int] = frozenset(),
    rng_seed: int | None = None,
    relay: RelayHook | None = None,
) -> SecAggResult:
    """Sum integer vectors modulo `modulus` through the full protocol.

    `vectors` maps client id -> integer array (any shape, the same for all; reduced mod m). It
    may be a lazy Mapping: each value is read once, when its client sends its masked input (the
    first also once up front for its shape), so a round never needs every update in memory.
    `dropout` clients leave after sharing their keys and before sending a masked input (the case
    that needs their mask keys reconstructed); `dropout_unmask` clients send their input but not
    their shares. `total` is the sum over `survivors` mod m, shaped like the inputs. `relay`: a
    RelayHook that sees (and may alter) what the server handles.
    Raises SecAggAbort when fewer than `threshold` clients remain at any step.
    """
    shape = _shape(vectors)
    code = _Integers(Ring(modulus))
    return _run(
        vectors,
        code,
        threshold=threshold,
        dropout=dropout,
        dropout_unmask=dropout_unmask,
        rng_seed=rng_seed,
        relay=relay,
        shape=shape,
    )


def secure_sum(
    vectors: Mapping[int, np.ndarray],
    *,
    clip: float,
    bits: int = 16,
    threshold: int | None = None,
    dropout: Collection[int] = frozenset(),
    dropout_unmask: Collection[int] = frozenset(),
    rng_seed: int | None = None,
    relay: RelayHook | None = None,
) -> SecAggResult:
    """Sum float vectors through secure aggregation with `bits`-bit fixed point clipped to `clip`.

    Arguments are as for `secure_sum_int` (`vectors` is read lazily the same way). Each
    coordinate is clipped to [-clip, clip] and rounded to a grid of step clip/(2^(bits-1)-1); the
    modulus is `quantize.sum_modulus(n, bits)` for the n clients in the round, so the sum never
    wraps. Per coordinate, |total - sum of clipped survivor inputs| <=
    `quantization_error_bound(len(survivors), clip, bits)` = survivors * clip / (2^bits - 2).
    """
    shape = _shape(vectors)
    n = len(vectors)
    quantize.check(n, clip, bits)
    code = _FixedPoint(Ring(quantize.sum_modulus(n, bits)), clip, bits)
    return _run(
        vectors,
        code,
        threshold=threshold,
        dropout=dropout,
        dropout_unmask=dropout_unmask,
        rng_seed=rng_seed,
        relay=relay,
        shape=shape,
    )
