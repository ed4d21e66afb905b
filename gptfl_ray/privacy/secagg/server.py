"""The server's side of the protocol: it routes messages, keeps a running sum of masked inputs,
checks what the survivors reveal and unmasks the sum."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from gptfl_ray.privacy import shamir
from gptfl_ray.privacy.prg import KeyStream, commit, derive_key
from gptfl_ray.privacy.secagg.keys import mask_key, public_bytes
from gptfl_ray.privacy.secagg.messages import (
    AdvertiseKeys,
    Advertisement,
    EncryptedShare,
    MaskedInput,
    RevealedShares,
    Roster,
    RoundSpec,
    SecAggAbort,
    Survivors,
)


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

    def collect_advertisements(self, ads: Iterable[AdvertiseKeys]) -> list[Roster]:
        """The roster, one copy for each client on it."""
        parsed = {m.sender: Advertisement.from_bytes(m.payload) for m in ads}
        for cid, ad in parsed.items():
            if ad.client != cid:
                raise SecAggAbort(f"advertisement from client {cid} names client {ad.client}")
        self._require(len(parsed), "advertised keys")
        self.roster = dict(sorted(parsed.items()))
        return [Roster(cid, self.roster) for cid in self.roster]

    def route_shares(self, outboxes: Mapping[int, Sequence[EncryptedShare]]) -> dict[int, list[EncryptedShare]]:
        """Each client's ciphertexts, by recipient; the senders are U2."""
        self._require(len(outboxes), "shared their keys")
        self.u2 = sorted(outboxes)
        self._u2_set = set(self.u2)
        inboxes: dict[int, list[EncryptedShare]] = {v: [] for v in self.u2}
        for box in outboxes.values():
            for msg in box:
                if msg.recipient in inboxes:
                    inboxes[msg.recipient].append(msg)
        return inboxes

    def add_masked(self, msg: MaskedInput) -> None:
        cid = msg.sender
        if cid not in self._u2_set or cid in self._seen:
            raise SecAggAbort(f"masked input from client {cid}, which did not share keys or already sent one")
        y = np.asarray(msg.payload)
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

    def close_inputs(self) -> list[Survivors]:
        """U3, announced to each of its members."""
        self._require(len(self.survivors), "sent masked inputs")
        self.survivors.sort()
        return [Survivors(cid, tuple(self.survivors)) for cid in self.survivors]

    def unmask(self, revealed: Iterable[RevealedShares]) -> np.ndarray:
        responses = {m.sender: m.payload for m in revealed}
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
            if sk is None or public_bytes(sk) != self.roster[u].s_pk:
                raise SecAggAbort(
                    f"the mask key of dropped client {u} rebuilt from the revealed "
                    "shares does not match its public key: a share was altered"
                )
            for v in alive:
                mask = ring.uniform(KeyStream(mask_key(self.spec, sk, self.roster[v].s_pk, u, v)), n)
                # v added sign(v, u) * mask, + when v < u; take it back out.
                (ring.sub_ if v < u else ring.add_)(total, mask)
        return total
