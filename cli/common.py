"""Shared CLI plumbing: one-line errors with exit code 2 and the console."""

from __future__ import annotations

import functools
from typing import Callable, TypeVar

import typer
from rich.console import Console

from gptfl_ray.errors import ConfigError

console = Console()
err_console = Console(stderr=True)

F = TypeVar("F", bound=Callable)


def guarded(fn: F) -> F:
    """Turn `ConfigError` (bad input) into one line on stderr and exit code 2, no traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except ConfigError as exc:
            err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(code=2)
        except KeyboardInterrupt:
            err_console.print("interrupted; rerun with --resume to continue from the last checkpoint")
            raise typer.Exit(code=130)

    return wrapper  # type: ignore[return-value]


def apply_sets(file_cfg: dict, sets: list[str] | None) -> dict:
    """`--set section.key=value` (repeatable) over a TOML config: the value is read as TOML
    (numbers, booleans, quoted or bare strings, lists), so what the option says is what
    config.toml saves; the configs then validate it like any TOML value."""
    import copy
    import tomllib

    out = copy.deepcopy(file_cfg)
    for item in sets or []:
        key, sep, raw = item.partition("=")
        parts = [k.strip() for k in key.split(".")]
        if not sep or len(parts) < 2 or not all(parts):
            raise ConfigError("--set", f"expected section.key=value, got {item!r}")
        try:
            value = tomllib.loads(f"v = {raw.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw.strip()  # a bare word: a string
        node = out
        for k in parts[:-1]:
            node = node.setdefault(k, {})
            if not isinstance(node, dict):
                raise ConfigError("--set", f"{key}: {k} is a value, not a section")
        node[parts[-1]] = value
    return out
