"""How close batched rows are to per-row calls (the diffusers and AudioLDM generators).

Builds the tiny random-weight Stable Diffusion and AudioLDM fixtures (tests/synth/tiny_models.py,
no download), generates N rows once as batches that share a guidance scale and once one row
per call, and prints the largest and mean differences (uint8 levels for images, relative to
the clip's peak for audio) and how many rows are byte-identical.

    .venv/bin/python benchmarks/batch_equivalence.py [--rows 32] [--steps 4] [--size 32]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "synth"))


def batch_of(prompts, seeds, guidance):
    n = len(prompts)
    return {
        "row": np.arange(n),
        "label": np.zeros(n, np.int64),
        "label_name": np.array(["x"] * n, dtype=object),
        "prompt": np.array(prompts, dtype=object),
        "guidance": np.asarray(guidance, np.float64),
        "seed": np.asarray(seeds, np.int64),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=32)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--size", type=int, default=32)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    from tiny_models import tiny_audioldm, tiny_stable_diffusion

    from gptfl_ray.synth.format import TargetFormat
    from gptfl_ray.synth.generators.audioldm import AudioLDMGenerator
    from gptfl_ray.synth.generators.diffusers_image import DiffusersImageGenerator

    rng = np.random.default_rng(0)
    words = ["cat", "dog", "bird", "red car", "blue sky", "green tree", "small ship", "big truck"]
    prompts = [f"a photo of a {words[i % len(words)]}" for i in range(args.rows)]
    seeds = [int(s) for s in rng.integers(0, 2**62, args.rows)]
    guidance = [float(g) for g in rng.integers(1, 6, args.rows)]
    with tempfile.TemporaryDirectory() as tmp:
        sd = tiny_stable_diffusion(Path(tmp) / "sd")
        aldm = tiny_audioldm(Path(tmp) / "aldm")
        s = args.size
        img = DiffusersImageGenerator(
            TargetFormat("cifar", "image", (3, s, s)),
            str(sd),
            {"steps": args.steps, "height": s, "width": s, "device": "cpu"},
        )
        batched = img.generate(batch_of(prompts, seeds, guidance))
        alone = [img.generate(batch_of([p], [sd_], [g]))[0] for p, sd_, g in zip(prompts, seeds, guidance)]
        d = np.array([np.abs(a.astype(np.int16) - b.astype(np.int16)).max() for a, b in zip(batched, alone)])
        m = np.mean([np.abs(a.astype(np.int16) - b.astype(np.int16)).mean() for a, b in zip(batched, alone)])
        print(
            f"| diffusers (tiny SD, {s}x{s}, {args.steps} steps, fp32 CPU) | {args.rows} | "
            f"{len(set(guidance))} | {int(d.max())} levels | {m:.4f} levels | {int((d == 0).sum())}/{args.rows} |"
        )
        snd = AudioLDMGenerator(
            TargetFormat("esc50", "audio", (8000,), 1.0), str(aldm), {"steps": args.steps, "device": "cpu"}
        )
        n = min(args.rows, 12)
        cb = snd.generate(batch_of(prompts[:n], seeds[:n], guidance[:n]))
        ca = [snd.generate(batch_of([p], [sd_], [g]))[0] for p, sd_, g in zip(prompts[:n], seeds[:n], guidance[:n])]
        rel = np.array([np.abs(a - b).max() / max(np.abs(b).max(), 1e-30) for a, b in zip(cb, ca)])
        same = int(sum(np.array_equal(a, b) for a, b in zip(cb, ca)))
        print(
            f"| audioldm (tiny, 0.5 s, {args.steps} steps, fp32 CPU) | {n} | {len(set(guidance[:n]))} | "
            f"{rel.max():.2e} of peak | {rel.mean():.2e} of peak | {same}/{n} |"
        )


if __name__ == "__main__":
    main()
