"""`gptfl-ray federate`: standard FL on one data set (FedAvg, FedProx, SCAFFOLD, FedOpt, ...)."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from gptfl_ray.cli.common import console, guarded, loopback_ray_env
from gptfl_ray.config import FederateConfig, federate_config
from gptfl_ray.errors import ConfigError
from gptfl_ray.runio import load_toml_file, read_config, write_config_section

# Settings a resumed run may change; anything else must match the run's config.toml.
RESUMABLE = {"rounds", "eval_every", "checkpoint_every", "backend", "address", "num_actors", "client_cpus", "client_gpus", "data_dir", "download"}


def round_progress(total: int, label: str) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"), TimeElapsedColumn(), TimeRemainingColumn(),
        console=console, transient=False,
    )


def resolve_config(config: Optional[Path], output_dir: Path, resume: bool, overwrite: bool, overrides: dict, init: Optional[str], section: str = "federate") -> FederateConfig:
    """Defaults < --config file < command-line options; a resumed run starts from its own file."""
    file_cfg = load_toml_file(config) if config else {}
    file_cfg = file_cfg.get(section, file_cfg)  # a run's own config.toml works as --config
    saved = read_config(output_dir).get(section) if output_dir.exists() else None
    if resume and saved:
        cfg = federate_config(saved, overrides, init)
        changed = [
            f.name for sec in ("data", "model", "fl") for f in dataclasses.fields(getattr(cfg, sec))
            if f.name not in RESUMABLE and getattr(getattr(cfg, sec), f.name) != saved.get(sec, {}).get(f.name, getattr(getattr(cfg, sec), f.name))
        ]
        if changed:
            raise ConfigError("--resume", f"--{changed[0].replace('_', '-')} differs from {output_dir}/config.toml; a resumed run keeps its settings")
        return cfg
    if saved and not overwrite and not resume:
        raise ConfigError("--output-dir", f"{output_dir} already holds a run; pass --resume to continue it or --overwrite to start over")
    return federate_config(file_cfg, overrides, init)


def results_table(title: str, history: list[dict], last: int = 8) -> Table:
    table = Table(title=title)
    for col in ("round", "accuracy", "macro-F1", "test loss", "grad. diversity", "MB sent"):
        table.add_column(col, justify="right")
    rows = history if len(history) <= last else history[:1] + history[-(last - 1):]
    for h in rows:
        gd = h.get("gradient_diversity")
        table.add_row(
            str(h["round"]), f"{h['accuracy']:.4f}", f"{h['macro_f1']:.4f}", f"{h['loss']:.4f}",
            "-" if gd is None else f"{gd:.3f}", f"{h.get('cum_bytes', 0) / 1e6:.2f}",
        )
    return table


def federate(
    dataset: Optional[str] = typer.Option(None, help="Data set name (digits, mnist, cifar10, cifar100, flowers102, ...)."),
    data_dir: Optional[str] = typer.Option(None, help="Where torchvision/torchaudio data sets live."),
    download: Optional[bool] = typer.Option(None, "--download/--no-download", help="Fetch a missing data set (needs network)."),
    model: Optional[str] = typer.Option(None, help="Model name (cnn, convnet, resnet18, resnet50, vgg19, mlp)."),
    norm: Optional[str] = typer.Option(None, help="default | batch | group (GroupNorm suits non-IID FL)."),
    clients: Optional[int] = typer.Option(None, help="Number of virtual clients."),
    partition: Optional[str] = typer.Option(None, help="iid | dirichlet | shards | natural."),
    alpha: Optional[float] = typer.Option(None, help="Dirichlet concentration (paper: 0.1 high, 0.5 low heterogeneity)."),
    min_client_size: Optional[int] = typer.Option(None, help="Smallest client under the Dirichlet split."),
    shards_per_client: Optional[int] = typer.Option(None, help="Shards per client for --partition shards."),
    sample_rate: Optional[float] = typer.Option(None, help="Fraction of clients sampled per round, in (0, 1]."),
    clients_per_round: Optional[int] = typer.Option(None, help="Clients per round (instead of --sample-rate)."),
    rounds: Optional[int] = typer.Option(None, help="Communication rounds."),
    local_epochs: Optional[int] = typer.Option(None, help="Local epochs per round."),
    batch_size: Optional[int] = typer.Option(None, help="Local batch size."),
    lr: Optional[float] = typer.Option(None, help="Client learning rate."),
    momentum: Optional[float] = typer.Option(None, help="Client SGD momentum."),
    weight_decay: Optional[float] = typer.Option(None, help="Client weight decay."),
    strategy: Optional[str] = typer.Option(None, help="fedavg | fedprox | scaffold | fedadam | fedyogi | fedadagrad | fedavgm."),
    prox_mu: Optional[float] = typer.Option(None, help="FedProx proximal weight mu."),
    server_lr: Optional[float] = typer.Option(None, help="Server learning rate (default 1.0, FedOpt 0.01)."),
    server_momentum: Optional[float] = typer.Option(None, help="FedAvgM server momentum."),
    beta1: Optional[float] = typer.Option(None, help="FedOpt beta1."),
    beta2: Optional[float] = typer.Option(None, help="FedOpt beta2."),
    tau: Optional[float] = typer.Option(None, help="FedOpt adaptivity tau."),
    eval_every: Optional[int] = typer.Option(None, help="Evaluate on the test set every k rounds."),
    checkpoint_every: Optional[int] = typer.Option(None, help="Checkpoint every k rounds (0: only at the end)."),
    dropout: Optional[float] = typer.Option(None, help="Probability that a sampled client vanishes mid-round."),
    seed: Optional[int] = typer.Option(None, help="Seed: fixes split, init, sampling and every client's randomness."),
    backend: Optional[str] = typer.Option(None, help="local | ray."),
    address: Optional[str] = typer.Option(None, help="Ray cluster address ('auto' included); default starts a local Ray on loopback."),
    num_actors: Optional[int] = typer.Option(None, help="Client-executor actors (default: sized from the cluster)."),
    client_cpus: Optional[float] = typer.Option(None, help="CPUs per client-executor actor."),
    client_gpus: Optional[float] = typer.Option(None, help="GPUs per actor; 0.25 puts four on a GPU."),
    init: Optional[str] = typer.Option(None, help="Start from a saved model (safetensors), e.g. GPT-FL's pretrained model."),
    config: Optional[Path] = typer.Option(None, help="TOML file with [data] [model] [fl] [engine] tables."),
    output_dir: Path = typer.Option(Path("runs/federate"), help="Run directory."),
    resume: bool = typer.Option(False, help="Continue the run in --output-dir from its newest checkpoint."),
    overwrite: bool = typer.Option(False, help="Replace a finished or partial run in --output-dir."),
    show_partition: bool = typer.Option(False, help="Print each client's size and classes."),
):
    """Standard FL from random init (or --init): the baseline GPT-FL improves on."""
    overrides = {k: v for k, v in locals().items() if k not in ("config", "output_dir", "resume", "overwrite", "show_partition", "init")}
    cfg = resolve_config(config, output_dir, resume, overwrite, overrides, init)
    from gptfl_ray.fl.loop import run_federation
    from gptfl_ray.methods.task import load_task

    task = load_task(cfg)
    if show_partition:
        from gptfl_ray.data.partition import partition_summary, partition_table

        console.print(partition_table(partition_summary(task.parts, task.dataset.y_train, task.dataset.num_classes), task.dataset.class_names))
    if cfg.engine.backend == "ray":
        loopback_ray_env()
    write_config_section(output_dir, "federate", cfg)
    t0 = time.perf_counter()
    with round_progress(cfg.fl.rounds, "federate") as progress:
        bar = progress.add_task(f"{cfg.fl.strategy} on {cfg.data.dataset}", total=cfg.fl.rounds, status="")

        def on_round(m: dict) -> None:
            status = f"acc {m['accuracy']:.3f}" if "accuracy" in m else ""
            progress.update(bar, completed=m["round"], **({"status": status} if status else {}))

        res = run_federation(cfg, task.dataset, task.parts, output_dir, resume=resume, on_round=on_round)
    console.print(results_table(f"{cfg.fl.strategy}: {cfg.data.dataset}, {cfg.data.clients} clients, {res.num_params:,} parameters", res.history))
    console.print(f"final accuracy {res.history[-1]['accuracy']:.4f} in {time.perf_counter() - t0:.1f}s; results in {output_dir}/")


def register(app: typer.Typer) -> None:
    app.command("federate")(guarded(federate))
