"""Synthetic data generation as a Ray Data pipeline (GPT-FL section 3.2).

`ray.data.from_items(rows).map_batches(Gen, compute=ActorPoolStrategy(size=n), num_gpus=g)`
(DESIGN rule 7, Ray's own stable-diffusion batch-inference recipe) runs one generator over the
prompt rows; the driver groups the results into fixed shards and writes them as Parquet.

Determinism and resume: row i's seed is derived from (seed, i, prompt seed) and row i always
lands in shard i // shard_size, so the bytes do not depend on the number of actors or on batch
boundaries. Shards are written to a temporary name and renamed, and each one's sha256 goes into
`manifest.json` after the rename: a rerun keeps shards whose hash matches, deletes leftovers and
writes only the missing ones.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from gptfl_ray.errors import ConfigError, find_config_error
from gptfl_ray.ray_runtime import ensure_ray
from gptfl_ray.runio import atomic_write_bytes, atomic_write_json
from gptfl_ray.synth.config import GenerateConfig
from gptfl_ray.synth.generators import generator_class
from gptfl_ray.synth.generators.base import INPUT_COLUMNS, OUTPUT_COLUMNS, TargetFormat, derive_seed
from gptfl_ray.synth.store import MANIFEST, file_sha256, synth_dir

FORMAT_VERSION = 1


def shard_name(k: int) -> str:
    return f"shard-{k:05d}.parquet"


def plan_rows(prompt_rows: list[dict], seed: int) -> list[dict]:
    """Prompt rows -> generator input rows with a global index and a per-row generation seed."""
    return [
        {"row": i, "label": int(r["label"]), "label_name": r["label_name"], "prompt": r["prompt"],
         "guidance": float(r["guidance"]), "seed": derive_seed(seed, i, int(r["seed"]))}
        for i, r in enumerate(prompt_rows)
    ]


def make_plan(rows: list[dict], target: TargetFormat, class_names: Iterable[str], cfg: GenerateConfig) -> dict:
    """What determines the output bytes (not actors, GPUs, batch size or engine)."""
    digest = hashlib.sha256()
    for r in rows:
        digest.update(json.dumps([r[c] for c in INPUT_COLUMNS], ensure_ascii=False).encode())
    options = {k: v for k, v in cfg.generator_options().items() if k != "device"}
    plan = {
        "format": FORMAT_VERSION,
        "dataset": target.dataset,
        "class_names": list(class_names),
        "target": target.to_dict(),
        "generator": cfg.generator,
        "model": cfg.model,
        "options": options,
        "seed": cfg.seed,
        "shard_size": cfg.shard_size,
        "num_rows": len(rows),
        "num_shards": math.ceil(len(rows) / cfg.shard_size),
        "rows_sha256": digest.hexdigest(),
    }
    plan["plan_sha256"] = hashlib.sha256(json.dumps(plan, sort_keys=True).encode()).hexdigest()
    return plan


def shard_bytes(batch: dict[str, list]) -> bytes:
    """One shard as Parquet bytes; explicit schema and no pandas metadata keep them reproducible."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([("row", pa.int64()), ("data", pa.binary()), ("label", pa.int64()),
                        ("label_name", pa.string()), ("prompt", pa.string()), ("guidance", pa.float64()),
                        ("seed", pa.int64()), ("generator", pa.string())])
    table = pa.table({c: batch[c] for c in OUTPUT_COLUMNS}, schema=schema)
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    return buf.getvalue()


@dataclass
class ShardPlan:
    manifest: dict
    todo: list[int]  # shard ids still to write
    kept: int  # shards already complete and hash-checked


def prepare_output(run_dir: str | Path, plan: dict, overwrite: bool = False) -> ShardPlan:
    """Match the run directory against the plan: keep verified shards, clear everything else."""
    out = synth_dir(run_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / MANIFEST
    old: dict | None = None
    if path.is_file():
        try:
            old = json.loads(path.read_text("utf-8"))
        except json.JSONDecodeError:
            old = None  # an unreadable manifest vouches for nothing: regenerate
    if old is not None and old.get("plan_sha256") != plan["plan_sha256"] and not overwrite:
        raise ConfigError("--output-dir", f"{out} holds synthetic data from another config (data set, generator, "
                                          "model, seed or prompts differ); pass --overwrite or use a new run directory")
    keep: dict[int, dict] = {}
    if old is not None and not overwrite and old.get("plan_sha256") == plan["plan_sha256"]:
        for entry in old.get("shards", []):
            p = out / entry["file"]
            if p.is_file() and file_sha256(p) == entry["sha256"]:
                keep[int(entry["shard"])] = entry
    for p in out.iterdir():  # temp files of a killed run, stale or unverified shards
        if p.name.endswith(".tmp") or (p.suffix == ".parquet" and p.name not in {e["file"] for e in keep.values()}):
            p.unlink()
    manifest = {**plan, "shards": [keep[k] for k in sorted(keep)], "total_rows": 0, "complete": False}
    manifest["total_rows"] = sum(e["rows"] for e in manifest["shards"])
    atomic_write_json(path, manifest)
    todo = [k for k in range(plan["num_shards"]) if k not in keep]
    return ShardPlan(manifest, todo, len(keep))


class ShardWriter:
    """Collects generated rows by shard and writes each shard the moment it is whole."""

    def __init__(self, run_dir: str | Path, manifest: dict, on_shard: Callable[[int, int], None] | None = None):
        self.out = synth_dir(run_dir)
        self.manifest = manifest
        self.size = manifest["shard_size"]
        self.n = manifest["num_rows"]
        self.pending: dict[int, dict[int, dict]] = {}
        self.on_shard = on_shard
        self.written: list[int] = []

    def expected(self, k: int) -> int:
        return min(self.size, self.n - k * self.size)

    def add_batch(self, batch: dict[str, np.ndarray]) -> None:
        for i in range(len(batch["row"])):
            row = int(batch["row"][i])
            k = row // self.size
            self.pending.setdefault(k, {})[row] = {c: batch[c][i] for c in OUTPUT_COLUMNS}
            if len(self.pending[k]) == self.expected(k):
                self._write(k, self.pending.pop(k))

    def _write(self, k: int, rows: dict[int, dict]) -> None:
        ordered = [rows[r] for r in sorted(rows)]
        cols = {c: [_plain(r[c]) for r in ordered] for c in OUTPUT_COLUMNS}
        data = shard_bytes(cols)
        name = shard_name(k)
        atomic_write_bytes(self.out / name, data)  # tmp + fsync + rename
        entry = {"shard": k, "file": name, "rows": len(ordered), "sha256": hashlib.sha256(data).hexdigest()}
        shards = [e for e in self.manifest["shards"] if e["shard"] != k] + [entry]
        self.manifest["shards"] = sorted(shards, key=lambda e: e["shard"])
        self.manifest["total_rows"] = sum(e["rows"] for e in self.manifest["shards"])
        atomic_write_json(self.out / MANIFEST, self.manifest)  # only now does the shard count as done
        self.written.append(k)
        if self.on_shard:
            self.on_shard(k, len(ordered))

    def finish(self) -> dict:
        if self.pending:
            missing = sorted(self.pending)
            raise RuntimeError(f"generation ended with incomplete shards {missing[:5]}")
        done = {e["shard"] for e in self.manifest["shards"]}
        self.manifest["complete"] = done == set(range(self.manifest["num_shards"]))
        # One digest for the whole synthetic set: later stages key their caches on it.
        self.manifest["sha256"] = hashlib.sha256("".join(e["sha256"] for e in self.manifest["shards"]).encode()).hexdigest()
        atomic_write_json(self.out / MANIFEST, self.manifest)
        return self.manifest


def _plain(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    return v


def rows_of_shards(rows: list[dict], shards: list[int], size: int) -> list[dict]:
    return [r for k in shards for r in rows[k * size:(k + 1) * size]]


def run_local(rows: list[dict], target: TargetFormat, cfg: GenerateConfig, writer: ShardWriter) -> None:
    """The same generator in a plain loop: no Ray (tests, benchmark baseline, debugging)."""
    gen = generator_class(cfg.generator)(target.to_dict(), cfg.model, cfg.generator_options())
    for start in range(0, len(rows), cfg.batch_size):
        chunk = rows[start:start + cfg.batch_size]
        writer.add_batch(gen(to_batch(chunk)))


def to_batch(rows: list[dict]) -> dict[str, np.ndarray]:
    batch = {c: np.array([r[c] for r in rows]) for c in INPUT_COLUMNS}
    batch["prompt"] = np.array([r["prompt"] for r in rows], dtype=object)
    batch["label_name"] = np.array([r["label_name"] for r in rows], dtype=object)
    return batch


def generator_dataset(rows: list[dict], target: TargetFormat, cfg: GenerateConfig):
    """The lazy Ray Dataset: prompt rows -> actor pool of generators -> encoded samples."""
    import ray.data

    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False  # the CLI shows one rich bar over shards instead
    ctx.execution_options.verbose_progress = False
    blocks = max(1, min(len(rows), math.ceil(len(rows) / cfg.batch_size)))
    ds = ray.data.from_items(rows, override_num_blocks=blocks)
    return ds.map_batches(
        generator_class(cfg.generator),
        fn_constructor_kwargs={"target": target.to_dict(), "model": cfg.model, "options": cfg.generator_options()},
        compute=ray.data.ActorPoolStrategy(size=cfg.gen_actors),
        num_gpus=cfg.gen_gpus or None,
        batch_size=cfg.batch_size,
        batch_format="numpy",
    )


def run_ray(rows: list[dict], target: TargetFormat, cfg: GenerateConfig, writer: ShardWriter) -> None:
    import ray

    ensure_ray()  # our own loopback Ray unless RAY_ADDRESS names a cluster; reused when running
    ds = generator_dataset(rows, target, cfg)
    try:
        for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
            writer.add_batch(batch)
    except Exception as exc:  # noqa: BLE001 - re-raised unless it hides a ConfigError
        found = find_config_error(exc)
        if found is not None:
            raise found from None
        raise


def generate(prompt_rows: list[dict], target: TargetFormat, class_names: Iterable[str], cfg: GenerateConfig,
             run_dir: str | Path, on_shard: Callable[[int, int], None] | None = None,
             on_start: Callable[[int, int], None] | None = None) -> dict:
    """Generate (or finish generating) `<run_dir>/synthetic/` from prompt rows; returns the manifest.

    `on_start(total_shards, already_done)` and `on_shard(shard, rows)` drive a progress display.
    The returned dict adds `written_shards` and `seconds` to what manifest.json holds.
    """
    rows = plan_rows(prompt_rows, cfg.seed)
    cls = generator_class(cfg.generator)
    cls.preflight(target, cfg.model, cfg.generator_options())
    plan = make_plan(rows, target, class_names, cfg)
    state = prepare_output(run_dir, plan, overwrite=cfg.overwrite)
    if on_start:
        on_start(plan["num_shards"], state.kept)
    writer = ShardWriter(run_dir, state.manifest, on_shard)
    todo = rows_of_shards(rows, state.todo, cfg.shard_size)
    started = time.perf_counter()
    if todo:
        (run_local if cfg.engine == "local" else run_ray)(todo, target, cfg, writer)
    result = dict(writer.finish())
    result["written_shards"] = list(writer.written)  # for the caller; not stored in the manifest
    result["seconds"] = time.perf_counter() - started
    return result


def ensure_generated(cfg: GenerateConfig, dataset: Any, run_dir: str | Path,
                     progress: Callable[[int], None] | None = None) -> dict:
    """Generate `<run_dir>/synthetic/` from `<run_dir>/prompts/` unless it is already complete.

    The library entry point for composed methods (methods/gptfl.py): reads and checks the
    prompts, applies --per-class/--scale, and resumes or skips by the manifest. `progress(done)`
    gets the number of finished shards.
    """
    from gptfl_ray.synth.config import per_class_count
    from gptfl_ray.synth.prompts import read_prompts, take_per_class

    rows = read_prompts(run_dir, dataset)
    if cfg.per_class is not None or cfg.scale is not None:
        rows = take_per_class(rows, per_class_count(cfg.per_class, cfg.scale, len(dataset.x_train), dataset.num_classes))
    return generate_with_progress(rows, TargetFormat.from_dataset(dataset), dataset.class_names, cfg, run_dir, progress)


def generate_with_progress(rows: list[dict], target: TargetFormat, class_names: Iterable[str], cfg: GenerateConfig,
                           run_dir: str | Path, progress: Callable[[int], None] | None = None) -> dict:
    """`generate` reporting the number of finished shards (kept ones included) to `progress`."""
    done = [0]

    def started(total: int, kept: int) -> None:
        done[0] = kept
        if progress:
            progress(kept)

    def shard(k: int, n: int) -> None:
        done[0] += 1
        if progress:
            progress(done[0])

    return generate(rows, target, class_names, cfg, run_dir, on_shard=shard, on_start=started)