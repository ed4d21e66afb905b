"""Why GPT-FL + SCAFFOLD collapsed on digits (issue 12), and at which client learning rate it holds.

Runs the `gptfl` variant's federation (the pre-trained start of a `gptfl-ray simulate` run
directory, the default digits task: 50 clients, Dir 0.1, 10 per round, 30 rounds, 2 local
epochs, batch 16) in-process for a few settings, and logs per round: validation and test
accuracy, the clients' training loss, ||c||, and the round's worst client (highest local
loss) with the norm of the control variate c_i it was corrected by against the norm of its
own gradient at the global model it started from: a c_i far larger than the gradient is stale
(computed at a model the client no longer sees).

    gptfl-ray simulate --variants synthetic --backend local --output-dir runs/pre
    .venv/bin/python benchmarks/scaffold_collapse.py --run-dir runs/pre [--out benchmarks/results/scaffold]

Choices are read on validation (the `val` columns); test is only reported. `weighted` is the
server before the fix (model step by sample-weighted mean), reproduced by patching the aggregate.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
from pathlib import Path

import numpy as np
import torch

SETTINGS = [  # name, strategy, client lr, start, server
    ("fedavg lr0.1", "fedavg", 0.1, "pre", "paper"),
    ("fedavg lr0.05", "fedavg", 0.05, "pre", "paper"),
    ("scaffold lr0.1 weighted (before fix)", "scaffold", 0.1, "pre", "weighted"),
    ("scaffold lr0.1", "scaffold", 0.1, "pre", "paper"),
    ("scaffold lr0.05", "scaffold", 0.05, "pre", "paper"),
    ("scaffold lr0.03", "scaffold", 0.03, "pre", "paper"),
    ("scaffold lr0.1 random init", "scaffold", 0.1, "random", "paper"),
]


class Probe:
    """Wraps the executor's client_update to see each client's control variate and gradient."""

    def __init__(self):
        from gptfl_ray.fl import executor

        self.executor, self.inner = executor, executor.client_update
        self.rows: dict[int, list[dict]] = {}
        self.round = 0
        executor.client_update = self
        inner_run = executor.ClientExecutor.run
        probe = self

        def run(ex, params, ids, round_idx, *a, **k):
            probe.round = round_idx
            return inner_run(ex, params, ids, round_idx, *a, **k)

        self.inner_run, executor.ClientExecutor.run = inner_run, run

    def __call__(self, model, global_params, x, y, cfg, seed, **kw):
        from gptfl_ray.models.params import set_flat

        set_flat(model, global_params)
        model.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        grad = float(torch.sqrt(sum((p.grad**2).sum() for p in model.parameters() if p.grad is not None)))
        control = kw.get("control")
        r = self.inner(model, global_params, x, y, cfg, seed, **kw)
        self.rows.setdefault(self.round, []).append(
            {
                "client": r.client_id,
                "n": r.num_samples,
                "steps": r.steps,
                "loss": r.loss,
                "grad_at_x": grad,
                "c_i": None if control is None else float(np.linalg.norm(control[1])),
                "c_minus_c_i": None if control is None else float(np.linalg.norm(control[0] - control[1])),
                "delta": float(np.linalg.norm(r.delta)),
            }
        )
        return r

    def close(self):
        self.executor.client_update = self.inner
        self.executor.ClientExecutor.run = self.inner_run


def run_setting(run_dir: Path, name, strategy, lr, start, server, work: Path) -> dict:
    from gptfl_ray.config import federate_config
    from gptfl_ray.fl.algorithms import scaffold
    from gptfl_ray.fl.loop import run_federation
    from gptfl_ray.methods.task import load_task
    from gptfl_ray.models.factory import ModelFactory
    from gptfl_ray.models.io import load_model_file
    from gptfl_ray.models.params import get_flat

    cfg = federate_config(overrides={"backend": "local", "strategy": strategy, "lr": lr})
    task = load_task(cfg)
    ds = task.dataset
    factory = ModelFactory(cfg.model.name, ds.input_shape, ds.num_classes, cfg.model.norm, seed=cfg.fl.seed)
    init = get_flat(load_model_file(factory(), run_dir / "pretrain" / "model.safetensors")) if start == "pre" else None
    c_norm: dict[int, float] = {}
    orig = scaffold.Scaffold.server_update

    def server_update(self, state, agg):
        if server == "weighted":
            agg = dataclasses.replace(agg, plain_delta=agg.delta)
        s = orig(self, state, agg)
        c_norm[s.round] = float(np.linalg.norm(s.slots["c"]))
        return s

    scaffold.Scaffold.server_update = server_update
    probe = Probe()
    try:
        with np.errstate(all="ignore"):
            res = run_federation(cfg, ds, task.parts, work / name.replace(" ", "_"), init_params=init)
    finally:
        probe.close()
        scaffold.Scaffold.server_update = orig
    loss = {r["round"]: r["train_loss"] for r in res.rounds}
    rounds = []
    for h in res.history:
        r = h["round"]
        clients = probe.rows.get(r, [])
        worst = max(clients, key=lambda c: c["loss"] if np.isfinite(c["loss"]) else np.inf, default=None)
        rounds.append(
            {
                "round": r,
                "val_accuracy": h["val_accuracy"],
                "accuracy": h["accuracy"],
                "train_loss": loss.get(r),
                "c_norm": c_norm.get(r),
                "worst_client": worst,
            }
        )
    val = [x["val_accuracy"] for x in rounds]
    best = int(np.argmax(val))
    return {
        "name": name,
        "strategy": strategy,
        "lr": lr,
        "start": start,
        "server": server,
        "rounds": rounds,
        "final_val": val[-1],
        "final_test": rounds[-1]["accuracy"],
        "best_val": val[best],
        "best_val_round": rounds[best]["round"],
    }


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4), dpi=120)
    for i, res in enumerate(results):
        col = f"C{i}"
        r = [x["round"] for x in res["rounds"]]
        ax.plot(r, [x["val_accuracy"] for x in res["rounds"]], color=col, label=res["name"])
        ax.plot(r, [x["accuracy"] for x in res["rounds"]], color=col, ls=":", lw=1)
        rl = [
            (x["round"], x["train_loss"])
            for x in res["rounds"]
            if x["train_loss"] is not None and np.isfinite(x["train_loss"])
        ]
        bx.plot([a for a, _ in rl], [b for _, b in rl], color=col)
    ax.set_xlabel("round")
    ax.set_ylabel("accuracy (solid: validation, dotted: test)")
    ax.set_title("digits, GPT-FL start unless noted: SCAFFOLD vs FedAvg", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    bx.set_yscale("log")
    bx.set_xlabel("round")
    bx.set_ylabel("clients' mean local training loss")
    bx.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument(
        "--run-dir", type=Path, required=True, help="a simulate run directory with pretrain/model.safetensors"
    )
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/scaffold"))
    args = ap.parse_args()
    if not (args.run_dir / "pretrain" / "model.safetensors").is_file():
        raise SystemExit(
            f"--run-dir: {args.run_dir}/pretrain/model.safetensors does not exist; "
            "run `gptfl-ray simulate --variants synthetic --output-dir DIR` first"
        )
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        results = [run_setting(args.run_dir, *s, work=Path(tmp)) for s in SETTINGS]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(results, indent=1) + "\n")
    plot(results, args.out.with_suffix(".png"))
    print("| setting | final val | final test | best val (round) |")
    print("|---|---|---|---|")
    for r in results:
        print(
            f"| {r['name']} | {r['final_val']:.3f} | {r['final_test']:.3f} | {r['best_val']:.3f} ({r['best_val_round']}) |"
        )
    print()
    for r in results:
        if r["strategy"] != "scaffold":
            continue
        print(
            f"{r['name']}: rounds whose worst client had loss > 5 (client, n, K, local loss, |c_i|, |c - c_i|, |g_i(x)|, ||c||)"
        )
        for x in r["rounds"]:
            w = x["worst_client"]
            if w and (not np.isfinite(w["loss"]) or w["loss"] > 5):
                print(
                    f"  round {x['round']:2d}: client {w['client']}, n {w['n']}, K {w['steps']}, loss {w['loss']:.4g}, "
                    f"|c_i| {w['c_i']:.4g}, |c-c_i| {w['c_minus_c_i']:.4g}, |g_i(x)| {w['grad_at_x']:.4g}, ||c|| {x['c_norm']:.4g}; "
                    f"val {x['val_accuracy']:.3f}"
                )
    print(f"wrote {args.out.with_suffix('.json')} and {args.out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
