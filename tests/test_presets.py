"""Every preset in configs/ resolves into a valid SimulateConfig, and the embedded default file
says exactly what the built-in defaults are."""

import tomllib
from pathlib import Path

import pytest

from gptfl_ray.methods.simulate import simulate_config

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.toml"))
NO_OVERRIDES = {"federate": {}, "prompts": {}, "generate": {}, "pretrain": {}, "simulate": {}}


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_preset_resolves(path):
    cfg = simulate_config(tomllib.loads(path.read_text()), NO_OVERRIDES)
    assert cfg.federate.data.dataset == cfg.generate.dataset == cfg.prompts.dataset
    assert path.read_text().startswith("#")  # each preset documents its setup and hardware


def test_embedded_default_file_matches_builtin_defaults():
    from_file = simulate_config(tomllib.loads((CONFIGS[0].parent / "digits.toml").read_text()), NO_OVERRIDES)
    builtin = simulate_config({}, NO_OVERRIDES)
    assert from_file == builtin


def test_at_least_the_paper_setups_exist():
    names = {p.stem for p in CONFIGS}
    assert {
        "digits",
        "cifar10_dir01_vgg19",
        "cifar100_dir05_vgg19",
        "flowers102_dir01_vgg19",
        "table4_speechcommands",
        "table4_esc50",
    } <= names
