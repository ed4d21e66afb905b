"""The in-memory data set every stage shares.

Raw samples stay in the data set's own units (uint8 pixels, digits' 0-16 counts, float
waveforms) so synthetic samples can be stored in exactly the same format; `prepare` turns raw
samples into the float tensors a model eats. Class names travel with every data set: they are
all that GPT-FL's server sees of the clients' data (paper section 3.1).

Every data set has three disjoint splits, fixed by the split seed the loader is given:
`train` is what the partitioners deal out to clients, `val` is held out from every client and
is what every choice reads (defaults, generator settings, epochs, "best" checkpoints), and
`test` is only reported. Where a data set ships an official validation list it is used;
otherwise `carve_validation` takes a stratified share of the official training set.
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
    # Held out from every client; None only for hand-built toy data sets (treated as empty).
    x_val: np.ndarray | None = None
    y_val: np.ndarray | None = None
    max_value: float = 255.0  # raw value that maps to 1.0 (16 for digits)
    mean: tuple[float, ...] = (0.5,)
    std: tuple[float, ...] = (0.5,)
    groups: np.ndarray | None = None  # natural partition key per train sample (speaker id ...)
    extra: dict = field(default_factory=dict, compare=False)

    def __post_init__(self):
        if (self.x_val is None) != (self.y_val is None):
            raise ValueError(f"dataset {self.name}: give both x_val and y_val or neither")
        if self.x_val is None:  # frozen: fill the empty split in place of the None
            object.__setattr__(self, "x_val", self.x_train[:0])
            object.__setattr__(self, "y_val", np.asarray(self.y_train)[:0])
        if (
            len(self.x_train) != len(self.y_train)
            or len(self.x_test) != len(self.y_test)
            or len(self.x_val) != len(self.y_val)
        ):
            raise ValueError(f"dataset {self.name}: samples and labels differ in length")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def has_validation(self) -> bool:
        return len(self.y_val) > 0

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

            return log_mel(x, sample_rate=int(self.extra.get("sample_rate", 16_000)), scale=1.0 / float(self.max_value))
        x = np.asarray(x, dtype=np.float32) / np.float32(self.max_value)
        if self.modality == "image":
            mean = np.asarray(self.mean, np.float32).reshape(1, -1, 1, 1)
            std = np.asarray(self.std, np.float32).reshape(1, -1, 1, 1)
            x = (x - mean) / std
        return x


VALIDATION_FRACTION = 0.1  # share of each class carved out of train when no official list exists
# Keeps the validation draw apart from the partitioner's, which seeds default_rng(seed) too.
_VALIDATION_STREAM = 0x5A11D


def carve_validation(y: np.ndarray, seed: int, fraction: float = VALIDATION_FRACTION) -> tuple[np.ndarray, np.ndarray]:
    """Stratified (train, validation) index arrays over labels `y`, both sorted.

    Each class gives round(fraction * n_c) samples, at least one when it has two or more, so
    every class with a second sample is seen by validation; a class with a single sample stays
    in train. Deterministic in (y, seed, fraction).
    """
    if not 0 < fraction < 1:
        raise ValueError(f"validation fraction must be in (0, 1), got {fraction}")
    y = np.asarray(y)
    rng = np.random.default_rng([_VALIDATION_STREAM, int(seed)])
    val: list[np.ndarray] = []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        k = 0 if len(idx) < 2 else min(len(idx) - 1, max(1, int(round(fraction * len(idx)))))
        val.append(rng.permutation(idx)[:k])
    val_idx = np.sort(np.concatenate(val)) if val else np.zeros(0, np.int64)
    keep = np.ones(len(y), bool)
    keep[val_idx] = False
    return np.flatnonzero(keep).astype(np.int64), val_idx.astype(np.int64)
