"""End to end: `gptfl-ray simulate` on a tiny digits config, and its bad-input guards."""

import json

import pytest
from typer.testing import CliRunner

from gptfl_ray.cli.main import app

runner = CliRunner()
TINY = [
    "--clients",
    "8",
    "--clients-per-round",
    "4",
    "--rounds",
    "3",
    "--local-epochs",
    "1",
    "--per-class",
    "12",
    "--pretrain-epochs",
    "2",
    "--alpha",
    "0.5",
]


def simulate(*args):
    return runner.invoke(app, ["simulate", *args])


@pytest.mark.slow
def test_simulate_end_to_end_on_ray(tmp_path):
    """Every stage on Ray: Ray Data generation, Ray Train pre-training, the actor-pool engine."""
    run = tmp_path / "run"
    res = simulate(*TINY, "--output-dir", str(run), "--num-actors", "2", "--client-cpus", "0.5")
    assert res.exit_code == 0, res.output
    summary = json.loads((run / "summary.json").read_text())
    assert set(summary["variants"]) == {"fedavg", "synthetic", "gptfl"}
    for name in ("fedavg", "gptfl"):
        v = summary["variants"][name]
        assert v["final_round"] == 3 and 0 <= v["final_accuracy"] <= 1
        assert v["cum_bytes"] == 3 * (4 + 4) * v["num_params"] * 4
        assert [r for r, _ in v["accuracy_per_round"]] == [0, 1, 2, 3]
    assert summary["variants"]["synthetic"]["final_round"] == 0
    # GPT-FL starts from the pre-trained model: its round-0 accuracy is the synthetic model's.
    assert summary["variants"]["gptfl"]["accuracy_per_round"][0][1] == pytest.approx(
        summary["variants"]["synthetic"]["final_accuracy"]
    )
    for png in ("accuracy_vs_rounds.png", "accuracy_vs_bytes.png", "gradient_diversity.png"):
        assert (run / "plots" / png).stat().st_size > 1000
    assert (run / "pretrain" / "model.safetensors").exists() and (run / "synthetic" / "manifest.json").exists()
    assert "[federate.fl]" in (run / "config.toml").read_text()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_fgl_after_fl_variants_on_ray_gets_the_cpus_back(tmp_path):
    """FGL's one-shot stage (Ray Data generation, Ray Train) runs after the FL variants, whose
    executor actors (2 x 1 CPU) hold every CPU of the 2-CPU Ray: the run's pool must let go of
    them first, or generation waits for resources forever."""
    run = tmp_path / "run"
    res = simulate(
        *TINY, "--variants", "fedavg,fgl", "--fgl-rounds", "1", "--num-actors", "2", "--client-cpus", "1",
        "--output-dir", str(run),
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    summary = json.loads((run / "summary.json").read_text())
    assert set(summary["variants"]) == {"fedavg", "fgl", "fgl_rounds"}
    assert summary["variants"]["fgl_rounds"]["final_round"] == 2


def test_rerun_reuses_stages_and_extends_rounds(tmp_path):
    run = tmp_path / "run"
    local = [*TINY, "--backend", "local", "--train-workers", "0", "--output-dir", str(run)]
    assert simulate(*local).exit_code == 0
    model = run / "pretrain" / "model.safetensors"
    stamp = model.stat().st_mtime_ns
    shards = {p: p.stat().st_mtime_ns for p in (run / "synthetic").glob("*.parquet")}
    res = simulate(*[a if a != "3" else "4" for a in local])  # --rounds 4: resumes from round 3
    assert res.exit_code == 0, res.output
    assert model.stat().st_mtime_ns == stamp
    assert {p: p.stat().st_mtime_ns for p in (run / "synthetic").glob("*.parquet")} == shards
    summary = json.loads((run / "summary.json").read_text())
    assert summary["variants"]["gptfl"]["final_round"] == 4
    # validation beside test for every variant, and per pre-training epoch
    for name in ("fedavg", "synthetic", "gptfl"):
        assert 0 <= summary["variants"][name]["final_val_accuracy"] <= 1
    assert len(summary["variants"]["gptfl"]["val_accuracy_per_round"]) == 5
    pre = json.loads((run / "pretrain" / "metrics.json").read_text())
    assert all("val_accuracy" in h for h in pre["history"]) and "val_accuracy" in pre["best"]


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--target-accuracy", "0"], "--target-accuracy"),
        (["--target-accuracy", "1.5"], "--target-accuracy"),
        (["--variants", "fedavg,magic"], "--variants"),
        (["--per-class", "0"], "--per-class"),
        (["--per-class", "5", "--scale", "2"], "--per-class"),
        (["--generator", "dalle9"], "--generator"),
        (["--init-pretrained"], "--init-pretrained"),  # cnn has no ImageNet weights
    ],
)
def test_bad_input(tmp_path, args, needle):
    run = tmp_path / "run"
    res = simulate(*TINY, "--backend", "local", "--train-workers", "0", "--output-dir", str(run), *args)
    assert res.exit_code == 2, res.output
    assert needle in res.output and "Traceback" not in res.output
    assert len(res.output.strip().splitlines()) == 1, res.output


def test_run_dir_of_another_dataset_is_kept(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.toml").write_text('[federate.data]\ndataset = "mnist"\n')
    res = simulate(*TINY, "--backend", "local", "--output-dir", str(run))
    assert res.exit_code == 2 and "mnist" in res.output
    assert (run / "config.toml").read_text() == '[federate.data]\ndataset = "mnist"\n'
