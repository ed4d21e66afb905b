"""Synthetic data generation as a Ray Data pipeline (GPT-FL section 3.2).

`ray.data.from_items(shard tasks).map_batches(ShardMaker, compute=ActorPoolStrategy(size=n),
num_gpus=g)` (docs/architecture.md rule 7, Ray's own stable-diffusion batch-inference recipe): one input row
is one shard's prompt rows; the actor generates them in `batch_size` chunks (the GPU batch),
encodes, writes the shard's Parquet file itself and returns only its manifest entry (file,
rows, sha256, model revision). No generated sample passes through the driver; the output
directory must therefore be storage every node sees (one machine, or a shared file system).

Determinism and resume: row i's seed is derived from (seed, i, prompt seed) and row i always
lands in shard i // shard_size, so the bytes do not depend on the number of actors or on batch
boundaries (batching is per guidance scale inside a chunk and each row keeps its own
generator; see the generators). Shards are written to a temporary name and renamed, and each
one's sha256 goes into `manifest.json` after the rename: a rerun keeps shards whose hash
matches, deletes leftovers and writes only the missing ones. Every shard records the model
revision its actor loaded, and a run refuses to add shards made by another revision.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gptfl_ray.errors import ConfigError, find_config_error
from gptfl_ray.faults import fault_point
from gptfl_ray.ray_runtime import ensure_ray
from gptfl_ray.runio import atomic_write_bytes, atomic_write_json
from gptfl_ray.seeding import derive_seed
from gptfl_ray.synth.config import GenerateConfig
from gptfl_ray.synth.format import TargetFormat
from gptfl_ray.synth.generators import generator_class
from gptfl_ray.synth.generators.base import INPUT_COLUMNS, OUTPUT_COLUMNS
from gptfl_ray.synth.store import MANIFEST, file_sha256, synth_dir

FORMAT_VERSION = 2  # 2: shards written by actors, model revision per shard


def shard_name(k: int) -> str:
    return f"shard-{k:05d}.parquet"


def plan_rows(prompt_rows: list[dict], seed: int) -> list[dict]:
    """Prompt rows -> generator input rows with a global index and a per-row generation seed."""
    return [
        {
            "row": i,
            "label": int(r["label"]),
            "label_name": r["label_name"],
            "prompt": r["prompt"],
            "guidance": float(r["guidance"]),
            "seed": derive_seed(seed, i, int(r["seed"])),
        }
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

    schema = pa.schema(
        [
            ("row", pa.int64()),
            ("data", pa.binary()),
            ("label", pa.int64()),
            ("label_name", pa.string()),
            ("prompt", pa.string()),
            ("guidance", pa.float64()),
            ("seed", pa.int64()),
            ("generator", pa.string()),
        ]
    )
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
        raise ConfigError(
            "output_dir",
            f"{out} holds synthetic data from another config (data set, generator, "
            "model, seed or prompts differ); pass `overwrite` or use a new run directory",
        )
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
    revisions = {e.get("model_revision") for e in manifest["shards"]}
    manifest["model_revision"] = revisions.pop() if len(revisions) == 1 else None
    atomic_write_json(path, manifest)
    todo = [k for k in range(plan["num_shards"]) if k not in keep]
    return ShardPlan(manifest, todo, len(keep))


def shard_tasks(rows: list[dict], shards: list[int], size: int) -> list[dict]:
    """One Ray Data row per shard still to write: its id and its prompt rows as JSON text."""
    return [{"shard": k, "rows": json.dumps(rows[k * size : (k + 1) * size], ensure_ascii=False)} for k in shards]


class ShardMaker:
    """The actor body: a generator loaded once, turning shard tasks into written shard files.

    Returns one JSON manifest entry per shard; the driver never sees the samples.
    """

    def __init__(self, generator: str, target: dict, model: str | None, options: dict, out_dir: str, batch_size: int):
        self.gen = generator_class(generator)(target, model, options)
        self.revision = self.gen.resolved_revision()
        self.model = self.gen.model
        self.out = Path(out_dir)
        self.batch_size = int(batch_size)

    def make(self, k: int, rows: list[dict]) -> dict:
        cols: dict[str, list] = {c: [] for c in OUTPUT_COLUMNS}
        for start in range(0, len(rows), self.batch_size):
            out = self.gen(to_batch(rows[start : start + self.batch_size]))
            for c in OUTPUT_COLUMNS:
                cols[c].extend(_plain(v) for v in out[c])
        data = shard_bytes(cols)
        name = shard_name(k)
        atomic_write_bytes(self.out / name, data)  # tmp + fsync + rename, before the entry exists
        return {
            "shard": int(k),
            "file": name,
            "rows": len(rows),
            "sha256": hashlib.sha256(data).hexdigest(),
            "model": self.model,
            "model_revision": self.revision,
        }

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        entries = [self.make(int(k), json.loads(str(r))) for k, r in zip(batch["shard"], batch["rows"])]
        return {"entry": np.array([json.dumps(e) for e in entries], dtype=object)}


class ShardWriter:
    """The driver's side: records each finished shard's entry in the manifest (nothing else)."""

    def __init__(self, run_dir: str | Path, manifest: dict, on_shard: Callable[[int, int], None] | None = None):
        self.out = synth_dir(run_dir)
        self.manifest = manifest
        self.on_shard = on_shard
        self.written: list[int] = []

    def add_entry(self, entry: dict) -> None:
        have = self.manifest.get("model_revision")
        if have is not None and entry["model_revision"] != have:
            raise ConfigError(
                "generate.model",
                f"{self.out} holds shards made by {entry['model']} at revision {have}, "
                f"but this run loaded revision {entry['model_revision']}; a data set mixing "
                "two model versions is refused: pass `overwrite` or pin `generate.revision`",
            )
        self.manifest["model_revision"] = entry["model_revision"]
        k = entry["shard"]
        shards = [e for e in self.manifest["shards"] if e["shard"] != k] + [entry]
        self.manifest["shards"] = sorted(shards, key=lambda e: e["shard"])
        self.manifest["total_rows"] = sum(e["rows"] for e in self.manifest["shards"])
        atomic_write_json(self.out / MANIFEST, self.manifest)  # only now does the shard count as done
        fault_point("shard")
        self.written.append(k)
        if self.on_shard:
            self.on_shard(k, entry["rows"])

    def finish(self) -> dict:
        done = {e["shard"] for e in self.manifest["shards"]}
        self.manifest["complete"] = done == set(range(self.manifest["num_shards"]))
        # One digest for the whole synthetic set: later stages key their caches on it.
        self.manifest["sha256"] = hashlib.sha256(
            "".join(e["sha256"] for e in self.manifest["shards"]).encode()
        ).hexdigest()
        atomic_write_json(self.out / MANIFEST, self.manifest)
        return self.manifest


def _plain(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    return v


def _maker_kwargs(target: TargetFormat, cfg: GenerateConfig, writer: ShardWriter) -> dict:
    return {
        "generator": cfg.generator,
        "target": target.to_dict(),
        "model": cfg.model,
        "options": cfg.generator_options(),
        "out_dir": str(writer.out.resolve()),
        "batch_size": cfg.batch_size,
    }


def run_local(tasks: list[dict], target: TargetFormat, cfg: GenerateConfig, writer: ShardWriter) -> None:
    """The same shard maker in a plain loop: no Ray (tests, benchmark baseline, debugging)."""
    maker = ShardMaker(**_maker_kwargs(target, cfg, writer))
    for t in tasks:
        writer.add_entry(maker.make(t["shard"], json.loads(t["rows"])))


def to_batch(rows: list[dict]) -> dict[str, np.ndarray]:
    batch = {c: np.array([r[c] for r in rows]) for c in INPUT_COLUMNS}
    batch["prompt"] = np.array([r["prompt"] for r in rows], dtype=object)
    batch["label_name"] = np.array([r["label_name"] for r in rows], dtype=object)
    return batch


def generator_dataset(tasks: list[dict], target: TargetFormat, cfg: GenerateConfig, writer: ShardWriter):
    """The lazy Ray Dataset: shard tasks -> actor pool of shard makers -> manifest entries."""
    import ray.data

    from gptfl_ray.ray_runtime import quiet_ray_logs

    quiet_ray_logs()
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False  # the CLI shows one rich bar over shards instead
    ctx.execution_options.verbose_progress = False
    ds = ray.data.from_items(tasks, override_num_blocks=max(1, len(tasks)))
    return ds.map_batches(
        ShardMaker,
        fn_constructor_kwargs=_maker_kwargs(target, cfg, writer),
        # no more actors than shards: each one loads the model
        compute=ray.data.ActorPoolStrategy(size=max(1, min(cfg.gen_actors, len(tasks)))),
        num_gpus=cfg.gen_gpus or None,
        batch_size=1,
        batch_format="numpy",
    )


def run_ray(tasks: list[dict], target: TargetFormat, cfg: GenerateConfig, writer: ShardWriter) -> None:
    ensure_ray()  # our own loopback Ray unless RAY_ADDRESS names a cluster; reused when running
    ds = generator_dataset(tasks, target, cfg, writer)
    try:
        for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
            for entry in batch["entry"]:
                writer.add_entry(json.loads(str(entry)))
    except Exception as exc:  # noqa: BLE001 - re-raised unless it hides a ConfigError
        found = find_config_error(exc)
        if found is not None:
            raise found from None
        raise


def generate(
    prompt_rows: list[dict],
    target: TargetFormat,
    class_names: Iterable[str],
    cfg: GenerateConfig,
    run_dir: str | Path,
    on_shard: Callable[[int, int], None] | None = None,
    on_start: Callable[[int, int], None] | None = None,
) -> dict:
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
    tasks = shard_tasks(rows, state.todo, cfg.shard_size)
    started = time.perf_counter()
    if tasks:
        (run_local if cfg.engine == "local" else run_ray)(tasks, target, cfg, writer)
    result = dict(writer.finish())
    result["written_shards"] = list(writer.written)  # for the caller; not stored in the manifest
    result["seconds"] = time.perf_counter() - started
    return result


def ensure_generated(
    cfg: GenerateConfig, dataset: Any, run_dir: str | Path, progress: Callable[[int], None] | None = None
) -> dict:
    """Generate `<run_dir>/synthetic/` from `<run_dir>/prompts/` unless it is already complete.

    The library entry point for composed methods (methods/gptfl.py): reads and checks the
    prompts, applies --per-class/--scale, and resumes or skips by the manifest. `progress(done)`
    gets the number of finished shards.
    """
    from gptfl_ray.synth.config import per_class_count
    from gptfl_ray.synth.prompts import read_prompts, take_per_class

    rows = read_prompts(run_dir, dataset)
    if cfg.per_class is not None or cfg.scale is not None:
        rows = take_per_class(
            rows, per_class_count(cfg.per_class, cfg.scale, len(dataset.x_train), dataset.num_classes)
        )
    return generate_with_progress(rows, TargetFormat.from_dataset(dataset), dataset.class_names, cfg, run_dir, progress)


def generate_with_progress(
    rows: list[dict],
    target: TargetFormat,
    class_names: Iterable[str],
    cfg: GenerateConfig,
    run_dir: str | Path,
    progress: Callable[[int], None] | None = None,
) -> dict:
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
