"""What an FGL client sends instead of model updates: prompts built from its own data.

FGL (Zhang, Qi, Zhao: "Federated Generative Learning with Foundation Models", section 3 and
Figure 2) has each client turn its local data into text for the server's foundation generator.
Two kinds of prompt, both built here, on the client, from nothing but that client's samples:

- `class` (class-level prompts): one prompt per local class name, "a handwritten digit 3",
  with how many samples of that class the client holds. The server rescales the counts to its
  synthetic budget, so the synthetic set follows the federation's class mix.
- `instance` (instance-level prompts): one caption per local sample from an image-to-text
  model (BLIP in the paper; any transformers captioner by hub id or local path here), joined
  to the class prompt: "a handwritten digit 3, <caption>". Tiny inputs (the 8x8 digits) are
  upsampled before captioning because captioners were trained on photos of hundreds of pixels.

An upload is the UTF-8 JSON of `{"style": ..., "prompts": [...]}` with compact separators;
its byte length is what the client puts on the wire and what the accounting counts. The client
id is not in the body: the transport knows the sender, as with a model update.

`build_uploads` runs the clients: in a plain loop (`--backend local`) or in a small pool of Ray
actors (`--backend ray`) that each load the captioner once and take clients in chunks, so
prompts really are made where the client's data lives and only the text comes back.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gptfl_ray.errors import ConfigError, find_config_error
from gptfl_ray.methods.fgl_config import FGL_PROMPT_STYLES as PROMPT_STYLES
from gptfl_ray.seeding import derive_seed, row_rng
from gptfl_ray.synth.hub import load_model
from gptfl_ray.synth.prompts import prompt_kind, template_prompt

DEFAULT_CAPTIONER = "Salesforce/blip-image-captioning-base"  # the BLIP the FGL code uses
_SALT = 0xF61  # keeps client prompt seeds apart from every other stage's seeds


@dataclass(frozen=True)
class PromptSpec:
    """What every client needs to build its prompts; picklable so a Ray actor can take it."""

    style: str
    kind: str  # digits | image | sound | speech (synth.prompts.prompt_kind)
    class_names: tuple[str, ...]
    max_value: float
    seed: int = 0
    captioner: str | None = None
    caption_size: int = 64  # side a small image is upsampled to before captioning
    caption_tokens: int = 20
    caption_batch: int = 16
    device: str = "cpu"


@dataclass
class ClientUpload:
    client_id: int
    style: str
    prompts: list[dict] = field(default_factory=list)

    def body(self) -> dict:
        return {"style": self.style, "prompts": self.prompts}

    def payload(self) -> bytes:
        return encode_prompts(self.body())

    @property
    def nbytes(self) -> int:
        return len(self.payload())


def encode_prompts(body: dict) -> bytes:
    """The bytes a client sends: compact UTF-8 JSON (non-ASCII names stay one code point)."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


# ------------------------------------------------------------------------------ prompt builders


def class_prompts(spec: PromptSpec, client_id: int, y_local: np.ndarray) -> list[dict]:
    """One prompt per local class with the client's exact sample count of that class."""
    labels, counts = np.unique(np.asarray(y_local, np.int64), return_counts=True)
    out = []
    for label, count in zip(labels, counts):
        name = spec.class_names[int(label)]
        rng = row_rng(derive_seed(spec.seed, client_id, int(label), _SALT))
        out.append({"label": name, "prompt": template_prompt(spec.kind, "class", name, rng), "count": int(count)})
    return out


def to_pil(sample: np.ndarray, max_value: float, size: int):
    """A raw sample (C,H,W in the data set's units) as an RGB picture a captioner can read."""
    from PIL import Image

    arr = np.asarray(sample, np.float32)
    arr = np.clip(arr * (255.0 / max_value), 0, 255).astype(np.uint8)
    hwc = arr[0] if arr.shape[0] == 1 else np.transpose(arr[:3], (1, 2, 0))
    img = Image.fromarray(np.ascontiguousarray(hwc)).convert("RGB")
    if min(img.size) < size:
        # Bilinear keeps the stroke shape of an 8x8 digit instead of eight big squares.
        scale = size / min(img.size)
        img = img.resize((max(size, round(img.size[0] * scale)), max(size, round(img.size[1] * scale))), Image.BILINEAR)
    return img


class Captioner:
    """An image-to-text model (BLIP, ViT+GPT-2, ...) by hub id or path, greedy and deterministic."""

    def __init__(self, ref: str, max_new_tokens: int = 20, device: str = "cpu"):
        import torch
        from transformers import AutoImageProcessor, AutoModelForImageTextToText, AutoTokenizer

        self._torch = torch
        self.device = torch.device(device)
        self.images = load_model(AutoImageProcessor.from_pretrained, ref, option="fgl.captioner")
        self.tokenizer = load_model(AutoTokenizer.from_pretrained, ref, option="fgl.captioner")
        self.model = (
            load_model(AutoModelForImageTextToText.from_pretrained, ref, option="fgl.captioner").eval().to(self.device)
        )
        self.max_new_tokens = max_new_tokens

    def __call__(self, pictures: list) -> list[str]:
        pixels = self.images(images=pictures, return_tensors="pt")["pixel_values"].to(self.device)
        with self._torch.inference_mode():
            out = self.model.generate(pixel_values=pixels, max_new_tokens=self.max_new_tokens, do_sample=False)
        return [" ".join(t.split()) for t in self.tokenizer.batch_decode(out, skip_special_tokens=True)]


class ClientPromptBuilder:
    """Builds one client's upload from its local (x_raw, y). Loads the captioner once."""

    def __init__(self, spec: PromptSpec):
        self.spec = spec
        self.captioner = None
        if spec.style == "instance":
            import torch

            torch.set_num_threads(1)  # one thread per executor, as the FL executors do
            self.captioner = Captioner(spec.captioner or DEFAULT_CAPTIONER, spec.caption_tokens, spec.device)

    def __call__(self, client_id: int, x_local: np.ndarray | None, y_local: np.ndarray) -> ClientUpload:
        spec = self.spec
        if spec.style == "class":
            return ClientUpload(client_id, "class", class_prompts(spec, client_id, y_local))
        prompts = []
        for start in range(0, len(y_local), spec.caption_batch):
            xs, ys = x_local[start : start + spec.caption_batch], y_local[start : start + spec.caption_batch]
            captions = self.captioner([to_pil(x, spec.max_value, spec.caption_size) for x in xs])
            for j, (label, caption) in enumerate(zip(ys, captions)):
                name = spec.class_names[int(label)]
                rng = row_rng(derive_seed(spec.seed, client_id, start + j, _SALT))
                text = template_prompt(spec.kind, "class", name, rng)
                # The label name leads: a captioner that misreads the image cannot relabel it.
                prompts.append({"label": name, "prompt": f"{text}, {caption}" if caption else text})
        return ClientUpload(client_id, "instance", prompts)

    def run(
        self, x: np.ndarray | None, y: np.ndarray, parts: Sequence[np.ndarray], client_ids: Sequence[int]
    ) -> list[ClientUpload]:
        out = []
        for cid in client_ids:
            idx = np.asarray(parts[int(cid)], np.int64)
            out.append(self(int(cid), None if x is None else x[idx], y[idx]))
        return out


# ------------------------------------------------------------------------------ executors


def prompt_spec(dataset: Any, style: str, seed: int, captioner: str | None = None, **kw) -> PromptSpec:
    """The spec for a data set; refuses instance prompts where there is no image to caption."""
    if style not in PROMPT_STYLES:
        raise ConfigError("fgl.prompts", f"unknown prompt style {style!r}; choose from {', '.join(PROMPT_STYLES)}")
    if style == "instance" and dataset.modality != "image":
        raise ConfigError(
            "fgl.prompts", f"instance prompts caption images; {dataset.name} is {dataset.modality} (use class)"
        )
    return PromptSpec(
        style=style,
        kind=prompt_kind(dataset),
        class_names=tuple(dataset.class_names),
        max_value=float(dataset.max_value),
        seed=seed,
        captioner=(captioner or DEFAULT_CAPTIONER) if style == "instance" else None,
        **kw,
    )


def build_uploads(
    spec: PromptSpec,
    x_raw: np.ndarray,
    y: np.ndarray,
    parts: Sequence[np.ndarray],
    backend: str = "local",
    num_actors: int | None = None,
    client_cpus: float = 1.0,
    client_gpus: float = 0.0,
    on_client=None,
) -> list[ClientUpload]:
    """Every client's upload, in client order. Class prompts never touch x (only labels)."""
    x = x_raw if spec.style == "instance" else None
    ids = list(range(len(parts)))
    if backend == "local":
        builder = ClientPromptBuilder(spec)
        out = []
        for cid in ids:
            out += builder.run(x, y, parts, [cid])
            if on_client:
                on_client(len(out))
        return out
    return _build_on_ray(spec, x, y, parts, ids, num_actors, client_cpus, client_gpus, on_client)


class _PromptActor:
    """One pool slot: a client prompt builder in its own worker, holding the captioner."""

    def __init__(self, spec: PromptSpec, data: tuple):
        import dataclasses
        import warnings

        import ray

        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        if ray.get_gpu_ids() and spec.style == "instance":
            import torch

            if torch.cuda.is_available():  # Ray set CUDA_VISIBLE_DEVICES to this actor's share
                spec = dataclasses.replace(spec, device="cuda")
        self.builder = ClientPromptBuilder(spec)
        self.x, self.y, self.parts = data

    def run(self, client_ids: list[int]) -> list[ClientUpload]:
        return self.builder.run(self.x, self.y, self.parts, client_ids)


def _build_on_ray(spec, x, y, parts, ids, num_actors, client_cpus, client_gpus, on_client) -> list[ClientUpload]:
    import ray
    from ray.util import ActorPool

    from gptfl_ray.fl.engine import PackedParts, pool_size_from_resources

    if num_actors is None:
        num_actors = max(1, sum(pool_size_from_resources(ray.nodes(), client_cpus, client_gpus).values()))
    # Class prompts are a bincount per client: two actors are plenty, and each actor start
    # costs seconds and ~60 MiB; captioning is the part worth spreading out.
    cap = len(ids) if spec.style == "instance" else 2
    n = max(1, min(num_actors, cap, len(ids)))
    data = ray.put((x, y, PackedParts.pack(parts)))  # once, read zero-copy by every actor
    actor_cls = ray.remote(num_cpus=client_cpus, num_gpus=client_gpus or None)(_PromptActor)
    actors = [actor_cls.remote(spec, data) for _ in range(n)]
    # Several chunks per actor balance clients of unequal size without a task per client.
    size = max(1, math.ceil(len(ids) / (4 * n)))
    chunks = [ids[i : i + size] for i in range(0, len(ids), size)]
    out: list[ClientUpload] = []
    try:
        for got in ActorPool(actors).map(lambda a, c: a.run.remote(c), chunks):
            out += got
            if on_client:
                on_client(len(out))
    except Exception as exc:  # noqa: BLE001 - a captioner path that will not load is user input
        found = find_config_error(exc)
        if found is not None:
            raise found from None
        raise
    finally:
        for a in actors:
            ray.kill(a)
    return out
