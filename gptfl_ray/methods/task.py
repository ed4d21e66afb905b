"""The federated task shared by every method: the data set, its client split, the model check.

Everything a user can get wrong here is checked before any training starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gptfl_ray.config import FederateConfig
from gptfl_ray.data.base import Dataset
from gptfl_ray.data.partition import partition
from gptfl_ray.data.registry import load_dataset
from gptfl_ray.errors import ConfigError
from gptfl_ray.models.registry import model_names, model_norms


@dataclass(frozen=True)
class Task:
    dataset: Dataset
    parts: list[np.ndarray]


def check_model(name: str, norm: str) -> None:
    if name not in model_names():
        raise ConfigError("model.name", f"unknown model {name!r}; choose from {', '.join(model_names())}")
    norms = ("default",) + model_norms(name)
    if norm not in norms:
        raise ConfigError("model.norm", f"{name} supports {', '.join(norms)}; got {norm!r}")


def load_task(cfg: FederateConfig) -> Task:
    d = cfg.data
    check_model(cfg.model.name, cfg.model.norm)
    if cfg.init is not None and not Path(cfg.init).is_file():
        raise ConfigError("init", f"model file {cfg.init} does not exist")
    dataset = load_dataset(d.dataset, data_dir=d.data_dir, download=d.download, seed=cfg.fl.seed)
    if d.clients > len(dataset.y_train):
        raise ConfigError(
            "data.clients", f"{d.clients} clients but {d.dataset} has only {len(dataset.y_train)} training samples"
        )
    parts = partition(
        dataset.y_train,
        d.clients,
        d.partition,
        seed=cfg.fl.seed,
        alpha=d.alpha,
        min_client_size=d.min_client_size,
        shards_per_client=d.shards_per_client,
        groups=dataset.groups,
    )
    return Task(dataset=dataset, parts=parts)
