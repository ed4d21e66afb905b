"""Experiment tracking as optional sinks: `--track tensorboard,mlflow`.

A `Tracker` fans one stream out to its sinks: the resolved config once (as parameters), one
metrics row per evaluated FL round while the round loop runs (its `on_round` callback) or per
pre-training epoch, the run's summary, and files (model, plots, config.toml) as artifacts.
Metric names are `<stage>/<key>`: `gptfl/val_accuracy`, `pretrain/train_loss`, ...

Sinks hold no state the run depends on: metrics.jsonl stays the record, and `backfill` sends
any row a sink did not see live (a resumed run's earlier rounds, pre-training's epochs), so a
tracked run always shows the whole history.

Both libraries are optional (`pip install 'gptfl-ray[track]'`); asking for a sink whose
library is missing fails before any work starts.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from gptfl_ray.errors import ConfigError

SINKS = ("tensorboard", "mlflow")
MLFLOW_DIR = "mlruns"
TENSORBOARD_DIR = "tensorboard"


def flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def numeric(row: dict) -> dict[str, float]:
    """The finite numbers of a metrics row (booleans, strings, NaN and the step key dropped)."""
    out = {}
    for k, v in row.items():
        if k in ("round", "epoch") or isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        if math.isfinite(v):
            out[k] = float(v)
    return out


class TensorBoardSink:
    name = "tensorboard"

    def __init__(self, log_dir: Path):
        from torch.utils.tensorboard import SummaryWriter

        self.log_dir = Path(log_dir)
        self.writer = SummaryWriter(log_dir=str(self.log_dir))

    def log_params(self, params: dict[str, Any]) -> None:
        # TensorBoard has no parameter table outside its HParams plugin; the config reads as text
        text = "\n".join(f"    {k} = {v!r}" for k, v in sorted(params.items()))
        self.writer.add_text("config", text, 0)

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        for k, v in metrics.items():
            self.writer.add_scalar(k, v, step)

    def log_artifact(self, path: Path, folder: str | None = None) -> None:
        if path.suffix == ".png":  # images are what TensorBoard can show; other files stay in the run dir
            import numpy as np
            from matplotlib.image import imread

            img = imread(str(path))
            if img.ndim == 3 and img.shape[2] == 4:
                img = img[:, :, :3]
            self.writer.add_image(f"plots/{path.stem}", np.asarray(img), 0, dataformats="HWC")

    def close(self) -> None:
        self.writer.flush()
        self.writer.close()


class MLflowSink:
    name = "mlflow"
    PARAM_BATCH = 100  # MLflow's limit of parameters per log_batch call

    def __init__(self, tracking_uri: str, experiment: str, run_name: str):
        import os

        import mlflow

        if tracking_uri.startswith("file:") or "://" not in tracking_uri:
            # MLflow 3.x keeps its file store in maintenance mode behind this opt-in; a file
            # store needs no server and no database, which is what a run directory wants
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        self.client = mlflow.MlflowClient(tracking_uri=tracking_uri)
        self.tracking_uri = tracking_uri
        exp = self.client.get_experiment_by_name(experiment)
        exp_id = exp.experiment_id if exp is not None else self.client.create_experiment(experiment)
        self.run = self.client.create_run(exp_id, run_name=run_name, tags={"mlflow.source.name": "gptfl-ray"})
        self.run_id = self.run.info.run_id

    def log_params(self, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, "None" if v is None else str(v)[:6000]) for k, v in sorted(params.items())]
        for s in range(0, len(items), self.PARAM_BATCH):
            self.client.log_batch(self.run_id, params=items[s : s + self.PARAM_BATCH])

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(k, v, now, int(step)) for k, v in metrics.items()]
        for s in range(0, len(items), 1000):
            self.client.log_batch(self.run_id, metrics=items[s : s + 1000])

    def log_artifact(self, path: Path, folder: str | None = None) -> None:
        self.client.log_artifact(self.run_id, str(path), artifact_path=folder)

    def close(self, status: str = "FINISHED") -> None:
        self.client.set_terminated(self.run_id, status=status)


def parse_track(value: str | None) -> tuple[str, ...]:
    if not value:
        return ()
    names = tuple(dict.fromkeys(v.strip().lower() for v in value.split(",") if v.strip()))
    for n in names:
        if n not in SINKS:
            raise ConfigError("track", f"unknown sink {n!r}; choose from {', '.join(SINKS)}")
    return names


def _require(module: str, sink: str) -> None:
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise ConfigError("track", f"{sink} needs the {module} package: pip install 'gptfl-ray[track]'")


def check_track(track: str | None) -> tuple[str, ...]:
    """The sink names, each with its library present; raises ConfigError naming --track."""
    names = parse_track(track)
    for n in names:
        _require({"tensorboard": "tensorboard", "mlflow": "mlflow"}[n], n)
    return names


def default_mlflow_uri(run_dir: Path) -> str:
    """A local file store under the run directory."""
    return (Path(run_dir).resolve() / MLFLOW_DIR).as_uri()


class Tracker:
    """Fans metrics, parameters and artifacts out to the chosen sinks; a no-op with none."""

    def __init__(self, sinks: Iterable = ()):
        self.sinks = list(sinks)
        self._seen: set[tuple[str, int]] = set()

    @classmethod
    def create(
        cls,
        track: str | None,
        run_dir: str | Path,
        mlflow_uri: str | None = None,
        experiment: str = "gptfl-ray",
        run_name: str | None = None,
    ) -> Tracker:
        names = check_track(track)  # every check before a sink writes anything
        run_dir = Path(run_dir)
        sinks = []
        for n in names:
            if n == "tensorboard":
                sinks.append(TensorBoardSink(run_dir / TENSORBOARD_DIR))
            else:
                sinks.append(
                    MLflowSink(mlflow_uri or default_mlflow_uri(run_dir), experiment, run_name or run_dir.name)
                )
        return cls(sinks)

    def __bool__(self) -> bool:
        return bool(self.sinks)

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(failed=exc_type is not None)

    def log_config(self, config: dict) -> None:
        params = flatten(config)
        for s in self.sinks:
            s.log_params(params)

    def log_row(self, stage: str, row: dict, step_key: str = "round") -> None:
        step = int(row.get(step_key, 0))
        metrics = {f"{stage}/{k}": v for k, v in numeric(row).items()}
        if not metrics or (stage, step) in self._seen:
            return
        self._seen.add((stage, step))
        for s in self.sinks:
            s.log_metrics(metrics, step)

    def on_round(self, stage: str) -> Callable[[dict], None]:
        """A callback for the round loop: logs each evaluated round's metrics as it arrives."""
        return lambda row: self.log_row(stage, row) if len(row) > 1 else None

    def backfill(self, stage: str, rows: Iterable[dict], step_key: str = "round") -> None:
        for r in rows:
            self.log_row(stage, r, step_key)

    def backfill_run(self, run_dir: str | Path, summary: dict | None = None) -> None:
        """Everything a finished run directory holds that a sink has not seen."""
        run = Path(run_dir)
        pre = run / "pretrain" / "metrics.json"
        if pre.is_file():
            self.backfill("pretrain", json.loads(pre.read_text("utf-8"))["history"], step_key="epoch")
        for metrics in sorted(run.glob("federate/*/metrics.jsonl")):
            self.backfill(metrics.parent.name, read_jsonl(metrics))
        if (run / "metrics.jsonl").is_file():  # a `federate` run directory
            self.backfill("federate", read_jsonl(run / "metrics.jsonl"))
        if summary:
            for name, v in summary.get("variants", {}).items():
                finals = {
                    k: v[k]
                    for k in (
                        "final_accuracy",
                        "final_macro_f1",
                        "final_val_accuracy",
                        "rounds_to_target",
                        "bytes_to_target",
                        "cum_bytes",
                    )
                    if v.get(k) is not None
                }
                self.log_row(f"summary/{name}", {"round": v.get("final_round", 0), **finals})

    def log_artifacts(self, paths: Iterable[tuple[Path, str | None]]) -> None:
        for path, folder in paths:
            if Path(path).is_file():
                for s in self.sinks:
                    s.log_artifact(Path(path), folder)

    def log_run_artifacts(self, run_dir: str | Path) -> None:
        """The final models, the plots, config.toml and summary.json."""
        run = Path(run_dir)
        files: list[tuple[Path, str | None]] = [(run / "config.toml", None), (run / "summary.json", None)]
        files += [(p, "plots") for p in sorted(run.glob("plots/*.png"))]
        files += [(run / "pretrain" / "model.safetensors", "models/pretrain"), (run / "model.safetensors", "models")]
        files += [(p, f"models/{p.parent.name}") for p in sorted(run.glob("federate/*/model.safetensors"))]
        self.log_artifacts(files)

    def close(self, failed: bool = False) -> None:
        for s in self.sinks:
            if isinstance(s, MLflowSink):
                s.close("FAILED" if failed else "FINISHED")
            else:
                s.close()
        self.sinks = []


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text("utf-8").splitlines() if line.strip()]
