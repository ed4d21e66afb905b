"""Shared CLI plumbing: one-line errors with exit code 2, the console, and the output modes
every command shares (--json, --quiet, --log-level)."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import logging
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape  # messages name TOML tables like [fl]: not markup
from typer._click.exceptions import NoArgsIsHelpError, UsageError
from typer.core import TyperGroup

from gptfl_ray.errors import ConfigError, RunError

console = Console()
err_console = Console(stderr=True)

DEFAULT_RUN = "runs/simulate"  # the run directory every stage and `simulate` share
LOG_LEVELS = ("debug", "info", "warning", "error")

F = TypeVar("F", bound=Callable)


def one_line_error(message: str, code: int = 2, label: str = "error") -> typer.Exit:
    err_console.print(f"[bold red]{label}:[/] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code=code)


class OneLineGroup(TyperGroup):
    """Click's own parse errors (a bad choice, a word where a number goes, an unknown option)
    get the same one line and exit code 2 as the configs' errors, not click's usage block."""

    def make_context(self, *args, **kwargs):
        with _one_line_usage():
            return super().make_context(*args, **kwargs)

    def invoke(self, ctx):
        with _one_line_usage():
            return super().invoke(ctx)


@contextlib.contextmanager
def _one_line_usage() -> Iterator[None]:
    try:
        yield
    except NoArgsIsHelpError:  # a bare group: click shows its help, as it should
        raise
    except UsageError as exc:
        raise _usage_line(exc) from None


def _usage_line(exc: UsageError) -> typer.Exit:
    msg = " ".join(exc.format_message().replace("Value error, ", "").split())
    name = getattr(exc, "option_name", None)  # NoSuchOption
    if name and name.startswith("--") and exc.ctx is not None:
        # options spelt with their stage's prefix (--pretrain-lr, --gen-model): name them
        opts = {o for p in exc.ctx.command.params for o in getattr(p, "opts", ())}
        near = sorted(o for o in opts if o.startswith("--") and o.endswith("-" + name[2:]))
        if near:
            msg = f"No such option: {name} (did you mean {' or '.join(near)}?)"
    where = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
    return one_line_error(msg + where)


def guarded(fn: F) -> F:
    """Bad input (`ConfigError`): one line on stderr, exit code 2. A run-time failure
    (`RunError`): one line, exit code 1. Ctrl-C: one line, exit code 130. No traceback.

    A command that takes `--json`, `--quiet` or `--log-level` has them handled here: it returns
    its summary (a dict) and `--json` prints that, alone, on stdout."""
    import inspect

    params = inspect.signature(fn).parameters
    resumable = "resume" in params
    hint = (
        "rerun with --resume to continue from the last checkpoint"
        if resumable
        else "rerun the same command to continue (finished work is kept)"
    )

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        as_json = kwargs.pop("as_json", False) if "as_json" in params else False
        quiet = kwargs.pop("quiet", False) if "quiet" in params else False
        log_level = kwargs.pop("log_level", None) if "log_level" in params else None
        try:
            with output_mode(as_json, quiet, log_level):
                result = fn(*args, **kwargs)
        except ConfigError as exc:
            from gptfl_ray.cli.errors import cli_error  # settings named by their options

            raise one_line_error(str(cli_error(exc))) from None
        except RunError as exc:
            from gptfl_ray.cli.errors import cli_text

            raise one_line_error(cli_text(str(exc)), 1, "failed") from None
        except KeyboardInterrupt:
            err_console.print(f"interrupted; {hint}", highlight=False, soft_wrap=True)
            raise typer.Exit(code=130) from None
        if as_json:
            typer.echo(json.dumps(jsonable(result or {}), indent=2, sort_keys=False))
        return None

    return wrapper  # type: ignore[return-value]


def jsonable(value: Any) -> Any:
    """Plain JSON types: paths and numpy scalars as strings/numbers, tuples as lists; None stays
    null (unlike `runio.plain`, TOML's converter, which drops it: TOML has no null)."""

    def walk(v: Any) -> Any:
        if dataclasses.is_dataclass(v) and not isinstance(v, type):
            v = dataclasses.asdict(v)
        if isinstance(v, dict):
            return {k: walk(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [walk(x) for x in v]
        if isinstance(v, Path):
            return str(v)
        return v

    return json.loads(json.dumps(walk(value), default=_default))


def _default(o: Any) -> Any:
    if hasattr(o, "item"):  # numpy scalars
        return o.item()
    if hasattr(o, "tolist"):
        return o.tolist()
    return str(o)


@contextlib.contextmanager
def output_mode(as_json: bool, quiet: bool, log_level: str | None) -> Iterator[None]:
    """--json: human output (tables, progress, notes) goes to stderr so stdout holds only the
    summary; --quiet: none of it (errors still one line on stderr); --log-level info|debug:
    the library's logging and Ray's own logs come back (default warning keeps Ray quiet)."""
    saved = (console.quiet, console.stderr)
    saved_env = {k: os.environ.get(k) for k in ("GPTFL_LOG_LEVEL", "RAY_BACKEND_LOG_LEVEL")}
    console.quiet = quiet
    console.stderr = as_json or console.stderr
    handler = None
    if log_level is not None and log_level != "warning":
        level = getattr(logging, log_level.upper())
        os.environ["GPTFL_LOG_LEVEL"] = log_level  # read by ray_runtime.ensure_ray
        os.environ["RAY_BACKEND_LOG_LEVEL"] = log_level
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        for name in ("gptfl_ray", "ray"):
            logging.getLogger(name).setLevel(level)
        logging.getLogger("gptfl_ray").addHandler(handler)
    try:
        with contextlib.redirect_stdout(sys.stderr) if as_json else contextlib.nullcontext():
            yield  # a stray print() from a library lands on stderr, never inside the JSON
    finally:
        console.quiet, console.stderr = saved
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        if handler is not None:
            logging.getLogger("gptfl_ray").removeHandler(handler)


def say(text: str) -> None:
    """Plain text for people (not rich markup): stdout, stderr under --json, nothing under --quiet."""
    if not console.quiet:
        typer.echo(text, nl=False, err=console.stderr)


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


def load_config(config, sets: list[str] | None, option: str = "--config") -> dict:
    """`--config file.toml` (a preset or a run's config.toml) with `--set` overrides over it."""
    from gptfl_ray.runio import load_toml_file

    return apply_sets(load_toml_file(config, option) if config else {}, sets)
