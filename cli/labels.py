"""`gptfl-ray labels`: the set of label names GPT-FL's server receives (paper section 3.1).

With `--private`, each client encodes its distinct names in an IBLT, the tables are summed by
secure aggregation, and the server decodes only the union (and how many clients hold each name).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from gptfl_ray.cli.common import DEFAULT_RUN, console, guarded, load_config
from gptfl_ray.cli.options import CONFIG_OPTIONS, DATA_OPTIONS, OUTPUT_OPTIONS, opt, with_options

LABELS_OPTIONS = [
    opt("private", bool, False, "IBLT + secure aggregation: the server sees only the union.", "--private/--plain"),
    opt(
        "capacity",
        Optional[int],
        None,
        "IBLT capacity (distinct names it can decode); default grows until it decodes.",
    ),
    opt("dropout", float, 0.0, "Fraction of clients that drop out after sharing their keys."),
    opt("seed", Optional[int], None, "Seed for the split, the IBLT hashes and the simulated clients' secrets."),
    opt("output_dir", Path, Path(DEFAULT_RUN), "Run directory: labels.json goes there.", "--output-dir", "-o"),
]


@with_options(
    DATA_OPTIONS,
    LABELS_OPTIONS,
    CONFIG_OPTIONS,
    OUTPUT_OPTIONS,
)
def labels(**kw):
    """Print the union of the clients' label names (and how many clients hold each)."""
    import numpy as np

    from gptfl_ray.config import federate_config
    from gptfl_ray.errors import ConfigError
    from gptfl_ray.methods.task import load_task
    from gptfl_ray.runio import atomic_write_json

    file_cfg = load_config(kw["config"], kw["set"])
    fed = federate_config(
        file_cfg.get("federate", file_cfg),  # a preset or a run's config.toml
        overrides={
            k: kw[k]
            for k in (
                "dataset",
                "data_dir",
                "download",
                "clients",
                "partition",
                "alpha",
                "min_client_size",
                "shards_per_client",
                "seed",
            )
        }
        | {"backend": "local"},
    )
    if not 0 <= kw["dropout"] < 1:
        raise ConfigError("--dropout", f"must be in [0, 1), got {kw['dropout']}")
    task = load_task(fed)
    seed = fed.fl.seed
    ds = task.dataset
    sets = [sorted({ds.class_names[int(c)] for c in np.unique(ds.y_train[idx])}) for idx in task.parts]
    rng = np.random.default_rng([seed, 0xD0])
    dropped = (
        set(rng.choice(len(sets), size=int(kw["dropout"] * len(sets)), replace=False).tolist())
        if kw["dropout"]
        else set()
    )
    if kw["private"]:
        from gptfl_ray.privacy.labels import private_label_union
        from gptfl_ray.privacy.secagg.messages import SecAggAbort

        try:
            with console.status(f"{len(sets)} clients: IBLT encode, secure aggregation, decode"):
                counts, stats = private_label_union(sets, kw["capacity"], seed=seed, dropout=dropped, rng_seed=seed)
        except SecAggAbort as exc:
            raise ConfigError("--dropout", str(exc)) from None
        info = {
            "capacity": stats.capacity,
            "attempts": stats.attempts,
            "survivors": stats.survivors,
            "bytes_up": stats.bytes_up,
            "bytes_down": stats.bytes_down,
            "plain_bytes_up": stats.plain_bytes_up,
            "seconds": round(stats.seconds, 3),
        }
    else:
        counts: dict[str, int] = {}
        for i, s in enumerate(sets):
            if i not in dropped:
                for n in s:
                    counts[n] = counts.get(n, 0) + 1
        counts = dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
        info = {
            "survivors": len(sets) - len(dropped),
            "plain_bytes_up": sum(len(n.encode()) + 1 for i, s in enumerate(sets) if i not in dropped for n in s),
        }
    table = Table(
        title=f"{ds.name}: label names the server receives ({'IBLT + secure aggregation' if kw['private'] else 'in the clear'})"
    )
    table.add_column("label name")
    table.add_column("clients holding it", justify="right")
    for name, c in counts.items():
        table.add_row(name, str(c))
    console.print(table)
    console.print(" ".join(f"{k}={v}" for k, v in info.items()), highlight=False)
    out = {"dataset": ds.name, "private": kw["private"], "labels": counts, **info}
    atomic_write_json(Path(kw["output_dir"]) / "labels.json", out)
    return {"path": str(Path(kw["output_dir"]) / "labels.json"), **out}


def register(app: typer.Typer) -> None:
    app.command("labels")(guarded(labels))


def _present() -> None:
    from gptfl_ray.cli.presentation import present

    present("Label names", LABELS_OPTIONS, {"seed": 0, "capacity": "grows until it decodes"})


_present()
