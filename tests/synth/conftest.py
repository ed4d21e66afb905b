"""Fixtures for the synth tests: data sets, tiny random-weight models saved to temp dirs."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))  # tiny_models.py beside this file

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """On 2 shared cores, torch's intra-op threads spin against each other (50x slower here);
    Ray already gives each actor OMP_NUM_THREADS=1, so the in-process runs match that."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def digits():
    from gptfl_ray.data.registry import load_dataset

    return load_dataset("digits")


def fake_dataset(name="pets", classes=("cat", "dog", "bird"), shape=(3, 16, 16), modality="image", n=6, **kw):
    from gptfl_ray.data.base import Dataset

    dtype = np.float32 if modality == "audio" else np.uint8
    x = np.zeros((n, *shape), dtype)
    y = np.arange(n) % len(classes)
    return Dataset(
        name=name,
        modality=modality,
        class_names=tuple(classes),
        x_train=x,
        y_train=y,
        x_test=x[:3],
        y_test=y[:3],
        max_value=1.0 if modality == "audio" else 255.0,
        **kw,
    )


@pytest.fixture(scope="session")
def pets():
    return fake_dataset()


@pytest.fixture(scope="session")
def tiny_sd(tmp_path_factory):
    from tiny_models import tiny_stable_diffusion

    return tiny_stable_diffusion(tmp_path_factory.mktemp("models") / "tiny-sd")


@pytest.fixture(scope="session")
def tiny_gpt2(tmp_path_factory):
    from tiny_models import tiny_gpt2 as build

    return build(tmp_path_factory.mktemp("models") / "tiny-gpt2")


@pytest.fixture(scope="session")
def tiny_tts(tmp_path_factory):
    pytest.importorskip("sentencepiece", reason="SpeechT5's tokenizer needs sentencepiece")
    from tiny_models import tiny_speecht5

    root = tmp_path_factory.mktemp("models")
    return tiny_speecht5(root / "tiny-speecht5", root / "tiny-hifigan")


@pytest.fixture(scope="session")
def tiny_aldm(tmp_path_factory):
    from tiny_models import tiny_audioldm

    return tiny_audioldm(tmp_path_factory.mktemp("models") / "tiny-audioldm")


def batch_of(prompts, seeds, guidance=None, names=None, labels=None):
    n = len(prompts)
    return {
        "row": np.arange(n, dtype=np.int64),
        "label": np.asarray(labels if labels is not None else np.zeros(n), np.int64),
        "label_name": np.array(names or ["x"] * n, dtype=object),
        "prompt": np.array(prompts, dtype=object),
        "guidance": np.asarray(guidance if guidance is not None else np.full(n, 3.0), np.float64),
        "seed": np.asarray(seeds, np.int64),
    }
