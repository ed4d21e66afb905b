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

Modules: `messages.py` (the round's public parameters and its messages, each with its wire size),
`keys.py` (key agreement both roles share), `client.py` and `server.py` (the two roles),
`driver.py` (one simulated round: `secure_sum`, `secure_sum_int`, the `Relay` that carries and
counts every message, and the one place a `SecAggResult` is built).
"""

from __future__ import annotations

from gptfl_ray.privacy.quantize import quantization_error_bound
from gptfl_ray.privacy.secagg.client import Client
from gptfl_ray.privacy.secagg.driver import (
    Relay,
    RelayHook,
    SecAggResult,
    check_threshold,
    default_threshold,
    secure_sum,
    secure_sum_int,
)
from gptfl_ray.privacy.secagg.messages import (
    ADVERT_BYTES,
    ID_BYTES,
    MAX_CLIENT_ID,
    PK_BYTES,
    SHARE_CIPHERTEXT,
    SHARE_PLAINTEXT,
    TAG_BYTES,
    Advertisement,
    RoundSpec,
    SecAggAbort,
)
from gptfl_ray.privacy.secagg.server import Server

__all__ = [
    "ADVERT_BYTES",
    "ID_BYTES",
    "MAX_CLIENT_ID",
    "PK_BYTES",
    "SHARE_CIPHERTEXT",
    "SHARE_PLAINTEXT",
    "TAG_BYTES",
    "Advertisement",
    "Client",
    "Relay",
    "RelayHook",
    "RoundSpec",
    "SecAggAbort",
    "SecAggResult",
    "Server",
    "check_threshold",
    "default_threshold",
    "quantization_error_bound",
    "secure_sum",
    "secure_sum_int",
]
