"""The paper's two benchmark questions as commands (GPT-FL section 4.1).

`sampling` (Figure 4): how final accuracy depends on the number of clients per round, for
GPT-FL and FedAvg, over seeds. `comm` (Figures 2-3): model parameters and bytes communicated
until each method first reaches each target accuracy, across FL strategies; a target never
reached is reported as such. Both reuse one run's synthetic data and pre-trained model per seed
(they do not depend on the FL settings) and keep one FL folder per setting.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from gptfl_ray.fl.pool import EnginePool
from gptfl_ray.methods.simulate import SimulateConfig, prepare_simulation, run_simulation
from gptfl_ray.report import first_reaching
from gptfl_ray.runio import atomic_write_json


def _with_fl(cfg: SimulateConfig, **fl) -> SimulateConfig:
    fed = cfg.federate
    return dataclasses.replace(cfg, federate=dataclasses.replace(fed, fl=dataclasses.replace(fed.fl, **fl)))


def _seeded(cfg: SimulateConfig, seed: int) -> SimulateConfig:
    cfg = _with_fl(cfg, seed=seed)
    return dataclasses.replace(
        cfg,
        prompts=dataclasses.replace(cfg.prompts, seed=seed),
        generate=dataclasses.replace(cfg.generate, seed=seed),
        pretrain=dataclasses.replace(cfg.pretrain, seed=seed),
    )


def _mean_std(xs: list[float]) -> tuple[float, float]:
    a = np.asarray(xs, dtype=float)
    return float(a.mean()), float(a.std(ddof=1)) if len(a) > 1 else 0.0


def bench_sampling(
    cfg: SimulateConfig,
    out_dir: str | Path,
    clients_per_round: list[int],
    seeds: list[int],
    methods: tuple[str, ...] = ("fedavg", "gptfl"),
    stage=None,
) -> dict:
    out = Path(out_dir)
    cfg = dataclasses.replace(cfg, variants=tuple(methods))
    runs: list[dict] = []
    for seed in seeds:
        scfg = _seeded(cfg, seed)
        prepared = prepare_simulation(scfg)
        with EnginePool() as engines:  # one executor pool for every rate of this seed (fl/pool.py)
            summaries = {
                k: run_simulation(
                    _with_fl(scfg, clients_per_round=k, sample_rate=None),
                    out / f"seed{seed}",
                    hooks={"stage": stage} if stage else None,
                    prepared=prepared,
                    federate_root=out / f"seed{seed}" / "federate" / f"cpr{k}",
                    engines=engines,
                )
                for k in clients_per_round
            }
        for k, summary in summaries.items():
            for m in methods:
                v = summary["variants"][m]
                runs.append(
                    {
                        "seed": seed,
                        "clients_per_round": k,
                        "method": m,
                        "final_accuracy": v["final_accuracy"],
                        "accuracy_per_round": v["accuracy_per_round"],
                        "cum_bytes": v["cum_bytes"],
                    }
                )
    rows = []
    for k in clients_per_round:
        for m in methods:
            accs = [r["final_accuracy"] for r in runs if r["clients_per_round"] == k and r["method"] == m]
            mean, std = _mean_std(accs)
            rows.append(
                {
                    "clients_per_round": k,
                    "method": m,
                    "final_accuracy_mean": mean,
                    "final_accuracy_std": std,
                    "n": len(accs),
                }
            )
    result = {
        "benchmark": "sampling",
        "dataset": cfg.federate.data.dataset,
        "clients": cfg.federate.data.clients,
        "rounds": cfg.federate.fl.rounds,
        "seeds": seeds,
        "rows": rows,
        "runs": runs,
    }
    atomic_write_json(out / "bench.json", result)
    return result


def bench_comm(
    cfg: SimulateConfig,
    out_dir: str | Path,
    targets: list[float],
    strategies: list[str],
    seed: int,
    methods: tuple[str, ...] = ("fedavg", "gptfl"),
    stage=None,
) -> dict:
    out = Path(out_dir)
    cfg = _seeded(dataclasses.replace(cfg, variants=tuple(methods)), seed)
    prepared = prepare_simulation(cfg)
    rows = []
    with EnginePool() as engines:  # one executor pool for every strategy (fl/pool.py)
        summaries = {
            strategy: run_simulation(
                _with_fl(cfg, strategy=strategy),
                out,
                hooks={"stage": stage} if stage else None,
                prepared=prepared,
                federate_root=out / "federate" / strategy,
                engines=engines,
            )
            for strategy in strategies
        }
    for strategy, summary in summaries.items():
        for m in methods:
            v = summary["variants"][m]
            hist = [
                {"round": r, "accuracy": a, "cum_bytes": b}
                for (r, a), (_, b) in zip(v["accuracy_per_round"], v["bytes_per_round"])
            ]
            for t in targets:
                hit = first_reaching(hist, t)
                rows.append(
                    {
                        "strategy": strategy,
                        "method": m,
                        "target": t,
                        "num_params": v["num_params"],
                        "final_accuracy": v["final_accuracy"],
                        "reached": hit is not None,
                        "rounds": None if hit is None else hit["round"],
                        "bytes": None if hit is None else hit["cum_bytes"],
                        "params_communicated": None if hit is None else hit["cum_bytes"] // 4,
                    }
                )
    result = {
        "benchmark": "comm",
        "dataset": cfg.federate.data.dataset,
        "clients": cfg.federate.data.clients,
        "rounds": cfg.federate.fl.rounds,
        "seed": seed,
        "targets": targets,
        "rows": rows,
    }
    atomic_write_json(out / "bench.json", result)
    return result


def plot_sampling(result: dict, path: str | Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    for m in sorted({r["method"] for r in result["rows"]}):
        rows = [r for r in result["rows"] if r["method"] == m]
        ax.errorbar(
            [r["clients_per_round"] for r in rows],
            [r["final_accuracy_mean"] for r in rows],
            yerr=[r["final_accuracy_std"] for r in rows],
            marker="o",
            capsize=3,
            label=m,
        )
    ax.set_xscale("log")
    ax.set_xlabel("clients per round")
    ax.set_ylabel(f"test accuracy after {result['rounds']} rounds")
    ax.set_title(f"{result['dataset']}: client sampling (mean ± std over {len(result['seeds'])} seeds)", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


def plot_comm(result: dict, path: str | Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["rows"]
    labels = [f"{r['strategy']}\n{r['method']}" for r in rows if r["target"] == result["targets"][0]]
    fig, ax = plt.subplots(figsize=(max(6, len(labels) * 0.9), 4), dpi=120)
    width = 0.8 / len(result["targets"])
    for i, t in enumerate(result["targets"]):
        sub = [r for r in rows if r["target"] == t]
        xs = np.arange(len(sub)) + i * width
        ax.bar(xs, [(r["bytes"] or 0) / 1e6 for r in sub], width, label=f"target {t:.0%}")
        for x, r in zip(xs, sub):
            if not r["reached"]:
                ax.text(x, 0, "not\nreached", ha="center", va="bottom", fontsize=6)
    ax.set_xticks(np.arange(len(labels)) + width * (len(result["targets"]) - 1) / 2, labels, fontsize=7)
    ax.set_ylabel("MB communicated to reach target")
    ax.set_title(f"{result['dataset']}: communication cost to target accuracy", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)
