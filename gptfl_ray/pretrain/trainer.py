"""Wiring: Ray Train's `TorchTrainer` around `train_loop_per_worker` (DESIGN rule 8).

Writes `pretrain/model.safetensors` (the last epoch, what GPT-FL hands to the clients),
`pretrain/best.safetensors` (the epoch with the best real-validation accuracy, kept for
reference) and `pretrain/metrics.json` (validation and test per epoch; "best" is chosen on
validation, the test columns are only reported).
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from gptfl_ray.data.base import Dataset
from gptfl_ray.fl.loop import ModelFactory
from gptfl_ray.models.export import model_metadata, stamp_metadata
from gptfl_ray.pretrain.config import PretrainConfig
from gptfl_ray.pretrain.train_loop import numpy_payload, train_loop_per_worker
from gptfl_ray.runio import atomic_write_json


@dataclass
class PretrainResult:
    model_path: Path
    best_path: Path
    history: list[dict]
    wall_s: float

    @property
    def final(self) -> dict:
        return self.history[-1]


def _loop_config(cfg: PretrainConfig, factory: ModelFactory, dataset: Dataset) -> dict:
    return {
        "model_fn": factory, "seed": cfg.seed, "epochs": cfg.epochs, "batch_size": cfg.batch_size,
        "lr": cfg.lr, "momentum": cfg.momentum, "weight_decay": cfg.weight_decay, "augment": cfg.augment,
        "dataset": dataset.name, "modality": dataset.modality,
    }


def pretrain(
    cfg: PretrainConfig,
    factory: ModelFactory,
    dataset: Dataset,
    x_syn_raw: np.ndarray,
    y_syn: np.ndarray,
    out_dir: str | Path,
    on_epoch: Callable[[int], None] | None = None,
    init_params: np.ndarray | None = None,
) -> PretrainResult:
    """Train on synthetic samples (raw, the data set's own units); evaluate on the real test set."""
    t0 = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    payload = numpy_payload(dataset.prepare(x_syn_raw), y_syn, dataset.prepare(dataset.x_test), dataset.y_test,
                            dataset.prepare(dataset.x_val) if dataset.has_validation else None, dataset.y_val)
    loop_cfg = {**_loop_config(cfg, factory, dataset), "init_params": init_params}

    if cfg.train_workers == 0:
        final: dict[str, str] = {}

        def report(row, ckpt_dir):
            final["dir"] = ckpt_dir
            _copy_checkpoint(Path(ckpt_dir), out)
            if on_epoch:
                on_epoch(row["epoch"])

        train_loop_per_worker({**loop_cfg, "data": payload, "in_ray": False, "report": report, "threads": 1})
    else:
        _fit_with_ray_train(cfg, loop_cfg, payload, out, on_epoch)
    history = json.loads((out / "history.json").read_text())
    meta = model_metadata(factory.name, factory.norm, dataset)  # gptfl_ray.load_model needs only the file
    for name in ("model.safetensors", "best.safetensors"):
        stamp_metadata(out / name, meta)
    atomic_write_json(out / "metrics.json", {"history": history, "final": history[-1],
                                             "best": best_epoch(history)})
    return PretrainResult(out / "model.safetensors", out / "best.safetensors", history, time.perf_counter() - t0)


def best_epoch(history: list[dict]) -> dict:
    """The epoch with the best validation accuracy (the first on ties); the last without validation."""
    if not all("val_accuracy" in r for r in history):
        return history[-1]
    return max(history, key=lambda r: (r["val_accuracy"], -r["epoch"]))


def _copy_checkpoint(src: Path, out: Path) -> None:
    for name, dest in (("last.safetensors", "model.safetensors"), ("best.safetensors", "best.safetensors"), ("history.json", "history.json")):
        tmp = out / f".{dest}.tmp"
        shutil.copyfile(src / name, tmp)
        tmp.replace(out / dest)


def _fit_with_ray_train(cfg: PretrainConfig, loop_cfg: dict, payload: dict, out: Path, on_epoch) -> None:
    import ray
    from ray.train import CheckpointConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    storage = (out / "ray_train").resolve()
    use_gpu = cfg.train_gpus > 0
    resources = {"CPU": 1, **({"GPU": cfg.train_gpus} if use_gpu else {})}
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={**loop_cfg, "data": ray.put(payload), "in_ray": True, "threads": 1},
        scaling_config=ScalingConfig(num_workers=cfg.train_workers, use_gpu=use_gpu, resources_per_worker=resources),
        run_config=RunConfig(name="pretrain", storage_path=str(storage), checkpoint_config=CheckpointConfig(num_to_keep=None)),
    )
    stop = threading.Event()
    if on_epoch:  # Ray Train blocks in fit(); follow its checkpoints to drive the progress bar
        def watch():
            while not stop.wait(0.5):
                done = [d for d in storage.glob("pretrain/checkpoint_*") if d.is_dir()] if storage.exists() else []
                on_epoch(min(len(done), cfg.epochs))

        threading.Thread(target=watch, daemon=True).start()
    try:
        result = trainer.fit()
    finally:
        stop.set()
    if result.checkpoint is None:
        raise RuntimeError(f"Ray Train finished without a checkpoint: {result.error}")
    with result.checkpoint.as_directory() as d:
        _copy_checkpoint(Path(d), out)
    shutil.rmtree(storage, ignore_errors=True)
