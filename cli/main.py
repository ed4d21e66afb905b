"""Entry point: `gptfl-ray <command>`. Each module under cli/ registers its own commands."""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    name="gptfl-ray",
    help="GPT-FL and FGL on a Ray-distributed cross-device federated-learning simulator.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)



@app.callback()
def _root() -> None:
    """GPT-FL and FGL on a Ray-distributed cross-device federated-learning simulator."""


# One module per command group; each defines register(app).
_COMMAND_MODULES = ["simulate", "federate", "synth", "pretrain", "labels", "bench", "report"]

for _name in _COMMAND_MODULES:
    importlib.import_module(f"gptfl_ray.cli.{_name}").register(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
