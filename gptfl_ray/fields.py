"""Strict typing of config values where they enter (CLI options, TOML files).

Every stage config is a frozen dataclass; this module checks a value against its field's
annotation before the dataclass is built, so `rounds = 30.5` or `secure_aggregation = "false"`
is one `ConfigError` instead of a silently wrong run. A bool is only a bool, an int is never a
float or a bool, a float takes an int but no bool and must be finite, and an unknown key is
refused with the nearest valid name. Ranges stay in each dataclass's `__post_init__`.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import types
import typing
from typing import Any

from gptfl_ray.errors import ConfigError


def nearest(name: str, choices) -> str:
    """' (did you mean X?)' for the closest valid name, or '' when none is close."""
    close = difflib.get_close_matches(str(name), sorted(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


@functools.cache
def field_types(cls) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _describe(tp) -> str:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return " or ".join(_describe(a) for a in args)
    if origin in (tuple, list):
        return "a list"
    return {bool: "true or false", int: "a whole number", float: "a number", str: "a string", dict: "a table"}.get(
        tp, str(tp)
    )


def _matches(value: Any, tp) -> bool:
    if tp is Any:
        return True
    if tp is type(None):
        return value is None
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, a) for a in typing.get_args(tp))
    if origin in (tuple, list):
        args = [a for a in typing.get_args(tp) if a is not Ellipsis]
        return (
            isinstance(value, (list, tuple)) and all(_matches(v, args[0]) for v in value)
            if args
            else isinstance(value, (list, tuple))
        )
    if origin is dict or tp is dict:
        return isinstance(value, dict)
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if tp is str:
        return isinstance(value, str)
    if dataclasses.is_dataclass(tp):
        return isinstance(value, tp)
    return True  # an annotation this checker does not know: the dataclass checks it


def check_value(cls, name: str, value: Any, subject: str) -> None:
    tp = field_types(cls)[name]
    if not _matches(value, tp):
        got = (
            f"{value!r} ({type(value).__name__})"
            if not isinstance(value, (int, float)) or isinstance(value, bool)
            else repr(value)
        )
        raise ConfigError(subject, f"must be {_describe(tp)}, got {got}")


def check_layer(cls, layer: Any, section: str) -> None:
    """One TOML table (or a dict of CLI values) for `cls`: a table, known keys, typed values."""
    where = f"[{section}]" if section else cls.__name__
    if not isinstance(layer, dict):
        raise ConfigError(where, f"must be a table of settings, got {layer!r}")
    names = field_types(cls)
    for key, value in layer.items():
        subject = f"{where} {key}" if section else key
        if key not in names:
            raise ConfigError(subject, f"unknown setting{nearest(key, names)}; known: {', '.join(sorted(names))}")
        check_value(cls, key, value, subject)


def check_instance(obj, section: str = "") -> None:
    """Every field of a constructed dataclass against its annotation (the catch-all for values
    that did not pass through a TOML layer); a bad field is named `section.field` (the bare
    field name without a section), never by a CLI flag: cli/errors.py translates."""
    for name in field_types(type(obj)):
        check_value(type(obj), name, getattr(obj, name), f"{section}.{name}" if section else name)


def check_sections(cfg: Any, known, where: str = "config") -> None:
    """Top-level keys of a TOML file: known section names only, each a table."""
    if not isinstance(cfg, dict):
        return
    for key, _value in cfg.items():
        if key not in known:
            raise ConfigError(
                f"{where} [{key}]", f"unknown section{nearest(key, known)}; known: {', '.join(sorted(known))}"
            )
