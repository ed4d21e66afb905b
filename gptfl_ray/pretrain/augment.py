"""Augmentation suited to the modality, applied on batches of prepared tensors.

Images: random translation by up to `pad` pixels (reflect-free zero padding and crop), and
horizontal flips only for natural images (a flipped digit is another glyph). Audio: random
circular time shift and small Gaussian noise on the waveform-derived input.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

NO_FLIP = {"digits", "mnist", "speechcommands", "esc50"}


def augment_batch(x: torch.Tensor, dataset: str, modality: str, gen: torch.Generator) -> torch.Tensor:
    if modality == "image" and x.dim() == 4:
        n, _, h, w = x.shape
        pad = 1 if h <= 16 else 4
        padded = F.pad(x, (pad, pad, pad, pad))
        dx = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
        dy = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
        # every sample's crop in one gather over the flattened padded image (the same values as
        # slicing padded[i, :, dy[i] : dy[i] + h, dx[i] : dx[i] + w] sample by sample)
        c, wp = x.shape[1], w + 2 * pad
        at = (dy[:, None] + torch.arange(h))[:, :, None] * wp + (dx[:, None] + torch.arange(w))[:, None, :]
        out = padded.flatten(2).gather(2, at.view(n, 1, h * w).expand(n, c, h * w)).view(n, c, h, w)
        if dataset not in NO_FLIP:
            flip = torch.rand(n, generator=gen) < 0.5
            out[flip] = out[flip].flip(-1)
        return out
    if modality == "audio":
        shift = int(torch.randint(0, max(1, x.shape[-1] // 10), (1,), generator=gen))
        return torch.roll(x, shifts=shift, dims=-1) + 0.01 * torch.randn(x.shape, generator=gen)
    return x
