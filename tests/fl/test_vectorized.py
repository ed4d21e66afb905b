"""The vectorized executor trains exactly what the sequential one does (within float tolerance)."""

import logging
from dataclasses import dataclass, replace

import numpy as np
import pytest
from faulty import PoisonedFactory, poison

from gptfl_ray.config import federate_config
from gptfl_ray.data import load_dataset
from gptfl_ray.data.partition import partition
from gptfl_ray.errors import ConfigError
from gptfl_ray.fl.algorithms import STRATEGIES
from gptfl_ray.fl.algorithms.local import ClientTerms, ScaffoldClient
from gptfl_ray.fl.client import LocalTrainConfig
from gptfl_ray.fl.executor import ClientExecutor, ClientFailure, ExecutorSpec
from gptfl_ray.fl.loop import run_federation
from gptfl_ray.models.factory import ModelFactory
from gptfl_ray.models.params import get_flat


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def _run(digits, out, **kw):
    base = dict(
        rounds=3,
        clients=12,
        alpha=0.1,
        clients_per_round=6,
        local_epochs=2,
        batch_size=10,
        model="cnn",
        backend="local",
        momentum=0.5,
        weight_decay=1e-3,
        eval_every=3,
        checkpoint_every=0,
    )
    base.update(kw)
    cfg = federate_config(overrides=base)
    parts = partition(digits.y_train, cfg.data.clients, cfg.data.partition, seed=cfg.fl.seed, alpha=cfg.data.alpha)
    return run_federation(cfg, digits, parts, out)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_strategy_trains_the_same_model_either_way(digits, tmp_path, strategy):
    seq = _run(digits, tmp_path / "seq", strategy=strategy, executor="sequential")
    vec = _run(digits, tmp_path / "vec", strategy=strategy, executor="vectorized")
    assert "vectorized" in (tmp_path / "vec" / "engine.json").read_text()
    assert "sequential" in (tmp_path / "seq" / "engine.json").read_text()
    scale = np.abs(seq.params).max()
    assert np.abs(seq.params - vec.params).max() <= 1e-4 * scale
    assert not np.array_equal(seq.params, _run(digits, tmp_path / "other", strategy=strategy, seed=1).params)
    for a, b in zip(seq.rounds, vec.rounds):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-4)


def _ragged():
    rng = np.random.default_rng(0)
    sizes = [1, 2, 7, 10, 11, 23, 40, 0, 57]  # a lone sample, one skipped batch of one, an empty client
    x = rng.normal(size=(sum(sizes), 1, 8, 8)).astype(np.float32)
    y = rng.integers(0, 10, sum(sizes))
    off = np.cumsum([0] + sizes)
    return x, y, [np.arange(off[i], off[i + 1]) for i in range(len(sizes))]


@dataclass(frozen=True)
class ProxScaffold(ScaffoldClient):
    """No strategy combines both terms; a client half may, and both executors honour it."""

    def terms(self, broadcast, state):
        return replace(super().terms(broadcast, state), prox_mu=0.1)


@pytest.mark.parametrize("model", ["cnn", "convnet"])
def test_ragged_clients_with_momentum_prox_and_control(model):
    x, y, parts = _ragged()
    factory = ModelFactory(model, (1, 8, 8), 10)
    g = get_flat(factory())
    rng = np.random.default_rng(1)
    c = (0.01 * rng.normal(size=g.shape)).astype(np.float32)
    controls = {i: (0.01 * rng.normal(size=g.shape)).astype(np.float32) for i in range(len(parts))}
    local = LocalTrainConfig(epochs=2, batch_size=10, lr=0.05, momentum=0.9, weight_decay=1e-3)
    out = {}
    for ex in ("sequential", "vectorized"):
        spec = ExecutorSpec(model_fn=factory, local=local, seed=3, client=ProxScaffold(), executor=ex)
        e = ClientExecutor(spec, x, y, parts)
        assert e.mode == ex
        out[ex] = e.run(g, list(range(len(parts))), 1, broadcast=c, states=controls)
    a, b = out["sequential"], out["vectorized"]
    assert a.steps == b.steps
    assert np.allclose(a.partial.weighted, b.partial.weighted, atol=1e-5 * np.abs(a.partial.weighted).max())
    assert np.allclose(a.partial.extra, b.partial.extra, rtol=1e-4, atol=1e-4)
    assert a.partial.loss_sum == pytest.approx(b.partial.loss_sum, rel=1e-6)
    assert sorted(a.new_states) == sorted(b.new_states)


def test_a_clients_update_does_not_depend_on_its_cohort():
    """Which clients share an executor changes with the pool size; an mlp client's update must
    not (bit for bit). Ragged sizes put short last batches beside full ones."""
    x, y, parts = _ragged()
    spec = ExecutorSpec(
        model_fn=ModelFactory("mlp", (1, 8, 8), 10),
        local=LocalTrainConfig(epochs=1, batch_size=10, lr=0.05, momentum=0.5),
        seed=0,
        executor="vectorized",
    )
    e = ClientExecutor(spec, x, y, parts)
    g = get_flat(spec.model_fn())
    plain = ClientTerms()
    alone = {c: e._train(g, [c], 1, {c: plain})[0].delta for c in (2, 4, 8)}
    together = {r.client_id: r.delta for r in e._train(g, [2, 4, 5, 8], 1, dict.fromkeys([2, 4, 5, 8], plain))}
    for c, delta in alone.items():
        np.testing.assert_array_equal(together[c], delta)


def test_batchnorm_falls_back_to_sequential_with_one_line(caplog):
    x, y, parts = _ragged()
    spec = ExecutorSpec(
        model_fn=ModelFactory("convnet", (1, 8, 8), 10, "batch"),
        local=LocalTrainConfig(),
        seed=0,
        executor="vectorized",
    )
    with caplog.at_level(logging.INFO, logger="gptfl_ray.fl.executor"):
        e = ClientExecutor(spec, x, y, parts)
    assert e.mode == "sequential"
    assert [r.levelname for r in caplog.records] == ["WARNING"] and "BatchNorm2d" in caplog.records[0].getMessage()
    assert ClientExecutor(spec.__class__(**{**spec.__dict__, "executor": "auto"}), x, y, parts).mode == "sequential"


def test_a_failing_client_is_named_in_a_cohort():
    x, y, parts = _ragged()
    spec = ExecutorSpec(model_fn=PoisonedFactory(ModelFactory("cnn", (1, 8, 8), 10)), local=LocalTrainConfig(), seed=0)
    executor = ClientExecutor(spec, poison(x, parts, [5, 2]), y, parts)
    assert executor.mode == "vectorized"
    with pytest.raises(ClientFailure, match="client 2 failed in round 4"):
        executor.run(get_flat(spec.model_fn()), [0, 2, 5], 4)


def test_unknown_executor_is_refused():
    with pytest.raises(ConfigError, match="engine.executor"):
        federate_config(overrides={"executor": "parallel"})


def test_auto_vectorizes_small_models_on_cpu_only():
    x, y, parts = _ragged()

    def mode(m):
        return ClientExecutor(
            ExecutorSpec(model_fn=ModelFactory(m, (1, 8, 8), 10), local=LocalTrainConfig(), seed=0), x, y, parts
        ).mode  # noqa: E731

    assert mode("cnn") == "vectorized"
    assert mode("convnet") == "sequential"  # 300k weights: slower vectorized on one CPU thread


def test_balanced_shares_deal_by_cost():
    from gptfl_ray.fl.engine import balanced_shares

    ids = np.array([3, 8, 1, 5, 9, 2])
    costs = np.array([100, 10, 10, 10, 10, 60])
    shares = balanced_shares(ids, costs, 2)
    assert [s.tolist() for s in shares] == [[3], [1, 2, 5, 8, 9]]  # 100 vs 60 + 4 x 10
    assert sorted(np.concatenate(shares).tolist()) == sorted(ids.tolist())
    assert [len(s) for s in balanced_shares(ids[:1], costs[:1], 3)] == [1, 0, 0]
