"""DP-FedAvg and simulated devices in the round loop, on the real digits task with tiny settings."""

import json

import numpy as np
import pytest

from gptfl_ray.config import federate_config
from gptfl_ray.data import load_dataset
from gptfl_ray.data.partition import partition
from gptfl_ray.errors import ConfigError
from gptfl_ray.fl.client import LocalTrainConfig
from gptfl_ray.fl.executor import ExecutorSpec, LocalEngine
from gptfl_ray.fl.loop import run_federation
from gptfl_ray.fl.sampler import poisson_sample
from gptfl_ray.models.factory import ModelFactory
from gptfl_ray.models.params import get_flat
from gptfl_ray.privacy.dp import epsilon


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def _cfg(**kw):
    base = dict(
        rounds=3,
        clients=10,
        alpha=0.5,
        clients_per_round=4,
        local_epochs=1,
        checkpoint_every=2,
        model="mlp",
        backend="local",
    )
    base.update(kw)
    return federate_config(overrides=base)


def run(digits, out, resume=False, on_round=None, **kw):
    cfg = _cfg(**kw)
    parts = partition(digits.y_train, cfg.data.clients, cfg.data.partition, seed=cfg.fl.seed, alpha=cfg.data.alpha)
    return run_federation(cfg, digits, parts, out, resume=resume, on_round=on_round)


def _rows(path):
    return [json.loads(l) for l in (path / "rounds.jsonl").read_text().splitlines()]


# ---------------------------------------------------------------- DP


def test_epsilon_is_reported_every_round_as_the_accountant_computes_it(digits, tmp_path):
    res = run(digits, tmp_path, rounds=4, dp_noise=0.8, dp_clip=0.3)
    eps = [r["epsilon"] for r in res.rounds]
    want = [epsilon(0.8, r, 1e-5, sampling="poisson", num_clients=10, sample_rate=0.4) for r in (1, 2, 3, 4)]
    assert eps == pytest.approx(want) and eps == sorted(eps) and eps[0] > 0
    assert [h["epsilon"] for h in res.history] == pytest.approx([0.0] + want)  # beside accuracy
    assert all(np.isnan(r["gradient_diversity"]) for r in res.rounds)  # nothing un-noised is released
    # Poisson sampling at q = 4/10, as the accountant assumes
    assert [r["clients"] for r in _rows(tmp_path)] == [len(poisson_sample(10, 0.4, 0, r)) for r in (1, 2, 3, 4)]


def test_dp_epsilon_calibrates_the_whole_run(digits, tmp_path):
    res = run(digits, tmp_path, rounds=3, dp_epsilon=5.0, dp_sampling="fixed")
    assert res.rounds[-1]["epsilon"] <= 5.0 and res.rounds[-1]["epsilon"] == pytest.approx(5.0, rel=0.01)
    assert all(r["clients"] == 4 for r in res.rounds)  # fixed-size draw
    engine = json.loads((tmp_path / "engine.json").read_text())
    assert engine["privacy"]["sensitivity_per_clip"] == 2.0  # replace-one neighbours


def test_every_clients_contribution_is_bounded_by_the_clip(digits):
    parts = partition(digits.y_train, 10, "dirichlet", seed=0, alpha=0.5)
    factory = ModelFactory("mlp", digits.input_shape, digits.num_classes, seed=0)
    spec = ExecutorSpec(
        model_fn=factory, local=LocalTrainConfig(epochs=2, batch_size=8, lr=0.5), seed=0, dp_weighting="uniform"
    )
    eng = LocalEngine(spec, digits.prepare(digits.x_train), digits.y_train.astype(np.int64), parts)
    params = get_flat(factory())
    clip = 0.05
    unclipped = [np.linalg.norm(eng.run_round(params, [c], 1).partial.weighted / len(parts[c])) for c in range(10)]
    assert min(unclipped) > clip  # the clip binds: the test would see an unclipped update
    each = [eng.run_round(params, [c], 1, dp_clip=clip).partial.weighted for c in range(10)]
    assert all(np.linalg.norm(v) <= clip * (1 + 1e-6) for v in each)
    # sensitivity: dropping any one client moves the round's sum by at most the clip
    total = eng.run_round(params, list(range(10)), 1, dp_clip=clip).partial.weighted
    for c in range(10):
        rest = eng.run_round(params, [i for i in range(10) if i != c], 1, dp_clip=clip).partial.weighted
        assert np.linalg.norm(total - rest) <= clip * (1 + 1e-6)


@pytest.mark.parametrize("adaptive", [False, True])
def test_dp_with_secure_aggregation_equals_dp_without_within_the_quantization_bound(digits, tmp_path, adaptive):
    kw = dict(rounds=1, dp_noise=0.7, dp_clip=0.4, secagg_bits=16, clients_per_round=5)
    if adaptive:
        kw.update(dp_clip_quantile=0.5, dp_clip_noise=0.5)
    plain = run(digits, tmp_path / "plain", **kw)
    sec = run(digits, tmp_path / "sec", secure_aggregation=True, **kw)
    row = sec.rounds[0]
    bound = row["secagg_error_bound"]
    diff = np.abs(plain.params.astype(np.float64) - sec.params.astype(np.float64))
    assert bound > 0 and diff.max() <= bound + 1e-6  # server lr 1: the model moves by the released mean
    assert diff.max() > 0  # the secure path really quantized
    assert row["epsilon"] == plain.rounds[0]["epsilon"] and row["finished"] == plain.rounds[0]["finished"]

    def ck(p):
        return json.loads(sorted((p / "checkpoints").glob("*.json"))[-1].read_text())["cross_device"]

    if adaptive:  # the clip bit went through the secure sum too: the next clip agrees closely
        assert ck(tmp_path / "sec")["dp_clip"] == pytest.approx(ck(tmp_path / "plain")["dp_clip"], rel=1e-3)
        assert ck(tmp_path / "sec")["dp_clip"] != 0.4


def test_dp_resume_equals_uninterrupted_run_exactly(digits, tmp_path):
    kw = dict(
        dp_noise=0.9,
        dp_clip=0.3,
        dp_clip_quantile=0.5,
        dp_clip_noise=0.5,
        devices="lognormal",
        deadline=0.2,
        over_select=1.5,
    )
    full = run(digits, tmp_path / "full", rounds=5, **kw)
    run(digits, tmp_path / "cut", rounds=3, **kw)
    resumed = run(digits, tmp_path / "cut", resume=True, rounds=5, **kw)
    assert np.array_equal(full.params, resumed.params)
    assert (tmp_path / "full" / "rounds.jsonl").read_text() == (tmp_path / "cut" / "rounds.jsonl").read_text()
    clips = [r["dp_clip"] for r in full.rounds]
    assert len(set(clips)) > 1  # the adaptive clip moved and was restored on resume


def test_calibrated_run_refuses_to_resume_with_other_rounds(digits, tmp_path):
    run(digits, tmp_path, rounds=2, dp_epsilon=4.0)
    with pytest.raises(ConfigError, match="fl.rounds"):
        run(digits, tmp_path, resume=True, rounds=4, dp_epsilon=4.0)


def test_dp_refuses_what_its_guarantee_does_not_cover():
    with pytest.raises(ConfigError, match="SCAFFOLD"):
        _cfg(strategy="scaffold", dp_noise=1.0)
    with pytest.raises(ConfigError, match="devices.availability"):
        _cfg(dp_noise=1.0, devices="uniform", availability="bernoulli")
    with pytest.raises(ConfigError, match="privacy.dp_clip_noise"):  # before any work: the bit noise leaves no budget
        _cfg(dp_noise=3.0, dp_clip_quantile=0.5)


# ---------------------------------------------------------------- devices


def test_simulated_time_and_stragglers_are_reported(digits, tmp_path):
    res = run(digits, tmp_path, rounds=3, devices="lognormal", deadline=0.15, clients_per_round=6)
    rows = res.rounds
    assert all(r["selected"] == 6 and r["clients"] + r["stragglers"] == 6 for r in rows)
    assert sum(r["stragglers"] for r in rows) > 0  # the deadline binds for some
    assert all(r["round_time_s"] <= 0.15 + 1e-12 for r in rows)
    assert [r["sim_time_s"] for r in rows] == pytest.approx(np.cumsum([r["round_time_s"] for r in rows]).tolist())
    assert [h["sim_time_s"] for h in res.history] == pytest.approx([0.0] + [r["sim_time_s"] for r in rows])
    assert rows[0]["bytes_down"] == 6 * res.num_params * 4  # stragglers downloaded the model too
    assert rows[0]["bytes_up"] == rows[0]["finished"] * res.num_params * 4


def test_a_round_nobody_finishes_leaves_the_model_unchanged(digits, tmp_path):
    res = run(digits, tmp_path, rounds=2, devices="uniform", deadline=1e-4)
    assert all(r["finished"] == 0 and r["round_time_s"] == 1e-4 for r in res.rounds)
    first = run(digits, tmp_path / "zero", rounds=0)
    assert np.array_equal(res.params, first.params)


def test_without_devices_or_dp_the_plain_sampler_is_used(digits, tmp_path):
    a = run(digits, tmp_path / "a", rounds=2)
    b = run(digits, tmp_path / "b", rounds=2, devices="uniform")  # ideal devices, no deadline: same clients
    assert np.array_equal(a.params, b.params)
    assert "sim_time_s" not in a.rounds[0] and b.rounds[1]["sim_time_s"] > 0


@pytest.mark.ray
def test_device_schedule_and_dp_are_independent_of_the_actor_count(digits, tmp_path, ray_runtime):
    kw = dict(
        rounds=3,
        devices="lognormal",
        deadline=0.2,
        over_select=1.5,
        dp_noise=0.8,
        dp_clip=0.3,
        dp_clip_quantile=0.5,
        dp_clip_noise=2.0,
        dp_sampling="fixed",
    )
    local = run(digits, tmp_path / "local", **kw)
    keys = ("clients", "selected", "stragglers", "surplus", "round_time_s", "sim_time_s", "epsilon")
    for n in (1, 2):
        got = run(digits, tmp_path / f"ray{n}", backend="ray", num_actors=n, **kw)
        assert [[r[k] for k in keys] for r in got.rounds] == [[r[k] for k in keys] for r in local.rounds]
        np.testing.assert_allclose(got.params, local.params, atol=1e-5)  # float sums in another order
        assert [r["dp_clip"] for r in got.rounds] == pytest.approx([r["dp_clip"] for r in local.rounds], rel=1e-6)
