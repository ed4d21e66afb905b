"""Pre-training fed by Ray Data from the synthetic shards (GPT-FL section 3.3).

Checked: the Ray Data-fed Ray Train path and the in-process path read the same shards and
learn; decoding and the front-end run in Ray Data (a worker sees prepared float batches, never
the encoded set); checkpoints are kept to one; an interrupted run resumes from its last
checkpoint and ends on exactly the uninterrupted weights; progress comes from the reports; a
second worker trains but only rank 0 evaluates. Ray runs with logical GPUs to check that a
GPU request of the generator actors schedules (no device is used; a GPU trainer needs CUDA for NCCL).
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from gptfl_ray.pretrain.config import PretrainConfig
from gptfl_ray.synth.config import GenerateConfig, PromptsConfig

pytestmark = pytest.mark.ray
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")


@pytest.fixture(scope="module")
def ray_local():
    import ray

    if ray.is_initialized():
        ray.shutdown()
    # num_gpus=1: a logical GPU, so a --train-gpus request is scheduled like on a GPU node
    # 3 logical CPUs: two training workers and one for Ray Data's decoding tasks
    ray.init(address="local", num_cpus=3, num_gpus=1, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def digits():
    from gptfl_ray.data.registry import load_dataset

    return load_dataset("digits")


@pytest.fixture(scope="module")
def synth_run(digits, tmp_path_factory):
    from gptfl_ray.synth.pipeline import ensure_generated
    from gptfl_ray.synth.prompts import ensure_prompts

    run = tmp_path_factory.mktemp("run")
    ensure_prompts(PromptsConfig(per_class=12, seed=2), digits, run)
    ensure_generated(GenerateConfig(shard_size=32, engine="local"), digits, run)  # 120 rows, 4 shards
    return run


def _factory(digits):
    from gptfl_ray.models.factory import ModelFactory

    return ModelFactory("mlp", digits.input_shape, digits.num_classes, "default", seed=0)


def _weights(path):
    from safetensors.numpy import load_file

    return load_file(str(path))


def test_ray_data_batches_are_prepared_floats_matching_the_in_memory_decode(ray_local, digits, synth_run):
    from gptfl_ray.pretrain.ingest import light_dataset, synthetic_train_dataset
    from gptfl_ray.synth.store import load_synthetic

    ds = synthetic_train_dataset(synth_run, digits)
    rows = ds.take_all()
    x = np.stack([r["x"] for r in rows])
    assert x.dtype == np.float32 and x.shape == (120, 1, 8, 8) and set(ds.columns()) == {"x", "y"}
    raw, y = load_synthetic(synth_run, digits)
    order = np.lexsort((np.array([r["y"] for r in rows]),))  # compare as multisets per label
    assert np.allclose(np.sort(x.reshape(120, -1), axis=0), np.sort(digits.prepare(raw).reshape(120, -1), axis=0))
    assert np.array_equal(np.bincount([r["y"] for r in rows]), np.bincount(y)) and len(order) == 120
    light = light_dataset(digits)
    assert len(light.x_train) == 0 and light.input_shape == digits.input_shape  # what each task ships


def test_ray_train_on_shards_learns_keeps_one_checkpoint_and_reports_progress(ray_local, digits, synth_run, tmp_path):
    from gptfl_ray.pretrain.trainer import pretrain_on_shards

    seen = []
    cfg = PretrainConfig(epochs=3, batch_size=16, lr=0.05, train_workers=1, augment=False)
    res = pretrain_on_shards(cfg, _factory(digits), digits, synth_run, tmp_path / "pre", on_epoch=seen.append)
    assert [r["epoch"] for r in res.history] == [1, 2, 3]
    assert res.final["accuracy"] > 0.3  # glyph digits teach real digits (chance is 0.1)
    assert seen and seen[-1] == 3 and seen == sorted(seen)  # from Ray Train's reports, in order
    assert not (tmp_path / "pre" / "ray_train").exists()  # finished: the resume state is gone
    assert {"val_accuracy", "accuracy"} <= set(res.final)


def test_in_process_path_reads_the_same_shards(ray_local, digits, synth_run, tmp_path):
    from gptfl_ray.pretrain.trainer import pretrain_on_shards

    cfg = PretrainConfig(epochs=2, batch_size=16, lr=0.05, train_workers=0, augment=False)
    res = pretrain_on_shards(cfg, _factory(digits), digits, synth_run, tmp_path / "pre")
    assert len(res.history) == 2 and res.final["accuracy"] > 0.2
    assert not (tmp_path / "pre" / ".resume").exists()


class _Stop(Exception):
    pass


def test_interrupted_in_process_pretraining_resumes_to_the_uninterrupted_weights(digits, synth_run, tmp_path):
    from gptfl_ray.pretrain.trainer import pretrain_on_shards

    cfg = PretrainConfig(epochs=4, batch_size=16, lr=0.05, train_workers=0)
    full = pretrain_on_shards(cfg, _factory(digits), digits, synth_run, tmp_path / "full")

    def die_after_2(epoch):
        if epoch == 2:
            raise _Stop

    with pytest.raises(_Stop):  # killed in the middle of epoch 3's start
        pretrain_on_shards(cfg, _factory(digits), digits, synth_run, tmp_path / "cut", on_epoch=die_after_2)
    assert (tmp_path / "cut" / ".resume" / "last" / "state.pt").is_file()
    resumed = pretrain_on_shards(cfg, _factory(digits), digits, synth_run, tmp_path / "cut")
    assert [r["epoch"] for r in resumed.history] == [1, 2, 3, 4]
    a, b = _weights(full.model_path), _weights(resumed.model_path)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert resumed.history == full.history
    # other settings never resume a stale checkpoint
    other = pretrain_on_shards(
        PretrainConfig(epochs=1, batch_size=16, lr=0.05, train_workers=0),
        _factory(digits),
        digits,
        synth_run,
        tmp_path / "cut",
    )
    assert [r["epoch"] for r in other.history] == [1]


def test_ray_train_resumes_from_its_last_checkpoint_to_the_uninterrupted_weights(
    ray_local, digits, synth_run, tmp_path
):
    """Two epochs, then a new fit with the same settings: Ray Train restores its run snapshot."""
    from gptfl_ray.pretrain.trainer import pretrain_on_shards

    cfg = PretrainConfig(epochs=3, batch_size=16, lr=0.05, train_workers=1)
    full = pretrain_on_shards(cfg, _factory(digits), digits, synth_run, tmp_path / "full")
    part = pretrain_on_shards(cfg, _factory(digits), digits, synth_run, tmp_path / "cut", epoch_budget=2)
    assert [r["epoch"] for r in part.history] == [1, 2]
    ckpts = [p for p in (tmp_path / "cut" / "ray_train").rglob("checkpoint_*") if p.is_dir()]
    assert len(ckpts) == 1  # num_to_keep=1: the last is all resume needs
    rest = pretrain_on_shards(cfg, _factory(digits), digits, synth_run, tmp_path / "cut")
    assert [r["epoch"] for r in rest.history] == [1, 2, 3]
    a, b = _weights(full.model_path), _weights(rest.model_path)
    assert all(np.allclose(a[k], b[k], atol=1e-6) for k in a)
    assert [r["accuracy"] for r in rest.history] == [r["accuracy"] for r in full.history]


def test_workers_that_leave_no_cpu_for_ray_data_are_refused_in_one_line():
    from gptfl_ray.errors import ConfigError
    from gptfl_ray.pretrain.trainer import check_ingest_cpus

    check_ingest_cpus(2, 3.0)
    with pytest.raises(ConfigError) as err:
        check_ingest_cpus(2, 2.0)
    assert err.value.subject == "pretrain.train_workers" and "\n" not in str(err.value)


def test_two_workers_train_and_only_rank_0_evaluates(ray_local, digits, synth_run, tmp_path):
    from gptfl_ray.pretrain.trainer import pretrain_on_shards

    cfg = PretrainConfig(epochs=2, batch_size=16, lr=0.05, train_workers=2, augment=False)
    res = pretrain_on_shards(cfg, _factory(digits), digits, synth_run, tmp_path / "pre")
    assert [r["epoch"] for r in res.history] == [1, 2]  # one evaluated row per epoch (rank 0's)
    assert json.loads((tmp_path / "pre" / "metrics.json").read_text())["final"]["epoch"] == 2


def test_generator_actors_with_a_gpu_request_schedule_on_a_logical_gpu(ray_local, digits, tmp_path):
    """Two actors at 0.5 GPU each fit the one logical GPU; the bytes equal the CPU plain loop's."""
    from gptfl_ray.synth.pipeline import ensure_generated
    from gptfl_ray.synth.prompts import ensure_prompts

    for run in (tmp_path / "gpu", tmp_path / "local"):
        ensure_prompts(PromptsConfig(per_class=4, seed=3), digits, run)
    gpu = ensure_generated(GenerateConfig(shard_size=10, gen_actors=2, gen_gpus=0.5), digits, tmp_path / "gpu")
    local = ensure_generated(GenerateConfig(shard_size=10, engine="local"), digits, tmp_path / "local")
    assert gpu["complete"] and gpu["sha256"] == local["sha256"]
