"""The shape every FL algorithm takes (docs/architecture.md rule 1, after fedjax's algorithms/fed_avg.py).

An algorithm is a frozen server state plus a pure `server_update(state, aggregate) -> state`,
and a few flags that tell the client what to add to its local objective.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Protocol

import numpy as np

from gptfl_ray.fl.aggregate import Aggregate


@dataclass(frozen=True)
class ServerState:
    params: np.ndarray  # flat float32 global model
    round: int = 0  # rounds completed
    slots: dict[str, np.ndarray] = field(default_factory=dict)  # optimizer moments, control variate

    def with_(self, **kw) -> ServerState:
        return replace(self, **kw)


class Algorithm(Protocol):
    name: str
    prox_mu: float  # FedProx proximal weight the client adds (0: none)
    uses_control: bool  # SCAFFOLD: clients keep control variates

    def init(self, params: np.ndarray) -> ServerState: ...

    def server_update(self, state: ServerState, agg: Aggregate) -> ServerState: ...
