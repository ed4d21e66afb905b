"""End to end on a tiny Speech Commands tree the test writes: clients by speaker, FedAudio
model, synthetic keywords spoken by the offline espeak generator (GPT-FL's audio setup)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from gptfl_ray.cli.main import app
from gptfl_ray.data.speechcommands import KEYWORDS

pytestmark = pytest.mark.skipif(
    shutil.which("espeak-ng") is None, reason="needs Debian's espeak-ng (apt-get install espeak-ng)"
)

TRAIN_SPEAKERS = [f"{i:08x}" for i in range(0xA0, 0xA5)]
TEST_SPEAKER = "ffff0000"
VAL_SPEAKER = "eeee0000"


def write_tree(root):
    base = root / "SpeechCommands" / "speech_commands_v0.02"
    rng = np.random.default_rng(0)
    test, val = [], []
    for k, word in enumerate(KEYWORDS):
        (base / word).mkdir(parents=True)
        for spk in TRAIN_SPEAKERS + [VAL_SPEAKER, TEST_SPEAKER]:
            t = np.arange(16_000) / 16_000
            wave = 0.2 * np.sin(2 * np.pi * (200 + 25 * k) * t) + 0.01 * rng.standard_normal(16_000)
            sf.write(base / word / f"{spk}_nohash_0.wav", wave.astype(np.float32), 16_000, subtype="PCM_16")
        test.append(f"{word}/{TEST_SPEAKER}_nohash_0.wav")
        val.append(f"{word}/{VAL_SPEAKER}_nohash_0.wav")
    (base / "validation_list.txt").write_text("\n".join(val) + "\n")
    (base / "testing_list.txt").write_text("\n".join(test) + "\n")


def test_simulate_speechcommands_with_espeak(tmp_path):
    write_tree(tmp_path / "data")
    run = tmp_path / "run"
    res = CliRunner().invoke(
        app,
        [
            "simulate",
            "--dataset",
            "speechcommands",
            "--data-dir",
            str(tmp_path / "data"),
            "--model",
            "fedaudio",
            "--partition",
            "natural",
            "--clients",
            "5",
            "--clients-per-round",
            "2",
            "--rounds",
            "2",
            "--local-epochs",
            "1",
            "--generator",
            "espeak",
            "--per-class",
            "2",
            "--pretrain-epochs",
            "1",
            "--backend",
            "local",
            "--train-workers",
            "0",
            "--output-dir",
            str(run),
        ],
    )
    assert res.exit_code == 0, res.output
    summary = json.loads((run / "summary.json").read_text())
    assert summary["dataset"] == "speechcommands" and summary["model"] == "fedaudio"
    for name in ("fedavg", "synthetic", "gptfl"):
        assert 0 <= summary["variants"][name]["final_macro_f1"] <= 1
    manifest = json.loads((run / "synthetic" / "manifest.json").read_text())
    assert manifest["generator"] == "espeak" and manifest["total_rows"] == 2 * len(KEYWORDS)
