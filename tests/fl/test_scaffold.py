"""SCAFFOLD (Karimireddy et al. 2020, Algorithm 1, option II) on values computed by hand, and on
a small heterogeneous problem where it provably reaches the optimum FedAvg's drift misses."""

import numpy as np
import torch

from gptfl_ray.fl.aggregate import finalize
from gptfl_ray.fl.algorithms import FedAvg, Scaffold
from gptfl_ray.fl.algorithms.local import ScaffoldClient
from gptfl_ray.fl.client import LocalTrainConfig, client_update
from gptfl_ray.fl.executor import ClientExecutor, ExecutorSpec


class Logits(torch.nn.Module):
    """Logits = w for every sample, so the cross-entropy gradient is softmax(w) - onehot(y):
    computable by hand. The buffer changes every forward pass, as BatchNorm statistics do."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(3))
        self.register_buffer("calls", torch.zeros(1))

    def forward(self, x):
        self.calls += 1
        return self.w.expand(len(x), 3)


def _grad(w, label):
    e = np.exp(w - w.max())
    return e / e.sum() - np.eye(3)[label]


C = np.array([0.1, -0.2, 0.3, 0.0], np.float32)  # global c (last entry: the buffer)
CI = np.array([0.0, 0.1, -0.1, 0.0], np.float32)


def test_one_step_control_is_the_gradient_at_x():
    # K = 1: y = x - lr (g(x) - c_i + c), so c_i+ = c_i - c + (x - y)/lr = g(x) exactly.
    x0 = np.zeros(4, np.float32)
    r = client_update(
        Logits(),
        x0,
        torch.zeros(4, 1),
        torch.zeros(4, dtype=torch.int64),
        LocalTrainConfig(epochs=1, batch_size=4, lr=0.5),
        seed=0,
        terms=ScaffoldClient().terms(C, CI),
    )
    assert r.steps == 1
    extra, new_c = ScaffoldClient().finish(C, CI, r.delta, r.steps, 0.5, np.array([1, 1, 1, 0], bool))
    # g(0) for label 0 = [1/3 - 1, 1/3, 1/3]; correction c - c_i = [0.1, -0.3, 0.4]
    np.testing.assert_allclose(
        r.delta[:3], [-0.5 * (-2 / 3 + 0.1), -0.5 * (1 / 3 - 0.3), -0.5 * (1 / 3 + 0.4)], atol=1e-6
    )
    np.testing.assert_allclose(new_c, [-2 / 3, 1 / 3, 1 / 3, 0.0], atol=1e-6)
    np.testing.assert_allclose(extra, new_c - CI, atol=1e-7)
    assert r.delta[3] == 1.0  # the buffer moved, yet takes no control variate


def _two_steps(x, label, c, ci, lr):
    y = x.copy()
    for _ in range(2):
        y = y - lr * (_grad(y, label) - ci + c)
    new_c = ci - c + (x - y) / (2 * lr)
    return y - x, new_c


def test_two_clients_one_round_end_to_end():
    """Two of N=4 clients, unequal sizes, two local steps each: client, executor, aggregate and
    server against the recursion written out in numpy."""
    x = np.array([0.2, -0.1, 0.4, 0.0], np.float32)
    c_b = np.array([0.3, 0.0, -0.2, 0.0], np.float32)
    feats = torch.zeros(6, 1)
    labels = torch.tensor([0, 0, 0, 0, 2, 2])
    parts = [np.arange(4), np.arange(4, 6), np.arange(0), np.arange(0)]
    lr = 0.5
    spec = ExecutorSpec(
        model_fn=Logits, local=LocalTrainConfig(epochs=2, batch_size=4, lr=lr), seed=0, client=ScaffoldClient()
    )
    ex = ClientExecutor(spec, feats.numpy(), labels.numpy(), parts)
    res = ex.run(x, [0, 1], round_idx=1, broadcast=C, states={0: CI, 1: c_b})

    d_a, c_a_new = _two_steps(x[:3].astype(np.float64), 0, C[:3], CI[:3], lr)
    d_b, c_b_new = _two_steps(x[:3].astype(np.float64), 2, C[:3], c_b[:3], lr)
    np.testing.assert_allclose(res.new_states[0][:3], c_a_new, atol=1e-5)
    np.testing.assert_allclose(res.new_states[1][:3], c_b_new, atol=1e-5)
    assert res.new_states[0][3] == res.new_states[1][3] == 0.0

    algo = Scaffold(num_clients=4, server_lr=0.5)
    s = algo.server_update(algo.init(x).with_(slots={"c": C.copy()}), finalize(res.partial))
    # x <- x + lr_g * (1/|S|) sum Delta y_i: uniform, although the clients hold 4 and 2 samples
    np.testing.assert_allclose(s.params[:3], x[:3] + 0.5 * (d_a + d_b) / 2, atol=1e-5)
    # c <- c + (1/N) sum Delta c_i
    np.testing.assert_allclose(s.slots["c"][:3], C[:3] + ((c_a_new - CI[:3]) + (c_b_new - c_b[:3])) / 4, atol=1e-5)
    assert s.slots["c"][3] == 0.0


# ------------------------------------------------------------ convergence on a drifting problem


def _problem(num_clients=4, n=12, seed=0):
    """Softmax regression, 2 features, 4 classes; client k holds class k only (full label skew).
    With weight decay the mean objective is strongly convex: one optimum."""
    g = torch.Generator().manual_seed(seed)
    centers = torch.tensor([[2.0, 0.0], [0.0, 2.0], [-2.0, 0.0], [0.0, -2.0]])
    xs = [centers[k] + 0.7 * torch.randn(n, 2, generator=g) for k in range(num_clients)]
    ys = [torch.full((n,), k, dtype=torch.int64) for k in range(num_clients)]
    x, y = torch.cat(xs), torch.cat(ys)
    parts = [np.arange(k * n, (k + 1) * n) for k in range(num_clients)]
    return x, y, parts


def _model():
    torch.manual_seed(0)
    return torch.nn.Linear(2, 4)


WD = 0.05


def _mean_objective_grad(params, x, y):
    m = _model()
    from gptfl_ray.models.params import set_flat

    set_flat(m, params)
    loss = torch.nn.functional.cross_entropy(m(x), y)  # equal client sizes: the uniform client mean
    loss = loss + 0.5 * WD * sum((p**2).sum() for p in m.parameters())
    grads = torch.autograd.grad(loss, list(m.parameters()))
    return float(torch.sqrt(sum((g**2).sum() for g in grads)))


def _federate(algo, x, y, parts, rounds):
    spec = ExecutorSpec(
        model_fn=_model,
        local=LocalTrainConfig(epochs=20, batch_size=12, lr=0.2, weight_decay=WD),
        seed=0,
        client=algo.client,
    )
    ex = ClientExecutor(spec, x.numpy(), y.numpy(), parts)
    from gptfl_ray.models.params import get_flat

    state = algo.init(get_flat(_model()))
    controls = {k: np.zeros_like(state.params) for k in range(len(parts))}
    for r in range(1, rounds + 1):
        res = ex.run(state.params, list(range(len(parts))), r, algo.client.broadcast(state), controls)
        state = algo.server_update(state, finalize(res.partial))
        controls.update(res.new_states)
    return state.params


def test_scaffold_reaches_the_optimum_fedavg_drifts_from():
    # Full participation, deterministic full-batch local GD (20 steps): FedAvg's fixed point is
    # not a stationary point of the mean objective (client drift); SCAFFOLD's is (Theorem III).
    x, y, parts = _problem()
    fedavg = _federate(FedAvg(), x, y, parts, rounds=60)
    scaffold = _federate(Scaffold(num_clients=len(parts)), x, y, parts, rounds=60)
    g_avg, g_sc = _mean_objective_grad(fedavg, x, y), _mean_objective_grad(scaffold, x, y)
    assert g_avg > 0.02, g_avg  # FedAvg stalls away from the optimum
    assert g_sc < 0.1 * g_avg, (g_sc, g_avg)
