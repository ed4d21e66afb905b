"""One client's local update (no Ray; docs/architecture.md rule 5).

Local SGD from the global weights on the client's own samples, with what the algorithm adds
to every gradient (`ClientTerms`, fl/algorithms/local.py: FedProx's proximal pull, SCAFFOLD's
correction). The update is returned as a flat delta (local - global) so aggregation and secure
aggregation work on plain vectors; the algorithm's own upload and per-client state are added by
its `finish` hook in the executor (fl/executor.py), the same for both executors.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from gptfl_ray.fl.algorithms.local import ClientTerms
from gptfl_ray.models.params import get_flat, set_flat


@dataclass(frozen=True)
class LocalTrainConfig:
    epochs: int = 1
    batch_size: int = 32
    lr: float = 0.05
    momentum: float = 0.0
    weight_decay: float = 0.0


@dataclass
class ClientResult:
    client_id: int
    num_samples: int
    delta: np.ndarray
    loss: float
    steps: int
    extra: np.ndarray | None = None  # the algorithm's extra upload (SCAFFOLD: c_i+ - c_i)
    new_state: np.ndarray | None = None  # the client's state for its next visit (SCAFFOLD: c_i+)


def param_layout(model: torch.nn.Module) -> tuple[list[tuple[torch.nn.Parameter, slice]], np.ndarray]:
    """Where each trainable parameter lives in the flat state vector, and a mask of those spots.

    The flat vector also holds float buffers (BatchNorm statistics); they are averaged like
    weights but take no proximal term or control correction.
    """
    params = dict(model.named_parameters())
    out, offset = [], 0
    mask_parts = []
    for name, t in model.state_dict(keep_vars=True).items():
        if not torch.is_floating_point(t):
            continue
        n = t.numel()
        is_param = name in params and params[name].requires_grad
        if is_param:
            out.append((params[name], slice(offset, offset + n)))
        mask_parts.append(np.full(n, is_param))
        offset += n
    return out, (np.concatenate(mask_parts) if mask_parts else np.zeros(0, bool))


_TORCH_TAG = 0x70C4  # separates torch's stream (dropout masks, augmentation) from the shuffle's


@contextmanager
def client_rng(seed: int, device: torch.device):
    """torch's global generators seeded from the client's seed for the duration of its update,
    and restored afterwards: dropout masks and any augmentation then depend on (seed, round,
    client) only, not on which executor ran the client or what it ran before (docs/architecture.md rule 4)."""
    cuda = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    torch_seed = int(np.random.SeedSequence([seed, _TORCH_TAG]).generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))
    with torch.random.fork_rng(devices=cuda):
        torch.manual_seed(torch_seed)
        yield


def client_update(
    model: torch.nn.Module,
    global_params: np.ndarray,
    x: torch.Tensor,
    y: torch.Tensor,
    cfg: LocalTrainConfig,
    seed: int,
    *,
    client_id: int = -1,
    terms: ClientTerms | None = None,
    layout=None,
) -> ClientResult:
    """Train `model` from `global_params` on (x, y); x and y already sit on the model's device.
    Every random draw derives from `seed`: the shuffle from its own generator, the rest from
    torch's, seeded by `client_rng`."""
    with client_rng(seed, x.device):
        return _client_update(
            model, global_params, x, y, cfg, seed, client_id=client_id, terms=terms or ClientTerms(), layout=layout
        )


def _client_update(model, global_params, x, y, cfg, seed, *, client_id, terms, layout) -> ClientResult:
    device = x.device
    set_flat(model, global_params)
    model.train()
    layout = layout or param_layout(model)
    slices, _ = layout
    opt = LocalSGD(list(model.parameters()), cfg)
    mu = float(terms.prox_mu)
    anchors = [p.detach().clone() for p, _ in slices] if mu > 0 else None
    drift = None
    if terms.drift is not None:
        d = torch.from_numpy(np.asarray(terms.drift, dtype=np.float32)).to(device)
        drift = [d[s].view_as(p) for p, s in slices]

    n = len(y)
    steps, loss_sum, seen = 0, 0.0, 0
    for idx in client_batches(n, cfg, seed):
        idx = idx.to(device)
        opt.zero_grad()
        out = model(x[idx])
        loss = F.cross_entropy(out, y[idx])
        loss.backward()
        # the algorithm's terms, added to the gradient as the vectorized executor adds them:
        # g += mu * (w - w_global) + drift (the gradient of mu/2 ||w - w_global||^2 is the first)
        for j, (p, _) in enumerate(slices):
            if p.grad is None:
                continue
            if anchors is not None:
                p.grad.add_(p.detach() - anchors[j], alpha=mu)
            if drift is not None:
                p.grad.add_(drift[j])
        opt.step()
        steps += 1
        loss_sum += float(loss.detach()) * len(idx)
        seen += len(idx)

    delta = get_flat(model) - global_params.astype(np.float32)
    return ClientResult(client_id=client_id, num_samples=n, delta=delta, loss=loss_sum / max(seen, 1), steps=steps)


class LocalSGD:
    """torch.optim.SGD's step (no dampening, no Nesterov), bit for bit: the same ops in the same
    order as torch's single-tensor path, which torch itself takes for CPU tensors. Written out
    because building the first `torch.optim` optimizer in a process imports torch._dynamo, about
    1 s of CPU in every executor process (tests/fl/test_local_sgd.py checks both claims)."""

    def __init__(self, params: list[torch.Tensor], cfg: LocalTrainConfig):
        self.params = params
        self.lr, self.momentum, self.weight_decay = float(cfg.lr), float(cfg.momentum), float(cfg.weight_decay)
        self.bufs: list[torch.Tensor | None] = [None] * len(params)

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        for i, p in enumerate(self.params):
            grad = p.grad
            if grad is None:  # torch's SGD skips such a parameter and keeps its buffer
                continue
            if self.weight_decay != 0:
                grad = grad.add(p, alpha=self.weight_decay)
            if self.momentum != 0:
                buf = self.bufs[i]
                if buf is None:
                    buf = self.bufs[i] = grad.detach().clone()
                else:
                    buf.mul_(self.momentum).add_(grad, alpha=1)
                grad = buf
            p.add_(grad, alpha=-self.lr)


def client_batches(n: int, cfg: LocalTrainConfig, seed: int) -> list[torch.Tensor]:
    """The client's local batches, in order: one seeded shuffle per epoch, then `batch_size` cuts.

    Both executors (sequential and vectorized) train on exactly these index lists.
    """
    gen = torch.Generator().manual_seed(seed)
    bs = max(1, min(cfg.batch_size, n))
    out = []
    for _ in range(cfg.epochs):
        perm = torch.randperm(n, generator=gen)
        for start in range(0, n, bs):
            idx = perm[start : start + bs]
            if len(idx) == 1 and n > 1:
                continue  # a batch of one breaks BatchNorm; its sample is seen next epoch
            out.append(idx)
    return out
