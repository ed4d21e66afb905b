"""The FedAudio conv-RNN: exact parameter shapes, forward pass, registry wiring."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gptfl_ray.data.base import Dataset
from gptfl_ray.errors import ConfigError
from gptfl_ray.models import build_model, get_flat, model_names, model_norms, num_params, set_flat


def test_parameter_shapes_are_exact():
    model = build_model("fedaudio", (128, 101), num_classes=35)
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    g = 3 * 128  # a GRU stacks its reset, update and new gates
    assert shapes == {
        "conv.0.weight": (64, 128, 3),
        "conv.0.bias": (64,),
        "conv.3.weight": (128, 64, 3),
        "conv.3.bias": (128,),
        "rnn.weight_ih_l0": (g, 128),
        "rnn.weight_hh_l0": (g, 128),
        "rnn.bias_ih_l0": (g,),
        "rnn.bias_hh_l0": (g,),
        "rnn.weight_ih_l0_reverse": (g, 128),
        "rnn.weight_hh_l0_reverse": (g, 128),
        "rnn.bias_ih_l0_reverse": (g,),
        "rnn.bias_hh_l0_reverse": (g,),
        "head.0.weight": (128, 256),
        "head.0.bias": (128,),
        "head.2.weight": (35, 128),
        "head.2.bias": (35,),
    }
    assert model.rnn.bidirectional and model.rnn.num_layers == 1 and model.rnn.batch_first
    assert [type(m).__name__ for m in model.conv] == [
        "Conv1d",
        "ReLU",
        "MaxPool1d",
        "Conv1d",
        "ReLU",
        "MaxPool1d",
        "Dropout",
    ]
    assert model.conv[6].p == 0.1 and isinstance(model.head[1], torch.nn.ReLU)
    assert (
        num_params(model)
        == 64 * 128 * 3 + 64 + 128 * 64 * 3 + 128 + 2 * (2 * g * 128 + 2 * g) + 256 * 128 + 128 + 128 * 35 + 35
    )


@pytest.mark.parametrize("frames", [101, 7])
def test_forward_and_backward(frames):
    torch.manual_seed(0)
    model = build_model("fedaudio", (128, frames), num_classes=50)
    model.train()
    out = model(torch.randn(2, 128, frames))
    assert out.shape == (2, 50) and torch.isfinite(out).all()
    out.sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    assert model.eval()(torch.randn(1, 1, 128, frames)).shape == (1, 50)  # (N, 1, mels, T) too


def test_forward_esc50_length():
    model = build_model("fedaudio", (128, 501), num_classes=50).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 128, 501)).shape == (1, 50)


def test_registry_and_dataset_wiring():
    assert "fedaudio" in model_names() and model_norms("fedaudio") == ("none",)
    wav = np.zeros((4, 16_000), np.float32)
    ds = Dataset(
        "toy",
        "audio",
        ("a", "b", "c"),
        wav,
        np.array([0, 1, 2, 0]),
        wav[:1],
        np.array([1]),
        max_value=1.0,
        extra={"sample_rate": 16_000},
    )
    model = build_model("fedaudio", ds.input_shape, ds.num_classes)
    assert model(torch.from_numpy(ds.prepare(ds.x_train))).shape == (4, 3)
    a, b = build_model("fedaudio", ds.input_shape, 3), build_model("fedaudio", ds.input_shape, 3)
    set_flat(b, get_flat(a))  # the FL core's flat-vector round trip covers the GRU weights
    x = torch.randn(2, 128, 101)
    torch.testing.assert_close(a.eval()(x), b.eval()(x))
    with pytest.raises(ConfigError, match="mel bins, frames"):
        build_model("fedaudio", (1, 128, 101), 3)
    with pytest.raises(ConfigError, match="model.norm"):
        build_model("fedaudio", (128, 101), 3, norm="batch")


def test_learns_low_versus_high_tones():
    """A few Adam steps separate two tone classes through the real front-end (the net can learn)."""
    from gptfl_ray.data.audio import log_mel

    rng = np.random.default_rng(0)
    t = np.arange(3200) / 16_000  # 0.2 s: 21 frames, 5 GRU steps, fast on a busy CPU
    freqs = np.concatenate([rng.uniform(200, 500, 8), rng.uniform(2000, 4000, 8)])
    wav = np.sin(2 * np.pi * freqs[:, None] * t) + 0.3 * rng.standard_normal((16, 3200))
    x = torch.from_numpy(log_mel(wav.astype(np.float32)))
    y = torch.tensor([0] * 8 + [1] * 8)
    torch.manual_seed(0)
    model = build_model("fedaudio", tuple(x.shape[1:]), 2)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    for _ in range(12):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    assert (model.eval()(x).argmax(1) == y).float().mean() == 1.0
