"""Secure aggregation's byte accounting: each message knows its wire size, and the driver's one
Relay counts every message once, per client and direction, and offers it to the hook once."""

from __future__ import annotations

import numpy as np
import pytest

from gptfl_ray.privacy import shamir
from gptfl_ray.privacy.secagg.driver import Relay, secure_sum_int
from gptfl_ray.privacy.secagg.messages import (
    ADVERT_BYTES,
    SHARE_CIPHERTEXT,
    AdvertiseKeys,
    EncryptedShare,
    MaskedInput,
    RevealedShares,
    Roster,
    Survivors,
)


def test_each_message_knows_its_wire_size():
    assert ADVERT_BYTES == 4 + 32 + 32 + 32  # id, two X25519 keys, SHA-256 commitment
    assert SHARE_CIPHERTEXT == 2 * 4 + 2 * shamir.SHARE_BYTES + 16  # ids, two shares, GCM tag
    assert AdvertiseKeys(1, bytes(ADVERT_BYTES)).nbytes == 100
    assert Roster(1, dict.fromkeys(range(5))).nbytes == 5 * 100
    assert EncryptedShare(1, 2, bytes(SHARE_CIPHERTEXT)).nbytes == 8 + SHARE_CIPHERTEXT
    assert MaskedInput(1, np.zeros(10, np.uint32), 1 << 20).nbytes == 4 + 25  # 10 elements of 20 bits
    assert Survivors(1, (1, 2, 3)).nbytes == 12
    assert RevealedShares(1, bytes(39)).nbytes == 4 + 39


def test_relay_counts_once_and_offers_what_the_server_holds_once():
    seen = []
    relay = Relay(lambda stage, sender, recipient, payload: seen.append((stage, sender, recipient)) or payload)
    relay.upload(AdvertiseKeys(3, bytes(100)))  # addressed to the server: offered on arrival
    share = relay.upload(EncryptedShare(3, 4, bytes(10)))  # forwarded: offered when it leaves
    relay.download(share)
    relay.download(Survivors(4, (3, 4)))  # the server's own broadcast: never offered
    assert seen == [("advertise", 3, None), ("share", 3, 4)]
    assert relay.up == {3: 100 + 18} and relay.down == {4: 18 + 8}
    assert (relay.bytes_up, relay.bytes_down) == (118, 26)


@pytest.mark.parametrize(("dropout", "late"), [(0, 0), (2, 0), (1, 1)])
def test_round_bytes_are_the_sum_of_its_messages(dropout, late):
    n, length, bits = 12, 91, 20
    rng = np.random.default_rng(0)
    vectors = {3 * i + 5: rng.integers(0, 1 << 40, length) for i in range(n)}
    ids = sorted(vectors)
    gone, quiet = set(ids[1 : 1 + dropout]), set(ids[-late:] if late else [])
    res = secure_sum_int(vectors, 1 << bits, dropout=gone, dropout_unmask=quiet, rng_seed=11)
    alive, share = n - dropout, 8 + SHARE_CIPHERTEXT
    masked = 4 + -(-length * bits // 8)
    revealed = 4 + n * shamir.SHARE_BYTES  # shares of b for survivors, of s_sk for the dropped
    assert res.bytes_up == n * 100 + n * (n - 1) * share + alive * masked + (alive - late) * revealed
    assert res.bytes_down == n * n * 100 + n * (n - 1) * share + alive * alive * 4
    pinned = {(0, 0): (24168, 29496), (2, 0): (22760, 29320), (1, 1): (22992, 29404)}  # before the package split
    assert (res.bytes_up, res.bytes_down) == pinned[dropout, late]
