"""Loading a generator's (or captioner's, or LLM's) model: hub ids, local paths, and what they resolved to.

`load_model` turns hub and OS errors into one `ConfigError` line; `model_revision` records in the
manifest which hub commit or which local files a model reference resolved to.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gptfl_ray.errors import ConfigError


def is_path_like(ref: str) -> bool:
    """A model reference the user meant as a local path rather than a hub id."""
    # Hub ids are "name" or "org/name"; anything rooted, relative-dotted or deeper is a path.
    return ref.startswith(("/", "./", "../", "~", ".\\")) or ref.count("/") > 1 or Path(ref).exists()


def check_model_ref(ref: str, option: str = "generate.model") -> str:
    """Fail before any work starts when a path-like model reference does not exist."""
    if not ref or not ref.strip():
        raise ConfigError(option, "is empty; give a hub id or a local path")
    expanded = os.path.expanduser(ref)
    if is_path_like(ref) and not Path(expanded).exists():
        raise ConfigError(option, f"model path {ref} does not exist")
    return expanded if Path(expanded).exists() else ref


def quiet_hf() -> None:
    """No per-file loading bars from inside actors: the CLI shows one bar over shards."""
    for name in ("transformers", "diffusers"):
        try:
            __import__(f"{name}.utils.logging", fromlist=["disable_progress_bar"]).disable_progress_bar()
        except ImportError:
            pass


def model_revision(ref: str | None, revision: str | None = None) -> str:
    """What a model reference resolved to, for the manifest: a hub commit or a local content hash.

    Hub ids: the commit that `from_pretrained` read, from the Hugging Face cache's
    `refs/<revision>` file (written by the download, readable offline). Local paths:
    `local:sha256:<digest>` over the files' names and bytes; files over 64 MiB contribute their
    size and first and last MiB, so a multi-GB checkpoint is not read twice.
    """
    if not ref:
        return "none"
    expanded = Path(os.path.expanduser(ref))
    if expanded.exists():
        return "local:sha256:" + _tree_digest(expanded)
    if revision and len(revision) == 40 and all(c in "0123456789abcdef" for c in revision.lower()):
        return revision.lower()
    try:
        from huggingface_hub import constants

        for kind in ("models", "datasets"):
            refs = Path(constants.HF_HUB_CACHE) / f"{kind}--{ref.replace('/', '--')}" / "refs" / (revision or "main")
            if refs.is_file():
                return refs.read_text().strip()
    except ImportError:
        pass
    return f"unresolved:{revision or 'main'}"


def _tree_digest(root: Path, big: int = 64 << 20) -> str:
    h = hashlib.sha256()
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    for p in files:
        h.update(str(p.relative_to(root) if p != root else p.name).encode() + b"\0")
        size = p.stat().st_size
        h.update(str(size).encode() + b"\0")
        with open(p, "rb") as fh:
            if size <= big:
                h.update(fh.read())
            else:
                h.update(fh.read(1 << 20))
                fh.seek(size - (1 << 20))
                h.update(fh.read())
    return h.hexdigest()


def load_model(loader: Callable[[str], Any], ref: str, option: str = "generate.model") -> Any:
    """Call a `from_pretrained`-style loader; turn hub/OS errors into one ConfigError line."""
    ref = check_model_ref(ref, option)
    quiet_hf()
    try:
        return loader(ref)
    except (OSError, ValueError) as exc:  # hub offline, bad repo id, bad files
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(option, f"cannot load model {ref!r}: {first[:200]}") from None


def torch_device(option: str = "auto"):
    """`auto`: the first visible GPU with fp16 (as the paper ran Stable Diffusion), else CPU fp32."""
    import torch

    if option == "auto":
        option = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.float16 if option.startswith("cuda") else torch.float32
    return torch.device(option), dtype
