"""Prompts from label names (GPT-FL section 3.1).

Three styles, each seeded and saved to `<run>/prompts/prompts.jsonl` (one row per sample to
generate: label, label_name, prompt, guidance, seed, style):

- `class`: label-name templates per modality ("a photo of a {label}", "a handwritten digit 3").
- `multi-domain`: the label in several domains (photo, drawing, painting, sketch ... for images;
  studio, field, home, office for sounds), which widens what a generator draws.
- `llm`: a causal language model fills in "___ {label} ___" as in the paper's airplane example;
  outputs that do not name the label are dropped and refilled (bounded tries), duplicates are
  removed, and a fixed number per class is kept (footnote 1: a uniform number per label).

Every row's guidance scale is drawn uniformly in [1, 5] (section 3.1). Image prompts also carry
a few style words (bold, thin, slanted, ...) that the offline glyph generator reads.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gptfl_ray.errors import ConfigError
from gptfl_ray.runio import atomic_write_text
from gptfl_ray.seeding import derive_seed, row_rng
from gptfl_ray.synth.config import PromptsConfig, per_class_count
from gptfl_ray.synth.labels import server_label_names

PROMPTS_DIR = "prompts"
PROMPTS_FILE = "prompts.jsonl"
META_FILE = "prompts.meta.json"

# Words the glyph generator maps to rendering choices; harmless adjectives for a diffusion model.
GLYPH_STYLE_WORDS = (
    "bold",
    "thin",
    "slanted",
    "upright",
    "small",
    "large",
    "wide",
    "narrow",
    "noisy",
    "wobbly",
    "serif",
    "sans",
    "mono",
    "italic",
)

CLASS_TEMPLATES = {
    "digits": (
        "a handwritten digit {label}",
        "the number {label} written by hand",
        "a scanned handwritten {label}",
        "a pen-written digit {label} on white paper",
    ),
    "image": (
        "a photo of a {label}",
        "a picture of a {label}",
        "an image of a {label}",
        "a close-up photo of a {label}",
        "a photo of the {label}",
    ),
    "sound": ("the sound of a {label}", "a recording of a {label}", "audio of a {label}", "a {label} sound"),
    # A TTS model speaks the whole prompt: keyword data sets need the word alone.
    "speech": ("{label}", "{label}.", "{label}!", "{label}?"),
}
DOMAINS = {
    "digits": (
        "handwritten",
        "pencil drawing",
        "marker drawing",
        "sketch",
        "painting",
        "chalk drawing",
        "ballpoint pen drawing",
        "scanned form",
    ),
    "image": (
        "photo",
        "drawing",
        "painting",
        "sketch",
        "cartoon",
        "watercolor painting",
        "pencil sketch",
        "3D render",
        "pixel art",
    ),
    "sound": ("studio", "field", "home", "office", "street", "park", "car", "kitchen"),
    "speech": ("{label}", "{label}.", "{label}!", "{label}?", "{label}..."),
}
DOMAIN_TEMPLATES = {
    "digits": "a {domain} of the digit {label}",
    "image": "a {domain} of a {label}",
    "sound": "the sound of a {label} recorded in a {domain}",
    "speech": "{domain}",
}
LLM_QUERY = 'Q: "___ {label} ___" Please fill in the blank and make it as a prompt to generate the {what}.\nA:'


def prompt_kind(dataset: Any) -> str:
    """digits | image | speech | sound: decides templates (speech = keyword spotting)."""
    if dataset.modality == "audio":
        kind = str(getattr(dataset, "extra", {}).get("audio_kind", ""))
        if kind in ("speech", "sound"):
            return kind
        return "speech" if any(k in dataset.name.lower() for k in ("speech", "command", "keyword")) else "sound"
    if tuple(dataset.x_train.shape[1:]) == (1, 8, 8) and dataset.max_value == 16:
        return "digits"
    return "image"


def label_text(name: str) -> str:
    return name.replace("_", " ").strip()


def names_label(text: str, label: str) -> bool:
    """Whole-word, case-insensitive: "3" must not match "30", "cat" must not match "category"."""
    pattern = r"(?<![0-9a-z])" + re.escape(label_text(label).lower()) + r"(?![0-9a-z])"
    return re.search(pattern, text.lower()) is not None


def style_suffix(rng, enabled: bool) -> str:
    """A few glyph style words per row (0-2), drawn from the row's own stream; shared with FGL's server."""
    if not enabled:
        return ""
    k = int(rng.integers(0, 3))
    words = rng.choice(len(GLYPH_STYLE_WORDS), size=k, replace=False) if k else []
    return "".join(f", {GLYPH_STYLE_WORDS[int(i)]}" for i in words)


def draw_guidance(rng, lo: float, hi: float, draw: str = "integer", grid: float = 0.5) -> float:
    """One row's guidance scale: an integer in [lo, hi] (the original GPT-FL code's 1..5), or a
    uniform draw rounded to `grid` and kept in range, so rows fall into a few shared scales
    that a generator runs as one batch each."""
    if draw == "integer":
        return float(rng.integers(math.ceil(lo), math.floor(hi) + 1))
    g = round(float(rng.uniform(lo, hi)) / grid) * grid
    return round(float(min(max(g, lo), hi)), 6)


def template_prompt(kind: str, style: str, label: str, rng) -> str:
    text = label_text(label)
    if style == "multi-domain":
        domain = DOMAINS[kind][int(rng.integers(len(DOMAINS[kind])))]
        return DOMAIN_TEMPLATES[kind].format(domain=domain.format(label=text), label=text)
    templates = CLASS_TEMPLATES[kind]
    return templates[int(rng.integers(len(templates)))].format(label=text)


def build_prompts(
    dataset: Any, cfg: PromptsConfig, llm: Callable[[str, int, int], list[str]] | None = None
) -> list[dict]:
    """All prompt rows, class-major, each with its own seed and guidance scale."""
    labels = server_label_names(dataset, cfg.labels)
    kind = prompt_kind(dataset)
    if cfg.style == "llm" and kind == "speech":
        raise ConfigError(
            "prompts.style",
            "llm prompts would make a TTS model speak whole sentences; keyword data sets take class or multi-domain",
        )
    n = per_class_count(cfg.per_class, cfg.scale, len(dataset.x_train), dataset.num_classes)
    words = cfg.style_words and kind in ("digits", "image")
    if cfg.style == "llm" and llm is None:
        llm = LLMPromptFiller(cfg, kind)
    rows: list[dict] = []
    for label in labels:
        index = dataset.class_names.index(label)
        filled = llm(label, n, index) if cfg.style == "llm" else []
        for j in range(n):
            row = len(rows)
            seed = derive_seed(cfg.seed, row)
            rng = row_rng(seed)
            guidance = draw_guidance(rng, cfg.guidance_min, cfg.guidance_max, cfg.guidance_draw, cfg.guidance_grid)
            if j < len(filled):
                prompt, style = filled[j], "llm"
            else:  # class/multi-domain, or an LLM that ran out of tries for this label
                style = cfg.style if cfg.style != "llm" else "class"
                prompt = template_prompt(kind, style, label, rng)
            rows.append(
                {
                    "label": index,
                    "label_name": label,
                    "prompt": prompt + style_suffix(rng, words),
                    "guidance": guidance,
                    "seed": seed,
                    "style": style,
                }
            )
    return rows


class LLMPromptFiller:
    """Fill in "___ {label} ___" with a causal LM (hub id or local path), as in section 3.1."""

    def __init__(self, cfg: PromptsConfig, kind: str):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from gptfl_ray.synth.hub import load_model

        self._torch = torch
        self.cfg = cfg
        self.what = {"digits": "image", "image": "image", "sound": "sound"}.get(kind, "audio")
        self.tok = load_model(AutoTokenizer.from_pretrained, cfg.llm_model, option="prompts.llm_model")
        self.model = load_model(AutoModelForCausalLM.from_pretrained, cfg.llm_model, option="prompts.llm_model").eval()
        if self.tok.pad_token_id is None:
            self.tok.pad_token = self.tok.eos_token
        self.stats: dict[str, int] = {"generated": 0, "dropped_no_label": 0, "dropped_duplicate": 0, "fallback": 0}

    def candidates(self, label: str, k: int, seed: int) -> list[str]:
        torch = self._torch
        query = LLM_QUERY.format(label=label_text(label), what=self.what)
        enc = self.tok(query, return_tensors="pt")
        torch.manual_seed(seed & 0xFFFFFFFF)  # sampling uses the global generator
        with torch.inference_mode():
            out = self.model.generate(
                **enc,
                do_sample=True,
                top_p=0.95,
                temperature=1.0,
                num_return_sequences=k,
                max_new_tokens=self.cfg.llm_max_new_tokens,
                pad_token_id=self.tok.pad_token_id,
            )
        texts = self.tok.batch_decode(out[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
        return [clean_completion(t) for t in texts]

    def __call__(self, label: str, n: int, label_index: int) -> list[str]:
        kept: list[str] = []
        seen: set[str] = set()
        for attempt in range(self.cfg.llm_max_tries):
            need = n - len(kept)
            if need <= 0:
                break
            k = min(64, 2 * need)
            for text in self.candidates(label, k, derive_seed(self.cfg.seed, label_index, attempt, 0x11)):
                self.stats["generated"] += 1
                key = " ".join(text.lower().split())
                if not text or not names_label(text, label):
                    self.stats["dropped_no_label"] += 1
                elif key in seen:
                    self.stats["dropped_duplicate"] += 1
                elif len(kept) < n:
                    seen.add(key)
                    kept.append(text)
        self.stats["fallback"] += n - len(kept)
        return kept


def clean_completion(text: str) -> str:
    """First line of the answer, without quotes, squeezed, at most 200 characters."""
    line = text.strip().split("\n")[0].strip().strip('"').strip("'").strip()
    return " ".join(line.split())[:200]


# ---------------------------------------------------------------------------------- files


def prompts_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / PROMPTS_DIR / PROMPTS_FILE


def _config_json(cfg: PromptsConfig | None) -> Any:
    return None if cfg is None else json.loads(json.dumps(dataclasses.asdict(cfg)))


def write_prompts(run_dir: str | Path, rows: list[dict], cfg: PromptsConfig | None = None) -> Path:
    """The JSONL file plus a sidecar naming the config that made it (so reruns can reuse it)."""
    path = prompts_path(run_dir)
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    atomic_write_text(path, text)
    meta = {"config": _config_json(cfg), "rows": len(rows), "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest()}
    atomic_write_text(path.with_name(META_FILE), json.dumps(meta, indent=2) + "\n")
    return path


def ensure_prompts(cfg: PromptsConfig, dataset: Any, run_dir: str | Path) -> list[dict]:
    """Reuse `<run>/prompts/` when the same config made it and it is intact; else build it."""
    path = prompts_path(run_dir)
    try:
        meta = json.loads(path.with_name(META_FILE).read_text("utf-8"))
        same = meta.get("config") == _config_json(cfg) and hashlib.sha256(path.read_bytes()).hexdigest() == meta.get(
            "sha256"
        )
    except (OSError, json.JSONDecodeError):
        same = False
    if same:
        return read_prompts(run_dir, dataset)
    rows = build_prompts(dataset, cfg)
    write_prompts(run_dir, rows, cfg)
    return rows


def read_prompts(run_dir: str | Path, dataset: Any) -> list[dict]:
    """Read and check a prompts file against the data set: labels and names must line up."""
    path = prompts_path(run_dir)
    if not path.is_file():
        raise ConfigError("output_dir", f"{path} does not exist; run `gptfl-ray prompts` first")
    rows = []
    for i, line in enumerate(path.read_text("utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            r = json.loads(line)
            row = {
                "label": int(r["label"]),
                "label_name": str(r["label_name"]),
                "prompt": str(r["prompt"]),
                "guidance": float(r["guidance"]),
                "seed": int(r["seed"]),
                "style": str(r.get("style", "")),
            }
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise ConfigError(str(path), f"line {i} is not a prompt row ({exc})") from None
        if not (0 <= row["label"] < dataset.num_classes) or dataset.class_names[row["label"]] != row["label_name"]:
            raise ConfigError(
                str(path),
                f"line {i}: label {row['label']} {row['label_name']!r} is not a class of data set {dataset.name}",
            )
        rows.append(row)
    if not rows:
        raise ConfigError(str(path), "holds no prompts")
    return rows


def take_per_class(rows: list[dict], n: int) -> list[dict]:
    """The first `n` prompts of each label (error when the file holds fewer)."""
    out, counts = [], {}
    for r in rows:
        c = counts.get(r["label"], 0)
        if c < n:
            out.append(r)
        counts[r["label"]] = c + 1
    short = sorted(lbl for lbl, c in counts.items() if c < n)
    if short:
        raise ConfigError(
            "prompts.per_class",
            f"the prompts file holds fewer than {n} prompts for label(s) {short[:5]}; "
            "rerun `gptfl-ray prompts` with a larger count",
        )
    return out
