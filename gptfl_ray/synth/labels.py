"""The label names the server receives (GPT-FL section 3.1 and footnote 1).

Clients send only the set of distinct label names they hold, never counts; the server takes the
union. With IBLT (section 3.1, Appendix 6) the union arrives decoded from a secure-aggregated
table: any such set of names plugs in here through `server_label_names(dataset, names)`, which
checks it against the data set and returns the names in the data set's class order so label
indices line up with the real data.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from gptfl_ray.errors import ConfigError


def client_label_names(dataset: Any, indices: Iterable[int] | None = None) -> set[str]:
    """What one client reports: the distinct names among its samples (no counts, no order)."""
    y = dataset.y_train if indices is None else dataset.y_train[np.asarray(list(indices), dtype=np.int64)]
    return {dataset.class_names[int(c)] for c in np.unique(y)}


def union_label_names(reports: Iterable[Iterable[str]]) -> set[str]:
    """Plain-text union of client reports (the IBLT route computes the same set privately)."""
    out: set[str] = set()
    for names in reports:
        out.update(str(n) for n in names)
    return out


def server_label_names(dataset: Any, names: Iterable[str] | None = None, option: str = "prompts.labels") -> list[str]:
    """The server's label set, in the data set's class order.

    Without `names`, the union of what the training clients hold. A given set (e.g. decoded from
    IBLTs) must equal the data set's class names; otherwise the prompts would describe classes the
    model cannot output, so it is refused in one line.
    """
    received = client_label_names(dataset) if names is None else {str(n).strip() for n in names}
    known = set(dataset.class_names)
    unknown = sorted(received - known)
    missing = [c for c in dataset.class_names if c not in received]
    if unknown or missing:
        parts = []
        if unknown:
            parts.append(f"not in the data set: {_short(unknown)}")
        if missing:
            parts.append(f"missing: {_short(missing)}")
        raise ConfigError(option, f"label set does not match data set {dataset.name} ({'; '.join(parts)})")
    return [c for c in dataset.class_names if c in received]


def parse_label_option(value: str | None, option: str = "prompts.labels") -> list[str] | None:
    """`--labels a,b,c`, or `--labels @file` / a path: a JSON list or one name per line."""
    if value is None or value == "":
        return None
    path = Path(value[1:] if value.startswith("@") else value)
    if value.startswith("@") or (path.suffix in (".json", ".txt") and path.exists()):
        if not path.is_file():
            raise ConfigError(option, f"label file {path} does not exist")
        text = path.read_text("utf-8")
        if path.suffix == ".json" or text.lstrip().startswith("["):
            try:
                names = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ConfigError(option, f"{path} is not a JSON list ({exc.msg})") from None
            if not isinstance(names, list):
                raise ConfigError(option, f"{path} must hold a JSON list of names")
            return [str(n) for n in names]
        return [line.strip() for line in text.splitlines() if line.strip()]
    return [n.strip() for n in value.split(",") if n.strip()]


def _short(names: list[str], k: int = 5) -> str:
    shown = ", ".join(repr(n) for n in names[:k])
    return shown + (f" and {len(names) - k} more" if len(names) > k else "")
