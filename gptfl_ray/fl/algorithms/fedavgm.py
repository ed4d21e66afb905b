"""FedAvgM (Hsu et al. 2019): server momentum on the averaged delta.
m <- beta * m + delta;  x <- x + eta * m."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gptfl_ray.fl.aggregate import Aggregate
from gptfl_ray.fl.algorithms.base import ServerState
from gptfl_ray.fl.algorithms.local import PlainClient


@dataclass(frozen=True)
class FedAvgM:
    server_lr: float = 1.0
    momentum: float = 0.9
    name: str = "fedavgm"

    @property
    def client(self) -> PlainClient:
        return PlainClient()

    def init(self, params: np.ndarray) -> ServerState:
        p = params.astype(np.float32)
        return ServerState(params=p, slots={"m": np.zeros_like(p)})

    def server_update(self, state: ServerState, agg: Aggregate) -> ServerState:
        m = np.float32(self.momentum) * state.slots["m"] + agg.delta
        params = state.params + np.float32(self.server_lr) * m
        return state.with_(params=params.astype(np.float32), round=state.round + 1, slots={"m": m.astype(np.float32)})
