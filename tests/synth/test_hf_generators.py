"""Hugging Face generators on tiny random-weight models loaded by path (section 3.2).

Each model is built from a small config and saved with save_pretrained, so the generators' real
`from_pretrained(path)` code runs. Checked: output shape and dtype in the data set's raw format,
per-row seeds (same seed, same bytes; another seed, other bytes), each row's guidance reaching
the pipeline, and one-line errors for model paths that do not exist or hold no model.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import batch_of

from gptfl_ray.errors import ConfigError
from gptfl_ray.synth.generators.base import TargetFormat

CIFAR = TargetFormat("cifar10", "image", (3, 32, 32))
DIGITS = TargetFormat("digits", "image", (1, 8, 8), 16.0)
SPEECH = TargetFormat("speechcommands", "audio", (16000,), 1.0)
SOUND = TargetFormat("esc50", "audio", (8000,), 1.0)
SD_OPTS = {"steps": 2, "height": 16, "width": 16}


class _GuidanceSpy:
    """Stands in for a pipeline: records each call's guidance scale, then forwards the call."""

    def __init__(self, pipe):
        self.pipe, self.seen = pipe, []

    def __call__(self, *args, **kwargs):
        self.seen.append(kwargs["guidance_scale"])
        return self.pipe(*args, **kwargs)


def _record_guidance(gen):
    gen.pipe = _GuidanceSpy(gen.pipe)
    return gen.pipe.seen


def test_diffusers_images_by_path_seeded_and_guided(tiny_sd):
    from gptfl_ray.synth.generators.diffusers_image import DiffusersImageGenerator

    gen = DiffusersImageGenerator(CIFAR, str(tiny_sd), SD_OPTS)
    seen = _record_guidance(gen)
    b = batch_of(["a photo of a cat", "a photo of a dog", "a photo of a cat"], seeds=[5, 6, 5],
                 guidance=[1.25, 4.75, 1.25])
    out = gen(b)
    assert seen == [1.25, 4.75, 1.25]
    assert out["data"][0] == out["data"][2] and out["data"][0] != out["data"][1]
    x = gen.generate(b)
    assert all(s.shape == (3, 32, 32) and s.dtype == np.uint8 for s in x)  # resized to the data set
    assert np.array_equal(x[0], x[2]) and not np.array_equal(x[0], x[1])


def test_diffusers_into_digits_format(tiny_sd):
    from gptfl_ray.synth.generators.diffusers_image import DiffusersImageGenerator

    x = DiffusersImageGenerator(DIGITS, str(tiny_sd), SD_OPTS).generate(batch_of(["a handwritten digit 3"], [9]))
    assert x[0].shape == (1, 8, 8) and x[0].dtype == np.uint8 and x[0].max() <= 16


@pytest.mark.parametrize("make_path", [
    lambda tmp: str(tmp / "no-such-model"),  # does not exist
    lambda tmp: str(tmp),  # exists, holds no model
])
def test_bad_model_path_is_one_config_error_naming_it(tmp_path, make_path):
    from gptfl_ray.synth.generators.diffusers_image import DiffusersImageGenerator

    path = make_path(tmp_path)
    with pytest.raises(ConfigError) as err:
        DiffusersImageGenerator(CIFAR, path, SD_OPTS)
    assert err.value.subject == "--model" and path in str(err.value) and "\n" not in str(err.value)


def test_speecht5_clips_by_path(tiny_tts, tmp_path):
    from gptfl_ray.synth.generators.speecht5 import SpeechT5Generator

    model, vocoder = tiny_tts
    gen = SpeechT5Generator(SPEECH, str(model), {"vocoder": str(vocoder), "maxlenratio": 4.0})
    b = batch_of(["yes", "no", "yes"], seeds=[1, 2, 1])
    clips = gen.generate(b)
    assert all(c.shape == (16000,) and c.dtype == np.float32 for c in clips)  # 16 kHz, 1 s
    assert np.array_equal(clips[0], clips[2]) and not np.array_equal(clips[0], clips[1])
    emb = tmp_path / "xvectors.npy"
    np.save(emb, np.random.default_rng(0).normal(size=(4, 512)).astype(np.float32))
    with_file = SpeechT5Generator(SPEECH, str(model), {"vocoder": str(vocoder), "speaker_embeddings": str(emb),
                                                       "maxlenratio": 4.0})
    assert with_file.generate(b)[0].shape == (16000,)
    with pytest.raises(ConfigError) as err:
        SpeechT5Generator(SPEECH, str(model), {"vocoder": str(tmp_path / "no-vocoder")})
    assert err.value.subject == "--vocoder"
    with pytest.raises(ConfigError):  # a TTS model does not make images
        SpeechT5Generator(CIFAR, str(model), {"vocoder": str(vocoder)})


def test_audioldm_clips_by_path(tiny_aldm):
    from gptfl_ray.synth.generators.audioldm import AudioLDMGenerator

    gen = AudioLDMGenerator(SOUND, str(tiny_aldm), {"steps": 2})
    seen = _record_guidance(gen)
    clips = gen.generate(batch_of(["a dog barking", "rain", "a dog barking"], seeds=[3, 4, 3], guidance=[2.0, 3.5, 2.0]))
    assert seen == [2.0, 3.5, 2.0]
    assert all(c.shape == (8000,) and c.dtype == np.float32 for c in clips)
    assert np.array_equal(clips[0], clips[2]) and not np.array_equal(clips[0], clips[1])
