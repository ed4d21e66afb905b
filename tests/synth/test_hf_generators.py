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
from gptfl_ray.synth.format import TargetFormat

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
    b = batch_of(
        ["a photo of a cat", "a photo of a dog", "a photo of a cat"], seeds=[5, 6, 5], guidance=[1.25, 4.75, 1.25]
    )
    out = gen(b)
    assert seen == [1.25, 4.75]  # one pipeline call per guidance scale, not per row
    x = gen.generate(b)
    assert all(s.shape == (3, 32, 32) and s.dtype == np.uint8 for s in x)  # resized to the data set
    assert _max_diff(x[0], x[2]) <= 1 and _max_diff(x[0], x[1]) > 10  # same seed in one batch, another seed
    assert len(out["data"]) == 3


def _max_diff(a, b) -> int:
    return int(np.abs(a.astype(np.int16) - b.astype(np.int16)).max())


def test_diffusers_batched_rows_match_per_row_calls(tiny_sd):
    """A row's image does not depend on its batch mates beyond float rounding (uint8 levels)."""
    from gptfl_ray.synth.generators.diffusers_image import DiffusersImageGenerator

    gen = DiffusersImageGenerator(CIFAR, str(tiny_sd), SD_OPTS)
    seen = _record_guidance(gen)
    prompts = ["a photo of a cat", "a photo of a dog", "a red bird", "a blue sky", "a big dog", "a small cat"]
    seeds, guidance = [11, 12, 13, 14, 15, 16], [2.0, 2.0, 3.0, 2.0, 3.0, 2.0]
    batched = gen.generate(batch_of(prompts, seeds, guidance))
    assert seen == [2.0, 3.0]
    alone = [gen.generate(batch_of([p], [s], [g]))[0] for p, s, g in zip(prompts, seeds, guidance)]
    diffs = [_max_diff(a, b) for a, b in zip(batched, alone)]
    assert max(diffs) <= 1, diffs
    assert len({x.tobytes() for x in batched}) == len(prompts)


def test_diffusers_scheduler_is_dpm_solver_unless_default(tiny_sd):
    from gptfl_ray.synth.generators.diffusers_image import DiffusersImageGenerator

    assert (
        type(DiffusersImageGenerator(CIFAR, str(tiny_sd), SD_OPTS).pipe.scheduler).__name__
        == "DPMSolverMultistepScheduler"
    )
    plain = DiffusersImageGenerator(CIFAR, str(tiny_sd), {**SD_OPTS, "scheduler": "default"})
    assert type(plain.pipe.scheduler).__name__ == "DDIMScheduler"


def test_diffusers_into_digits_format(tiny_sd):
    from gptfl_ray.synth.generators.diffusers_image import DiffusersImageGenerator

    x = DiffusersImageGenerator(DIGITS, str(tiny_sd), SD_OPTS).generate(batch_of(["a handwritten digit 3"], [9]))
    assert x[0].shape == (1, 8, 8) and x[0].dtype == np.uint8 and x[0].max() <= 16


@pytest.mark.parametrize(
    "make_path",
    [
        lambda tmp: str(tmp / "no-such-model"),  # does not exist
        lambda tmp: str(tmp),  # exists, holds no model
    ],
)
def test_bad_model_path_is_one_config_error_naming_it(tmp_path, make_path):
    from gptfl_ray.synth.generators.diffusers_image import DiffusersImageGenerator

    path = make_path(tmp_path)
    with pytest.raises(ConfigError) as err:
        DiffusersImageGenerator(CIFAR, path, SD_OPTS)
    assert err.value.subject == "generate.model" and path in str(err.value) and "\n" not in str(err.value)


def test_speecht5_clips_by_path(tiny_tts, tmp_path):
    from gptfl_ray.synth.generators.speecht5 import SpeechT5Generator

    model, vocoder = tiny_tts
    gen = SpeechT5Generator(
        SPEECH, str(model), {"vocoder": str(vocoder), "maxlenratio": 4.0, "speaker_embeddings": "random"}
    )
    assert gen.resolved_revision().endswith("speakers=random-offline-fallback")
    b = batch_of(["yes", "no", "yes"], seeds=[1, 2, 1])
    clips = gen.generate(b)
    assert all(c.shape == (16000,) and c.dtype == np.float32 for c in clips)  # 16 kHz, 1 s
    assert np.array_equal(clips[0], clips[2]) and not np.array_equal(clips[0], clips[1])
    emb = tmp_path / "xvectors.npy"
    np.save(emb, np.random.default_rng(0).normal(size=(4, 512)).astype(np.float32))
    with_file = SpeechT5Generator(
        SPEECH, str(model), {"vocoder": str(vocoder), "speaker_embeddings": str(emb), "maxlenratio": 4.0}
    )
    assert with_file.generate(b)[0].shape == (16000,)
    assert "speakers=local:sha256:" in with_file.resolved_revision()
    with pytest.raises(ConfigError) as err:
        SpeechT5Generator(SPEECH, str(model), {"vocoder": str(tmp_path / "no-vocoder"), "speaker_embeddings": "random"})
    assert err.value.subject == "generate.vocoder"
    with pytest.raises(ConfigError):  # a TTS model does not make images
        SpeechT5Generator(CIFAR, str(model), {"vocoder": str(vocoder)})


def test_audioldm_clips_by_path(tiny_aldm):
    from gptfl_ray.synth.generators.audioldm import AudioLDMGenerator

    gen = AudioLDMGenerator(SOUND, str(tiny_aldm), {"steps": 2})
    seen = _record_guidance(gen)
    clips = gen.generate(
        batch_of(["a dog barking", "rain", "a dog barking"], seeds=[3, 4, 3], guidance=[2.0, 3.5, 2.0])
    )
    assert seen == [2.0, 3.5]  # rows sharing a guidance scale ran in one call
    assert all(c.shape == (8000,) and c.dtype == np.float32 for c in clips)
    scale = float(np.abs(clips[0]).max())  # random weights: tiny amplitudes, so compare relatively
    assert scale > 0 and np.abs(clips[0] - clips[2]).max() <= 1e-3 * scale < np.abs(clips[0] - clips[1]).max()
    alone = gen.generate(batch_of(["a dog barking"], seeds=[3], guidance=[2.0]))[0]
    assert np.abs(alone - clips[0]).max() <= 1e-3 * scale


def test_speaker_embeddings_from_pt_and_npy_files_and_named_errors(tmp_path):
    import torch

    from gptfl_ray.synth.generators.speecht5 import RANDOM_SPEAKERS, load_speaker_embeddings, speaker_for

    table = np.random.default_rng(1).normal(size=(3, 512)).astype(np.float32)
    torch.save(torch.from_numpy(table), tmp_path / "x.pt")
    np.save(tmp_path / "x.npy", table)
    assert np.array_equal(load_speaker_embeddings(str(tmp_path / "x.pt")), table)
    assert np.array_equal(load_speaker_embeddings(str(tmp_path / "x.npy")), table)
    assert any(np.array_equal(speaker_for(7, table), row) for row in table)  # a real row, not a new vector
    assert load_speaker_embeddings(RANDOM_SPEAKERS) is None
    np.save(tmp_path / "bad.npy", table[:, :10])
    for spec in (str(tmp_path / "bad.npy"), str(tmp_path / "missing.pt")):
        with pytest.raises(ConfigError) as err:
            load_speaker_embeddings(spec)
        assert err.value.subject == "generate.speaker_embeddings" and "\n" not in str(err.value)


def test_default_speakers_offline_is_one_line_naming_the_fallback(monkeypatch):
    import huggingface_hub

    from gptfl_ray.synth.generators import speecht5

    def offline(*a, **k):
        raise OSError("offline: no connection to the hub")

    monkeypatch.setattr(huggingface_hub.HfApi, "list_repo_files", offline)
    with pytest.raises(ConfigError) as err:
        speecht5.load_speaker_embeddings(None)  # the default: CMU ARCTIC x-vectors from the hub
    assert err.value.subject == "generate.speaker_embeddings" and "regisss/cmu-arctic-xvectors" in str(err.value)
    assert "random" in str(err.value)
