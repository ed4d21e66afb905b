"""Cohort-vectorized local training: an executor's share of a round's clients trained together.

Every client of the cohort gets its own copy of the trainable weights, stacked along a leading
client axis; one call computes every client's gradient on its own batch, and one batched
update applies each client's SGD step (its own momentum buffer and weight decay, and the
algorithm's terms: FedProx's proximal pull, SCAFFOLD's correction; fl/algorithms/local.py).
Many small models become one wide computation instead of K narrow ones, which is where
small-client simulators lose their time (framework overhead per step, idle cores/GPU).

The gradient comes from one of two paths (`CohortTrainer.path`):
- "stacked": for a chain of convolutions, linear layers, group norms, pooling and ReLUs, the
  cohort's forward written on the stacked weights (grouped convolutions, `baddbmm`;
  fl/stacked.py) and plain autograd: the fastest, and it never imports torch._dynamo;
- "vmap": any other module, `torch.func.vmap` over `grad_and_value(functional_call(model, ...))`.

The math is the sequential path's (`fl/client.py`): each client trains on exactly the batches
`client_batches` gives it (its own seeded shuffle and batch boundaries). At step t only the
clients that still have a t-th batch take part (their weights are gathered, updated and written
back; the others are left untouched), and a client's last, shorter batch is masked: its
missing rows carry weight zero in the loss, so they add exactly nothing to the gradient and the
loss is the mean over the client's real samples.

What vmap cannot reproduce falls back to the sequential path (`vectorizable` says why):
BatchNorm couples the rows of a batch (masked rows would enter the batch statistics) and keeps
running statistics; dropout masks are drawn per client from its own seed; recurrent layers
have no batching rule on every device.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from gptfl_ray.fl.client import ClientResult, LocalTrainConfig
from gptfl_ray.fl.stacked import StackedNet

# Stacked weights, gradients and momentum for one client cost ~4x its parameters; a cohort is
# cut into chunks so that this stays under the budget (resnet18: 5 clients per chunk).
COHORT_BYTES = 1 << 30
MAX_COHORT = 64


def vectorizable(model: nn.Module) -> str | None:
    """None when the cohort trainer reproduces the sequential path for `model`; else why not."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            return f"{type(m).__name__} mixes the rows of a batch"
        if isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0:
            return "dropout masks are drawn from each client's own seed"
        if isinstance(m, nn.RNNBase):
            return f"{type(m).__name__} has no vmap batching rule here"
    params = {name for name, _ in model.named_parameters()}
    for name, t in model.state_dict(keep_vars=True).items():
        if torch.is_floating_point(t) and name not in params:
            return f"float buffer {name!r} would change during training"
    return None


@dataclass
class CohortClient:
    client_id: int
    batches: list[torch.Tensor]  # row indices into the executor's training set, one per step
    num_samples: int
    drift: np.ndarray | None = None  # the algorithm's constant gradient term (ClientTerms.drift)


class CohortTrainer:
    """Trains cohorts of clients of one model architecture; holds no per-client state.

    Every step is computed `width` rows wide (the batch size, or the largest client when all are
    smaller), whichever clients share the cohort: a client's result then does not depend on who
    else its executor trained. With the width taken from the step's longest batch, a client's
    short last batch was padded to 32 rows beside full batches and to 6 alone, and the matmul
    reductions over 32 and 6 rows round differently (the mlp's deltas differed in the last bit
    between a 1- and a 2-actor pool)."""

    def __init__(
        self,
        model: nn.Module,
        cfg: LocalTrainConfig,
        x: torch.Tensor,
        y: torch.Tensor,
        width: int | None = None,
    ):
        self.model, self.cfg, self.x, self.y = model, cfg, x, y
        self.width = max(1, cfg.batch_size if width is None else min(cfg.batch_size, width))
        self.device = x.device
        params = dict(model.named_parameters())
        self.entries: list[tuple[str, slice, torch.Size]] = []  # trainable weights in flat-vector order
        offset = 0
        for name, t in model.state_dict(keep_vars=True).items():
            if not torch.is_floating_point(t):
                continue
            n = t.numel()
            if name in params and params[name].requires_grad:
                self.entries.append((name, slice(offset, offset + n), t.shape))
            offset += n
        self.size = offset
        per_client = 16 * max(1, sum(s.stop - s.start for _, s, _ in self.entries))
        self.max_cohort = int(max(1, min(MAX_COHORT, COHORT_BYTES // per_client)))

        self.stacked = StackedNet.build(model, tuple(x.shape[1:]))
        self.path = "vmap" if self.stacked is None else "stacked"
        self._grads = self._vmap_grads() if self.stacked is None else self._stacked_grads

    def _stacked_grads(self, params, xb, yb, wb):
        """Every client's gradient and loss through the hand-stacked forward (fl/stacked.py)."""
        leaves = {n: p.detach().requires_grad_(True) for n, p in params.items()}
        with torch.enable_grad():
            logits = self.stacked.forward(leaves, xb)
            K, B = yb.shape
            per_sample = F.cross_entropy(logits.reshape(K * B, -1), yb.reshape(-1), reduction="none").view(K, B)
            losses = (per_sample * wb).sum(1) / wb.sum(1)
            grads = torch.autograd.grad(losses.sum(), list(leaves.values()))
        return dict(zip(leaves, grads)), losses.detach()

    def _vmap_grads(self):
        from torch.func import functional_call, grad_and_value, vmap  # first call imports torch._dynamo

        model = self.model

        def loss_fn(p, xb, yb, wb):
            per_sample = F.cross_entropy(functional_call(model, p, (xb,)), yb, reduction="none")
            return (per_sample * wb).sum() / wb.sum()

        return vmap(grad_and_value(loss_fn))

    def train(self, global_params: np.ndarray, clients: list[CohortClient], prox_mu: float = 0.0) -> list[ClientResult]:
        out: list[ClientResult] = []
        for start in range(0, len(clients), self.max_cohort):
            out += self._train_chunk(global_params, clients[start : start + self.max_cohort], prox_mu)
        return out

    def _train_chunk(self, global_params, clients, prox_mu) -> list[ClientResult]:
        cfg, dev = self.cfg, self.device
        K = len(clients)
        g32 = np.asarray(global_params, dtype=np.float32)
        g = torch.from_numpy(g32).to(dev)
        with torch.no_grad():
            self._load_frozen(g)
        base = {name: g[s].view(shape) for name, s, shape in self.entries}
        params = {name: b.unsqueeze(0).repeat(K, *([1] * b.dim())) for name, b in base.items()}
        corr = None
        if clients[0].drift is not None:
            diffs = torch.from_numpy(np.stack([np.asarray(c.drift, dtype=np.float32) for c in clients])).to(dev)
            corr = {name: diffs[:, s].reshape(K, *shape) for name, s, shape in self.entries}
        bufs: dict[str, torch.Tensor] = {}

        # The whole schedule as [T, K, B] row indices and weights (0 = masked row or no batch).
        steps = [len(c.batches) for c in clients]
        T = max(steps, default=0)
        B = max([self.width] + [len(b) for c in clients for b in c.batches])
        idx = torch.zeros(T, K, B, dtype=torch.int64)
        w = torch.zeros(T, K, B, dtype=torch.float32)
        for k, c in enumerate(clients):
            for t, b in enumerate(c.batches):
                idx[t, k, : len(b)] = b
                idx[t, k, len(b) :] = b[0]  # a real row of this client, weighted 0
                w[t, k, : len(b)] = 1.0
        counts = w.sum(2)  # [T, K]
        idx, w = idx.to(dev), w.to(dev)
        loss_sum = torch.zeros(K, dtype=torch.float64, device=dev)
        lr, mom, wd = cfg.lr, cfg.momentum, cfg.weight_decay
        model = self.model
        model.train()
        for t in range(T):
            active = [k for k in range(K) if steps[k] > t]
            full = len(active) == K
            if full:
                p_act, xi, wi = params, idx[t], w[t]
            else:
                ai = torch.as_tensor(active, device=dev)
                p_act = {n: p.index_select(0, ai) for n, p in params.items()}
                xi, wi = idx[t, ai], w[t, ai]
            grads, losses = self._grads(p_act, self.x[xi], self.y[xi], wi)
            with torch.no_grad():
                for name, _, _ in self.entries:
                    p, gr = p_act[name], grads[name]
                    if prox_mu > 0:
                        gr = gr + prox_mu * (p - base[name])
                    if corr is not None:
                        gr = gr + (corr[name] if full else corr[name].index_select(0, ai))
                    if wd != 0:
                        gr = gr + wd * p
                    if mom != 0:
                        if t == 0:  # every client's first step: torch's SGD starts the buffer at the gradient
                            bufs[name] = gr.clone()
                            gr = bufs[name]
                        elif full:
                            gr = bufs[name].mul_(mom).add_(gr)
                        else:
                            gr = bufs[name].index_select(0, ai).mul_(mom).add_(gr)
                            bufs[name].index_copy_(0, ai, gr)
                    new = p - lr * gr
                    if full:
                        params[name] = new
                    else:
                        params[name].index_copy_(0, ai, new)
                if full:
                    loss_sum += losses.double() * counts[t].to(dev, torch.float64)
                else:
                    loss_sum.index_add_(0, ai, losses.double() * counts[t, active].to(dev, torch.float64))

        with torch.no_grad():
            flat = g.unsqueeze(0).repeat(K, 1)
            for name, s, _ in self.entries:
                flat[:, s] = params[name].reshape(K, -1)
            deltas = flat.cpu().numpy() - g32
        seen = counts.sum(0).double()
        losses = (loss_sum.cpu() / seen.clamp(min=1)).tolist()
        return [
            ClientResult(
                client_id=c.client_id, num_samples=c.num_samples, delta=deltas[k], loss=losses[k], steps=steps[k]
            )
            for k, c in enumerate(clients)
        ]

    def _load_frozen(self, g: torch.Tensor) -> None:
        """Entries the cohort does not train (frozen weights) take the global values."""
        trained = {name for name, _, _ in self.entries}
        offset = 0
        for name, t in self.model.state_dict(keep_vars=True).items():
            if not torch.is_floating_point(t):
                continue
            n = t.numel()
            if name not in trained:
                t.data.copy_(g[offset : offset + n].view_as(t))
            offset += n
