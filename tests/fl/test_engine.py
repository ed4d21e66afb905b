"""The Ray engine: pool-size independence, actor death, client errors, GPU fractions, resume.

One Ray runtime for the whole module (ray.init costs seconds): 4 logical CPUs and one logical
GPU, so a 4-actor pool fits and four 0.25-GPU actors share the (fake) GPU.
"""

from __future__ import annotations

import dataclasses
import sys
import time

import faulty  # noqa: E402  (tests/fl/faulty.py)
import numpy as np
import pytest
import torch
from faulty import PoisonedFactory, poison  # noqa: E402

from gptfl_ray.config import DataConfig, EngineConfig, FederateConfig, FLConfig, ModelConfig
from gptfl_ray.data.digits import load_digits_dataset
from gptfl_ray.data.partition import partition
from gptfl_ray.errors import ConfigError
from gptfl_ray.fl.aggregate import finalize
from gptfl_ray.fl.client import LocalTrainConfig
from gptfl_ray.fl.engine import PackedParts, _placement, pool_size_from_resources
from gptfl_ray.fl.executor import ClientFailure, ExecutorSpec, LocalEngine
from gptfl_ray.fl.loop import run_federation
from gptfl_ray.fl.sampler import sample_clients
from gptfl_ray.models.factory import ModelFactory
from gptfl_ray.models.params import get_flat

ray = pytest.importorskip("ray")
from gptfl_ray.fl.engine import RayEngine  # noqa: E402

# Actors unpickle the model factories below; this module is not importable in a worker.
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
ray.cloudpickle.register_pickle_by_value(faulty)

NUM_CLIENTS, PER_ROUND, ROUNDS, SEED = 20, 8, 3, 0


# ---------------------------------------------------------------- pure helpers, no Ray


def _node(nid, cpu=0.0, gpu=0.0, alive=True):
    res = {"CPU": cpu, **({"GPU": gpu} if gpu else {})}
    return {"NodeID": nid, "Alive": alive, "Resources": res}


@pytest.mark.parametrize(
    "nodes, cpus, gpus, expected",
    [
        ([_node("a", 2)], 1, 0, {"a": 2}),
        ([_node("a", 2)], 0.5, 0, {"a": 4}),
        ([_node("a", 8, 1)], 1, 0.25, {"a": 4}),  # the GPU binds
        ([_node("a", 2, 1)], 1, 0.25, {"a": 2}),  # the CPUs bind
        ([_node("a", 4, 0), _node("b", 4, 2)], 1, 0.5, {"b": 4}),  # a has no GPU
        ([_node("a", 3), _node("b", 1), _node("c", 8, alive=False)], 1, 0, {"a": 3, "b": 1}),
        ([_node("a", 0.3 * 3)], 0.3, 0, {"a": 3}),  # float noise does not lose a slot
    ],
)
def test_pool_size_from_resources(nodes, cpus, gpus, expected):
    assert pool_size_from_resources(nodes, cpus, gpus) == expected


def test_placement_spreads_round_robin_and_caps():
    assert _placement({"a": 3, "b": 1}, None) == ["a", "b", "a", "a"]
    assert _placement({"a": 3, "b": 1}, 2) == ["a", "b"]


def test_packed_parts_match_list():
    parts = [np.array([3, 1]), np.array([], np.int64), np.array([0, 2, 4])]
    packed = PackedParts.pack(parts)
    assert len(packed) == 3
    for i, p in enumerate(parts):
        np.testing.assert_array_equal(packed[np.int64(i)], p)
    with pytest.raises(IndexError):
        packed[3]


# ---------------------------------------------------------------- shared fixtures


@pytest.fixture(scope="module")
def ray_runtime():
    if ray.is_initialized():  # another module left one running
        ray.shutdown()
    ray.init(num_cpus=4, num_gpus=1, include_dashboard=False, configure_logging=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def task():
    ds = load_digits_dataset(seed=SEED)
    parts = partition(ds.y_train, NUM_CLIENTS, "dirichlet", SEED, alpha=0.1)
    factory = ModelFactory("cnn", ds.input_shape, ds.num_classes, seed=SEED)
    spec = ExecutorSpec(
        model_fn=factory, local=LocalTrainConfig(epochs=1, batch_size=16, lr=0.05, momentum=0.5), seed=SEED
    )
    return spec, ds.prepare(ds.x_train), ds.y_train.astype(np.int64), parts


def federate(engine, spec, rounds=ROUNDS):
    """The round loop's core with FedAvg (sample, run, average, step)."""
    params = get_flat(spec.model_fn())
    for r in range(1, rounds + 1):
        ids = sample_clients(NUM_CLIENTS, PER_ROUND, SEED, r)
        params = params + finalize(engine.run_round(params, ids, r).partial).delta
    return params


@pytest.fixture(scope="module")
def reference(task):
    spec, x, y, parts = task
    return federate(LocalEngine(spec, x, y, parts), spec)


def make_engine(task, spec=None, **engine_kw):
    s, x, y, parts = task
    return RayEngine(spec or s, x, y, parts, EngineConfig(backend="ray", **engine_kw))


# ---------------------------------------------------------------- the engine


@pytest.fixture(scope="module")
def pool_results():
    return {}  # num_actors -> final weights, shared by the tests that compare against them


def run_pool(task, pool_results, num_actors):
    if num_actors not in pool_results:
        with make_engine(task, num_actors=num_actors) as eng:
            assert eng.describe() == f"ray: {num_actors} actors x 1 CPU on 1 node(s)"
            assert all(i["zero_copy"] for i in eng.actor_info)  # the data set is read in place
            pool_results[num_actors] = federate(eng, task[0])
        assert ray.is_initialized()  # the engine did not start Ray, so it must not stop it
    return pool_results[num_actors]


@pytest.mark.parametrize("num_actors", [1, 2])
def test_pool_size_independence(ray_runtime, task, reference, pool_results, num_actors):
    got = run_pool(task, pool_results, num_actors)
    assert not np.array_equal(got, get_flat(task[0].model_fn()))  # it trained
    np.testing.assert_allclose(got, reference, rtol=0, atol=1e-5)
    if num_actors == 1:  # one partial summed in client order, exactly as in-process
        np.testing.assert_array_equal(got, reference)


def test_gpu_fractions_four_actors_share_one_gpu_and_fall_back_to_cpu(ray_runtime, task, reference):
    """Four 0.25-GPU actors on one logical GPU, all alive at once; with no CUDA in torch each
    falls back to the CPU and still computes the same model (the 4-actor pool-size case)."""
    assert not torch.cuda.is_available()
    with make_engine(task, client_gpus=0.25) as eng:  # sized from resources: min(4 CPU, 1/0.25 GPU)
        assert eng.num_actors == 4
        infos = eng.actor_info
        assert len({i["pid"] for i in infos}) == 4
        assert all(i["gpu_ids"] for i in infos)
        assert all(i["device"] == "cpu" and "running on CPU" in i["note"] for i in infos)
        assert ray.available_resources().get("GPU", 0.0) == 0.0  # the four hold the whole GPU
        assert eng.describe() == "ray: 4 actors x 1 CPU + 0.25 GPU on 1 node(s)"
        got = federate(eng, task[0])
    np.testing.assert_allclose(got, reference, rtol=0, atol=1e-5)


@pytest.mark.parametrize("num_actors", [1, 3])
def test_the_driver_keeps_to_the_cores_its_actors_leave(ray_runtime, task, num_actors):
    import os

    from gptfl_ray.fl.executor import driver_threads

    with make_engine(task, num_actors=num_actors) as eng:
        assert eng.driver_threads == max(1, (os.cpu_count() or 1) - num_actors)
    before = torch.get_num_threads()
    with driver_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with driver_threads(None):
        assert torch.get_num_threads() == before


def test_num_actors_beyond_capacity_fails_fast(ray_runtime, task):
    with pytest.raises(ConfigError, match="engine.num_actors"):
        make_engine(task, num_actors=5)


class SlowFactory:
    """The task's model with a short sleep per forward pass, so a round lasts long enough for a
    kill issued right after submission to land while the actor's task is running."""

    def __init__(self, inner):
        self.inner = inner

    def __call__(self):
        model = self.inner()
        model.register_forward_pre_hook(lambda *_: time.sleep(0.02))
        return model


def test_actor_killed_mid_round_is_replaced_with_unchanged_result(ray_runtime, task, pool_results, monkeypatch):
    spec = dataclasses.replace(task[0], model_fn=SlowFactory(task[0].model_fn))
    # The reference is the same spec without the fault: a model with a hook trains on the vmap
    # path (fl/stacked.py refuses hooks), whose float rounding differs from the stacked path's.
    with make_engine(task, spec=spec, num_actors=2) as eng:
        expected = federate(eng, spec)
    with make_engine(task, spec=spec, num_actors=2) as eng:
        killed = []
        wait = ray.wait

        def kill_once_then_wait(*args, **kw):
            # The engine's first wait on a round's results: its tasks are submitted, none read.
            if not killed:
                killed.append(eng._actors[1])
                ray.kill(eng._actors[1], no_restart=True)
            return wait(*args, **kw)

        monkeypatch.setattr(ray, "wait", kill_once_then_wait)
        got = federate(eng, spec)
        monkeypatch.undo()
        assert eng.replacements == 1
        assert eng.num_actors == 2 and eng._actors[1] is not killed[0]
    # Same pool size, same merge order: bit-for-bit the run without the fault.
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_allclose(got, run_pool(task, pool_results, 2), rtol=0, atol=1e-5)


def test_raising_client_surfaces_as_client_failure_with_its_id(ray_runtime, task):
    ids = sample_clients(NUM_CLIENTS, PER_ROUND, SEED, 1)
    bad = int(ids[-1])  # in the last actor's share
    spec, x, y, parts = task
    spec = dataclasses.replace(spec, model_fn=PoisonedFactory(spec.model_fn))
    with RayEngine(spec, poison(x, parts, [bad]), y, parts, EngineConfig(backend="ray", num_actors=2)) as eng:
        with pytest.raises(ClientFailure) as info:
            eng.run_round(get_flat(spec.model_fn()), ids, 1)
    assert info.value.client_id == bad and info.value.round_idx == 1
    assert f"client {bad} failed in round 1" in str(info.value)


class Interrupt(Exception):
    pass


def test_resume_after_killed_run_equals_uninterrupted(ray_runtime, tmp_path):
    """A ray run cut after round 3 (before its checkpoint) and resumed ends on exactly the
    weights of an uninterrupted run. With one actor the engine trains and sums the clients as
    the in-process engine does (one cohort, client-id order), so the uninterrupted reference
    runs locally (saves actor starts). The backend must be named: the default is a Ray pool
    sized from the CPUs, whose cohorts differ from a 1-actor pool's."""
    fl = FLConfig(rounds=4, clients_per_round=PER_ROUND, local_epochs=1, checkpoint_every=1, eval_every=2, seed=SEED)
    base = FederateConfig(
        data=DataConfig(clients=NUM_CLIENTS), model=ModelConfig(name="mlp"), fl=fl, engine=EngineConfig(backend="local")
    )
    cfg = dataclasses.replace(base, engine=EngineConfig(backend="ray", num_actors=1))
    ds = load_digits_dataset(seed=SEED)
    parts = partition(ds.y_train, NUM_CLIENTS, "dirichlet", SEED, alpha=0.1)
    full = run_federation(base, ds, parts, tmp_path / "full")

    def die_in_round_3(row):
        if row["round"] == 3:  # after round 3 ran, before its checkpoint: as if killed
            raise Interrupt

    with pytest.raises(Interrupt):
        run_federation(cfg, ds, parts, tmp_path / "cut", on_round=die_in_round_3)
    resumed = run_federation(cfg, ds, parts, tmp_path / "cut", resume=True)
    np.testing.assert_array_equal(resumed.params, full.params)
    assert [r["round"] for r in resumed.rounds] == [1, 2, 3, 4]
