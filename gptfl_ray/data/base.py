"""The in-memory data set every stage shares.

Raw samples stay in the data set's own units (uint8 pixels, digits' 0-16 counts, float
waveforms) so synthetic samples can be stored in exactly the same format; `prepare` turns raw
samples into the float tensors a model eats. Class names travel with every data set: they are
all that GPT-FL's server sees of the clients' data (paper section 3.1).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Dataset:
    name: str
    modality: str  # "image" or "audio"
    class_names: tuple[str, ...]
    x_train: np.ndarray  # raw, (N, C, H, W) for images, (N, T) for audio
    y_train: np.ndarray  # int64 labels in [0, num_classes)
    x_test: np.ndarray
    y_test: np.ndarray
    max_value: float = 255.0  # raw value that maps to 1.0 (16 for digits)
    mean: tuple[float, ...] = (0.5,)
    std: tuple[float, ...] = (0.5,)
    groups: np.ndarray | None = None  # natural partition key per train sample (speaker id ...)
    extra: dict = field(default_factory=dict, compare=False)

    def __post_init__(self):
        if len(self.x_train) != len(self.y_train) or len(self.x_test) != len(self.y_test):
            raise ValueError(f"dataset {self.name}: samples and labels differ in length")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one prepared sample: (C, H, W) for images, (mel bins, frames) for audio."""
        if self.modality == "audio":
            from gptfl_ray.data.audio import feature_shape

            return feature_shape(self.x_train.shape[-1])
        return tuple(self.x_train.shape[1:])

    def prepare(self, x: np.ndarray) -> np.ndarray:
        """Raw samples -> normalised float32 model input."""
        if self.modality == "audio":
            # FedAudio's log-mel front-end (data/audio.py), chunked: no full float copy of x.
            from gptfl_ray.data.audio import log_mel

            return log_mel(x, sample_rate=int(self.extra.get("sample_rate", 16_000)),
                           scale=1.0 / float(self.max_value))
        x = np.asarray(x, dtype=np.float32) / np.float32(self.max_value)
        if self.modality == "image":
            mean = np.asarray(self.mean, np.float32).reshape(1, -1, 1, 1)
            std = np.asarray(self.std, np.float32).reshape(1, -1, 1, 1)
            x = (x - mean) / std
        return x
