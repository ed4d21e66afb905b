"""Evaluation and communication accounting.

Accuracy and macro-F1 on the real test set (the paper reports both for audio), and the bytes
a round moves: the global model down to each sampled client, one update up from each client
that finished (plus SCAFFOLD's control variates both ways).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import f1_score

from gptfl_ray.models.params import set_flat


@torch.no_grad()
def evaluate(model: torch.nn.Module, params: np.ndarray | None, x: torch.Tensor, y: torch.Tensor, batch_size: int = 512) -> dict[str, float]:
    if params is not None:
        set_flat(model, params)
    model.eval()
    preds, loss_sum = [], 0.0
    for s in range(0, len(y), batch_size):
        out = model(x[s : s + batch_size])
        loss_sum += float(F.cross_entropy(out, y[s : s + batch_size], reduction="sum"))
        preds.append(out.argmax(1).cpu())
    pred = torch.cat(preds).numpy()
    true = y.cpu().numpy()
    return {
        "accuracy": float((pred == true).mean()),
        "macro_f1": float(f1_score(true, pred, average="macro", zero_division=0)),
        "loss": loss_sum / max(len(y), 1),
    }


def round_bytes(num_params: int, sampled: int, finished: int, uses_control: bool, bytes_per_value: int = 4) -> tuple[int, int]:
    """(bytes down, bytes up) for one round of float32 model exchange."""
    per_model = num_params * bytes_per_value
    copies = 2 if uses_control else 1
    return sampled * per_model * copies, finished * per_model * copies
