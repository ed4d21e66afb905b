"""Entry point: `gptfl-ray <command>`. Each module under cli/ registers its own commands."""

from __future__ import annotations

import importlib

import typer

from gptfl_ray.cli.common import OneLineGroup

app = typer.Typer(
    name="gptfl-ray",
    cls=OneLineGroup,  # click's parse errors: one line and exit 2, like every other bad input
    help="GPT-FL and FGL on a Ray-distributed cross-device federated-learning simulator.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,  # --install-completion / --show-completion for bash, zsh, fish, PowerShell
    rich_markup_mode="rich",
)


def _version(value: bool) -> None:
    if value:
        from gptfl_ray import __version__

        typer.echo(f"gptfl-ray {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """GPT-FL and FGL on a Ray-distributed cross-device federated-learning simulator."""


# One module per command group; each defines register(app).
_COMMAND_MODULES = ["simulate", "federate", "synth", "pretrain", "labels", "bench", "report"]

for _name in _COMMAND_MODULES:
    importlib.import_module(f"gptfl_ray.cli.{_name}").register(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
