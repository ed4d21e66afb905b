"""`gptfl-ray pretrain`: train the downstream model on a run's synthetic data (GPT-FL 3.3)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from gptfl_ray.cli.common import DEFAULT_RUN, console, guarded, load_config
from gptfl_ray.cli.options import CONFIG_OPTIONS, OUTPUT_OPTIONS, choice, opt, with_options
from gptfl_ray.cli.simulate import PRETRAIN_OPTIONS, pretrain_options

OPTIONS = [
    opt(
        "dataset",
        choice("dataset"),
        None,
        "Data set whose real validation and test sets score each epoch (must match the synthetic data).",
    ),
    opt("data_dir", Optional[str], None, "Where torchvision/torchaudio data sets live."),
    opt("model", choice("model"), None, "Downstream model."),
    opt("norm", choice("norm"), None, "Normalisation layer (which ones a model takes depends on the model)."),
    opt("address", Optional[str], None, "Ray cluster address; default starts a local Ray on loopback."),
    opt("seed", Optional[int], None, "Seed."),
    opt(
        "output_dir",
        Path,
        Path(DEFAULT_RUN),
        "Run directory holding synthetic/ (from `gptfl-ray generate`).",
        "--output-dir",
        "-o",
    ),
]


@with_options(OPTIONS, PRETRAIN_OPTIONS, CONFIG_OPTIONS, OUTPUT_OPTIONS)
def pretrain_cmd(**kw):
    """Pre-train on <run>/synthetic/ with Ray Train; writes <run>/pretrain/model.safetensors."""
    from gptfl_ray.data.registry import load_dataset
    from gptfl_ray.methods.simulate import simulate_config
    from gptfl_ray.methods.stages import pretrain_key
    from gptfl_ray.methods.task import check_model
    from gptfl_ray.models.factory import ModelFactory
    from gptfl_ray.pretrain.trainer import pretrain_on_shards
    from gptfl_ray.ray_runtime import check_resources, ensure_ray, train_request
    from gptfl_ray.runio import RunLock, check_output_dir, publish_dir, stage_tmp, write_config_section, write_key
    from gptfl_ray.synth.store import check_manifest_matches, read_manifest, shard_paths

    fed = {k: kw[k] for k in ("dataset", "data_dir", "model", "norm", "address", "seed")}
    file_cfg = load_config(kw["config"], kw["set"])
    sim = simulate_config(file_cfg, {"federate": fed, "pretrain": pretrain_options(kw)})
    cfg, data, mcfg = sim.pretrain, sim.federate.data, sim.federate.model
    check_model(mcfg.name, mcfg.norm)
    ds = load_dataset(data.dataset, data_dir=data.data_dir, seed=cfg.seed)
    run_dir = check_output_dir(kw["output_dir"])
    manifest = read_manifest(run_dir)
    check_manifest_matches(manifest, ds)
    shard_paths(run_dir, manifest)  # complete and hash-checked before any worker starts
    n_syn = int(manifest["total_rows"])
    if cfg.train_workers > 0:
        ensure_ray(sim.federate.engine.address)
        check_resources([train_request(cfg)])
    factory = ModelFactory(mcfg.name, ds.input_shape, ds.num_classes, mcfg.norm, seed=cfg.seed)
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
        write_key(build, pretrain_key(cfg, mcfg.name, mcfg.norm, manifest.get("sha256", ""), init_pretrained=False))
        publish_dir(build, pre_dir)
        write_config_section(run_dir, "pretrain", cfg)
    from rich.table import Table

    table = Table(title=f"pre-training {mcfg.name} on {n_syn} synthetic samples; real validation and test sets")
    for c in ("epoch", "train loss", "val acc.", "val loss", "test acc.", "test macro-F1"):
        table.add_column(c, justify="right")
    for h in res.history:
        val = ("-", "-") if "val_accuracy" not in h else (f"{h['val_accuracy']:.4f}", f"{h['val_loss']:.4f}")
        table.add_row(str(h["epoch"]), f"{h['train_loss']:.4f}", *val, f"{h['accuracy']:.4f}", f"{h['macro_f1']:.4f}")
    console.print(table)
    from gptfl_ray.plots import pretrain_curve

    curve = pretrain_curve(res.history, run_dir / "plots" / "pretrain_curve.png")
    console.print(
        f"{pre_dir / res.model_path.name} (last epoch; best validation epoch kept in {res.best_path.name}) in {res.wall_s:.1f}s",
        highlight=False,
    )
    return {
        "run_dir": str(run_dir),
        "model": str(pre_dir / res.model_path.name),
        "best_model": str(pre_dir / res.best_path.name),
        "synthetic_samples": n_syn,
        "wall_s": res.wall_s,
        "history": res.history,
        "plot": str(curve),
    }


def register(app: typer.Typer) -> None:
    app.command("pretrain")(guarded(pretrain_cmd))


def _present() -> None:
    from gptfl_ray.cli.presentation import field_defaults, present
    from gptfl_ray.config import DataConfig, ModelConfig

    defaults = {**field_defaults(DataConfig), **field_defaults(ModelConfig, rename={"name": "model"}), "seed": 0}
    defaults["address"] = "a private Ray on 127.0.0.1"
    present("Data and model", OPTIONS, defaults)


_present()
