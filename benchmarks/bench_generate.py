"""Generation throughput: the Ray Data actor pipeline vs a plain loop over the same generator.

GPT-FL section 3.2 runs a generator over every prompt; docs/architecture.md rule 7 runs it as
`map_batches(Gen, compute=ActorPoolStrategy(size=n))`. This measures what that costs or buys
against calling the same callable class in a plain Python loop, on the same rows:

- `loop`: `gen(batch)` for consecutive batches in this process (generation + PNG/WAV encoding).
- `generate(local)` / `generate(ray)`: the full stage, Parquet shards and manifest included; under
  `ray` the generator actors (`map_batches(ShardMaker, ActorPoolStrategy(size=--gen-actors))`)
  write the shards themselves and only manifest entries reach the driver, so there is no
  separate "rows back to the driver" path to time any more.

Reported per path: wall time from the first call to the last row back (for `ray` that includes
the actor's start and model load; `ray.init` is never included and is printed apart), and the
steady-state rate from the first batch back to the last (start-up excluded). The ratio is
generate(ray) / generate(local) on wall samples/s. Run: `python benchmarks/bench_generate.py --rows 2000`.

`--quality N` instead measures what the glyph digits are worth (GPT-FL Table 3's "synthetic
only" column in miniature): N glyph samples per class train a logistic regression and a tiny CNN,
scored on the real digits VALIDATION split (142 samples held out from train; chance 10%). It
never reads the test split: whatever this number steers is a choice, and choices read
validation only (README, "Evaluation protocol"). `--quality-seeds 0,1,2` averages split seeds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def build_rows(dataset, n: int, seed: int):
    from gptfl_ray.synth.config import PromptsConfig
    from gptfl_ray.synth.pipeline import plan_rows
    from gptfl_ray.synth.prompts import build_prompts

    per_class = -(-n // dataset.num_classes)
    return plan_rows(build_prompts(dataset, PromptsConfig(per_class=per_class, seed=seed))[:n], seed)


def time_loop(rows, target, cfg) -> dict:
    from gptfl_ray.synth.generators import generator_class
    from gptfl_ray.synth.pipeline import to_batch

    gen = generator_class(cfg.generator)(target.to_dict(), cfg.model, cfg.generator_options())  # load: not timed
    marks, start = [], time.perf_counter()
    for i in range(0, len(rows), cfg.batch_size):
        out = gen(to_batch(rows[i : i + cfg.batch_size]))
        marks.append((time.perf_counter(), len(out["data"])))
    return _rates(start, marks)


def time_stage(rows, dataset, target, cfg, engine: str) -> dict:
    from dataclasses import replace

    from gptfl_ray.synth.pipeline import generate

    with tempfile.TemporaryDirectory() as d:
        start = time.perf_counter()
        m = generate(rows, target, dataset.class_names, replace(cfg, engine=engine), d)
        wall = time.perf_counter() - start
    return {"rows": m["total_rows"], "wall": wall, "rate": m["total_rows"] / wall, "steady": float("nan")}


def _rates(start: float, marks: list[tuple[float, int]]) -> dict:
    total = sum(n for _, n in marks)
    wall = marks[-1][0] - start
    # Steady state: from the first batch back to the last, so start-up and model load drop out.
    steady = (total - marks[0][1]) / (marks[-1][0] - marks[0][0]) if len(marks) > 1 else float("nan")
    return {"rows": total, "wall": wall, "rate": total / wall, "steady": steady}


def quality_scores(per_class: int, seed: int = 0, epochs: int = 15) -> dict:
    """Glyph-only classifiers scored on the real validation split of split seed `seed`."""
    import numpy as np
    import torch
    import torch.nn as nn
    from sklearn.linear_model import LogisticRegression

    from gptfl_ray.data.registry import load_dataset
    from gptfl_ray.synth.format import TargetFormat
    from gptfl_ray.synth.generators.glyph import GlyphGenerator
    from gptfl_ray.synth.pipeline import to_batch

    torch.set_num_threads(1)
    ds = load_dataset("digits", seed=seed)
    rows = build_rows(ds, per_class * ds.num_classes, seed)
    t0 = time.perf_counter()
    x = np.stack(GlyphGenerator(TargetFormat.from_dataset(ds)).generate(to_batch(rows))).astype(np.float32) / 16
    gen_s = time.perf_counter() - t0
    y = np.array([r["label"] for r in rows])
    xt, yt = ds.x_val.astype(np.float32) / 16, ds.y_val
    lr = LogisticRegression(C=0.1, max_iter=3000).fit(x.reshape(len(x), -1), y).score(xt.reshape(len(xt), -1), yt)
    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(32, 64, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Dropout(0.25),
        nn.Flatten(),
        nn.Linear(64 * 16, 128),
        nn.ReLU(),
        nn.Dropout(0.5),
        nn.Linear(128, 10),
    )
    opt = torch.optim.AdamW(net.parameters(), 1e-3, weight_decay=1e-3)
    xs, ys = torch.tensor(x), torch.tensor(y)
    for _ in range(epochs):
        net.train()
        perm = torch.randperm(len(xs))
        for i in range(0, len(xs), 64):
            idx = perm[i : i + 64]
            loss = nn.functional.cross_entropy(net(xs[idx]), ys[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()
    with torch.no_grad():
        cnn = float((net(torch.tensor(xt)).argmax(1).numpy() == yt).mean())
    return {"rows": len(rows), "gen_s": gen_s, "val_n": len(yt), "logreg": float(lr), "cnn": cnn}


def quality(per_class: int, seeds: list[int], epochs: int = 15) -> None:
    import numpy as np

    runs = [quality_scores(per_class, s, epochs) for s in seeds]
    print(
        f"\nglyph digits, {runs[0]['rows']} synthetic samples per seed, trained on glyphs only, scored on the "
        f"real digits validation split ({runs[0]['val_n']} samples) of split seeds {','.join(map(str, seeds))}:\n"
    )
    print("| classifier | validation accuracy, mean | per seed |\n| --- | ---: | --- |")
    for key, name in (("logreg", "logistic regression (C=0.1)"), ("cnn", f"tiny CNN (2 conv, {epochs} epochs)")):
        vals = [r[key] for r in runs]
        print(f"| {name} | {np.mean(vals):.3f} | {', '.join(f'{v:.3f}' for v in vals)} |")
    print("| chance | 0.100 | |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="digits")
    p.add_argument("--generator", default="glyph")
    p.add_argument("--model", default=None)
    p.add_argument("--rows", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--gen-actors", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--threads", type=int, default=1, help="torch threads in this process (Ray gives actors 1)")
    p.add_argument("--no-stage", action="store_true", help="skip the full generate() comparison")
    p.add_argument("--quality", type=int, default=0, metavar="N", help="glyph digits' worth: N per class (no Ray)")
    p.add_argument("--quality-seeds", default="0", help="split seeds for --quality, comma-separated")
    args = p.parse_args()
    if args.quality:
        quality(args.quality, [int(s) for s in args.quality_seeds.split(",")])
        return

    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray
    import torch

    from gptfl_ray.data.registry import load_dataset
    from gptfl_ray.synth.config import GenerateConfig
    from gptfl_ray.synth.format import TargetFormat

    torch.set_num_threads(args.threads)
    ds = load_dataset(args.dataset)
    target = TargetFormat.from_dataset(ds)
    cfg = GenerateConfig(
        dataset=args.dataset,
        generator=args.generator,
        model=args.model,
        gen_actors=args.gen_actors,
        batch_size=args.batch_size,
        shard_size=256,
        steps=args.steps,
    )
    rows = build_rows(ds, args.rows, seed=0)
    t0 = time.perf_counter()
    ray.init(address="local", num_cpus=max(2, args.gen_actors), include_dashboard=False, log_to_driver=False)
    ray_init = time.perf_counter() - t0

    results: dict[str, list[dict]] = {"loop": [], "generate(local)": [], "generate(ray)": []}
    for _ in range(args.repeats):  # interleaved, so load from other processes hits both alike
        results["loop"].append(time_loop(rows, target, cfg))
        if not args.no_stage:
            results["generate(local)"].append(time_stage(rows, ds, target, cfg, "local"))
            results["generate(ray)"].append(time_stage(rows, ds, target, cfg, "ray"))
    ray.shutdown()

    def med(name, key):
        vals = [r[key] for r in results[name]]
        return statistics.median(vals) if vals else float("nan")

    base_steady, base_rate = med("loop", "steady"), med("generate(local)", "rate")
    print(
        f"\n{args.generator} on {args.dataset}: {len(rows)} rows, batch {args.batch_size}, "
        f"{args.gen_actors} actor(s), median of {args.repeats}; ray.init {ray_init:.1f}s (not included)\n"
    )
    print("| path | wall s | samples/s (wall) | samples/s (steady) | ratio vs plain loop |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name in results:
        if not results[name]:
            continue
        steady = med(name, "steady")
        if name.startswith("generate"):
            ratio = med(name, "rate") / base_rate
        else:
            ratio = steady / base_steady
        print(
            f"| {name} | {med(name, 'wall'):.2f} | {med(name, 'rate'):.1f} | "
            f"{'-' if steady != steady else f'{steady:.1f}'} | {ratio:.2f} |"
        )
    print(
        "\nratio: `loop` 1.00 by definition; `generate(ray)` vs `generate(local)` on wall samples/s "
        "(actor start-up included)."
    )


if __name__ == "__main__":
    main()
