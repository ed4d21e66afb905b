"""Frozen, validated configuration per stage (docs/architecture.md rule 9).

Typer options and TOML presets both fill these dataclasses; a bad value fails on construction,
before any work starts, with one line naming the setting (`fl.lr`; the CLI prints its flag,
cli/errors.py). `config.toml` in a run directory holds one table per dataclass, so a run
repeats from its seed and that file alone.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from typing import Any

from gptfl_ray.errors import ConfigError
from gptfl_ray.fields import check_instance, check_layer, check_sections
from gptfl_ray.fl.devices import DeviceConfig
from gptfl_ray.privacy.dp import DPConfig, check_compatible

PARTITIONS = ("iid", "dirichlet", "shards", "natural")
BACKENDS = ("local", "ray")
EXECUTORS = ("auto", "vectorized", "sequential")


def _check(cond: bool, option: str, problem: str) -> None:
    if not cond:
        raise ConfigError(option, problem)


@dataclass(frozen=True)
class DataConfig:
    dataset: str = "digits"
    data_dir: str | None = None
    download: bool = False
    partition: str = "dirichlet"
    alpha: float = 0.1
    clients: int = 50
    min_client_size: int = 2
    shards_per_client: int = 2

    def __post_init__(self):
        check_instance(self, "data")
        _check(
            self.partition in PARTITIONS,
            "data.partition",
            f"unknown partition {self.partition!r}; choose from {', '.join(PARTITIONS)}",
        )
        _check(self.alpha > 0, "data.alpha", f"must be > 0, got {self.alpha}")
        _check(self.clients >= 1, "data.clients", f"must be >= 1, got {self.clients}")
        _check(self.min_client_size >= 1, "data.min_client_size", f"must be >= 1, got {self.min_client_size}")
        _check(self.shards_per_client >= 1, "data.shards_per_client", f"must be >= 1, got {self.shards_per_client}")


@dataclass(frozen=True)
class ModelConfig:
    name: str = "cnn"
    norm: str = "default"  # per model: batch | group | instance | none; "group" suits non-IID FL

    def __post_init__(self):
        check_instance(self, "model")


@dataclass(frozen=True)
class FLConfig:
    strategy: str = "fedavg"
    rounds: int = 30
    sample_rate: float | None = 0.2
    clients_per_round: int | None = None
    # lr, momentum and local epochs: chosen on the digits VALIDATION split by
    # benchmarks/sweep_validation.py --part fl (FedAvg from random init, Dir 0.1; 27 settings,
    # 2 split seeds); the table and the reasons are in benchmarks/README.md.
    local_epochs: int = 4
    batch_size: int = 16
    lr: float = 0.2
    momentum: float = 0.5
    weight_decay: float = 0.0
    prox_mu: float = 0.01
    server_lr: float | None = None  # None: 1.0 for averaging, 0.01 for FedOpt
    server_momentum: float = 0.9
    beta1: float = 0.9
    beta2: float = 0.99
    tau: float = 1e-3
    eval_every: int = 1
    checkpoint_every: int = 5
    dropout: float = 0.0
    secure_aggregation: bool = False  # sum each round's updates with Bonawitz et al.'s protocol
    secagg_clip: float = 1.0  # per-coordinate clip of n_i * delta_i / max client size
    secagg_bits: int = 20  # fixed-point bits per coordinate
    seed: int = 0

    def __post_init__(self):
        from gptfl_ray.fl.algorithms import STRATEGIES

        check_instance(self, "fl")
        _check(self.seed >= 0, "fl.seed", f"must be >= 0, got {self.seed}")
        _check(
            self.strategy in STRATEGIES,
            "fl.strategy",
            f"unknown strategy {self.strategy!r}; choose from {', '.join(STRATEGIES)}",
        )
        _check(self.rounds >= 0, "fl.rounds", f"must be >= 0, got {self.rounds}")
        if self.clients_per_round is not None:
            _check(self.clients_per_round >= 1, "fl.clients_per_round", f"must be >= 1, got {self.clients_per_round}")
        elif self.sample_rate is not None:
            _check(0 < self.sample_rate <= 1, "fl.sample_rate", f"must be in (0, 1], got {self.sample_rate}")
        _check(self.local_epochs >= 1, "fl.local_epochs", f"must be >= 1, got {self.local_epochs}")
        _check(self.batch_size >= 1, "fl.batch_size", f"must be >= 1, got {self.batch_size}")
        _check(self.lr > 0, "fl.lr", f"must be > 0, got {self.lr}")
        _check(0 <= self.momentum < 1, "fl.momentum", f"must be in [0, 1), got {self.momentum}")
        _check(self.weight_decay >= 0, "fl.weight_decay", f"must be >= 0, got {self.weight_decay}")
        _check(self.prox_mu >= 0, "fl.prox_mu", f"must be >= 0, got {self.prox_mu}")
        if self.server_lr is not None:
            _check(self.server_lr > 0, "fl.server_lr", f"must be > 0, got {self.server_lr}")
        _check(0 <= self.server_momentum < 1, "fl.server_momentum", f"must be in [0, 1), got {self.server_momentum}")
        _check(0 <= self.beta1 < 1, "fl.beta1", f"must be in [0, 1), got {self.beta1}")
        _check(0 <= self.beta2 < 1, "fl.beta2", f"must be in [0, 1), got {self.beta2}")
        _check(self.tau > 0, "fl.tau", f"must be > 0, got {self.tau}")
        _check(self.eval_every >= 1, "fl.eval_every", f"must be >= 1, got {self.eval_every}")
        _check(self.checkpoint_every >= 0, "fl.checkpoint_every", f"must be >= 0, got {self.checkpoint_every}")
        _check(0 <= self.dropout < 1, "fl.dropout", f"must be in [0, 1), got {self.dropout}")
        _check(self.secagg_clip > 0, "fl.secagg_clip", f"must be > 0, got {self.secagg_clip}")
        _check(2 <= self.secagg_bits <= 30, "fl.secagg_bits", f"must be in [2, 30], got {self.secagg_bits}")
        if self.secure_aggregation:
            _check(
                self.strategy != "scaffold",
                "fl.secure_aggregation",
                "SCAFFOLD's control variates are not summed securely here; use another `fl.strategy`",
            )


@dataclass(frozen=True)
class EngineConfig:
    backend: str = "ray"  # "local" runs clients in-process (debugging, unit tests)
    address: str | None = None  # an existing Ray cluster ("auto" included); None starts one locally
    num_actors: int | None = None  # None: sized from the cluster's resources
    client_cpus: float = 1.0
    client_gpus: float = 0.0
    # Clients of one executor: trained together with torch.func.vmap ("vectorized"), one after
    # another ("sequential"), or "auto": vectorized wherever the model allows (fl/vectorized.py).
    executor: str = "auto"

    def __post_init__(self):
        check_instance(self, "engine")
        _check(
            self.executor in EXECUTORS,
            "engine.executor",
            f"unknown executor {self.executor!r}; choose from {', '.join(EXECUTORS)}",
        )
        _check(
            self.backend in BACKENDS,
            "engine.backend",
            f"unknown backend {self.backend!r}; choose from {', '.join(BACKENDS)}",
        )
        _check(
            self.address is None or bool(self.address.strip()),
            "engine.address",
            "is empty; give host:port, 'auto', or leave it out",
        )
        _check(self.client_cpus > 0, "engine.client_cpus", f"must be > 0, got {self.client_cpus}")
        _check(
            0 <= self.client_gpus <= 1 or float(self.client_gpus).is_integer(),
            "engine.client_gpus",
            f"must be a fraction in [0, 1] or a whole number, got {self.client_gpus}",
        )
        if self.num_actors is not None:
            _check(self.num_actors >= 1, "engine.num_actors", f"must be >= 1, got {self.num_actors}")


@dataclass(frozen=True)
class FederateConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    fl: FLConfig = field(default_factory=FLConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)
    init: str | None = None  # a saved model (safetensors) to start from: GPT-FL's pretrained model
    privacy: DPConfig = field(default_factory=DPConfig)  # central DP (DP-FedAvg), off by default
    devices: DeviceConfig = field(default_factory=DeviceConfig)  # simulated device speeds, off by default

    def __post_init__(self):
        check_instance(self)
        check_compatible(self.privacy, self.fl, self.devices, self.data.clients)


SECTIONS = {
    "data": DataConfig,
    "model": ModelConfig,
    "fl": FLConfig,
    "engine": EngineConfig,
    "privacy": DPConfig,
    "devices": DeviceConfig,
}


def build_section(cls, *layers: dict[str, Any], section: str = ""):
    """Later layers win; each layer must be a table of known, typed keys (fields.check_layer)."""
    merged: dict[str, Any] = {}
    for layer in layers:
        layer = {} if layer is None else layer
        check_layer(cls, layer, section)
        merged.update(layer)
    try:
        return cls(**merged)
    except TypeError as exc:
        raise ConfigError(f"[{section}]", str(exc)) from None


def split_overrides(overrides: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Route flat CLI options (None = not given) to their sections by field name."""
    out: dict[str, dict[str, Any]] = {s: {} for s in SECTIONS}
    for key, value in overrides.items():
        if value is None:
            continue
        if key == "model":  # --model is ModelConfig.name
            out["model"]["name"] = value
            continue
        for sname, cls in SECTIONS.items():
            if key in {f.name for f in fields(cls)}:
                out[sname][key] = value
                break
        else:
            raise KeyError(key)
    return out


def federate_config(
    file_cfg: dict[str, Any] | None = None, overrides: dict[str, Any] | None = None, init: str | None = None
) -> FederateConfig:
    file_cfg = {} if file_cfg is None else file_cfg
    if not isinstance(file_cfg, dict):
        raise ConfigError("[federate]", f"must be a table of settings, got {file_cfg!r}")
    check_sections(file_cfg, (*SECTIONS, "init"), where="[federate]")
    routed = split_overrides({k: v for k, v in (overrides or {}).items()})
    # `--clients-per-round` given on the command line beats a preset's sample rate and vice versa.
    if "clients_per_round" in routed["fl"]:
        routed["fl"].setdefault("sample_rate", None)
    elif "sample_rate" in routed["fl"]:
        routed["fl"]["clients_per_round"] = None
    file_fl = file_cfg.get("fl")
    if isinstance(file_fl, dict) and file_fl.get("clients_per_round") is not None and "sample_rate" not in file_fl:
        # config.toml drops None: a saved clients_per_round run had no sample rate
        file_cfg = {**file_cfg, "fl": {**file_fl, "sample_rate": None}}
    parts = {s: build_section(cls, file_cfg.get(s, {}), routed[s], section=s) for s, cls in SECTIONS.items()}
    init = init if init is not None else file_cfg.get("init")
    if init is not None and not isinstance(init, str):
        raise ConfigError("[federate] init", f"must be a string (a model file), got {init!r}")
    return FederateConfig(**parts, init=init)


def config_dict(cfg) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


# Settings a continued run may change: where and how fast it runs, how often it reports, and
# (growing only) how many rounds it has. Everything else decides the result.
RESUMABLE = frozenset(
    {
        "eval_every",
        "checkpoint_every",
        "backend",
        "address",
        "num_actors",
        "client_cpus",
        "client_gpus",
        "data_dir",
        "download",
        "gen_actors",
        "gen_gpus",
        "engine",
        "device",
        "overwrite",
        "target_accuracy",
        "variants",
    }
)
GROW_ONLY = frozenset({"rounds"})


def _flat(d: Any, prefix: str = "") -> dict[str, Any]:
    if dataclasses.is_dataclass(d):
        d = dataclasses.asdict(d)
    if not isinstance(d, dict):
        return {prefix.rstrip("."): d}
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict) or dataclasses.is_dataclass(v):
            out.update(_flat(v, f"{prefix}{k}."))
        elif v is not None:  # TOML has no None: absent and None are one value
            out[f"{prefix}{k}"] = list(v) if isinstance(v, tuple) else v
    return out


def resume_diff(saved: Any, new: Any, loose=RESUMABLE, grow=GROW_ONLY) -> list[str]:
    """Dotted keys in which `new` may not continue what `saved` (a config.toml table) started.

    The one resume-compatibility rule of every command: `federate --resume`, the stages of
    `simulate` and FGL's rounds all ask this before reusing a directory's state."""
    a, b = _flat(saved), _flat(new)
    out = []
    for key in sorted(set(a) | set(b)):
        leaf = key.rsplit(".", 1)[-1]
        if leaf in loose:
            continue
        va, vb = a.get(key), b.get(key)
        if leaf in grow and isinstance(va, int) and isinstance(vb, int):
            if vb < va:
                out.append(key)
        elif va != vb:
            out.append(key)
    return out


def check_resumable(
    stage: str,
    where: Any,
    saved: Any,
    new: Any,
    hint: str = "pass `overwrite` to start over, or use another `output_dir`",
) -> None:
    """One line naming the stage and the keys that differ, when `new` cannot continue `saved`."""
    diff = resume_diff(saved, new)
    if diff:
        shown = ", ".join(diff[:4]) + (f" (+{len(diff) - 4} more)" if len(diff) > 4 else "")
        raise ConfigError(
            "output_dir", f"{where} holds a {stage} stage made with other settings ({shown} differ); {hint}"
        )
