"""Aggregation as a running weighted sum (docs/architecture.md rules 2 and 3).

Pure numpy, no Ray or transport types. Executors fold each client's update into a
`PartialSum` as soon as it is computed and return one partial per round; the server merges
partials. No one ever holds every client's model.

Besides the weighted sum FedAvg needs, a partial carries what the paper's gradient diversity
(GPT-FL Eq. 1, after Yin et al. 2018) needs: the unweighted sum of updates and the sum of their
squared norms.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class PartialSum:
    weighted: np.ndarray | None = None  # sum_i w_i * delta_i (float64 for order-robust sums)
    plain: np.ndarray | None = None  # sum_i delta_i (gradient diversity)
    extra: np.ndarray | None = None  # sum_i of the algorithm's extra uploads (SCAFFOLD: Delta c_i)
    weight: float = 0.0
    count: int = 0
    sq_norms: float = 0.0
    loss_sum: float = 0.0  # sum_i w_i * train_loss_i
    dropped: list[int] = field(default_factory=list)

    def add(self, delta: np.ndarray, weight: float, loss: float = 0.0, extra: np.ndarray | None = None) -> None:
        d = np.asarray(delta, dtype=np.float64)
        if self.weighted is None:
            self.weighted = weight * d
            self.plain = d.copy()
        else:
            self.weighted += weight * d
            self.plain += d
        if extra is not None:
            e = np.asarray(extra, dtype=np.float64)
            self.extra = e.copy() if self.extra is None else self.extra + e
        self.weight += float(weight)
        self.count += 1
        self.sq_norms += float(d @ d)
        self.loss_sum += float(weight) * float(loss)

    def merge(self, other: PartialSum) -> PartialSum:
        if other.count:
            if self.weighted is None:
                self.weighted = other.weighted.copy()
                self.plain = other.plain.copy()
            else:
                self.weighted += other.weighted
                self.plain += other.plain
            if other.extra is not None:
                self.extra = other.extra.copy() if self.extra is None else self.extra + other.extra
        self.weight += other.weight
        self.count += other.count
        self.sq_norms += other.sq_norms
        self.loss_sum += other.loss_sum
        self.dropped = sorted(self.dropped + other.dropped)
        return self


@dataclass(frozen=True)
class Aggregate:
    """What a server step sees: the round's mean update and its companions."""

    delta: np.ndarray  # weighted mean of client updates (float32)
    num_clients: int
    total_weight: float
    plain_delta: np.ndarray | None = None  # unweighted mean of client updates (SCAFFOLD's server step)
    extra_mean: np.ndarray | None = None  # unweighted mean of the extra uploads (SCAFFOLD: Delta c)
    gradient_diversity: float = float("nan")
    train_loss: float = float("nan")


def gradient_diversity(sq_norms: float, plain_sum: np.ndarray) -> float:
    """GPT-FL Eq. 1: sum_i ||Delta_i||^2 / ||sum_i Delta_i||^2."""
    denom = float(np.dot(plain_sum, plain_sum))
    return sq_norms / denom if denom > 0 else float("inf")


def finalize(partial: PartialSum) -> Aggregate:
    if partial.count == 0 or partial.weight <= 0:
        raise ValueError("no client update reached the server this round")
    delta = (partial.weighted / partial.weight).astype(np.float32)
    extra = None if partial.extra is None else (partial.extra / partial.count).astype(np.float32)
    return Aggregate(
        delta=delta,
        num_clients=partial.count,
        total_weight=partial.weight,
        plain_delta=(partial.plain / partial.count).astype(np.float32),
        extra_mean=extra,
        gradient_diversity=gradient_diversity(partial.sq_norms, partial.plain),
        train_loss=partial.loss_sum / partial.weight,
    )


def aggregate(pairs) -> np.ndarray:
    """Weighted mean of (update, weight) pairs, e.g. FedAvg's sample-count weighting."""
    p = PartialSum()
    for delta, weight in pairs:
        p.add(delta, weight)
    return finalize(p).delta
