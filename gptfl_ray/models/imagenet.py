"""ImageNet-pretrained starting points from torchvision (GPT-FL Table 5).

The paper initialises ResNet18/50 and VGG19 from torchvision's ImageNet weights before both the
synthetic pre-training and the FL baselines. Weights come from torchvision's download cache
(`$TORCH_HOME/hub/checkpoints`); offline and without a cached copy this fails with one line.
Layers whose shapes differ from ours (the CIFAR stem, the classifier) keep their random init.
"""

from __future__ import annotations

import contextlib
import io

import torch

from gptfl_ray.errors import ConfigError

WEIGHTS = {
    "resnet18": "ResNet18_Weights.IMAGENET1K_V1",
    "resnet50": "ResNet50_Weights.IMAGENET1K_V2",
    "vgg19": "VGG19_BN_Weights.IMAGENET1K_V1",
}


def load_imagenet_weights(model: torch.nn.Module, name: str) -> tuple[torch.nn.Module, int]:
    """Copy every ImageNet tensor whose name and shape fit into `model`; returns (model, count)."""
    if name not in WEIGHTS:
        raise ConfigError(
            "simulate.init_pretrained", f"no ImageNet weights for model {name!r}; available for {', '.join(WEIGHTS)}"
        )
    from torchvision.models import get_weight

    try:
        with contextlib.redirect_stdout(io.StringIO()):  # torch.hub prints "Downloading: ..."
            state = get_weight(WEIGHTS[name]).get_state_dict(progress=False)
    except Exception as exc:  # URLError offline, or a corrupt cache file
        raise ConfigError(
            "simulate.init_pretrained",
            f"could not load torchvision {WEIGHTS[name]} ({type(exc).__name__}; needs network or a cached copy in $TORCH_HOME/hub/checkpoints)",
        ) from None
    own = model.state_dict()
    # our resnet/vgg builders keep torchvision's parameter names
    fitted = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(fitted, strict=False)
    return model, len(fitted)
