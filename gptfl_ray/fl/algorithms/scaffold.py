"""SCAFFOLD (Karimireddy et al., ICML 2020), Algorithm 1 with option II control variates.

Clients correct every local gradient by (c - c_i) and return, with their model delta
Delta y_i = y_i - x, the change of their own control variate (`ScaffoldClient`, fl/algorithms/local.py):
    c_i+ = c_i - c + (x - y_i) / (K * lr_local),   Delta c_i = c_i+ - c_i
The server (Algorithm 1, lines 16-17) averages both uniformly over the sampled clients S:
    x <- x + lr_g * (1/|S|) sum_S Delta y_i,   c <- c + (1/N) sum_S Delta c_i
Uniform, not by sample count: c tracks (1/N) sum_i c_i, the gradient of the uniform mean of the
client objectives, and a sample-weighted model step would follow a different objective than the
one the correction steers every client towards.

The local learning rate must be small against 1/(K L): c_i+ is the mean gradient along the
client's own path, which -c_i pushes, so a too-large step lets one client's c_i grow on every
visit and spread through c (digits from the GPT-FL start: NaN by round 16 at lr 0.1, stable at
0.05; benchmarks/README.md, "GPT-FL + SCAFFOLD").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gptfl_ray.fl.aggregate import Aggregate
from gptfl_ray.fl.algorithms.base import ServerState
from gptfl_ray.fl.algorithms.local import ScaffoldClient


@dataclass(frozen=True)
class Scaffold:
    num_clients: int = 1  # N, the population size
    server_lr: float = 1.0
    name: str = "scaffold"

    @property
    def client(self) -> ScaffoldClient:
        return ScaffoldClient()

    def init(self, params: np.ndarray) -> ServerState:
        p = params.astype(np.float32)
        return ServerState(params=p, slots={"c": np.zeros_like(p)})

    def server_update(self, state: ServerState, agg: Aggregate) -> ServerState:
        if agg.extra_mean is None or agg.plain_delta is None:
            raise ValueError("SCAFFOLD needs the unweighted mean update and control-variate updates from the clients")
        params = state.params + np.float32(self.server_lr) * agg.plain_delta
        # agg.extra_mean is the mean over S; (|S|/N) * mean = (1/N) * sum over S
        frac = np.float32(agg.num_clients / self.num_clients)
        c = state.slots["c"] + frac * agg.extra_mean
        return state.with_(params=params.astype(np.float32), round=state.round + 1, slots={"c": c.astype(np.float32)})
