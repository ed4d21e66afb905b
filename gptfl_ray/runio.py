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
import shutil
import tempfile
import tomllib
from pathlib import Path
from typing import Any

import tomli_w

from gptfl_ray.errors import ConfigError

CONFIG_NAME = "config.toml"
KEY_NAME = "key.json"  # a stage directory's cache key, published with its outputs
LOCK_NAME = ".lock"


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


def load_toml_file(path: str | Path, option: str = "config") -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(option, f"file {p} does not exist")
    try:
        return tomllib.loads(p.read_text("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(option, f"{p} is not valid TOML ({exc})") from None


# ------------------------------------------------------------------------ stage publishing


def stage_tmp(final: str | Path) -> Path:
    """The build directory beside `final` (same file system, so the rename is atomic). A killed
    build's directory is kept: pre-training resumes its epochs there only under the same settings
    (pretrain/trainer.py fingerprints them); `--overwrite` (clear_run) removes it."""
    final = Path(final)
    tmp = final.with_name(f".{final.name}.build")
    tmp.mkdir(parents=True, exist_ok=True)
    return tmp


def publish_dir(tmp: str | Path, final: str | Path) -> None:
    """Put a finished build in place of `final`: outputs and their cache key appear together.

    Two renames: a kill between them leaves no `final` (the stage reruns) and an `.old` that the
    next publish removes, never a mix of an old key and new outputs."""
    tmp, final = Path(tmp), Path(final)
    old = final.with_name(f".{final.name}.old")
    if old.exists():
        shutil.rmtree(old)
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)


def read_key(stage_dir: str | Path) -> Any:
    """The cache key a stage published with its outputs (None when absent or unreadable)."""
    try:
        return json.loads((Path(stage_dir) / KEY_NAME).read_text("utf-8"))
    except (OSError, ValueError):
        return None


def write_key(stage_dir: str | Path, key: Any) -> None:
    atomic_write_json(Path(stage_dir) / KEY_NAME, json.loads(json.dumps(plain(key))))


# ------------------------------------------------------------------------ the run directory


def check_output_dir(path: str | Path, option: str = "output_dir") -> Path:
    """A run directory that is a file, or lies where nothing can be written, is bad input."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(option, f"{path} is a file, not a directory")
    probe = path
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise ConfigError(option, f"{probe} is a file, so {path} cannot be a directory")
    try:  # os.access ignores read-only mounts and lies to root: try it
        fd, tmp = tempfile.mkstemp(dir=probe, prefix=".gptfl-probe-")
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        raise ConfigError(option, f"cannot write in {probe} ({exc.strerror or exc})") from None
    return path


def clear_run(run_dir: str | Path, names: tuple[str, ...]) -> None:
    """`--overwrite`: remove every piece of an earlier run's state a command owns."""
    run_dir = Path(run_dir)
    for name in names:
        p = run_dir / name
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        elif p.exists() or p.is_symlink():
            p.unlink()
    for p in run_dir.glob(".*.build"):
        shutil.rmtree(p, ignore_errors=True)


class RunLock:
    """One writer per run directory: `.lock` holds the writer's PID under an flock.

    The kernel drops an flock when its process dies, so a stale lock of a killed run is simply
    taken over; a live holder makes a second command refuse with one line naming its PID.
    The file is removed on release (and re-checked by inode on acquire, so two commands never
    both hold a lock on different files)."""

    def __init__(self, run_dir: str | Path):
        self.path = Path(run_dir) / LOCK_NAME
        self.fd: int | None = None

    def __enter__(self) -> RunLock:
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
                os.close(fd)
                raise ConfigError(
                    "output_dir",
                    f"{self.path.parent} is in use by another gptfl-ray command (PID {holder}); "
                    "wait for it or use another `output_dir`",
                ) from None
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)  # the holder removed the file between our open and flock: try again
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self.fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self.fd is not None:
            self.path.unlink(missing_ok=True)
            os.close(self.fd)
            self.fd = None


def same_key(stage_dir: str | Path, key: Any) -> bool:
    return read_key(stage_dir) == json.loads(json.dumps(plain(key)))


def same_section(run_dir: str | Path, section: str, key: Any) -> bool:
    """True when `run_dir`'s config.toml holds `key` as its `section` table (a cache key kept there)."""
    return read_config(run_dir).get(section) == plain(key)


def drop_config_section(run_dir: str | Path, section: str) -> None:
    """Invalidate a cache key before rewriting what it vouches for (a kill in between then
    leaves no key, never an old key over new outputs)."""
    merged = read_config(run_dir)
    if section in merged:
        del merged[section]
        atomic_write_text(Path(run_dir) / CONFIG_NAME, tomli_w.dumps(merged))
