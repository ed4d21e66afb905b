"""The one translation of library setting names into the CLI's options.

The library names a bad setting as it knows it (docs/architecture.md rule 9): `section.field` for a
field of a config dataclass (`fl.clients_per_round`, `pretrain.lr`, `privacy.dp_epsilon`), the
argument's name for a plain function's keyword (`output_dir`, `resume`), and in a problem text
a setting between backticks ("must be <= `data.clients`"). Only the CLI knows which option
fills which setting, so only here is a `ConfigError` turned into the line a user reads:
`--clients-per-round: must be >= 1`. Subjects naming a TOML table (`[fl] lr`) are left as
they are: they point into the file, not at an option.
"""

from __future__ import annotations

import dataclasses
import functools
import re

from gptfl_ray.cli.options import FGL_FIELDS, FLAGS, GENERATE_FIELDS, MODEL_FIELDS, PRETRAIN_FIELDS
from gptfl_ray.errors import ConfigError

# The config sections a setting may be named in, and the options (by name) whose field is
# named otherwise: {section: {field: option}}. Any other field is filled by the option of its
# own name (`fl.clients_per_round` by `clients_per_round`, i.e. --clients-per-round).
SECTIONS = ("data", "model", "fl", "engine", "privacy", "devices", "prompts", "generate", "pretrain", "fgl", "simulate")
# SimulateConfig's own settings (its module imports torch; tests/cli/test_errors.py compares).
SIMULATE_FIELDS = ("variants", "target_accuracy", "init_pretrained")
RENAMED: dict[str, dict[str, str]] = {
    "model": {f: o for o, f in MODEL_FIELDS.items()},
    "pretrain": {f: o for o, f in PRETRAIN_FIELDS.items()},
    "generate": {f: o for o, f in GENERATE_FIELDS.items()},
    "fgl": {f: o for o, f in FGL_FIELDS.items()},
}
# Keyword arguments of library functions that a command's own option fills (no section).
PLAIN = frozenset({"config", "set", "output_dir", "resume", "overwrite", "init", "track", "address", "capacity"})

_NAME = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)?")
_QUOTED = re.compile(r"`([a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)?)`")


@functools.cache
def section_fields() -> dict[str, frozenset[str]]:
    """{section: its config dataclass's field names}: only these are settings."""
    from gptfl_ray.config import SECTIONS as FEDERATE_SECTIONS
    from gptfl_ray.methods.fgl_config import FGLConfig
    from gptfl_ray.pretrain.config import PretrainConfig
    from gptfl_ray.synth.config import GenerateConfig, PromptsConfig

    classes = {**FEDERATE_SECTIONS, "prompts": PromptsConfig, "generate": GenerateConfig, "pretrain": PretrainConfig}
    out = {s: frozenset(f.name for f in dataclasses.fields(c)) for s, c in {**classes, "fgl": FGLConfig}.items()}
    return {**out, "simulate": frozenset(SIMULATE_FIELDS)}


def flag_for(setting: str) -> str | None:
    """The option that fills a library setting (`pretrain.lr` -> `--pretrain-lr`), or None when
    no option fills it (a TOML table, a file, a library-internal name, or a setting only TOML and
    --set reach, such as `prompts.llm_max_new_tokens`: then its key is what the user types)."""
    if not _NAME.fullmatch(setting):
        return None
    section, _, field = setting.rpartition(".")
    if section:
        if field not in section_fields().get(section, ()):
            return None
        option = RENAMED.get(section, {}).get(field, field)
    elif setting in PLAIN:
        option = setting
    else:
        return None
    return FLAGS.get(option)


def cli_subject(subject: str) -> str:
    """A ConfigError's subject as the CLI names it: its first word, when a setting, as a flag."""
    head, sep, rest = subject.partition(" ")
    return (flag_for(head) or head) + sep + rest


def cli_text(text: str) -> str:
    """A problem text with each `setting` between backticks spelt as its flag."""
    return _QUOTED.sub(lambda m: flag_for(m.group(1)) or m.group(0), text)


def cli_error(exc: ConfigError) -> ConfigError:
    """The same error with its settings named by the options a user types."""
    return ConfigError(cli_subject(exc.subject), cli_text(exc.problem))
