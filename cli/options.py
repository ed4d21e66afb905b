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
from typing import Any, Optional

import typer

P = inspect.Parameter


def opt(name: str, annotation: Any, default: Any, help: str, *flags: str) -> inspect.Parameter:
    return P(name, P.KEYWORD_ONLY, default=typer.Option(default, *flags, help=help), annotation=annotation)


DATA_OPTIONS = [
    opt(
        "dataset",
        Optional[str],
        None,
        "Data set (digits, mnist, cifar10, cifar100, flowers102, speechcommands, esc50).",
    ),
    opt("data_dir", Optional[str], None, "Where torchvision/torchaudio data sets live."),
    opt("download", Optional[bool], None, "Fetch a missing data set (needs network).", "--download/--no-download"),
    opt("clients", Optional[int], None, "Number of virtual clients."),
    opt("partition", Optional[str], None, "iid | dirichlet | shards | natural."),
    opt("alpha", Optional[float], None, "Dirichlet concentration (paper: 0.1 high, 0.5 low heterogeneity)."),
    opt("min_client_size", Optional[int], None, "Smallest client under the Dirichlet split."),
    opt("shards_per_client", Optional[int], None, "Shards per client for --partition shards."),
]
MODEL_OPTIONS = [
    opt("model", Optional[str], None, "Model (cnn, convnet, resnet18, resnet50, vgg19, mlp, fedaudio)."),
    opt("norm", Optional[str], None, "Normalisation layer: default, batch, group, instance, none (per model)."),
]
FL_OPTIONS = [
    opt("strategy", Optional[str], None, "fedavg | fedprox | scaffold | fedadam | fedyogi | fedadagrad | fedavgm."),
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
    opt("dp_sampling", Optional[str], None, "DP client sampling the accountant assumes: poisson (default) | fixed."),
    opt("dp_weighting", Optional[str], None, "DP client weights: uniform (default) | capped (min(n_i / cap, 1))."),
    opt("dp_weight_cap", Optional[float], None, "DP capped weighting: samples at which a client's weight reaches 1."),
    opt("dp_accountant", Optional[str], None, "DP accountant: rdp (default) | pld (Poisson sampling only)."),
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
    opt("backend", Optional[str], None, "ray (default) | local (in-process, for debugging)."),
    opt(
        "address", Optional[str], None, "Ray cluster address ('auto' included); default starts a local Ray on loopback."
    ),
    opt("num_actors", Optional[int], None, "Client-executor actors (default: sized from the cluster's resources)."),
    opt("client_cpus", Optional[float], None, "CPUs per client-executor actor."),
    opt("client_gpus", Optional[float], None, "GPUs per client-executor actor; 0.25 puts four on a GPU."),
    opt(
        "executor",
        Optional[str],
        None,
        "How an executor trains its clients: auto (default) | vectorized (together, torch.func.vmap) | sequential.",
    ),
]
RUN_OPTIONS = [
    opt("config", Optional[Path], None, "TOML file (a preset from configs/, or a run's own config.toml)."),
    opt("output_dir", Optional[Path], None, "Run directory."),
    opt("resume", bool, False, "Continue the run in --output-dir where it stopped."),
    opt("overwrite", bool, False, "Replace the results already in --output-dir."),
    opt(
        "set",
        Optional[list[str]],
        None,
        "Override any config key: --set section.key=value (repeatable; TOML values, e.g. federate.fl.lr=0.05).",
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


def _names(kind: str):
    def names():
        if kind == "dataset":
            from gptfl_ray.data.registry import dataset_names

            return dataset_names()
        if kind == "model":
            from gptfl_ray.models.registry import model_names

            return model_names()
        if kind == "strategy":
            from gptfl_ray.fl.algorithms import STRATEGIES

            return STRATEGIES
        return FIXED_CHOICES[kind]

    return names


FIXED_CHOICES = {
    "partition": ("iid", "dirichlet", "shards", "natural"),
    "norm": ("default", "batch", "group", "instance", "none"),
    "backend": ("ray", "local"),
    "dp_sampling": ("poisson", "fixed"),
    "dp_weighting": ("uniform", "capped"),
    "dp_accountant": ("rdp", "pld"),
    "devices": ("lognormal", "uniform"),
    "availability": ("always", "bernoulli", "diurnal"),
    "track": ("tensorboard", "mlflow"),
}


def _present_shared() -> None:
    from gptfl_ray.cli.presentation import present

    defaults = _federate_defaults()
    choices = {k: _names(k) for k in (*FIXED_CHOICES, "dataset", "model", "strategy")}
    for panel, group in (
        ("Data", DATA_OPTIONS),
        ("Model", MODEL_OPTIONS),
        ("FL", FL_OPTIONS),
        ("FL: differential privacy", DP_OPTIONS),
        ("FL: simulated devices", DEVICE_OPTIONS),
        ("Engine", ENGINE_OPTIONS),
        ("Run", RUN_OPTIONS),
        ("Run: tracking", TRACK_OPTIONS),
    ):
        present(panel, group, defaults, choices)


_present_shared()
