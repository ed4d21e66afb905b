"""Evaluation and communication accounting.

Accuracy, macro-F1 and loss (the paper reports accuracy and F1 for audio) on the real held-out
splits, and the bytes a round moves: the global model down to each sampled client, one update
up from each client that finished (plus SCAFFOLD's control variates both ways).

`HeldOut` is the one place the training stages read the test split: it reports test metrics
under `accuracy` / `macro_f1` / `loss` and validation metrics under `val_*`. Every choice (a
"best" epoch, a default, a sweep) reads the `val_*` keys; the test keys are only reported.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from gptfl_ray.models.params import set_flat

VAL_PREFIX = "val_"


@torch.no_grad()
def evaluate(
    model: torch.nn.Module, params: np.ndarray | None, x: torch.Tensor, y: torch.Tensor, batch_size: int = 512
) -> dict[str, float]:
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
        "macro_f1": macro_f1(true, pred),
        "loss": loss_sum / max(len(y), 1),
    }


def macro_f1(true: np.ndarray, pred: np.ndarray) -> float:
    """Unweighted mean F1 over the labels that occur in `true` or `pred`: what scikit-learn's
    `f1_score(true, pred, average="macro", zero_division=0)` returns (tests/fl/test_metrics.py),
    without importing scikit-learn (about 2 s) into every run. F1 of a label = 2 tp / (2 tp + fp + fn)."""
    true, pred = np.asarray(true).ravel(), np.asarray(pred).ravel()
    if len(true) == 0:
        return 0.0
    labels, inverse = np.unique(np.concatenate([true, pred]), return_inverse=True)
    t, p = inverse[: len(true)], inverse[len(true) :]
    k = len(labels)
    tp = np.bincount(t[t == p], minlength=k)
    f1 = 2 * tp / (np.bincount(t, minlength=k) + np.bincount(p, minlength=k))
    return float(f1.mean())


def round_bytes(
    num_params: int, sampled: int, finished: int, copies: int = 1, bytes_per_value: int = 4
) -> tuple[int, int]:
    """(bytes down, bytes up) for one round of float32 model exchange; `copies` model-sized
    vectors each way per client (the algorithm's `client.wire_copies`: SCAFFOLD's 2)."""
    per_model = num_params * bytes_per_value
    return sampled * per_model * copies, finished * per_model * copies


class HeldOut:
    """A data set's validation and test splits as model input, prepared once per run."""

    def __init__(self, dataset):
        def tensors(x, y):
            return torch.from_numpy(dataset.prepare(x)), torch.from_numpy(np.asarray(y, np.int64))

        self.test = tensors(dataset.x_test, dataset.y_test)  # reported only, never read by a choice
        self.val = tensors(dataset.x_val, dataset.y_val) if dataset.has_validation else None

    def __call__(self, model: torch.nn.Module, params: np.ndarray | None) -> dict[str, float]:
        """Test metrics unprefixed, validation metrics as `val_*` (absent without a validation split)."""
        row = evaluate(model, params, *self.test)
        if self.val is not None:
            row.update({VAL_PREFIX + k: v for k, v in evaluate(model, None, *self.val).items()})
        return row
