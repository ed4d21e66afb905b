"""The synthetic data set on disk and back (GPT-FL section 3.3 trains on what this reads).

`<run>/synthetic/` holds Parquet shards (columns: row, data, label, label_name, prompt, guidance,
seed, generator) and `manifest.json`. `data` is encoded bytes: PNG for images (for digits the
8x8 0..16 array itself), float WAV for audio. Readers give the samples back in the data set's
own raw format, so pretraining treats synthetic and real samples alike: as numpy arrays
(`load_synthetic`), a torch Dataset (`SyntheticTorchDataset`) or a Ray Dataset
(`synthetic_ray_dataset`).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from gptfl_ray.errors import ConfigError
from gptfl_ray.synth.format import TargetFormat, decode_sample

SYNTH_DIR = "synthetic"
MANIFEST = "manifest.json"


# ---------------------------------------------------------------------------------- reading


def synth_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / SYNTH_DIR


def read_manifest(run_dir: str | Path) -> dict[str, Any]:
    path = synth_dir(run_dir) / MANIFEST
    if not path.is_file():
        raise ConfigError("output_dir", f"{path} does not exist; run `gptfl-ray generate` first")
    try:
        return json.loads(path.read_text("utf-8"))
    except json.JSONDecodeError as exc:
        raise ConfigError(str(path), f"is not valid JSON ({exc.msg})") from None


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def check_manifest_matches(manifest: dict, dataset: Any) -> None:
    if manifest.get("dataset") != dataset.name:
        raise ConfigError(
            "data.dataset", f"synthetic data were made for {manifest.get('dataset')!r}, not {dataset.name!r}"
        )
    if tuple(manifest.get("class_names", ())) != tuple(dataset.class_names):
        raise ConfigError("data.dataset", f"synthetic data's class names differ from {dataset.name}'s")


def shard_paths(run_dir: str | Path, manifest: dict | None = None, verify: bool = True) -> list[Path]:
    """Shard files of a complete generation, in shard order, hash-checked against the manifest."""
    manifest = manifest or read_manifest(run_dir)
    if not manifest.get("complete"):
        raise ConfigError("output_dir", f"{synth_dir(run_dir)} is incomplete; rerun `gptfl-ray generate` to resume")
    paths = []
    for entry in manifest["shards"]:
        path = synth_dir(run_dir) / entry["file"]
        if not path.is_file() or (verify and file_sha256(path) != entry["sha256"]):
            raise ConfigError(str(path), "is missing or does not match manifest.json; rerun `gptfl-ray generate`")
        paths.append(path)
    return paths


def read_table(run_dir: str | Path, manifest: dict | None = None):
    import pyarrow as pa
    import pyarrow.parquet as pq

    paths = shard_paths(run_dir, manifest)
    if not paths:
        return None
    table = pa.concat_tables([pq.read_table(p) for p in paths])
    return table.sort_by("row")


def load_synthetic(run_dir: str | Path, dataset: Any) -> tuple[np.ndarray, np.ndarray]:
    """(x_raw, y) in `dataset`'s raw format: digits uint8 (N,1,8,8) 0..16, images uint8 NCHW, audio (N,T)."""
    manifest = read_manifest(run_dir)
    check_manifest_matches(manifest, dataset)
    target = TargetFormat.from_dataset(dataset)
    table = read_table(run_dir, manifest)
    if table is None or table.num_rows == 0:
        empty = np.zeros((0, *target.shape), np.float32 if target.modality == "audio" else np.uint8)
        return empty, np.zeros(0, np.int64)
    x = np.stack([decode_sample(b, target) for b in table.column("data").to_pylist()])
    y = np.asarray(table.column("label").to_numpy(), np.int64)
    return x, y


class SyntheticTorchDataset:
    """A map-style torch Dataset of `(prepared float tensor, label)` pairs (decoded once)."""

    def __init__(self, run_dir: str | Path, dataset: Any, prepare: bool = True):
        self.x, self.y = load_synthetic(run_dir, dataset)
        self._prepare = dataset.prepare if prepare else (lambda a: a)

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int):
        import torch

        x = self._prepare(self.x[i : i + 1])[0]
        return torch.as_tensor(np.asarray(x)), int(self.y[i])


def synthetic_ray_dataset(run_dir: str | Path, dataset: Any | None = None):
    """The shards as a Ray Dataset (encoded `data` column), for Ray Train's streaming ingest."""
    import ray.data

    from gptfl_ray.ray_runtime import quiet_ray_logs

    quiet_ray_logs()
    manifest = read_manifest(run_dir)
    if dataset is not None:
        check_manifest_matches(manifest, dataset)
    return ray.data.read_parquet([str(p) for p in shard_paths(run_dir, manifest)])
