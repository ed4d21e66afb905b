"""Looks at the inputs, as PNGs beside report.py's result plots in `<run>/plots/`.

- `synthetic_samples.png`: a grid of synthetic samples per class (images as pixels, audio as
  the log-mel spectrograms the model sees) - the first thing a GPT-FL user wants to check;
- `partition.png`: how many samples of each class every client holds;
- `pretrain_curve.png`: pre-training's train loss, validation and test accuracy per epoch.

Each function takes arrays or history rows and a path, so any stage can draw its own plot.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

MAX_GRID_CLASSES = 20  # CIFAR-100's 100 rows would be unreadable; the first 20 classes are shown
MAX_PARTITION_CLIENTS = 100


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | Path) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(p)
    _pyplot().close(fig)
    return p


def sample_grid(
    dataset, x_raw: np.ndarray, y: np.ndarray, path: str | Path, per_class: int = 8, title: str = ""
) -> Path:
    """Up to `per_class` samples of each class, one row per class (the first in storage order)."""
    plt = _pyplot()
    classes = list(range(min(dataset.num_classes, MAX_GRID_CLASSES)))
    picks = {c: np.flatnonzero(np.asarray(y) == c)[:per_class] for c in classes}
    cols = max(1, max((len(v) for v in picks.values()), default=1))
    audio = dataset.modality == "audio"
    cell = (1.6, 1.0) if audio else (0.9, 0.9)
    fig, axes = plt.subplots(
        len(classes), cols, figsize=(cols * cell[0] + 1.2, len(classes) * cell[1] + 0.6), dpi=110, squeeze=False
    )
    for row, c in enumerate(classes):
        idx = picks[c]
        shown = dataset.prepare(x_raw[idx]) if audio and len(idx) else None  # the model's own features
        for col in range(cols):
            ax = axes[row][col]
            ax.set_xticks([])
            ax.set_yticks([])
            for s in ax.spines.values():
                s.set_visible(False)
            if col >= len(idx):
                continue
            if audio:
                ax.imshow(shown[col], origin="lower", aspect="auto", cmap="magma")
            else:
                img = np.clip(np.asarray(x_raw[idx[col]], np.float32) / float(dataset.max_value), 0, 1)
                if img.shape[0] == 1:
                    ax.imshow(img[0], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
                else:
                    ax.imshow(np.transpose(img, (1, 2, 0)), interpolation="nearest")
        axes[row][0].set_ylabel(dataset.class_names[c], rotation=0, ha="right", va="center", fontsize=7)
    more = f" (first {len(classes)} of {dataset.num_classes} classes)" if dataset.num_classes > len(classes) else ""
    fig.suptitle((title or f"synthetic {dataset.name} samples") + more, fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def partition_counts(parts: list[np.ndarray], y_train: np.ndarray, num_classes: int) -> np.ndarray:
    """(clients, classes) sample counts."""
    y = np.asarray(y_train)
    return (
        np.stack([np.bincount(y[p], minlength=num_classes) for p in parts])
        if parts
        else np.zeros((0, num_classes), int)
    )


def partition_plot(
    parts: list[np.ndarray], y_train: np.ndarray, class_names, path: str | Path, title: str = ""
) -> Path:
    """A stacked bar per client: its samples split by class."""
    from gptfl_ray.runio import atomic_write_bytes

    atomic_write_bytes(path, render_partition_plot(parts, y_train, class_names, title))
    return Path(path)


def render_partition_plot(parts: list[np.ndarray], y_train: np.ndarray, class_names, title: str = "") -> bytes:
    """`partition_plot`'s PNG as bytes. It touches no pyplot state (a bare `Figure` on Agg), so it
    can be drawn on a thread while the main thread starts Ray and runs rounds (cli/federate.py)."""
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    counts = partition_counts(parts, y_train, len(class_names))
    shown = counts[:MAX_PARTITION_CLIENTS]
    fig = Figure(figsize=(max(6, 0.14 * len(shown) + 2), 4), dpi=120)
    ax = fig.subplots()
    cmap = colormaps["tab20" if len(class_names) > 10 else "tab10"]
    bottom = np.zeros(len(shown))
    for c, name in enumerate(class_names):
        ax.bar(
            np.arange(len(shown)),
            shown[:, c],
            bottom=bottom,
            width=0.85,
            color=cmap(c % cmap.N),
            label=name if len(class_names) <= 20 else None,
        )
        bottom += shown[:, c]
    ax.set_ylim(0, max(1, int(bottom.max(initial=0))) * 1.05)  # stacked bars do not always autoscale to their tops
    ax.set_xlabel("client" + (f" (first {len(shown)} of {len(counts)})" if len(counts) > len(shown) else ""))
    ax.set_ylabel("training samples")
    ax.set_title(title or f"label distribution over {len(counts)} clients", fontsize=9)
    if len(class_names) <= 20:
        ax.legend(fontsize=6, ncol=2, bbox_to_anchor=(1.01, 1), loc="upper left", title="class", title_fontsize=7)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def pretrain_curve(history: list[dict], path: str | Path, title: str = "") -> Path:
    """Train loss (left axis) and validation / test accuracy (right axis) per epoch."""
    plt = _pyplot()
    epochs = [h["epoch"] for h in history]
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    ax.plot(epochs, [h["train_loss"] for h in history], color="C3", marker=".", label="train loss (synthetic)")
    ax.set_xlabel("pre-training epoch")
    ax.set_ylabel("train loss")
    acc = ax.twinx()
    if all("val_accuracy" in h for h in history):
        acc.plot(
            epochs,
            [h["val_accuracy"] for h in history],
            color="C0",
            linestyle="--",
            marker=".",
            label="validation accuracy (real)",
        )
    acc.plot(epochs, [h["accuracy"] for h in history], color="C0", marker=".", label="test accuracy (real)")
    acc.set_ylabel("accuracy")
    acc.set_ylim(0, 1)
    lines = ax.get_legend_handles_labels()
    more = acc.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], fontsize=7, loc="center right")
    ax.grid(alpha=0.3)
    ax.set_title(title or "server pre-training on synthetic data", fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def plot_inputs(run_dir: str | Path, dataset, parts: list[np.ndarray] | None = None, title: str = "") -> list[Path]:
    """Every input plot a run directory has the data for, into `<run>/plots/`."""
    import json

    run = Path(run_dir)
    out = run / "plots"
    paths: list[Path] = []
    if (run / "synthetic" / "manifest.json").is_file():
        from gptfl_ray.synth.store import load_synthetic

        x, y = load_synthetic(run, dataset)
        if len(y):
            paths.append(sample_grid(dataset, x, y, out / "synthetic_samples.png"))
    if parts is not None:
        paths.append(partition_plot(parts, dataset.y_train, dataset.class_names, out / "partition.png", title=title))
    metrics = run / "pretrain" / "metrics.json"
    if metrics.is_file():
        paths.append(pretrain_curve(json.loads(metrics.read_text("utf-8"))["history"], out / "pretrain_curve.png"))
    return paths
