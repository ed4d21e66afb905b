"""The hand-stacked cohort forward (fl/stacked.py) computes what vmap over each client's net does."""

import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

from gptfl_ray.fl.client import LocalTrainConfig
from gptfl_ray.fl.stacked import StackedNet
from gptfl_ray.fl.vectorized import CohortClient, CohortTrainer
from gptfl_ray.models.factory import ModelFactory
from gptfl_ray.models.params import get_flat

CASES = [
    ("cnn", (1, 8, 8), "default"),
    ("mlp", (1, 8, 8), "default"),
    ("convnet", (1, 8, 8), "default"),  # GroupNorm (instance), AvgPool, flatten in forward()
    ("convnet", (3, 12, 12), "group"),
    ("convnet", (3, 12, 12), "none"),
]


@pytest.mark.parametrize(("name", "shape", "norm"), CASES)
def test_each_clients_logits_are_its_own_nets(name, shape, norm):
    model = ModelFactory(name, shape, 10, norm)()
    net = StackedNet.build(model, shape)
    assert net is not None
    K, B = 3, 4
    params = {n: torch.stack([p.detach() * (1 + 0.2 * k) for k in range(K)]) for n, p in model.named_parameters()}
    x = torch.randn(K, B, *shape)
    out = net.forward(params, x)
    for k in range(K):
        own = torch.func.functional_call(model, {n: p[k] for n, p in params.items()}, (x[k],))
        torch.testing.assert_close(out[k], own, rtol=1e-4, atol=1e-5)


class Residual(nn.Module):
    """Chain-looking modules, branching forward: the probe must reject the stacked plan."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(6, 6), nn.Linear(6, 3)

    def forward(self, x):
        x = x.flatten(1)
        return self.b(x + self.a(x))


def test_what_the_stacked_forward_cannot_reproduce_keeps_vmap():
    assert StackedNet.build(Residual(), (6,)) is None
    assert StackedNet.build(ModelFactory("resnet18", (3, 32, 32), 10, "group")(), (3, 32, 32)) is None
    hooked = ModelFactory("mlp", (1, 8, 8), 10)()
    hooked.register_forward_pre_hook(lambda m, a: None)
    assert StackedNet.build(hooked, (1, 8, 8)) is None
    tanh = nn.Sequential(nn.Flatten(), nn.Linear(4, 4), nn.Tanh(), nn.Linear(4, 2))
    assert StackedNet.build(tanh, (4,)) is None  # a layer it does not know
    trainer = CohortTrainer(Residual(), LocalTrainConfig(), torch.zeros(2, 6), torch.zeros(2, dtype=torch.long))
    assert trainer.path == "vmap"


@pytest.mark.parametrize("name", ["cnn", "convnet"])
def test_stacked_and_vmap_trainers_give_the_same_ragged_updates(name):
    shape = (1, 8, 8)
    rng = np.random.default_rng(0)
    x = torch.as_tensor(rng.normal(size=(60, *shape)).astype(np.float32))
    y = torch.as_tensor(rng.integers(0, 10, 60))
    model = ModelFactory(name, shape, 10)()
    g = get_flat(model)
    local = LocalTrainConfig(epochs=1, batch_size=8, lr=0.05, momentum=0.9, weight_decay=1e-3)
    sizes = [(0, 1), (1, 9), (9, 30), (30, 60)]
    clients = [
        CohortClient(i, list(torch.arange(a, b).split(local.batch_size)), b - a) for i, (a, b) in enumerate(sizes)
    ]
    stacked = CohortTrainer(model, local, x, y, width=30)
    vm = CohortTrainer(model, local, x, y, width=30)
    vm.stacked, vm.path, vm._grads = None, "vmap", vm._vmap_grads()
    assert stacked.path == "stacked"
    a, b = stacked.train(g, clients, prox_mu=0.1), vm.train(g, clients, prox_mu=0.1)
    for ra, rb in zip(a, b):
        assert ra.steps == rb.steps
        np.testing.assert_allclose(ra.delta, rb.delta, rtol=1e-4, atol=1e-4 * np.abs(rb.delta).max())
        assert ra.loss == pytest.approx(rb.loss, rel=1e-5)


def test_a_stacked_cohort_never_imports_dynamo():
    """vmap's first grad call imports torch._dynamo (~1.7 s in every fresh executor); checked in
    a fresh interpreter, since another test in this one may have imported it."""
    code = (
        "import sys, torch\n"
        "from gptfl_ray.fl.client import LocalTrainConfig\n"
        "from gptfl_ray.fl.vectorized import CohortClient, CohortTrainer\n"
        "from gptfl_ray.models.factory import ModelFactory\n"
        "from gptfl_ray.models.params import get_flat\n"
        "m = ModelFactory('cnn', (1, 8, 8), 10)()\n"
        "t = CohortTrainer(m, LocalTrainConfig(), torch.randn(5, 1, 8, 8), torch.zeros(5, dtype=torch.long))\n"
        "r = t.train(get_flat(m), [CohortClient(0, [torch.arange(5)], 5)])\n"
        "print(t.path, r[0].steps, 'torch._dynamo' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.split() == ["stacked", "1", "False"]
