"""The client half of an FL algorithm: what it adds to local training and keeps per client.

The engine and both executors (sequential `fl/client.py`, vectorized `fl/vectorized.py`) know
nothing of any one algorithm. Each round they carry an opaque `broadcast` (what the server sends
besides the weights) and each sampled client's own state, and call the same three hooks:

- `terms(broadcast, state)`: what the client adds to every local gradient of its trainable
  weights, `g += prox_mu * (w - w_global) + drift` (FedProx's proximal pull, Li et al. 2020;
  SCAFFOLD's correction c - c_i, Karimireddy et al. 2020);
- after training, `finish(broadcast, state, delta, steps, lr, mask)`: the client's extra upload
  (averaged uniformly over the round's clients into `Aggregate.extra_mean`) and its new state;
- `broadcast(server_state)` on the server, once per round.

Per-client state is one flat float32 vector of the model's size (kept on disk by
`fl/state_store.py`) or none.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from gptfl_ray.fl.algorithms.base import ServerState


@dataclass(frozen=True)
class ClientTerms:
    """One client's additions to its local gradient this round."""

    prox_mu: float = 0.0  # pull towards the round's global weights
    drift: np.ndarray | None = None  # flat float32, added to every gradient (trainable entries only)


class ClientHalf(Protocol):
    keeps_state: bool  # a flat per-client vector carried between the client's visits
    wire_copies: int  # model-sized vectors exchanged each way per client (bytes accounting)

    def broadcast(self, server: ServerState) -> Any: ...

    def terms(self, broadcast: Any, state: np.ndarray | None) -> ClientTerms: ...

    def finish(
        self, broadcast: Any, state: np.ndarray | None, delta: np.ndarray, steps: int, lr: float, mask: np.ndarray
    ) -> tuple[np.ndarray | None, np.ndarray | None]: ...


@dataclass(frozen=True)
class PlainClient:
    """Local SGD on the client's own loss, optionally with FedProx's proximal term."""

    prox_mu: float = 0.0
    keeps_state: bool = False
    wire_copies: int = 1

    def broadcast(self, server: ServerState) -> None:
        return None

    def terms(self, broadcast: Any, state: np.ndarray | None) -> ClientTerms:
        return ClientTerms(prox_mu=self.prox_mu)

    def finish(self, broadcast, state, delta, steps, lr, mask) -> tuple[None, None]:
        return None, None


@dataclass(frozen=True)
class ScaffoldClient:
    """SCAFFOLD's client (Algorithm 1, option II): gradients corrected by c - c_i, and
    c_i+ = c_i - c + (x - y_i) / (K lr), uploading Delta c_i = c_i+ - c_i beside the delta."""

    keeps_state: bool = True
    wire_copies: int = 2  # x and c down, Delta y_i and Delta c_i up

    def broadcast(self, server: ServerState) -> np.ndarray:
        return np.asarray(server.slots["c"], dtype=np.float32)

    def terms(self, broadcast: np.ndarray, state: np.ndarray) -> ClientTerms:
        return ClientTerms(drift=np.asarray(broadcast - state, dtype=np.float32))

    def finish(self, broadcast, state, delta, steps, lr, mask) -> tuple[np.ndarray, np.ndarray]:
        # x - y_i = -delta; trainable entries only (BatchNorm statistics carry no control)
        new_c = ((state - broadcast - delta / (max(steps, 1) * lr)) * mask).astype(np.float32)
        return (new_c - state).astype(np.float32), new_c
