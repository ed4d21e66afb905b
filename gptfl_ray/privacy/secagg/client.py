"""The client's side of the protocol: its secrets, and the message it sends at each round."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gptfl_ray.privacy import shamir
from gptfl_ray.privacy.prg import KeyStream, commit, derive_key
from gptfl_ray.privacy.secagg.keys import agree, mask_key, nonce, public_bytes
from gptfl_ray.privacy.secagg.messages import (
    ID_BYTES,
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

    def advertise(self) -> AdvertiseKeys:
        ad = Advertisement(
            self.cid,
            public_bytes(self._c_sk),
            public_bytes(self._s_sk),
            commit(self._b, "self-mask", self.spec.session, self.cid),
        )
        return AdvertiseKeys(self.cid, ad.to_bytes())

    def share_keys(self, msg: Roster) -> list[EncryptedShare]:
        roster = msg.payload
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
        out: list[EncryptedShare] = []
        for pos, v in enumerate(ids):
            sb = packed[2 * pos * size : (2 * pos + 1) * size]
            ss = packed[(2 * pos + 1) * size : (2 * pos + 2) * size]
            if v == self.cid:
                self._held[v] = (sb, ss)
                continue
            shared = agree(self._c_sk, roster[v].c_pk, v)
            key = AESGCM(derive_key(shared, "share-channel", self.spec.session, min(self.cid, v), max(self.cid, v)))
            self._channel[v] = key
            plaintext = self.cid.to_bytes(ID_BYTES, "big") + v.to_bytes(ID_BYTES, "big") + sb + ss
            out.append(EncryptedShare(self.cid, v, key.encrypt(nonce(me), plaintext, self._aad(self.cid, v))))
        return out

    def _aad(self, sender: int, recipient: int) -> bytes:
        return self.spec.session + sender.to_bytes(ID_BYTES, "big") + recipient.to_bytes(ID_BYTES, "big")

    def masked_input(self, inbox: Sequence[EncryptedShare], x: np.ndarray) -> MaskedInput:
        """Checks and stores the received shares, then returns x masked (x in ring residues)."""
        for msg in inbox:
            sender = msg.sender
            key = self._channel.get(sender)
            if key is None:
                raise SecAggAbort(f"client {self.cid}: got shares from {sender}, not on the roster")
            try:
                pt = key.decrypt(nonce(self._pos[sender]), msg.payload, self._aad(sender, self.cid))
            except InvalidTag:
                raise SecAggAbort(
                    f"client {self.cid}: the shares sent by client {sender} failed "
                    "authentication (altered in transit); aborting"
                ) from None
            i = ID_BYTES
            if (int.from_bytes(pt[:i], "big"), int.from_bytes(pt[i : 2 * i], "big")) != (sender, self.cid):
                raise SecAggAbort(f"client {self.cid}: shares from {sender} name the wrong parties")
            self._held[sender] = (pt[2 * i : 2 * i + shamir.SHARE_BYTES], pt[2 * i + shamir.SHARE_BYTES :])
        self._u2 = sorted({msg.sender for msg in inbox} | {self.cid})
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
            key = mask_key(self.spec, self._s_sk, self._roster[v].s_pk, self.cid, v)
            mask = ring.uniform(KeyStream(key), n)
            (ring.add_ if self.cid < v else ring.sub_)(y, mask)
        return MaskedInput(self.cid, y, self.spec.modulus)

    def unmask(self, msg: Survivors) -> RevealedShares:
        """Shares of b for survivors, then of s_sk for dropped clients, in id order."""
        alive = sorted(msg.payload)
        if len(alive) < self.spec.threshold or not set(alive) <= set(self._u2):
            raise SecAggAbort(
                f"client {self.cid}: refusing to unmask for {len(alive)} survivors "
                f"(threshold {self.spec.threshold}) or unknown clients"
            )
        alive_set = set(alive)
        dropped = [v for v in self._u2 if v not in alive_set]
        shares = [self._held[v][0] for v in alive] + [self._held[v][1] for v in dropped]
        return RevealedShares(self.cid, b"".join(shares))
