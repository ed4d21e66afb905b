"""The round loop on the real digits task with tiny settings: learning, resume, state."""

import json

import numpy as np
import pytest
import torch

from gptfl_ray.config import federate_config
from gptfl_ray.data import load_dataset
from gptfl_ray.data.partition import partition
from gptfl_ray.errors import ConfigError
from gptfl_ray.fl.algorithms.local import ClientTerms, ScaffoldClient
from gptfl_ray.fl.client import LocalTrainConfig, client_update
from gptfl_ray.fl.loop import run_federation


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def run(digits, out, resume=False, **kw):
    base = dict(
        rounds=4,
        clients=10,
        alpha=0.5,
        clients_per_round=4,
        local_epochs=1,
        checkpoint_every=2,
        model="mlp",
        backend="local",
    )
    base.update(kw)
    cfg = federate_config(overrides=base)
    parts = partition(digits.y_train, cfg.data.clients, cfg.data.partition, seed=cfg.fl.seed, alpha=cfg.data.alpha)
    return run_federation(cfg, digits, parts, out, resume=resume)


def test_accuracy_climbs_well_above_chance(digits, tmp_path):
    res = run(digits, tmp_path, rounds=8, model="cnn", partition="iid", clients_per_round=5, local_epochs=2)
    assert res.history[0]["accuracy"] < 0.3
    assert res.history[-1]["accuracy"] > 0.6
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(l)["round"] for l in lines] == list(range(0, 9))
    assert "accuracy" in json.loads(lines[-1])


@pytest.mark.parametrize("strategy", ["fedavg", "scaffold", "fedadam"])
def test_resume_equals_uninterrupted_run_exactly(digits, tmp_path, strategy):
    full = run(digits, tmp_path / "full", rounds=5, strategy=strategy)
    run(digits, tmp_path / "cut", rounds=3, strategy=strategy)  # checkpoints at 2 and 3
    # A later round written past the checkpoint must not leak into the resumed run.
    resumed = run(digits, tmp_path / "cut", resume=True, rounds=5, strategy=strategy)
    assert np.array_equal(full.params, resumed.params)
    assert (tmp_path / "full" / "metrics.jsonl").read_text() == (tmp_path / "cut" / "metrics.jsonl").read_text()


def test_bytes_accounting(digits, tmp_path):
    res = run(digits, tmp_path, rounds=2)
    per_model = res.num_params * 4
    assert res.rounds[0]["bytes_down"] == 4 * per_model
    assert res.rounds[1]["cum_bytes"] == 2 * (4 + 4) * per_model


def test_dropout_is_counted(digits, tmp_path):
    res = run(digits, tmp_path, rounds=3, clients_per_round=10, dropout=0.5)
    dropped = sum(r["dropped"] for r in res.rounds)
    assert 0 < dropped < 30
    assert all(r["finished"] + r["dropped"] == 10 for r in res.rounds)
    assert res.rounds[0]["bytes_up"] == res.rounds[0]["finished"] * res.num_params * 4


def test_corrupt_checkpoint_is_reported(digits, tmp_path):
    run(digits, tmp_path, rounds=2)
    ck = sorted((tmp_path / "checkpoints").glob("*.safetensors"))[-1]
    ck.write_bytes(ck.read_bytes()[:-7] + b"garbage")
    with pytest.raises(ConfigError, match="corrupt"):
        run(digits, tmp_path, resume=True, rounds=4)


def _tiny_model():
    torch.manual_seed(0)
    return torch.nn.Linear(3, 2)


def test_fedprox_pulls_towards_global():
    x, y = torch.randn(32, 3), torch.randint(0, 2, (32,))
    m = _tiny_model()
    g = np.concatenate([p.detach().numpy().ravel() for p in m.state_dict().values()])
    cfg = LocalTrainConfig(epochs=5, batch_size=8, lr=0.1)
    free = client_update(m, g, x, y, cfg, seed=1)
    prox = client_update(m, g, x, y, cfg, seed=1, terms=ClientTerms(prox_mu=10.0))
    assert np.linalg.norm(prox.delta) < 0.5 * np.linalg.norm(free.delta)


def test_scaffold_control_update_option_two_by_hand():
    x, y = torch.randn(8, 3), torch.randint(0, 2, (8,))
    m = _tiny_model()
    g = np.concatenate([p.detach().numpy().ravel() for p in m.state_dict().values()])
    c, ci = np.full(8, 0.1, np.float32), np.full(8, -0.2, np.float32)
    cfg = LocalTrainConfig(epochs=1, batch_size=4, lr=0.5)
    r = client_update(m, g, x, y, cfg, seed=2, terms=ScaffoldClient().terms(c, ci))
    assert r.steps == 2
    extra, new_c = ScaffoldClient().finish(c, ci, r.delta, r.steps, cfg.lr, np.ones(8, bool))
    np.testing.assert_allclose(new_c, ci - c - r.delta / (2 * 0.5), rtol=1e-5)
    np.testing.assert_allclose(extra, new_c - ci, rtol=1e-5)
    # The correction changes the trajectory relative to no control variates.
    plain = client_update(m, g, x, y, cfg, seed=2)
    assert not np.allclose(plain.delta, r.delta)


def test_validation_is_logged_beside_test_every_evaluated_round(digits, tmp_path):
    from gptfl_ray.fl.metrics import evaluate
    from gptfl_ray.models.factory import ModelFactory

    res = run(digits, tmp_path, rounds=4, eval_every=2)
    rows = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["round"] for r in rows] == [0, 2, 4]
    for r in rows:
        assert {"val_accuracy", "val_macro_f1", "val_loss", "accuracy", "macro_f1", "loss"} <= set(r)
    # each key is the model scored on its own split: validation on x_val, test on x_test
    model = ModelFactory("mlp", digits.input_shape, digits.num_classes, "default", seed=0)()
    on = lambda x, y: evaluate(model, res.params, torch.from_numpy(digits.prepare(x)), torch.from_numpy(y))  # noqa: E731
    val, test = on(digits.x_val, digits.y_val), on(digits.x_test, digits.y_test)
    assert rows[-1]["val_accuracy"] == val["accuracy"] and rows[-1]["val_loss"] == val["loss"]
    assert rows[-1]["accuracy"] == test["accuracy"] and rows[-1]["loss"] == test["loss"]
    assert rows[-1]["val_loss"] != rows[-1]["loss"]
