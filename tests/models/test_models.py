from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from gptfl_ray.errors import ConfigError
from gptfl_ray.models import build_model, get_flat, model_names, model_norms, num_params, set_flat

SHAPES = [(1, 8, 8), (3, 32, 32), (1, 28, 28), (3, 64, 64)]
FAMILIES = ["cnn", "mlp", "convnet", "resnet18", "resnet50", "vgg19"]


def test_registry_lists_every_family():
    assert set(FAMILIES) <= set(model_names())


@pytest.mark.parametrize("name", FAMILIES)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_forward_shape(name, shape):
    torch.manual_seed(0)
    model = build_model(name, shape, num_classes=7)
    model.train()  # BatchNorm in train mode is the stricter check (needs > 1 value per channel)
    out = model(torch.randn(2, *shape))
    assert out.shape == (2, 7)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", ["convnet", "resnet18", "vgg19"])
def test_group_norm_has_no_batchnorm(name):
    model = build_model(name, (3, 32, 32), 10, norm="group")
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    assert any(isinstance(m, nn.GroupNorm) for m in model.modules())
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 10)  # batch of one works without BN


def test_norm_defaults():
    assert model_norms("convnet")[0] == "instance"
    conv = build_model("convnet", (3, 32, 32), 10)
    gns = [m for m in conv.modules() if isinstance(m, nn.GroupNorm)]
    assert len(gns) == 3 and all(g.num_groups == g.num_channels == 128 for g in gns)
    assert any(isinstance(m, nn.BatchNorm2d) for m in build_model("resnet18", (3, 32, 32), 10).modules())
    cnn = build_model("cnn", (1, 8, 8), 10)
    assert not any(isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)) for m in cnn.modules())


def test_sizes():
    assert 10_000 <= num_params(build_model("cnn", (1, 8, 8), 10)) <= 30_000
    # DynaFed / Dataset Condensation ConvNet on CIFAR-10: about 320k parameters
    assert 310_000 <= num_params(build_model("convnet", (3, 32, 32), 10)) <= 330_000
    r18 = build_model("resnet18", (3, 32, 32), 10)
    assert 11_000_000 <= num_params(r18, trainable_only=True) <= 11_300_000
    assert num_params(r18) > num_params(r18, trainable_only=True)  # + BN running stats


def test_cifar_stem_only_for_small_inputs():
    small = build_model("resnet18", (3, 64, 64), 10)
    assert small.conv1.kernel_size == (3, 3) and small.conv1.stride == (1, 1)
    assert isinstance(small.maxpool, nn.Identity)
    big = build_model("resnet18", (1, 96, 96), 10)
    assert big.conv1.kernel_size == (7, 7) and big.conv1.in_channels == 1
    assert big(torch.randn(2, 1, 96, 96)).shape == (2, 10)


@pytest.mark.parametrize(
    "args, subject",
    [
        (("transformer", (3, 32, 32), 10), "model.name"),
        (("cnn", (64,), 10), "model.name"),
        (("resnet18", (3, 32, 32), 10, "instance"), "model.norm"),
        (("cnn", (1, 8, 8), 10, "batch"), "model.norm"),
    ],
)
def test_errors(args, subject):
    with pytest.raises(ConfigError) as e:
        build_model(*args)
    assert e.value.subject == subject


@pytest.mark.parametrize("name, norm", [("cnn", "default"), ("convnet", "batch"), ("resnet18", "batch")])
def test_flat_round_trip_exact(name, norm):
    torch.manual_seed(0)
    model = build_model(name, (3, 32, 32), 10, norm=norm)
    model.train()
    model(torch.randn(4, 3, 32, 32))  # moves BN running stats away from their 0/1 init
    flat = get_flat(model)
    assert flat.dtype == np.float32 and flat.shape == (num_params(model),)

    other = build_model(name, (3, 32, 32), 10, norm=norm)
    rng = np.random.default_rng(0)
    noise = rng.standard_normal(flat.shape).astype(np.float32)
    set_flat(other, noise)
    np.testing.assert_array_equal(get_flat(other), noise)
    set_flat(other, flat)
    np.testing.assert_array_equal(get_flat(other), flat)
    for (k, a), b in zip(model.state_dict().items(), other.state_dict().values()):
        if torch.is_floating_point(a):  # integer counters are not part of the flat vector
            assert torch.equal(a, b), k
    x = torch.randn(2, 3, 32, 32)
    model.eval(), other.eval()
    assert torch.equal(model(x), other(x))


def test_flat_covers_buffers_skips_int_and_is_a_copy():
    model = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))
    flat = get_flat(model)
    # weight 6 + bias 3 + BN weight 3 + bias 3 + running_mean 3 + running_var 3; not num_batches_tracked
    assert flat.shape == (21,)
    np.testing.assert_array_equal(flat[-3:], np.ones(3, np.float32))  # running_var last, as in state_dict
    flat[:] = 5.0
    assert not torch.any(model[0].weight == 5.0)  # get_flat returned a copy, not a view
    set_flat(model, np.arange(21, dtype=np.float32))
    assert model[0].weight.detach().flatten().tolist() == [0, 1, 2, 3, 4, 5]
    assert model[1].running_var.tolist() == [18, 19, 20]
    assert model[1].num_batches_tracked.item() == 0
    with pytest.raises(ValueError, match="21"):
        set_flat(model, np.zeros(20, np.float32))


def test_flat_non_float32_model_uses_torch_path():
    model = nn.Sequential(nn.Linear(3, 2)).double()  # float64 entries take the cast/copy_ path
    vec = np.arange(8, dtype=np.float32) / 3
    set_flat(model, torch.from_numpy(vec))
    assert model[0].weight.dtype == torch.float64
    np.testing.assert_array_equal(get_flat(model), vec)
