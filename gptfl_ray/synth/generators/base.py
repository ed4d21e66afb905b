"""What every generator shares (GPT-FL section 3.2): the target format and the batch contract.

A generator is a callable class (docs/architecture.md rule 7): it loads its model once in `__init__` and maps
a batch of prompt rows to a batch of encoded samples in `__call__`, so the same object runs in a
plain loop or inside `ds.map_batches(Gen, compute=ActorPoolStrategy(...))`. Subclasses only
implement `generate(batch) -> raw samples in the data set's own units`; encoding to PNG/WAV bytes
happens here so the bytes that leave an actor are compact.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from gptfl_ray.errors import ConfigError as _BaseConfigError


class ConfigError(_BaseConfigError):
    """A ConfigError that survives pickling: generators raise inside Ray actors, and Ray ships
    the exception to the driver (the base class's two-argument __init__ breaks the default
    exception pickling, so the driver would see an UnserializableException instead)."""

    def __reduce__(self):
        return (self.__class__, (self.subject, self.problem))


# Columns a prompt row carries into a generator batch.
INPUT_COLUMNS = ("row", "label", "label_name", "prompt", "guidance", "seed")
# Columns a generator returns (and the Parquet shards hold).
OUTPUT_COLUMNS = ("row", "data", "label", "label_name", "prompt", "guidance", "seed", "generator")

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


def row_rng(seed: int) -> np.random.Generator:
    """Every random choice for one row comes from that row's seed alone (independent of batch)."""
    return np.random.default_rng(np.uint64(int(seed) & 0xFFFFFFFFFFFFFFFF))


def derive_seed(*parts: int) -> int:
    """A 63-bit seed from integers; stable across processes and platforms (no Python hash())."""
    state = np.random.SeedSequence([int(p) & 0xFFFFFFFF for p in parts] + [len(parts)])
    hi, lo = state.generate_state(2, np.uint32)
    return int((int(hi) << 32 | int(lo)) & 0x7FFFFFFFFFFFFFFF)


def is_path_like(ref: str) -> bool:
    """A model reference the user meant as a local path rather than a hub id."""
    # Hub ids are "name" or "org/name"; anything rooted, relative-dotted or deeper is a path.
    return ref.startswith(("/", "./", "../", "~", ".\\")) or ref.count("/") > 1 or Path(ref).exists()


def check_model_ref(ref: str, option: str = "--model") -> str:
    """Fail before any work starts when a path-like model reference does not exist."""
    if not ref or not ref.strip():
        raise ConfigError(option, "is empty; give a hub id or a local path")
    expanded = os.path.expanduser(ref)
    if is_path_like(ref) and not Path(expanded).exists():
        raise ConfigError(option, f"model path {ref} does not exist")
    return expanded if Path(expanded).exists() else ref


def quiet_hf() -> None:
    """No per-file loading bars from inside actors: the CLI shows one bar over shards."""
    for name in ("transformers", "diffusers"):
        try:
            __import__(f"{name}.utils.logging", fromlist=["disable_progress_bar"]).disable_progress_bar()
        except ImportError:
            pass


def model_revision(ref: str | None, revision: str | None = None) -> str:
    """What a model reference resolved to, for the manifest: a hub commit or a local content hash.

    Hub ids: the commit that `from_pretrained` read, from the Hugging Face cache's
    `refs/<revision>` file (written by the download, readable offline). Local paths:
    `local:sha256:<digest>` over the files' names and bytes; files over 64 MiB contribute their
    size and first and last MiB, so a multi-GB checkpoint is not read twice.
    """
    if not ref:
        return "none"
    expanded = Path(os.path.expanduser(ref))
    if expanded.exists():
        return "local:sha256:" + _tree_digest(expanded)
    if revision and len(revision) == 40 and all(c in "0123456789abcdef" for c in revision.lower()):
        return revision.lower()
    try:
        from huggingface_hub import constants

        for kind in ("models", "datasets"):
            refs = Path(constants.HF_HUB_CACHE) / f"{kind}--{ref.replace('/', '--')}" / "refs" / (revision or "main")
            if refs.is_file():
                return refs.read_text().strip()
    except ImportError:
        pass
    return f"unresolved:{revision or 'main'}"


def _tree_digest(root: Path, big: int = 64 << 20) -> str:
    h = hashlib.sha256()
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    for p in files:
        h.update(str(p.relative_to(root) if p != root else p.name).encode() + b"\0")
        size = p.stat().st_size
        h.update(str(size).encode() + b"\0")
        with open(p, "rb") as fh:
            if size <= big:
                h.update(fh.read())
            else:
                h.update(fh.read(1 << 20))
                fh.seek(size - (1 << 20))
                h.update(fh.read())
    return h.hexdigest()


def load_model(loader: Callable[[str], Any], ref: str, option: str = "--model") -> Any:
    """Call a `from_pretrained`-style loader; turn hub/OS errors into one ConfigError line."""
    ref = check_model_ref(ref, option)
    quiet_hf()
    try:
        return loader(ref)
    except (OSError, ValueError) as exc:  # hub offline, bad repo id, bad files
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(option, f"cannot load model {ref!r}: {first[:200]}") from None


class Generator:
    """Base callable class; subclasses set `name`, `modalities` and implement `generate`."""

    name: ClassVar[str] = "base"
    modalities: ClassVar[tuple[str, ...]] = ("image", "audio")
    default_model: ClassVar[str | None] = None

    def __init__(self, target: dict | TargetFormat, model: str | None = None, options: dict | None = None):
        self.target = target if isinstance(target, TargetFormat) else TargetFormat.from_dict(target)
        if self.target.modality not in self.modalities:
            raise ConfigError(
                "--generator",
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
                "--generator",
                f"{cls.name} makes {'/'.join(cls.modalities)} data, but data set {target.dataset} is {target.modality}",
            )
        if model or cls.default_model:
            check_model_ref(model or cls.default_model)

    def generate(self, batch: dict[str, np.ndarray]) -> list[np.ndarray]:
        raise NotImplementedError

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from gptfl_ray.synth.store import encode_sample

        samples = self.generate(batch)
        n = len(batch["prompt"])
        if len(samples) != n:
            raise RuntimeError(f"generator {self.name} returned {len(samples)} samples for {n} rows")
        out = {k: np.asarray(batch[k]) for k in INPUT_COLUMNS}
        out["data"] = np.array([encode_sample(s, self.target) for s in samples], dtype=object)
        out["generator"] = np.array([self.name] * n, dtype=object)
        return out


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def torch_device(option: str = "auto"):
    """`auto`: the first visible GPU with fp16 (as the paper ran Stable Diffusion), else CPU fp32."""
    import torch

    if option == "auto":
        option = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.float16 if option.startswith("cuda") else torch.float32
    return torch.device(option), dtype


def fit_clip(wave: np.ndarray, sr: int, target: TargetFormat, clip_seconds: float) -> np.ndarray:
    """Resample to the target rate and centre-pad/centre-crop to the clip length.

    Keyword clips hold the word near the middle, so centring keeps a short utterance where the
    real data have it and cuts a long one evenly at both ends.
    """
    from gptfl_ray.synth.store import resample

    wave = resample(np.asarray(wave, np.float32).reshape(-1), sr, target.sample_rate)
    length = int(target.shape[-1]) if target.shape else int(round(clip_seconds * target.sample_rate))
    if len(wave) >= length:
        start = (len(wave) - length) // 2
        return wave[start : start + length]
    left = (length - len(wave)) // 2
    return np.pad(wave, (left, length - len(wave) - left))
