"""Client sampling and per-client randomness, both pure functions of (seed, round[, client]).

docs/architecture.md rule 4 (as pfl-research tests): who trains in a round, and every random choice a client
makes, depend only on these integers, never on how many executors ran or in which order, so
results are pool-size independent and a resumed run replays exactly.
"""

from __future__ import annotations

import numpy as np

_SAMPLE_TAG = 0x5A3F1E  # separates the sampling stream from the client streams
_DROPOUT_TAG = 0xD60F
_POISSON_TAG = 0x9015


def clients_per_round(num_clients: int, sample_rate: float | None = None, count: int | None = None) -> int:
    if count is not None:
        return min(int(count), num_clients)
    rate = 1.0 if sample_rate is None else float(sample_rate)
    return max(1, min(num_clients, int(round(rate * num_clients))))


def sample_clients(num_clients: int, k: int, seed: int, round_idx: int) -> np.ndarray:
    """k distinct client ids, sorted, drawn without replacement from the (seed, round) stream."""
    rng = np.random.default_rng([seed, round_idx, _SAMPLE_TAG])
    return np.sort(rng.choice(num_clients, size=k, replace=False)).astype(np.int64)


def client_drops(seed: int, round_idx: int, client_id: int, p: float) -> bool:
    """Whether this client vanishes mid-round under `--dropout p`."""
    if p <= 0:
        return False
    rng = np.random.default_rng([seed, round_idx, int(client_id), _DROPOUT_TAG])
    return bool(rng.random() < p)


def sample_among(candidates: np.ndarray, k: int, seed: int, round_idx: int) -> np.ndarray:
    """k of the `candidates` (e.g. the clients online), from the same (seed, round) stream:
    with every client a candidate it picks exactly what `sample_clients` picks."""
    cand = np.asarray(candidates, dtype=np.int64)
    rng = np.random.default_rng([seed, round_idx, _SAMPLE_TAG])
    return np.sort(rng.choice(cand, size=min(k, len(cand)), replace=False)).astype(np.int64)


def poisson_sample(num_clients: int, rate: float, seed: int, round_idx: int) -> np.ndarray:
    """Every client independently with probability `rate` (DP-FedAvg's sampling; the count varies)."""
    rng = np.random.default_rng([seed, round_idx, _POISSON_TAG])
    return np.flatnonzero(rng.random(num_clients) < rate).astype(np.int64)
