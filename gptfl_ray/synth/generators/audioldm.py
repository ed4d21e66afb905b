"""`audioldm`: text-to-audio with a latent diffusion model (GPT-FL section 3.2, AudioLDM [23]).

For environmental-sound data sets. diffusers' AudioLDMPipeline loads by hub id or local path.
Rows of a batch that share a guidance scale run in one pipeline call, each with its own seeded
CPU generator (as for images: a row's clip does not depend on its batch mates beyond float
rounding); the scheduler is DPM-Solver multistep unless `scheduler = "default"`; fp16 on a GPU.
The waveform is brought to the data set's 16 kHz clip length.
"""

from __future__ import annotations

import numpy as np

from gptfl_ray.synth.format import fit_clip
from gptfl_ray.synth.generators.base import Generator
from gptfl_ray.synth.hub import load_model, torch_device


class AudioLDMGenerator(Generator):
    name = "audioldm"
    modalities = ("audio",)
    default_model = "cvssp/audioldm-s-full-v2"

    def __init__(self, target, model=None, options=None):
        super().__init__(target, model, options)
        import torch
        from diffusers import AudioLDMPipeline

        self._torch = torch
        self.device, dtype = torch_device(self.options.get("device", "auto"))
        from gptfl_ray.synth.generators.diffusers_image import configure_pipeline, dtype_kwargs

        self.pipe = load_model(
            lambda ref: AudioLDMPipeline.from_pretrained(ref, **dtype_kwargs(dtype), **self.hub_kwargs()), self.model
        )
        configure_pipeline(self.pipe, self.options)
        self.pipe = self.pipe.to(self.device)
        self.pipe.set_progress_bar_config(disable=True)
        self.sr = int(getattr(self.pipe.vocoder.config, "sampling_rate", 16000))
        self.steps = int(self.options.get("steps", 30))
        self.negative = self.options.get("negative_prompt") or None
        self.clip_seconds = float(self.options.get("clip_seconds", 1.0))
        # Generate at least the clip length; the pipeline rounds up to its latent grid anyway.
        n = int(self.target.shape[-1]) if self.target.shape else int(self.clip_seconds * self.target.sample_rate)
        self.seconds = max(n / self.target.sample_rate, 0.1)

    def _run(self, prompts: list[str], guidance: float, seeds: list[int]) -> list[np.ndarray]:
        gens = [self._torch.Generator(device="cpu").manual_seed(int(s)) for s in seeds]
        out = self.pipe(
            prompt=list(prompts),
            negative_prompt=[self.negative] * len(prompts) if self.negative else None,
            audio_length_in_s=self.seconds,
            num_inference_steps=self.steps,
            guidance_scale=float(guidance),
            generator=gens,
            output_type="np",
        ).audios
        return [np.asarray(a, np.float32) for a in out]

    def generate(self, batch):
        from gptfl_ray.synth.generators.diffusers_image import guidance_groups

        out: list[np.ndarray | None] = [None] * len(batch["prompt"])
        with self._torch.inference_mode():
            for g, idx in guidance_groups(batch["guidance"]):
                clips = self._run([str(batch["prompt"][i]) for i in idx], g, [int(batch["seed"][i]) for i in idx])
                for i, clip in zip(idx, clips):
                    out[i] = fit_clip(clip, self.sr, self.target, self.clip_seconds)
        return out
