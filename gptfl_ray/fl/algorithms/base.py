"""The shape every FL algorithm takes (docs/architecture.md rule 1, after fedjax's algorithms/fed_avg.py).

An algorithm is a frozen server state plus a pure `server_update(state, aggregate) -> state`,
and its client half (`client`, fl/algorithms/local.py): what a client adds to local training
and keeps between visits.
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

    @property
    def client(self): ...  # the client half, a `ClientHalf` (fl/algorithms/local.py)

    def init(self, params: np.ndarray) -> ServerState: ...

    def server_update(self, state: ServerState, agg: Aggregate) -> ServerState: ...
