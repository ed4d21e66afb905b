"""Key agreement both roles share: X25519 secrets, pairwise mask keys, share-channel nonces."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from gptfl_ray.privacy.prg import derive_key
from gptfl_ray.privacy.secagg.messages import RoundSpec, SecAggAbort


def public_bytes(sk: X25519PrivateKey) -> bytes:
    return sk.public_key().public_bytes_raw()


def agree(sk: X25519PrivateKey, pk: bytes, owner: int) -> bytes:
    try:
        return sk.exchange(X25519PublicKey.from_public_bytes(pk))
    except ValueError:  # a malformed or low-order key would give an all-zero shared secret
        raise SecAggAbort(f"client {owner} advertised an invalid X25519 public key") from None


def mask_key(spec: RoundSpec, s_sk: X25519PrivateKey, s_pk: bytes, u: int, v: int) -> bytes:
    """s_uv: the seed of the pairwise mask between u and v, the same from either side."""
    shared = agree(s_sk, s_pk, v)
    return derive_key(shared, "pair-mask", spec.session, min(u, v), max(u, v))


def nonce(position: int) -> bytes:
    return position.to_bytes(12, "big")
