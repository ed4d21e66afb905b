"""Plain or secure summation of a round's uploads: one `Aggregator`, chosen once per run.

`build_aggregator(fl)` picks it from the config; the round loop (`fl/loop.py`, FedAvg's weighted
mean) and DP's release (`fl/crossdevice.py`, the sum it noises) both ask it, and neither looks
at `fl.secure_aggregation` again. `PlainAggregator` reads the executors' merged partial sums;
`SecureAggregator` sums the clients' separate uploads (`RoundResult.client_vectors`) through
Bonawitz et al.'s protocol (`privacy/secagg/`), so the server learns only their sum. Each call
returns its result and the protocol's `SecAggResult` (None in the clear).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from gptfl_ray.errors import RunError
from gptfl_ray.fl.aggregate import Aggregate, finalize
from gptfl_ray.privacy.secagg.driver import SecAggResult, secure_sum
from gptfl_ray.privacy.secagg.messages import SecAggAbort
from gptfl_ray.seeding import secagg_seed

if TYPE_CHECKING:
    from gptfl_ray.config import FLConfig
    from gptfl_ray.fl.executor import RoundResult

Summed = tuple[Aggregate | None, SecAggResult | None]


class Aggregator:
    """How the server sums a round: `mean` for FedAvg, `dp_sum` for DP-FedAvg's release."""

    def mean(self, res: RoundResult, round_idx: int) -> Summed:
        """The round's weighted mean update; None when nobody was heard from."""
        raise NotImplementedError

    def dp_sum(
        self, res: RoundResult, round_idx: int, *, clip: float, num_params: int, denominator: float
    ) -> tuple[np.ndarray | None, SecAggResult | None]:
        """The sum of the clients' clipped contributions [contribution, bit] (privacy/dp.py), before
        noise; None when nobody was heard from. `denominator` scales the secure sum's error bound to
        the released mean."""
        raise NotImplementedError


class PlainAggregator(Aggregator):
    """The server sums the updates in the clear: the merged partial sums (fl/aggregate.py)."""

    def mean(self, res: RoundResult, round_idx: int) -> Summed:
        return (finalize(res.partial) if res.partial.count else None), None

    def dp_sum(self, res, round_idx, *, clip, num_params, denominator):
        return (res.partial.weighted if res.partial.count else None), None


class SecureAggregator(Aggregator):
    """The server learns only the sum of the clients' uploads (Bonawitz et al. 2017).

    FedAvg: each client uploads [n_i * delta_i, n_i] / S (S: the largest client, a public bound),
    fixed point clipped to `fl.secagg_clip`, and the weighted mean follows from the sum. Per
    coordinate, the mean's error is at most (survivors * clip / (2^bits - 2)) * S / sum(n_i)
    beyond clipping; the server cannot see per-client norms, so gradient diversity is not
    observable (NaN). DP: each client uploads [contribution / C, bit], every coordinate in
    [-1, 1]. Clients that dropped mid-round have shared their keys already and are unmasked by
    the survivors. The error bounds go into `SecAggResult.extra["mean_error_bound"]`.
    """

    def __init__(self, fl: FLConfig):
        self.seed, self.clip, self.bits = fl.seed, fl.secagg_clip, fl.secagg_bits

    def _sum(self, res: RoundResult, round_idx: int, clip: float) -> SecAggResult:
        vectors = dict(sorted(res.client_vectors.items()))
        for cid in res.partial.dropped:  # vanished after ShareKeys: their slot exists, their input never comes
            vectors.setdefault(cid, np.zeros_like(next(iter(vectors.values()))))
        try:
            return secure_sum(
                vectors,
                clip=clip,
                bits=self.bits,
                dropout=set(res.partial.dropped),
                rng_seed=secagg_seed(self.seed, round_idx),
            )
        except SecAggAbort as exc:  # too few survivors this round: a run-time outcome, not bad input
            raise RunError(
                f"secure aggregation aborted in round {round_idx} ({exc}); the run stops at its last checkpoint "
                "(`resume` continues it; lower `fl.dropout` or sample more clients per round)"
            ) from None

    def mean(self, res: RoundResult, round_idx: int) -> Summed:
        if res.partial.count == 0:
            return None, None
        return self.secure_mean(res, finalize(res.partial), round_idx)

    def secure_mean(self, res: RoundResult, agg: Aggregate, round_idx: int) -> tuple[Aggregate, SecAggResult]:
        """`agg` (the plain finalize, for its loss and counts) with the securely summed mean."""
        out = self._sum(res, round_idx, self.clip)
        total = out.total
        weight = float(total[-1])
        out.extra["mean_error_bound"] = out.extra["error_bound"] / max(weight, 1e-12)
        delta = (total[:-1] / weight).astype(np.float32)
        return replace(agg, delta=delta, gradient_diversity=float("nan")), out

    def dp_sum(self, res, round_idx, *, clip, num_params, denominator):
        if not res.client_vectors:
            return None, None
        out = self._sum(res, round_idx, 1.0)
        total = out.total.astype(np.float64)
        total[:num_params] *= clip  # uploads were contribution / C, each coordinate in [-1, 1]
        out.extra["mean_error_bound"] = out.extra["error_bound"] * clip / denominator
        return total, out


def build_aggregator(fl: FLConfig) -> Aggregator:
    return SecureAggregator(fl) if fl.secure_aggregation else PlainAggregator()
