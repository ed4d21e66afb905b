"""cli/errors.py: the one place a library setting becomes the option a user types."""

import pytest
from cli_helpers import runner

from gptfl_ray.cli.errors import RENAMED, SECTIONS, cli_error, cli_subject, cli_text, flag_for
from gptfl_ray.cli.main import app
from gptfl_ray.cli.options import FLAGS
from gptfl_ray.errors import ConfigError


@pytest.mark.parametrize(
    "setting, flag",
    [
        ("fl.clients_per_round", "--clients-per-round"),
        ("data.alpha", "--alpha"),
        ("privacy.dp_epsilon", "--dp-epsilon"),
        ("model.name", "--model"),
        ("pretrain.lr", "--pretrain-lr"),
        ("pretrain.seed", "--seed"),
        ("pretrain.train_workers", "--train-workers"),
        ("generate.model", "--gen-model"),
        ("generate.revision", "--model-revision"),
        ("generate.compile", "--compile"),
        ("fgl.rounds", "--fgl-rounds"),
        ("simulate.init_pretrained", "--init-pretrained"),
        ("output_dir", "--output-dir"),
        ("capacity", "--capacity"),
    ],
)
def test_settings_become_flags(setting, flag):
    assert flag_for(setting) == flag
    assert cli_subject(setting) == flag


@pytest.mark.parametrize(
    "subject",
    ["[fl] lr", "[federate]", "RUN_DIR", "model file", "clients", "bits", "--method", "prompts.llm_max_new_tokens"],
)
def test_other_subjects_stay(subject):
    # TOML tables, files, library-internal names and the CLI's own flags are no option's; a
    # setting that only TOML and --set reach keeps its key, which is what --set takes
    assert cli_subject(subject) == subject


def test_subject_with_a_tail():
    assert cli_subject("config [fedrate]") == "--config [fedrate]"


def test_references_in_the_problem_text():
    exc = ConfigError("fl.clients_per_round", "must be <= `data.clients` (50); pass `overwrite` or lower `fl.lr`")
    assert str(cli_error(exc)) == "--clients-per-round: must be <= --clients (50); pass --overwrite or lower --lr"
    # only settings between backticks: TOML keys in a list, commands and file names stay
    assert cli_text("fl.lr, data.alpha differ; run `gptfl-ray generate`; `model.safetensors`") == (
        "fl.lr, data.alpha differ; run `gptfl-ray generate`; `model.safetensors`"
    )


def test_a_run_error_names_flags_too():
    # RunError is one line of text (exit 1); its settings are spelt like a ConfigError's problem
    msg = "round 3: a client failed (OSError: x); the run stops at its last checkpoint (`resume` continues it)"
    assert cli_text(msg).endswith("(--resume continues it)")


def test_the_sections_are_the_configs():
    import dataclasses

    from gptfl_ray.cli.errors import SIMULATE_FIELDS, section_fields
    from gptfl_ray.methods.simulate import SimulateConfig

    assert set(section_fields()) == set(SECTIONS)
    own = [f.name for f in dataclasses.fields(SimulateConfig) if not dataclasses.is_dataclass(f.type)]
    sections = {"federate", "prompts", "generate", "pretrain", "fgl"}
    assert tuple(n for n in own if n not in sections) == SIMULATE_FIELDS


def test_every_renamed_option_exists():
    for section, fields in RENAMED.items():
        assert section in SECTIONS
        for option in fields.values():
            assert option in FLAGS, option


def test_the_cli_prints_the_flag():
    res = runner.invoke(app, ["federate", "--clients-per-round", "0", "--backend", "local"])
    assert res.exit_code == 2
    assert "--clients-per-round: must be >= 1" in res.output and "fl." not in res.output


def test_flags_are_the_commands_own():
    # every option's name means one flag in every command, the one cli/errors.py prints
    from cli_helpers import commands

    seen: dict[str, set[str]] = {}
    for _, cmd in commands():
        for p in cmd.params:
            longs = [o for o in getattr(p, "opts", ()) if o.startswith("--")]
            if longs and p.name in FLAGS:
                seen.setdefault(p.name, set()).add(longs[0])
    assert seen and all(flags == {FLAGS[name]} for name, flags in seen.items()), seen
