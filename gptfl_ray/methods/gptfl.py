"""GPT-FL (Zhang et al., CVPR-W 2024, Figure 1) composed from the stages, with its baselines.

    label names -> prompts -> synthetic data -> server pre-training -> FL fine-tuning

and the variants the paper compares (Tables 2-4): `fedavg` (standard FL from random init),
`synthetic` (the pre-trained model alone, zero-shot on the real test set) and `gptfl` (the
pre-trained model fine-tuned by FL with any strategy). One run directory holds them all; every
stage's output is reused when its config matches, so a rerun regenerates nothing and an
interrupted run resumes where it stopped.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gptfl_ray.config import FederateConfig, check_resumable
from gptfl_ray.errors import ConfigError
from gptfl_ray.fl.loop import FederationResult, ModelFactory, run_federation
from gptfl_ray.fl.metrics import HeldOut
from gptfl_ray.methods.fgl_config import FGLConfig
from gptfl_ray.methods.task import Task, load_task
from gptfl_ray.models.io import load_model_file
from gptfl_ray.models.params import get_flat
from gptfl_ray.pretrain.config import PretrainConfig
from gptfl_ray.report import variant_summary
from gptfl_ray.runio import plain, publish_dir, read_config, same_key, stage_tmp, write_config_section, write_key
from gptfl_ray.synth.config import GenerateConfig, PromptsConfig

VARIANTS = ("fedavg", "synthetic", "gptfl", "fgl")


@dataclass(frozen=True)
class SimulateConfig:
    federate: FederateConfig = field(default_factory=FederateConfig)
    prompts: PromptsConfig = field(default_factory=PromptsConfig)
    generate: GenerateConfig = field(default_factory=GenerateConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    variants: tuple[str, ...] = ("fedavg", "synthetic", "gptfl")
    target_accuracy: float | None = None  # None: fedavg's final accuracy, when fedavg runs
    init_pretrained: bool = False
    fgl: FGLConfig = field(default_factory=FGLConfig)  # FGL's prompts, captioner, rounds (methods/fgl.py)

    def __post_init__(self):
        from gptfl_ray.fields import check_instance

        check_instance(self)
        if not self.variants:
            raise ConfigError("--variants", "name at least one variant")
        for v in self.variants:
            if v not in VARIANTS:
                raise ConfigError("--variants", f"unknown variant {v!r}; choose from {', '.join(VARIANTS)}")
        if self.target_accuracy is not None and not (0 < self.target_accuracy <= 1):
            raise ConfigError("--target-accuracy", f"must be in (0, 1], got {self.target_accuracy}")
        if self.prompts.dataset != self.federate.data.dataset or self.generate.dataset != self.federate.data.dataset:
            raise ConfigError("--dataset", "the prompts, generate and federate stages must use one data set")

    @property
    def needs_synthetic(self) -> bool:
        return any(v in ("synthetic", "gptfl") for v in self.variants)


@dataclass
class StageTimes:
    seconds: dict[str, float] = field(default_factory=dict)

    def add(self, name: str, t0: float) -> None:
        self.seconds[name] = round(time.perf_counter() - t0, 2)


Hooks = dict[str, Callable[..., Any]]


def _factory(cfg: SimulateConfig, task: Task) -> ModelFactory:
    m = cfg.federate.model
    return ModelFactory(m.name, task.dataset.input_shape, task.dataset.num_classes, m.norm, seed=cfg.federate.fl.seed)


def initial_params(cfg: SimulateConfig, factory: ModelFactory) -> np.ndarray | None:
    """ImageNet weights for every variant when --init-pretrained (paper Table 5), else None."""
    if not cfg.init_pretrained:
        return None
    from gptfl_ray.models.imagenet import load_imagenet_weights

    model, _ = load_imagenet_weights(factory(), cfg.federate.model.name)
    return get_flat(model)


def prepare_simulation(cfg: SimulateConfig) -> tuple[Task, np.ndarray | None]:
    """Every check that can fail on user input, before anything is written or trained."""
    task = load_task(cfg.federate)
    if cfg.needs_synthetic:
        from gptfl_ray.synth.generators import generator_class
        from gptfl_ray.synth.generators.base import TargetFormat

        generator_class(cfg.generate.generator).preflight(
            TargetFormat.from_dataset(task.dataset), cfg.generate.model, cfg.generate.generator_options()
        )
    if "fgl" in cfg.variants:
        from gptfl_ray.methods.fgl import preflight_fgl

        preflight_fgl(cfg, task)
    return task, initial_params(cfg, _factory(cfg, task))


def run_simulation(
    cfg: SimulateConfig,
    run_dir: str | Path,
    hooks: Hooks | None = None,
    prepared: tuple[Task, np.ndarray | None] | None = None,
    federate_root: str | Path | None = None,
) -> dict:
    """Run every requested variant into `run_dir`; returns the summary (also `summary.json`).

    `federate_root` (default `run_dir/federate`) lets benchmarks keep one FL folder per setting
    while sharing the run's synthetic data and pre-trained model."""
    from gptfl_ray.synth import pipeline, store
    from gptfl_ray.synth import prompts as prompts_mod

    hooks = hooks or {}
    stage = hooks.get("stage", lambda name, total=None: lambda done: None)
    metrics_hook = hooks.get("metrics")  # metrics_hook(variant) -> on_round(row), e.g. a tracker's
    run_dir = Path(run_dir)
    times = StageTimes()
    t_all = time.perf_counter()
    task, init = prepared or prepare_simulation(cfg)
    ds = task.dataset
    factory = _factory(cfg, task)
    run_dir.mkdir(parents=True, exist_ok=True)

    # Stages 1-2: prompts and synthetic data (paper 3.1-3.2), reused when already complete.
    if cfg.needs_synthetic:
        t0 = time.perf_counter()
        prompt_info = prompt_counts(prompts_mod.ensure_prompts(cfg.prompts, ds, run_dir), cfg.prompts.style)
        times.add("prompts", t0)
        t0 = time.perf_counter()
        pipeline.ensure_generated(cfg.generate, ds, run_dir, progress=stage("generate"))
        times.add("generate", t0)

        # Stage 3: server pre-training on the synthetic data (paper 3.3).
        t0 = time.perf_counter()
        pre_dir = run_dir / "pretrain"
        manifest_sha = store.read_manifest(run_dir).get("sha256", "")
        pre_key = {
            **dataclasses.asdict(cfg.pretrain),
            "model": cfg.federate.model.name,
            "norm": cfg.federate.model.norm,
            "synthetic": manifest_sha,
            "init_pretrained": cfg.init_pretrained,
        }
        if not ((pre_dir / "model.safetensors").exists() and same_key(pre_dir, pre_key)):
            from gptfl_ray.pretrain.trainer import pretrain_on_shards

            build = stage_tmp(pre_dir)  # outputs and key appear together, or not at all
            pretrain_on_shards(
                cfg.pretrain,
                factory,
                ds,
                run_dir,
                build,
                on_epoch=stage("pretrain", cfg.pretrain.epochs),
                init_params=init,
            )
            write_key(build, pre_key)
            publish_dir(build, pre_dir)
        times.add("pretrain", t0)
        pretrained = get_flat(load_model_file(factory(), pre_dir / "model.safetensors", option="--output-dir"))

    variants: dict[str, dict] = {}
    results: dict[str, FederationResult] = {}
    for name in cfg.variants:
        t0 = time.perf_counter()
        if name == "synthetic":
            ev = HeldOut(ds)(factory(), pretrained)
            hist = [{"round": 0, **ev, "cum_bytes": 0}]
            variants[name] = variant_summary(hist, None, len(pretrained))
        elif name in ("fedavg", "gptfl"):
            start = pretrained if name == "gptfl" else init
            root = Path(federate_root) if federate_root is not None else run_dir / "federate"
            res = _federate_variant(
                cfg.federate,
                task,
                root / name,
                start,
                stage(name, cfg.federate.fl.rounds),
                on_metrics=metrics_hook(name) if metrics_hook else None,
            )
            results[name] = res
            variants[name] = variant_summary(res.history, None, res.num_params, rounds=res.rounds)
        elif name == "fgl":
            from gptfl_ray.methods.fgl import run_fgl_variants

            variants.update(
                run_fgl_variants(cfg, task, factory, run_dir, stage)
            )  # "fgl", and "fgl_rounds" with --fgl-rounds
        times.add(name, t0)

    target = cfg.target_accuracy
    if target is None and "fedavg" in variants:
        target = variants["fedavg"]["final_accuracy"]
    for v in variants.values():
        hist = [
            {"round": r, "accuracy": a, "cum_bytes": b}
            for (r, a), (_, b) in zip(v["accuracy_per_round"], v["bytes_per_round"])
        ]
        v.update(_target_fields(hist, target))
    times.add("total", t_all)
    summary = {
        # which methods ran: GPT-FL's variants, FGL's, or both
        "methods": sorted(
            {"fgl" if v.startswith("fgl") else "gptfl" if v in ("synthetic", "gptfl") else "fl" for v in variants}
        ),
        "dataset": ds.name,
        "model": cfg.federate.model.name,
        "strategy": cfg.federate.fl.strategy,
        "clients": cfg.federate.data.clients,
        "rounds": cfg.federate.fl.rounds,
        "seed": cfg.federate.fl.seed,
        "target_accuracy": target,
        "target_is_fedavg_final": cfg.target_accuracy is None and "fedavg" in variants,
        "variants": variants,
        **({"prompts": prompt_info} if cfg.needs_synthetic else {}),
        "stage_seconds": times.seconds,
        "title": f"{ds.name} / {cfg.federate.model.name} / {cfg.federate.fl.strategy} / {cfg.federate.data.clients} clients, Dir({cfg.federate.data.alpha})",
    }
    return summary


def prompt_counts(rows: list[dict], style: str) -> dict:
    """How many prompts the LLM wrote and how many fell back to class templates (`--style llm`:
    an LLM that rarely names the label leaves the rest to templates). Read from the rows, so a
    reused prompts file reports the same counts as the run that made it."""
    llm = sum(r.get("style") == "llm" for r in rows)
    return {
        "style": style,
        "total": len(rows),
        "llm": llm,
        "template_fallback": len(rows) - llm if style == "llm" else 0,
    }


def _target_fields(hist: list[dict], target: float | None) -> dict:
    from gptfl_ray.report import first_reaching

    hit = first_reaching(hist, target)
    return {
        "target_accuracy": target,
        "rounds_to_target": None if hit is None else hit["round"],
        "bytes_to_target": None if hit is None else hit["cum_bytes"],
    }


def _federate_variant(
    fcfg: FederateConfig,
    task: Task,
    out: Path,
    start: np.ndarray | None,
    on_round,
    on_metrics: Callable[[dict], None] | None = None,
) -> FederationResult:
    """Run (or resume, or reuse) one FL variant in its own directory."""
    start_key = {
        "sha256": "random-init" if start is None else hashlib.sha256(np.ascontiguousarray(start).tobytes()).hexdigest()
    }
    saved = read_config(out) if out.exists() else {}
    same = bool(saved)
    if saved:  # never silently replaced: `simulate --overwrite` clears the run first
        check_resumable(
            f"federate/{out.name}",
            out,
            {"federate": saved.get("federate"), "start": saved.get("start")},
            {"federate": plain(fcfg), "start": start_key},
        )
    write_config_section(out, "federate", fcfg)
    write_config_section(out, "start", start_key)
    progress = on_round

    def cb(m: dict) -> None:
        progress(m["round"])
        if on_metrics is not None:
            on_metrics(m)

    return run_federation(fcfg, task.dataset, task.parts, out, resume=same, init_params=start, on_round=cb)


SIM_KEYS = ("variants", "target_accuracy", "init_pretrained")
# the tables a run's config.toml or a preset may hold
SIM_SECTIONS = (
    "federate",
    "prompts",
    "generate",
    "pretrain",
    "fgl",
    "simulate",
    "pretrain_key",
)  # pretrain_key: older runs


def simulate_config(file_cfg: dict[str, Any] | None, overrides: dict[str, dict[str, Any]]) -> SimulateConfig:
    """Defaults < TOML (a preset or a run's config.toml) < command-line options.

    `overrides` holds one dict per section: federate (flat FL/data/model/engine options),
    prompts, generate, pretrain, simulate; None values mean "not given".
    """
    from gptfl_ray.config import build_section, federate_config
    from gptfl_ray.fields import check_sections, nearest

    file_cfg = file_cfg or {}
    check_sections(file_cfg, SIM_SECTIONS)
    given = {sec: {k: v for k, v in vals.items() if v is not None} for sec, vals in overrides.items()}
    fed = federate_config(file_cfg.get("federate", {}), given.get("federate", {}))
    dataset, seed = fed.data.dataset, fed.fl.seed
    prompts = build_section(
        PromptsConfig,
        file_cfg.get("prompts", {}),
        {"dataset": dataset, "seed": seed},
        given.get("prompts", {}),
        section="prompts",
    )
    generate = build_section(
        GenerateConfig,
        file_cfg.get("generate", {}),
        {"dataset": dataset, "seed": seed},
        given.get("generate", {}),
        section="generate",
    )
    pre = build_section(
        PretrainConfig, file_cfg.get("pretrain", {}), {"seed": seed}, given.get("pretrain", {}), section="pretrain"
    )
    fgl = build_section(FGLConfig, file_cfg.get("fgl", {}), given.get("fgl", {}), section="fgl")
    file_sim = file_cfg.get("simulate", {})
    if not isinstance(file_sim, dict):
        raise ConfigError("[simulate]", f"must be a table of settings, got {file_sim!r}")
    sim = {**file_sim, **given.get("simulate", {})}
    unknown = set(sim) - set(SIM_KEYS)
    if unknown:
        key = sorted(unknown)[0]
        raise ConfigError(f"[simulate] {key}", f"unknown setting{nearest(key, SIM_KEYS)}; known: {', '.join(SIM_KEYS)}")
    if isinstance(sim.get("variants"), str):
        sim["variants"] = tuple(v.strip() for v in sim["variants"].split(",") if v.strip())
    elif isinstance(sim.get("variants"), list):
        sim["variants"] = tuple(sim["variants"])
    return SimulateConfig(federate=fed, prompts=prompts, generate=generate, pretrain=pre, fgl=fgl, **sim)


# What `simulate --overwrite` removes: every stage's state (and the lock-free leftovers of builds).
SIMULATE_STATE = (
    "config.toml",
    "prompts",
    "synthetic",
    "pretrain",
    "federate",
    "fgl",
    "summary.json",
    "plots",
    "mlruns",
    "tensorboard",
)


def stage_sections(cfg: SimulateConfig) -> dict[str, tuple[str, dict]]:
    """Each stage of a simulate run: (its output in the run directory, the settings it depends on)."""
    p = plain
    pre = {"pretrain": p(cfg.pretrain), "model": p(cfg.federate.model), "init_pretrained": cfg.init_pretrained}
    return {
        "prompts": ("prompts", {"prompts": p(cfg.prompts)}),
        "generate": ("synthetic", {"prompts": p(cfg.prompts), "generate": p(cfg.generate)}),
        "pretrain": ("pretrain", pre),
        "federate": ("federate", {"federate": p(cfg.federate), **pre, "generate": p(cfg.generate)}),
        "fgl": (
            "fgl",
            {
                "fgl": p(cfg.fgl),
                "prompts": p(cfg.prompts),
                "generate": p(cfg.generate),
                **pre,
                "federate": p(cfg.federate),
            },
        ),
    }


def check_stages(run_dir: str | Path, cfg: SimulateConfig) -> None:
    """Before anything is written: a stage already in `run_dir` that the new settings cannot
    reuse or continue is refused with one line naming the stage and the differing keys."""
    run_dir = Path(run_dir)
    saved = read_config(run_dir)
    if not saved:
        return
    saved_cfg = {
        "prompts": saved.get("prompts"),
        "generate": saved.get("generate"),
        "pretrain": saved.get("pretrain"),
        "fgl": saved.get("fgl"),
        "federate": saved.get("federate"),
        "init_pretrained": saved.get("simulate", {}).get("init_pretrained", False),
        "model": saved.get("federate", {}).get("model"),
    }
    for name, (output, deps) in stage_sections(cfg).items():
        if not (run_dir / output).exists():
            continue
        check_resumable(name, run_dir, {k: saved_cfg.get(k) for k in deps}, deps)


def save_simulate_config(run_dir: str | Path, cfg: SimulateConfig) -> None:
    """The resolved config as `config.toml` tables: federate.*, prompts, generate, pretrain, simulate."""
    write_config_section(run_dir, "federate", cfg.federate)
    write_config_section(run_dir, "prompts", cfg.prompts)
    write_config_section(run_dir, "generate", cfg.generate)
    write_config_section(run_dir, "pretrain", cfg.pretrain)
    write_config_section(run_dir, "fgl", cfg.fgl)
    write_config_section(run_dir, "simulate", {k: getattr(cfg, k) for k in SIM_KEYS})
