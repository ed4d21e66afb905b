"""`gptfl-ray simulate`: the whole GPT-FL method against its baselines, in one run directory."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from gptfl_ray.cli.common import DEFAULT_RUN, apply_sets, console, guarded
from gptfl_ray.cli.options import (
    DATA_OPTIONS,
    DEVICE_OPTIONS,
    DP_OPTIONS,
    ENGINE_OPTIONS,
    FEDERATE_KEYS,
    FGL_FIELDS,
    FL_OPTIONS,
    GENERATE_FIELDS,
    MODEL_OPTIONS,
    OUTPUT_OPTIONS,
    PRETRAIN_FIELDS,
    RUN_OPTIONS,
    TRACK_OPTIONS,
    choice,
    opt,
    with_options,
)

SIM_OPTIONS = [
    opt(
        "variants",
        Optional[str],
        None,
        "Comma-separated: fedavg, synthetic, gptfl, fgl (default fedavg,synthetic,gptfl; fgl adds fgl_rounds with --fgl-rounds).",
    ),
    opt(
        "target_accuracy",
        Optional[float],
        None,
        "Report rounds and bytes to reach it (default: fedavg's final accuracy).",
    ),
    opt(
        "init_pretrained",
        Optional[bool],
        None,
        "Start every variant from torchvision ImageNet weights (paper Table 5).",
        "--init-pretrained/--no-init-pretrained",
    ),
]
SYNTH_OPTIONS = [
    opt("style", choice("style"), None, "Prompt style."),
    opt("llm_model", Optional[str], None, "Causal LM (hub id or path) for --style llm."),
    opt("generator", choice("generator"), None, "Generative model family (glyph: offline, no download)."),
    opt("gen_model", Optional[str], None, "Generator model: hub id or local path (generator default if unset)."),
    opt("per_class", Optional[int], None, "Synthetic samples per class."),
    opt("scale", Optional[float], None, "Synthetic size as k x the real train size (paper's 1x/2x/3x)."),
    opt("gen_actors", Optional[int], None, "Generator actors in the Ray Data pool."),
    opt("gen_gpus", Optional[float], None, "GPUs per generator actor."),
    opt("steps", Optional[int], None, "Diffusion steps (diffusers, audioldm)."),
    opt("height", Optional[int], None, "Generation height in pixels before resizing to the data set's size."),
    opt("width", Optional[int], None, "Generation width in pixels before resizing to the data set's size."),
    opt(
        "device", Optional[str], None, "Generator device: auto (cuda with fp16 when a GPU is visible) | cpu | cuda[:N]."
    ),
]
FGL_OPTIONS = [
    opt(
        "method",
        choice("method"),
        None,
        "Shorthand for --variants: gptfl (fedavg,synthetic,gptfl) or fgl (fedavg,fgl).",
    ),
    opt(
        "fgl_prompts",
        choice("fgl_prompts"),
        None,
        "FGL client prompts: class (one per local class, with its count) or instance (a caption per sample).",
    ),
    opt(
        "captioner",
        Optional[str],
        None,
        "Image-to-text model for --fgl-prompts instance: hub id or path (default Salesforce/blip-image-captioning-base).",
    ),
    opt(
        "fgl_rounds",
        Optional[int],
        None,
        "FedAvg rounds after FGL's one-shot model; > 0 adds the variant fgl_rounds (default 0).",
    ),
    opt(
        "server_finetune_epochs",
        Optional[int],
        None,
        "Server epochs on FGL's synthetic data after each of those rounds (default 0).",
    ),
]
METHODS = {"gptfl": "fedavg,synthetic,gptfl", "fgl": "fedavg,fgl"}
PRETRAIN_OPTIONS = [
    opt("pretrain_epochs", Optional[int], None, "Server pre-training epochs on the synthetic data."),
    opt("pretrain_lr", Optional[float], None, "Pre-training learning rate (paper: smaller than for real data)."),
    opt(
        "pretrain_weight_decay", Optional[float], None, "Pre-training weight decay (paper: larger than for real data)."
    ),
    opt("pretrain_batch_size", Optional[int], None, "Pre-training batch size."),
    opt("pretrain_momentum", Optional[float], None, "Pre-training SGD momentum."),
    opt(
        "augment",
        Optional[bool],
        None,
        "Pre-training augmentation suited to the modality.",
        "--augment/--no-augment",
    ),
    opt("train_workers", Optional[int], None, "Ray Train workers (0: train in this process)."),
    opt("train_gpus", Optional[float], None, "GPUs per Ray Train worker."),
]


SIMULATE_DIR = opt(
    "output_dir", Optional[Path], None, "Run directory (shared by every stage command).", "--output-dir", "-o"
)
SIMULATE_DIR.default.rich_help_panel = "Run"
SIMULATE_DIR.default.show_default = DEFAULT_RUN


def stage_progress(progress: Progress):
    """A progress-bar factory handed to the method: stage(name, total) -> update(done)."""
    bars: dict[str, int] = {}

    def stage(name: str, total: int | None = None):
        bars[name] = progress.add_task(name, total=total)

        def update(done: int) -> None:
            progress.update(bars[name], completed=done)

        return update

    return stage


def split_options(kw: dict) -> dict[str, dict]:
    return {
        "federate": {k: kw[k] for k in FEDERATE_KEYS},
        "prompts": {
            "style": kw["style"],
            "llm_model": kw["llm_model"],
            "per_class": kw["per_class"],
            "scale": kw["scale"],
        },
        "generate": {
            "generator": kw["generator"],
            "model": kw["gen_model"],
            "per_class": kw["per_class"],
            "scale": kw["scale"],
            "gen_actors": kw["gen_actors"],
            "gen_gpus": kw["gen_gpus"],
            **{k: kw.get(k) for k in ("steps", "height", "width", "device")},
        },
        "pretrain": pretrain_options(kw),
        "simulate": {
            "variants": method_variants(kw.get("method"), kw["variants"]),
            **{k: kw[k] for k in ("target_accuracy", "init_pretrained")},
        },
        "fgl": {FGL_FIELDS.get(p.name, p.name): kw.get(p.name) for p in FGL_OPTIONS if p.name != "method"},
    }


def pretrain_options(kw: dict) -> dict:
    """The pre-training options given on the command line, by PretrainConfig field."""
    return {PRETRAIN_FIELDS.get(p.name, p.name): kw.get(p.name) for p in PRETRAIN_OPTIONS}


def method_variants(method: str | None, variants: str | None) -> str | None:
    """`--method fgl` is `--variants fedavg,fgl`: FGL beside the baseline it is measured against."""
    from gptfl_ray.errors import ConfigError

    if method is None:
        return variants
    if method not in METHODS:
        raise ConfigError("--method", f"unknown method {method!r}; choose from {', '.join(METHODS)}")
    if variants is not None:
        raise ConfigError("--method", "give --method or --variants, not both")
    return METHODS[method]


@with_options(
    DATA_OPTIONS,
    MODEL_OPTIONS,
    FL_OPTIONS,
    DP_OPTIONS,
    DEVICE_OPTIONS,
    ENGINE_OPTIONS,
    SIM_OPTIONS,
    SYNTH_OPTIONS,
    PRETRAIN_OPTIONS,
    FGL_OPTIONS,
    TRACK_OPTIONS,
    RUN_OPTIONS,
    [SIMULATE_DIR],
    OUTPUT_OPTIONS,
)
def simulate(**kw):
    """GPT-FL end to end: prompts -> synthetic data -> server pre-training -> FL fine-tuning,
    beside standard FL and the synthetic-only model. With no options: the embedded digits task."""
    from gptfl_ray.errors import ConfigError
    from gptfl_ray.methods.simulate import (
        SIMULATE_STATE,
        check_stages,
        prepare_simulation,
        run_simulation,
        save_simulate_config,
        simulate_config,
    )
    from gptfl_ray.plots import plot_inputs
    from gptfl_ray.ray_runtime import check_resources, client_requests, ensure_ray, generate_request, train_request
    from gptfl_ray.report import diverged_lines, plot_variants, variants_table, write_summary
    from gptfl_ray.runio import RunLock, check_output_dir, clear_run, load_toml_file, read_config
    from gptfl_ray.tracking import Tracker, check_track

    run_dir = check_output_dir(kw["output_dir"] or Path(DEFAULT_RUN))
    if kw["resume"] and kw["overwrite"]:
        raise ConfigError("--resume", "give --resume or --overwrite, not both")
    file_cfg = load_toml_file(kw["config"]) if kw["config"] else {}
    if kw["resume"] and not file_cfg:
        file_cfg = read_config(run_dir)
    file_cfg = apply_sets(file_cfg, kw.get("set"))
    cfg = simulate_config(file_cfg, split_options(kw))
    check_track(kw["track"])
    prepared = prepare_simulation(cfg)  # every input check first: --overwrite deletes nothing on bad input
    if not kw["overwrite"]:
        check_run_dir(run_dir, cfg)
        check_stages(run_dir, cfg)  # a stage the new settings cannot reuse: refused, never silently replaced
    uses_ray = cfg.federate.engine.backend == "ray" or cfg.generate.engine == "ray" or cfg.pretrain.train_workers > 0
    t0 = time.perf_counter()
    if uses_ray:
        with console.status(
            "starting Ray" if not cfg.federate.engine.address else f"joining Ray at {cfg.federate.engine.address}"
        ):
            ensure_ray(cfg.federate.engine.address)
        check_resources(
            [
                *client_requests(cfg.federate.engine),
                *(
                    [generate_request(cfg.generate), train_request(cfg.pretrain)]
                    if cfg.needs_synthetic or "fgl" in cfg.variants
                    else []
                ),
            ]
        )
    with RunLock(run_dir):
        if kw["overwrite"]:
            clear_run(run_dir, SIMULATE_STATE)
        save_simulate_config(run_dir, cfg)
        with Tracker.create(kw["track"], run_dir, kw["mlflow_uri"], kw["mlflow_experiment"]) as tracker:
            tracker.log_config(read_config(run_dir))
            with Progress(
                TextColumn("[bold]{task.description:>10}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=console,
            ) as progress:
                summary = run_simulation(
                    cfg,
                    run_dir,
                    hooks={"stage": stage_progress(progress), "metrics": tracker.on_round},
                    prepared=prepared,
                )
            write_summary(run_dir / "summary.json", summary)
            plots = plot_variants(summary, run_dir / "plots")
            plots += plot_inputs(
                run_dir, prepared[0].dataset, prepared[0].parts, title=f"label distribution: {summary['title']}"
            )
            tracker.backfill_run(run_dir, summary)
            tracker.log_run_artifacts(run_dir)
    console.print(variants_table(summary, summary["title"]))
    prompts = summary.get("prompts") or {}
    if prompts.get("template_fallback"):
        console.print(
            f"[yellow]warning:[/] the LLM named the label too rarely; {prompts['template_fallback']} of "
            f"{prompts['total']} prompts fell back to class templates (summary.json: prompts)",
            highlight=False,
        )
    for line in diverged_lines(summary):
        console.print(f"[yellow]warning:[/] {line}", highlight=False)
    if summary.get("target_is_fedavg_final"):
        console.print(f"target = fedavg's final accuracy ({summary['target_accuracy']:.4f})", highlight=False)
    console.print(
        f"done in {time.perf_counter() - t0:.1f}s -> {run_dir}/summary.json, {', '.join(p.name for p in plots)}",
        highlight=False,
    )
    return {"run_dir": str(run_dir), **summary, "plots": [str(p) for p in plots]}


def check_run_dir(run_dir: Path, cfg) -> None:
    """A run directory of another data set is never mixed into or silently replaced."""
    from gptfl_ray.errors import ConfigError
    from gptfl_ray.runio import read_config

    saved = read_config(run_dir).get("federate", {}).get("data", {}).get("dataset")
    if saved is None or saved == cfg.federate.data.dataset:
        return
    raise ConfigError(
        "--output-dir",
        f"{run_dir} holds a run on {saved!r}, not {cfg.federate.data.dataset!r}; "
        "use another --output-dir, or --overwrite to replace it",
    )


def register(app: typer.Typer) -> None:
    app.command("simulate")(guarded(simulate))


def _present() -> None:
    from gptfl_ray.cli.presentation import field_defaults, present
    from gptfl_ray.pretrain.config import PretrainConfig
    from gptfl_ray.synth.config import GenerateConfig, PromptsConfig

    synth = {
        **field_defaults(PromptsConfig),
        **field_defaults(GenerateConfig, rename={f: o for o, f in GENERATE_FIELDS.items()}),
        "gen_model": "the generator's own",
        "per_class": "1x the real train size",
    }
    pre = field_defaults(PretrainConfig, rename={f: o for o, f in PRETRAIN_FIELDS.items()})
    present(
        "Run",
        SIM_OPTIONS,
        {"variants": "fedavg,synthetic,gptfl", "target_accuracy": "fedavg's final accuracy", "init_pretrained": False},
        {"variants": lambda: ("fedavg", "synthetic", "gptfl", "fgl")},
    )
    present(
        "Synthesis",
        SYNTH_OPTIONS,
        synth,
        {"device": lambda: ("auto", "cpu", "cuda")},
    )
    present("Pre-training", PRETRAIN_OPTIONS, pre)
    present(
        "FGL",
        FGL_OPTIONS,
        {
            "method": "gptfl",
            "fgl_prompts": "class",
            "fgl_rounds": 0,
            "server_finetune_epochs": 0,
            "captioner": "Salesforce/blip-image-captioning-base",
        },
    )


_present()
