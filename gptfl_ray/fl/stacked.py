"""A cohort's forward pass written out by hand: K clients' copies of one feed-forward net as one net.

`vmap(grad_and_value(functional_call(...)))` (fl/vectorized.py) batches any module, but on a
small net most of its time is spent in the batching machinery itself, and its first call
imports torch._dynamo (~1.7 s, paid by every fresh executor). For nets that are a plain chain
of the layers below, the cohort's forward is written directly on stacked weights and plain
autograd takes the gradient:

- activations of convolutional layers are laid out `[B, K*C, ...]`: client k owns channels
  `k*C .. (k+1)*C`, so a `Conv` becomes one grouped convolution (`groups = K * groups`), a
  `GroupNorm` one group norm with `K * num_groups` groups, and pooling and ReLU act per channel
  as they are;
- activations of linear layers are laid out `[K, B, F]`, and a `Linear` is one `baddbmm`.

Every client's rows meet only its own weights, so its logits (and, through autograd of the
sum of the clients' losses, its gradient) are those of its own net. `StackedNet.build` walks
the leaf modules in registration order, which is the forward order only for a chain; so the
plan is accepted only after a probe: the stacked forward of two differently-weighted copies
must reproduce each copy's own `model(x)`. A net that branches (a residual block) or does
something its modules do not show fails the probe, and the caller keeps vmap; so does a net
with forward hooks, which the stacked forward would skip.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

_CONV = {nn.Conv1d: F.conv1d, nn.Conv2d: F.conv2d}
_POOL = (nn.MaxPool1d, nn.MaxPool2d, nn.AvgPool1d, nn.AvgPool2d, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d)
_IDENTITY = (nn.Identity, nn.Dropout)  # dropout only with p == 0 (fl/vectorized.py refuses p > 0)

Op = Callable[[dict[str, torch.Tensor], torch.Tensor, int], torch.Tensor]


def _flatten(h: torch.Tensor, B: int, K: int) -> torch.Tensor:
    """[B, K*C, ...] -> [K, B, C*...], each client's features in model(x).flatten(1)'s order."""
    return h.reshape(B, K, -1).transpose(0, 1)


def _adaptive_identity(m: nn.Module, h: torch.Tensor) -> bool:
    """An adaptive average pool to the size its input already has averages windows of one."""
    if not isinstance(m, (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d)):
        return False
    size = h.shape[2:]
    out = m.output_size if isinstance(m.output_size, tuple) else (m.output_size,) * len(size)
    return all(o is None or o == s for o, s in zip(out, size))


class StackedNet:
    """`forward(params, x)`: params `{name: [K, *shape]}`, x `[K, B, *input]` -> logits `[K, B, classes]`."""

    def __init__(self, model: nn.Module, ops: list[tuple[str, nn.Module]]):
        self.model, self.ops = model, ops
        self.frozen = {n: p for n, p in model.named_parameters() if not p.requires_grad}
        # NHWC, except around group norms: on CPU, group norm's backward over the stacked channels
        # took 335 ms in NHWC against 44 ms in NCHW (DynaFed's ConvNet, a cohort of 10 x 10 rows
        # of 3x32x32; the whole step 841 ms against 644 ms).
        self.channels_last = not any(isinstance(m, nn.GroupNorm) for _, m in ops)

    @classmethod
    def build(cls, model: nn.Module, input_shape: tuple[int, ...]) -> StackedNet | None:
        """The stacked form of `model`, or None when it is not a chain of supported layers."""
        if any(m._forward_hooks or m._forward_pre_hooks for m in model.modules()):
            return None  # a hook sees (or changes) what model(x) computes; the stacked forward skips it
        leaves = [(n, m) for n, m in model.named_modules() if not any(True for _ in m.children())]
        for _, m in leaves:
            if type(m) in _CONV:
                if m.padding_mode != "zeros" or isinstance(m.padding, str):
                    return None
            elif not isinstance(m, (nn.Linear, nn.ReLU, nn.Flatten, nn.GroupNorm, *_POOL, *_IDENTITY)):
                return None
            if isinstance(m, nn.Flatten) and (m.start_dim, m.end_dim) != (1, -1):
                return None
        net = cls(model, leaves)
        try:
            ok = net._probe(input_shape)
        except (RuntimeError, ValueError, IndexError):
            return None
        return net if ok else None

    def forward(self, params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        K, B = x.shape[:2]

        def p(name: str) -> torch.Tensor | None:
            if name in params:
                return params[name]
            t = self.frozen.get(name)
            return None if t is None else t.unsqueeze(0).expand(K, *t.shape)

        flat = x.dim() == 3  # vector inputs start in the [K, B, F] layout
        h = x if flat else x.transpose(0, 1).reshape(B, K * x.shape[2], *x.shape[3:])
        if h.dim() == 4 and self.channels_last:
            # NHWC: on CPU, max pooling [B, K*C, H, W] in NCHW takes ~30x longer (1.1 ms against
            # 38 us for the digits cnn's cohort of 10) and ReLU's backward slows as much where
            # NCHW and NHWC tensors meet; oneDNN's convolutions keep NHWC in and out.
            h = h.contiguous(memory_format=torch.channels_last)
        for name, m in self.ops:
            pre = f"{name}." if name else ""
            if type(m) in _CONV:
                if flat:
                    raise ValueError("a convolution after a linear layer")
                w, b = p(pre + "weight"), p(pre + "bias")
                h = _CONV[type(m)](
                    h,
                    w.reshape(-1, *w.shape[2:]),
                    None if b is None else b.reshape(-1),
                    m.stride,
                    m.padding,
                    m.dilation,
                    K * m.groups,
                )
            elif isinstance(m, nn.Linear):
                if not flat:
                    h, flat = _flatten(h, B, K), True
                w, b = p(pre + "weight"), p(pre + "bias")
                wt = w.transpose(1, 2)
                h = torch.bmm(h, wt) if b is None else torch.baddbmm(b.unsqueeze(1), h, wt)
            elif isinstance(m, nn.ReLU):
                h = F.relu(h)
            elif isinstance(m, nn.Flatten):
                if not flat:
                    h, flat = _flatten(h, B, K), True
            elif isinstance(m, nn.GroupNorm):
                if flat:
                    raise ValueError("a group norm after a linear layer")
                w, b = p(pre + "weight"), p(pre + "bias")
                h = F.group_norm(
                    h,
                    K * m.num_groups,
                    None if w is None else w.reshape(-1),
                    None if b is None else b.reshape(-1),
                    m.eps,
                )
            elif isinstance(m, _POOL):
                if flat:
                    raise ValueError("a pooling layer after a linear layer")
                if not _adaptive_identity(m, h):  # (its backward alone costs 0.4 ms on the cnn's cohort)
                    h = m(h)  # per channel: the stacked layout is the same call
            # identities: nothing to do
        if not flat:
            raise ValueError("the net does not end in a linear layer")
        return h

    def _probe(self, input_shape: tuple[int, ...]) -> bool:
        """Two clients with different weights: each one's stacked logits must be its own model(x)."""
        model = self.model
        gen = torch.Generator().manual_seed(0)
        named = dict(model.named_parameters())
        device = next(iter(named.values())).device if named else torch.device("cpu")
        trained = {n: t for n, t in named.items() if t.requires_grad}
        other = {
            n: t.detach()
            + 0.1 * torch.randn(t.shape, generator=gen).to(device) * (t.detach().std(unbiased=False) + 0.1)
            for n, t in trained.items()
        }
        x = torch.randn(2, 3, *input_shape, generator=gen).to(device)
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                stacked = self.forward(
                    {n: torch.stack([t.detach(), other[n]]) for n, t in trained.items()},
                    x,
                )
                own = [model(x[0])]
                saved = {n: t.detach().clone() for n, t in trained.items()}
                for n, t in trained.items():
                    t.copy_(other[n])
                own.append(model(x[1]))
                for n, t in trained.items():
                    t.copy_(saved[n])
        finally:
            model.train(was_training)
        ref = torch.stack(own)
        if stacked.shape != ref.shape:
            return False
        scale = ref.abs().max().clamp(min=1e-6)
        return bool(((stacked - ref).abs().max() <= 1e-4 * scale).item())
