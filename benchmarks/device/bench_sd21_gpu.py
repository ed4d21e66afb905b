"""One GPU: images/s of the diffusers generator on the SD 2.1 architecture at 512 px fp16, batch 1/8/32.

Random weights built from the published configs (benchmarks/sd21_arch.py; no download), DPM-Solver
multistep with `--steps` steps, SDPA attention, one seeded generator per row (what
`gptfl-ray generate --generator diffusers` runs). Prints images/s per batch size (median of
`--repeats` timed calls after one warm-up) and the peak GPU memory. One command, under 5 minutes
on a recent GPU:

    .venv/bin/python benchmarks/device/bench_sd21_gpu.py            # GPU, 512 px, fp16
    .venv/bin/python benchmarks/device/bench_sd21_gpu.py --smoke    # CPU check of the script: 64 px, 1 step, batch 1/2
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--smoke", action="store_true", help="CPU, tiny resolution and batches: checks the script runs")
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batches", default="1,8,32")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--compile", action="store_true", help="torch.compile the UNet (adds compile time)")
    args = ap.parse_args()
    import torch
    from bench_sd21 import batch_of
    from sd21_arch import build_sd21, count_params

    from gptfl_ray.synth.format import TargetFormat
    from gptfl_ray.synth.generators.diffusers_image import DiffusersImageGenerator

    if args.smoke:
        args.size, args.steps, args.batches, args.repeats, device = 64, 1, "1,2", 1, "cpu"
        torch.set_num_threads(1)
    else:
        if not torch.cuda.is_available():
            sys.exit("no CUDA device: run with --smoke for the CPU check")
        device = "cuda"
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        pipe = build_sd21(Path(tmp), dtype=None if device == "cpu" else torch.float16)
    build_s = time.perf_counter() - t0
    opts = {"steps": args.steps, "height": args.size, "width": args.size, "device": device, "compile": args.compile}
    gen = DiffusersImageGenerator(TargetFormat("cifar10", "image", (3, 32, 32)), "sd21-random", opts, pipeline=pipe)
    p = count_params(pipe)
    name = torch.cuda.get_device_name(0) if device == "cuda" else "CPU"
    print(
        f"{name}: SD 2.1 architecture ({sum(p.values()) / 1e9:.2f} B parameters, random, "
        f"{'fp16' if device == 'cuda' else 'fp32'}), {args.size} px, {args.steps} DPM-Solver steps; built in {build_s:.0f} s"
    )
    print("| batch | images/s | s per call | peak GPU memory (GiB) |")
    print("| --- | --- | --- | --- |")
    for b in [int(x) for x in args.batches.split(",")]:
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        gen.generate(batch_of(b, 3.0))  # warm-up: kernels, allocator, compile
        times = []
        for r in range(args.repeats):
            if device == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            gen.generate(batch_of(b, 3.0, offset=r * b))
            if device == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
        s = statistics.median(times)
        mem = torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else float("nan")
        print(f"| {b} | {b / s:.2f} | {s:.2f} | {mem:.1f} |", flush=True)


if __name__ == "__main__":
    main()
