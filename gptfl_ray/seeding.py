"""Every seed of the package, derived in one place (docs/architecture.md rule 4).

A run's randomness comes from its `--seed` and the position of the choice: (seed, round) for
sampling and secure aggregation, (seed, round, client) for a client's local training, (seed,
row) for a generated sample. Each seed is a pure function of integers through numpy's
SeedSequence, never Python's `hash()` (salted per process for strings, and not a mixing
function), so it is the same in every process, actor and platform, and a resumed run draws what
an uninterrupted one drew.
"""

from __future__ import annotations

import numpy as np

_SECAGG_TAG = 0x5EC466  # separates secure aggregation's (seed, round) stream from other (seed, round) uses


def derive_seed(*parts: int) -> int:
    """A 63-bit seed from integers; stable across processes and platforms."""
    state = np.random.SeedSequence([int(p) & 0xFFFFFFFF for p in parts] + [len(parts)])
    hi, lo = state.generate_state(2, np.uint32)
    return int((int(hi) << 32 | int(lo)) & 0x7FFFFFFFFFFFFFFF)


def row_rng(seed: int) -> np.random.Generator:
    """Every random choice for one row comes from that row's seed alone (independent of batch)."""
    return np.random.default_rng(np.uint64(int(seed) & 0xFFFFFFFFFFFFFFFF))


def client_seed(seed: int, round_idx: int, client_id: int) -> int:
    """A 63-bit seed for one client's local training in one round."""
    ss = np.random.SeedSequence([seed, round_idx, int(client_id)])
    return int(ss.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


def secagg_seed(seed: int, round_idx: int) -> int:
    """The seed of one round's secure-aggregation protocol (its keys and masks), 31 bits."""
    return derive_seed(seed, round_idx, _SECAGG_TAG) & 0x7FFFFFFF
