"""`speecht5`: text-to-speech for keyword data sets (GPT-FL section 3.2, SpeechT5 [2]).

SpeechT5ForTextToSpeech turns the prompt text into a mel spectrogram and SpeechT5HifiGan into a
16 kHz waveform. Both load by hub id or local path. The voice is a 512-d speaker x-vector: rows
from a `.npy` file of embeddings (one picked per row by its seed), or a seeded random vector, so
the speakers vary across rows (the paper notes synthetic speech lacks speaker diversity).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gptfl_ray.synth.generators.base import (
    ConfigError, Generator, check_model_ref, fit_clip, load_model, row_rng, torch_device,
)

DEFAULT_VOCODER = "microsoft/speecht5_hifigan"
SPEAKER_DIM = 512


def load_speaker_embeddings(path: str | None) -> np.ndarray | None:
    if not path:
        return None
    p = Path(path).expanduser()
    if not p.is_file():
        raise ConfigError("--speaker-embeddings", f"file {path} does not exist")
    try:
        emb = np.load(p)
    except (ValueError, OSError) as exc:
        raise ConfigError("--speaker-embeddings", f"{path} is not a .npy array ({exc})") from None
    emb = np.atleast_2d(np.asarray(emb, np.float32))
    if emb.shape[-1] != SPEAKER_DIM or emb.ndim != 2:
        raise ConfigError("--speaker-embeddings", f"{path} must hold (K, {SPEAKER_DIM}) vectors, got {emb.shape}")
    return emb


def speaker_for(seed: int, table: np.ndarray | None) -> np.ndarray:
    rng = row_rng(seed ^ 0x5EED)
    if table is not None:
        return table[int(rng.integers(len(table)))]
    v = rng.normal(0.0, 1.0, SPEAKER_DIM).astype(np.float32)
    return v / np.linalg.norm(v)  # x-vectors are length-normalised


class SpeechT5Generator(Generator):
    name = "speecht5"
    modalities = ("audio",)
    default_model = "microsoft/speecht5_tts"

    @classmethod
    def preflight(cls, target, model, options):
        super().preflight(target, model, options)
        check_model_ref(options.get("vocoder", DEFAULT_VOCODER), "--vocoder")
        load_speaker_embeddings(options.get("speaker_embeddings"))

    def __init__(self, target, model=None, options=None):
        super().__init__(target, model, options)
        import torch
        from transformers import SpeechT5ForTextToSpeech, SpeechT5HifiGan, SpeechT5Processor

        self._torch = torch
        self.device, _ = torch_device(self.options.get("device", "auto"))  # fp32: TTS is small
        self.processor = load_model(SpeechT5Processor.from_pretrained, self.model)
        self.tts = load_model(SpeechT5ForTextToSpeech.from_pretrained, self.model).to(self.device).eval()
        self.vocoder = load_model(SpeechT5HifiGan.from_pretrained, self.options.get("vocoder", DEFAULT_VOCODER),
                                  option="--vocoder").to(self.device).eval()
        self.sr = int(getattr(self.vocoder.config, "sampling_rate", 16000))
        self.speakers = load_speaker_embeddings(self.options.get("speaker_embeddings"))
        self.maxlenratio = float(self.options.get("maxlenratio", 20.0))
        self.clip_seconds = float(self.options.get("clip_seconds", 1.0))

    def _speak(self, text: str, seed: int) -> np.ndarray:
        torch = self._torch
        # SpeechT5's decoder pre-net keeps dropout on at inference: seed it per row.
        torch.manual_seed(int(seed) & 0xFFFFFFFF)
        inputs = self.processor(text=text, return_tensors="pt")
        spk = torch.from_numpy(speaker_for(seed, self.speakers))[None].to(self.device)
        wave = self.tts.generate_speech(inputs["input_ids"].to(self.device), spk, vocoder=self.vocoder,
                                        maxlenratio=self.maxlenratio)
        return wave.float().cpu().numpy()

    def generate(self, batch):
        with self._torch.inference_mode():
            return [
                fit_clip(self._speak(str(p), int(s)), self.sr, self.target, self.clip_seconds)
                for p, s in zip(batch["prompt"], batch["seed"])
            ]
