"""One executor pool per run (fl/pool.py): a reused pool gives exactly what fresh engines give."""

from __future__ import annotations

import numpy as np
import pytest

from gptfl_ray.config import DataConfig, EngineConfig, FederateConfig, FLConfig, ModelConfig
from gptfl_ray.data.digits import load_digits_dataset
from gptfl_ray.data.partition import partition
from gptfl_ray.fl.loop import run_federation
from gptfl_ray.fl.pool import EnginePool

CLIENTS = 10


@pytest.fixture(scope="module")
def task():
    ds = load_digits_dataset(seed=0)
    return ds, partition(ds.y_train, CLIENTS, "dirichlet", 0, alpha=0.5)


def _cfg(backend: str, strategy: str, **engine) -> FederateConfig:
    return FederateConfig(
        data=DataConfig(clients=CLIENTS),
        model=ModelConfig(name="mlp"),
        fl=FLConfig(rounds=2, clients_per_round=4, local_epochs=1, strategy=strategy, eval_every=2, seed=0),
        engine=EngineConfig(backend=backend, **engine),
    )


def _runs(task, tmp_path, cfgs, engines=None):
    ds, parts = task
    return [run_federation(c, ds, parts, tmp_path / f"{i}", engines=engines).params for i, c in enumerate(cfgs)]


def test_local_pool_is_reused_and_reconfigured(task, tmp_path):
    cfgs = [_cfg("local", "fedavg"), _cfg("local", "fedavg"), _cfg("local", "fedprox")]
    fresh = _runs(task, tmp_path / "fresh", cfgs)
    with EnginePool() as pool:
        pooled = _runs(task, tmp_path / "pooled", cfgs, engines=pool)
        assert (pool.builds, pool.reuses) == (1, 2)
    for a, b in zip(fresh, pooled):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(pooled[0], pooled[2])  # fedprox's spec really reached the executor


def test_other_data_loads_into_the_engine_other_settings_start_a_new_one(task, tmp_path):
    ds, parts = task
    with EnginePool() as pool:
        run_federation(_cfg("local", "fedavg"), ds, parts, tmp_path / "a", engines=pool)
        run_federation(_cfg("local", "fedavg"), ds, [p.copy() for p in parts], tmp_path / "b", engines=pool)
        assert (pool.builds, pool.loads, pool.reuses) == (1, 2, 0)
        run_federation(_cfg("local", "fedavg", client_cpus=0.5), ds, parts, tmp_path / "c", engines=pool)
        assert (pool.builds, pool.loads) == (2, 3)


@pytest.mark.ray
def test_ray_pool_keeps_its_actors_across_federations(ray_runtime, task, tmp_path):
    cfgs = [_cfg("ray", "fedavg", num_actors=2), _cfg("ray", "fedprox", num_actors=2)]
    fresh = _runs(task, tmp_path / "fresh", cfgs)
    with EnginePool() as pool:
        ds, parts = task
        pooled, pids = [], []
        for i, c in enumerate(cfgs):
            pooled.append(run_federation(c, ds, parts, tmp_path / f"p{i}", engines=pool).params)
            pids.append(sorted(info["pid"] for info in pool._engine.actor_info))
        assert (pool.builds, pool.reuses) == (1, 1)
        assert pids[0] == pids[1]  # the same actor processes ran both federations
        assert pool._engine.spec.client.prox_mu == cfgs[1].fl.prox_mu
    for a, b in zip(fresh, pooled):
        np.testing.assert_array_equal(a, b)


@pytest.mark.ray
def test_prestarted_actors_take_the_data_later_and_another_data_set_after(ray_runtime, task, tmp_path):
    """Actors started before any data (`prestart`) give what a fresh engine gives, and a second
    training set goes into the same processes."""
    ds, parts = task
    other = partition(ds.y_train, CLIENTS, "dirichlet", 1, alpha=0.5)
    cfg = _cfg("ray", "fedavg", num_actors=2)
    fresh = [run_federation(cfg, ds, p, tmp_path / f"f{i}").params for i, p in enumerate((parts, other))]
    with EnginePool() as pool:
        pool.prestart(cfg)
        assert pool._engine.actor_info == []  # started, not waited for, no data yet
        pooled, pids = [], []
        for i, p in enumerate((parts, other)):
            pooled.append(run_federation(cfg, ds, p, tmp_path / f"p{i}", engines=pool).params)
            pids.append(sorted(info["pid"] for info in pool._engine.actor_info))
        assert (pool.builds, pool.loads, pool.reuses) == (1, 2, 0)
        assert pids[0] == pids[1]
    for a, b in zip(fresh, pooled):
        np.testing.assert_array_equal(a, b)
