"""Data sets by name. Each loader returns a `Dataset` or raises `ConfigError` in one line."""

from __future__ import annotations

from collections.abc import Callable

from gptfl_ray.data.base import Dataset
from gptfl_ray.data.digits import load_digits_dataset
from gptfl_ray.data.esc50 import load_esc50
from gptfl_ray.data.speechcommands import load_speechcommands
from gptfl_ray.data.torchvision_sets import load_cifar10, load_cifar100, load_flowers102, load_mnist
from gptfl_ray.errors import ConfigError

Loader = Callable[..., Dataset]
_LOADERS: dict[str, Loader] = {
    "digits": load_digits_dataset,
    "mnist": load_mnist,
    "cifar10": load_cifar10,
    "cifar100": load_cifar100,
    "flowers102": load_flowers102,
    "speechcommands": load_speechcommands,
    "esc50": load_esc50,
}


def register_dataset(name: str, loader: Loader) -> None:
    _LOADERS[name] = loader


def dataset_names() -> list[str]:
    return sorted(_LOADERS)


def load_dataset(name: str, data_dir: str | None = None, download: bool = False, seed: int = 0) -> Dataset:
    if name not in _LOADERS:
        raise ConfigError("data.dataset", f"unknown data set {name!r}; choose from {', '.join(dataset_names())}")
    return _LOADERS[name](data_dir=data_dir, download=download, seed=seed)
