"""Option groups shared by several commands, declared once.

Typer reads a command's options from its signature; `with_options` gives a `**kwargs` command
the signature of the listed option groups, so `federate`, `simulate` and the bench commands
share one definition of every FL option instead of copies that drift apart.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, Optional

import typer

from gptfl_ray.config import BACKENDS, EXECUTORS, PARTITIONS
from gptfl_ray.data.registry import dataset_names
from gptfl_ray.fl.algorithms import STRATEGIES
from gptfl_ray.privacy.dp import ACCOUNTANTS, SAMPLINGS, WEIGHTINGS
from gptfl_ray.synth.config import ENGINES, GUIDANCE_DRAWS, PROMPT_STYLES, SCHEDULERS
from gptfl_ray.synth.generators import generator_names

P = inspect.Parameter

# Choices: typed as Literal, so --help lists them, the shell completes them and a bad value is
# refused while parsing (one line naming the option, exit 2: cli/common.py OneLineGroup). Each
# comes from the library's own constant; the models' registry imports torch, so its names are
# spelt here and tests/cli/test_presentation.py checks them against models.registry.model_names().
MODEL_NAMES = ("cnn", "convnet", "fedaudio", "mlp", "resnet18", "resnet50", "vgg19")
NORMS = ("default", "batch", "group", "instance", "none")
CHOICES: dict[str, tuple[str, ...]] = {
    "dataset": tuple(dataset_names()),
    "model": MODEL_NAMES,
    "norm": NORMS,
    "partition": PARTITIONS,
    "strategy": STRATEGIES,
    "backend": tuple(sorted(BACKENDS, key=("ray", "local").index)),
    "executor": EXECUTORS,
    "dp_sampling": SAMPLINGS,
    "dp_weighting": WEIGHTINGS,
    "dp_accountant": ACCOUNTANTS,
    "style": PROMPT_STYLES,
    "generator": tuple(generator_names()),
    "engine": ENGINES,
    "scheduler": SCHEDULERS,
    "guidance_draw": GUIDANCE_DRAWS,
    "method": ("gptfl", "fgl"),
    "fgl_prompts": ("class", "instance"),
    "log_level": ("debug", "info", "warning", "error"),
}


def choice(name: str, optional: bool = True) -> Any:
    """The Literal type of a choice option (Optional: None = "not given", a preset may fill it)."""
    lit = Literal[CHOICES[name]]  # type: ignore[valid-type]
    return Optional[lit] if optional else lit


# Every option's flag by its name, as `opt` declares them ("compile_unet" -> "--compile"): how
# cli/errors.py names a library setting by the option that fills it.
FLAGS: dict[str, str] = {}


def opt(name: str, annotation: Any, default: Any, help: str, *flags: str) -> inspect.Parameter:
    long = [f.split("/")[0] for f in flags if f.startswith("--")]
    FLAGS.setdefault(name, long[0] if long else "--" + name.replace("_", "-"))
    return P(name, P.KEYWORD_ONLY, default=typer.Option(default, *flags, help=help), annotation=annotation)


DATA_OPTIONS = [
    opt(
        "dataset",
        choice("dataset"),
        None,
        "Data set.",
    ),
    opt("data_dir", Optional[str], None, "Where torchvision/torchaudio data sets live."),
    opt("download", Optional[bool], None, "Fetch a missing data set (needs network).", "--download/--no-download"),
    opt("clients", Optional[int], None, "Number of virtual clients."),
    opt("partition", choice("partition"), None, "How the clients split the training set."),
    opt("alpha", Optional[float], None, "Dirichlet concentration (paper: 0.1 high, 0.5 low heterogeneity)."),
    opt("min_client_size", Optional[int], None, "Smallest client under the Dirichlet split."),
    opt("shards_per_client", Optional[int], None, "Shards per client for --partition shards."),
]
MODEL_OPTIONS = [
    opt("model", choice("model"), None, "Downstream model."),
    opt("norm", choice("norm"), None, "Normalisation layer (which ones a model takes depends on the model)."),
]
FL_OPTIONS = [
    opt("strategy", choice("strategy"), None, "FL strategy (server aggregation and client objective)."),
    opt("rounds", Optional[int], None, "Communication rounds."),
    opt("sample_rate", Optional[float], None, "Fraction of clients sampled per round, in (0, 1]."),
    opt("clients_per_round", Optional[int], None, "Clients per round (instead of --sample-rate)."),
    opt("local_epochs", Optional[int], None, "Local epochs per round."),
    opt("batch_size", Optional[int], None, "Local batch size."),
    opt("lr", Optional[float], None, "Client learning rate."),
    opt("momentum", Optional[float], None, "Client SGD momentum."),
    opt("weight_decay", Optional[float], None, "Client weight decay."),
    opt("prox_mu", Optional[float], None, "FedProx proximal weight mu."),
    opt("server_lr", Optional[float], None, "Server learning rate (default 1.0; FedOpt 0.01)."),
    opt("server_momentum", Optional[float], None, "FedAvgM server momentum."),
    opt("beta1", Optional[float], None, "FedOpt beta1."),
    opt("beta2", Optional[float], None, "FedOpt beta2."),
    opt("tau", Optional[float], None, "FedOpt adaptivity tau."),
    opt("eval_every", Optional[int], None, "Evaluate on the test set every k rounds."),
    opt("checkpoint_every", Optional[int], None, "Checkpoint every k rounds (the last round always)."),
    opt("dropout", Optional[float], None, "Probability that a sampled client vanishes mid-round."),
    opt(
        "secure_aggregation",
        Optional[bool],
        None,
        "Sum each round's updates with secure aggregation (Bonawitz et al. 2017).",
        "--secure-aggregation/--no-secure-aggregation",
    ),
    opt(
        "secagg_clip",
        Optional[float],
        None,
        "Secure aggregation: clip per coordinate of n_i * delta_i / largest client.",
    ),
    opt("secagg_bits", Optional[int], None, "Secure aggregation: fixed-point bits per coordinate."),
    opt("seed", Optional[int], None, "Seed: fixes split, init, sampling and every client's randomness."),
]
DP_OPTIONS = [
    opt("dp_noise", Optional[float], None, "Central DP (DP-FedAvg): Gaussian noise multiplier z on the clipped sum."),
    opt(
        "dp_epsilon",
        Optional[float],
        None,
        "Central DP: calibrate the noise so the whole run spends this epsilon (instead of --dp-noise).",
    ),
    opt("dp_delta", Optional[float], None, "DP delta at which epsilon is reported (default 1e-5)."),
    opt("dp_clip", Optional[float], None, "DP: L2 clip of each client's update (the starting clip when adaptive)."),
    opt(
        "dp_clip_quantile",
        Optional[float],
        None,
        "DP adaptive clipping (Andrew et al. 2021): target quantile of update norms.",
    ),
    opt("dp_clip_lr", Optional[float], None, "DP adaptive clipping: geometric learning rate of the clip."),
    opt(
        "dp_clip_noise",
        Optional[float],
        None,
        "DP adaptive clipping: noise std on the clipped-count (default expected clients / 20).",
    ),
    opt("dp_sampling", choice("dp_sampling"), None, "DP client sampling the accountant assumes."),
    opt("dp_weighting", choice("dp_weighting"), None, "DP client weights: uniform, or capped (min(n_i / cap, 1))."),
    opt("dp_weight_cap", Optional[float], None, "DP capped weighting: samples at which a client's weight reaches 1."),
    opt("dp_accountant", choice("dp_accountant"), None, "DP accountant (pld: Poisson sampling only)."),
]
DEVICE_OPTIONS = [
    opt(
        "devices",
        Optional[str],
        None,
        "Simulated devices: lognormal | uniform | a FedScale device-capacity file (.pkl/.json).",
    ),
    opt(
        "availability",
        Optional[str],
        None,
        "Device availability: always | bernoulli | diurnal | a FedScale availability trace.",
    ),
    opt("sec_per_sample", Optional[float], None, "Devices: median seconds per training sample."),
    opt("bandwidth_kbps", Optional[float], None, "Devices: median link bandwidth in kbit/s."),
    opt("speed_sigma", Optional[float], None, "Devices: log-std of speed and bandwidth (lognormal)."),
    opt(
        "avail_p",
        Optional[float],
        None,
        "Availability: chance to be online per round (bernoulli) or share of the day (diurnal).",
    ),
    opt("diurnal_period", Optional[float], None, "Availability: length of a diurnal cycle in seconds."),
    opt(
        "deadline",
        Optional[float],
        None,
        "Round deadline in simulated seconds: later updates are dropped as stragglers.",
    ),
    opt("over_select", Optional[float], None, "Ask ceil(x * k) clients and keep the first k to finish."),
]
ENGINE_OPTIONS = [
    opt("backend", choice("backend"), None, "Where clients train: ray, or local (in-process, for debugging)."),
    opt(
        "address", Optional[str], None, "Ray cluster address ('auto' included); default starts a local Ray on loopback."
    ),
    opt("num_actors", Optional[int], None, "Client-executor actors (default: sized from the cluster's resources)."),
    opt("client_cpus", Optional[float], None, "CPUs per client-executor actor."),
    opt("client_gpus", Optional[float], None, "GPUs per client-executor actor; 0.25 puts four on a GPU."),
    opt(
        "executor",
        choice("executor"),
        None,
        "How an executor trains its clients: auto, vectorized (together, torch.func.vmap) or sequential.",
    ),
]
CONFIG_OPTIONS = [
    opt("config", Optional[Path], None, "TOML file (a preset from configs/, or a run's own config.toml)."),
    opt(
        "set",
        Optional[list[str]],
        None,
        "Override any config key: --set section.key=value (repeatable; TOML values, e.g. federate.fl.lr=0.05).",
    ),
]
RUN_OPTIONS = [
    CONFIG_OPTIONS[0],
    opt("output_dir", Optional[Path], None, "Run directory."),
    opt("resume", bool, False, "Continue the run in --output-dir where it stopped."),
    opt("overwrite", bool, False, "Replace the results already in --output-dir."),
    CONFIG_OPTIONS[1],
]
OUTPUT_OPTIONS = [
    opt(
        "as_json",
        bool,
        False,
        "Print a machine-readable summary (JSON) on stdout; human output goes to stderr.",
        "--json",
    ),
    opt("quiet", bool, False, "No progress bars or tables (errors are still one line on stderr).", "--quiet", "-q"),
    opt(
        "log_level",
        choice("log_level", optional=False),
        "warning",
        "Logging of the library and of Ray; info or debug brings back Ray's own logs when debugging.",
        "--log-level",
    ),
]
TRACK_OPTIONS = [
    opt(
        "track",
        Optional[str],
        None,
        "Experiment tracking sinks, comma-separated: tensorboard, mlflow (pip install 'gptfl-ray[track]').",
    ),
    opt("mlflow_uri", Optional[str], None, "MLflow tracking URI (default: a file store in <run>/mlruns)."),
    opt("mlflow_experiment", str, "gptfl-ray", "MLflow experiment name."),
]
# Options named otherwise than the config field they fill, {option: field}, per section (every
# other option is its field's name with dashes). Commands route their options with these, and
# cli/errors.py reads them back to name a library error's setting by its option.
MODEL_FIELDS = {"model": "name"}  # --model is ModelConfig.name
# PretrainConfig's fields are spelt --pretrain-* everywhere (--lr is the FL clients' learning rate).
PRETRAIN_FIELDS = {
    "pretrain_epochs": "epochs",
    "pretrain_lr": "lr",
    "pretrain_weight_decay": "weight_decay",
    "pretrain_batch_size": "batch_size",
    "pretrain_momentum": "momentum",
}
GENERATE_FIELDS = {
    "gen_model": "model",
    "model_revision": "revision",
    "gen_batch_size": "batch_size",
    "compile_unet": "compile",
}
FGL_FIELDS = {"fgl_prompts": "prompts", "fgl_rounds": "rounds"}
FEDERATE_KEYS = [
    p.name
    for group in (DATA_OPTIONS, MODEL_OPTIONS, FL_OPTIONS, DP_OPTIONS, DEVICE_OPTIONS, ENGINE_OPTIONS)
    for p in group
]


def with_options(*groups: list[inspect.Parameter]) -> Callable[[Callable], Callable]:
    """Give `fn(**kwargs)` the signature made of `groups` (later names win)."""

    def deco(fn: Callable) -> Callable:
        seen: dict[str, inspect.Parameter] = {}
        for group in groups:
            for p in group:
                seen[p.name] = p

        @functools.wraps(fn)
        def wrapper(**kwargs):
            return fn(**kwargs)

        wrapper.__signature__ = inspect.Signature(list(seen.values()))
        return wrapper

    return deco


def _federate_defaults() -> dict:
    from gptfl_ray.cli.presentation import field_defaults
    from gptfl_ray.config import DataConfig, EngineConfig, FLConfig, ModelConfig
    from gptfl_ray.fl.devices import DeviceConfig
    from gptfl_ray.privacy.dp import DPConfig

    out = {}
    for cls in (DataConfig, FLConfig, EngineConfig, DPConfig, DeviceConfig):
        out.update(field_defaults(cls))
    out.update(field_defaults(ModelConfig, rename={"name": "model"}))
    out["server_lr"] = "1.0; FedOpt 0.01"
    out["num_actors"] = "sized from the cluster"
    out["address"] = "a private Ray on 127.0.0.1"
    return out


# Free-form options that still complete their usual values (a file name is also accepted).
COMPLETIONS = {
    "devices": ("lognormal", "uniform"),
    "availability": ("always", "bernoulli", "diurnal"),
    "track": ("tensorboard", "mlflow"),
}


def _present_shared() -> None:
    from gptfl_ray.cli.presentation import present

    defaults = _federate_defaults()
    choices = {k: (lambda v=v: v) for k, v in COMPLETIONS.items()}
    for panel, group in (
        ("Data", DATA_OPTIONS),
        ("Model", MODEL_OPTIONS),
        ("FL", FL_OPTIONS),
        ("FL: differential privacy", DP_OPTIONS),
        ("FL: simulated devices", DEVICE_OPTIONS),
        ("Engine", ENGINE_OPTIONS),
        ("Run", RUN_OPTIONS),
        ("Run: tracking", TRACK_OPTIONS),
        ("Output", OUTPUT_OPTIONS),
    ):
        present(panel, group, defaults, choices)


_present_shared()
