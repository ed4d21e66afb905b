"""`gptfl-ray pretrain`: train the downstream model on a run's synthetic data (GPT-FL 3.3)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from gptfl_ray.cli.common import console, guarded
from gptfl_ray.cli.options import opt, with_options
from gptfl_ray.pretrain.config import PretrainConfig

OPTIONS = [
    opt(
        "dataset",
        str,
        "digits",
        "Data set whose real validation and test sets score each epoch (must match the synthetic data).",
    ),
    opt("data_dir", Optional[str], None, "Where torchvision/torchaudio data sets live."),
    opt("model", str, "cnn", "Downstream model."),
    opt("norm", str, "default", "Normalisation layer (per model)."),
    opt("epochs", int, 15, "Epochs over the synthetic data."),
    opt("batch_size", int, 64, "Batch size."),
    opt("lr", float, PretrainConfig.lr, "Learning rate (chosen on validation, benchmarks/README.md)."),
    opt("weight_decay", float, 5e-3, "Weight decay (paper: larger than for real data)."),
    opt("momentum", float, 0.9, "SGD momentum."),
    opt("augment", bool, True, "Augmentation suited to the modality.", "--augment/--no-augment"),
    opt("train_workers", int, 1, "Ray Train workers (0: train in this process)."),
    opt("train_gpus", float, 0.0, "GPUs per Ray Train worker."),
    opt("address", Optional[str], None, "Ray cluster address; default starts a local Ray on loopback."),
    opt("seed", int, 0, "Seed."),
    opt("output_dir", Path, Path("runs/simulate"), "Run directory holding synthetic/ (from `gptfl-ray generate`)."),
]


@with_options(OPTIONS)
def pretrain_cmd(**kw):
    """Pre-train on <run>/synthetic/ with Ray Train; writes <run>/pretrain/model.safetensors."""
    from gptfl_ray.data.registry import load_dataset
    from gptfl_ray.methods.stages import pretrain_key
    from gptfl_ray.methods.task import check_model
    from gptfl_ray.models.factory import ModelFactory
    from gptfl_ray.pretrain.config import PretrainConfig
    from gptfl_ray.pretrain.trainer import pretrain_on_shards
    from gptfl_ray.ray_runtime import check_resources, ensure_ray, train_request
    from gptfl_ray.runio import RunLock, check_output_dir, publish_dir, stage_tmp, write_config_section, write_key
    from gptfl_ray.synth.store import check_manifest_matches, read_manifest, shard_paths

    cfg = PretrainConfig(
        epochs=kw["epochs"],
        batch_size=kw["batch_size"],
        lr=kw["lr"],
        momentum=kw["momentum"],
        weight_decay=kw["weight_decay"],
        augment=kw["augment"],
        train_workers=kw["train_workers"],
        train_gpus=kw["train_gpus"],
        seed=kw["seed"],
    )
    check_model(kw["model"], kw["norm"])
    ds = load_dataset(kw["dataset"], data_dir=kw["data_dir"], seed=kw["seed"])
    run_dir = check_output_dir(kw["output_dir"])
    manifest = read_manifest(run_dir)
    check_manifest_matches(manifest, ds)
    shard_paths(run_dir, manifest)  # complete and hash-checked before any worker starts
    n_syn = int(manifest["total_rows"])
    if cfg.train_workers > 0:
        ensure_ray(kw["address"])
        check_resources([train_request(cfg)])
    factory = ModelFactory(kw["model"], ds.input_shape, ds.num_classes, kw["norm"], seed=kw["seed"])
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    pre_dir = run_dir / "pretrain"
    with RunLock(run_dir):
        build = stage_tmp(pre_dir)  # the old model stays in place until the new one is complete
        with Progress(
            TextColumn("[bold]pretrain"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
        ) as bar:
            task = bar.add_task("pretrain", total=cfg.epochs)
            res = pretrain_on_shards(cfg, factory, ds, run_dir, build, on_epoch=lambda e: bar.update(task, completed=e))
        # the key simulate's cache reads (methods/stages.py), so a pre-trained model made here is reused there
        write_key(build, pretrain_key(cfg, kw["model"], kw["norm"], manifest.get("sha256", ""), init_pretrained=False))
        publish_dir(build, pre_dir)
        write_config_section(run_dir, "pretrain", cfg)
    from rich.table import Table

    table = Table(title=f"pre-training {kw['model']} on {n_syn} synthetic samples; real validation and test sets")
    for c in ("epoch", "train loss", "val acc.", "val loss", "test acc.", "test macro-F1"):
        table.add_column(c, justify="right")
    for h in res.history:
        val = ("-", "-") if "val_accuracy" not in h else (f"{h['val_accuracy']:.4f}", f"{h['val_loss']:.4f}")
        table.add_row(str(h["epoch"]), f"{h['train_loss']:.4f}", *val, f"{h['accuracy']:.4f}", f"{h['macro_f1']:.4f}")
    console.print(table)
    from gptfl_ray.plots import pretrain_curve

    pretrain_curve(res.history, run_dir / "plots" / "pretrain_curve.png")
    console.print(
        f"{pre_dir / res.model_path.name} (last epoch; best validation epoch kept in {res.best_path.name}) in {res.wall_s:.1f}s",
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    app.command("pretrain")(guarded(pretrain_cmd))
