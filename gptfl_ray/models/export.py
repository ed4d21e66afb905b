"""Self-describing model files: what a safetensors file needs to predict outside a run directory.

safetensors headers hold string metadata beside the tensors. Every exported model carries the
model name and normalisation layer (to rebuild the network), the prepared input shape, the
class names, and the preprocessing (raw units, normalisation, audio front-end), so

    model = gptfl_ray.load_model("runs/simulate/federate/gptfl/model.safetensors")
    labels = model.predict(raw_samples)          # raw: the data set's own units

needs nothing but the file. Preprocessing is not re-implemented here: the metadata rebuilds an
empty `Dataset` and reuses its `prepare`, the same code every training stage runs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gptfl_ray.errors import ConfigError

FORMAT = "gptfl-ray/model-v1"
# One header key holding sorted JSON: safetensors writes its metadata map in hash order, so
# several keys would make the bytes (and the hashes reproducibility checks compare) vary per run.
HEADER_KEY = "gptfl_ray"


def model_metadata(model_name: str, norm: str, dataset) -> dict[str, str]:
    """The safetensors header metadata for a model of `dataset` (see `describe` for its content)."""
    return {HEADER_KEY: json.dumps(describe(model_name, norm, dataset), sort_keys=True)}


def describe(model_name: str, norm: str, dataset) -> dict[str, Any]:
    """What rebuilding and feeding the model needs: network, shapes, classes, preprocessing."""
    from gptfl_ray import __version__

    modality = dataset.modality
    if modality == "audio":
        preprocessing = {
            "kind": "log-mel",
            "sample_rate": int(dataset.extra.get("sample_rate", 16_000)),
            "scale": 1.0 / float(dataset.max_value),
            "description": "waveform * scale -> FedAudio log-mel (128 mel bins, hop 160, n_fft 1024), per-clip standardised",
        }
    else:
        preprocessing = {
            "kind": "scale-normalise",
            "max_value": float(dataset.max_value),
            "mean": list(dataset.mean),
            "std": list(dataset.std),
            "description": "x / max_value, then (x - mean) / std per channel",
        }
    return {
        "format": FORMAT,
        "gptfl_ray_version": __version__,
        "model": model_name,
        "norm": norm,
        "dataset": dataset.name,
        "modality": modality,
        "input_shape": list(dataset.input_shape),
        "raw_shape": list(dataset.x_train.shape[1:]),
        "num_classes": int(dataset.num_classes),
        "class_names": list(dataset.class_names),
        "max_value": float(dataset.max_value),
        "mean": [float(v) for v in dataset.mean],
        "std": [float(v) for v in dataset.std],
        "preprocessing": preprocessing,
    }


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The model description of a gptfl-ray file ({} for a file without one)."""
    from safetensors import safe_open

    p = Path(path)
    if not p.is_file():
        raise ConfigError("model file", f"{p} does not exist")
    try:
        with safe_open(str(p), framework="pt") as fh:
            header = dict(fh.metadata() or {})
    except Exception as exc:
        raise ConfigError("model file", f"{p} is not a readable safetensors file ({exc})") from None
    return json.loads(header[HEADER_KEY]) if HEADER_KEY in header else {}


def stamp_metadata(path: str | Path, metadata: dict[str, str]) -> Path:
    """Rewrite a safetensors file with `metadata` merged into its header (tensors unchanged)."""
    from safetensors import safe_open
    from safetensors.torch import save

    from gptfl_ray.runio import atomic_write_bytes

    with safe_open(str(path), framework="pt") as fh:
        old = dict(fh.metadata() or {})
        tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    atomic_write_bytes(path, save(tensors, metadata={**old, **metadata}))
    return Path(path)


class ExportedModel(torch.nn.Module):
    """A network plus the preprocessing and class names it was trained with.

    `forward` takes prepared input (as during training); `preprocess`, `predict_proba` and
    `predict` take raw samples in the data set's own units (uint8 pixels, 0-16 digit counts,
    float waveforms)."""

    def __init__(self, net: torch.nn.Module, metadata: dict[str, Any]):
        super().__init__()
        self.net = net.eval()
        self.metadata = dict(metadata)
        self.class_names: tuple[str, ...] = tuple(metadata["class_names"])
        self.input_shape: tuple[int, ...] = tuple(metadata["input_shape"])
        self._prep = _preparer(metadata)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def preprocess(self, raw: Any) -> np.ndarray:
        return self._prep.prepare(np.asarray(raw))

    @torch.no_grad()
    def predict_proba(self, raw: Any, batch_size: int = 512) -> np.ndarray:
        x = torch.from_numpy(self.preprocess(raw))
        out = [torch.softmax(self.net(x[s : s + batch_size]), 1) for s in range(0, len(x), batch_size)]
        return torch.cat(out).numpy() if out else np.zeros((0, len(self.class_names)), np.float32)

    def predict(self, raw: Any, batch_size: int = 512) -> np.ndarray:
        """Class indices; `self.class_names[i]` names them."""
        return self.predict_proba(raw, batch_size).argmax(1)


def _preparer(meta: dict[str, Any]):
    """An empty Dataset that carries only the preprocessing, so `prepare` is the training code."""
    from gptfl_ray.data.base import Dataset

    raw_shape = tuple(meta["raw_shape"])
    pre = meta["preprocessing"]
    empty = np.zeros((0, *raw_shape), np.float32)
    labels = np.zeros(0, np.int64)
    extra = {"sample_rate": pre["sample_rate"]} if meta["modality"] == "audio" else {}
    return Dataset(
        name=meta.get("dataset", "exported"),
        modality=meta["modality"],
        class_names=tuple(meta["class_names"]),
        x_train=empty,
        y_train=labels,
        x_test=empty,
        y_test=labels,
        max_value=float(meta["max_value"]),
        mean=tuple(meta["mean"]),
        std=tuple(meta["std"]),
        extra=extra,
    )


def load_model(path: str | Path) -> ExportedModel:
    """Rebuild a ready-to-predict model (eval mode, CPU) from a gptfl-ray safetensors file alone."""
    from gptfl_ray.models.io import load_model_file
    from gptfl_ray.models.registry import build_model

    meta = read_metadata(path)
    if meta.get("format") != FORMAT:
        raise ConfigError(
            "model file",
            f"{path} carries no gptfl-ray metadata (written before model export, "
            "or by another tool); rebuild the model and use models.io.load_model_file",
        )
    net = build_model(meta["model"], tuple(meta["input_shape"]), int(meta["num_classes"]), norm=meta["norm"])
    load_model_file(net, path, option="model file")
    return ExportedModel(net, meta)
