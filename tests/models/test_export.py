"""Self-describing model files: `gptfl_ray.load_model` rebuilds a ready-to-predict model from
the file alone, and it predicts exactly what the run's own evaluation scored."""

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import gptfl_ray
from gptfl_ray.cli.main import app
from gptfl_ray.data import load_dataset
from gptfl_ray.data.base import Dataset
from gptfl_ray.errors import ConfigError
from gptfl_ray.fl.metrics import evaluate
from gptfl_ray.models.export import ExportedModel, describe, model_metadata, read_metadata
from gptfl_ray.models.io import save_model_file


@pytest.fixture(scope="module")
def federated(tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "run"
    args = [
        "federate",
        "--rounds",
        "3",
        "--clients",
        "6",
        "--clients-per-round",
        "3",
        "--model",
        "cnn",
        "--local-epochs",
        "1",
        "--backend",
        "local",
        "--output-dir",
        str(out),
    ]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    return out


def test_load_model_on_a_federate_file_predicts_as_the_run_evaluated(federated):
    model = gptfl_ray.load_model(federated / "model.safetensors")
    ds = load_dataset("digits")  # the same split seed as the run (0)
    last = json.loads((federated / "metrics.jsonl").read_text().splitlines()[-1])
    pred = model.predict(ds.x_test)  # raw 0..16 counts in, class indices out
    assert float((pred == ds.y_test).mean()) == last["accuracy"]
    assert float((model.predict(ds.x_val) == ds.y_val).mean()) == last["val_accuracy"]
    # and the same logits as the training code's own evaluation path
    ref = evaluate(model.net, None, torch.from_numpy(ds.prepare(ds.x_test)), torch.from_numpy(ds.y_test))
    assert ref["accuracy"] == last["accuracy"]
    assert model.class_names == ds.class_names and model.input_shape == ds.input_shape
    np.testing.assert_allclose(model.predict_proba(ds.x_test[:5]).sum(1), 1.0, rtol=1e-5)


def test_metadata_names_model_shape_classes_and_preprocessing(federated):
    meta = read_metadata(federated / "model.safetensors")
    assert meta["model"] == "cnn" and meta["dataset"] == "digits" and meta["modality"] == "image"
    assert meta["input_shape"] == [1, 8, 8] and meta["num_classes"] == 10
    assert meta["class_names"][0] == "0"
    pre = meta["preprocessing"]
    assert pre["kind"] == "scale-normalise" and pre["max_value"] == 16.0


def test_a_file_without_metadata_is_refused_with_one_line(tmp_path):
    net = torch.nn.Linear(3, 2)
    save_model_file(net, None, tmp_path / "plain.safetensors")
    with pytest.raises(ConfigError, match="no gptfl-ray metadata"):
        gptfl_ray.load_model(tmp_path / "plain.safetensors")
    with pytest.raises(ConfigError, match="does not exist"):
        gptfl_ray.load_model(tmp_path / "missing.safetensors")


def test_audio_preprocessing_is_the_training_front_end():
    rng = np.random.default_rng(0)
    waves = rng.normal(0, 0.1, (3, 4000)).astype(np.float32)
    ds = Dataset(
        "toy-audio",
        "audio",
        ("yes", "no"),
        waves,
        np.array([0, 1, 0]),
        waves[:2],
        np.array([0, 1]),
        max_value=1.0,
        mean=(0.0,),
        std=(1.0,),
        extra={"sample_rate": 16_000},
    )
    meta = describe("fedaudio", "default", ds)
    exported = ExportedModel(torch.nn.Identity(), meta)
    np.testing.assert_array_equal(exported.preprocess(waves), ds.prepare(waves))
    assert meta["preprocessing"]["kind"] == "log-mel" and meta["input_shape"] == list(ds.input_shape)


def test_header_bytes_are_deterministic(tmp_path):
    ds = load_dataset("digits")
    meta = model_metadata("cnn", "default", ds)
    a, b = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    for p in (a, b):
        torch.manual_seed(0)
        save_model_file(torch.nn.Linear(3, 2), None, p, metadata=meta)
    assert a.read_bytes() == b.read_bytes() and read_metadata(a)["model"] == "cnn"
