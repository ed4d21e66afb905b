"""`diffusers`: text-to-image with a latent diffusion model (GPT-FL section 3.2).

The paper generates images with Stable Diffusion v2.1; any diffusers text-to-image pipeline
loads here by hub id or local path (AutoPipelineForText2Image, falling back to
StableDiffusionPipeline). Each row gets its own guidance scale (drawn in [1, 5], section 3.1) and
its own seeded torch.Generator; the image is then brought to the data set's raw format.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from gptfl_ray.synth.generators.base import Generator, load_model, row_rng, torch_device


def dtype_kwargs(dtype) -> dict:
    """fp16 only on a GPU; on CPU the saved fp32 weights load as they are."""
    import torch

    return {} if dtype == torch.float32 else {"torch_dtype": dtype}


def load_text2image(ref: str, dtype):
    from diffusers import AutoPipelineForText2Image, StableDiffusionPipeline

    try:
        return AutoPipelineForText2Image.from_pretrained(ref, **dtype_kwargs(dtype))
    except (ValueError, KeyError):  # a pipeline class AutoPipeline does not map
        return StableDiffusionPipeline.from_pretrained(ref, **dtype_kwargs(dtype))


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
    default_model = "stabilityai/stable-diffusion-2-1"

    def __init__(self, target, model=None, options=None):
        super().__init__(target, model, options)
        import torch

        self.device, self.dtype = torch_device(self.options.get("device", "auto"))
        self.pipe = load_model(lambda ref: load_text2image(ref, self.dtype), self.model)
        if getattr(self.pipe, "safety_checker", None) is not None:
            # Label-conditioned training data: a false NSFW hit would silently blank a sample.
            self.pipe.safety_checker = None
        self.pipe = self.pipe.to(self.device)
        self.pipe.set_progress_bar_config(disable=True)
        self.steps = int(self.options.get("steps", 30))
        self.height = self.options.get("height")
        self.width = self.options.get("width")
        self.negative = self.options.get("negative_prompt") or None
        self._torch = torch

    def _run(self, prompt: str, guidance: float, seed: int) -> np.ndarray:
        torch = self._torch
        gen = torch.Generator(device="cpu").manual_seed(int(seed))  # CPU noise: same on any device
        out = self.pipe(
            prompt=prompt,
            negative_prompt=self.negative,
            guidance_scale=float(guidance),
            num_inference_steps=self.steps,
            height=self.height,
            width=self.width,
            generator=gen,
            output_type="np",
        ).images[0]
        return np.clip(np.round(np.asarray(out, np.float32) * 255.0), 0, 255).astype(np.uint8)

    def generate(self, batch):
        # One prompt per call: every row has its own guidance scale, and a row's output then
        # does not depend on which rows shared its batch (byte-identical reruns and resumes).
        with self._torch.inference_mode():
            return [
                image_to_target(self._run(str(p), float(g), int(s)), self.target, int(s))
                for p, g, s in zip(batch["prompt"], batch["guidance"], batch["seed"])
            ]
