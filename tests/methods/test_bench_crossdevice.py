"""`gptfl-ray bench privacy|devices` on tiny local settings: rows, the privacy actually spent,
the round policies, and one-line errors."""

import json

import pytest
from typer.testing import CliRunner

from gptfl_ray.bench_crossdevice import time_to_accuracy
from gptfl_ray.cli.main import app

runner = CliRunner()
TINY = [
    "--clients",
    "6",
    "--rounds",
    "2",
    "--local-epochs",
    "1",
    "--per-class",
    "8",
    "--pretrain-epochs",
    "1",
    "--backend",
    "local",
    "--train-workers",
    "0",
    "--alpha",
    "0.5",
    "--sample-rate",
    "0.5",
]


def test_privacy_rows_per_budget_and_method(tmp_path):
    res = runner.invoke(
        app, ["bench", "privacy", *TINY, "--epsilons", "2,50", "--seeds", "1", "--output-dir", str(tmp_path)]
    )
    assert res.exit_code == 0, res.output
    out = json.loads((tmp_path / "bench.json").read_text())
    assert {(r["epsilon"], r["method"]) for r in out["rows"]} == {
        (e, m) for e in (None, 2.0, 50.0) for m in ("fedavg", "gptfl")
    }
    for r in out["runs"]:
        if r["epsilon_target"] is None:
            assert r["epsilon_spent"] is None and r["noise_multiplier"] is None
        else:  # the accountant's epsilon after the last round meets the budget, and barely
            assert r["epsilon_spent"] <= r["epsilon_target"] and r["epsilon_spent"] == pytest.approx(
                r["epsilon_target"], rel=0.02
            )
    z = {r["epsilon"]: r["noise_multiplier"] for r in out["rows"]}
    assert z[2.0] > z[50.0] > 0  # a smaller budget takes more noise
    assert (tmp_path / "privacy.png").exists() and "no DP" in res.output


def test_devices_rows_per_policy_and_method(tmp_path):
    res = runner.invoke(
        app,
        [
            "bench",
            "devices",
            *TINY,
            "--seeds",
            "1",
            "--deadline-quantile",
            "0.5",
            "--over-select-factor",
            "1.5",
            "--output-dir",
            str(tmp_path),
        ],
    )
    assert res.exit_code == 0, res.output
    out = json.loads((tmp_path / "bench.json").read_text())
    rows = {(r["policy"], r["method"]): r for r in out["rows"]}
    assert set(rows) == {(p, m) for p in ("wait-all", "deadline", "over-select") for m in ("fedavg", "gptfl")}
    runs = {(r["policy"], r["method"]): r for r in out["runs"]}
    assert runs["wait-all", "fedavg"]["stragglers"] == 0 and runs["wait-all", "fedavg"]["surplus"] == 0
    assert runs["over-select", "fedavg"]["surplus"] > 0
    # who trains when depends on the devices, not on the method: the same clocks for both
    for p in ("wait-all", "deadline", "over-select"):
        assert runs[p, "fedavg"]["sim_time_s"] == runs[p, "gptfl"]["sim_time_s"]
    # waiting for everyone is never faster than cutting the round at a deadline
    assert runs["deadline", "fedavg"]["sim_time_s"] <= runs["wait-all", "fedavg"]["sim_time_s"]
    assert (tmp_path / "devices.png").exists()


def test_time_to_accuracy():
    curve = [[0.0, 0.1], [1.5, 0.5], [3.0, 0.8]]
    assert time_to_accuracy(curve, 0.5) == 1.5 and time_to_accuracy(curve, 0.9) is None


@pytest.mark.parametrize(
    "args, needle",
    [
        (["privacy", "--epsilons", "0,2"], "--epsilons"),
        (["privacy", "--epsilons", "x"], "--epsilons"),
        (["privacy", "--dp-clip", "-1"], "--dp-clip"),
        (["devices", "--deadline-quantile", "0"], "--deadline-quantile"),
        (["devices", "--deadline", "3"], "--deadline"),
        (["devices", "--devices", "phones"], "--devices"),
    ],
)
def test_bad_input(tmp_path, args, needle):
    res = runner.invoke(app, ["bench", *args, "--backend", "local", "--output-dir", str(tmp_path / "b")])
    assert res.exit_code == 2 and needle in res.output, res.output
    assert len(res.output.strip().splitlines()) == 1
