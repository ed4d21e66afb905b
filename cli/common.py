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
