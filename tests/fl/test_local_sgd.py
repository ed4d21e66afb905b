"""fl/client.py's LocalSGD: torch.optim.SGD's step bit for bit, without importing torch._dynamo."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F

from gptfl_ray.fl.client import LocalSGD, LocalTrainConfig
from gptfl_ray.models.registry import build_model


def _train(opt_kind: str, cfg: LocalTrainConfig, freeze_first: bool) -> list[torch.Tensor]:
    torch.manual_seed(0)
    model = build_model("cnn", (1, 8, 8), 10)
    params = list(model.parameters())
    if freeze_first:  # a parameter without a gradient: both skip it
        params[0].requires_grad_(False)
    if opt_kind == "torch":
        opt = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    else:
        opt = LocalSGD(params, cfg)
    gen = torch.Generator().manual_seed(1)
    for _ in range(7):
        x = torch.randn(10, 1, 8, 8, generator=gen)
        y = torch.randint(0, 10, (10,), generator=gen)
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    return [p.detach().clone() for p in model.parameters()]


@pytest.mark.parametrize("momentum", [0.0, 0.9])
@pytest.mark.parametrize("weight_decay", [0.0, 5e-4])
@pytest.mark.parametrize("freeze_first", [False, True])
def test_local_sgd_matches_torch_sgd_bit_for_bit(momentum, weight_decay, freeze_first):
    cfg = LocalTrainConfig(lr=0.05, momentum=momentum, weight_decay=weight_decay)
    want = _train("torch", cfg, freeze_first)
    got = _train("local", cfg, freeze_first)
    for a, b in zip(want, got):
        assert torch.equal(a, b)
    # and the run did train: the weights moved from their initial values
    torch.manual_seed(0)
    init = list(build_model("cnn", (1, 8, 8), 10).parameters())
    assert not torch.equal(init[-1], got[-1])


def test_a_client_update_does_not_import_torch_dynamo():
    """The reason LocalSGD exists: an executor process that trains clients never pays for
    torch._dynamo's import. Checked in a fresh interpreter, since this one may have it."""
    code = textwrap.dedent(
        """
        import sys
        import numpy as np
        import torch
        from gptfl_ray.fl.client import LocalTrainConfig, client_update
        from gptfl_ray.models.params import get_flat
        from gptfl_ray.models.registry import build_model
        model = build_model("cnn", (1, 8, 8), 10)
        x, y = torch.randn(20, 1, 8, 8), torch.randint(0, 10, (20,))
        res = client_update(model, get_flat(model), x, y, LocalTrainConfig(batch_size=5, momentum=0.9), seed=3)
        assert res.steps == 4 and np.abs(res.delta).sum() > 0, res
        print("torch._dynamo" in sys.modules)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
