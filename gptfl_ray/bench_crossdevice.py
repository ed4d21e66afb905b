"""Two cross-device questions for GPT-FL: what synthetic pre-training buys when client updates
must be private, and when devices straggle.

`privacy`: final accuracy against the privacy budget epsilon (DP-FedAvg, McMahan et al. 2018,
with the noise calibrated by the accountant for the whole run) for FedAvg from random init and
GPT-FL, over seeds; epsilon = inf is the same run without DP. `devices`: accuracy against
simulated wall-clock time under a straggler model (lognormal device speeds and links) for three
round policies - wait for everyone, a deadline (stragglers dropped), over-selection (ask more,
keep the first k) - with and without GPT-FL. Both reuse one run's synthetic data and pre-trained
model per seed and keep one FL folder per setting (finished ones are reused on rerun).
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np

from gptfl_ray.bench import _mean_std, _seeded
from gptfl_ray.fl.devices import DeviceModel
from gptfl_ray.methods.simulate import SimulateConfig, prepare_simulation, run_simulation
from gptfl_ray.runio import atomic_write_json


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]


def _with(cfg: SimulateConfig, **sections) -> SimulateConfig:
    fed = cfg.federate
    return dataclasses.replace(
        cfg,
        federate=dataclasses.replace(
            fed, **{name: dataclasses.replace(getattr(fed, name), **kw) for name, kw in sections.items()}
        ),
    )


def _eps_label(eps: float | None) -> str:
    return "inf" if eps is None else f"{eps:g}"


def bench_privacy(
    cfg: SimulateConfig,
    out_dir: str | Path,
    epsilons: list[float],
    seeds: list[int],
    methods: tuple[str, ...] = ("fedavg", "gptfl"),
    stage=None,
) -> dict:
    out = Path(out_dir)
    cfg = dataclasses.replace(cfg, variants=tuple(methods))
    runs: list[dict] = []
    budgets: list[float | None] = [None, *epsilons]
    for seed in seeds:
        scfg = _seeded(cfg, seed)
        prepared = prepare_simulation(scfg)
        for eps in budgets:
            ecfg = _with(scfg, privacy={"dp_epsilon": eps, "dp_noise": None})
            root = out / f"seed{seed}" / "federate" / f"eps{_eps_label(eps)}"
            run_simulation(
                ecfg,
                out / f"seed{seed}",
                hooks={"stage": stage} if stage else None,
                prepared=prepared,
                federate_root=root,
            )
            for m in methods:
                hist, rounds = _read(root / m / "metrics.jsonl"), _read(root / m / "rounds.jsonl")
                engine = (
                    json.loads((root / m / "engine.json").read_text("utf-8"))
                    if (root / m / "engine.json").exists()
                    else {}
                )
                runs.append(
                    {
                        "seed": seed,
                        "epsilon_target": eps,
                        "method": m,
                        "final_accuracy": hist[-1]["accuracy"],
                        "final_val_accuracy": hist[-1].get("val_accuracy"),
                        "epsilon_spent": rounds[-1].get("epsilon"),
                        "noise_multiplier": engine.get("privacy", {}).get("noise_multiplier"),
                        "accuracy_per_round": [[h["round"], h["accuracy"]] for h in hist],
                    }
                )
    rows = []
    for eps in budgets:
        for m in methods:
            sel = [r for r in runs if r["epsilon_target"] == eps and r["method"] == m]
            mean, std = _mean_std([r["final_accuracy"] for r in sel])
            vmean, _ = _mean_std(
                [r["final_val_accuracy"] for r in sel if r["final_val_accuracy"] is not None] or [float("nan")]
            )
            spent = [r["epsilon_spent"] for r in sel if r["epsilon_spent"] is not None]
            rows.append(
                {
                    "epsilon": eps,
                    "method": m,
                    "final_accuracy_mean": mean,
                    "final_accuracy_std": std,
                    "final_val_accuracy_mean": vmean,
                    "epsilon_spent_max": max(spent) if spent else None,
                    "noise_multiplier": sel[0]["noise_multiplier"],
                    "n": len(sel),
                }
            )
    fed = cfg.federate
    result = {
        "benchmark": "privacy",
        "dataset": fed.data.dataset,
        "clients": fed.data.clients,
        "rounds": fed.fl.rounds,
        "clients_per_round": fed.fl.clients_per_round,
        "sample_rate": fed.fl.sample_rate,
        "delta": fed.privacy.dp_delta,
        "clip": fed.privacy.dp_clip,
        "clip_quantile": fed.privacy.dp_clip_quantile,
        "sampling": fed.privacy.dp_sampling,
        "seeds": seeds,
        "rows": rows,
        "runs": runs,
    }
    atomic_write_json(out / "bench.json", result)
    return result


POLICIES = ("wait-all", "deadline", "over-select")


def deadline_at_quantile(cfg: SimulateConfig, parts, quantile: float, num_params: int) -> float:
    """The round deadline (s) that the `quantile` share of all clients would meet: a deadline set
    from the device population alone, before any training (it reads no data but client sizes)."""
    fed = cfg.federate
    model = DeviceModel(fed.devices, len(parts), fed.fl.seed)
    sizes = np.array([len(p) for p in parts])
    t = model.completion_times(np.arange(len(parts)), sizes, fed.fl.local_epochs, 4 * num_params, 4 * num_params)
    return float(np.quantile(t, quantile))


def bench_devices(
    cfg: SimulateConfig,
    out_dir: str | Path,
    seeds: list[int],
    deadline_quantile: float = 0.7,
    over_select: float = 1.3,
    target: float = 0.8,
    methods: tuple[str, ...] = ("fedavg", "gptfl"),
    stage=None,
) -> dict:
    out = Path(out_dir)
    cfg = dataclasses.replace(cfg, variants=tuple(methods))
    if not cfg.federate.devices.enabled:
        cfg = _with(cfg, devices={"devices": "lognormal"})
    runs: list[dict] = []
    for seed in seeds:
        scfg = _seeded(cfg, seed)
        prepared = prepare_simulation(scfg)
        task, _ = prepared
        num_params = _num_params(scfg, task)
        deadline = deadline_at_quantile(scfg, task.parts, deadline_quantile, num_params)
        policy_kw = {
            "wait-all": {"deadline": None, "over_select": 1.0},
            "deadline": {"deadline": deadline, "over_select": 1.0},
            "over-select": {"deadline": None, "over_select": over_select},
        }
        for policy in POLICIES:
            pcfg = _with(scfg, devices=policy_kw[policy])
            root = out / f"seed{seed}" / "federate" / policy
            run_simulation(
                pcfg,
                out / f"seed{seed}",
                hooks={"stage": stage} if stage else None,
                prepared=prepared,
                federate_root=root,
            )
            for m in methods:
                hist, rounds = _read(root / m / "metrics.jsonl"), _read(root / m / "rounds.jsonl")
                runs.append(
                    {
                        "seed": seed,
                        "policy": policy,
                        "method": m,
                        "deadline_s": policy_kw[policy]["deadline"],
                        "final_accuracy": hist[-1]["accuracy"],
                        "sim_time_s": rounds[-1]["sim_time_s"],
                        "stragglers": sum(r["stragglers"] for r in rounds),
                        "surplus": sum(r["surplus"] for r in rounds),
                        "curve": [[h["sim_time_s"], h["accuracy"]] for h in hist],
                        "val_curve": [[h["sim_time_s"], h["val_accuracy"]] for h in hist if "val_accuracy" in h],
                    }
                )
    rows = []
    for policy in POLICIES:
        for m in methods:
            sel = [r for r in runs if r["policy"] == policy and r["method"] == m]
            acc, acc_sd = _mean_std([r["final_accuracy"] for r in sel])
            t, t_sd = _mean_std([r["sim_time_s"] for r in sel])
            hits = [h for h in (time_to_accuracy(r["curve"], target) for r in sel) if h is not None]
            rows.append(
                {
                    "time_to_target_mean": float(np.mean(hits)) if hits else None,
                    "reached_target": len(hits),
                    "policy": policy,
                    "method": m,
                    "final_accuracy_mean": acc,
                    "final_accuracy_std": acc_sd,
                    "sim_time_mean": t,
                    "sim_time_std": t_sd,
                    "stragglers_mean": float(np.mean([r["stragglers"] for r in sel])),
                    "surplus_mean": float(np.mean([r["surplus"] for r in sel])),
                    "n": len(sel),
                }
            )
    fed = cfg.federate
    result = {
        "benchmark": "devices",
        "dataset": fed.data.dataset,
        "clients": fed.data.clients,
        "rounds": fed.fl.rounds,
        "clients_per_round": fed.fl.clients_per_round,
        "sample_rate": fed.fl.sample_rate,
        "devices": dataclasses.asdict(fed.devices),
        "deadline_quantile": deadline_quantile,
        "over_select": over_select,
        "target": target,
        "seeds": seeds,
        "rows": rows,
        "runs": runs,
    }
    atomic_write_json(out / "bench.json", result)
    return result


def time_to_accuracy(curve: list[list[float]], target: float) -> float | None:
    """Simulated seconds until the curve first reaches `target` (None: never)."""
    for t, a in curve:
        if a >= target:
            return t
    return None


def _num_params(cfg: SimulateConfig, task) -> int:
    from gptfl_ray.models.factory import ModelFactory
    from gptfl_ray.models.params import num_params

    m = cfg.federate.model
    return num_params(
        ModelFactory(m.name, task.dataset.input_shape, task.dataset.num_classes, m.norm, seed=cfg.federate.fl.seed)()
    )


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_privacy(result: dict, path: str | Path) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    finite = sorted({r["epsilon"] for r in result["rows"] if r["epsilon"] is not None})
    x_inf = finite[-1] * 2 if finite else 1.0  # no DP, drawn to the right of the largest budget
    for m in sorted({r["method"] for r in result["rows"]}):
        rows = sorted(
            (r for r in result["rows"] if r["method"] == m),
            key=lambda r: math.inf if r["epsilon"] is None else r["epsilon"],
        )
        xs = [x_inf if r["epsilon"] is None else r["epsilon"] for r in rows]
        ax.errorbar(
            xs,
            [r["final_accuracy_mean"] for r in rows],
            yerr=[r["final_accuracy_std"] for r in rows],
            marker="o",
            capsize=3,
            label=m,
        )
    ax.set_xscale("log")
    ax.set_xticks(finite + [x_inf], [f"{e:g}" for e in finite] + ["no DP"])
    ax.set_xlabel(f"epsilon (delta = {result['delta']:g}), whole run")
    ax.set_ylabel(f"test accuracy after {result['rounds']} rounds")
    ax.set_title(f"{result['dataset']}: DP-FedAvg, accuracy against privacy ({len(result['seeds'])} seeds)", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


def plot_devices(result: dict, path: str | Path, seed: int | None = None) -> Path:
    plt = _plt()
    seed = result["seeds"][0] if seed is None else seed
    fig, ax = plt.subplots(figsize=(6.5, 4), dpi=120)
    styles = {"wait-all": "-", "deadline": "--", "over-select": ":"}
    colors = {}
    for r in (r for r in result["runs"] if r["seed"] == seed):
        c = colors.setdefault(r["method"], f"C{len(colors)}")
        xs, ys = zip(*r["curve"])
        ax.plot(xs, ys, styles[r["policy"]], color=c, label=f"{r['method']}, {r['policy']}")
    ax.set_xlabel("simulated wall-clock time (s)")
    ax.set_ylabel("test accuracy")
    ax.set_title(f"{result['dataset']}: accuracy against simulated time, lognormal devices (seed {seed})", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)
