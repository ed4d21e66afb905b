"""`gptfl-ray bench sampling|comm`: the paper's client-sampling (Fig. 4) and communication-cost
(Figs. 2-3) questions on any task, as a table, bench.json and a PNG plot."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from gptfl_ray.cli.common import console, guarded, load_config
from gptfl_ray.cli.options import (
    CONFIG_OPTIONS,
    DATA_OPTIONS,
    DEVICE_OPTIONS,
    DP_OPTIONS,
    ENGINE_OPTIONS,
    FL_OPTIONS,
    MODEL_OPTIONS,
    OUTPUT_OPTIONS,
    opt,
    with_options,
)
from gptfl_ray.cli.simulate import PRETRAIN_OPTIONS, SYNTH_OPTIONS, split_options, stage_progress
from gptfl_ray.errors import ConfigError

bench_app = typer.Typer(
    help="Benchmarks: client-sampling rates, communication cost to a target accuracy, accuracy under DP and under stragglers.",
    no_args_is_help=True,
)

COMMON = [
    opt("config", Optional[Path], None, "TOML preset (configs/) the benchmark starts from."),
    opt(
        "init_pretrained",
        Optional[bool],
        None,
        "Start from torchvision ImageNet weights.",
        "--init-pretrained/--no-init-pretrained",
    ),
    CONFIG_OPTIONS[1],
]


def _floats(text: str, option: str, lo: float, hi: float) -> list[float]:
    try:
        vals = [float(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise ConfigError(option, f"expected comma-separated numbers, got {text!r}") from None
    if not vals or any(not (lo < v <= hi) for v in vals):
        raise ConfigError(option, f"every value must be in ({lo}, {hi}], got {text!r}")
    return vals


def _ints(text: str, option: str) -> list[int]:
    try:
        vals = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise ConfigError(option, f"expected comma-separated whole numbers, got {text!r}") from None
    if not vals or any(v < 1 for v in vals):
        raise ConfigError(option, f"every value must be >= 1, got {text!r}")
    return vals


def _base_config(kw: dict):
    from gptfl_ray.methods.simulate import simulate_config
    from gptfl_ray.ray_runtime import ensure_ray

    kw = {**kw, "variants": None, "target_accuracy": None, "style": kw.get("style"), "llm_model": kw.get("llm_model")}
    kw.setdefault("clients_per_round", None)
    cfg = simulate_config(load_config(kw["config"], kw.get("set")), split_options(kw))
    if cfg.federate.engine.backend == "ray" or cfg.generate.engine == "ray" or cfg.pretrain.train_workers > 0:
        ensure_ray(cfg.federate.engine.address)
    return cfg


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description:>10}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )


FL_NO_CPR = [p for p in FL_OPTIONS if p.name not in ("clients_per_round", "sample_rate", "seed")]


@bench_app.command("sampling")
@guarded
@with_options(
    DATA_OPTIONS,
    MODEL_OPTIONS,
    FL_NO_CPR,
    DP_OPTIONS,
    DEVICE_OPTIONS,
    ENGINE_OPTIONS,
    SYNTH_OPTIONS,
    PRETRAIN_OPTIONS,
    COMMON,
    [
        opt("rates", str, "1,2,5,10,25", "Clients per round to compare (comma-separated)."),
        opt("seeds", int, 3, "Seeds 0..n-1; results are mean and spread over them."),
        opt("output_dir", Path, Path("runs/bench-sampling"), "Benchmark directory."),
    ],
    OUTPUT_OPTIONS,
)
def sampling(**kw):
    """GPT-FL vs FedAvg final accuracy against clients per round (paper Figure 4)."""
    from gptfl_ray.bench import bench_sampling, plot_sampling

    rates = _ints(kw["rates"], "--rates")
    if kw["seeds"] < 1:
        raise ConfigError("--seeds", f"must be >= 1, got {kw['seeds']}")
    cfg = _base_config({**kw, "seed": None, "sample_rate": None})
    if max(rates) > cfg.federate.data.clients:
        raise ConfigError("--rates", f"{max(rates)} clients per round but only {cfg.federate.data.clients} clients")
    with _progress() as progress:
        result = bench_sampling(cfg, kw["output_dir"], rates, list(range(kw["seeds"])), stage=stage_progress(progress))
    table = Table(
        title=f"{result['dataset']}: final accuracy after {result['rounds']} rounds, {result['clients']} clients, {len(result['seeds'])} seeds"
    )
    for c in ("clients/round", "method", "accuracy mean", "std"):
        table.add_column(c, justify="right")
    for r in result["rows"]:
        table.add_row(
            str(r["clients_per_round"]),
            r["method"],
            f"{r['final_accuracy_mean']:.4f}",
            f"{r['final_accuracy_std']:.4f}",
        )
    console.print(table)
    png = plot_sampling(result, Path(kw["output_dir"]) / "sampling.png")
    console.print(f"{kw['output_dir']}/bench.json, {png}", highlight=False)
    return {"bench_dir": str(kw["output_dir"]), **result, "plot": str(png)}


@bench_app.command("comm")
@guarded
@with_options(
    DATA_OPTIONS,
    MODEL_OPTIONS,
    [p for p in FL_OPTIONS if p.name != "strategy"],
    DP_OPTIONS,
    DEVICE_OPTIONS,
    ENGINE_OPTIONS,
    SYNTH_OPTIONS,
    PRETRAIN_OPTIONS,
    COMMON,
    [
        opt("targets", str, "0.7,0.8,0.9", "Target accuracies (comma-separated, each in (0, 1])."),
        opt("strategies", str, "fedavg,fedprox,scaffold,fedadam", "FL strategies to compare."),
        opt("output_dir", Path, Path("runs/bench-comm"), "Benchmark directory."),
    ],
    OUTPUT_OPTIONS,
)
def comm(**kw):
    """Parameters and bytes communicated until each method first reaches each target (paper Figs. 2-3)."""
    from gptfl_ray.bench import bench_comm, plot_comm
    from gptfl_ray.fl.algorithms import STRATEGIES

    targets = _floats(kw["targets"], "--targets", 0.0, 1.0)
    strategies = [s.strip() for s in kw["strategies"].split(",") if s.strip()]
    bad = [s for s in strategies if s not in STRATEGIES]
    if bad or not strategies:
        raise ConfigError(
            "--strategies", f"unknown strategy {bad[0] if bad else ''!r}; choose from {', '.join(STRATEGIES)}"
        )
    cfg = _base_config({**kw, "strategy": None})
    with _progress() as progress:
        result = bench_comm(
            cfg, kw["output_dir"], targets, strategies, seed=cfg.federate.fl.seed, stage=stage_progress(progress)
        )
    table = Table(title=f"{result['dataset']}: communication to reach each target ({result['rounds']} rounds max)")
    for c in ("strategy", "method", "target", "params", "rounds", "params sent", "MB sent"):
        table.add_column(c, justify="right")
    for r in result["rows"]:
        reached = r["reached"]
        table.add_row(
            r["strategy"],
            r["method"],
            f"{r['target']:.0%}",
            f"{r['num_params']:,}",
            str(r["rounds"]) if reached else "not reached",
            f"{r['params_communicated']:,}" if reached else "-",
            f"{r['bytes'] / 1e6:.2f}" if reached else "-",
        )
    console.print(table)
    png = plot_comm(result, Path(kw["output_dir"]) / "comm.png")
    console.print(f"{kw['output_dir']}/bench.json, {png}", highlight=False)
    return {"bench_dir": str(kw["output_dir"]), **result, "plot": str(png)}


FL_NO_SEED = [p for p in FL_OPTIONS if p.name != "seed"]
DP_NO_TARGET = [p for p in DP_OPTIONS if p.name not in ("dp_epsilon", "dp_noise")]


@bench_app.command("privacy")
@guarded
@with_options(
    DATA_OPTIONS,
    MODEL_OPTIONS,
    FL_NO_SEED,
    DP_NO_TARGET,
    ENGINE_OPTIONS,
    SYNTH_OPTIONS,
    PRETRAIN_OPTIONS,
    COMMON,
    [
        opt(
            "epsilons",
            str,
            "1,2,4,8",
            "Privacy budgets epsilon for the whole run (comma-separated); no DP is always added.",
        ),
        opt("seeds", int, 3, "Seeds 0..n-1; results are mean and spread over them."),
        opt("output_dir", Path, Path("runs/bench-privacy"), "Benchmark directory."),
    ],
    OUTPUT_OPTIONS,
)
def privacy(**kw):
    """GPT-FL vs FedAvg final accuracy against the DP budget epsilon (DP-FedAvg, calibrated noise)."""
    from gptfl_ray.bench_crossdevice import bench_privacy, plot_privacy

    eps = _floats(kw["epsilons"], "--epsilons", 0.0, 1e6)
    if kw["seeds"] < 1:
        raise ConfigError("--seeds", f"must be >= 1, got {kw['seeds']}")
    cfg = _base_config(
        {**kw, "seed": None, "dp_epsilon": None, "dp_noise": None, **{p.name: None for p in DEVICE_OPTIONS}}
    )
    with _progress() as progress:
        result = bench_privacy(cfg, kw["output_dir"], eps, list(range(kw["seeds"])), stage=stage_progress(progress))
    table = Table(
        title=f"{result['dataset']}: test accuracy after {result['rounds']} rounds against epsilon "
        f"(delta {result['delta']:g}), {result['clients']} clients, {len(result['seeds'])} seeds"
    )
    for c in ("epsilon", "method", "noise z", "accuracy mean", "std", "val. accuracy"):
        table.add_column(c, justify="right")
    for r in result["rows"]:
        table.add_row(
            "no DP" if r["epsilon"] is None else f"{r['epsilon']:g}",
            r["method"],
            "-" if r["noise_multiplier"] is None else f"{r['noise_multiplier']:.3f}",
            f"{r['final_accuracy_mean']:.4f}",
            f"{r['final_accuracy_std']:.4f}",
            f"{r['final_val_accuracy_mean']:.4f}",
        )
    console.print(table)
    png = plot_privacy(result, Path(kw["output_dir"]) / "privacy.png")
    console.print(f"{kw['output_dir']}/bench.json, {png}", highlight=False)
    return {"bench_dir": str(kw["output_dir"]), **result, "plot": str(png)}


@bench_app.command("devices")
@guarded
@with_options(
    DATA_OPTIONS,
    MODEL_OPTIONS,
    FL_NO_SEED,
    DEVICE_OPTIONS,
    ENGINE_OPTIONS,
    SYNTH_OPTIONS,
    PRETRAIN_OPTIONS,
    COMMON,
    [
        opt(
            "deadline_quantile",
            float,
            0.7,
            "The deadline policy's deadline: the share of all clients that would meet it.",
        ),
        opt("over_select_factor", float, 1.3, "The over-selection policy: ask this many times k, keep the first k."),
        opt("target", float, 0.8, "Report the simulated time until each run first reaches this test accuracy."),
        opt("seeds", int, 3, "Seeds 0..n-1; results are mean and spread over them."),
        opt("output_dir", Path, Path("runs/bench-devices"), "Benchmark directory."),
    ],
    OUTPUT_OPTIONS,
)
def devices(**kw):
    """GPT-FL vs FedAvg accuracy against simulated wall-clock time under lognormal stragglers."""
    from gptfl_ray.bench_crossdevice import POLICIES, bench_devices, plot_devices

    if not 0 < kw["deadline_quantile"] <= 1:
        raise ConfigError("--deadline-quantile", f"must be in (0, 1], got {kw['deadline_quantile']}")
    if kw["over_select_factor"] < 1:
        raise ConfigError("--over-select-factor", f"must be >= 1, got {kw['over_select_factor']}")
    if kw["seeds"] < 1:
        raise ConfigError("--seeds", f"must be >= 1, got {kw['seeds']}")
    if kw["deadline"] is not None or kw["over_select"] is not None:
        raise ConfigError(
            "--deadline",
            "the benchmark sets each policy's deadline and over-selection itself; "
            f"use --deadline-quantile and --over-select-factor (policies: {', '.join(POLICIES)})",
        )
    cfg = _base_config({**kw, "seed": None, **{p.name: None for p in DP_OPTIONS}})
    with _progress() as progress:
        result = bench_devices(
            cfg,
            kw["output_dir"],
            list(range(kw["seeds"])),
            kw["deadline_quantile"],
            kw["over_select_factor"],
            _floats(str(kw["target"]), "--target", 0.0, 1.0)[0],
            stage=stage_progress(progress),
        )
    table = Table(
        title=f"{result['dataset']}: {result['rounds']} rounds under {result['devices']['devices']} devices, "
        f"{result['clients']} clients, {len(result['seeds'])} seeds"
    )
    for c in (
        "policy",
        "method",
        "accuracy mean",
        "std",
        "sim. time (s)",
        f"s to {result['target']:.0%}",
        "stragglers dropped",
        "surplus discarded",
    ):
        table.add_column(c, justify="right")
    n = len(result["seeds"])
    for r in result["rows"]:
        hit = (
            "not reached"
            if r["time_to_target_mean"] is None
            else f"{r['time_to_target_mean']:.1f}"
            + ("" if r["reached_target"] == n else f" ({r['reached_target']}/{n})")
        )
        table.add_row(
            r["policy"],
            r["method"],
            f"{r['final_accuracy_mean']:.4f}",
            f"{r['final_accuracy_std']:.4f}",
            f"{r['sim_time_mean']:.1f} ± {r['sim_time_std']:.1f}",
            hit,
            f"{r['stragglers_mean']:.1f}",
            f"{r['surplus_mean']:.1f}",
        )
    console.print(table)
    png = plot_devices(result, Path(kw["output_dir"]) / "devices.png")
    console.print(f"{kw['output_dir']}/bench.json, {png}", highlight=False)
    return {"bench_dir": str(kw["output_dir"]), **result, "plot": str(png)}


def register(app: typer.Typer) -> None:
    app.add_typer(bench_app, name="bench")
