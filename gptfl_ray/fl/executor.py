"""A client executor: trains a batch of virtual clients and folds them into one partial sum.

Virtual clients are data (an id and an index array), not processes (docs/architecture.md rule 6). One
executor holds one model instance and the prepared training set, and runs whichever sampled
clients it is handed. The local engine calls it in-process; the Ray engine wraps it in actors.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from gptfl_ray.fl.aggregate import PartialSum
from gptfl_ray.fl.algorithms.local import ClientHalf, PlainClient
from gptfl_ray.fl.client import ClientResult, LocalTrainConfig, client_batches, client_update, param_layout
from gptfl_ray.fl.sampler import client_drops
from gptfl_ray.privacy.dp import client_contribution
from gptfl_ray.seeding import client_seed

logger = logging.getLogger(__name__)

# `--executor auto` on CPU vectorizes small models only (the digits cnn: 21k weights, 1.6x);
# DynaFed's ConvNet (320k) ran 0.6x vectorized on one CPU thread.
AUTO_CPU_MAX_WEIGHTS = 100_000


class ClientFailure(RuntimeError):
    """A client raised during local training; names the client so a round never hangs silently."""

    def __init__(self, client_id: int, round_idx: int, error: str):
        self.client_id, self.round_idx, self.error = client_id, round_idx, error
        super().__init__(f"client {client_id} failed in round {round_idx}: {error}")

    def __reduce__(self):
        return (ClientFailure, (self.client_id, self.round_idx, self.error))


@dataclass
class RoundResult:
    partial: PartialSum
    new_states: dict[int, np.ndarray] = field(default_factory=dict)  # per-client state after the round (SCAFFOLD c_i+)
    steps: int = 0
    # Under secure aggregation each client's upload stays separate until the protocol sums it:
    # [n_i * delta_i, n_i] / secagg_scale, the only thing the server could see (masked).
    client_vectors: dict[int, np.ndarray] = field(default_factory=dict)

    def merge(self, other: RoundResult) -> RoundResult:
        self.partial.merge(other.partial)
        self.new_states.update(other.new_states)
        self.client_vectors.update(other.client_vectors)
        self.steps += other.steps
        return self


@dataclass(frozen=True)
class ExecutorSpec:
    """Everything an executor needs, picklable so a Ray actor can be built from it."""

    model_fn: Callable[[], torch.nn.Module]
    local: LocalTrainConfig
    seed: int
    client: ClientHalf = PlainClient()  # the algorithm's client half (fl/algorithms/local.py)
    dropout: float = 0.0
    # Small client models gain nothing from intra-op threads and lose badly when cores are
    # shared: one thread per executor, and more executors for more cores.
    num_threads: int = 1
    secagg_scale: float = 0.0  # > 0: keep per-client uploads for secure aggregation (see RoundResult)
    # DP-FedAvg's client half (privacy/dp.py): the weighting, and whether clients report the
    # adaptive-clipping bit; the clip itself can change every round and comes with run().
    dp_weighting: str | None = None
    dp_weight_cap: float = 32.0
    dp_with_bit: bool = False
    # How an executor trains its share: "vectorized" trains the clients together (fl/vectorized.py),
    # "sequential" one after another; "auto" vectorizes wherever the model allows it.
    executor: str = "auto"


class ClientExecutor:
    def __init__(
        self, spec: ExecutorSpec, x: np.ndarray, y: np.ndarray, parts: Sequence[np.ndarray], device: str = "cpu"
    ):
        self.spec = spec
        torch.set_num_threads(max(1, spec.num_threads))
        # numpy's BLAS (the running sums' dot products) otherwise keeps extra threads spinning
        # after each call, doubling CPU for the same rounds on a small machine.
        threadpool_limits(max(1, spec.num_threads))
        self.device = torch.device(device)
        self.model = spec.model_fn().to(self.device)
        self.layout = param_layout(self.model)
        # from_numpy keeps object-store arrays zero-copy on CPU; the copy happens on indexing.
        self.x = torch.as_tensor(np.asarray(x), dtype=torch.float32, device=self.device)
        self.y = torch.as_tensor(np.asarray(y), dtype=torch.int64, device=self.device)
        self.parts = parts
        self._inputs = (x, y)  # as given (numpy, zero-copy from the object store), for with_spec
        self.cohort = None  # the vectorized trainer, when this executor uses one
        if spec.executor != "sequential":
            self._init_cohort()

    def _init_cohort(self) -> None:
        from gptfl_ray.fl.vectorized import CohortTrainer, vectorizable

        reason = vectorizable(self.model)
        weights = sum(p.numel() for p in self.model.parameters() if p.requires_grad)
        if (
            reason is None
            and self.spec.executor == "auto"
            and self.device.type == "cpu"
            and weights > AUTO_CPU_MAX_WEIGHTS
        ):
            # On one CPU thread a wide conv net is compute-bound and vmap's grouped convolutions
            # run slower than K plain ones (benchmarks/README.md, bench_vectorized.py).
            reason = f"{weights} weights on CPU; auto vectorizes models of at most {AUTO_CPU_MAX_WEIGHTS} there"
        if reason is not None:
            log = logger.warning if self.spec.executor == "vectorized" else logger.info
            log("executor: training clients one after another (%s)", reason)
            return
        largest = max((len(self.parts[c]) for c in range(len(self.parts))), default=1)
        self.cohort = CohortTrainer(self.model, self.spec.local, self.x, self.y, width=largest)

    @property
    def mode(self) -> str:
        return "sequential" if self.cohort is None else "vectorized"

    def with_spec(self, spec: ExecutorSpec) -> ClientExecutor:
        """A new executor for `spec` on this one's training set, no copy of it (fl/pool.py)."""
        x, y = self._inputs
        return ClientExecutor(spec, x, y, self.parts, device=str(self.device))

    def run(
        self,
        global_params: np.ndarray,
        client_ids: Sequence[int],
        round_idx: int,
        broadcast=None,
        states: dict[int, np.ndarray] | None = None,
        dp_clip: float | None = None,
    ) -> RoundResult:
        """Train `client_ids` from `global_params`. `broadcast` is what the algorithm's server half
        sent with the weights, `states` each client's own state (`spec.client` says what both
        mean); both are opaque here."""
        spec = self.spec
        client, mask = spec.client, self.layout[1]
        states = states or {}
        result = RoundResult(partial=PartialSum())
        todo = []
        # Client-id order, whoever calls: the summation order is then the same in-process and in
        # a 1-actor pool (whose share is sorted), and a run's weights do not depend on the process.
        for cid in sorted(int(c) for c in client_ids):
            if client_drops(spec.seed, round_idx, cid, spec.dropout):
                result.partial.dropped.append(cid)
            else:
                todo.append(cid)
        terms = {cid: client.terms(broadcast, states.get(cid)) for cid in todo}
        for r in self._train(global_params, todo, round_idx, terms):
            cid = r.client_id
            r.extra, r.new_state = client.finish(broadcast, states.get(cid), r.delta, r.steps, spec.local.lr, mask)
            if dp_clip is not None:  # clipped and weighted here, on the client, before anything leaves it
                vec = client_contribution(
                    r.delta, r.num_samples, dp_clip, spec.dp_weighting, spec.dp_weight_cap, spec.dp_with_bit
                )
                result.partial.add(vec, 1.0, r.loss)
                if spec.secagg_scale > 0:  # every coordinate of [contribution / C, bit] lies in [-1, 1]
                    P = len(r.delta)
                    result.client_vectors[cid] = np.concatenate([vec[:P] / dp_clip, vec[P:]])
            else:
                result.partial.add(r.delta, r.num_samples, r.loss, r.extra)
            if spec.secagg_scale > 0 and dp_clip is None:
                w = r.num_samples / spec.secagg_scale
                result.client_vectors[cid] = np.concatenate([w * r.delta, [w]]).astype(np.float64)
            result.steps += r.steps
            if r.new_state is not None:
                result.new_states[cid] = r.new_state
        return result

    def _train(self, global_params, todo, round_idx, terms) -> list[ClientResult]:
        if self.cohort is None or not todo:
            return [self._train_one(global_params, cid, round_idx, terms[cid]) for cid in todo]
        from gptfl_ray.fl.vectorized import CohortClient

        spec = self.spec
        cohort = []
        for cid in todo:
            part = torch.as_tensor(np.asarray(self.parts[cid]), dtype=torch.int64)
            local = client_batches(len(part), spec.local, client_seed(spec.seed, round_idx, cid))
            cohort.append(CohortClient(cid, [part[b] for b in local], len(part), terms[cid].drift))
        try:
            # one algorithm per run: every client's proximal weight is the same
            return self.cohort.train(global_params, cohort, prox_mu=terms[todo[0]].prox_mu)
        except Exception as exc:
            # Re-run one by one: a client's own error then names the client; anything else is
            # the cohort trainer's, and this executor stays sequential from here on.
            logger.warning(
                "executor: vectorized round %d failed (%s: %s); training clients one after another",
                round_idx,
                type(exc).__name__,
                exc,
            )
            self.cohort = None
            return [self._train_one(global_params, cid, round_idx, terms[cid]) for cid in todo]

    def _train_one(self, global_params, cid, round_idx, terms) -> ClientResult:
        spec = self.spec
        idx = torch.as_tensor(self.parts[cid], device=self.device)
        try:
            return client_update(
                self.model,
                global_params,
                self.x[idx],
                self.y[idx],
                spec.local,
                client_seed(spec.seed, round_idx, cid),
                client_id=cid,
                terms=terms,
                layout=self.layout,
            )
        except Exception as exc:  # re-raised with the client id attached
            raise ClientFailure(cid, round_idx, f"{type(exc).__name__}: {exc}") from exc


@contextmanager
def driver_threads(n: int | None) -> Iterator[None]:
    """This process's torch and BLAS threads limited to `n` for the block (None: left as they are).

    The round loop's own torch work (held-out evaluation, server steps) runs in the driver beside
    the executor actors on its node; more threads than the cores the actors left free contend
    with them, and idle OpenMP threads keep spinning for a while after every parallel region."""
    if n is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        with threadpool_limits(n):
            yield
    finally:
        torch.set_num_threads(before)


class LocalEngine:
    """Runs every sampled client in this process, one after another (debugging, tests)."""

    name = "local"

    def __init__(self, spec: ExecutorSpec, x, y, parts, device: str = "cpu"):
        self.executor = ClientExecutor(spec, x, y, parts, device=device)

    @property
    def spec(self) -> ExecutorSpec:
        return self.executor.spec

    def configure(self, spec: ExecutorSpec) -> None:
        """A new executor spec on the same training set (fl/pool.py)."""
        self.executor = self.executor.with_spec(spec)

    def load(self, spec: ExecutorSpec, x, y, parts) -> None:
        """A spec and another training set (fl/pool.py)."""
        self.executor = ClientExecutor(spec, x, y, parts, device=str(self.executor.device))

    def run_round(self, global_params, client_ids, round_idx, broadcast=None, states=None, dp_clip=None) -> RoundResult:
        return self.executor.run(global_params, client_ids, round_idx, broadcast, states, dp_clip)

    driver_threads = None  # the clients run in this process, on the executor's own thread count

    def describe(self) -> str:
        return f"local (in-process, {self.executor.mode} clients)"

    def close(self) -> None:
        pass
