"""The run directory: atomic writes and the resolved `config.toml`.

Every stage writes into one run directory. Files are written to a temporary name and renamed,
so an interrupted run never leaves a half-written file that a later run could take for whole.
`config.toml` holds one table per stage, so `simulate` re-reads what `generate` or `pretrain`
resolved and a run can be repeated from its seed and this file alone.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import tomllib
from pathlib import Path
from typing import Any

import tomli_w

from gptfl_ray.errors import ConfigError

CONFIG_NAME = "config.toml"


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def plain(value: Any) -> Any:
    """TOML has no None and no tuples: drop None, turn tuples into lists."""
    if dataclasses.is_dataclass(value):
        value = dataclasses.asdict(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def read_config(run_dir: str | Path) -> dict[str, Any]:
    path = Path(run_dir) / CONFIG_NAME
    if not path.exists():
        return {}
    try:
        return tomllib.loads(path.read_text("utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), f"not valid TOML ({exc})") from None


def write_config_section(run_dir: str | Path, section: str, cfg: Any) -> Path:
    """Merge one stage's resolved config into `run_dir/config.toml` (atomically)."""
    merged = read_config(run_dir)
    merged[section] = plain(cfg)
    path = Path(run_dir) / CONFIG_NAME
    atomic_write_text(path, tomli_w.dumps(merged))
    return path


def load_toml_file(path: str | Path, option: str = "--config") -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(option, f"file {p} does not exist")
    try:
        return tomllib.loads(p.read_text("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(option, f"{p} is not valid TOML ({exc})") from None
