"""`gptfl-ray report RUN_DIR [RUN_DIR ...]`: finished simulate runs (one per seed) -> the README's tables."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from gptfl_ray.cli.common import guarded, say


def report(
    run_dirs: list[Path] = typer.Argument(
        ..., metavar="RUN_DIR...", help="Finished `gptfl-ray simulate` run directories, one per seed."
    ),
    json_out: Optional[Path] = typer.Option(
        None, "--json-out", help="Also write every cell (values, mean, std, 95% interval) as JSON here."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print every cell as JSON on stdout (the tables go to stderr)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print no tables (errors are still one line on stderr)."),
):
    """Aggregate finished simulate runs into the headline (and FGL) tables: mean ± std and a 95%
    t-interval per cell, validation and test labelled; markdown on the terminal."""
    from gptfl_ray.errors import ConfigError
    from gptfl_ray.report import aggregate_runs, load_finished_runs, report_markdown
    from gptfl_ray.runio import atomic_write_json

    if json_out is not None and json_out.is_dir():
        raise ConfigError("--json-out", f"{json_out} is a directory; name a file")
    agg = aggregate_runs(load_finished_runs(run_dirs))
    say(report_markdown(agg))
    if json_out is not None:
        atomic_write_json(json_out, agg)
        say(f"\n-> {json_out}\n")
    return agg


def register(app: typer.Typer) -> None:
    app.command("report")(guarded(report))
