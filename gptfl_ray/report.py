"""Results as the paper reports them: a table, `summary.json`, and PNG plots of accuracy
against rounds and against bytes communicated (GPT-FL Figures 2-4, Tables 2-4).

Validation and test are both shown, always labelled: `final_val_accuracy` /
`val_accuracy_per_round` beside the test keys (`final_accuracy`, `accuracy_per_round`).
"""

from __future__ import annotations

import math
from pathlib import Path

from rich.table import Table

from gptfl_ray.runio import atomic_write_json


def first_reaching(history: list[dict], target: float | None, key: str = "accuracy") -> dict | None:
    """The first evaluated round at or above `target`, or None ("not reached", said honestly)."""
    if target is None:
        return None
    for h in history:
        if h.get(key, -1) >= target:
            return h
    return None


def variant_summary(history: list[dict], target: float | None, num_params: int, extra: dict | None = None, rounds: list[dict] | None = None) -> dict:
    """One variant's entry in summary.json; `rounds` (every round, not just evaluated ones)
    supplies the per-round gradient diversity when given."""
    final = history[-1]
    hit = first_reaching(history, target)
    val = {}
    if "val_accuracy" in final:
        val = {"final_val_accuracy": final["val_accuracy"], "final_val_macro_f1": final["val_macro_f1"],
               "final_val_loss": final.get("val_loss"),
               "val_accuracy_per_round": [[h["round"], h["val_accuracy"]] for h in history if "val_accuracy" in h]}
    return {
        "final_accuracy": final["accuracy"],
        "final_macro_f1": final["macro_f1"],
        **({"final_loss": final["loss"]} if "loss" in final else {}),
        **val,
        "final_round": final["round"],
        "num_params": num_params,
        "cum_bytes": final.get("cum_bytes", 0),
        "accuracy_per_round": [[h["round"], h["accuracy"]] for h in history],
        "bytes_per_round": [[h["round"], h.get("cum_bytes", 0)] for h in history],
        "gradient_diversity_per_round": [[h["round"], h["gradient_diversity"]] for h in (rounds if rounds is not None else history) if h.get("gradient_diversity") is not None],
        "target_accuracy": target,
        "rounds_to_target": None if hit is None else hit["round"],
        "bytes_to_target": None if hit is None else hit.get("cum_bytes", 0),
        **(extra or {}),
    }


def write_summary(path: str | Path, summary: dict) -> None:
    def clean(o):
        if isinstance(o, float) and not math.isfinite(o):
            return None
        if isinstance(o, dict):
            return {k: clean(v) for k, v in o.items()}
        if isinstance(o, (list, tuple)):
            return [clean(v) for v in o]
        return o

    atomic_write_json(path, clean(summary))


def variants_table(summary: dict, title: str) -> Table:
    target = summary.get("target_accuracy")
    table = Table(title=title)
    for col in ("variant", "val acc.", "test acc.", "test macro-F1", "rounds", "MB sent",
                f"rounds to {target:.0%} (test)" if target else "rounds to target", "MB to target"):
        table.add_column(col, justify="right" if col != "variant" else "left")
    for name, v in summary["variants"].items():
        reached = v.get("rounds_to_target")
        val = v.get("final_val_accuracy")
        table.add_row(
            name, "-" if val is None else f"{val:.4f}", f"{v['final_accuracy']:.4f}", f"{v['final_macro_f1']:.4f}", str(v.get("final_round", 0)),
            f"{v.get('cum_bytes', 0) / 1e6:.2f}",
            "-" if target is None else ("not reached" if reached is None else str(reached)),
            "-" if reached is None else f"{v['bytes_to_target'] / 1e6:.2f}",
        )
    return table


def plot_variants(summary: dict, out_dir: str | Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for xkey, xlabel, fname, scale in (
        ("accuracy_per_round", "communication round", "accuracy_vs_rounds.png", 1.0),
        ("bytes_per_round", "bytes communicated (MB)", "accuracy_vs_bytes.png", 1e-6),
    ):
        fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
        for i, (name, v) in enumerate(summary["variants"].items()):
            color = f"C{i}"
            acc = [a for _, a in v["accuracy_per_round"]]
            val = dict(map(tuple, v.get("val_accuracy_per_round") or []))
            if len(acc) == 1:  # the synthetic-only model: horizontal reference lines
                ax.axhline(acc[0], linestyle="--", color=color, label=f"{name} (no FL), test")
                if val:
                    ax.axhline(next(iter(val.values())), linestyle=":", color=color, label=f"{name} (no FL), validation")
                continue
            rounds = [r for r, _ in v["accuracy_per_round"]]
            xs = [x * scale for _, x in v[xkey]] if xkey == "bytes_per_round" else rounds
            ax.plot(xs, acc, marker=".", color=color, label=f"{name}, test")
            if val:  # validation dashed, on the same x as its round
                at = {r: x for r, x in zip(rounds, xs)}
                ax.plot([at[r] for r in rounds if r in val], [val[r] for r in rounds if r in val],
                        linestyle="--", linewidth=0.9, color=color, label=f"{name}, validation")
        if summary.get("target_accuracy"):
            ax.axhline(summary["target_accuracy"], color="red", linewidth=0.8, linestyle=":", label="target (test)")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("accuracy (solid: test, dashed: validation)")
        ax.set_title(summary.get("title", ""), fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
        fig.tight_layout()
        p = out / fname
        fig.savefig(p)
        plt.close(fig)
        paths.append(p)
    # Gradient diversity (paper Figure 6): lower early from a pretrained start.
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    for name, v in summary["variants"].items():
        gd = v.get("gradient_diversity_per_round") or []
        if gd:
            ax.plot([r for r, _ in gd], [g for _, g in gd], marker=".", label=name)
    ax.set_xlabel("communication round")
    ax.set_ylabel("gradient diversity (Eq. 1)")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    p = out / "gradient_diversity.png"
    fig.savefig(p)
    plt.close(fig)
    paths.append(p)
    return paths
