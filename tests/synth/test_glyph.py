"""The offline glyph generator: sklearn-digits format, determinism, style words, and usefulness."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import batch_of

from gptfl_ray.errors import ConfigError
from gptfl_ray.synth.config import PromptsConfig
from gptfl_ray.synth.format import TargetFormat, decode_sample
from gptfl_ray.synth.generators import generator_class
from gptfl_ray.synth.generators.glyph import GlyphGenerator, sample_style
from gptfl_ray.synth.pipeline import plan_rows, to_batch
from gptfl_ray.synth.prompts import build_prompts

DIGITS = TargetFormat("digits", "image", (1, 8, 8), 16.0)


def test_digits_match_sklearn_format_and_are_seeded():
    gen = GlyphGenerator(DIGITS)
    b = batch_of(
        [f"a handwritten digit {i}" for i in range(10)], seeds=np.arange(10) + 100, names=[str(i) for i in range(10)]
    )
    x = np.stack(gen.generate(b))
    assert x.shape == (10, 1, 8, 8) and x.dtype == np.uint8
    assert x.max() <= 16 and x.min() == 0 and (x == 16).any()
    # the public format: size-normalised to the full 32 rows (top and bottom block rows inked)
    # and centred (ink's column centre near the middle)
    assert (x[:, 0, 0].sum(1) > 0).all() and (x[:, 0, 7].sum(1) > 0).all()
    centre = (x[:, 0].sum(1) * np.arange(8)).sum(1) / x[:, 0].sum((1, 2))
    assert (np.abs(centre - 3.5) < 1.5).all()
    again = np.stack(gen.generate(b))
    assert np.array_equal(x, again)
    other = np.stack(gen.generate({**b, "seed": b["seed"] + 1}))
    assert not np.array_equal(x, other)
    out = gen(b)  # the callable-class contract: encoded PNG bytes that decode to the same array
    assert set(out) >= {"data", "label", "label_name", "prompt", "guidance", "seed", "generator"}
    assert np.array_equal(np.stack([decode_sample(d, DIGITS) for d in out["data"]]), x)


def test_glyph_settings_come_from_the_format_not_from_real_samples():
    """The generator never sees the clients' data: it reads no data set and no sample statistics."""
    import ast
    import inspect

    import gptfl_ray.synth.generators.glyph as glyph

    tree = ast.parse(inspect.getsource(glyph))
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)} | {
        a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names
    }
    assert not any(m and (m.startswith("gptfl_ray.data") or m.startswith("sklearn")) for m in imported)
    attrs = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    assert not attrs & {"x_train", "y_train", "x_val", "y_val", "x_test", "y_test", "load_digits"}
    # without style words every font may be drawn: no shortlist picked by scores on real digits
    assert glyph.DEFAULT_FONTS == glyph.ALL_FONTS


def test_style_words_steer_rendering():
    rng = np.random.default_rng(0)
    bold = [sample_style("digit 3, bold", rng) for _ in range(50)]
    thin = [sample_style("digit 3, thin", rng) for _ in range(50)]
    assert min(s.stroke for s in bold) > max(s.stroke for s in thin)
    assert all("Bol" in s.font or s.font == "cmb10.ttf" for s in bold)
    assert all("Mono" in s.font or s.font == "cmtt10.ttf" for s in (sample_style("mono 1", rng) for _ in range(20)))
    slanted = np.mean([sample_style("slanted 4", rng).shear for _ in range(50)])
    upright = np.mean([sample_style("upright 4", rng).shear for _ in range(50)])
    assert slanted > upright + 0.1
    assert all(sample_style("noisy 5", rng).noise > 0 for _ in range(20))


@pytest.mark.parametrize("shape", [(3, 32, 32), (1, 28, 28)])
def test_other_image_sets_get_their_size_and_channels(shape):
    target = TargetFormat("cifar10", "image", shape)
    x = GlyphGenerator(target).generate(
        batch_of(["a photo of a cat", "a photo of a truck, noisy"], [1, 2], names=["cat", "truck"])
    )
    assert all(s.shape == shape and s.dtype == np.uint8 for s in x)
    assert all(s.std() > 10 for s in x)  # something is drawn


def test_glyph_refuses_audio():
    with pytest.raises(ConfigError):
        GlyphGenerator(TargetFormat("speechcommands", "audio", (16000,), 1.0))


def test_unknown_generator_is_a_config_error():
    with pytest.raises(ConfigError) as err:
        generator_class("dalle")
    assert err.value.subject == "generate.generator"


def test_classifier_trained_on_glyph_digits_alone_beats_chance_on_real_digits(digits):
    """GPT-FL's zero-shot check (Table 3) in miniature: train on synthetic only, test on real."""
    from sklearn.linear_model import LogisticRegression

    rows = plan_rows(build_prompts(digits, PromptsConfig(per_class=60, seed=3)), seed=3)
    x = np.stack(GlyphGenerator(DIGITS).generate(to_batch(rows)))
    y = np.array([r["label"] for r in rows])
    clf = LogisticRegression(C=0.1, max_iter=2000).fit(x.reshape(len(x), -1) / 16.0, y)
    acc = clf.score(digits.x_val.reshape(len(digits.x_val), -1) / 16.0, digits.y_val)
    assert acc > 0.45, f"glyph-trained accuracy on real digits {acc:.3f} (chance 0.10)"
