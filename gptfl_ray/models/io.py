"""Saving and loading a model's weights as safetensors (never pickle).

A file is the model's float state_dict by name, so a pretrained model from `gptfl-ray pretrain`
or any compatible state dict can start a federation (`--init`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save

from gptfl_ray.errors import ConfigError
from gptfl_ray.models.params import set_flat
from gptfl_ray.runio import atomic_write_bytes


def save_model_file(
    model: torch.nn.Module, params: np.ndarray | None, path: str | Path, metadata: dict[str, str] | None = None
) -> Path:
    if params is not None:
        set_flat(model, params)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    atomic_write_bytes(path, save(tensors, metadata=metadata))
    return Path(path)


def load_model_file(model: torch.nn.Module, path: str | Path, option: str = "init") -> torch.nn.Module:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(option, f"model file {p} does not exist")
    try:
        tensors = load_file(str(p))
    except Exception as exc:
        raise ConfigError(option, f"{p} is not a readable safetensors file ({exc})") from None
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise ConfigError(option, f"{p} does not fit the model {type(model).__name__} ({first})") from None
    return model
