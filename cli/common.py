"""Shared CLI plumbing: one-line errors with exit code 2 and the console."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

import typer
from rich.console import Console
from rich.markup import escape  # messages name TOML tables like [fl]: not markup

from gptfl_ray.errors import ConfigError, RunError

console = Console()
err_console = Console(stderr=True)

F = TypeVar("F", bound=Callable)


def guarded(fn: F) -> F:
    """Bad input (`ConfigError`): one line on stderr, exit code 2. A run-time failure
    (`RunError`): one line, exit code 1. Ctrl-C: one line, exit code 130. No traceback."""
    import inspect

    resumable = "resume" in inspect.signature(fn).parameters
    hint = (
        "rerun with --resume to continue from the last checkpoint"
        if resumable
        else "rerun the same command to continue (finished work is kept)"
    )

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except ConfigError as exc:
            err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            raise typer.Exit(code=2) from None
        except RunError as exc:
            err_console.print(f"[bold red]failed:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            raise typer.Exit(code=1) from None
        except KeyboardInterrupt:
            err_console.print(f"interrupted; {hint}", highlight=False, soft_wrap=True)
            raise typer.Exit(code=130) from None

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
