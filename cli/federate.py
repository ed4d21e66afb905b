"""`gptfl-ray federate`: standard FL on one data set (FedAvg, FedProx, SCAFFOLD, FedOpt, ...)."""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from gptfl_ray.cli.common import DEFAULT_RUN, console, guarded, load_config
from gptfl_ray.cli.options import (
    DATA_OPTIONS,
    DEVICE_OPTIONS,
    DP_OPTIONS,
    ENGINE_OPTIONS,
    FEDERATE_KEYS,
    FL_OPTIONS,
    MODEL_OPTIONS,
    OUTPUT_OPTIONS,
    RUN_OPTIONS,
    TRACK_OPTIONS,
    opt,
    with_options,
)
from gptfl_ray.config import FederateConfig, check_resumable, federate_config
from gptfl_ray.errors import ConfigError
from gptfl_ray.ray_runtime import ACTOR_MODULES, check_resources, client_requests, ensure_ray, start_ray
from gptfl_ray.runio import (
    RunLock,
    atomic_write_bytes,
    check_output_dir,
    clear_run,
    plain,
    read_config,
    write_config_section,
)

# What `--overwrite` removes: every piece of state a federate run leaves in its directory.
FEDERATE_STATE = (
    "config.toml",
    "metrics.jsonl",
    "rounds.jsonl",
    "checkpoints",
    "state",
    "model.safetensors",
    "engine.json",
    "plots",
    "mlruns",
    "tensorboard",
)


def round_progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )


def resolve_config(
    config: Optional[Path],
    output_dir: Path,
    resume: bool,
    overwrite: bool,
    overrides: dict,
    init: Optional[str],
    section: str = "federate",
    sets: list[str] | None = None,
) -> FederateConfig:
    """Defaults < --config file < command-line options; a resumed run starts from its own file."""
    if resume and overwrite:
        raise ConfigError("--resume", "give --resume or --overwrite, not both")
    file_cfg = load_config(config, sets)
    file_cfg = file_cfg.get(section, file_cfg)  # a run's own config.toml works as --config
    saved = read_config(output_dir).get(section) if output_dir.is_dir() else None
    if resume and saved:
        cfg = federate_config(saved, overrides, init)
        check_resumable("federate", output_dir, saved, plain(cfg), hint="a resumed run keeps its settings")
        return cfg
    if saved and not overwrite and not resume:
        raise ConfigError(
            "--output-dir",
            f"{output_dir} already holds a run; pass --resume to continue it or --overwrite to start over",
        )
    return federate_config(file_cfg, overrides, init)


def results_table(title: str, history: list[dict], last: int = 8) -> Table:
    table = Table(title=title)
    # DP runs show the privacy spent, device runs the simulated wall-clock time, beside accuracy
    extra = [
        (k, name)
        for k, name in (("epsilon", "epsilon"), ("sim_time_s", "sim. time (s)"))
        if any(k in h for h in history)
    ]
    for col in (
        "round",
        "val acc.",
        "val loss",
        "test acc.",
        "test macro-F1",
        "test loss",
        "grad. diversity",
        "MB sent",
        *(name for _, name in extra),
    ):
        table.add_column(col, justify="right")
    rows = history if len(history) <= last else history[:1] + history[-(last - 1) :]
    for h in rows:
        gd = h.get("gradient_diversity")
        val = ("-", "-") if "val_accuracy" not in h else (f"{h['val_accuracy']:.4f}", f"{h['val_loss']:.4f}")
        table.add_row(
            str(h["round"]),
            *val,
            f"{h['accuracy']:.4f}",
            f"{h['macro_f1']:.4f}",
            f"{h['loss']:.4f}",
            "-" if gd is None else f"{gd:.3f}",
            f"{h.get('cum_bytes', 0) / 1e6:.2f}",
            *(f"{h[k]:.2f}" if k in h else "-" for k, _ in extra),
        )
    return table


FEDERATE_DIR = opt(
    "output_dir",
    Optional[Path],
    None,
    "Run directory (runs/simulate/federate/gptfl with --init).",
    "--output-dir",
    "-o",
)
FEDERATE_DIR.default.rich_help_panel = "Run"
FEDERATE_DIR.default.show_default = "runs/simulate/federate/fedavg"


@with_options(
    DATA_OPTIONS,
    MODEL_OPTIONS,
    FL_OPTIONS,
    DP_OPTIONS,
    DEVICE_OPTIONS,
    ENGINE_OPTIONS,
    [
        opt(
            "init",
            Optional[str],
            None,
            "Start from a saved model (safetensors), e.g. GPT-FL's runs/simulate/pretrain/model.safetensors.",
        ),
        opt("show_partition", bool, False, "Print each client's size and classes."),
    ],
    TRACK_OPTIONS,
    RUN_OPTIONS,
    [FEDERATE_DIR],
    OUTPUT_OPTIONS,
)
def federate(**kw):
    """Standard FL from random init (or --init): the baseline GPT-FL improves on. Without
    --output-dir it runs in the shared run directory, as simulate's variants do:
    runs/simulate/federate/fedavg, or runs/simulate/federate/gptfl with --init."""
    output_dir = check_output_dir(kw["output_dir"] or default_federate_dir(kw["init"]))
    overrides = {k: kw[k] for k in FEDERATE_KEYS}
    cfg = resolve_config(
        kw["config"], output_dir, kw["resume"], kw["overwrite"], overrides, kw["init"], sets=kw.get("set")
    )
    from gptfl_ray.tracking import check_track

    check_track(kw["track"])
    if cfg.engine.backend == "ray":
        # Ray's processes come up, and its workers import the executor, while this process
        # imports torch and the data sets below (ray_runtime.start_ray).
        start_ray(cfg.engine.address, preload=ACTOR_MODULES)
    from gptfl_ray.fl.pool import EnginePool  # imports torch

    with EnginePool() as engines:
        return _federate(cfg, output_dir, kw, engines)


def _federate(cfg, output_dir: Path, kw: dict, engines) -> dict:
    from gptfl_ray.methods.task import load_task

    task = load_task(cfg)  # while Ray comes up on start_ray's thread
    # partition.png is drawn on a thread while Ray starts and the rounds run; written after them
    partition_png = _draw_partition(cfg, task)
    if cfg.engine.backend == "ray":
        ensure_ray(cfg.engine.address)
        check_resources(client_requests(cfg.engine))
        engines.prestart(cfg)  # the actors start while this process builds the model and evaluates round 0
    if kw["show_partition"]:
        from gptfl_ray.data.partition import partition_summary, partition_table

        console.print(
            partition_table(
                partition_summary(task.parts, task.dataset.y_train, task.dataset.num_classes), task.dataset.class_names
            )
        )
    with RunLock(output_dir):
        if kw["overwrite"]:
            clear_run(output_dir, FEDERATE_STATE)
        write_config_section(output_dir, "federate", cfg)
        res = _run(cfg, task, output_dir, kw, engines, partition_png)
    console.print(
        results_table(
            f"{cfg.fl.strategy}: {cfg.data.dataset}, {cfg.data.clients} clients, {res.num_params:,} parameters",
            res.history,
        )
    )
    last = res.history[-1]
    from gptfl_ray.report import diverged_round

    bad = diverged_round(res.history)
    if bad is not None:
        console.print(
            f"[yellow]warning:[/] the run diverged: its test loss is not finite from round {bad} on "
            "(NaN or infinite weights)",
            highlight=False,
        )
    val = f"validation {last['val_accuracy']:.4f}, " if "val_accuracy" in last else ""
    console.print(f"final accuracy: {val}test {last['accuracy']:.4f} in {res.wall_s:.1f}s; results in {output_dir}/")
    return {
        "run_dir": str(output_dir),
        "strategy": cfg.fl.strategy,
        "dataset": cfg.data.dataset,
        "clients": cfg.data.clients,
        "rounds": cfg.fl.rounds,
        "num_params": res.num_params,
        "wall_s": res.wall_s,
        "final": last,
        "history": res.history,
        "model": str(output_dir / "model.safetensors"),
    }


def _draw_partition(cfg, task) -> Future:
    from gptfl_ray.plots import render_partition_plot

    title = f"label distribution: {cfg.data.dataset}, {cfg.data.clients} clients, {cfg.data.partition}"
    pool = ThreadPoolExecutor(1, thread_name_prefix="partition-plot")
    drawn = pool.submit(render_partition_plot, task.parts, task.dataset.y_train, task.dataset.class_names, title)
    pool.shutdown(wait=False)  # the thread ends with its one drawing
    return drawn


def default_federate_dir(init: str | None) -> Path:
    """Where simulate keeps the same variant: FL from random init is `fedavg`, from a given model `gptfl`."""
    return Path(DEFAULT_RUN) / "federate" / ("gptfl" if init else "fedavg")


def _run(cfg, task, output_dir: Path, kw: dict, engines, partition_png):
    from gptfl_ray.fl.loop import run_federation
    from gptfl_ray.tracking import Tracker

    with (
        Tracker.create(kw["track"], output_dir, kw["mlflow_uri"], kw["mlflow_experiment"]) as tracker,
        round_progress() as progress,
    ):
        tracker.log_config(read_config(output_dir))
        track_round = tracker.on_round("federate")
        bar = progress.add_task(f"{cfg.fl.strategy} on {cfg.data.dataset}", total=cfg.fl.rounds, status="")

        def on_round(m: dict) -> None:
            status = f"val acc {m['val_accuracy']:.3f}" if "val_accuracy" in m else ""
            progress.update(bar, completed=m["round"], **({"status": status} if status else {}))
            track_round(m)

        res = run_federation(
            cfg, task.dataset, task.parts, output_dir, resume=kw["resume"], engines=engines, on_round=on_round
        )
        atomic_write_bytes(output_dir / "plots" / "partition.png", partition_png.result())
        tracker.backfill_run(output_dir)
        tracker.log_run_artifacts(output_dir)
    return res


def register(app: typer.Typer) -> None:
    app.command("federate")(guarded(federate))
