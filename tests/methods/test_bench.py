"""`gptfl-ray bench sampling|comm` on tiny local settings: shapes of the results, honesty about
unreached targets, and one-line errors."""

import json

import pytest
from typer.testing import CliRunner

from gptfl_ray.cli.main import app

runner = CliRunner()
TINY = [
    "--clients",
    "6",
    "--rounds",
    "1",
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
]


def test_sampling_rows_per_rate_and_method(tmp_path):
    res = runner.invoke(
        app, ["bench", "sampling", *TINY, "--rates", "1,3", "--seeds", "2", "--output-dir", str(tmp_path)]
    )
    assert res.exit_code == 0, res.output
    out = json.loads((tmp_path / "bench.json").read_text())
    assert {(r["clients_per_round"], r["method"]) for r in out["rows"]} == {
        (1, "fedavg"),
        (1, "gptfl"),
        (3, "fedavg"),
        (3, "gptfl"),
    }
    assert all(r["n"] == 2 for r in out["rows"])
    assert len(out["runs"]) == 8 and (tmp_path / "sampling.png").exists()
    # one synthetic set and one pre-trained model per seed, shared by every rate
    assert sorted(p.name for p in tmp_path.glob("seed*/pretrain/model.safetensors")) == ["model.safetensors"] * 2


def test_comm_reports_unreached_targets(tmp_path):
    res = runner.invoke(
        app,
        [
            "bench",
            "comm",
            *TINY,
            "--clients-per-round",
            "2",
            "--targets",
            "0.05,1.0",
            "--strategies",
            "fedavg,fedadam",
            "--output-dir",
            str(tmp_path),
        ],
    )
    assert res.exit_code == 0, res.output
    rows = json.loads((tmp_path / "bench.json").read_text())["rows"]
    assert len(rows) == 2 * 2 * 2
    easy = [r for r in rows if r["target"] == 0.05]
    assert all(r["reached"] and r["rounds"] == 0 and r["bytes"] == 0 for r in easy)  # round 0 already beats 5%
    perfect = [r for r in rows if r["target"] == 1.0]
    assert all(not r["reached"] and r["bytes"] is None for r in perfect)
    assert "not reached" in res.output


@pytest.mark.parametrize(
    "args, needle",
    [
        (["sampling", "--rates", "0,2"], "--rates"),
        (["sampling", "--rates", "a"], "--rates"),
        (["sampling", "--rates", "500"], "--rates"),
        (["comm", "--targets", "0,0.5"], "--targets"),
        (["comm", "--strategies", "fedfoo"], "--strategies"),
    ],
)
def test_bad_input(tmp_path, args, needle):
    res = runner.invoke(app, ["bench", *args, "--backend", "local", "--output-dir", str(tmp_path / "b")])
    assert res.exit_code == 2 and needle in res.output, res.output
    assert len(res.output.strip().splitlines()) == 1
