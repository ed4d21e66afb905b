"""Driver peak RSS and pre-training samples/s as the synthetic set grows (glyph digits, 1x -> 10x).

For each scale the glyph generator writes the synthetic shards once (`engine="local"`); then each
mode pre-trains in a fresh process (whole process, median of `--repeats`):

- `ray-data`: `pretrain_on_shards`, shards -> Ray Data (decode + prepare) -> Ray Train, 1 worker;
- `in-memory`: the driver decodes every shard (`load_synthetic`) and trains on the arrays with
  Ray Train (one `ray.put`), 1 worker: the path this replaced.

samples/s = (epochs - 1) x rows / (time of the last epoch report - time of the first), so Ray's
start-up is not in it (it is in `wall s`). Driver RSS is the process's peak (ru_maxrss).

    .venv/bin/python benchmarks/bench_pretrain_scale.py [--scales 1,10] [--epochs 4] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def one(mode: str, run: str, epochs: int) -> None:
    from gptfl_ray.data.registry import load_dataset
    from gptfl_ray.models.factory import ModelFactory
    from gptfl_ray.pretrain.config import PretrainConfig
    from gptfl_ray.pretrain.trainer import pretrain, pretrain_on_shards
    from gptfl_ray.ray_runtime import ensure_ray
    from gptfl_ray.synth.store import load_synthetic, read_manifest

    t0 = time.perf_counter()
    ds = load_dataset("digits")
    ensure_ray()
    factory = ModelFactory("cnn", ds.input_shape, ds.num_classes, "default", seed=0)
    cfg = PretrainConfig(epochs=epochs, train_workers=1)
    stamps: dict[int, float] = {}

    def on_epoch(e: int) -> None:
        stamps.setdefault(e, time.perf_counter())

    out = Path(run) / f"pre-{mode}-{os.getpid()}"
    if mode == "ray-data":
        res = pretrain_on_shards(cfg, factory, ds, run, out, on_epoch=on_epoch)
    else:
        x, y = load_synthetic(run, ds)
        res = pretrain(cfg, factory, ds, x, y, out, on_epoch=on_epoch)
    rows = int(read_manifest(run)["total_rows"])
    first, last = min(k for k in stamps if k >= 1), max(stamps)
    sps = (last - first) * rows / max(stamps[last] - stamps[first], 1e-9)
    print(
        json.dumps(
            {
                "rows": rows,
                "samples_s": sps,
                "wall_s": time.perf_counter() - t0,
                "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "acc": res.final["accuracy"],
            }
        )
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scales", default="1,10")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--one", nargs=2, metavar=("MODE", "RUN"))
    args = ap.parse_args()
    if args.one:
        return one(args.one[0], args.one[1], args.epochs)
    from gptfl_ray.data.registry import load_dataset
    from gptfl_ray.synth.config import GenerateConfig, PromptsConfig
    from gptfl_ray.synth.pipeline import ensure_generated
    from gptfl_ray.synth.prompts import ensure_prompts

    ds = load_dataset("digits")
    load_before = os.getloadavg()[0]
    print("| scale | rows | mode | samples/s | driver peak RSS (MB) | wall s | test acc. |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    results: dict[tuple, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for scale in [float(s) for s in args.scales.split(",")]:
            run = Path(tmp) / f"x{scale:g}"
            ensure_prompts(PromptsConfig(scale=scale), ds, run)
            ensure_generated(GenerateConfig(scale=scale, engine="local", shard_size=1024), ds, run)
            for mode in ("in-memory", "ray-data"):
                reps = []
                for _ in range(args.repeats):
                    out = subprocess.run(
                        [sys.executable, __file__, "--epochs", str(args.epochs), "--one", mode, str(run)],
                        capture_output=True,
                        text=True,
                        check=True,
                    )
                    reps.append(json.loads(out.stdout.strip().splitlines()[-1]))
                med = {k: statistics.median(r[k] for r in reps) for k in ("samples_s", "rss_mb", "wall_s", "acc")}
                results[(scale, mode)] = med
                print(
                    f"| {scale:g}x | {reps[0]['rows']} | {mode} | {med['samples_s']:.0f} | {med['rss_mb']:.0f} | "
                    f"{med['wall_s']:.1f} | {med['acc']:.3f} |",
                    flush=True,
                )
    scales = sorted({s for s, _ in results})
    lo, hi = scales[0], scales[-1]
    for mode in ("in-memory", "ray-data"):
        print(
            f"{mode}: driver RSS {hi:g}x / {lo:g}x = {results[(hi, mode)]['rss_mb'] / results[(lo, mode)]['rss_mb']:.2f}"
        )
    for s in scales:
        print(
            f"{s:g}x: ray-data / in-memory samples/s = "
            f"{results[(s, 'ray-data')]['samples_s'] / results[(s, 'in-memory')]['samples_s']:.2f}"
        )
    print(f"load average before {load_before:.2f}, after {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
