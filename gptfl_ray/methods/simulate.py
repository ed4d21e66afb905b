"""`gptfl-ray simulate`: one run directory, every requested variant, one summary.

The variants the papers compare register here by name (`register_variant`): GPT-FL's
(`methods/gptfl.py`: `fedavg`, `synthetic`, `gptfl`; GPT-FL Tables 2-4) and FGL's
(`methods/fgl.py`: `fgl`, plus `fgl_rounds` with --fgl-rounds). This module owns the config
that selects them, the run-directory checks before anything is written, and the loop that runs
them; it imports neither method (they import it), so imports point one way. Importing the
`gptfl_ray.methods` package registers both.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gptfl_ray.config import FederateConfig, check_resumable
from gptfl_ray.errors import ConfigError
from gptfl_ray.fields import check_instance
from gptfl_ray.fl.pool import EnginePool
from gptfl_ray.methods.fgl_config import FGLConfig
from gptfl_ray.methods.stages import (
    StageFn,
    StageTimes,
    initial_params,
    model_factory,
    no_stage,
    preflight_generator,
    synthetic_stages,
)
from gptfl_ray.methods.task import Task, load_task
from gptfl_ray.models.factory import ModelFactory
from gptfl_ray.pretrain.config import PretrainConfig
from gptfl_ray.runio import plain, read_config, write_config_section
from gptfl_ray.synth.config import GenerateConfig, PromptsConfig

Hooks = dict[str, Callable[..., Any]]


@dataclass(frozen=True)
class SimContext:
    """What a variant's runner gets: the config, the task and what the shared stages made."""

    cfg: SimulateConfig
    task: Task
    factory: ModelFactory
    run_dir: Path
    federate_root: Path  # one folder per FL variant below it
    stage: StageFn
    metrics_hook: Callable[[str], Callable[[dict], None]] | None
    init: np.ndarray | None  # ImageNet weights with --init-pretrained, else None (random init)
    pretrained: np.ndarray | None  # GPT-FL's pre-trained weights, when a selected variant needs them
    engines: EnginePool  # the run's one executor pool, shared by every FL variant (fl/pool.py)


@dataclass(frozen=True)
class Variant:
    name: str
    method: str  # the method a summary lists it under: "fl", "gptfl" or "fgl"
    run: Callable[[SimContext], dict[str, dict]]  # -> {summary name: variant summary}
    needs_pretrained: bool = False  # runs on GPT-FL's synthetic data and pre-trained model
    preflight: Callable[[SimulateConfig, Task], None] | None = None  # input checks before any stage


_VARIANTS: dict[str, Variant] = {}


def register_variant(variant: Variant) -> Variant:
    if variant.name in _VARIANTS and _VARIANTS[variant.name] != variant:
        raise ValueError(f"variant {variant.name!r} is registered twice")
    _VARIANTS[variant.name] = variant
    return variant


def variant_names() -> tuple[str, ...]:
    return tuple(_VARIANTS)


def get_variant(name: str) -> Variant:
    return _VARIANTS[name]


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
        check_instance(self, "simulate")
        if not self.variants:
            raise ConfigError("simulate.variants", "name at least one variant")
        known = variant_names()
        for v in self.variants:
            if v not in known:
                raise ConfigError("simulate.variants", f"unknown variant {v!r}; choose from {', '.join(known)}")
        if self.target_accuracy is not None and not (0 < self.target_accuracy <= 1):
            raise ConfigError("simulate.target_accuracy", f"must be in (0, 1], got {self.target_accuracy}")
        if self.prompts.dataset != self.federate.data.dataset or self.generate.dataset != self.federate.data.dataset:
            raise ConfigError("data.dataset", "the prompts, generate and federate stages must use one data set")

    @property
    def needs_synthetic(self) -> bool:
        return any(get_variant(v).needs_pretrained for v in self.variants)


def prepare_simulation(cfg: SimulateConfig) -> tuple[Task, np.ndarray | None]:
    """Every check that can fail on user input, before anything is written or trained."""
    task = load_task(cfg.federate)
    if cfg.needs_synthetic:
        preflight_generator(cfg, task)
    for name in cfg.variants:
        check = get_variant(name).preflight
        if check is not None:
            check(cfg, task)
    return task, initial_params(cfg, model_factory(cfg, task))


def run_simulation(
    cfg: SimulateConfig,
    run_dir: str | Path,
    hooks: Hooks | None = None,
    prepared: tuple[Task, np.ndarray | None] | None = None,
    federate_root: str | Path | None = None,
    engines: EnginePool | None = None,
) -> dict:
    """Run every requested variant into `run_dir`; returns the summary (also `summary.json`).

    `federate_root` (default `run_dir/federate`) lets benchmarks keep one FL folder per setting
    while sharing the run's synthetic data and pre-trained model. `engines` (a bench sweep's) keeps
    the executor pool running across calls; without it the pool lives for this call only."""
    hooks = hooks or {}
    stage: StageFn = hooks.get("stage", no_stage)
    metrics_hook = hooks.get("metrics")  # metrics_hook(variant) -> on_round(row), e.g. a tracker's
    run_dir = Path(run_dir)
    times = StageTimes()
    t_all = time.perf_counter()
    task, init = prepared or prepare_simulation(cfg)
    ds = task.dataset
    factory = model_factory(cfg, task)
    run_dir.mkdir(parents=True, exist_ok=True)

    pretrained = prompt_info = None
    if cfg.needs_synthetic:
        pretrained, prompt_info = synthetic_stages(cfg, task, factory, run_dir, stage, init, times)
    own_pool = engines is None
    engines = EnginePool() if engines is None else engines
    ctx = SimContext(
        cfg=cfg,
        task=task,
        factory=factory,
        run_dir=run_dir,
        federate_root=Path(federate_root) if federate_root is not None else run_dir / "federate",
        stage=stage,
        metrics_hook=metrics_hook,
        init=init,
        pretrained=pretrained,
        engines=engines,
    )

    variants: dict[str, dict] = {}
    methods: set[str] = set()
    try:
        for name in cfg.variants:
            t0 = time.perf_counter()
            variant = get_variant(name)
            variants.update(variant.run(ctx))
            methods.add(variant.method)
            times.add(name, t0)
    finally:
        if own_pool:
            engines.close()

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
    return {
        "methods": sorted(methods),  # which methods ran: GPT-FL's variants, FGL's, or both
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


def _target_fields(hist: list[dict], target: float | None) -> dict:
    from gptfl_ray.report import first_reaching

    hit = first_reaching(hist, target)
    return {
        "target_accuracy": target,
        "rounds_to_target": None if hit is None else hit["round"],
        "bytes_to_target": None if hit is None else hit["cum_bytes"],
    }


SIM_KEYS = ("variants", "target_accuracy", "init_pretrained")
# the tables a run's config.toml or a preset may hold (pretrain_key: older runs)
SIM_SECTIONS = ("federate", "prompts", "generate", "pretrain", "fgl", "simulate", "pretrain_key")


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
