"""`audioldm`: text-to-audio with a latent diffusion model (GPT-FL section 3.2, AudioLDM [23]).

For environmental-sound data sets. diffusers' AudioLDMPipeline loads by hub id or local path;
each row runs with its own guidance scale and seeded generator, and the waveform is brought to
the data set's 16 kHz clip length.
"""

from __future__ import annotations

import numpy as np

from gptfl_ray.synth.generators.base import Generator, fit_clip, load_model, torch_device


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
        from gptfl_ray.synth.generators.diffusers_image import dtype_kwargs

        self.pipe = load_model(lambda ref: AudioLDMPipeline.from_pretrained(ref, **dtype_kwargs(dtype)), self.model)
        self.pipe = self.pipe.to(self.device)
        self.pipe.set_progress_bar_config(disable=True)
        self.sr = int(getattr(self.pipe.vocoder.config, "sampling_rate", 16000))
        self.steps = int(self.options.get("steps", 30))
        self.negative = self.options.get("negative_prompt") or None
        self.clip_seconds = float(self.options.get("clip_seconds", 1.0))
        # Generate at least the clip length; the pipeline rounds up to its latent grid anyway.
        n = int(self.target.shape[-1]) if self.target.shape else int(self.clip_seconds * self.target.sample_rate)
        self.seconds = max(n / self.target.sample_rate, 0.1)

    def _run(self, prompt: str, guidance: float, seed: int) -> np.ndarray:
        gen = self._torch.Generator(device="cpu").manual_seed(int(seed))
        out = self.pipe(
            prompt=prompt,
            negative_prompt=self.negative,
            audio_length_in_s=self.seconds,
            num_inference_steps=self.steps,
            guidance_scale=float(guidance),
            generator=gen,
            output_type="np",
        ).audios[0]
        return np.asarray(out, np.float32)

    def generate(self, batch):
        with self._torch.inference_mode():
            return [
                fit_clip(self._run(str(p), float(g), int(s)), self.sr, self.target, self.clip_seconds)
                for p, g, s in zip(batch["prompt"], batch["guidance"], batch["seed"])
            ]
