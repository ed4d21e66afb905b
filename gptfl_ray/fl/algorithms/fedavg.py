"""FedAvg (McMahan et al., AISTATS 2017): x <- x + eta * weighted-mean(client deltas).

The mean is weighted by client sample counts (done in aggregation); eta defaults to 1, which
is exactly averaging the client models.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gptfl_ray.fl.aggregate import Aggregate
from gptfl_ray.fl.algorithms.base import ServerState
from gptfl_ray.fl.algorithms.local import PlainClient


@dataclass(frozen=True)
class FedAvg:
    server_lr: float = 1.0
    name: str = "fedavg"

    @property
    def client(self) -> PlainClient:
        return PlainClient()

    def init(self, params: np.ndarray) -> ServerState:
        return ServerState(params=params.astype(np.float32))

    def server_update(self, state: ServerState, agg: Aggregate) -> ServerState:
        params = state.params + np.float32(self.server_lr) * agg.delta
        return state.with_(params=params.astype(np.float32), round=state.round + 1)
