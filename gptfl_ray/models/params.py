"""Models as flat float32 vectors: the currency of the FL core (aggregation, secagg, deltas).

The vector is every floating-point `state_dict` entry, parameters and float buffers alike
(BatchNorm running statistics travel with the weights, as in FedAvg implementations that send
the whole state dict, e.g. FedML), in `state_dict` order. Integer buffers such as
`num_batches_tracked` are skipped: averaging a counter is meaningless.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch


def _float_entries(model: torch.nn.Module) -> list[torch.Tensor]:
    # state_dict() tensors are detached views of the live parameters/buffers, so copy_ into
    # them writes straight into the model.
    return [t for t in model.state_dict().values() if torch.is_floating_point(t)]


def num_params(model: torch.nn.Module, trainable_only: bool = False) -> int:
    """Length of the flat vector (what one model transfer carries); or trainable weights only."""
    if trainable_only:
        return sum(p.numel() for p in model.parameters() if p.requires_grad)
    return sum(t.numel() for t in _float_entries(model))


def _numpy_view(t: torch.Tensor) -> np.ndarray | None:
    """A writable 1-D numpy view of a CPU float32 tensor, else None.

    Plain numpy memcpy into views measured 5-10x faster than torch.cat / copy_ on this busy
    2-core CPU (torch's intra-op thread pool contends with other processes).
    """
    if t.device.type == "cpu" and t.dtype == torch.float32 and t.is_contiguous():
        return t.numpy().reshape(-1)
    return None


def get_flat(model: torch.nn.Module) -> np.ndarray:
    """All float state as one new float32 numpy vector (a copy, safe to keep across updates)."""
    entries = _float_entries(model)
    views = [_numpy_view(t) for t in entries]
    if any(v is None for v in views):  # GPU or non-float32 model: gather on device, move once
        with torch.no_grad():
            flat = torch.cat([t.reshape(-1).float() for t in entries]) if entries else torch.zeros(0)
        return flat.cpu().numpy()
    out = np.empty(sum(v.size for v in views), np.float32)
    offset = 0
    for v in views:
        out[offset : offset + v.size] = v
        offset += v.size
    return out


def set_flat(model: torch.nn.Module, vec: np.ndarray | torch.Tensor) -> None:
    """Write a vector from `get_flat` (of any model with the same architecture) into `model`."""
    entries = _float_entries(model)
    total = sum(t.numel() for t in entries)
    if isinstance(vec, torch.Tensor):
        vec = vec.detach().cpu().numpy()
    src = np.asarray(vec, dtype=np.float32).reshape(-1)
    if src.size != total:
        raise ValueError(f"flat vector has {src.size} values, model {type(model).__name__} needs {total}")
    views = [_numpy_view(t) for t in entries]
    src_dev = None
    offset = 0
    with torch.no_grad():
        for t, v in zip(entries, views):
            n = t.numel()
            if v is not None:
                v[:] = src[offset : offset + n]
            else:
                if src_dev is None:  # one host-to-device transfer, then on-device copies
                    src_dev = torch.from_numpy(src).to(t.device)
                t.copy_(src_dev[offset : offset + n].view_as(t))  # copy_ casts to the entry dtype
            offset += n


def params_sha256(params: np.ndarray) -> str:
    """The hash that names a flat weight vector (a start point) in a cache key."""
    return hashlib.sha256(np.ascontiguousarray(params).tobytes()).hexdigest()
