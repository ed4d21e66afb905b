"""The Ray Data generation pipeline: fixed shards, byte-identical output, resume, store readers."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gptfl_ray.errors import ConfigError
from gptfl_ray.synth.config import GenerateConfig, PromptsConfig
from gptfl_ray.synth.format import TargetFormat
from gptfl_ray.synth.pipeline import ensure_generated, generate, plan_rows
from gptfl_ray.synth.prompts import build_prompts, ensure_prompts
from gptfl_ray.synth.store import (
    SyntheticTorchDataset,
    load_synthetic,
    read_manifest,
    synth_dir,
    synthetic_ray_dataset,
)

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def ray_local():
    import ray

    if ray.is_initialized():  # someone else's runtime in this process: use it, leave it
        yield ray
        return
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def digit_rows(digits):
    return build_prompts(digits, PromptsConfig(per_class=7, seed=1))  # 70 rows


def _run(rows, digits, run_dir, **kw):
    cfg = GenerateConfig(**{"shard_size": 16, "batch_size": 5, **kw})
    return generate(rows, TargetFormat.from_dataset(digits), digits.class_names, cfg, run_dir)


def _shard_hashes(run_dir):
    return {e["file"]: e["sha256"] for e in read_manifest(run_dir)["shards"]}


def test_two_actors_write_fixed_shards_byte_identical_to_a_plain_loop(ray_local, digits, digit_rows, tmp_path):
    two = _run(digit_rows, digits, tmp_path / "ray2", gen_actors=2)
    assert two["complete"] and two["num_shards"] == 5 and two["total_rows"] == 70
    assert [e["rows"] for e in two["shards"]] == [16, 16, 16, 16, 6]  # shard = row // 16
    assert sorted(two["written_shards"]) == [0, 1, 2, 3, 4]
    local = _run(digit_rows, digits, tmp_path / "local", engine="local", batch_size=70)
    # same seed -> same bytes, whatever the actor count or batch size
    assert _shard_hashes(tmp_path / "ray2") == _shard_hashes(tmp_path / "local")
    for name in _shard_hashes(tmp_path / "ray2"):
        assert (synth_dir(tmp_path / "ray2") / name).read_bytes() == (synth_dir(tmp_path / "local") / name).read_bytes()
    assert two["sha256"] == local["sha256"]
    other = _run(digit_rows[:16], digits, tmp_path / "seed2", engine="local", seed=2)
    assert other["shards"][0]["sha256"] != two["shards"][0]["sha256"]


def test_resume_writes_only_missing_or_broken_shards(ray_local, digits, digit_rows, tmp_path):
    run = tmp_path / "run"
    first = _run(digit_rows, digits, run, gen_actors=2)
    out = synth_dir(run)
    # a "killed" run: one shard gone, one half-written temp file left behind, one shard truncated
    (out / "shard-00001.parquet").unlink()
    (out / ".shard-00002.parquet.x1y2.tmp").write_bytes(b"PAR1 half")
    (out / "shard-00003.parquet").write_bytes((out / "shard-00003.parquet").read_bytes()[:100])
    again = _run(digit_rows, digits, run, gen_actors=2)
    assert sorted(again["written_shards"]) == [1, 3]
    assert not list(out.glob("*.tmp")) and not list(out.glob(".*.tmp"))
    assert again["sha256"] == first["sha256"] and _shard_hashes(run) == {
        e["file"]: e["sha256"] for e in first["shards"]
    }
    assert _run(digit_rows, digits, run, gen_actors=1)["written_shards"] == []  # complete: nothing to do
    with pytest.raises(ConfigError) as err:  # another seed would mix two generations
        _run(digit_rows, digits, run, seed=5)
    assert err.value.subject == "output_dir"


def test_store_reads_back_raw_arrays_torch_and_ray(ray_local, digits, tmp_path, pets):
    ensure_prompts(PromptsConfig(per_class=3), digits, tmp_path)
    manifest = ensure_generated(GenerateConfig(shard_size=8, gen_actors=1), digits, tmp_path)
    assert manifest["total_rows"] == 30
    x, y = load_synthetic(tmp_path, digits)
    assert x.shape == (30, 1, 8, 8) and x.dtype == np.uint8 and x.max() <= 16
    assert np.array_equal(np.bincount(y), [3] * 10)
    tds = SyntheticTorchDataset(tmp_path, digits)
    xt, yt = tds[0]
    assert len(tds) == 30 and tuple(xt.shape) == (1, 8, 8) and yt == int(y[0])
    rds = synthetic_ray_dataset(tmp_path, digits)
    assert rds.count() == 30 and set(rds.columns()) >= {"data", "label", "prompt", "guidance", "seed", "generator"}
    with pytest.raises(ConfigError):  # synthetic digits are no pets
        load_synthetic(tmp_path, pets)
    manifest_file = synth_dir(tmp_path) / "manifest.json"
    m = json.loads(manifest_file.read_text())
    m["shards"][0]["sha256"] = "0" * 64
    manifest_file.write_text(json.dumps(m))
    with pytest.raises(ConfigError):  # a shard that does not match its manifest hash is refused
        load_synthetic(tmp_path, digits)


def test_tiny_stable_diffusion_through_the_actor_pool(ray_local, digits, tiny_sd, tmp_path):
    """A model loaded by path inside an actor; output equals the plain loop's."""
    rows = build_prompts(digits, PromptsConfig(per_class=1, seed=4))[:4]
    kw = {
        "generator": "diffusers",
        "model": str(tiny_sd),
        "steps": 2,
        "height": 16,
        "width": 16,
        "shard_size": 2,
        "batch_size": 1,
    }
    ray_run = _run(rows, digits, tmp_path / "ray", gen_actors=1, **kw)
    local_run = _run(rows, digits, tmp_path / "local", engine="local", **kw)
    assert ray_run["sha256"] == local_run["sha256"] and ray_run["total_rows"] == 4
    x, _ = load_synthetic(tmp_path / "ray", digits)
    assert x.shape == (4, 1, 8, 8)
    # the manifest names the model and what it resolved to (a local path: a content hash)
    rev = ray_run["model_revision"]
    assert rev.startswith("local:sha256:") and all(e["model_revision"] == rev for e in ray_run["shards"])


def test_actors_write_the_shards_the_driver_sees_only_entries(ray_local, digits, digit_rows, tmp_path):
    from gptfl_ray.synth.pipeline import ShardWriter, generator_dataset, make_plan, prepare_output, shard_tasks

    target = TargetFormat.from_dataset(digits)
    cfg = GenerateConfig(shard_size=16, batch_size=5)
    rows = plan_rows(digit_rows, 0)
    state = prepare_output(tmp_path, make_plan(rows, target, digits.class_names, cfg))
    ds = generator_dataset(shard_tasks(rows, state.todo, 16), target, cfg, ShardWriter(tmp_path, state.manifest))
    batches = list(ds.iter_batches(batch_size=None, batch_format="numpy"))
    entries = [json.loads(str(e)) for b in batches for e in b["entry"]]
    assert all(set(b) == {"entry"} for b in batches)  # no sample bytes come back to the driver
    assert sorted(e["shard"] for e in entries) == [0, 1, 2, 3, 4]
    for e in entries:  # each file is already on disk, written by the actor, with the hash it reports
        from gptfl_ray.synth.store import file_sha256

        assert file_sha256(synth_dir(tmp_path) / e["file"]) == e["sha256"] and e["model_revision"] == "builtin"


def test_a_run_refuses_to_mix_shards_of_two_model_revisions(digits, digit_rows, tmp_path):
    run = tmp_path / "run"
    _run(digit_rows, digits, run, engine="local")
    manifest_file = synth_dir(run) / "manifest.json"
    m = json.loads(manifest_file.read_text())
    for e in m["shards"]:  # as if an earlier run had loaded another commit of the model
        e["model_revision"] = "0" * 40
    manifest_file.write_text(json.dumps(m))
    (synth_dir(run) / "shard-00004.parquet").unlink()
    with pytest.raises(ConfigError) as err:
        _run(digit_rows, digits, run, engine="local")
    assert err.value.subject == "generate.model" and "0" * 40 in str(err.value) and "builtin" in str(err.value)
    assert "shard-00004.parquet" not in {e["file"] for e in json.loads(manifest_file.read_text())["shards"]}


def test_config_error_raised_inside_an_actor_reaches_the_driver_as_one(ray_local, digits, tmp_path):
    """E.g. a model directory that exists but will not load: the actor's ConfigError comes back.

    Cheaply provoked here: the glyph generator refuses an audio target in its constructor
    (the driver-side preflight that would catch it first is skipped on purpose).
    """
    from gptfl_ray.synth.pipeline import ShardWriter, make_plan, prepare_output, run_ray, shard_tasks

    rows = plan_rows(build_prompts(digits, PromptsConfig(per_class=1))[:2], 0)
    audio = TargetFormat("speechcommands", "audio", (16000,), 1.0)
    cfg = GenerateConfig(gen_actors=1)
    plan = make_plan(rows, audio, ["yes"], cfg)
    writer = ShardWriter(tmp_path, prepare_output(tmp_path, plan).manifest)
    with pytest.raises(ConfigError) as err:
        run_ray(shard_tasks(rows, [0], cfg.shard_size), audio, cfg, writer)
    assert err.value.subject == "generate.generator" and "audio" in str(err.value)
