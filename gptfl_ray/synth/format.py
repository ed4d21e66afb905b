"""The target format (GPT-FL section 3.2): what a synthetic sample must look like, and its bytes.

`TargetFormat` names the raw format of the data set the synthetic samples imitate; the
encoders turn a raw sample into the compact PNG/WAV bytes that leave a generator actor and the
Parquet shards hold, and the decoders give them back in the data set's own units. Both the
generator contract (`synth/generators/base.py`) and the store (`synth/store.py`) import from
here, so neither imports the other.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

AUDIO_SAMPLE_RATE = 16_000


@dataclass(frozen=True)
class TargetFormat:
    """The raw format of the data set the synthetic samples must imitate."""

    dataset: str
    modality: str  # "image" or "audio"
    shape: tuple[int, ...]  # (C, H, W) for images, (T,) for audio
    max_value: float = 255.0
    sample_rate: int = AUDIO_SAMPLE_RATE

    @property
    def kind(self) -> str:
        """`digits` is the UCI/sklearn format: 4x4 block counts of a 32x32 bitmap, 0..16."""
        if self.modality == "audio":
            return "audio"
        if tuple(self.shape) == (1, 8, 8) and self.max_value == 16:
            return "digits"
        return "image"

    @classmethod
    def from_dataset(cls, dataset: Any) -> TargetFormat:
        sr = int(getattr(dataset, "extra", {}).get("sample_rate", AUDIO_SAMPLE_RATE))
        return cls(
            dataset=dataset.name,
            modality=dataset.modality,
            shape=tuple(int(s) for s in dataset.x_train.shape[1:]),
            max_value=float(dataset.max_value),
            sample_rate=sr,
        )

    @classmethod
    def from_dict(cls, d: dict) -> TargetFormat:
        return cls(**{**d, "shape": tuple(d["shape"])})

    def to_dict(self) -> dict:
        return {**asdict(self), "shape": list(self.shape)}


# ---------------------------------------------------------------------------------- encoding


def encode_sample(sample: np.ndarray, target: TargetFormat) -> bytes:
    """Raw sample (data set units) -> PNG or WAV bytes. Both encoders are deterministic."""
    buf = io.BytesIO()
    if target.modality == "audio":
        import soundfile as sf

        wave = np.asarray(sample, np.float32).reshape(-1)
        sf.write(buf, wave, target.sample_rate, format="WAV", subtype="FLOAT")
        return buf.getvalue()
    from PIL import Image

    arr = np.asarray(sample)
    if arr.dtype != np.uint8:
        raise ValueError(f"image samples must be uint8, got {arr.dtype}")
    c = arr.shape[0]
    hwc = arr[0] if c == 1 else np.transpose(arr, (1, 2, 0))
    mode = {1: "L", 3: "RGB", 4: "RGBA"}.get(c)
    if mode is None:
        raise ValueError(f"cannot store a {c}-channel image as PNG")
    Image.fromarray(np.ascontiguousarray(hwc), mode).save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def decode_sample(data: bytes, target: TargetFormat) -> np.ndarray:
    """Encoded bytes -> raw sample in the target's shape (images resized, audio padded/cut)."""
    if target.modality == "audio":
        import soundfile as sf

        wave, sr = sf.read(io.BytesIO(data), dtype="float32", always_2d=False)
        if wave.ndim > 1:
            wave = wave.mean(axis=1)
        if sr != target.sample_rate:
            wave = resample(wave, sr, target.sample_rate)
        return fit_length(wave, target.shape[-1])
    from PIL import Image

    img = Image.open(io.BytesIO(data))
    c, h, w = target.shape
    img = img.convert({1: "L", 3: "RGB", 4: "RGBA"}[c])
    if img.size != (w, h):
        # Digits' 0..16 counts are not intensities: resample them by nearest neighbour.
        resample_filter = Image.NEAREST if target.kind == "digits" else Image.BILINEAR
        img = img.resize((w, h), resample_filter)
    arr = np.asarray(img, np.uint8)
    return arr[None] if c == 1 else np.transpose(arr, (2, 0, 1)).copy()


def fit_length(wave: np.ndarray, length: int) -> np.ndarray:
    wave = np.asarray(wave, np.float32)
    if len(wave) >= length:
        return wave[:length]
    return np.pad(wave, (0, length - len(wave)))


def resample(wave: np.ndarray, sr_from: int, sr_to: int) -> np.ndarray:
    """Linear-interpolation resampling: enough for 16 kHz training clips, no extra dependency."""
    if sr_from == sr_to or len(wave) == 0:
        return np.asarray(wave, np.float32)
    n_out = int(round(len(wave) * sr_to / sr_from))
    x_out = np.arange(n_out) * (sr_from / sr_to)
    return np.interp(x_out, np.arange(len(wave)), wave).astype(np.float32)


def fit_clip(wave: np.ndarray, sr: int, target: TargetFormat, clip_seconds: float) -> np.ndarray:
    """Resample to the target rate and centre-pad/centre-crop to the clip length.

    Keyword clips hold the word near the middle, so centring keeps a short utterance where the
    real data have it and cuts a long one evenly at both ends.
    """
    wave = resample(np.asarray(wave, np.float32).reshape(-1), sr, target.sample_rate)
    length = int(target.shape[-1]) if target.shape else int(round(clip_seconds * target.sample_rate))
    if len(wave) >= length:
        start = (len(wave) - length) // 2
        return wave[start : start + length]
    left = (length - len(wave)) // 2
    return np.pad(wave, (left, length - len(wave) - left))


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
