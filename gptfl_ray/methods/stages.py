"""Stage helpers every method shares: the model builder, the ImageNet init, the synthetic-data
stages and server pre-training, with the one cache key and the one parameter hash they use.

GPT-FL (Zhang et al., CVPR-W 2024, sections 3.1-3.3) and FGL (Zhang, Qi, Zhao) both pre-train
on synthetic data on the server; they differ in where the prompts come from. `methods/gptfl.py`
and `methods/fgl.py` compose these helpers; `methods/simulate.py` runs the variants.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from gptfl_ray.config import FederateConfig
from gptfl_ray.methods.task import Task
from gptfl_ray.models.factory import ModelFactory
from gptfl_ray.models.io import load_model_file
from gptfl_ray.models.params import get_flat
from gptfl_ray.pretrain.config import PretrainConfig
from gptfl_ray.runio import publish_dir, same_key, stage_tmp, write_key
from gptfl_ray.synth.config import GenerateConfig, PromptsConfig

Progress = Callable[[int], None]


class StageSettings(Protocol):
    """What the shared stages read of a run's config (methods/simulate.py's SimulateConfig)."""

    @property
    def federate(self) -> FederateConfig: ...
    @property
    def prompts(self) -> PromptsConfig: ...
    @property
    def generate(self) -> GenerateConfig: ...
    @property
    def pretrain(self) -> PretrainConfig: ...
    @property
    def init_pretrained(self) -> bool: ...


class StageFn(Protocol):
    """`stage(name, total)` -> a progress callback `done -> None` (the CLI's progress bars)."""

    def __call__(self, name: str, total: int | None = None) -> Progress: ...


def no_stage(name: str, total: int | None = None) -> Progress:
    return lambda done: None


@dataclass
class StageTimes:
    seconds: dict[str, float] = field(default_factory=dict)

    def add(self, name: str, t0: float) -> None:
        self.seconds[name] = round(time.perf_counter() - t0, 2)


def model_factory(cfg: StageSettings, task: Task) -> ModelFactory:
    m = cfg.federate.model
    return ModelFactory(m.name, task.dataset.input_shape, task.dataset.num_classes, m.norm, seed=cfg.federate.fl.seed)


def initial_params(cfg: StageSettings, factory: ModelFactory) -> np.ndarray | None:
    """ImageNet weights for every variant when --init-pretrained (paper Table 5), else None."""
    if not cfg.init_pretrained:
        return None
    from gptfl_ray.models.imagenet import load_imagenet_weights

    model, _ = load_imagenet_weights(factory(), cfg.federate.model.name)
    return get_flat(model)


def preflight_generator(cfg: StageSettings, task: Task) -> None:
    """The generator's own input checks (model reference, options) before any stage runs."""
    from gptfl_ray.synth.format import TargetFormat
    from gptfl_ray.synth.generators import generator_class

    generator_class(cfg.generate.generator).preflight(
        TargetFormat.from_dataset(task.dataset), cfg.generate.model, cfg.generate.generator_options()
    )


def pretrain_key(
    pretrain: PretrainConfig, model: str, norm: str, synthetic_sha: str, init_pretrained: bool
) -> dict[str, Any]:
    """What a server pre-trained model depends on: its settings, the model and the data. The
    one key `simulate`, FGL and `gptfl-ray pretrain` publish with a model, so each reuses the others'."""
    return {
        **dataclasses.asdict(pretrain),
        "model": model,
        "norm": norm,
        "synthetic": synthetic_sha,
        "init_pretrained": init_pretrained,
    }


def ensure_pretrained(
    cfg: StageSettings,
    factory: ModelFactory,
    task: Task,
    data_dir: Path,
    model_dir: Path,
    synthetic_sha: str,
    on_epoch: Progress,
    init: np.ndarray | None,
) -> np.ndarray:
    """Pre-train on the synthetic shards under `data_dir` into `model_dir`, unless a model made
    from the same key is there; returns its flat weights."""
    m = cfg.federate.model
    key = pretrain_key(cfg.pretrain, m.name, m.norm, synthetic_sha, cfg.init_pretrained)
    if not ((model_dir / "model.safetensors").exists() and same_key(model_dir, key)):
        from gptfl_ray.pretrain.trainer import pretrain_on_shards

        build = stage_tmp(model_dir)  # the model and its key appear together, or not at all
        pretrain_on_shards(cfg.pretrain, factory, task.dataset, data_dir, build, on_epoch=on_epoch, init_params=init)
        write_key(build, key)
        publish_dir(build, model_dir)
    return get_flat(load_model_file(factory(), model_dir / "model.safetensors", option="output_dir"))


def synthetic_stages(
    cfg: StageSettings,
    task: Task,
    factory: ModelFactory,
    run_dir: Path,
    stage: StageFn,
    init: np.ndarray | None,
    times: StageTimes,
) -> tuple[np.ndarray, dict]:
    """GPT-FL's server side (paper 3.1-3.3): prompts -> synthetic data -> pre-training, each
    reused when already complete. Returns the pre-trained weights and the prompt counts."""
    from gptfl_ray.synth import pipeline, store
    from gptfl_ray.synth import prompts as prompts_mod

    ds = task.dataset
    t0 = time.perf_counter()
    prompt_info = prompt_counts(prompts_mod.ensure_prompts(cfg.prompts, ds, run_dir), cfg.prompts.style)
    times.add("prompts", t0)
    t0 = time.perf_counter()
    pipeline.ensure_generated(cfg.generate, ds, run_dir, progress=stage("generate"))
    times.add("generate", t0)
    t0 = time.perf_counter()
    manifest_sha = store.read_manifest(run_dir).get("sha256", "")
    pretrained = ensure_pretrained(
        cfg, factory, task, run_dir, run_dir / "pretrain", manifest_sha, stage("pretrain", cfg.pretrain.epochs), init
    )
    times.add("pretrain", t0)
    return pretrained, prompt_info


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
