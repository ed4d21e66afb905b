"""Google Speech Commands v2 (Warden 2018) from torchaudio's on-disk layout.

GPT-FL (paper section 4.1) uses Google Speech Commands for keyword spotting, partitioned by
speaker ("naturally non-IID"), with the FedAudio benchmark's model (Zhang et al., ICASSP 2023).
This loader reads the layout torchaudio's `SPEECHCOMMANDS` writes,

    <data_dir>/SpeechCommands/speech_commands_v0.02/<word>/<speaker>_nohash_<n>.wav
    <data_dir>/SpeechCommands/speech_commands_v0.02/{validation,testing}_list.txt

(`data_dir` may also point at the `speech_commands_v0.02` folder itself), with torchaudio
downloading it only when `--download` is given. WAVs are read with soundfile.

- Classes: the 35 keywords of v0.02 in sorted (torchaudio) order; `_background_noise_` is no
  class. Every keyword folder must exist.
- Split: the official lists. test = `testing_list.txt`, validation = `validation_list.txt`
  (held out from every client; every choice reads it), train = every clip in neither list.
  The lists are speaker disjoint, so validation and test speakers are unseen, as in the paper
  (2,112 training speakers of 2,618).
- Clients: `groups` holds an int speaker code per training clip (the `<speaker>` part of the
  file name); `extra["speakers"]` maps codes back to ids. `--partition natural` makes each
  speaker, or a run of speakers when there are fewer clients, one client.
- Raw samples: float32 waveforms at 16 kHz, zero-padded/cut at the end to 1 s = 16,000 samples
  (the recordings are at most 1 s; a few are shorter).

Decoding ~96k small WAVs takes a while, so the decoded split is cached once as int16 (the
files are 16-bit PCM, so this is lossless for the real set) in `gptfl_v1_cache.npz` next to
the lists; the cache is used only while the list of files is unchanged.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gptfl_ray.data.audio import SAMPLE_RATE, fit_length, read_wav, resample
from gptfl_ray.data.base import Dataset
from gptfl_ray.data.torchvision_sets import data_root
from gptfl_ray.errors import ConfigError

KEYWORDS = (
    "backward",
    "bed",
    "bird",
    "cat",
    "dog",
    "down",
    "eight",
    "five",
    "follow",
    "forward",
    "four",
    "go",
    "happy",
    "house",
    "learn",
    "left",
    "marvin",
    "nine",
    "no",
    "off",
    "on",
    "one",
    "right",
    "seven",
    "sheila",
    "six",
    "stop",
    "three",
    "tree",
    "two",
    "up",
    "visual",
    "wow",
    "yes",
    "zero",
)
CLIP_SAMPLES = SAMPLE_RATE  # 1 s
FOLDER = Path("SpeechCommands") / "speech_commands_v0.02"
HASH_DIVIDER = "_nohash_"
CACHE_NAME = "gptfl_v1_cache.npz"


def _find(root: Path) -> Path | None:
    for cand in (root / FOLDER, root / FOLDER.name, root):
        if (cand / "testing_list.txt").is_file() or any((cand / w).is_dir() for w in KEYWORDS[:3]):
            return cand
    return None


def _download(root: Path) -> None:
    from torchaudio.datasets import SPEECHCOMMANDS

    try:
        root.mkdir(parents=True, exist_ok=True)
        SPEECHCOMMANDS(str(root), url="speech_commands_v0.02", download=True)
    except Exception as e:  # urllib, tarfile, checksum mismatch ...
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:240]
        raise ConfigError(
            "data.download", f"could not fetch Speech Commands v2 into {root}: {reason} (needs network)"
        ) from e


def _read_list(base: Path, name: str) -> set[str]:
    path = base / name
    if not path.is_file():
        raise ConfigError(
            "data.data_dir", f"{path} is missing; Speech Commands v2 ships it next to the keyword folders"
        )
    return {ln.strip().replace("\\", "/") for ln in path.read_text("utf-8").splitlines() if ln.strip()}


def speaker_of(filename: str) -> str:
    """`0a7c2a8d_nohash_0.wav` -> `0a7c2a8d`: the dataset's (hashed) speaker id."""
    return Path(filename).name.split(HASH_DIVIDER)[0]


def load_speechcommands(data_dir=None, download: bool = False, seed: int = 0, **_) -> Dataset:
    root = data_root(data_dir)
    base = _find(root)
    if base is None and download:
        _download(root)
        base = _find(root)
    if base is None:
        raise ConfigError(
            "data.data_dir",
            f"Speech Commands v2 not found under {root} (pass the folder holding"
            f" {FOLDER}/<word>/*.wav, or `data.download` to fetch it, 2.3 GB, needs network)",
        )
    missing = [w for w in KEYWORDS if not (base / w).is_dir()]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise ConfigError("data.data_dir", f"{base} lacks keyword folders: {shown} (needs all 35 of v0.02)")
    validation = _read_list(base, "validation_list.txt")
    testing = _read_list(base, "testing_list.txt")

    overlap = validation & testing
    if overlap:
        raise ConfigError(
            "data.data_dir",
            f"{base}: {len(overlap)} clips are in both validation_list.txt and testing_list.txt, e.g. {min(overlap)}",
        )
    files, labels, split = [], [], []  # split: 0 train, 1 validation, 2 test
    for k, word in enumerate(KEYWORDS):
        for p in sorted((base / word).glob("*.wav")):
            rel = f"{word}/{p.name}"
            if HASH_DIVIDER not in p.name:
                continue
            files.append(rel)
            labels.append(k)
            split.append(2 if rel in testing else 1 if rel in validation else 0)
    if not files:
        raise ConfigError("data.data_dir", f"no <speaker>{HASH_DIVIDER}<n>.wav files under {base}")
    files_arr = np.asarray(files)
    labels_arr = np.asarray(labels, np.int64)
    split_arr = np.asarray(split, np.int8)
    for code, what in (
        (0, "no training clips (every clip is listed)"),
        (1, "no validation clips (validation_list.txt)"),
        (2, "no test clips (testing_list.txt)"),
    ):
        if not (split_arr == code).any():
            raise ConfigError("data.data_dir", f"{base}: the official lists leave {what}")

    waves = _cached_waves(base, files_arr)
    train, val, test = (split_arr == 0), (split_arr == 1), (split_arr == 2)
    speakers_train = np.asarray([speaker_of(f) for f in files_arr[train]])
    speaker_ids, groups = np.unique(speakers_train, return_inverse=True)
    return Dataset(
        name="speechcommands",
        modality="audio",
        class_names=KEYWORDS,
        x_train=waves[train],
        y_train=labels_arr[train],
        x_test=waves[test],
        y_test=labels_arr[test],
        x_val=waves[val],
        y_val=labels_arr[val],
        max_value=1.0,
        mean=(0.0,),
        std=(1.0,),
        groups=groups.astype(np.int64),
        extra={"sample_rate": SAMPLE_RATE, "speakers": tuple(str(s) for s in speaker_ids)},
    )


def _cached_waves(base: Path, files: np.ndarray) -> np.ndarray:
    cache = base / CACHE_NAME
    if cache.is_file():
        try:
            with np.load(cache) as z:
                if z["files"].shape == files.shape and (z["files"] == files).all():
                    return z["pcm"].astype(np.float32) / np.float32(32768.0)
        except (OSError, ValueError, KeyError):
            pass  # a torn or foreign file: decode again and overwrite it
    pcm = np.empty((len(files), CLIP_SAMPLES), np.int16)
    for i, rel in enumerate(files):
        wave, sr = read_wav(base / rel)
        wave = fit_length(resample(wave, sr, SAMPLE_RATE), CLIP_SAMPLES)
        pcm[i] = np.clip(np.round(wave * 32768.0), -32768, 32767)
    try:
        tmp = cache.with_suffix(".tmp.npz")
        np.savez(tmp, files=files, pcm=pcm)
        tmp.replace(cache)  # atomic: an interrupted write never leaves a torn cache
    except OSError:
        pass  # a read-only data dir only costs the decode next time
    # From the int16 form either way, so a cached load returns the very same samples.
    return pcm.astype(np.float32) / np.float32(32768.0)
