"""Re-select, on VALIDATION, the digits defaults that were once tuned on the test split.

Two parts, each a few minutes on 2 cores, both in-process (no Ray: the numbers are the same,
docs/architecture.md rules 4 and 5), every score read from the validation split (142 real digits held out from every
client) and never from the test split:

- `--part fl`: FedAvg from random init on the default task (50 clients, Dir(0.1), 10 per round,
  30 rounds, batch 16, the `cnn`) over a grid of client lr x momentum x local epochs. Score: the
  mean validation accuracy of rounds 26-30 (the last five evaluations: one round's accuracy
  swings by several points under Dir(0.1)), averaged over split seeds.
- `--part pretrain`: server pre-training on the default glyph synthetic data (1x the real train
  size) over pre-training lr x weight decay at 15 epochs, then epochs in {8, 15, 30} at the best
  pair. Score: the synthetic-only model's validation accuracy after the last epoch (what GPT-FL
  hands to the clients), averaged over seeds.

Prints one markdown table per part and writes benchmarks/results/sweep_validation_<part>.json.
Run: `python benchmarks/sweep_validation.py --part fl` and `--part pretrain`.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

FL_GRID = {"lr": (0.1, 0.2, 0.4), "momentum": (0.0, 0.5, 0.9), "local_epochs": (1, 2, 4)}
PRE_GRID = {"lr": (0.02, 0.05, 0.1, 0.2, 0.4), "weight_decay": (5e-4, 5e-3)}
PRE_EPOCHS = (8, 15, 30)
LAST = 5  # evaluations averaged at the end of an FL run


def _mean(xs):
    return sum(xs) / len(xs)


def fl_part(seeds: list[int]) -> dict:
    import torch

    from gptfl_ray.config import federate_config
    from gptfl_ray.fl.loop import run_federation
    from gptfl_ray.methods.task import load_task

    torch.set_num_threads(1)
    tasks = {s: load_task(federate_config(overrides={"backend": "local", "seed": s})) for s in seeds}
    rows = []
    for lr, mom, ep in itertools.product(FL_GRID["lr"], FL_GRID["momentum"], FL_GRID["local_epochs"]):
        scores, finals, t0 = [], [], time.perf_counter()
        for s in seeds:
            cfg = federate_config(
                overrides={
                    "backend": "local",
                    "seed": s,
                    "lr": lr,
                    "momentum": mom,
                    "local_epochs": ep,
                    "checkpoint_every": 0,
                }
            )
            with tempfile.TemporaryDirectory() as d:
                res = run_federation(cfg, tasks[s].dataset, tasks[s].parts, d)
            vals = [h["val_accuracy"] for h in res.history]
            scores.append(_mean(vals[-LAST:]))
            finals.append(vals[-1])
        rows.append(
            {
                "lr": lr,
                "momentum": mom,
                "local_epochs": ep,
                "val_last5": _mean(scores),
                "val_final": _mean(finals),
                "per_seed_last5": scores,
                "seconds": round(time.perf_counter() - t0, 1),
            }
        )
        print(f"  lr {lr} momentum {mom} epochs {ep}: {_mean(scores):.3f}", file=sys.stderr, flush=True)
    best = max(rows, key=lambda r: r["val_last5"])
    print(
        f"\nFedAvg from random init, digits, 50 clients Dir(0.1), 10/round, 30 rounds, batch 16; split seeds "
        f"{','.join(map(str, seeds))}; validation accuracy (142 samples per seed)\n"
    )
    print(
        "| client lr | momentum | local epochs | val acc., mean of rounds 26-30 | val acc., round 30 | per seed (26-30) |"
    )
    print("|--:|--:|--:|--:|--:|---|")
    for r in rows:
        mark = "**" if r is best else ""
        print(
            f"| {r['lr']} | {r['momentum']} | {r['local_epochs']} | {mark}{r['val_last5']:.3f}{mark} | {r['val_final']:.3f} | "
            f"{', '.join(f'{v:.3f}' for v in r['per_seed_last5'])} |"
        )
    print(f"\nchosen: lr {best['lr']}, momentum {best['momentum']}, local epochs {best['local_epochs']}")
    return {
        "part": "fl",
        "seeds": seeds,
        "grid": FL_GRID,
        "rows": rows,
        "chosen": {k: best[k] for k in ("lr", "momentum", "local_epochs")},
    }


def pretrain_part(seeds: list[int]) -> dict:
    import dataclasses

    import torch

    from gptfl_ray.methods.simulate import prepare_simulation, simulate_config
    from gptfl_ray.models.factory import ModelFactory
    from gptfl_ray.pretrain.trainer import pretrain
    from gptfl_ray.synth import pipeline, store
    from gptfl_ray.synth import prompts as prompts_mod

    torch.set_num_threads(1)
    data = {}
    work = Path(tempfile.mkdtemp(prefix="sweep_pre_"))
    for s in seeds:  # the default synthetic data of seed s (glyph, 1x), generated once
        cfg = simulate_config({}, {"federate": {"backend": "local", "seed": s}, "generate": {"engine": "local"}})
        task, _ = prepare_simulation(cfg)
        run = work / f"seed{s}"
        prompts_mod.ensure_prompts(cfg.prompts, task.dataset, run)
        pipeline.ensure_generated(cfg.generate, task.dataset, run)
        x, y = store.load_synthetic(run, task.dataset)
        m = cfg.federate.model
        data[s] = (
            task.dataset,
            x,
            y,
            ModelFactory(m.name, task.dataset.input_shape, task.dataset.num_classes, m.norm, seed=s),
            cfg.pretrain,
        )

    def score(lr, wd, epochs):
        finals, t0 = [], time.perf_counter()
        for s, (ds, x, y, factory, base) in data.items():
            pcfg = dataclasses.replace(base, lr=lr, weight_decay=wd, epochs=epochs, train_workers=0)
            res = pretrain(pcfg, factory, ds, x, y, work / f"seed{s}" / f"pre_{lr}_{wd}_{epochs}")
            finals.append(res.history[-1]["val_accuracy"])
        row = {
            "lr": lr,
            "weight_decay": wd,
            "epochs": epochs,
            "val_final": _mean(finals),
            "per_seed": finals,
            "seconds": round(time.perf_counter() - t0, 1),
        }
        print(f"  lr {lr} wd {wd} epochs {epochs}: {row['val_final']:.3f}", file=sys.stderr, flush=True)
        return row

    rows = [score(lr, wd, 15) for lr, wd in itertools.product(PRE_GRID["lr"], PRE_GRID["weight_decay"])]
    pair = max(rows, key=lambda r: r["val_final"])
    rows += [score(pair["lr"], pair["weight_decay"], e) for e in PRE_EPOCHS if e != 15]
    best = max(rows, key=lambda r: r["val_final"])
    n = len(data[seeds[0]][2])
    print(
        f"\nserver pre-training of the cnn on {n} glyph digits (1x), SGD momentum 0.9, cosine schedule, batch 64; "
        f"seeds {','.join(map(str, seeds))}; synthetic-only validation accuracy after the last epoch\n"
    )
    print("| pre-training lr | weight decay | epochs | val acc. | per seed |\n|--:|--:|--:|--:|---|")
    for r in rows:
        mark = "**" if r is best else ""
        print(
            f"| {r['lr']} | {r['weight_decay']} | {r['epochs']} | {mark}{r['val_final']:.3f}{mark} | "
            f"{', '.join(f'{v:.3f}' for v in r['per_seed'])} |"
        )
    print(f"\nchosen: lr {best['lr']}, weight decay {best['weight_decay']}, epochs {best['epochs']}")
    return {
        "part": "pretrain",
        "seeds": seeds,
        "grid": {**PRE_GRID, "epochs": PRE_EPOCHS},
        "rows": rows,
        "chosen": {k: best[k] for k in ("lr", "weight_decay", "epochs")},
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--part", choices=("fl", "pretrain"), required=True)
    p.add_argument("--seeds", default="0,1", help="split (and data) seeds, comma-separated")
    args = p.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    t0 = time.perf_counter()
    out = fl_part(seeds) if args.part == "fl" else pretrain_part(seeds)
    out["wall_s"] = round(time.perf_counter() - t0, 1)
    out["load_avg"] = os.getloadavg()
    path = ROOT / "benchmarks" / "results" / f"sweep_validation_{args.part}.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"\n{out['wall_s']:.0f}s; -> {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
