"""Generators by name (GPT-FL section 3.2): glyph (offline default), diffusers, speecht5, audioldm,
espeak.

Imports are lazy so `glyph` never pulls in diffusers or transformers.
"""

from __future__ import annotations

import importlib

from gptfl_ray.errors import ConfigError
from gptfl_ray.synth.format import TargetFormat
from gptfl_ray.synth.generators.base import Generator

_GENERATORS: dict[str, str] = {
    "glyph": "gptfl_ray.synth.generators.glyph:GlyphGenerator",
    "diffusers": "gptfl_ray.synth.generators.diffusers_image:DiffusersImageGenerator",
    "speecht5": "gptfl_ray.synth.generators.speecht5:SpeechT5Generator",
    "audioldm": "gptfl_ray.synth.generators.audioldm:AudioLDMGenerator",
    "espeak": "gptfl_ray.synth.generators.espeak:EspeakGenerator",  # offline TTS (audio teammate)
}


def generator_names() -> list[str]:
    return sorted(_GENERATORS)


def register_generator(name: str, target: str) -> None:
    """Add a generator as "module:Class" (a subclass of `Generator`)."""
    _GENERATORS[name] = target


def generator_class(name: str) -> type[Generator]:
    if name not in _GENERATORS:
        raise ConfigError(
            "generate.generator", f"unknown generator {name!r}; choose from {', '.join(generator_names())}"
        )
    module, cls = _GENERATORS[name].split(":")
    try:
        return getattr(importlib.import_module(module), cls)
    except ModuleNotFoundError as exc:
        if exc.name != module:  # a missing third-party package inside the generator: say which
            raise ConfigError(
                "generate.generator", f"{name} needs the Python package {exc.name!r}; install it"
            ) from None
        raise ConfigError("generate.generator", f"{name} is not available in this install") from None


__all__ = ["Generator", "TargetFormat", "generator_class", "generator_names", "register_generator"]
