"""Secure aggregation: the server learns the sum of client vectors and nothing else about them.

Implements the protocol of Bonawitz et al., "Practical Secure Aggregation for Privacy-Preserving
Machine Learning", CCS 2017 (the honest-but-curious-server version, with authenticated share
channels and verified reconstruction), simulated for many clients in one process. Inputs are
vectors over Z_R; `secure_sum` adds the fixed-point float encoding of `quantize.py`.

One round, clients U1 (the roster), threshold t; every message goes through the server:

0. AdvertiseKeys. Client u draws two X25519 key pairs, (c_pk, c_sk) to encrypt shares and
   (s_pk, s_sk) to agree pairwise mask seeds, and a 32-byte self-mask seed b_u. It sends c_pk,
   s_pk and a SHA-256 commitment to b_u; the server broadcasts the roster.
1. ShareKeys. u deals t-out-of-|U1| Shamir shares (`shamir.py`) of b_u and of s_sk_u, one per
   roster member including itself, and sends member v its pair of shares encrypted with
   AES-256-GCM under HKDF(X25519(c_sk_u, c_pk_v)). U2 is the set of clients whose shares went out.
2. MaskedInput. u sends y_u = x_u + PRG(b_u) + sum_{v in U2, v != u} sign(u, v) PRG(s_uv) mod R,
   with s_uv = HKDF(X25519(s_sk_u, s_pk_v)), sign +1 if u < v else -1, and PRG = AES-256-CTR
   (`prg.py`). Pairwise masks cancel in the sum over all of U2. U3 is the set that sent y_u.
3. Unmasking. The server announces U3 (aborting if |U3| < t). Each member of U3 reveals its
   shares of b_v for every v in U3 and of s_sk_v for every v in U2 minus U3 - never both kinds
   for the same v, which is what keeps a single y_v masked. From any t responders the server
   reconstructs, removes the self masks of U3 and the dropped clients' pairwise masks, and is
   left with sum_{u in U3} x_u mod R.

Threat model and tamper detection. Privacy: the server, following the protocol, sees the public
keys, ciphertexts, masked vectors (each uniform on Z_R on its own) and revealed shares; with the
threshold a majority, no coalition of fewer than t clients plus the server learns more than the
sum (Bonawitz et al., Theorem 6.2). Integrity of the secret sharing is checked twice:
- Shares relayed in ShareKeys are authenticated encryption, with the session, the sender and the
  recipient as associated data, so an altered, swapped or re-addressed ciphertext fails to
  decrypt at its recipient, which aborts naming the sender.
- Shares revealed in Unmasking travel to the server in the clear, so the server verifies what it
  reconstructs: a seed b_u must match u's round-0 commitment, a key s_sk_u must give back the
  advertised s_pk_u. A mismatch aborts naming the client whose secret failed.
Not covered (the paper's active-adversary variant): signatures binding advertised keys to client
identities through a PKI and the consistency-check round; a server that substitutes public keys in
round 0 is outside this model. The masked inputs themselves are not authenticated: secure
aggregation hides inputs, it does not prove them.

Nonces: each pair's share key encrypts exactly two messages, one per direction; the nonce is the
sender's roster position, so no (key, nonce) pair repeats.

Randomness: all client secrets come from HKDF of a master secret (`prg.master_secret`): OS
entropy when `rng_seed` is None (what a deployment does), a hash of the seed in simulations and
tests so that runs replay exactly.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gptfl_ray.errors import ConfigError
from gptfl_ray.privacy import quantize, shamir
from gptfl_ray.privacy.prg import KeyStream, commit, derive_key, master_secret
from gptfl_ray.privacy.ring import Ring

ID_BYTES = 4
MAX_CLIENT_ID = (1 << 32) - 1
PK_BYTES = 32
TAG_BYTES = 16
ADVERT_BYTES = ID_BYTES + 2 * PK_BYTES + 32  # id, c_pk, s_pk, SHA-256 commitment to b
SHARE_PLAINTEXT = 2 * ID_BYTES + 2 * shamir.SHARE_BYTES
SHARE_CIPHERTEXT = SHARE_PLAINTEXT + TAG_BYTES

# A relay sees every message the server forwards or receives and returns what is delivered:
# relay(stage, sender, recipient, payload). Stages: "advertise", "share" (ciphertexts),
# "masked" (the masked vector, an array), "unmask" (one survivor's revealed shares, bytes).
# The default delivers everything unchanged; tests use it to play a tampering server.
Relay = Callable[[str, int, int | None, Any], Any]


class SecAggAbort(RuntimeError):
    """The protocol cannot finish safely: too few clients left, or a share failed a check."""


def _deliver(stage: str, sender: int, recipient: int | None, payload: Any) -> Any:
    return payload


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
class Advertisement:
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
class RoundSpec:
    """The public parameters of one aggregation round."""

    session: bytes
    threshold: int
    modulus: int
    length: int

    @property
    def ring(self) -> Ring:
        return Ring(self.modulus)


def _public_bytes(sk: X25519PrivateKey) -> bytes:
    return sk.public_key().public_bytes_raw()


def _agree(sk: X25519PrivateKey, pk: bytes, owner: int) -> bytes:
    try:
        return sk.exchange(X25519PublicKey.from_public_bytes(pk))
    except ValueError:  # a malformed or low-order key would give an all-zero shared secret
        raise SecAggAbort(f"client {owner} advertised an invalid X25519 public key") from None


def _mask_key(spec: RoundSpec, s_sk: X25519PrivateKey, s_pk: bytes, u: int, v: int) -> bytes:
    shared = _agree(s_sk, s_pk, v)
    return derive_key(shared, "pair-mask", spec.session, min(u, v), max(u, v))


def _nonce(position: int) -> bytes:
    return position.to_bytes(12, "big")


class Client:
    """One client's side of the protocol; holds its secrets between rounds."""

    def __init__(self, cid: int, spec: RoundSpec, secret: bytes):
        self.cid, self.spec = cid, spec
        seed = derive_key(secret, "client", spec.session, cid)
        self._c_sk = X25519PrivateKey.from_private_bytes(derive_key(seed, "c-key"))
        self._s_sk_raw = derive_key(seed, "s-key")
        self._s_sk = X25519PrivateKey.from_private_bytes(self._s_sk_raw)
        self._b = derive_key(seed, "self-mask")
        self._shamir_stream = KeyStream(derive_key(seed, "shamir-coefficients"))
        self._roster: dict[int, Advertisement] = {}
        self._channel: dict[int, AESGCM] = {}
        self._held: dict[int, tuple[bytes, bytes]] = {}  # owner -> (share of b, share of s_sk)
        self._u2: list[int] = []
        self._pos: dict[int, int] = {}

    def advertise(self) -> bytes:
        ad = Advertisement(
            self.cid,
            _public_bytes(self._c_sk),
            _public_bytes(self._s_sk),
            commit(self._b, "self-mask", self.spec.session, self.cid),
        )
        return ad.to_bytes()

    def share_keys(self, roster: Mapping[int, Advertisement]) -> dict[int, bytes]:
        if len(roster) < self.spec.threshold or self.cid not in roster:
            raise SecAggAbort(
                f"client {self.cid}: roster of {len(roster)} is below threshold "
                f"{self.spec.threshold} or omits this client"
            )
        self._roster = dict(sorted(roster.items()))
        ids = list(self._roster)
        self._pos = {cid: i for i, cid in enumerate(ids)}
        me = self._pos[self.cid]
        shares = shamir.deal([self._b, self._s_sk_raw], len(ids), self.spec.threshold, self._shamir_stream)
        packed = shamir.share_to_bytes(shares)  # one conversion for all parties
        size = shamir.SHARE_BYTES
        out: dict[int, bytes] = {}
        for pos, v in enumerate(ids):
            sb = packed[2 * pos * size : (2 * pos + 1) * size]
            ss = packed[(2 * pos + 1) * size : (2 * pos + 2) * size]
            if v == self.cid:
                self._held[v] = (sb, ss)
                continue
            shared = _agree(self._c_sk, roster[v].c_pk, v)
            key = AESGCM(derive_key(shared, "share-channel", self.spec.session, min(self.cid, v), max(self.cid, v)))
            self._channel[v] = key
            plaintext = self.cid.to_bytes(ID_BYTES, "big") + v.to_bytes(ID_BYTES, "big") + sb + ss
            out[v] = key.encrypt(_nonce(me), plaintext, self._aad(self.cid, v))
        return out

    def _aad(self, sender: int, recipient: int) -> bytes:
        return self.spec.session + sender.to_bytes(ID_BYTES, "big") + recipient.to_bytes(ID_BYTES, "big")

    def masked_input(self, inbox: Mapping[int, bytes], x: np.ndarray) -> np.ndarray:
        """Checks and stores the received shares, then returns x masked (x in ring residues)."""
        for sender, ct in inbox.items():
            key = self._channel.get(sender)
            if key is None:
                raise SecAggAbort(f"client {self.cid}: got shares from {sender}, not on the roster")
            try:
                pt = key.decrypt(_nonce(self._pos[sender]), ct, self._aad(sender, self.cid))
            except InvalidTag:
                raise SecAggAbort(
                    f"client {self.cid}: the shares sent by client {sender} failed "
                    "authentication (altered in transit); aborting"
                ) from None
            i = ID_BYTES
            if (int.from_bytes(pt[:i], "big"), int.from_bytes(pt[i : 2 * i], "big")) != (sender, self.cid):
                raise SecAggAbort(f"client {self.cid}: shares from {sender} name the wrong parties")
            self._held[sender] = (pt[2 * i : 2 * i + shamir.SHARE_BYTES], pt[2 * i + shamir.SHARE_BYTES :])
        self._u2 = sorted(set(inbox) | {self.cid})
        if len(self._u2) < self.spec.threshold:
            raise SecAggAbort(
                f"client {self.cid}: only {len(self._u2)} clients shared keys, below threshold {self.spec.threshold}"
            )
        ring, n = self.spec.ring, self.spec.length
        y = ring.element(x)
        ring.add_(y, ring.uniform(KeyStream(derive_key(self._b, "self-mask-prg")), n))
        for v in self._u2:
            if v == self.cid:
                continue
            key = _mask_key(self.spec, self._s_sk, self._roster[v].s_pk, self.cid, v)
            mask = ring.uniform(KeyStream(key), n)
            (ring.add_ if self.cid < v else ring.sub_)(y, mask)
        return y

    def unmask(self, survivors: Collection[int]) -> bytes:
        """Shares of b for survivors, then of s_sk for dropped clients, in id order."""
        alive = sorted(survivors)
        if len(alive) < self.spec.threshold or not set(alive) <= set(self._u2):
            raise SecAggAbort(
                f"client {self.cid}: refusing to unmask for {len(alive)} survivors "
                f"(threshold {self.spec.threshold}) or unknown clients"
            )
        alive_set = set(alive)
        dropped = [v for v in self._u2 if v not in alive_set]
        return b"".join([self._held[v][0] for v in alive] + [self._held[v][1] for v in dropped])


class Server:
    """The aggregator: routes messages, keeps a running sum of masked inputs, unmasks it."""

    def __init__(self, spec: RoundSpec):
        self.spec = spec
        self.roster: dict[int, Advertisement] = {}
        self.u2: list[int] = []
        self._sum = spec.ring.zeros(spec.length)
        self.survivors: list[int] = []
        self._seen: set[int] = set()
        self._u2_set: set[int] = set()

    def _require(self, have: int, what: str) -> None:
        if have < self.spec.threshold:
            raise SecAggAbort(
                f"secure aggregation aborted: only {have} clients {what}, fewer than "
                f"the threshold t={self.spec.threshold}"
            )

    def collect_advertisements(self, ads: Mapping[int, bytes]) -> dict[int, Advertisement]:
        parsed = {cid: Advertisement.from_bytes(raw) for cid, raw in ads.items()}
        for cid, ad in parsed.items():
            if ad.client != cid:
                raise SecAggAbort(f"advertisement from client {cid} names client {ad.client}")
        self._require(len(parsed), "advertised keys")
        self.roster = dict(sorted(parsed.items()))
        return self.roster

    def route_shares(self, outboxes: Mapping[int, Mapping[int, bytes]]) -> dict[int, dict[int, bytes]]:
        self._require(len(outboxes), "shared their keys")
        self.u2 = sorted(outboxes)
        self._u2_set = set(self.u2)
        inboxes: dict[int, dict[int, bytes]] = {v: {} for v in self.u2}
        for u, box in outboxes.items():
            for v, ct in box.items():
                if v in inboxes:
                    inboxes[v][u] = ct
        return inboxes

    def add_masked(self, cid: int, y: np.ndarray) -> None:
        if cid not in self._u2_set or cid in self._seen:
            raise SecAggAbort(f"masked input from client {cid}, which did not share keys or already sent one")
        y = np.asarray(y)
        if y.shape != (self.spec.length,) or y.dtype != self.spec.ring.dtype:
            raise SecAggAbort(
                f"masked input from client {cid} has shape {y.shape}, dtype "
                f"{y.dtype}; expected ({self.spec.length},) {self.spec.ring.dtype}"
            )
        self.spec.ring.add_(self._sum, y)
        self.survivors.append(cid)
        self._seen.add(cid)

    def dropped(self) -> list[int]:
        alive = set(self.survivors)
        return [v for v in self.u2 if v not in alive]

    def close_inputs(self) -> list[int]:
        self._require(len(self.survivors), "sent masked inputs")
        self.survivors.sort()
        return self.survivors

    def unmask(self, responses: Mapping[int, bytes]) -> np.ndarray:
        alive = self.survivors
        dropped = self.dropped()
        self._require(len(responses), "answered the unmasking request")
        t = self.spec.threshold
        responders = sorted(responses)[:t]
        positions = {cid: i for i, cid in enumerate(self.roster)}
        per = len(alive) + len(dropped)
        shares = np.empty((t, per, shamir.CHUNKS), dtype=np.int64)
        for row, cid in enumerate(responders):
            raw = responses[cid]
            if len(raw) != per * shamir.SHARE_BYTES:
                raise SecAggAbort(
                    f"client {cid} revealed {len(raw)} bytes of shares, expected {per * shamir.SHARE_BYTES}"
                )
            shares[row] = shamir.share_from_bytes(raw, per)
        secrets = shamir.reconstruct(np.array([positions[c] + 1 for c in responders]), shares)
        ring, n, session = self.spec.ring, self.spec.length, self.spec.session
        total = self._sum.copy()
        for u, chunks in zip(alive, secrets[: len(alive)]):
            b = shamir.chunks_to_secret(chunks)
            if b is None or commit(b, "self-mask", session, u) != self.roster[u].b_commit:
                raise SecAggAbort(
                    f"the self-mask seed of client {u} rebuilt from the revealed "
                    "shares does not match its commitment: a share was altered"
                )
            ring.sub_(total, ring.uniform(KeyStream(derive_key(b, "self-mask-prg")), n))
        for u, chunks in zip(dropped, secrets[len(alive) :]):
            raw = shamir.chunks_to_secret(chunks)
            sk = X25519PrivateKey.from_private_bytes(raw) if raw is not None else None
            if sk is None or _public_bytes(sk) != self.roster[u].s_pk:
                raise SecAggAbort(
                    f"the mask key of dropped client {u} rebuilt from the revealed "
                    "shares does not match its public key: a share was altered"
                )
            for v in alive:
                mask = ring.uniform(KeyStream(_mask_key(self.spec, sk, self.roster[v].s_pk, u, v)), n)
                # v added sign(v, u) * mask, + when v < u; take it back out.
                (ring.sub_ if v < u else ring.add_)(total, mask)
        return total


@dataclass(frozen=True)
class SecAggResult:
    """A secure sum and what it cost.

    Byte counts are what the protocol puts on the wire with vector elements bit-packed to
    ceil(log2 R) bits (the simulation passes unpacked arrays) and 4-byte client ids; ciphertexts
    carry a 16-byte GCM tag and no nonce (it is implied by the sender's position).
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
    ring: Ring,
    *,
    threshold: int | None,
    dropout: Collection[int],
    dropout_unmask: Collection[int],
    rng_seed: int | None,
    relay: Relay | None,
    shape: tuple[int, ...],
    encode: Callable[[int, np.ndarray], np.ndarray],
) -> tuple[np.ndarray, Server, dict[str, float]]:
    ids = sorted(int(c) for c in inputs)
    _check_ids(ids, dropout, dropout_unmask)
    n = len(ids)
    t = default_threshold(n) if threshold is None else threshold
    check_threshold(n, t)
    length = math.prod(shape)
    secret = master_secret(rng_seed)
    spec = RoundSpec(_session(secret), t, ring.modulus, length)
    relay = relay or _deliver
    clock = {"client": 0.0, "server": 0.0}
    up = down = 0

    def timed(role: str, fn: Callable[..., Any], *args: Any) -> Any:
        t0 = time.process_time()
        try:
            return fn(*args)
        finally:
            clock[role] += time.process_time() - t0

    server = Server(spec)
    clients = {cid: timed("client", Client, cid, spec, secret) for cid in ids}

    ads = {cid: relay("advertise", cid, None, timed("client", c.advertise)) for cid, c in clients.items()}
    up += n * ADVERT_BYTES
    roster = timed("server", server.collect_advertisements, ads)
    down += n * len(roster) * ADVERT_BYTES

    outboxes = {cid: timed("client", c.share_keys, roster) for cid, c in clients.items()}
    up += sum(len(box) * (SHARE_CIPHERTEXT + 2 * ID_BYTES) for box in outboxes.values())
    inboxes = timed("server", server.route_shares, outboxes)
    for v, box in inboxes.items():
        for u in box:
            box[u] = relay("share", u, v, box[u])
        down += len(box) * (SHARE_CIPHERTEXT + 2 * ID_BYTES)

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
        x = encode(cid, v).reshape(-1)
        y = relay("masked", cid, None, timed("client", clients[cid].masked_input, inboxes[cid], x))
        up += ring.wire_bytes(length) + ID_BYTES
        timed("server", server.add_masked, cid, y)
    survivors = timed("server", server.close_inputs)
    down += (n - len(gone)) * len(survivors) * ID_BYTES

    late = set(dropout_unmask)
    responses = {}
    for cid in survivors:
        if cid in late:
            continue
        responses[cid] = relay("unmask", cid, None, timed("client", clients[cid].unmask, survivors))
        up += len(responses[cid]) + ID_BYTES
    total = timed("server", server.unmask, responses)
    return total, server, {"bytes_up": up, "bytes_down": down, **clock}


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
    relay: Relay | None = None,
) -> SecAggResult:
    """Sum integer vectors modulo `modulus` through the full protocol.

    `vectors` maps client id -> integer array (any shape, the same for all; reduced mod m). It
    may be a lazy Mapping: each value is read once, when its client sends its masked input (the
    first also once up front for its shape), so a round never needs every update in memory.
    `dropout` clients leave after sharing their keys and before sending a masked input (the case
    that needs their mask keys reconstructed); `dropout_unmask` clients send their input but not
    their shares. `total` is the sum over `survivors` mod m, shaped like the inputs.
    Raises SecAggAbort when fewer than `threshold` clients remain at any step.
    """
    shape = _shape(vectors)
    ring = Ring(modulus)
    total, server, stats = _run(
        vectors,
        ring,
        threshold=threshold,
        dropout=dropout,
        dropout_unmask=dropout_unmask,
        rng_seed=rng_seed,
        relay=relay,
        shape=shape,
        encode=lambda cid, v: v,
    )
    survivors = list(server.survivors)
    return SecAggResult(
        total=total.astype(np.int64).reshape(shape),
        survivors=survivors,
        dropped=server.dropped(),
        threshold=server.spec.threshold,
        modulus=modulus,
        bytes_up=stats["bytes_up"],
        bytes_down=stats["bytes_down"],
        plain_bytes_up=len(survivors) * ring.wire_bytes(math.prod(shape)),
        client_seconds=stats["client"],
        server_seconds=stats["server"],
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
    relay: Relay | None = None,
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
    ring = Ring(quantize.sum_modulus(n, bits))

    def encode(cid: int, v: np.ndarray) -> np.ndarray:
        v = np.asarray(v, dtype=np.float64)
        if not np.all(np.isfinite(v)):
            raise ConfigError("vectors", f"client {cid}'s vector has NaN or infinite values")
        return quantize.quantize(v, clip, bits)

    total, server, stats = _run(
        vectors,
        ring,
        threshold=threshold,
        dropout=dropout,
        dropout_unmask=dropout_unmask,
        rng_seed=rng_seed,
        relay=relay,
        shape=shape,
        encode=encode,
    )
    survivors = list(server.survivors)
    return SecAggResult(
        total=quantize.dequantize(ring.centered(total), clip, bits).reshape(shape),
        survivors=survivors,
        dropped=server.dropped(),
        threshold=server.spec.threshold,
        modulus=ring.modulus,
        bytes_up=stats["bytes_up"],
        bytes_down=stats["bytes_down"],
        plain_bytes_up=len(survivors) * 4 * math.prod(shape),
        client_seconds=stats["client"],
        server_seconds=stats["server"],
        extra={
            "clip": clip,
            "bits": bits,
            "error_bound": quantize.quantization_error_bound(len(survivors), clip, bits),
        },
    )


quantization_error_bound = quantize.quantization_error_bound
