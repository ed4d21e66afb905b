"""Models by name: `build_model(name, input_shape, num_classes, norm)`.

GPT-FL evaluates ConvNet, ResNet-18/50 and VGG-19 on images (paper section 4.1); `cnn` is the
CPU-sized default for 8x8 digits and `mlp` a tiny net for tests; `fedaudio` is the FedAudio
conv-RNN GPT-FL uses for Speech Commands and ESC-50. `norm="default"` means each
family's own default (ConvNet: instance, ResNet/VGG: batch, cnn/mlp: none).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from gptfl_ray.errors import ConfigError


@dataclass(frozen=True)
class ModelSpec:
    build: Callable[[tuple[int, ...], int, str], nn.Module]
    norms: tuple[str, ...]  # first is the default
    image: bool = True  # needs a (C, H, W) input shape


def _cnn(shape, k, norm):
    from gptfl_ray.models.cnn import SmallCNN

    return SmallCNN(shape[0], k)


def _mlp(shape, k, norm):
    from gptfl_ray.models.cnn import MLP

    return MLP(shape, k)


def _convnet(shape, k, norm):
    from gptfl_ray.models.convnet import ConvNet

    return ConvNet(shape, k, norm=norm)


def _resnet(depth_name):
    def build(shape, k, norm):
        from gptfl_ray.models.resnet import build_resnet

        return build_resnet(depth_name, shape, k, norm=norm)

    return build


def _vgg19(shape, k, norm):
    from gptfl_ray.models.vgg import VGG

    return VGG(shape, k, norm=norm)


def _fedaudio(shape, k, norm):
    from gptfl_ray.models.audio_rnn import FedAudioConvRNN

    if len(shape) != 2:
        raise ConfigError("model.name", f"fedaudio needs (mel bins, frames) audio features, got shape {shape}")
    return FedAudioConvRNN(k, n_mels=shape[0])


_MODELS: dict[str, ModelSpec] = {
    "cnn": ModelSpec(_cnn, ("none",)),
    "mlp": ModelSpec(_mlp, ("none",), image=False),
    "convnet": ModelSpec(_convnet, ("instance", "batch", "group", "none")),
    "resnet18": ModelSpec(_resnet("resnet18"), ("batch", "group")),
    "resnet50": ModelSpec(_resnet("resnet50"), ("batch", "group")),
    "vgg19": ModelSpec(_vgg19, ("batch", "group", "none")),
    "fedaudio": ModelSpec(_fedaudio, ("none",), image=False),  # FedAudio conv-RNN (audio_rnn.py)
}


def register_model(name: str, spec: ModelSpec) -> None:
    """For model families living elsewhere (e.g. the audio conv-RNN)."""
    _MODELS[name] = spec


def model_names() -> list[str]:
    return sorted(_MODELS)


def model_norms(name: str) -> tuple[str, ...]:
    return _MODELS[name].norms


def build_model(name: str, input_shape: tuple[int, ...], num_classes: int, norm: str = "default") -> nn.Module:
    if name not in _MODELS:
        raise ConfigError("model.name", f"unknown model {name!r}; choose from {', '.join(model_names())}")
    spec = _MODELS[name]
    shape = tuple(int(s) for s in input_shape)
    if spec.image and (len(shape) != 3 or min(shape) < 1):
        raise ConfigError("model.name", f"{name} needs (channels, height, width) image input, got shape {shape}")
    if num_classes < 1:
        raise ConfigError("model.name", f"need at least one class, got {num_classes}")
    kind = spec.norms[0] if norm == "default" else norm
    if kind not in spec.norms:
        raise ConfigError("model.norm", f"{name} supports {', '.join(('default',) + spec.norms)}; got {norm!r}")
    return spec.build(shape, int(num_classes), kind)
