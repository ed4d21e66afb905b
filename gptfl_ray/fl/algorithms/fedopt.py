"""FedAdam, FedYogi, FedAdagrad: adaptive server optimizers of Reddi et al., ICLR 2021
("Adaptive Federated Optimization", Algorithm 2). The averaged client delta plays the role of
a pseudo-gradient:

    m <- b1 m + (1 - b1) d
    v <- v + d^2                              (FedAdagrad)
    v <- v - (1 - b2) d^2 sign(v - d^2)       (FedYogi)
    v <- b2 v + (1 - b2) d^2                  (FedAdam)
    x <- x + eta m / (sqrt(v) + tau)

v starts at tau^2, as the paper's v_{-1} >= tau^2 asks; tau controls adaptivity.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gptfl_ray.fl.aggregate import Aggregate
from gptfl_ray.fl.algorithms.base import ServerState
from gptfl_ray.fl.algorithms.local import PlainClient


@dataclass(frozen=True)
class FedOpt:
    variant: str = "adam"  # adam | yogi | adagrad
    server_lr: float = 0.01
    beta1: float = 0.9
    beta2: float = 0.99
    tau: float = 1e-3

    @property
    def client(self) -> PlainClient:
        return PlainClient()

    @property
    def name(self) -> str:
        return f"fed{self.variant}"

    def init(self, params: np.ndarray) -> ServerState:
        p = params.astype(np.float32)
        return ServerState(
            params=p,
            slots={"m": np.zeros_like(p), "v": np.full_like(p, np.float32(self.tau) ** 2)},
        )

    def server_update(self, state: ServerState, agg: Aggregate) -> ServerState:
        d = agg.delta.astype(np.float32)
        b1, b2 = np.float32(self.beta1), np.float32(self.beta2)
        m = b1 * state.slots["m"] + (1 - b1) * d
        v = state.slots["v"]
        d2 = d * d
        if self.variant == "adagrad":
            v = v + d2
        elif self.variant == "yogi":
            v = v - (1 - b2) * d2 * np.sign(v - d2)
        elif self.variant == "adam":
            v = b2 * v + (1 - b2) * d2
        else:
            raise ValueError(f"unknown FedOpt variant {self.variant!r}")
        params = state.params + np.float32(self.server_lr) * m / (np.sqrt(v) + np.float32(self.tau))
        return state.with_(
            params=params.astype(np.float32),
            round=state.round + 1,
            slots={"m": m.astype(np.float32), "v": v.astype(np.float32)},
        )
