"""Every random draw inside a client derives from (seed, round, client id): `fedaudio` has
dropout, so its weights are the same whichever executor ran a client and after a resume."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gptfl_ray.config import EngineConfig
from gptfl_ray.fl.aggregate import finalize
from gptfl_ray.fl.client import LocalTrainConfig, client_update
from gptfl_ray.fl.executor import ExecutorSpec, LocalEngine
from gptfl_ray.fl.sampler import sample_clients
from gptfl_ray.models.factory import ModelFactory
from gptfl_ray.models.params import get_flat

ray = pytest.importorskip("ray")
from gptfl_ray.fl.engine import RayEngine  # noqa: E402

CLIENTS, PER_ROUND, SEED = 6, 4, 0
SHAPE = (128, 8)  # 128 mel bins, 8 frames: the smallest clip fedaudio's two pools accept


@pytest.fixture(scope="module")
def task():
    g = np.random.default_rng(0)
    x = g.normal(size=(30, *SHAPE)).astype(np.float32)
    y = g.integers(0, 3, size=30).astype(np.int64)
    parts = [np.arange(5 * k, 5 * k + 5) for k in range(CLIENTS)]
    spec = ExecutorSpec(
        model_fn=ModelFactory("fedaudio", SHAPE, 3, seed=SEED),
        local=LocalTrainConfig(epochs=1, batch_size=2, lr=0.1),
        seed=SEED,
    )
    return spec, x, y, parts


def federate(engine, params, rounds):
    for r in rounds:
        ids = sample_clients(CLIENTS, PER_ROUND, SEED, r)
        params = params + finalize(engine.run_round(params, ids, r).partial).delta
    return params


def test_dropout_is_drawn_from_the_client_seed():
    spec = ExecutorSpec(
        model_fn=ModelFactory("fedaudio", SHAPE, 3, seed=SEED), local=LocalTrainConfig(batch_size=2), seed=SEED
    )
    model = spec.model_fn()
    x, y = torch.randn(4, *SHAPE), torch.tensor([0, 1, 2, 0])
    g = get_flat(model)
    a = client_update(model, g, x, y, spec.local, seed=7)
    torch.manual_seed(123)  # whatever the process drew before must not matter
    torch.rand(5)
    b = client_update(model, g, x, y, spec.local, seed=7)
    c = client_update(model, g, x, y, spec.local, seed=8)
    np.testing.assert_array_equal(a.delta, b.delta)
    assert not np.array_equal(a.delta, c.delta)
    # the caller's generator is left as it was
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    client_update(model, g, x, y, spec.local, seed=7)
    assert torch.equal(torch.rand(3), expected)


def test_fedaudio_one_actor_two_actors_and_resume_agree(ray_runtime, task):
    spec, x, y, parts = task
    start = get_flat(spec.model_fn())
    rounds = range(1, 5)
    local = federate(LocalEngine(spec, x, y, parts), start, rounds)
    assert not np.allclose(local, start)
    with RayEngine(spec, x, y, parts, EngineConfig(backend="ray", num_actors=1)) as eng:
        one = federate(eng, start, rounds)
    np.testing.assert_array_equal(one, local)  # one partial, summed in client order
    with RayEngine(spec, x, y, parts, EngineConfig(backend="ray", num_actors=2)) as eng:
        two = federate(eng, start, rounds)
    np.testing.assert_allclose(two, local, rtol=0, atol=1e-6)  # two partials: float sum order only
    # Resume: fresh actor processes (a fresh RNG) take over after round 2.
    with RayEngine(spec, x, y, parts, EngineConfig(backend="ray", num_actors=2)) as eng:
        mid = federate(eng, start, range(1, 3))
    with RayEngine(spec, x, y, parts, EngineConfig(backend="ray", num_actors=2)) as eng:
        resumed = federate(eng, mid, range(3, 5))
    np.testing.assert_array_equal(resumed, two)
