"""Images/s of the diffusers generator on the real SD 2.1 architecture (random weights), per row vs batched.

CPU, fp32, DPM-Solver multistep, at a small resolution (`--size`, default 64 px: an 8x8 latent),
`--steps` steps. "per row" runs each prompt in its own pipeline call (the old behaviour);
"batched" hands the generator `--batch` rows sharing a guidance scale, which it runs as one call
with one seeded generator per row. Each mode runs `--repeats` times; the median is reported.
Whole process, one torch thread per run unless `--threads`.

    .venv/bin/python benchmarks/bench_sd21.py [--size 64] [--steps 4] [--batch 8] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def batch_of(n: int, guidance: float, offset: int = 0):
    words = ["cat", "dog", "bird", "red car", "blue sky", "green tree", "small ship", "big truck"]
    return {
        "row": np.arange(n),
        "label": np.zeros(n, np.int64),
        "label_name": np.array(["x"] * n, dtype=object),
        "prompt": np.array([f"a photo of a {words[(i + offset) % 8]}" for i in range(n)], dtype=object),
        "guidance": np.full(n, guidance),
        "seed": np.arange(offset, offset + n, dtype=np.int64) + 1000,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    from sd21_arch import build_sd21, count_params

    from gptfl_ray.synth.format import TargetFormat
    from gptfl_ray.synth.generators.diffusers_image import DiffusersImageGenerator

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        pipe = build_sd21(Path(tmp))
        build_s = time.perf_counter() - t0
    params = count_params(pipe)
    s = args.size
    gen = DiffusersImageGenerator(
        TargetFormat("cifar10", "image", (3, 32, 32)),
        "sd21-random",
        {"steps": args.steps, "height": s, "width": s, "device": "cpu"},
        pipeline=pipe,
    )
    gen.generate(batch_of(1, 3.0))  # warm-up (allocator, first-call paths)
    per_row, batched = [], []
    for _r in range(args.repeats):
        t0 = time.perf_counter()
        for i in range(args.batch):
            gen.generate(batch_of(1, 3.0, offset=i))
        per_row.append(args.batch / (time.perf_counter() - t0))
        t0 = time.perf_counter()
        gen.generate(batch_of(args.batch, 3.0))
        batched.append(args.batch / (time.perf_counter() - t0))
    pr, bt = statistics.median(per_row), statistics.median(batched)
    load = os.getloadavg()[0]
    print(
        f"SD 2.1 architecture, random weights: unet {params['unet'] / 1e6:.0f} M, vae {params['vae'] / 1e6:.0f} M, "
        f"text {params['text_encoder'] / 1e6:.0f} M parameters (built in {build_s:.0f} s)"
    )
    print(f"| mode | images/s (median of {args.repeats}) | runs |")
    print("| --- | --- | --- |")
    print(f"| per row ({args.batch} calls of 1) | {pr:.3f} | {', '.join(f'{v:.3f}' for v in per_row)} |")
    print(f"| batched ({args.batch} rows, one call) | {bt:.3f} | {', '.join(f'{v:.3f}' for v in batched)} |")
    print(
        f"batched / per row = {bt / pr:.2f}x at {s}x{s} px, {args.steps} DPM-Solver steps, fp32 CPU, "
        f"{args.threads} thread(s); load average at end {load:.2f}"
    )


if __name__ == "__main__":
    main()
