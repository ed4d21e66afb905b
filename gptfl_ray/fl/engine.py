"""The Ray backend (`--backend ray`): a pool of executor actors runs each round's sampled clients.

The only Ray file in `fl/` (docs/architecture.md rule 5). Design, and where each idea comes from:

- Virtual clients are data, not processes (docs/architecture.md rule 6). A fixed pool of actors, each one
  `ClientExecutor` holding a model and the training set, runs whichever client ids it is handed;
  10,000 clients cost 10,000 index ranges, not 10,000 processes. This is Flower's simulation
  engine (`flwr.simulation.ray_transport.ray_actor.VirtualClientEngineActorPool`), which sizes
  the pool per node with `pool_size_from_resources`: floor(node CPUs / client CPUs), and the same
  for GPUs when clients ask for them, min over both, summed over alive nodes.
- Each actor folds its clients into one running weighted sum and returns only that partial, as
  pfl-research's workers do with their worker-local aggregates (docs/architecture.md rule 3); the driver merges
  the partials in actor-index order, so a run is bit-for-bit repeatable for a given pool size and
  equal within float tolerance across pool sizes (per-client seeds, docs/architecture.md rule 4).
  A 1-actor pool equals the in-process engine bit for bit. Across pool sizes the cohorts differ:
  an mlp's clients still train bit-identically (fixed step width, fl/vectorized.py), but vmap's
  grouped convolutions go through a oneDNN kernel chosen by the cohort size, so a conv net's
  clients differ in the last bits (bit-identical with oneDNN off, at 27% of the cnn's
  vectorized speed), and the float64 partial sums round by grouping.
- Objects travel once (Ray docs, "Anti-pattern: passing the same large argument by value
  repeatedly"): the training set is `ray.put` once per engine and read zero-copy from the node's
  object store (numpy arrays deserialize as read-only views of shared memory); the global
  weights are `ray.put` once per round and every actor's task takes the same reference.
- Faults (Ray docs, "Actor fault tolerance"): an actor that dies (`RayActorError`, of which
  `ActorDiedError` is a subclass) is replaced by a fresh actor on the same node and its share of
  clients re-runs; the result is unchanged because a client's computation depends only on
  (seed, round, client id). A client that raises comes back wrapped in `RayTaskError`; it is
  unwrapped and re-raised as the executor's `ClientFailure` naming the client, instead of the
  silent hang Flower users report.
- GPUs: Ray's fractional `num_gpus` only schedules, it does not limit memory, so an actor that
  gets a GPU caps its own share with `torch.cuda.set_per_process_memory_fraction`. An actor that
  Ray gave a (logical) GPU on a machine where torch sees none falls back to the CPU.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import ray
from ray.exceptions import GetTimeoutError, RayActorError, RayTaskError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from gptfl_ray.config import EngineConfig
from gptfl_ray.errors import ConfigError
from gptfl_ray.fl.aggregate import PartialSum
from gptfl_ray.fl.executor import ClientExecutor, ClientFailure, ExecutorSpec, RoundResult
from gptfl_ray.ray_runtime import ensure_ray, stop_ray

logger = logging.getLogger(__name__)

_EPS = 1e-9  # 0.1 + 0.2 style float noise must not cost an actor slot


class PackedParts(Sequence):
    """Every client's sample indices as one concatenated array plus offsets.

    Two numpy arrays serialize out-of-band and deserialize zero-copy; a list of 10,000 small
    arrays would be 10,000 pickled objects in every actor. `parts[c]` is a view, as before.
    """

    def __init__(self, flat: np.ndarray, offsets: np.ndarray):
        self.flat, self.offsets = flat, offsets

    @classmethod
    def pack(cls, parts: Sequence[np.ndarray]) -> PackedParts:
        if isinstance(parts, PackedParts):
            return parts
        sizes = np.fromiter((len(p) for p in parts), dtype=np.int64, count=len(parts))
        offsets = np.zeros(len(parts) + 1, dtype=np.int64)
        np.cumsum(sizes, out=offsets[1:])
        flat = np.concatenate([np.asarray(p, dtype=np.int64) for p in parts]) if len(parts) else np.zeros(0, np.int64)
        return cls(flat, offsets)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, cid):
        cid = int(cid)
        if not 0 <= cid < len(self):
            raise IndexError(f"client {cid} out of range (population {len(self)})")
        return self.flat[self.offsets[cid] : self.offsets[cid + 1]]


def pool_size_from_resources(nodes: list[dict], client_cpus: float, client_gpus: float = 0.0) -> dict[str, int]:
    """Actors each alive node can host: Flower's `pool_size_from_resources`, per node.

    `nodes` is `ray.nodes()` (dicts with "NodeID", "Alive", "Resources"). Per node:
    floor(CPU / client_cpus) and, when clients take GPUs, also floor(GPU / client_gpus); the
    smaller wins. Nodes that can host none are left out.
    """
    out: dict[str, int] = {}
    for node in nodes:
        if not node.get("Alive", False):
            continue
        res = node.get("Resources", {})
        n = math.floor(res.get("CPU", 0.0) / client_cpus + _EPS)
        if client_gpus > 0:
            n = min(n, math.floor(res.get("GPU", 0.0) / client_gpus + _EPS))
        if n > 0:
            out[node["NodeID"]] = n
    return out


def balanced_shares(ids: np.ndarray, costs: np.ndarray, k: int) -> list[np.ndarray]:
    """Deal clients to k actors by cost: largest first, each to the least-loaded actor (LPT,
    Graham 1969; ties to the lower client id and actor index, so shares are deterministic).
    Each share is sorted by client id, which fixes its summation order."""
    shares: list[list[int]] = [[] for _ in range(k)]
    loads = [0.0] * k
    for i in sorted(range(len(ids)), key=lambda i: (-float(costs[i]), int(ids[i]))):
        j = min(range(k), key=lambda a: (loads[a], a))
        shares[j].append(int(ids[i]))
        loads[j] += float(costs[i])
    return [np.array(sorted(s), dtype=np.int64) for s in shares]


def _placement(capacity: dict[str, int], num_actors: int | None) -> list[str]:
    """One node id per actor, dealt round-robin over nodes so a small pool still spreads out."""
    slots: list[str] = []
    left = dict(capacity)
    while any(left.values()):
        for node_id in capacity:
            if left[node_id]:
                slots.append(node_id)
                left[node_id] -= 1
    return slots if num_actors is None else slots[:num_actors]


def _resources_text(cpus: float, gpus: float) -> str:
    fmt = lambda v: f"{v:g}"  # noqa: E731
    return f"{fmt(cpus)} CPU" + (f" + {fmt(gpus)} GPU" if gpus > 0 else "")


class ExecutorActor:
    """One pool slot: a `ClientExecutor` in its own worker process (wrapped by `ray.remote`).

    Started blank: the process imports torch and the executor and picks its device while the
    driver is still loading data; `load` then hands it a spec and a training set (again for
    another training set, fl/pool.py)."""

    def __init__(self, client_gpus: float):
        import torch

        # Object-store arrays are read-only; torch warns once about that, but the executor only
        # ever reads them (indexing copies).
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        self.note = ""
        self.device = "cpu"
        self.gpu_ids = [str(g) for g in ray.get_gpu_ids()]
        if self.gpu_ids:
            if torch.cuda.is_available():
                self.device = "cuda"  # Ray set CUDA_VISIBLE_DEVICES, so this is the assigned GPU
                if 0 < client_gpus < 1:
                    # Ray's fractions only schedule; without this one actor may take the card.
                    torch.cuda.set_per_process_memory_fraction(float(client_gpus), 0)
            else:
                # Reported to the driver, which logs it once for the pool.
                self.note = f"Ray assigned GPU {','.join(self.gpu_ids)} but torch sees no CUDA device; running on CPU"
        self.executor = None
        self.zero_copy = False

    def load(self, spec: ExecutorSpec, data: tuple[np.ndarray, np.ndarray, PackedParts]) -> dict[str, Any]:
        """A spec and a training set (read zero-copy from the object store); returns `info()`."""
        x, y, parts = data
        self.zero_copy = not x.flags.writeable  # a read-only view of the object store, not a copy
        self.executor = None  # the previous training set's executor goes before the new one is built
        self.executor = ClientExecutor(spec, x, y, parts, device=self.device)
        return self.info()

    def configure(self, spec: ExecutorSpec) -> str:
        """A new executor spec on the data this actor already holds (fl/pool.py)."""
        self.executor = self.executor.with_spec(spec)
        return self.executor.mode

    def info(self) -> dict[str, Any]:
        ctx = ray.get_runtime_context()
        return {
            "pid": os.getpid(),
            "node_id": ctx.get_node_id(),
            "gpu_ids": self.gpu_ids,
            "device": str(self.executor.device) if self.executor else self.device,
            "executor": self.executor.mode if self.executor else None,
            "note": self.note,
            "zero_copy": self.zero_copy,
        }

    def run(self, global_params, client_ids, round_idx, broadcast=None, states=None, dp_clip=None) -> RoundResult:
        return self.executor.run(global_params, client_ids, round_idx, broadcast, states, dp_clip)


_RemoteExecutor = ray.remote(ExecutorActor)


class RayEngine:
    """`run_round(global_params, client_ids, round_idx, broadcast, states) -> RoundResult`
    on a pool of executor actors; same interface as `LocalEngine`."""

    name = "ray"

    def __init__(
        self,
        spec: ExecutorSpec | None,
        x: np.ndarray | None = None,
        y: np.ndarray | None = None,
        parts: Sequence[np.ndarray] | None = None,
        cfg: EngineConfig | None = None,
        *,
        max_replacements: int = 3,
        ready_timeout_s: float = 600.0,
    ):
        """Starts the actors; with a spec, also loads the training set and waits until every
        actor is ready. `spec=None` only starts them (`EnginePool.prestart`): their processes
        start and import while the caller goes on, and `load` follows."""
        cfg = cfg or EngineConfig(backend="ray")
        self.cfg = cfg
        self.max_replacements = max_replacements
        self.ready_timeout_s = ready_timeout_s
        self.replacements = 0  # actors replaced after dying, over the engine's life
        self._actors: list = []
        self._closed = False
        self._given = self._spec = self._data_ref = None
        self.actor_info: list[dict] = []
        # Joins --address, or starts a private Ray on 127.0.0.1; reuses one already running.
        self._started_ray = ensure_ray(cfg.address)
        try:
            self._start_actors()
            if spec is not None:
                self.load(spec, x, y, parts)
        except BaseException:
            self.close()
            raise

    def _start_actors(self) -> None:
        cfg = self.cfg
        capacity = pool_size_from_resources(ray.nodes(), cfg.client_cpus, cfg.client_gpus)
        total = sum(capacity.values())
        need = _resources_text(cfg.client_cpus, cfg.client_gpus)
        if total == 0:
            option = "engine.client_gpus" if cfg.client_gpus > 0 else "engine.client_cpus"
            raise ConfigError(
                option, f"no Ray node has room for one client actor of {need} (cluster: {ray.cluster_resources()})"
            )
        if cfg.num_actors is not None and cfg.num_actors > total:
            # Actors beyond capacity would wait for resources forever: fail now, naming why.
            raise ConfigError(
                "engine.num_actors", f"{cfg.num_actors} actors of {need} do not fit; the cluster holds {total}"
            )
        self._slots = _placement(capacity, cfg.num_actors)
        self._actors = [self._new_actor(node_id) for node_id in self._slots]  # not waited for here

    def load(self, spec: ExecutorSpec, x: np.ndarray, y: np.ndarray, parts: Sequence[np.ndarray]) -> None:
        """A spec and a training set for every actor (again for another training set: the
        processes stay); returns when all are ready."""
        self._given, self._spec = spec, self._actor_spec(spec)
        # One copy of the training set per node (object store), read zero-copy by every actor.
        packed = PackedParts.pack(parts)
        self._data_ref = ray.put((np.ascontiguousarray(x), np.ascontiguousarray(y), packed))
        self._sizes = np.diff(packed.offsets)  # samples per client
        try:
            self.actor_info = ray.get(
                [a.load.remote(self._spec, self._data_ref) for a in self._actors], timeout=self.ready_timeout_s
            )
        except GetTimeoutError:
            need = _resources_text(self.cfg.client_cpus, self.cfg.client_gpus)
            raise RuntimeError(
                f"{len(self._actors)} executor actors of {need} did not start in time; is the cluster busy?"
            ) from None
        for note in sorted({info["note"] for info in self.actor_info if info["note"]}):
            n = sum(info["note"] == note for info in self.actor_info)
            logger.warning("%d of %d executor actors: %s", n, len(self.actor_info), note)

    def _new_actor(self, node_id: str):
        return _RemoteExecutor.options(
            num_cpus=self.cfg.client_cpus,
            num_gpus=self.cfg.client_gpus,
            max_restarts=0,  # the engine replaces dead actors itself, so it knows what to re-run
            # Soft: follow the per-node sizing, but a replacement may land elsewhere if the
            # node is gone.
            scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=node_id, soft=True),
        ).remote(self.cfg.client_gpus)

    def _replace(self, i: int) -> None:
        try:
            ray.kill(self._actors[i], no_restart=True)
        except Exception:  # already gone
            pass
        self._actors[i] = self._new_actor(self._slots[i])
        self._actors[i].load.remote(self._spec, self._data_ref)  # runs before any task sent after it
        self.replacements += 1

    def _actor_spec(self, spec: ExecutorSpec) -> ExecutorSpec:
        # Small client models gain nothing from more intra-op threads than the CPUs Ray reserved.
        return dataclasses.replace(spec, num_threads=max(1, int(self.cfg.client_cpus)))

    @property
    def spec(self) -> ExecutorSpec:
        """The spec as the caller gave it; the actors run it with their thread count."""
        return self._given

    def configure(self, spec: ExecutorSpec) -> None:
        """Re-configure every actor in place for a new executor spec (model, local training, seed,
        strategy): the processes and the training set in the object store stay (fl/pool.py)."""
        actor_spec = self._actor_spec(spec)
        modes = ray.get([a.configure.remote(actor_spec) for a in self._actors], timeout=self.ready_timeout_s)
        self._given, self._spec = spec, actor_spec
        for info, mode in zip(self.actor_info, modes):
            info["executor"] = mode

    @property
    def num_actors(self) -> int:
        return len(self._actors)

    def run_round(self, global_params, client_ids, round_idx, broadcast=None, states=None, dp_clip=None) -> RoundResult:
        ids = np.asarray(client_ids, dtype=np.int64)
        # Shares balanced by cost, not count; empty shares are not sent.
        # What a client costs its actor: samples x local epochs (the SGD steps it will take).
        costs = self._sizes[ids] * max(1, self._spec.local.epochs)
        shards = balanced_shares(ids, costs, len(self._actors))
        params_ref = ray.put(np.asarray(global_params, dtype=np.float32))  # once per round
        b_ref = None if broadcast is None else ray.put(broadcast)  # the algorithm's, opaque here

        def submit(i: int):
            share = None if states is None else {int(c): states[int(c)] for c in shards[i] if int(c) in states}
            return self._actors[i].run.remote(params_ref, shards[i], round_idx, b_ref, share, dp_clip)

        pending = {submit(i): i for i in range(len(shards)) if len(shards[i])}
        deaths = [0] * len(shards)
        results: list[RoundResult | None] = [None] * len(shards)
        out = RoundResult(partial=PartialSum())
        next_merge = 0
        while pending:
            [ref], _ = ray.wait(list(pending), num_returns=1)
            i = pending.pop(ref)
            try:
                results[i] = ray.get(ref)
            except RayTaskError as err:
                if isinstance(err.cause, ClientFailure):
                    # The client id and error, with the remote traceback chained for debugging.
                    raise err.cause from err
                raise
            except RayActorError as err:
                deaths[i] += 1
                if deaths[i] > self.max_replacements:
                    raise RuntimeError(
                        f"round {round_idx}: executor actor {i} died {deaths[i]} times running clients "
                        f"{shards[i].tolist()}; last error: {err}"
                    ) from err
                logger.warning(
                    "round %d: executor actor %d died (%s); replacing it and re-running its %d clients",
                    round_idx,
                    i,
                    type(err).__name__,
                    len(shards[i]),
                )
                self._replace(i)
                pending[submit(i)] = i
                continue
            # Merge in actor-index order as soon as the prefix is complete: a fixed summation
            # order makes a run exactly repeatable, and at most one partial per actor is held.
            while next_merge < len(shards) and (results[next_merge] is not None or not len(shards[next_merge])):
                r = results[next_merge]
                if r is not None:
                    out.merge(r)
                    results[next_merge] = None
                next_merge += 1
        return out

    @property
    def driver_threads(self) -> int:
        """Threads the driver's own torch work may use beside the actors on its node: the node's
        cores less the CPUs its actors reserved, at least 1 (fl/executor.py `driver_threads`). On
        the digits job (2 cores, 2 actors) the driver's default 2 threads made each round's
        evaluation 55 ms instead of 24 ms and the rounds themselves 2.1 s instead of 1.3 s."""
        here = ray.get_runtime_context().get_node_id()
        on_node = sum(1 for node_id in self._slots if node_id == here)
        return max(1, int((os.cpu_count() or 1) - on_node * self.cfg.client_cpus + _EPS))

    def describe(self) -> str:
        nodes = len({info["node_id"] for info in getattr(self, "actor_info", [])})
        return f"ray: {len(self._actors)} actors x {_resources_text(self.cfg.client_cpus, self.cfg.client_gpus)} on {nodes} node(s)"

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for a in self._actors:
            try:
                ray.kill(a, no_restart=True)
            except Exception:
                pass
        self._actors = []
        self._data_ref = None
        if self._started_ray:
            stop_ray()

    def __enter__(self) -> RayEngine:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
