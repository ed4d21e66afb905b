"""What every generator shares (GPT-FL section 3.2): the batch contract.

A generator is a callable class (docs/architecture.md rule 7): it loads its model once in `__init__` and maps
a batch of prompt rows to a batch of encoded samples in `__call__`, so the same object runs in a
plain loop or inside `ds.map_batches(Gen, compute=ActorPoolStrategy(...))`. Subclasses only
implement `generate(batch) -> raw samples in the data set's own units`; encoding to PNG/WAV bytes
happens here (with `synth/format.py`'s encoders) so the bytes that leave an actor are compact.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from gptfl_ray.errors import ConfigError
from gptfl_ray.synth.format import TargetFormat, encode_sample
from gptfl_ray.synth.hub import check_model_ref, is_path_like, model_revision

# Columns a prompt row carries into a generator batch.
INPUT_COLUMNS = ("row", "label", "label_name", "prompt", "guidance", "seed")
# Columns a generator returns (and the Parquet shards hold).
OUTPUT_COLUMNS = ("row", "data", "label", "label_name", "prompt", "guidance", "seed", "generator")


class Generator:
    """Base callable class; subclasses set `name`, `modalities` and implement `generate`."""

    name: ClassVar[str] = "base"
    modalities: ClassVar[tuple[str, ...]] = ("image", "audio")
    default_model: ClassVar[str | None] = None

    def __init__(self, target: dict | TargetFormat, model: str | None = None, options: dict | None = None):
        self.target = target if isinstance(target, TargetFormat) else TargetFormat.from_dict(target)
        if self.target.modality not in self.modalities:
            raise ConfigError(
                "generate.generator",
                f"{self.name} makes {'/'.join(self.modalities)} data, but data set "
                f"{self.target.dataset} is {self.target.modality}",
            )
        self.model = model or self.default_model
        self.options = dict(options or {})
        # A pinned hub revision (branch, tag or commit) for `from_pretrained`; None = main.
        self.revision = self.options.get("revision")

    def resolved_revision(self) -> str:
        """The manifest's record of what this generator's model resolved to (after loading)."""
        return model_revision(self.model, self.revision)

    def hub_kwargs(self) -> dict:
        return {"revision": self.revision} if self.revision and not is_path_like(self.model or "") else {}

    @classmethod
    def preflight(cls, target: TargetFormat, model: str | None, options: dict) -> None:
        """Cheap checks on the driver before any actor starts (no model loading)."""
        if target.modality not in cls.modalities:
            raise ConfigError(
                "generate.generator",
                f"{cls.name} makes {'/'.join(cls.modalities)} data, but data set {target.dataset} is {target.modality}",
            )
        if model or cls.default_model:
            check_model_ref(model or cls.default_model)

    def generate(self, batch: dict[str, np.ndarray]) -> list[np.ndarray]:
        raise NotImplementedError

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        samples = self.generate(batch)
        n = len(batch["prompt"])
        if len(samples) != n:
            raise RuntimeError(f"generator {self.name} returned {len(samples)} samples for {n} rows")
        out = {k: np.asarray(batch[k]) for k in INPUT_COLUMNS}
        out["data"] = np.array([encode_sample(s, self.target) for s in samples], dtype=object)
        out["generator"] = np.array([self.name] * n, dtype=object)
        return out
