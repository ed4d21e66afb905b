"""Wiring: Ray Train's `TorchTrainer` around `train_loop_per_worker` (docs/architecture.md rule 8).

`pretrain_on_shards` feeds the synthetic Parquet shards through Ray Data into Ray Train
(`TorchTrainer(datasets={"train": ...})`, decoded and prepared in Ray Data tasks, ingest.py), so
no process holds the whole synthetic set; `--train-workers 0` trains in this process on the
same shards, read into memory. `pretrain` takes arrays already in memory (the baseline the
benchmark compares against, and callers that made their own samples).

Writes `pretrain/model.safetensors` (the last epoch, what GPT-FL hands to the clients),
`pretrain/best.safetensors` (the epoch with the best real-validation accuracy, kept for
reference) and `pretrain/metrics.json` (validation and test per epoch; "best" is chosen on
validation, the test columns are only reported).

Resume: Ray Train keeps only the latest checkpoint (`num_to_keep=1`: the last weights, the
best weights, history and optimizer state are all in it) under `pretrain/ray_train/`; a rerun
with the same settings restores it (Ray Train's run snapshot) and continues at the next epoch.
The in-process path keeps the same checkpoint in `pretrain/.resume/`. Both are removed once
training finishes. Progress comes from Ray Train's reports (a callback on each report).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gptfl_ray.data.base import Dataset
from gptfl_ray.faults import fault_point
from gptfl_ray.models.export import model_metadata, stamp_metadata
from gptfl_ray.models.factory import ModelFactory
from gptfl_ray.pretrain.config import PretrainConfig
from gptfl_ray.pretrain.train_loop import eval_payload, train_loop_per_worker
from gptfl_ray.runio import atomic_write_json

RESUME_DIR = ".resume"
POLL_ENV, POLL_S = "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.2"
FINGERPRINT = "settings.json"


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
        "model_fn": factory,
        "seed": cfg.seed,
        "epochs": cfg.epochs,
        "batch_size": cfg.batch_size,
        "lr": cfg.lr,
        "momentum": cfg.momentum,
        "weight_decay": cfg.weight_decay,
        "augment": cfg.augment,
        "dataset": dataset.name,
        "modality": dataset.modality,
    }


def _held_out(dataset: Dataset) -> dict:
    return eval_payload(
        dataset.prepare(dataset.x_test),
        dataset.y_test,
        dataset.prepare(dataset.x_val) if dataset.has_validation else None,
        dataset.y_val,
    )


def pretrain_on_shards(
    cfg: PretrainConfig,
    factory: ModelFactory,
    dataset: Dataset,
    synth_run_dir: str | Path,
    out_dir: str | Path,
    on_epoch: Callable[[int], None] | None = None,
    init_params: np.ndarray | None = None,
    epoch_budget: int | None = None,
) -> PretrainResult:
    """Train on `<synth_run_dir>/synthetic/` (verified against its manifest); evaluate on real data.

    `epoch_budget` trains at most that many more epochs in this call and keeps the resume state
    (the next call continues), as an interruption would."""
    from gptfl_ray.synth.store import load_synthetic, read_manifest

    manifest = read_manifest(synth_run_dir)
    if cfg.train_workers == 0:
        x, y = load_synthetic(synth_run_dir, dataset)
        return pretrain(
            cfg,
            factory,
            dataset,
            x,
            y,
            out_dir,
            on_epoch,
            init_params,
            data_sha256=manifest.get("sha256"),
            epoch_budget=epoch_budget,
        )
    from gptfl_ray.pretrain.ingest import synthetic_train_dataset

    t0 = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    loop_cfg = {
        **_loop_config(cfg, factory, dataset),
        "init_params": init_params,
        "num_rows": int(manifest["total_rows"]),
        "epoch_budget": epoch_budget,
    }
    train = cached(synthetic_train_dataset(synth_run_dir, dataset), loop_cfg["num_rows"], dataset.input_shape)
    _fit_with_ray_train(
        cfg,
        loop_cfg,
        {"train": train},
        _held_out(dataset),
        out,
        on_epoch,
        _fingerprint(loop_cfg, manifest.get("sha256")),
    )
    return _finish(out, t0, factory, dataset)


def pretrain(
    cfg: PretrainConfig,
    factory: ModelFactory,
    dataset: Dataset,
    x_syn_raw: np.ndarray,
    y_syn: np.ndarray,
    out_dir: str | Path,
    on_epoch: Callable[[int], None] | None = None,
    init_params: np.ndarray | None = None,
    data_sha256: str | None = None,
    epoch_budget: int | None = None,
) -> PretrainResult:
    """Train on synthetic samples in memory (raw, the data set's own units); evaluate on real data."""
    t0 = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    train = {
        "x": np.ascontiguousarray(dataset.prepare(x_syn_raw), dtype=np.float32),
        "y": np.ascontiguousarray(y_syn, dtype=np.int64),
    }
    loop_cfg = {
        **_loop_config(cfg, factory, dataset),
        "init_params": init_params,
        "num_rows": len(y_syn),
        "epoch_budget": epoch_budget,
    }
    digest = data_sha256 or hashlib.sha256(train["x"].tobytes() + train["y"].tobytes()).hexdigest()
    fingerprint = _fingerprint(loop_cfg, digest)
    if cfg.train_workers == 0:
        _fit_in_process(loop_cfg, train, _held_out(dataset), out, on_epoch, fingerprint)
    else:
        import ray

        _fit_with_ray_train(
            cfg, {**loop_cfg, "data": ray.put(train)}, None, _held_out(dataset), out, on_epoch, fingerprint
        )
    return _finish(out, t0, factory, dataset)


# Prepared synthetic sets up to this size are decoded once and kept in Ray's object store for all
# epochs (1,300 digits: 0.3 MB; CIFAR-10 at 1x: 0.6 GB); larger ones are re-read every epoch.
CACHE_MAX_BYTES = 1 << 30


def cached(train, num_rows: int, input_shape: tuple[int, ...], max_bytes: int = CACHE_MAX_BYTES):
    """The Ray Dataset materialised once, in read order, when its prepared float32 rows fit
    `max_bytes`: otherwise every epoch re-runs the Parquet read and the PNG/WAV decode in fresh
    Ray Data tasks (about 2 s an epoch on the digits, against 0.3 s of training). Blocks keep the
    read order, so an epoch's seeded local shuffle sees the same rows as the streamed dataset's."""
    if num_rows * int(np.prod(input_shape)) * 4 > max_bytes:
        return train
    train.context.execution_options.preserve_order = True
    return train.materialize()


def _finish(out: Path, t0: float, factory: ModelFactory, dataset: Dataset) -> PretrainResult:
    history = json.loads((out / "history.json").read_text())
    meta = model_metadata(factory.name, factory.norm, dataset)  # gptfl_ray.load_model needs only the file
    for name in ("model.safetensors", "best.safetensors"):
        stamp_metadata(out / name, meta)
    atomic_write_json(out / "metrics.json", {"history": history, "final": history[-1], "best": best_epoch(history)})
    return PretrainResult(out / "model.safetensors", out / "best.safetensors", history, time.perf_counter() - t0)


def best_epoch(history: list[dict]) -> dict:
    """The epoch with the best validation accuracy (the first on ties); the last without validation."""
    if not all("val_accuracy" in r for r in history):
        return history[-1]
    return max(history, key=lambda r: (r["val_accuracy"], -r["epoch"]))


def _fingerprint(loop_cfg: dict, data_sha256: str | None) -> dict:
    """What a checkpoint must match to be resumed: every setting but the model callable."""
    plain = {k: v for k, v in loop_cfg.items() if k not in ("model_fn", "init_params", "data", "epoch_budget")}
    init = loop_cfg.get("init_params")
    plain["init_sha256"] = None if init is None else hashlib.sha256(np.ascontiguousarray(init).tobytes()).hexdigest()
    fn = loop_cfg["model_fn"]
    plain["model"] = vars(fn) if hasattr(fn, "__dict__") and not callable(getattr(fn, "__code__", None)) else repr(fn)
    plain["data_sha256"] = data_sha256
    return json.loads(json.dumps(plain, default=str))


def _same_settings(folder: Path, fingerprint: dict) -> bool:
    """True when `folder` holds a checkpoint of these settings; otherwise clear it for a fresh start."""
    f = folder / FINGERPRINT
    try:
        if json.loads(f.read_text()) == fingerprint:
            return True
    except (OSError, json.JSONDecodeError):
        pass
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_json(f, fingerprint)
    return False


def _copy_checkpoint(src: Path, out: Path) -> None:
    for name, dest in (
        ("last.safetensors", "model.safetensors"),
        ("best.safetensors", "best.safetensors"),
        ("history.json", "history.json"),
    ):
        tmp = out / f".{dest}.tmp"
        shutil.copyfile(src / name, tmp)
        tmp.replace(out / dest)


def _fit_in_process(loop_cfg: dict, train: dict, held_out: dict, out: Path, on_epoch, fingerprint: dict) -> None:
    resume_dir = out / RESUME_DIR
    resume = None
    if _same_settings(resume_dir, fingerprint) and (resume_dir / "last" / "state.pt").is_file():
        resume = resume_dir / "last"

    def report(row, ckpt_dir):
        _copy_checkpoint(Path(ckpt_dir), out)
        tmp = resume_dir / "last.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(ckpt_dir, tmp)
        shutil.rmtree(resume_dir / "last", ignore_errors=True)
        tmp.rename(resume_dir / "last")
        fault_point("epoch")
        if on_epoch:
            on_epoch(row["epoch"])

    train_loop_per_worker(
        {**loop_cfg, "data": train, "eval": held_out, "in_ray": False, "report": report, "threads": 1, "resume": resume}
    )
    if _finished(out, loop_cfg["epochs"]):
        shutil.rmtree(resume_dir, ignore_errors=True)


def _progress_callback(queue):
    from ray.train import UserCallback

    class Progress(UserCallback):
        """Runs in Ray Train's controller on every report: forwards rank 0's epoch to the driver."""

        def after_report(self, run_context, metrics, checkpoint):
            if metrics and "epoch" in metrics[0]:
                queue.put_nowait(int(metrics[0]["epoch"]))

    return Progress()


def _fit_with_ray_train(
    cfg: PretrainConfig, loop_cfg: dict, datasets: dict | None, held_out: dict, out: Path, on_epoch, fingerprint: dict
) -> None:
    import ray
    from ray.train import CheckpointConfig, DataConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from gptfl_ray.ray_runtime import quiet_ray_logs

    quiet_ray_logs()
    if datasets:
        check_ingest_cpus(cfg.train_workers, float(ray.cluster_resources().get("CPU", 0)))
    storage = (out / "ray_train").resolve()
    _same_settings(storage, fingerprint)  # a checkpoint of other settings is never resumed
    use_gpu = cfg.train_gpus > 0
    resources = {"CPU": 1, **({"GPU": cfg.train_gpus} if use_gpu else {})}
    callbacks, queue, stop = [], None, threading.Event()
    if on_epoch:
        from ray.util.queue import Empty, Queue

        queue = Queue(actor_options={"num_cpus": 0})
        callbacks.append(_progress_callback(queue))

        def follow():
            while not stop.is_set():
                try:
                    on_epoch(min(queue.get(timeout=0.5), cfg.epochs))
                except Empty:
                    continue
                except Exception:  # noqa: BLE001 - the queue actor is gone: training ended
                    return

        watcher = threading.Thread(target=follow, daemon=True)
        watcher.start()
    # Each worker's report waits in a one-slot queue until the controller polls it, every 2 s by
    # default, so a 0.3 s digits epoch would wait 1.7 s at its report, and fit() waits as long to
    # see the loop end. Ray Train propagates this variable from the driver to its controller.
    os.environ.setdefault(POLL_ENV, POLL_S)
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={**loop_cfg, "eval": ray.put(held_out), "in_ray": True, "threads": 1},
        scaling_config=ScalingConfig(num_workers=cfg.train_workers, use_gpu=use_gpu, resources_per_worker=resources),
        run_config=RunConfig(
            name="pretrain",
            storage_path=str(storage),
            callbacks=callbacks,
            checkpoint_config=CheckpointConfig(num_to_keep=1),
        ),
        datasets=datasets,
        dataset_config=_ingest_config(DataConfig) if datasets else None,
    )
    try:
        result = trainer.fit()
    finally:
        stop.set()
        if queue is not None:
            watcher.join(timeout=2)
            ray.kill(queue.actor)
    if result.checkpoint is None:
        raise RuntimeError(f"Ray Train finished without a checkpoint: {result.error}")
    with result.checkpoint.as_directory() as d:
        _copy_checkpoint(Path(d), out)
    if _finished(out, cfg.epochs):
        if on_epoch:
            on_epoch(cfg.epochs)
        shutil.rmtree(storage, ignore_errors=True)


def check_ingest_cpus(workers: int, cluster_cpus: float) -> None:
    """Ray Data decodes on CPUs the training workers do not hold: with none left, fit() would wait
    for ever, so refuse before starting."""
    from gptfl_ray.errors import ConfigError

    if cluster_cpus - workers < 1:
        raise ConfigError(
            "pretrain.train_workers",
            f"{workers} workers hold all {cluster_cpus:g} CPUs of the Ray cluster and "
            "leave none for Ray Data's decoding; use fewer workers or `pretrain.train_workers` 0",
        )


def _ingest_config(DataConfig):
    """Blocks in read order: with the seeded per-epoch local shuffle, an epoch's batches are a
    function of (seed, epoch), so a resumed run sees what the uninterrupted one saw."""
    options = DataConfig.default_ingest_options()
    options.preserve_order = True
    return DataConfig(execution_options=options)


def _finished(out: Path, epochs: int) -> bool:
    return len(json.loads((out / "history.json").read_text())) >= epochs
