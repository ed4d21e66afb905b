"""`speecht5`: text-to-speech for keyword data sets (GPT-FL section 3.2, SpeechT5 [2]).

SpeechT5ForTextToSpeech turns the prompt text into a mel spectrogram and SpeechT5HifiGan into a
16 kHz waveform. Both load by hub id or local path. The voice is a 512-d speaker x-vector, one
picked per row by its seed from a table of real speakers' x-vectors:

- `speaker_embeddings = "hf:regisss/cmu-arctic-xvectors"` (the default): the CMU ARCTIC
  x-vectors Microsoft's SpeechT5 examples use, the Parquet copy that loads without the
  `datasets` package (`hf:<dataset id>[@split]`, column `xvector`);
- a `.npy` or `.pt` file holding a (K, 512) array;
- `random`: a seeded random unit vector per row, the offline fallback (no download), which is
  not a real speaker's voice.

Rows stay one `generate_speech` call each: the decoder pre-net keeps dropout on at inference and
draws it from the global RNG for the whole batch, so a batched row's clip would depend on its
batch mates; seeding per row keeps a clip a function of its own row.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gptfl_ray.seeding import row_rng
from gptfl_ray.synth.format import fit_clip
from gptfl_ray.synth.generators.base import ConfigError, Generator
from gptfl_ray.synth.hub import check_model_ref, load_model, model_revision, torch_device

DEFAULT_VOCODER = "microsoft/speecht5_hifigan"
DEFAULT_SPEAKERS = "hf:regisss/cmu-arctic-xvectors"
RANDOM_SPEAKERS = "random"
SPEAKER_DIM = 512
OPTION = "generate.speaker_embeddings"


def _check_table(emb, source: str) -> np.ndarray:
    emb = np.atleast_2d(np.asarray(emb, np.float32))
    if emb.ndim != 2 or emb.shape[-1] != SPEAKER_DIM or len(emb) == 0:
        raise ConfigError(OPTION, f"{source} must hold (K, {SPEAKER_DIM}) x-vectors, got {tuple(emb.shape)}")
    return emb


def _load_file(path: str) -> np.ndarray:
    p = Path(path).expanduser()
    if not p.is_file():
        raise ConfigError(OPTION, f"file {path} does not exist")
    try:
        if p.suffix in (".pt", ".pth"):
            import torch

            obj = torch.load(p, map_location="cpu", weights_only=True)
            if isinstance(obj, dict):  # {"name": tensor, ...} as some voice packs store them
                obj = torch.stack([torch.as_tensor(v).reshape(-1) for v in obj.values()])
            return _check_table(torch.as_tensor(obj).float().numpy(), path)
        return _check_table(np.load(p), path)
    except (ValueError, OSError, RuntimeError, TypeError) as exc:
        raise ConfigError(OPTION, f"{path} is not a .npy/.pt array ({str(exc).splitlines()[0][:120]})") from None


def _load_hub_dataset(spec: str) -> np.ndarray:
    """`hf:<id>[@split]`: the Parquet files of a hub data set, column `xvector`."""
    repo, _, split = spec[3:].partition("@")
    try:
        import pyarrow.parquet as pq
        from huggingface_hub import HfApi, hf_hub_download

        files = [f for f in HfApi().list_repo_files(repo, repo_type="dataset") if f.endswith(".parquet")]
        if split:
            files = [f for f in files if split in Path(f).name or split in Path(f).parent.name]
        if not files:
            raise ValueError(f"no Parquet files{' for split ' + split if split else ''}")
        tables = [
            pq.read_table(hf_hub_download(repo, f, repo_type="dataset"), columns=["xvector"]) for f in sorted(files)
        ]
    except Exception as exc:  # noqa: BLE001 - offline, no such repo, no such column: one line
        first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise ConfigError(
            OPTION,
            f"cannot load x-vectors from data set {repo!r} ({first}); offline, pass a "
            f"file or `{RANDOM_SPEAKERS}` (random voices, the offline fallback)",
        ) from None
    return _check_table([v for t in tables for v in t.column("xvector").to_pylist()], spec)


def load_speaker_embeddings(spec: str | None) -> np.ndarray | None:
    """The x-vector table, or None for the random offline fallback."""
    spec = DEFAULT_SPEAKERS if spec is None else spec
    if spec == RANDOM_SPEAKERS:
        return None
    if spec.startswith("hf:"):
        return _load_hub_dataset(spec)
    return _load_file(spec)


def check_speaker_option(spec: str | None) -> None:
    """Driver-side check: files must exist (a hub data set is fetched by the actors)."""
    spec = DEFAULT_SPEAKERS if spec is None else spec
    if spec != RANDOM_SPEAKERS and not spec.startswith("hf:"):
        _load_file(spec)


def speakers_revision(spec: str | None) -> str:
    spec = DEFAULT_SPEAKERS if spec is None else spec
    if spec == RANDOM_SPEAKERS:
        return "random-offline-fallback"
    return model_revision(spec[3:].partition("@")[0] if spec.startswith("hf:") else spec)


def speaker_for(seed: int, table: np.ndarray | None) -> np.ndarray:
    rng = row_rng(seed ^ 0x5EED)
    if table is not None:
        return table[int(rng.integers(len(table)))]
    v = rng.normal(0.0, 1.0, SPEAKER_DIM).astype(np.float32)
    return v / np.linalg.norm(v)  # x-vectors are length-normalised


class SpeechT5Generator(Generator):
    name = "speecht5"
    modalities = ("audio",)
    default_model = "microsoft/speecht5_tts"

    @classmethod
    def preflight(cls, target, model, options):
        super().preflight(target, model, options)
        check_model_ref(options.get("vocoder", DEFAULT_VOCODER), "generate.vocoder")
        check_speaker_option(options.get("speaker_embeddings"))

    def __init__(self, target, model=None, options=None):
        super().__init__(target, model, options)
        import torch
        from transformers import SpeechT5ForTextToSpeech, SpeechT5HifiGan, SpeechT5Processor

        self._torch = torch
        self.device, _ = torch_device(self.options.get("device", "auto"))  # fp32: TTS is small
        hub = self.hub_kwargs()
        self.processor = load_model(lambda ref: SpeechT5Processor.from_pretrained(ref, **hub), self.model)
        self.tts = load_model(lambda ref: SpeechT5ForTextToSpeech.from_pretrained(ref, **hub), self.model)
        self.tts = self.tts.to(self.device).eval()
        self.vocoder_ref = self.options.get("vocoder", DEFAULT_VOCODER)
        self.vocoder = load_model(SpeechT5HifiGan.from_pretrained, self.vocoder_ref, option="generate.vocoder")
        self.vocoder = self.vocoder.to(self.device).eval()
        self.sr = int(getattr(self.vocoder.config, "sampling_rate", 16000))
        self.speakers = load_speaker_embeddings(self.options.get("speaker_embeddings"))
        self.maxlenratio = float(self.options.get("maxlenratio", 20.0))
        self.clip_seconds = float(self.options.get("clip_seconds", 1.0))

    def resolved_revision(self) -> str:
        return (
            f"tts={super().resolved_revision()};vocoder={model_revision(self.vocoder_ref)};"
            f"speakers={speakers_revision(self.options.get('speaker_embeddings'))}"
        )

    def _speak(self, text: str, seed: int) -> np.ndarray:
        torch = self._torch
        # SpeechT5's decoder pre-net keeps dropout on at inference: seed it per row.
        torch.manual_seed(int(seed) & 0xFFFFFFFF)
        inputs = self.processor(text=text, return_tensors="pt")
        spk = torch.from_numpy(speaker_for(seed, self.speakers))[None].to(self.device)
        wave = self.tts.generate_speech(
            inputs["input_ids"].to(self.device), spk, vocoder=self.vocoder, maxlenratio=self.maxlenratio
        )
        return wave.float().cpu().numpy()

    def generate(self, batch):
        with self._torch.inference_mode():
            return [
                fit_clip(self._speak(str(p), int(s)), self.sr, self.target, self.clip_seconds)
                for p, s in zip(batch["prompt"], batch["seed"])
            ]
