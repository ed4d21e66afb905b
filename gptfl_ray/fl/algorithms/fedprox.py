"""FedProx (Li et al., MLSys 2020): FedAvg's server step; clients minimise
f_i(w) + mu/2 ||w - w_global||^2, which limits client drift under non-IID data."""

from __future__ import annotations

from dataclasses import dataclass

from gptfl_ray.fl.algorithms.fedavg import FedAvg
from gptfl_ray.fl.algorithms.local import PlainClient


@dataclass(frozen=True)
class FedProx(FedAvg):
    prox_mu: float = 0.01
    name: str = "fedprox"

    @property
    def client(self) -> PlainClient:
        return PlainClient(prox_mu=self.prox_mu)
