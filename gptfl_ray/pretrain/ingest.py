"""The synthetic Parquet shards as a Ray Dataset of prepared tensors (GPT-FL section 3.3 input).

`read_parquet(shards, columns=[data, label]) -> map_batches(decode_and_prepare)`: PNG/WAV bytes
are decoded to the data set's raw units and put through the data set's own front-end
(normalisation for images, FedAudio's log-mel for audio) inside Ray Data tasks, block by block,
so neither the driver nor a training worker ever holds the whole set. Ray Train's
`get_dataset_shard("train")` streams it to the workers.

The front-end is the data set's `prepare`, carried by a copy of the Dataset whose sample arrays
are empty (shapes and statistics kept): a task ships kilobytes, not the real training set.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from gptfl_ray.synth.format import TargetFormat, decode_sample
from gptfl_ray.synth.store import check_manifest_matches, read_manifest, shard_paths


def light_dataset(dataset: Any) -> Any:
    """The Dataset with every sample array cut to zero rows (its `prepare` still works)."""
    if not dataclasses.is_dataclass(dataset):
        return dataset
    empty = {
        f.name: getattr(dataset, f.name)[:0]
        for f in dataclasses.fields(dataset)
        if isinstance(getattr(dataset, f.name), np.ndarray)
    }
    return dataclasses.replace(dataset, **empty)


def decode_and_prepare(batch: dict[str, np.ndarray], target: dict, dataset: Any) -> dict[str, np.ndarray]:
    """One block: encoded bytes -> raw samples -> prepared float32 model input."""
    fmt = TargetFormat.from_dict(target)
    raw = np.stack([decode_sample(bytes(b), fmt) for b in batch["data"]])
    return {
        "x": np.ascontiguousarray(dataset.prepare(raw), dtype=np.float32),
        "y": np.asarray(batch["label"], np.int64),
    }


def synthetic_train_dataset(run_dir: str | Path, dataset: Any, rows_per_block: int | None = None):
    """The verified shards of `<run_dir>/synthetic/` as a lazy Ray Dataset with columns x, y."""
    import ray.data

    from gptfl_ray.ray_runtime import quiet_ray_logs

    quiet_ray_logs()
    manifest = read_manifest(run_dir)
    check_manifest_matches(manifest, dataset)
    paths = [str(p) for p in shard_paths(run_dir, manifest)]
    ds = ray.data.read_parquet(paths, columns=["data", "label"], override_num_blocks=len(paths))
    return ds.map_batches(
        decode_and_prepare,
        batch_format="numpy",
        batch_size=rows_per_block,
        fn_kwargs={"target": TargetFormat.from_dataset(dataset).to_dict(), "dataset": light_dataset(dataset)},
    )


def num_synthetic_rows(run_dir: str | Path) -> int:
    return int(read_manifest(run_dir)["total_rows"])
