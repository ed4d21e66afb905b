"""Validation beside test in pre-training and the reports: "best" is chosen on validation."""

from __future__ import annotations

import json

import pytest

from gptfl_ray.data import load_dataset
from gptfl_ray.pretrain.trainer import best_epoch


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def test_best_epoch_reads_validation_not_test():
    history = [
        {"epoch": 1, "accuracy": 0.90, "val_accuracy": 0.50},
        {"epoch": 2, "accuracy": 0.60, "val_accuracy": 0.80},
        {"epoch": 3, "accuracy": 0.95, "val_accuracy": 0.80},  # tie on validation: the first wins
    ]
    assert best_epoch(history)["epoch"] == 2
    assert (
        best_epoch([{"epoch": 1, "accuracy": 0.9}, {"epoch": 2, "accuracy": 0.1}])["epoch"] == 2
    )  # no validation: last


def test_pretrain_logs_validation_per_epoch_and_keeps_the_best_validation_epoch(digits, tmp_path):
    import torch

    from gptfl_ray.fl.metrics import evaluate
    from gptfl_ray.models.factory import ModelFactory
    from gptfl_ray.models.io import load_model_file
    from gptfl_ray.pretrain.config import PretrainConfig
    from gptfl_ray.pretrain.trainer import pretrain

    factory = ModelFactory("mlp", digits.input_shape, digits.num_classes, "default", seed=0)
    # a few real training samples stand in for synthetic ones: few enough that epochs differ
    res = pretrain(
        PretrainConfig(epochs=4, lr=0.05, train_workers=0, augment=False),
        factory,
        digits,
        digits.x_train[:120],
        digits.y_train[:120],
        tmp_path / "pre",
    )
    assert [h["epoch"] for h in res.history] == [1, 2, 3, 4]
    assert all({"val_accuracy", "val_loss", "val_macro_f1", "accuracy", "loss"} <= set(h) for h in res.history)
    saved = json.loads((tmp_path / "pre" / "metrics.json").read_text())
    best = max(res.history, key=lambda h: (h["val_accuracy"], -h["epoch"]))
    assert saved["best"] == best
    # best.safetensors is that epoch's model: it scores exactly that epoch's validation numbers
    model = load_model_file(factory(), tmp_path / "pre" / "best.safetensors")
    ev = evaluate(model, None, torch.from_numpy(digits.prepare(digits.x_val)), torch.from_numpy(digits.y_val))
    assert ev["accuracy"] == best["val_accuracy"] and ev["loss"] == pytest.approx(best["val_loss"], rel=1e-6)


def test_summary_table_and_plots_carry_validation_and_test(tmp_path):
    from gptfl_ray.report import plot_variants, variant_summary, variants_table

    hist = [
        {
            "round": r,
            "accuracy": 0.1 * r,
            "macro_f1": 0.1 * r,
            "loss": 1.0,
            "val_accuracy": 0.1 * r + 0.05,
            "val_macro_f1": 0.1,
            "val_loss": 1.1,
            "cum_bytes": 100 * r,
            "gradient_diversity": 0.5,
        }
        for r in range(4)
    ]
    v = variant_summary(hist, 0.2, 10)
    assert v["final_val_accuracy"] == pytest.approx(0.35) and v["final_accuracy"] == pytest.approx(0.3)
    assert v["val_accuracy_per_round"] == [[r, pytest.approx(0.1 * r + 0.05)] for r in range(4)]
    summary = {"variants": {"fedavg": v, "synthetic": variant_summary(hist[:1], None, 10)}, "target_accuracy": 0.2}
    headers = [c.header for c in variants_table(summary, "t").columns]
    assert "val acc." in headers and "test acc." in headers and "rounds to 20% (test)" in headers
    import matplotlib

    matplotlib.use("Agg")
    seen = []
    import matplotlib.axes

    real_legend = matplotlib.axes.Axes.legend

    def spy(self, *a, **k):
        seen.append([t for t in self.get_legend_handles_labels()[1]])
        return real_legend(self, *a, **k)

    matplotlib.axes.Axes.legend = spy
    try:
        paths = plot_variants(summary, tmp_path)
    finally:
        matplotlib.axes.Axes.legend = real_legend
    assert all(p.stat().st_size > 1000 for p in paths)
    assert "fedavg, validation" in seen[0] and "fedavg, test" in seen[0]
    assert "synthetic (no FL), validation" in seen[0]
