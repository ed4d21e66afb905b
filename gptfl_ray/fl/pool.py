"""One executor pool per run (docs/architecture.md rule 6).

`simulate` runs several FL variants (fedavg, gptfl, fgl_rounds) and `bench` sweeps run many
federations on one task; starting a fresh pool of Ray actors for each costs seconds of process
start-up, torch imports and data transfer every time. An `EnginePool` keeps one engine alive
for the whole run: `run_federation` asks it for an engine, and as long as the engine settings
(backend, actors, CPUs/GPUs per actor, address) and the training set are the same, it gets the
running one back, re-configured in place for the new executor spec (model, local training,
seed, strategy) when that differs. The actors keep their processes and their zero-copy view of
the training set; only the executor inside them is rebuilt. Another training set is loaded into
the same actors. A client's update depends on (spec, seed, round, client id) alone, never on
what the executor ran before, so a reused pool gives exactly what a fresh one gives
(tests/fl/test_pool.py).

`prestart` starts the Ray actors before the data and the spec exist: their processes start and
import torch while the driver imports and loads the data set, instead of after it.
"""

from __future__ import annotations

import numpy as np

from gptfl_ray.config import FederateConfig
from gptfl_ray.fl.executor import ExecutorSpec, LocalEngine


def make_engine(cfg: FederateConfig, spec: ExecutorSpec, x, y, parts):
    if cfg.engine.backend == "local":
        return LocalEngine(spec, x, y, parts)
    from gptfl_ray.fl.engine import RayEngine  # Ray stays at the edge (docs/architecture.md rule 5)

    return RayEngine(spec, x, y, parts, cfg.engine)


class EnginePool:
    """Hands out one engine at a time, reused while the engine settings match."""

    def __init__(self) -> None:
        self._engine = None
        self._key = None  # (engine settings, dataset, parts) the engine holds; data None: none yet
        self.builds = 0  # engines started over the pool's life
        self.loads = 0  # training sets loaded into them
        self.reuses = 0  # federations that got the running engine back with its training set

    def prestart(self, cfg: FederateConfig) -> None:
        """Start the Ray actors now (Ray itself too, unless it runs), without data; the next
        `get` with the same engine settings loads its training set into them."""
        if cfg.engine.backend != "ray" or self._engine is not None:
            return
        from gptfl_ray.fl.engine import RayEngine

        self._engine = RayEngine(None, cfg=cfg.engine)
        self._key = (cfg.engine, None, None)
        self.builds += 1

    def get(self, cfg: FederateConfig, spec: ExecutorSpec, dataset, parts):
        running = self._engine is not None and self._key[0] == cfg.engine
        # The data by identity (the pool holds references, so an id is never reused meanwhile).
        if running and self._key[1] is dataset and self._key[2] is parts:
            if self._engine.spec != spec:
                self._engine.configure(spec)
            self.reuses += 1
            return self._engine
        x, y = dataset.prepare(dataset.x_train), dataset.y_train.astype(np.int64)
        if running:
            self._engine.load(spec, x, y, parts)
        else:
            self.close()
            self._engine = make_engine(cfg, spec, x, y, parts)
            self.builds += 1
        self._key = (cfg.engine, dataset, parts)
        self.loads += 1
        return self._engine

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()
        self._engine, self._key = None, None

    def __enter__(self) -> EnginePool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
