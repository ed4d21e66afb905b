"""The espeak generator: 16 kHz clips of the data set's length, seeded, steered by style words."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from gptfl_ray.errors import ConfigError
from gptfl_ray.seeding import row_rng
from gptfl_ray.synth.format import TargetFormat
from gptfl_ray.synth.generators.espeak import (
    FEMALE,
    MALE,
    MISSING,
    WHISPER,
    EspeakGenerator,
    find_program,
    sample_settings,
    trim,
)

needs_espeak = pytest.mark.skipif(
    shutil.which("espeak-ng") is None,
    reason="espeak-ng is not installed (apt-get install espeak-ng); the generator cannot run",
)
SPEECH = TargetFormat("speechcommands", "audio", (16_000,), 1.0, 16_000)
ESC = TargetFormat("esc50", "audio", (80_000,), 1.0, 16_000)


def _batch(names, prompts=None, seeds=None, guidance=3.0):
    n = len(names)
    return {
        "row": np.arange(n),
        "label": np.arange(n),
        "label_name": np.array(names, dtype=object),
        "prompt": np.array(prompts or names, dtype=object),
        "guidance": np.full(n, guidance),
        "seed": np.asarray(seeds if seeds is not None else np.arange(n) + 7),
    }


@needs_espeak
def test_clips_are_16khz_and_the_target_length():
    gen = EspeakGenerator(SPEECH)
    clips = gen.generate(_batch(["yes", "backward", "visual"], ["yes", "backward, slowly", "visual"]))
    for clip in clips:
        assert clip.shape == (16_000,) and clip.dtype == np.float32
        assert np.abs(clip).max() > 0.04 and np.abs(clip).max() <= 1.0
    # a slow "backward" is longer than 1 s: it is sped up, not cut off mid-word
    assert len(trim(clips[1], 0.05)) < 16_000
    esc = EspeakGenerator(ESC).generate(
        _batch(
            ["chirping birds"],
            [
                "chirping birds",
            ],
        )
    )
    assert esc[0].shape == (80_000,)


@needs_espeak
def test_speech_is_at_16khz():
    """espeak-ng speaks at 22.05 kHz: the clip must last as many seconds, at 16 kHz."""
    from gptfl_ray.synth.generators.espeak import speak

    gen = EspeakGenerator(SPEECH, options={"noise": False})
    settings = sample_settings("seven, clean", row_rng(5), 3.0, gen.program, None)
    raw, sr = speak(gen.program, "seven", settings["voice"], settings["pitch"], settings["speed"], settings["gap"])
    assert sr == 22_050
    clip = gen.generate(_batch(["seven"], ["seven, clean"], seeds=[5]))[0]
    seconds_raw = len(trim(raw)) / sr
    seconds_clip = len(trim(clip)) / 16_000
    assert 0.2 < seconds_clip < 1.0 and abs(seconds_clip - seconds_raw) < 0.01
    spec = np.abs(np.fft.rfft(clip)) ** 2
    f = np.fft.rfftfreq(len(clip), 1 / 16_000)
    assert spec[f < 4000].sum() > 0.9 * spec.sum()  # voiced speech energy, not aliasing


@needs_espeak
def test_deterministic_by_seed():
    gen = EspeakGenerator(SPEECH)
    a = gen.generate(_batch(["no", "go"], seeds=[11, 12]))
    b = EspeakGenerator(SPEECH).generate(_batch(["go", "no"], seeds=[12, 11]))  # order and batch do not matter
    np.testing.assert_array_equal(a[0], b[1])
    np.testing.assert_array_equal(a[1], b[0])
    c = gen.generate(_batch(["no"], seeds=[13]))
    assert not np.array_equal(a[0], c[0])


@needs_espeak
def test_style_words_steer_voice_speed_and_noise():
    p = find_program()
    rngs = [row_rng(s) for s in range(40)]
    fem = [sample_settings("yes, said by a woman", r, 3.0, p, None) for r in rngs]
    assert all(s["voice"].split("+")[1] in FEMALE for s in fem)
    male = [sample_settings("a man says yes", row_rng(s), 3.0, p, None) for s in range(40)]
    assert all(s["voice"].split("+")[1] in MALE for s in male)
    assert sample_settings("whispered yes", row_rng(0), 3.0, p, None)["voice"].split("+")[1] in WHISPER
    assert sample_settings("scottish yes", row_rng(0), 3.0, p, None)["voice"].startswith("en-gb-scotland+")
    fast = [sample_settings("yes, fast", row_rng(s), 3.0, p, None)["speed"] for s in range(20)]
    slow = [sample_settings("yes, slowly", row_rng(s), 3.0, p, None)["speed"] for s in range(20)]
    assert min(fast) > max(slow)
    assert sample_settings("yes, clean", row_rng(0), 3.0, p, None)["snr"] is None
    assert sample_settings("yes, noisy street", row_rng(0), 3.0, p, None)["snr"] <= 12
    # the user's voice pool overrides the voice words (e.g. to hold voices out)
    pool = ("en-us+m3",)
    assert sample_settings("a woman says yes", row_rng(1), 3.0, p, pool)["voice"] == "en-us+m3"
    gen = EspeakGenerator(SPEECH, options={"voices": "en-us+m3,en-gb+f2"})
    assert gen.pool == ("en-us+m3", "en-gb+f2")


def test_missing_program_is_a_one_line_config_error():
    with pytest.raises(ConfigError) as e:
        EspeakGenerator(SPEECH, model="no-such-espeak-program")
    assert e.value.subject == "generate.generator" and e.value.problem == MISSING
    with pytest.raises(ConfigError, match="apt-get install espeak-ng"):
        EspeakGenerator.preflight(SPEECH, "no-such-espeak-program", {})


def test_refuses_image_targets():
    with pytest.raises(ConfigError, match="audio"):
        EspeakGenerator(TargetFormat("cifar10", "image", (3, 32, 32)))


@needs_espeak
def test_call_returns_wav_rows_the_store_reads_back():
    fmt = pytest.importorskip("gptfl_ray.synth.format")
    gen = EspeakGenerator(SPEECH)
    batch = _batch(["up", "down"])
    out = gen(batch)
    assert list(out["generator"]) == ["espeak", "espeak"] and list(out["label_name"]) == ["up", "down"]
    back = fmt.decode_sample(out["data"][0], SPEECH)
    np.testing.assert_array_equal(back, gen.generate(_batch(["up"], seeds=[7]))[0])
