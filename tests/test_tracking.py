"""`--track tensorboard,mlflow`: what a run sends to each sink, read back with the real libraries
(tensorboard's EventAccumulator, MLflow's client), and compared with the run's own files."""

import json

import pytest
from typer.testing import CliRunner

from gptfl_ray.cli.main import app
from gptfl_ray.errors import ConfigError
from gptfl_ray.tracking import Tracker, flatten, parse_track

pytest.importorskip("tensorboard")
pytest.importorskip("mlflow")

from mlflow import MlflowClient  # noqa: E402
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

TINY = [
    "--rounds",
    "3",
    "--clients",
    "6",
    "--clients-per-round",
    "3",
    "--model",
    "mlp",
    "--local-epochs",
    "1",
    "--backend",
    "local",
    "--lr",
    "0.05",
]


@pytest.fixture(scope="module")
def tracked_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("tracked") / "run"
    res = CliRunner().invoke(app, ["federate", *TINY, "--track", "tensorboard,mlflow", "--output-dir", str(out)])
    assert res.exit_code == 0, res.output
    rows = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    return out, rows


def _tb(out):
    ea = EventAccumulator(str(out / "tensorboard"), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    ea.Reload()
    return ea


def _mlflow_run(out):
    client = MlflowClient(tracking_uri=(out / "mlruns").resolve().as_uri())
    exp = client.get_experiment_by_name("gptfl-ray")
    (run,) = client.search_runs([exp.experiment_id])
    return client, run


def test_tensorboard_scalars_equal_metrics_jsonl(tracked_run):
    out, rows = tracked_run
    ea = _tb(out)
    for key in ("accuracy", "val_accuracy", "loss", "cum_bytes"):
        got = [(s.step, s.value) for s in ea.Scalars(f"federate/{key}")]
        assert got == [(r["round"], pytest.approx(r[key], rel=1e-6)) for r in rows], key
    assert "plots/partition" in ea.Tags()["images"]


def test_mlflow_run_holds_config_metrics_model_and_plots(tracked_run, monkeypatch):
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    out, rows = tracked_run
    client, run = _mlflow_run(out)
    assert run.info.status == "FINISHED"
    params = run.data.params
    assert params["federate.fl.lr"] == "0.05" and params["federate.data.clients"] == "6"
    assert params["federate.model.name"] == "mlp"
    hist = client.get_metric_history(run.info.run_id, "federate/val_accuracy")
    assert [(m.step, m.value) for m in sorted(hist, key=lambda m: m.step)] == [
        (r["round"], pytest.approx(r["val_accuracy"])) for r in rows
    ]
    top = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config.toml", "plots", "models"} <= top
    assert {a.path for a in client.list_artifacts(run.info.run_id, "models")} == {"models/model.safetensors"}
    assert "plots/partition.png" in {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
    local = client.download_artifacts(run.info.run_id, "models/model.safetensors", str(out.parent / "dl"))
    assert open(local, "rb").read() == (out / "model.safetensors").read_bytes()


def test_backfill_sends_what_the_sinks_missed_once(tmp_path):
    """A resumed run's earlier rounds and pre-training's epochs reach the sinks from the files;
    rows already seen live are not sent twice."""
    run = tmp_path / "run"
    (run / "pretrain").mkdir(parents=True)
    (run / "pretrain" / "metrics.json").write_text(
        json.dumps(
            {
                "history": [
                    {"epoch": 1, "train_loss": 2.0, "accuracy": 0.3, "val_accuracy": 0.35},
                    {"epoch": 2, "train_loss": 1.5, "accuracy": 0.5, "val_accuracy": 0.55},
                ]
            }
        )
    )
    (run / "federate" / "gptfl").mkdir(parents=True)
    rows = [{"round": r, "accuracy": 0.5 + r / 10, "val_accuracy": 0.4 + r / 10} for r in range(3)]
    (run / "federate" / "gptfl" / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with Tracker.create("tensorboard", run) as tracker:
        tracker.on_round("gptfl")(rows[2])  # seen live
        tracker.on_round("gptfl")({"round": 1})  # an unevaluated round: nothing to log
        tracker.backfill_run(run, {"variants": {"gptfl": {"final_accuracy": 0.7, "final_round": 2}}})
    ea = _tb(run)
    assert [(s.step, round(s.value, 6)) for s in ea.Scalars("gptfl/accuracy")] == [(2, 0.7), (0, 0.5), (1, 0.6)]
    assert [s.step for s in ea.Scalars("pretrain/train_loss")] == [1, 2]
    assert [s.value for s in ea.Scalars("summary/gptfl/final_accuracy")] == [pytest.approx(0.7)]


def test_parse_and_flatten():
    assert parse_track("mlflow, tensorboard,mlflow") == ("mlflow", "tensorboard")
    assert parse_track(None) == ()
    with pytest.raises(ConfigError, match="track"):
        parse_track("wandb")
    assert flatten({"a": {"b": {"c": 1}}, "d": 2}) == {"a.b.c": 1, "d": 2}


def test_unknown_sink_is_one_line_before_any_work(tmp_path):
    out = tmp_path / "run"
    res = CliRunner().invoke(app, ["federate", *TINY, "--track", "wandb", "--output-dir", str(out)])
    assert res.exit_code == 2 and "--track" in res.output and "Traceback" not in res.output
    assert not out.exists()
