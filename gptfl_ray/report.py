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


def variant_summary(
    history: list[dict],
    target: float | None,
    num_params: int,
    extra: dict | None = None,
    rounds: list[dict] | None = None,
) -> dict:
    """One variant's entry in summary.json; `rounds` (every round, not just evaluated ones)
    supplies the per-round gradient diversity when given."""
    final = history[-1]
    hit = first_reaching(history, target)
    val = {}
    if "val_accuracy" in final:
        val = {
            "final_val_accuracy": final["val_accuracy"],
            "final_val_macro_f1": final["val_macro_f1"],
            "final_val_loss": final.get("val_loss"),
            "val_accuracy_per_round": [[h["round"], h["val_accuracy"]] for h in history if "val_accuracy" in h],
        }
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
        "gradient_diversity_per_round": [
            [h["round"], h["gradient_diversity"]]
            for h in (rounds if rounds is not None else history)
            if h.get("gradient_diversity") is not None
        ],
        "target_accuracy": target,
        "rounds_to_target": None if hit is None else hit["round"],
        "bytes_to_target": None if hit is None else hit.get("cum_bytes", 0),
        "diverged_round": diverged_round(history),
        **(extra or {}),
    }


def diverged_round(history: list[dict]) -> int | None:
    """The first evaluated round whose test loss is not finite: a model whose weights went NaN or
    infinite evaluates so, and its run diverged there. None for a run that did not."""
    return next((h["round"] for h in history if h.get("loss") is not None and not math.isfinite(h["loss"])), None)


def diverged_lines(summary: dict) -> list[str]:
    """One line per variant of a run whose model diverged (`diverged_round` in summary.json)."""
    return [
        f"{name} diverged: its test loss is not finite from round {v['diverged_round']} on "
        "(NaN or infinite weights); its later accuracies are those of a broken model"
        for name, v in summary.get("variants", {}).items()
        if v.get("diverged_round") is not None
    ]


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
    for col in (
        "variant",
        "val acc.",
        "test acc.",
        "test macro-F1",
        "rounds",
        "MB sent",
        f"rounds to {target:.0%} (test)" if target else "rounds to target",
        "MB to target",
    ):
        table.add_column(col, justify="right" if col != "variant" else "left")
    for name, v in summary["variants"].items():
        reached = v.get("rounds_to_target")
        val = v.get("final_val_accuracy")
        table.add_row(
            name,
            "-" if val is None else f"{val:.4f}",
            f"{v['final_accuracy']:.4f}",
            f"{v['final_macro_f1']:.4f}",
            str(v.get("final_round", 0)),
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
                    ax.axhline(
                        next(iter(val.values())), linestyle=":", color=color, label=f"{name} (no FL), validation"
                    )
                continue
            rounds = [r for r, _ in v["accuracy_per_round"]]
            xs = [x * scale for _, x in v[xkey]] if xkey == "bytes_per_round" else rounds
            ax.plot(xs, acc, marker=".", color=color, label=f"{name}, test")
            if val:  # validation dashed, on the same x as its round
                at = {r: x for r, x in zip(rounds, xs)}
                ax.plot(
                    [at[r] for r in rounds if r in val],
                    [val[r] for r in rounds if r in val],
                    linestyle="--",
                    linewidth=0.9,
                    color=color,
                    label=f"{name}, validation",
                )
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


# ------------------------------------------------------------------ many runs: `gptfl-ray report`

SUMMARY_NAME = "summary.json"
# Settings that place work but do not change results (DESIGN: results do not depend on the
# number of actors); runs may differ in these and in their seeds, nothing else.
PLACEMENT_KEYS = {
    ("federate", "engine"): None,  # every key
    ("generate",): {"gen_actors", "gen_gpus", "engine", "device", "batch_size", "shard_size"},
    ("pretrain",): {"train_gpus"},
}
HEADLINE_VARIANTS = ("fedavg", "synthetic", "gptfl")
FGL_VARIANTS = ("fedavg", "gptfl", "fgl", "fgl_rounds")
MILESTONES = (5, 10, 20)
DIVERSITY_WINDOW = 5


def _comparable(config: dict) -> dict:
    """A run's config.toml without its seeds, derived keys and placement settings."""

    def strip(node, path=()):
        if not isinstance(node, dict):
            return node
        out = {}
        for k, v in node.items():
            if k == "seed" or k.endswith("_key"):
                continue
            sub = path + (k,)
            if PLACEMENT_KEYS.get(sub, 0) is None:
                continue
            if k in (PLACEMENT_KEYS.get(path) or ()):
                continue
            out[k] = strip(v, sub)
        return out

    return strip(config)


def _first_difference(a, b, path="") -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if a.get(k) != b.get(k):
                return _first_difference(a.get(k), b.get(k), f"{path}.{k}" if path else k)
    return f"{path} ({a!r} vs {b!r})"


def load_finished_runs(run_dirs: list[str | Path]) -> list[dict]:
    """Each run's summary, checked: a finished `simulate` run, all with one config up to seeds.

    Raises ConfigError naming the run directory on the first problem.
    """
    import json

    from gptfl_ray.errors import ConfigError
    from gptfl_ray.runio import read_config

    if not run_dirs:
        raise ConfigError("RUN_DIR", "name at least one simulate run directory")
    runs, seen_seeds = [], {}
    for d in map(Path, run_dirs):
        if not d.is_dir():
            raise ConfigError("RUN_DIR", f"{d} is not a directory")
        config = read_config(d)
        if "simulate" not in config or "federate" not in config:
            raise ConfigError(
                "RUN_DIR", f"{d} is not a simulate run directory ({d / 'config.toml'} has no simulate section)"
            )
        path = d / SUMMARY_NAME
        if not path.is_file():
            raise ConfigError(
                "RUN_DIR", f"{d} is not finished: no {SUMMARY_NAME} (rerun `gptfl-ray simulate` there to finish it)"
            )
        try:
            summary = json.loads(path.read_text("utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError("RUN_DIR", f"{path} is not valid JSON ({exc})") from None
        rounds = config["federate"].get("fl", {}).get("rounds")
        for name in ("fedavg", "gptfl"):
            v = summary.get("variants", {}).get(name)
            if v is not None and v.get("final_round") != rounds:
                raise ConfigError(
                    "RUN_DIR", f"{d} is not finished: {name} ended at round {v.get('final_round')} of {rounds}"
                )
        seed = summary.get("seed")
        if seed in seen_seeds:
            raise ConfigError(
                "RUN_DIR", f"{d} and {seen_seeds[seed]} are both seed {seed}: each run should be another seed"
            )
        seen_seeds[seed] = d
        runs.append({"dir": str(d), "seed": seed, "summary": summary, "comparable": _comparable(config)})
    first = runs[0]
    for r in runs[1:]:
        if r["comparable"] != first["comparable"]:
            raise ConfigError(
                "RUN_DIR",
                f"{r['dir']} and {first['dir']} differ in more than the seed: "
                f"{_first_difference(first['comparable'], r['comparable'])}",
            )
    return runs


def cell_stats(values: list[float | None]) -> dict:
    """mean, sample std and a 95% t-interval of the values that exist; `n` of `of` runs had one."""
    import numpy as np

    have = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    out = {"values": [None if v is None else float(v) for v in values], "n": len(have), "of": len(values)}
    if not have:
        return {**out, "mean": None, "std": None, "ci95": None}
    mean = float(np.mean(have))
    if len(have) == 1:
        return {**out, "mean": mean, "std": None, "ci95": None}
    from scipy import stats

    std = float(np.std(have, ddof=1))
    half = float(stats.t.ppf(0.975, len(have) - 1)) * std / math.sqrt(len(have))
    return {**out, "mean": mean, "std": std, "ci95": [mean - half, mean + half]}


def _at_round(pairs: list, r: int):
    return next((a for rr, a in pairs if rr == r), None)


def _window_mean(pairs: list, lo: int, hi: int):
    vals = [g for r, g in pairs if lo <= r <= hi and g is not None]
    return float(sum(vals) / len(vals)) if vals else None


def _metric_rows(rounds: int) -> list[tuple[str, str, str, callable]]:
    """(key, label, split, value-of-variant-summary) for the headline table."""
    rows = [
        ("final_val_accuracy", f"final accuracy (round {rounds})", "validation", lambda v: v.get("final_val_accuracy")),
        ("final_accuracy", f"final accuracy (round {rounds})", "test", lambda v: v.get("final_accuracy")),
        ("final_macro_f1", "final macro-F1", "test", lambda v: v.get("final_macro_f1")),
    ]
    for m in (m for m in MILESTONES if m < rounds):
        rows.append(
            (
                f"accuracy_round_{m}",
                f"accuracy at round {m}",
                "test",
                lambda v, m=m: _at_round(v.get("accuracy_per_round", []), m) if v.get("final_round", 0) > 0 else None,
            )
        )
    rows += [
        ("rounds_to_target", "rounds to reach fedavg's final accuracy", "test", lambda v: v.get("rounds_to_target")),
        (
            "mb_to_target",
            "MB communicated to reach it",
            "test",
            lambda v: None if v.get("bytes_to_target") is None else v["bytes_to_target"] / 1e6,
        ),
    ]
    w = DIVERSITY_WINDOW
    if rounds >= w:
        rows += [
            (
                "gradient_diversity_first",
                f"gradient diversity (Eq. 1), mean of rounds 1-{w}",
                "train",
                lambda v: _window_mean(v.get("gradient_diversity_per_round", []), 1, w),
            ),
            (
                "gradient_diversity_last",
                f"gradient diversity, mean of rounds {rounds - w + 1}-{rounds}",
                "train",
                lambda v: _window_mean(v.get("gradient_diversity_per_round", []), rounds - w + 1, rounds),
            ),
        ]
    return rows


FGL_COLUMNS = [
    ("final_val_accuracy", "final acc. (validation)", lambda v: v.get("final_val_accuracy")),
    ("final_accuracy", "final acc. (test)", lambda v: v.get("final_accuracy")),
    ("final_macro_f1", "macro-F1 (test)", lambda v: v.get("final_macro_f1")),
    ("final_round", "rounds", lambda v: v.get("final_round")),
    ("mb_sent", "MB sent", lambda v: v.get("cum_bytes", 0) / 1e6),
    ("rounds_to_target", "rounds to target (test)", lambda v: v.get("rounds_to_target")),
    (
        "mb_to_target",
        "MB to target",
        lambda v: None if v.get("bytes_to_target") is None else v["bytes_to_target"] / 1e6,
    ),
]


def aggregate_runs(runs: list[dict]) -> dict:
    """The README's tables over finished runs (one per seed): every cell mean ± std and a 95%
    t-interval. Rows labelled by split: validation (what choices read) and test (reported)."""
    first = runs[0]["summary"]
    rounds = int(first["rounds"])
    present = [v for v in dict.fromkeys(k for r in runs for k in r["summary"]["variants"])]
    headline_vars = [v for v in HEADLINE_VARIANTS if v in present]
    headline = []
    for key, label, split, get in _metric_rows(rounds):
        cells = {}
        for name in headline_vars:
            vals = [get(r["summary"]["variants"][name]) if name in r["summary"]["variants"] else None for r in runs]
            cells[name] = cell_stats(vals)
        headline.append({"key": key, "label": label, "split": split, "cells": cells})
    fgl_vars = [v for v in FGL_VARIANTS if v in present] if any(v.startswith("fgl") for v in present) else []
    fgl = [
        {
            "variant": name,
            "cells": {
                key: cell_stats(
                    [get(r["summary"]["variants"][name]) if name in r["summary"]["variants"] else None for r in runs]
                )
                for key, _, get in FGL_COLUMNS
            },
        }
        for name in fgl_vars
    ]
    diverged = [
        {"variant": name, "seed": r["seed"], "round": v["diverged_round"]}
        for r in runs
        for name, v in r["summary"]["variants"].items()
        if v.get("diverged_round") is not None
    ]
    return {
        "diverged": diverged,
        "runs": [r["dir"] for r in runs],
        "seeds": [r["seed"] for r in runs],
        "n": len(runs),
        "dataset": first.get("dataset"),
        "model": first.get("model"),
        "strategy": first.get("strategy"),
        "clients": first.get("clients"),
        "rounds": rounds,
        "title": first.get("title"),
        "target": "each run's fedavg final test accuracy"
        if first.get("target_is_fedavg_final")
        else first.get("target_accuracy"),
        "interval": "95% t-interval of the mean over runs (n-1 degrees of freedom)",
        "headline": {"variants": headline_vars, "rows": headline},
        "fgl": {"columns": [label for _, label, _ in FGL_COLUMNS], "keys": [k for k, _, _ in FGL_COLUMNS], "rows": fgl},
    }


def _fmt(stats: dict, digits: int) -> str:
    if stats["mean"] is None:
        return f"not reached ({stats['of']} of {stats['of']})" if stats["of"] else "-"
    text = f"{stats['mean']:.{digits}f}"
    # one run (no std) or every run equal at the printed precision: the mean says it all
    if stats["std"] is not None and round(stats["std"], digits) > 0:
        lo, hi = stats["ci95"]
        text += f" ± {stats['std']:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"
    if stats["n"] < stats["of"]:
        text += f" (reached in {stats['n']} of {stats['of']})"
    return text


def _digits_for(key: str) -> int:
    return 1 if key.startswith(("rounds", "mb_", "final_round")) else 3


def report_markdown(agg: dict) -> str:
    names = {
        "fedavg": "fedavg (FL from random init)",
        "synthetic": "synthetic only (no FL)",
        "gptfl": "gptfl (pre-trained, then FL)",
        "fgl": "FGL one-shot",
        "fgl_rounds": "FGL + rounds",
    }
    seeds = ", ".join(str(s) for s in agg["seeds"])
    lines = [f"{agg['title']}: {agg['n']} runs (seeds {seeds}); each cell mean ± std [{agg['interval']}]", ""]
    hv = agg["headline"]["variants"]
    lines.append("| | split | " + " | ".join(names.get(v, v) for v in hv) + " |")
    lines.append("|---|---|" + "---|" * len(hv))
    for row in agg["headline"]["rows"]:
        cells = []
        for v in hv:
            s = row["cells"][v]
            # "synthetic" runs no FL rounds: per-round rows do not apply to it
            no_rounds = v == "synthetic" and row["key"].startswith(("accuracy_round", "gradient_diversity"))
            cells.append(
                "-"
                if no_rounds or (s["n"] == 0 and not row["key"].endswith("to_target"))
                else _fmt(s, _digits_for(row["key"]))
            )
        lines.append(f"| {row['label']} | {row['split']} | " + " | ".join(cells) + " |")
    if agg["fgl"]["rows"]:
        lines += [
            "",
            "| variant | " + " | ".join(agg["fgl"]["columns"]) + " |",
            "|---|" + "---|" * len(agg["fgl"]["columns"]),
        ]
        for row in agg["fgl"]["rows"]:
            cells = [
                _fmt(row["cells"][k], _digits_for(k))
                if not (k.endswith("to_target") and row["cells"][k]["n"] == 0)
                else f"not reached ({row['cells'][k]['of']} of {row['cells'][k]['of']})"
                for k in agg["fgl"]["keys"]
            ]
            lines.append(f"| {names.get(row['variant'], row['variant'])} | " + " | ".join(cells) + " |")
    if agg.get("diverged"):
        runs = "; ".join(
            f"{names.get(d['variant'], d['variant'])} in seed {d['seed']} (round {d['round']})" for d in agg["diverged"]
        )
        lines += [
            "",
            f"diverged (test loss not finite from the round given on; counted in the cells as measured): {runs}",
        ]
    target = agg["target"]
    lines += [
        "",
        f"target: {target if isinstance(target, str) else f'{target:.4f}'}; "
        "gradient diversity is computed on the sampled clients' updates (train)",
    ]
    return "\n".join(lines) + "\n"
