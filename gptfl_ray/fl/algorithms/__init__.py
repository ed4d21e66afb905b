"""FL algorithms by name, one small file each (docs/architecture.md rule 1)."""

from __future__ import annotations

from gptfl_ray.errors import ConfigError
from gptfl_ray.fl.algorithms.base import Algorithm, ServerState
from gptfl_ray.fl.algorithms.fedavg import FedAvg
from gptfl_ray.fl.algorithms.fedavgm import FedAvgM
from gptfl_ray.fl.algorithms.fedopt import FedOpt
from gptfl_ray.fl.algorithms.fedprox import FedProx
from gptfl_ray.fl.algorithms.scaffold import Scaffold

STRATEGIES = ("fedavg", "fedprox", "scaffold", "fedadam", "fedyogi", "fedadagrad", "fedavgm")


def build_algorithm(
    name: str,
    *,
    num_clients: int,
    server_lr: float | None = None,
    prox_mu: float = 0.01,
    server_momentum: float = 0.9,
    beta1: float = 0.9,
    beta2: float = 0.99,
    tau: float = 1e-3,
) -> Algorithm:
    """`server_lr=None` takes each family's usual default (1.0 for averaging, 0.01 for FedOpt)."""
    lr = 1.0 if server_lr is None else server_lr
    if name == "fedavg":
        return FedAvg(server_lr=lr)
    if name == "fedprox":
        return FedProx(server_lr=lr, prox_mu=prox_mu)
    if name == "fedavgm":
        return FedAvgM(server_lr=lr, momentum=server_momentum)
    if name == "scaffold":
        return Scaffold(num_clients=num_clients, server_lr=lr)
    if name in ("fedadam", "fedyogi", "fedadagrad"):
        return FedOpt(
            variant=name[3:], server_lr=0.01 if server_lr is None else server_lr, beta1=beta1, beta2=beta2, tau=tau
        )
    raise ConfigError("fl.strategy", f"unknown strategy {name!r}; choose from {', '.join(STRATEGIES)}")


__all__ = [
    "Algorithm",
    "ServerState",
    "STRATEGIES",
    "build_algorithm",
    "FedAvg",
    "FedAvgM",
    "FedOpt",
    "FedProx",
    "Scaffold",
]
