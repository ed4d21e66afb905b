"""Resolved configs of the prompts and generate stages (GPT-FL sections 3.1-3.2).

Frozen dataclasses validated on construction (docs/architecture.md rule 9): a bad value fails before any model
loads or Ray starts, with one ConfigError line that names the CLI option.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from gptfl_ray.errors import ConfigError
from gptfl_ray.fields import check_instance

PROMPT_STYLES = ("class", "multi-domain", "llm")
ENGINES = ("ray", "local")
# The paper used GPT-3; any causal LM by hub id or local path works. `openai-community/gpt2` is
# GPT-2's canonical hub id (the bare `gpt2` is a redirect to it).
DEFAULT_LLM = "openai-community/gpt2"
GUIDANCE_DRAWS = ("integer", "uniform")
SCHEDULERS = ("dpm", "default")


def _positive_int(option: str, value: int | None) -> None:
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value <= 0):
        raise ConfigError(option, f"must be a positive integer, got {value!r}")


def _positive(option: str, value: float | None) -> None:
    if value is not None and not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise ConfigError(option, f"must be a positive number, got {value!r}")


def _counts(section: str, per_class: int | None, scale: float | None) -> None:
    _positive_int(f"{section}.per_class", per_class)
    _positive(f"{section}.scale", scale)
    if per_class is not None and scale is not None:
        raise ConfigError(f"{section}.per_class", f"give `{section}.per_class` or `{section}.scale`, not both")


def per_class_count(per_class: int | None, scale: float | None, num_train: int, num_classes: int) -> int:
    """`--scale k` is the paper's "kx synthetic": k times the real train size, spread evenly."""
    if per_class is not None:
        return per_class
    return max(1, int(round((1.0 if scale is None else scale) * num_train / max(1, num_classes))))


@dataclass(frozen=True)
class PromptsConfig:
    dataset: str = "digits"
    style: str = "class"
    per_class: int | None = None
    scale: float | None = None
    seed: int = 0
    guidance_min: float = 1.0  # the paper draws the guidance scale in [1, 5]
    guidance_max: float = 5.0
    # "integer": 1, 2, ..., 5 as the original GPT-FL code draws it; "uniform": continuous, rounded
    # to `guidance_grid` so rows share scales and a generator batches them into one call.
    guidance_draw: str = "integer"
    guidance_grid: float = 0.5
    style_words: bool = True  # mix glyph style words (bold, slanted, ...) into image prompts
    llm_model: str | None = None
    llm_max_tries: int = 8  # LLM rounds per class before falling back to class templates
    llm_max_new_tokens: int = 24
    labels: tuple[str, ...] | None = None  # a received label set (e.g. IBLT-decoded); None = all

    def __post_init__(self):
        check_instance(self, "prompts")
        if self.seed < 0:
            raise ConfigError("prompts.seed", f"must be >= 0, got {self.seed}")
        if self.style not in PROMPT_STYLES:
            raise ConfigError(
                "prompts.style", f"unknown prompt style {self.style!r}; choose from {', '.join(PROMPT_STYLES)}"
            )
        _counts("prompts", self.per_class, self.scale)
        _positive("prompts.guidance_min", self.guidance_min)
        _positive("prompts.guidance_max", self.guidance_max)
        if self.guidance_min > self.guidance_max:
            raise ConfigError(
                "prompts.guidance_min", f"{self.guidance_min} exceeds `prompts.guidance_max` {self.guidance_max}"
            )
        if self.guidance_draw not in GUIDANCE_DRAWS:
            raise ConfigError(
                "prompts.guidance_draw", f"unknown draw {self.guidance_draw!r}; choose from {', '.join(GUIDANCE_DRAWS)}"
            )
        if self.guidance_draw == "integer" and math.floor(self.guidance_max) < math.ceil(self.guidance_min):
            raise ConfigError(
                "prompts.guidance_min",
                f"no integer guidance in [{self.guidance_min}, {self.guidance_max}]; "
                "widen the range or use `prompts.guidance_draw` uniform",
            )
        _positive("prompts.guidance_grid", self.guidance_grid)
        _positive_int("prompts.llm_max_tries", self.llm_max_tries)
        _positive_int("prompts.llm_max_new_tokens", self.llm_max_new_tokens)
        if self.style == "llm" and self.llm_model is None:
            object.__setattr__(self, "llm_model", DEFAULT_LLM)
        if self.labels is not None:
            object.__setattr__(self, "labels", tuple(self.labels))


@dataclass(frozen=True)
class GenerateConfig:
    dataset: str = "digits"
    generator: str = "glyph"
    model: str | None = None  # hub id or local path; None = the generator's default
    seed: int = 0
    per_class: int | None = None  # subsample the prompts file (or size new prompts)
    scale: float | None = None
    gen_actors: int = 1
    gen_gpus: float = 0.0  # GPUs per actor; fractions pack several actors on one GPU
    batch_size: int = 16
    shard_size: int = 256
    engine: str = "ray"  # "local" runs the same generator in a plain loop (tests, benchmark)
    overwrite: bool = False
    revision: str | None = None  # hub branch/tag/commit of --model; None = main (resolved commit in the manifest)
    steps: int = 30  # diffusion steps (diffusers, audioldm)
    scheduler: str = "dpm"  # DPM-Solver multistep (the original code's) | default = the model's own
    compile: bool = False  # torch.compile the UNet (GPU only; pays off on long runs)
    height: int | None = None  # generation size before resizing to the data set's size
    width: int | None = None
    negative_prompt: str = ""
    clip_seconds: float = 1.0  # audio clip length (data set's length wins when it has one)
    speaker_embeddings: str | None = (
        None  # SpeechT5 x-vectors: .npy/.pt file, hf:<data set>, random (None = CMU ARCTIC)
    )
    vocoder: str | None = None  # SpeechT5 HiFi-GAN by hub id or path (default microsoft/speecht5_hifigan)
    device: str = "auto"  # auto = cuda with fp16 when a GPU is visible, else cpu
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        check_instance(self, "generate")
        if self.seed < 0:
            raise ConfigError("generate.seed", f"must be >= 0, got {self.seed}")
        _counts("generate", self.per_class, self.scale)
        _positive_int("generate.gen_actors", self.gen_actors)
        if not (isinstance(self.gen_gpus, (int, float)) and math.isfinite(self.gen_gpus) and self.gen_gpus >= 0):
            raise ConfigError("generate.gen_gpus", f"must be zero or a positive number, got {self.gen_gpus!r}")
        _positive_int("generate.batch_size", self.batch_size)
        _positive_int("generate.shard_size", self.shard_size)
        _positive_int("generate.steps", self.steps)
        _positive_int("generate.height", self.height)
        _positive_int("generate.width", self.width)
        _positive("generate.clip_seconds", self.clip_seconds)
        if self.scheduler not in SCHEDULERS:
            raise ConfigError(
                "generate.scheduler", f"unknown scheduler {self.scheduler!r}; choose from {', '.join(SCHEDULERS)}"
            )
        if self.engine not in ENGINES:
            raise ConfigError("generate.engine", f"unknown engine {self.engine!r}; choose from {', '.join(ENGINES)}")
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ConfigError("generate.device", f"unknown device {self.device!r}; use auto, cpu or cuda[:N]")

    def generator_options(self) -> dict:
        """What the generator actors see (no counts or paths of the run itself)."""
        opts = {
            "revision": self.revision,
            "steps": self.steps,
            "scheduler": self.scheduler,
            "compile": self.compile or None,
            "height": self.height,
            "width": self.width,
            "negative_prompt": self.negative_prompt,
            "clip_seconds": self.clip_seconds,
            "speaker_embeddings": self.speaker_embeddings,
            "vocoder": self.vocoder,
            "device": self.device,
            **self.extra,
        }
        return {k: v for k, v in opts.items() if v is not None}
