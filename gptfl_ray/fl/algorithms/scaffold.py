"""SCAFFOLD (Karimireddy et al., ICML 2020), option II control variates.

Clients correct every local gradient by (c - c_i) and return, with their model delta, the
change of their own control variate (computed in `fl/client.py`):
    c_i+ = c_i - c - delta_i / (K * lr_local)
The server moves x by the mean delta and c by |S|/N times the mean control change.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gptfl_ray.fl.aggregate import Aggregate
from gptfl_ray.fl.algorithms.base import ServerState


@dataclass(frozen=True)
class Scaffold:
    num_clients: int = 1  # N, the population size
    server_lr: float = 1.0
    name: str = "scaffold"
    prox_mu: float = 0.0
    uses_control: bool = True

    def init(self, params: np.ndarray) -> ServerState:
        p = params.astype(np.float32)
        return ServerState(params=p, slots={"c": np.zeros_like(p)})

    def server_update(self, state: ServerState, agg: Aggregate) -> ServerState:
        if agg.control_delta is None:
            raise ValueError("SCAFFOLD needs control-variate updates from the clients")
        params = state.params + np.float32(self.server_lr) * agg.delta
        frac = np.float32(agg.num_clients / self.num_clients)
        c = state.slots["c"] + frac * agg.control_delta
        return state.with_(params=params.astype(np.float32), round=state.round + 1, slots={"c": c.astype(np.float32)})
