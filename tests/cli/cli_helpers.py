"""What the CLI tests share: one CliRunner, the smallest federation's options, the command tree."""

import click
import typer
from typer.testing import CliRunner

from gptfl_ray.cli.main import app

runner = CliRunner()
# A federation that finishes in seconds: 6 clients, 2 per round, 2 rounds, the mlp, in-process.
TINY = ["--rounds", "2", "--clients", "6", "--clients-per-round", "2", "--model", "mlp", "--local-epochs", "1", "--backend", "local"]  # fmt: skip


def commands(group: click.Group | None = None, prefix=()):
    """(name path, command) for every leaf command of the app (groups such as `bench` descended)."""
    group = typer.main.get_command(app) if group is None else group
    for name, cmd in group.commands.items():
        if hasattr(cmd, "commands"):  # a group (typer's own click: not click.Group)
            yield from commands(cmd, (*prefix, name))
        else:
            yield (*prefix, name), cmd
