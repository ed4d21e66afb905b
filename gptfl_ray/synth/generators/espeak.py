"""`espeak`: offline text-to-speech with the espeak-ng program, a weak stand-in for SpeechT5.

GPT-FL (section 3.2) synthesises Google Speech Commands with SpeechT5 text-to-speech and ESC-50
with AudioLDM text-to-audio, and finds synthetic audio far weaker than synthetic images
(Table 3: centralised training on it reaches 26% on Speech Commands and 13% on ESC-50). Offline
and without a GPU there is neither, so this generator calls Debian's formant synthesiser
`espeak-ng` (one subprocess per row). The text spoken is the label name: the keyword itself
("yes") for Speech Commands; for ESC-50 it just says the category ("chirping birds"), which is
speech, not the sound: an honest, deliberately weak baseline for the out-of-domain case the
paper discusses, not an imitation of AudioLDM.

The prompt's style words steer the voice the way a prompt steers SpeechT5's speaker embedding:
female/male/child/old/whispering pick the espeak voice variant, american/british/scottish/
caribbean the accent, fast/slow the speed, high/deep the pitch, loud/quiet the level,
noisy/clean the background noise. What the words leave open is drawn from the row's seed, so a
row sounds the same on every machine with the same espeak-ng data; low guidance widens the
random ranges. Each utterance is resampled to 16 kHz, its silences trimmed, placed at a random
offset in a clip of the data set's length (1 s or 5 s) and, unless "clean", mixed with noise
at a random SNR (real keyword recordings are phone-quality).

Constructor: `EspeakGenerator(target, model=None, options=None)`; `model` may name the program
(default `espeak-ng` on PATH); options: `voices` (a list of "accent+variant" voices to draw from
instead of the built-in pool, e.g. to hold voices out), `noise` (bool, default True).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from functools import lru_cache
from pathlib import Path

import numpy as np

from gptfl_ray.errors import ConfigError
from gptfl_ray.seeding import row_rng
from gptfl_ray.synth.generators.base import Generator

PROGRAM = "espeak-ng"
MISSING = "espeak needs the espeak-ng program (apt-get install espeak-ng)"

ACCENTS: dict[str, tuple[str, ...]] = {
    "american": ("en-us", "en-us-nyc"),
    "british": ("en-gb", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd"),
    "scottish": ("en-gb-scotland",),
    "caribbean": ("en-029",),
}
ACCENT_WORDS = {
    "american": "american",
    "us": "american",
    "british": "british",
    "english": "british",
    "uk": "british",
    "scottish": "scottish",
    "caribbean": "caribbean",
}
# espeak-ng voice variants (files in espeak-ng-data/voices/!v) by the gender the data list;
# novelty ones (robots, "Demonic", announcer) are left out.
FEMALE = (
    "f1",
    "f2",
    "f3",
    "f4",
    "f5",
    "Alicia",
    "Andrea",
    "Annie",
    "aunty",
    "belinda",
    "linda",
    "steph",
    "steph2",
    "steph3",
    "anika",
)
MALE = (
    "m1",
    "m2",
    "m3",
    "m4",
    "m5",
    "m6",
    "m7",
    "m8",
    "adam",
    "Alex",
    "Andy",
    "antonio",
    "benjamin",
    "boris",
    "caleb",
    "david",
    "Denis",
    "Diogo",
    "ed",
    "edward",
    "edward2",
    "Gene",
    "Gene2",
    "gustave",
    "Henrique",
    "Hugo",
    "iven",
    "iven2",
    "iven3",
    "iven4",
    "Jacky",
    "john",
    "Lee",
    "Marco",
    "Mario",
    "marcelo",
    "max",
    "Michael",
    "michel",
    "miguel",
    "Mike",
    "norbert",
    "pablo",
    "paul",
    "pedro",
    "quincy",
    "rob",
    "robert",
    "sandro",
    "shelby",
    "travis",
    "victor",
    "zac",
    "klatt",
    "klatt2",
    "klatt3",
    "klatt4",
    "klatt5",
    "klatt6",
)
OLD = ("grandma", "grandpa", "croak", "f1")
WHISPER = ("whisper", "whisperf")
GENDER_WORDS = {
    "female": FEMALE,
    "woman": FEMALE,
    "women": FEMALE,
    "girl": FEMALE,
    "lady": FEMALE,
    "male": MALE,
    "man": MALE,
    "men": MALE,
    "boy": MALE,
    "guy": MALE,
    "child": FEMALE,
    "kid": FEMALE,
    "children": FEMALE,
}


def words_of(prompt: str) -> set[str]:
    return {w for w in re.split(r"[^a-z0-9]+", prompt.lower()) if w}


@lru_cache(maxsize=8)
def find_program(ref: str | None = None) -> str:
    path = shutil.which(os.path.expanduser(ref or PROGRAM))
    if path is None:
        raise ConfigError("generate.generator", MISSING)
    return path


@lru_cache(maxsize=8)
def installed_variants(program: str) -> frozenset[str]:
    """Variant names present in this espeak-ng's data ("Data at: <dir>" in --version)."""
    out = subprocess.run([program, "--version"], capture_output=True, text=True, check=False).stdout
    m = re.search(r"Data at:\s*(.+)", out)
    vdir = Path(m.group(1).strip()) / "voices" / "!v" if m else None
    if vdir is None or not vdir.is_dir():
        return frozenset(FEMALE + MALE + OLD + WHISPER)  # cannot tell: trust the list
    return frozenset(p.name for p in vdir.iterdir())


def default_voices(program: str) -> tuple[str, ...]:
    have = installed_variants(program)
    accents = [a for group in ACCENTS.values() for a in group]
    return tuple(f"{a}+{v}" for a in accents for v in FEMALE + MALE if v in have)


def pick_voice(words: set[str], rng: np.random.Generator, program: str, pool: tuple[str, ...] | None) -> str:
    """Voice "accent+variant": from the user's pool, or steered by the prompt's words."""
    if pool:
        return pool[int(rng.integers(len(pool)))]
    have = installed_variants(program)
    accent_group = next((ACCENT_WORDS[w] for w in sorted(words) if w in ACCENT_WORDS), None)
    accents = ACCENTS[accent_group] if accent_group else tuple(a for g in ACCENTS.values() for a in g)
    if words & {"whisper", "whispered", "whispering", "whispers"}:
        variants = WHISPER
    elif words & {"old", "elderly", "older", "aged"}:
        variants = OLD
    else:
        variants = next((GENDER_WORDS[w] for w in sorted(words) if w in GENDER_WORDS), FEMALE + MALE)
    variants = tuple(v for v in variants if v in have) or tuple(v for v in FEMALE + MALE if v in have) or ("m1",)
    accent = accents[int(rng.integers(len(accents)))]
    return f"{accent}+{variants[int(rng.integers(len(variants)))]}"


def sample_settings(
    prompt: str, rng: np.random.Generator, guidance: float, program: str, pool: tuple[str, ...] | None
) -> dict:
    """Voice, pitch (0-99), speed (words/min), level and SNR from the prompt and the row's rng."""
    w = words_of(prompt)
    spread = 1.4 - 0.2 * (float(np.clip(guidance, 1.0, 5.0)) - 1.0)  # as glyph: guidance 1..5
    voice = pick_voice(w, rng, program, pool)
    if w & {"child", "kid", "children", "high", "squeaky"}:
        pitch = (65, 99)
    elif w & {"deep", "low"}:
        pitch = (5, 35)
    else:
        mid, half = 50, 25 * spread
        pitch = (mid - half, mid + half)
    if w & {"fast", "quick", "quickly", "rapid", "rapidly", "hurried"}:
        speed = (210, 280)
    elif w & {"slow", "slowly", "drawn"}:
        speed = (90, 130)
    else:
        speed = (175 - 45 * spread, 175 + 35 * spread)
    if w & {"loud", "shouted", "shouting"}:
        level = (0.7, 0.95)
    elif w & {"quiet", "soft", "softly", "distant"}:
        level = (0.05, 0.2)
    else:
        level = (0.15, 0.8)
    if w & {"noisy", "noise", "background", "street", "crowded"}:
        snr = (0.0, 12.0)
    elif w & {"clean", "studio"}:
        snr = None
    else:
        snr = (15.0, 40.0)
    return {
        "voice": voice,
        "pitch": int(np.clip(round(rng.uniform(*pitch)), 0, 99)),
        "speed": int(np.clip(round(rng.uniform(*speed)), 80, 450)),
        "gap": int(rng.integers(0, 4)),
        "level": float(rng.uniform(*level)),
        "snr": None if snr is None else float(rng.uniform(*snr)),
        "offset": float(rng.random()),
        "noise_seed": int(rng.integers(2**31)),
    }


def parse_wav(data: bytes) -> tuple[np.ndarray, int]:
    """espeak-ng's --stdout WAV (16-bit mono PCM, streamed: its size fields are placeholders)."""
    if len(data) < 44 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise RuntimeError(f"espeak-ng wrote no WAV data ({len(data)} bytes)")
    sr = int.from_bytes(data[24:28], "little")
    at = data.find(b"data", 12)
    if at < 0:
        raise RuntimeError("espeak-ng WAV has no data chunk")
    pcm = data[at + 8 :]
    pcm = pcm[: len(pcm) // 2 * 2]
    return np.frombuffer(pcm, "<i2").astype(np.float32) / 32768.0, sr


def speak(program: str, text: str, voice: str, pitch: int, speed: int, gap: int = 0) -> tuple[np.ndarray, int]:
    # Text goes in on stdin, never as an argument, so a label can never read as an option.
    cmd = [program, "-v", voice, "-p", str(pitch), "-s", str(speed), "-g", str(gap), "-z", "--stdin", "--stdout"]
    res = subprocess.run(cmd, input=text.encode("utf-8"), capture_output=True, check=False, timeout=60)
    if res.returncode != 0:
        msg = res.stderr.decode("utf-8", "replace").strip().splitlines()
        raise RuntimeError(f"espeak-ng {' '.join(cmd[1:-2])} failed: {msg[0] if msg else res.returncode}")
    return parse_wav(res.stdout)


def resample_poly(wave: np.ndarray, sr_from: int, sr_to: int) -> np.ndarray:
    """Polyphase resampling (22.05 -> 16 kHz is 320/441): per short clip ~100x faster than
    torchaudio's, which rebuilds its 441-phase sinc kernel on every call."""
    from math import gcd

    from scipy.signal import resample_poly as _poly

    if sr_from == sr_to:
        return np.asarray(wave, np.float32)
    g = gcd(int(sr_from), int(sr_to))
    return _poly(np.asarray(wave, np.float32), int(sr_to) // g, int(sr_from) // g).astype(np.float32)


def trim(wave: np.ndarray, floor: float = 1e-3) -> np.ndarray:
    loud = np.flatnonzero(np.abs(wave) > floor * max(float(np.abs(wave).max()), 1e-9))
    return wave[loud[0] : loud[-1] + 1] if len(loud) else wave[:0]


def render(text: str, settings: dict, length: int, sample_rate: int, program: str) -> np.ndarray:
    """One clip of `length` samples: speech placed at the seeded offset, scaled, plus noise."""
    speed = settings["speed"]
    for _ in range(3):
        wave, sr = speak(program, text, settings["voice"], settings["pitch"], speed, settings["gap"])
        wave = trim(resample_poly(wave, sr, sample_rate))
        if len(wave) <= length or speed >= 450:
            break
        # Too long for the clip (a slow "backward" in 1 s): speak faster rather than cut the word.
        speed = min(450, int(speed * len(wave) / length * 1.05) + 1)
    wave = wave[:length]
    wave = wave * np.float32(settings["level"] / max(float(np.abs(wave).max(initial=0.0)), 1e-9))
    clip = np.zeros(length, np.float32)
    start = int(settings["offset"] * (length - len(wave)))
    clip[start : start + len(wave)] = wave
    if settings["snr"] is not None:
        noise_rng = np.random.default_rng(settings["noise_seed"])
        # Pinkish noise (white + a detrended random walk) sounds like a room or a phone line,
        # not like hiss alone.
        white = noise_rng.standard_normal(length)
        brown = np.cumsum(noise_rng.standard_normal(length))
        brown -= np.linspace(brown[0], brown[-1], length)
        noise = white / white.std() + 0.5 * brown / max(float(brown.std()), 1e-9)
        speech_power = float(np.mean(wave**2)) if len(wave) else 1e-4
        noise *= np.sqrt(speech_power / 10 ** (settings["snr"] / 10) / float(np.mean(noise**2)))
        clip += noise.astype(np.float32)
    return np.clip(clip, -1.0, 1.0)


class EspeakGenerator(Generator):
    name = "espeak"
    modalities = ("audio",)
    default_model = None  # the program on PATH; `model` may name another espeak-ng binary

    def __init__(self, target, model=None, options=None):
        super().__init__(target, model, options)
        self.program = find_program(self.model)
        voices = self.options.get("voices")
        if isinstance(voices, str):
            voices = [v.strip() for v in voices.split(",") if v.strip()]
        self.pool = tuple(voices) if voices else None
        self.noise = bool(self.options.get("noise", True))

    @classmethod
    def preflight(cls, target, model, options):
        super().preflight(target, model, options)
        find_program(model)

    def resolved_revision(self) -> str:
        """The program's version line (voices and timing change between espeak-ng releases)."""
        out = subprocess.run([self.program, "--version"], capture_output=True, text=True, check=False).stdout
        return "program:" + (out.strip().splitlines() or ["unknown"])[0].split(" Data at:")[0].strip()

    def generate(self, batch):
        length = int(self.target.shape[-1])
        out = []
        for name, prompt, seed, g in zip(batch["label_name"], batch["prompt"], batch["seed"], batch["guidance"]):
            settings = sample_settings(str(prompt), row_rng(int(seed)), float(g), self.program, self.pool)
            if not self.noise:
                settings["snr"] = None
            clip = render(str(name), settings, length, int(self.target.sample_rate), self.program)
            out.append((clip * np.float32(self.target.max_value)).astype(np.float32))
        return out
