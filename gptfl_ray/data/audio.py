"""The FedAudio front-end: 16 kHz waveforms -> per-clip normalised log-mel spectrograms.

GPT-FL (paper section 4.1) trains "the same model" as the FedAudio benchmark (Zhang et al.,
"FedAudio: A Federated Learning Benchmark for Audio Tasks", ICASSP 2023) on Google Speech
Commands and ESC-50. FedAudio's raw-audio features (`mel_spectrogram` in its
`raw_audio_process.py`) are a torchaudio MelSpectrogram at 16 kHz with n_fft = window = 1024,
hop 160 (10 ms), 128 mel bins and a Hann window, then AmplitudeToDB (power, no top_db). On top
of that every clip is normalised to zero mean and unit standard deviation over all its
time-frequency bins: clips recorded on 2,000+ different phones differ mostly in gain, and a
per-utterance norm removes that without any statistics shared between clients (which FL
would otherwise have to aggregate).

Output layout is (128, frames) per clip, mel bins as channels, because the FedAudio conv-RNN
starts with a Conv1d over time whose input channels are the mel bins. Raw audio stays a float32
waveform in the data set; this front-end runs inside `Dataset.prepare`, so synthetic and real
clips go through exactly the same features.

Also here: the few WAV helpers the loaders and the espeak generator share (torchaudio.load
needs torchcodec, absent here, so WAVs are read with soundfile).
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16_000
N_FFT = 1024
WIN_LENGTH = 1024
HOP_LENGTH = 160
N_MELS = 128
# Clips per torch call: bounds peak memory when `prepare` sees a whole training set at once
# (Speech Commands' 85k clips would need several GB of STFT intermediates in one call).
CHUNK = 256
_EPS = 1e-5


def num_frames(num_samples: int, hop_length: int = HOP_LENGTH) -> int:
    """Frames of a centred STFT (torchaudio's default `center=True`): 16000 -> 101, 80000 -> 501."""
    return int(num_samples) // hop_length + 1


def feature_shape(num_samples: int) -> tuple[int, int]:
    """Shape of one prepared clip: (mel bins, frames)."""
    return (N_MELS, num_frames(num_samples))


@functools.lru_cache(maxsize=4)
def _transforms(sample_rate: int):
    import torch
    import torchaudio

    mel = torchaudio.transforms.MelSpectrogram(
        sample_rate=sample_rate,
        n_fft=N_FFT,
        win_length=WIN_LENGTH,
        hop_length=HOP_LENGTH,
        n_mels=N_MELS,
        window_fn=torch.hann_window,
    )
    return mel, torchaudio.transforms.AmplitudeToDB(stype="power")


def log_mel(waves: np.ndarray, sample_rate: int = SAMPLE_RATE, scale: float = 1.0, chunk: int = CHUNK) -> np.ndarray:
    """Waveforms (N, T) or (T,) -> float32 (N, 128, frames) or (128, frames).

    `scale` multiplies the raw samples first (1 / the data set's `max_value`). Each clip is
    normalised on its own, so the result does not depend on which clips share a chunk.
    """
    import torch

    x = np.asarray(waves)
    single = x.ndim == 1
    if single:
        x = x[None]
    if x.ndim != 2:
        raise ValueError(f"expected waveforms shaped (N, T) or (T,), got {x.shape}")
    mel, to_db = _transforms(int(sample_rate))
    out = np.empty((len(x), *feature_shape(x.shape[1])), np.float32)
    with torch.inference_mode():
        for start in range(0, len(x), chunk):
            w = torch.from_numpy(np.asarray(x[start : start + chunk], np.float32) * np.float32(scale))
            spec = to_db(mel(w))
            mean = spec.mean(dim=(1, 2), keepdim=True)
            std = spec.std(dim=(1, 2), keepdim=True)
            # A silent clip has a constant spectrogram; the floor maps it to zeros, not NaN.
            out[start : start + chunk] = ((spec - mean) / std.clamp_min(_EPS)).numpy()
    return out[0] if single else out


# ---------------------------------------------------------------------------------- waveforms


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """A WAV file as mono float32 in [-1, 1] and its sample rate (channels averaged)."""
    import soundfile as sf

    wave, sr = sf.read(str(path), dtype="float32", always_2d=True)
    return (wave[:, 0] if wave.shape[1] == 1 else wave.mean(axis=1)), int(sr)


def resample(waves: np.ndarray, sr_from: int, sr_to: int = SAMPLE_RATE) -> np.ndarray:
    """Band-limited resampling (torchaudio's windowed sinc) along the last axis."""
    import torch
    import torchaudio.functional as AF

    waves = np.asarray(waves, np.float32)
    if int(sr_from) == int(sr_to):
        return waves
    with torch.inference_mode():
        return AF.resample(torch.from_numpy(waves), int(sr_from), int(sr_to)).numpy()


def fit_length(wave: np.ndarray, length: int) -> np.ndarray:
    """Zero-pad at the end or cut the end so the clip holds exactly `length` samples."""
    wave = np.asarray(wave, np.float32)
    if len(wave) >= length:
        return wave[:length]
    return np.pad(wave, (0, length - len(wave)))


def loudest_window(wave: np.ndarray, length: int, step: int = SAMPLE_RATE // 10) -> np.ndarray:
    """The `length`-sample window with the most energy (steps of `step` samples).

    Shortening a 5 s ESC-50 clip by cutting its end would often keep silence only: many of its
    sound events are short and the clips are zero-padded to 5 s. The loudest window keeps the
    event, and is deterministic.
    """
    wave = np.asarray(wave, np.float32)
    if len(wave) <= length:
        return fit_length(wave, length)
    cum = np.concatenate([[0.0], np.cumsum(wave.astype(np.float64) ** 2)])
    starts = np.arange(0, len(wave) - length + 1, step)
    energy = cum[starts + length] - cum[starts]
    s = int(starts[int(np.argmax(energy))])
    return wave[s : s + length]
