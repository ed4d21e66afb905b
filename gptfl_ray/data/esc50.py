"""ESC-50 environmental sounds (Piczak 2015) from the GitHub repository's layout.

GPT-FL (paper section 4.1) uses ESC-50 for environmental sound classification with the FedAudio
benchmark's model (Zhang et al., ICASSP 2023), partitioned over 100 clients with Dir(0.1) label
skew "following [45]" (`--partition dirichlet --alpha 0.1 --clients 100`; the partitioner does
that). This loader reads

    <data_dir>/ESC-50-master/audio/*.wav
    <data_dir>/ESC-50-master/meta/esc50.csv   (filename,fold,target,category,...)

(`data_dir` may also point at `ESC-50-master` itself); `--download` fetches and unpacks the
repository's master.zip (about 600 MB).

- Classes: the csv's `category` per `target`, made readable ("chirping_birds" ->
  "chirping birds"), since class names become the generator's prompts (paper section 3.1).
- Split: the paper does not say; ESC-50 comes in 5 folds (clips cut from one recording share a
  fold, so a split inside a fold would leak recordings), and here fold 5 is the test set
  (`test_fold`), fold 4 the validation set held out from every client (`val_fold`), and folds
  1-3 train, i.e. 1200/400/400 clips.
- Raw samples: float32 waveforms resampled from 44.1 kHz to 16 kHz with
  torchaudio.functional.resample and fit to 5 s = 80,000 samples. `clip_seconds` < 5 keeps the
  loudest window of that length per clip instead, to cut the CPU cost of features and the GRU
  (501 frames per 5 s clip); 5 s is the default and what FedAudio uses.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from gptfl_ray.data.audio import SAMPLE_RATE, fit_length, loudest_window, read_wav, resample
from gptfl_ray.data.base import Dataset
from gptfl_ray.data.torchvision_sets import data_root
from gptfl_ray.errors import ConfigError

FOLDER = "ESC-50-master"
CLIP_SECONDS = 5.0
TEST_FOLD = 5
VAL_FOLD = 4
NUM_FOLDS = 5
URL = "https://github.com/karolpiczak/ESC-50/archive/master.zip"
_RESAMPLE_BATCH = 64  # clips per resample call: bounds memory, keeps torch's conv batched


def readable(category: str) -> str:
    return " ".join(category.replace("_", " ").split())


def _find(root: Path) -> Path | None:
    for cand in (root / FOLDER, root):
        if (cand / "meta" / "esc50.csv").is_file():
            return cand
    return None


def _download(root: Path) -> None:
    from torchvision.datasets.utils import download_and_extract_archive

    try:
        download_and_extract_archive(URL, str(root), filename="ESC-50-master.zip")
    except Exception as e:  # urllib, zipfile ...
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:240]
        raise ConfigError("data.download", f"could not fetch ESC-50 into {root}: {reason} (needs network)") from e


def read_meta(base: Path) -> tuple[list[dict], tuple[str, ...]]:
    """Rows of esc50.csv (filename, fold, target) and the class names in target order."""
    path = base / "meta" / "esc50.csv"
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        need = {"filename", "fold", "target", "category"}
        if not need <= set(reader.fieldnames or ()):
            raise ConfigError(
                "data.data_dir", f"{path} lacks columns {', '.join(sorted(need - set(reader.fieldnames or ())))}"
            )
        try:
            rows = [
                {
                    "filename": r["filename"],
                    "fold": int(r["fold"]),
                    "target": int(r["target"]),
                    "category": r["category"],
                }
                for r in reader
            ]
        except (TypeError, ValueError) as e:
            raise ConfigError("data.data_dir", f"{path}: fold and target must be integers ({e})") from None
    names: dict[int, str] = {}
    for r in rows:
        if names.setdefault(r["target"], r["category"]) != r["category"]:
            raise ConfigError(
                "data.data_dir", f"{path}: target {r['target']} is both {names[r['target']]!r} and {r['category']!r}"
            )
    if not rows or sorted(names) != list(range(len(names))):
        raise ConfigError("data.data_dir", f"{path}: targets must be 0..K-1, got {sorted(names)[:10]}")
    return rows, tuple(readable(names[k]) for k in range(len(names)))


def load_esc50(
    data_dir=None,
    download: bool = False,
    seed: int = 0,
    clip_seconds: float = CLIP_SECONDS,
    test_fold: int = TEST_FOLD,
    val_fold: int = VAL_FOLD,
    **_,
) -> Dataset:
    if not (0 < float(clip_seconds) <= CLIP_SECONDS):
        raise ConfigError(
            "clip_seconds", f"ESC-50 clips are {CLIP_SECONDS:g} s; choose 0 < seconds <= 5, got {clip_seconds}"
        )
    if int(test_fold) not in range(1, NUM_FOLDS + 1):
        raise ConfigError("test_fold", f"ESC-50 has folds 1..{NUM_FOLDS}, got {test_fold}")
    if int(val_fold) not in range(1, NUM_FOLDS + 1) or int(val_fold) == int(test_fold):
        raise ConfigError(
            "val_fold",
            f"ESC-50 has folds 1..{NUM_FOLDS} and the validation fold must differ from test fold {test_fold}, got {val_fold}",
        )
    root = data_root(data_dir)
    base = _find(root)
    if base is None and download:
        _download(root)
        base = _find(root)
    if base is None:
        raise ConfigError(
            "data.data_dir",
            f"ESC-50 not found under {root} (pass the folder holding {FOLDER}/meta/esc50.csv and"
            f" {FOLDER}/audio/*.wav, or `data.download` to fetch it, 600 MB, needs network)",
        )
    rows, class_names = read_meta(base)
    missing = [r["filename"] for r in rows if not (base / "audio" / r["filename"]).is_file()]
    if missing:
        raise ConfigError(
            "data.data_dir", f"{base / 'audio'} lacks {len(missing)} clips listed in esc50.csv, e.g. {missing[0]}"
        )

    length = int(round(float(clip_seconds) * SAMPLE_RATE))
    waves = _read_clips([base / "audio" / r["filename"] for r in rows], length)
    y = np.asarray([r["target"] for r in rows], np.int64)
    fold = np.asarray([r["fold"] for r in rows])
    test, val = fold == int(test_fold), fold == int(val_fold)
    train = ~(test | val)
    for mask, option, what in (
        (test, "test_fold", f"no test clips in fold {test_fold}"),
        (val, "val_fold", f"no validation clips in fold {val_fold}"),
        (train, "data.data_dir", f"no training clips outside folds {val_fold} and {test_fold}"),
    ):
        if not mask.any():
            raise ConfigError(option, f"{base}: {what}")
    return Dataset(
        name="esc50",
        modality="audio",
        class_names=class_names,
        x_train=waves[train],
        y_train=y[train],
        x_test=waves[test],
        y_test=y[test],
        x_val=waves[val],
        y_val=y[val],
        max_value=1.0,
        mean=(0.0,),
        std=(1.0,),
        extra={
            "sample_rate": SAMPLE_RATE,
            "test_fold": int(test_fold),
            "val_fold": int(val_fold),
            "clip_seconds": float(clip_seconds),
        },
    )


def _read_clips(paths: list[Path], length: int) -> np.ndarray:
    full = int(CLIP_SECONDS * SAMPLE_RATE)
    out = np.empty((len(paths), length), np.float32)
    # Group equal-rate, equal-length files so each resample call is one batched convolution.
    pending: dict[tuple[int, int], list[tuple[int, np.ndarray]]] = {}

    def flush(key):
        idx, clips = zip(*pending.pop(key))
        for i, wave in zip(idx, resample(np.stack(clips), key[0], SAMPLE_RATE)):
            wave = fit_length(wave, full)
            out[i] = wave if length == full else loudest_window(wave, length)

    for i, p in enumerate(paths):
        wave, sr = read_wav(p)
        key = (sr, len(wave))
        pending.setdefault(key, []).append((i, wave))
        if len(pending[key]) >= _RESAMPLE_BATCH:
            flush(key)
    for key in list(pending):
        flush(key)
    return out
