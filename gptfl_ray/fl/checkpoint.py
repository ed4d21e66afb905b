"""Checkpoints as safetensors + JSON, never pickle.

`round_NNNNN.safetensors` holds the global model, the server optimizer's slots and any
per-client state; `round_NNNNN.json` holds the round and the metrics so far. The JSON is
written last and names the tensor file's sha256, so a checkpoint with either half missing or
damaged is detected and reported instead of silently loaded.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
from safetensors.numpy import load as st_load
from safetensors.numpy import save as st_save

from gptfl_ray.errors import ConfigError
from gptfl_ray.faults import fault_point
from gptfl_ray.fl.algorithms.base import ServerState
from gptfl_ray.runio import atomic_write_bytes, atomic_write_json


def save_checkpoint(
    ckpt_dir: str | Path,
    state: ServerState,
    meta: dict,
    client_state: dict[str, np.ndarray] | None = None,
    keep: int = 2,
) -> Path:
    ckpt_dir = Path(ckpt_dir)
    tensors = {"params": state.params}
    tensors.update({f"slot/{k}": v for k, v in state.slots.items()})
    for k, v in (client_state or {}).items():
        tensors[f"client/{k}"] = v
    blob = st_save({k: np.ascontiguousarray(v) for k, v in tensors.items()})
    stem = ckpt_dir / f"round_{state.round:05d}"
    atomic_write_bytes(stem.with_suffix(".safetensors"), blob)
    fault_point("checkpoint")  # a kill here leaves a tensor file no JSON names: the older checkpoint wins
    atomic_write_json(
        stem.with_suffix(".json"), {**meta, "round": state.round, "sha256": hashlib.sha256(blob).hexdigest()}
    )
    old = sorted(ckpt_dir.glob("round_*.json"))[:-keep] if keep else []
    for j in old:
        j.with_suffix(".safetensors").unlink(missing_ok=True)
        j.unlink(missing_ok=True)
    return stem.with_suffix(".json")


def latest_checkpoint(ckpt_dir: str | Path) -> Path | None:
    found = sorted(Path(ckpt_dir).glob("round_*.json"))
    return found[-1] if found else None


def load_checkpoint(json_path: str | Path) -> tuple[ServerState, dict, dict[str, np.ndarray]]:
    json_path = Path(json_path)
    tensor_path = json_path.with_suffix(".safetensors")
    try:
        meta = json.loads(json_path.read_text("utf-8"))
        blob = tensor_path.read_bytes()
    except (OSError, ValueError) as exc:
        raise ConfigError("resume", f"checkpoint {json_path} is unreadable ({exc})") from None
    if hashlib.sha256(blob).hexdigest() != meta.get("sha256"):
        raise ConfigError(
            "resume", f"checkpoint {tensor_path} is corrupt (hash mismatch); delete it to resume from an earlier one"
        )
    try:
        tensors = st_load(blob)
    except Exception as exc:
        raise ConfigError("resume", f"checkpoint {tensor_path} is corrupt ({exc})") from None
    slots = {k[5:]: v for k, v in tensors.items() if k.startswith("slot/")}
    client = {k[7:]: v for k, v in tensors.items() if k.startswith("client/")}
    state = ServerState(params=tensors["params"], round=int(meta["round"]), slots=slots)
    return state, meta, client
