"""Label sets and prompts (GPT-FL section 3.1): validation, styles, seeds, guidance in [1, 5], LLM fill-in."""

from __future__ import annotations

import json

import pytest
from conftest import fake_dataset

from gptfl_ray.errors import ConfigError
from gptfl_ray.synth.config import GenerateConfig, PromptsConfig
from gptfl_ray.synth.labels import client_label_names, parse_label_option, server_label_names, union_label_names
from gptfl_ray.synth.prompts import (
    GLYPH_STYLE_WORDS,
    build_prompts,
    ensure_prompts,
    names_label,
    prompts_path,
    read_prompts,
    take_per_class,
    write_prompts,
)


def test_server_label_names_accepts_a_received_set_in_dataset_order(digits):
    assert server_label_names(digits) == list(digits.class_names)
    # an IBLT-decoded union arrives as an unordered set: indices must still line up with the data
    assert server_label_names(digits, {"9", "3", "0", "1", "2", "4", "5", "6", "7", "8"}) == list(digits.class_names)
    halves = [client_label_names(digits, range(0, 700)), client_label_names(digits, range(700, len(digits.y_train)))]
    assert server_label_names(digits, union_label_names(halves)) == list(digits.class_names)


@pytest.mark.parametrize(
    "names, fragment",
    [
        (["0", "1", "cat"], "not in the data set: 'cat'"),
        ([str(i) for i in range(9)], "missing: '9'"),
    ],
)
def test_label_set_that_does_not_match_is_one_config_error(digits, names, fragment):
    with pytest.raises(ConfigError) as err:
        server_label_names(digits, names)
    assert err.value.subject == "prompts.labels" and fragment in str(err.value) and "\n" not in str(err.value)


def test_parse_label_option(tmp_path):
    assert parse_label_option("a, b,c") == ["a", "b", "c"]
    f = tmp_path / "labels.json"
    f.write_text(json.dumps(["x", "y"]))
    assert parse_label_option(f"@{f}") == ["x", "y"]
    with pytest.raises(ConfigError):
        parse_label_option(f"@{tmp_path / 'missing.txt'}")


@pytest.mark.parametrize(
    "kwargs, option",
    [
        ({"per_class": 0}, "prompts.per_class"),
        ({"per_class": -3}, "prompts.per_class"),
        ({"scale": 0.0}, "prompts.scale"),
        ({"scale": -1.0}, "prompts.scale"),
        ({"per_class": 2, "scale": 1.0}, "prompts.per_class"),
        ({"style": "poem"}, "prompts.style"),
        ({"guidance_min": 6.0}, "prompts.guidance_min"),
    ],
)
def test_prompts_config_validation_names_the_option(kwargs, option):
    with pytest.raises(ConfigError) as err:
        PromptsConfig(**kwargs)
    assert err.value.subject == option


@pytest.mark.parametrize(
    "kwargs, option",
    [
        ({"gen_actors": 0}, "generate.gen_actors"),
        ({"gen_gpus": -0.5}, "generate.gen_gpus"),
        ({"batch_size": 0}, "generate.batch_size"),
        ({"shard_size": -1}, "generate.shard_size"),
        ({"per_class": 0}, "generate.per_class"),
        ({"engine": "spark"}, "generate.engine"),
    ],
)
def test_generate_config_validation_names_the_option(kwargs, option):
    with pytest.raises(ConfigError) as err:
        GenerateConfig(**kwargs)
    assert err.value.subject == option


@pytest.mark.parametrize("style", ["class", "multi-domain"])
def test_template_prompts_are_seeded_uniform_per_class_and_guided_in_1_to_5(digits, style):
    rows = build_prompts(digits, PromptsConfig(style=style, per_class=30, seed=7))
    assert len(rows) == 300
    assert all(sum(r["label"] == c for r in rows) == 30 for c in range(10))
    assert all(r["label_name"] == digits.class_names[r["label"]] for r in rows)
    assert all(names_label(r["prompt"], r["label_name"]) for r in rows)
    g = [r["guidance"] for r in rows]
    assert 1.0 <= min(g) and max(g) <= 5.0 and max(g) - min(g) > 3.0  # spread over the paper's range
    assert len({r["seed"] for r in rows}) == 300
    assert rows == build_prompts(digits, PromptsConfig(style=style, per_class=30, seed=7))
    assert rows != build_prompts(digits, PromptsConfig(style=style, per_class=30, seed=8))
    # style words for the glyph generator are mixed in
    assert sum(any(f", {w}" in r["prompt"] for w in GLYPH_STYLE_WORDS) for r in rows) > 100
    if style == "multi-domain":
        assert len({r["prompt"].split(" of the digit")[0] for r in rows}) >= 5


def test_scale_is_k_times_train_size_over_classes(digits):
    rows = build_prompts(digits, PromptsConfig(scale=2.0))
    assert len(rows) == 10 * round(2.0 * len(digits.x_train) / 10)


def test_audio_prompts_keep_keywords_for_tts_and_domains_for_sounds():
    speech = fake_dataset("speechcommands", ("yes", "no"), (16000,), "audio", extra={"sample_rate": 16000})
    rows = build_prompts(speech, PromptsConfig(style="multi-domain", per_class=8))
    assert all(r["prompt"].strip(".!?") == r["label_name"] for r in rows)  # TTS speaks the word alone
    with pytest.raises(ConfigError):
        build_prompts(speech, PromptsConfig(style="llm", per_class=2))
    sounds = fake_dataset("esc50", ("dog", "rain"), (16000,), "audio", extra={"sample_rate": 16000})
    rows = build_prompts(sounds, PromptsConfig(style="multi-domain", per_class=20))
    assert {"studio", "field", "home", "office"} & {r["prompt"].rsplit(" ", 1)[-1] for r in rows}


def test_llm_prompts_name_the_label_without_duplicates(pets, tiny_gpt2):
    """A tiny random GPT-2 rarely names the label: those outputs are dropped and refilled."""
    from gptfl_ray.synth.prompts import LLMPromptFiller, prompt_kind

    cfg = PromptsConfig(style="llm", per_class=3, llm_model=str(tiny_gpt2), llm_max_tries=6, seed=1)
    llm = LLMPromptFiller(cfg, prompt_kind(pets))
    rows = build_prompts(pets, cfg, llm=llm)
    assert [sum(r["label"] == c for r in rows) for c in range(3)] == [3, 3, 3]
    assert all(names_label(r["prompt"], r["label_name"]) for r in rows)
    from_llm = [r for r in rows if r["style"] == "llm"]
    assert from_llm, "the LLM should fill at least one prompt"
    assert len({r["prompt"].split(",")[0].lower() for r in from_llm}) == len(from_llm)
    assert llm.stats["dropped_no_label"] > 0  # the refill path ran
    assert rows == build_prompts(pets, cfg, llm=LLMPromptFiller(cfg, prompt_kind(pets)))  # seeded


def test_llm_model_path_that_does_not_exist_is_a_config_error(pets, tmp_path):
    with pytest.raises(ConfigError) as err:
        build_prompts(pets, PromptsConfig(style="llm", per_class=1, llm_model=str(tmp_path / "nope")))
    assert err.value.subject == "prompts.llm_model" and str(tmp_path / "nope") in str(err.value)


def test_prompts_file_round_trip_reuse_and_checks(digits, pets, tmp_path):
    cfg = PromptsConfig(per_class=4)
    rows = ensure_prompts(cfg, digits, tmp_path)
    assert read_prompts(tmp_path, digits) == rows
    mtime = prompts_path(tmp_path).stat().st_mtime_ns
    assert ensure_prompts(cfg, digits, tmp_path) == rows and prompts_path(tmp_path).stat().st_mtime_ns == mtime
    assert len(take_per_class(rows, 2)) == 20
    with pytest.raises(ConfigError):
        take_per_class(rows, 5)
    with pytest.raises(ConfigError):  # a digits prompts file does not fit the pets data set
        read_prompts(tmp_path, pets)
    write_prompts(tmp_path, [{**rows[0], "label_name": "7"}])
    with pytest.raises(ConfigError):
        read_prompts(tmp_path, digits)


def test_guidance_draw_is_integer_1_to_5_by_default_and_bucketed_when_uniform(digits):
    from collections import Counter

    rows = build_prompts(digits, PromptsConfig(per_class=40, seed=3))
    counts = Counter(r["guidance"] for r in rows)
    assert set(counts) == {1.0, 2.0, 3.0, 4.0, 5.0}  # the original GPT-FL code's integer draw
    assert min(counts.values()) > 40  # roughly even over the five values
    uni = build_prompts(digits, PromptsConfig(per_class=40, seed=3, guidance_draw="uniform", guidance_grid=0.5))
    values = {r["guidance"] for r in uni}
    assert values <= {1.0 + 0.5 * k for k in range(9)} and len(values) >= 7  # a grid, so rows share scales
    with pytest.raises(ConfigError) as err:
        PromptsConfig(guidance_min=1.2, guidance_max=1.8)  # no integer in range
    assert err.value.subject == "prompts.guidance_min"
    with pytest.raises(ConfigError) as err:
        PromptsConfig(guidance_draw="normal")
    assert err.value.subject == "prompts.guidance_draw"
