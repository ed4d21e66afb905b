"""`glyph`: the embedded offline generator; renders a label's characters from font files.

GPT-FL (section 3.2) prompts a pre-trained generator with the label name. Offline and without a
GPU there is none, so this generator stands in: it draws the label's text with the TrueType fonts
that ship inside matplotlib, and the prompt's style words (bold, thin, slanted, noisy, ...)
choose font, weight, shear, rotation, scale, stroke width, offset and noise, the way a prompt
steers a diffusion model. Low guidance widens the random jitter, as low classifier-free
guidance widens a diffusion model's output distribution (section 3.1).

For the digits data set it reproduces how UCI/scikit-learn digits were made, from the data
set's public description only: a 32x32 binary bitmap, size-normalised and centred, counted in
4x4 blocks into an 8x8 image of 0..16. No setting here comes from statistics of real samples
(the server in GPT-FL knows the label names and nothing else): without a style word, a
setting is drawn over the whole range the style words span. Every choice is drawn from the
row's seed, so a row renders the same bytes anywhere.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from gptfl_ray.seeding import row_rng
from gptfl_ray.synth.generators.base import Generator

# Font files with lining digits and full Latin coverage; old-style (cmmi10), symbol and
# display-only files are left out because their "3" is not a 3.
FONT_GROUPS: dict[str, tuple[str, ...]] = {
    "sans": (
        "DejaVuSans.ttf",
        "DejaVuSans-Bold.ttf",
        "DejaVuSans-Oblique.ttf",
        "DejaVuSans-BoldOblique.ttf",
        "cmss10.ttf",
    ),
    "serif": (
        "DejaVuSerif.ttf",
        "DejaVuSerif-Bold.ttf",
        "DejaVuSerif-Italic.ttf",
        "DejaVuSerif-BoldItalic.ttf",
        "STIXGeneral.ttf",
        "STIXGeneralBol.ttf",
        "STIXGeneralItalic.ttf",
        "STIXGeneralBolIta.ttf",
        "cmr10.ttf",
        "cmb10.ttf",
    ),
    "mono": (
        "DejaVuSansMono.ttf",
        "DejaVuSansMono-Bold.ttf",
        "DejaVuSansMono-Oblique.ttf",
        "DejaVuSansMono-BoldOblique.ttf",
        "cmtt10.ttf",
    ),
    "italic": (
        "cmti10.ttf",
        "DejaVuSerif-Italic.ttf",
        "STIXGeneralItalic.ttf",
        "DejaVuSans-Oblique.ttf",
        "STIXGeneralBolIta.ttf",
    ),
}
ALL_FONTS = tuple(dict.fromkeys(f for group in FONT_GROUPS.values() for f in group))
# Without a font word, any font: a shortlist picked by how well real digits are read would be
# a setting taken from the clients' samples.
DEFAULT_FONTS = ALL_FONTS
# Pen radius around the font's outline, as a fraction of the glyph height, per style word;
# without one, anywhere from thin to bold.
STROKES = {"bold": (0.04, 0.08), "thin": (0.0, 0.01), "": (0.0, 0.08)}
# Total slant (dx/dy) after the font's own italic angle, per style word; without one, upright
# give or take as much in either direction (no side is preferred without data).
SLANTS = {"slanted": (0.15, 0.35), "upright": (-0.05, 0.05), "": (-0.2, 0.2)}

_RENDER = 112  # canvas side for the high-resolution drawing before any down-sampling


def font_dir() -> str:
    import matplotlib

    return os.path.join(matplotlib.get_data_path(), "fonts", "ttf")


@functools.lru_cache(maxsize=256)
def _font(name: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(os.path.join(font_dir(), name), size)


@dataclass(frozen=True)
class GlyphStyle:
    font: str
    stroke: float  # stroke thickening as a fraction of the glyph height
    shear: float  # x += shear * y
    rotation: float  # degrees
    aspect: float  # x-scale relative to the font's own width
    scale: float  # glyph height / image height (non-digit images)
    offset: tuple[float, float]  # centre offset as a fraction of the image side
    elastic: float  # elastic-distortion amplitude, fraction of the glyph height
    warp: tuple[float, float]  # power-law (y, x) remaps: loop sizes and bar heights vary by writer
    noise: float  # salt-and-pepper fraction (non-digit images) / bit-flip rate (digits)
    fg: tuple[int, int, int]
    bg: tuple[int, int, int]


def _font_slant(font: str) -> float:
    return 0.2 if any(k in font for k in ("Oblique", "Italic", "Ita", "cmti")) else 0.0


def words_of(prompt: str) -> set[str]:
    return {w.strip(".,;:!?\"'()").lower() for w in prompt.split()}


def sample_style(prompt: str, rng: np.random.Generator, guidance: float = 3.0) -> GlyphStyle:
    """Map a prompt's style words to rendering parameters; unset ones are drawn from `rng`."""
    w = words_of(prompt)
    # Guidance 1 -> jitter x1.4, guidance 5 -> x0.6: strong guidance sticks closer to the words.
    spread = 1.4 - 0.2 * (float(np.clip(guidance, 1.0, 5.0)) - 1.0)
    group = next((g for g in ("mono", "serif", "sans", "italic") if g in w), None)
    fonts = FONT_GROUPS[group] if group else DEFAULT_FONTS
    if "bold" in w:
        fonts = tuple(f for f in fonts if "Bol" in f or f == "cmb10.ttf") or fonts
    elif "thin" in w:
        fonts = tuple(f for f in fonts if "Bol" not in f and f != "cmb10.ttf") or fonts
    font = fonts[int(rng.integers(len(fonts)))]
    stroke = STROKES[next((k for k in ("bold", "thin") if k in w), "")]
    # Total slant = the font's own italic angle + shear, so the shear cancels an italic font's
    # ~12 degrees unless the prompt asks for italics.
    own = 0.0 if "italic" in w else _font_slant(font)
    lo, hi = SLANTS[next((k for k in ("slanted", "upright") if k in w), "")]
    shear = (lo - own, hi - own)
    rot = 8.0 * spread
    aspect = {"wide": (1.1, 1.5), "narrow": (0.55, 0.85)}.get(
        next((k for k in ("wide", "narrow") if k in w), ""), (0.55, 1.5)
    )
    scale = {"small": (0.35, 0.55), "large": (0.8, 0.95)}.get(
        next((k for k in ("small", "large") if k in w), ""), (0.35, 0.95)
    )
    noisy = "noisy" in w
    wobbly = "wobbly" in w or noisy
    return GlyphStyle(
        font=font,
        stroke=float(rng.uniform(*stroke)),
        shear=float(rng.uniform(*shear)),
        rotation=float(rng.uniform(-rot, rot)),
        aspect=float(rng.uniform(*aspect)),
        scale=float(rng.uniform(*scale)),
        offset=(float(rng.normal(0, 0.06 * spread)), float(rng.normal(0, 0.06 * spread))),
        elastic=float(rng.uniform(0.04, 0.09) if wobbly else rng.uniform(0.0, 0.06) * spread),
        noise=float(rng.uniform(0.02, 0.08) if noisy else 0.0),
        warp=(float(np.exp(rng.uniform(-0.35, 0.35) * spread)), float(np.exp(rng.uniform(-0.2, 0.2) * spread))),
        fg=tuple(int(v) for v in rng.integers(0, 256, 3)),
        bg=tuple(int(v) for v in rng.integers(0, 256, 3)),
    )


def render_mask(text: str, style: GlyphStyle, rng: np.random.Generator) -> np.ndarray:
    """Draw `text` large, thicken, shear/rotate/stretch and distort; float mask in [0, 1]."""
    size = int(_RENDER * 0.5 / max(1.0, len(text) ** 0.5))
    font = _font(style.font, size)
    left, top, right, bottom = font.getbbox(text)
    height = max(1, bottom - top)
    stroke_px = int(round(style.stroke * height))
    pad = stroke_px + size // 2
    w, h = right - left + 2 * pad, bottom - top + 2 * pad
    img = Image.new("L", (w, h), 0)
    ImageDraw.Draw(img).text(
        (pad - left, pad - top), text, font=font, fill=255, stroke_width=stroke_px, stroke_fill=255
    )
    # One affine map (inverse form, as PIL wants it) for aspect, shear and rotation about the centre.
    t = np.deg2rad(style.rotation)
    fwd = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]]) @ np.array(
        [[style.aspect, -style.shear], [0.0, 1.0]]
    )
    inv = np.linalg.inv(fwd)
    cx, cy = w / 2, h / 2
    off = np.array([cx, cy]) - inv @ np.array([cx, cy])
    img = img.transform(
        (w, h), Image.AFFINE, (inv[0, 0], inv[0, 1], off[0], inv[1, 0], inv[1, 1], off[1]), resample=Image.BILINEAR
    )
    mask = np.asarray(img, dtype=np.float32) / 255.0
    if style.elastic > 0:
        mask = _elastic(mask, style.elastic * height, sigma=0.12 * height, rng=rng)
    return _power_warp(crop_mask(mask), *style.warp)


def _power_warp(mask: np.ndarray, gy: float, gx: float) -> np.ndarray:
    """Output row y samples source row H*(y/H)**gy: gy < 1 shrinks the top part, gy > 1 grows it."""
    from scipy.ndimage import map_coordinates

    h, w = mask.shape
    if h < 2 or w < 2:
        return mask
    ys = (h - 1) * (np.arange(h) / (h - 1)) ** gy
    xs = (w - 1) * (np.arange(w) / (w - 1)) ** gx
    yy, xx = np.meshgrid(ys, xs, indexing="ij")
    return map_coordinates(mask, [yy, xx], order=1, mode="nearest").astype(np.float32)


def _elastic(mask: np.ndarray, alpha: float, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Simard-style elastic distortion: a smooth random displacement field (wobbly pen strokes)."""
    from scipy.ndimage import gaussian_filter, map_coordinates

    dx = gaussian_filter(rng.uniform(-1, 1, mask.shape), sigma, mode="constant")
    dy = gaussian_filter(rng.uniform(-1, 1, mask.shape), sigma, mode="constant")
    norm = max(np.abs(dx).max(), np.abs(dy).max(), 1e-8)
    yy, xx = np.meshgrid(np.arange(mask.shape[0]), np.arange(mask.shape[1]), indexing="ij")
    coords = [yy + alpha * dy / norm, xx + alpha * dx / norm]
    return map_coordinates(mask, coords, order=1, mode="constant").astype(np.float32)


def crop_mask(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask > 0.5)
    if len(ys) == 0:
        return np.zeros((1, 1), np.float32)
    return mask[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]


def _resize(mask: np.ndarray, w: int, h: int) -> np.ndarray:
    img = Image.fromarray(np.clip(mask * 255, 0, 255).astype(np.uint8), "L")
    return np.asarray(img.resize((max(1, w), max(1, h)), Image.LANCZOS), np.float32) / 255.0


def digits_from_mask(mask: np.ndarray, rng: np.random.Generator, offset: float = 0.0, noise: float = 0.0) -> np.ndarray:
    """UCI optdigits preprocessing: normalise into a 32x32 bitmap, count 4x4 blocks -> 8x8 0..16.

    From the data set's public description only ("size-normalised and centred" 32x32 bitmaps):
    the glyph is scaled to the full 32 rows keeping its aspect ratio (at most 32 columns) and
    centred, with the style's horizontal jitter.
    """
    h, w = mask.shape
    new_h = 32
    new_w = int(np.clip(round(w * new_h / h), 1, 32))
    glyph = _resize(mask, new_w, new_h) > 0.5
    bitmap = np.zeros((32, 32), bool)
    x0 = int(np.clip(round(16 - new_w / 2 + offset * 8), 0, 32 - new_w))
    y0 = (32 - new_h) // 2
    bitmap[y0 : y0 + new_h, x0 : x0 + new_w] = glyph
    if noise > 0:
        bitmap ^= rng.random(bitmap.shape) < noise * 0.2
    counts = bitmap.reshape(8, 4, 8, 4).sum(axis=(1, 3))
    return counts.astype(np.uint8)[None]  # (1, 8, 8), 0..16


def image_from_mask(
    mask: np.ndarray, style: GlyphStyle, shape: tuple[int, ...], rng: np.random.Generator
) -> np.ndarray:
    """Place the glyph at the style's scale/offset on a (C, H, W) uint8 canvas."""
    c, H, W = shape
    h, w = mask.shape
    gh = max(1, style.scale * H)
    gw = w * gh / h
    if gw > 0.95 * W:
        gh, gw = gh * 0.95 * W / gw, 0.95 * W
    glyph = _resize(mask, int(round(gw)), int(round(gh)))
    alpha = np.zeros((H, W), np.float32)
    x0 = int(np.clip(round((W - gw) / 2 + style.offset[0] * W), 0, W - glyph.shape[1]))
    y0 = int(np.clip(round((H - gh) / 2 + style.offset[1] * H), 0, H - glyph.shape[0]))
    alpha[y0 : y0 + glyph.shape[0], x0 : x0 + glyph.shape[1]] = glyph
    if c == 1:  # grey data sets: a dark or light pen, chosen by the seed
        fg, bg = (np.array([255.0]), np.array([0.0])) if style.fg[0] >= 128 else (np.array([0.0]), np.array([255.0]))
    else:
        fg, bg = np.array(style.fg[:c], np.float32), np.array(style.bg[:c], np.float32)
        if np.abs(fg - bg).sum() < 150:  # keep the text readable
            fg = 255.0 - bg
    out = alpha[None] * fg[:, None, None] + (1 - alpha[None]) * bg[:, None, None]
    if style.noise > 0:
        flips = rng.random((H, W)) < style.noise
        out[:, flips] = rng.integers(0, 256, (c, int(flips.sum())))
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def render_row(
    label_name: str, prompt: str, seed: int, guidance: float, target_kind: str, shape: tuple[int, ...]
) -> np.ndarray:
    rng = row_rng(seed)
    style = sample_style(prompt, rng, guidance)
    mask = render_mask(label_name, style, rng)
    if target_kind == "digits":
        return digits_from_mask(mask, rng, style.offset[0], style.noise)
    return image_from_mask(mask, style, shape, rng)


class GlyphGenerator(Generator):
    name = "glyph"
    modalities = ("image",)
    default_model = None  # fonts ship with matplotlib: nothing to load

    def __init__(self, target, model=None, options=None):
        super().__init__(target, model, options)
        missing = [f for f in ALL_FONTS if not os.path.exists(os.path.join(font_dir(), f))]
        if len(missing) == len(ALL_FONTS):
            raise RuntimeError(f"no matplotlib fonts found in {font_dir()}")

    def resolved_revision(self) -> str:
        return "builtin"  # fonts ship with matplotlib; the renderer is this module

    def generate(self, batch):
        return [
            render_row(str(name), str(prompt), int(seed), float(g), self.target.kind, self.target.shape)
            for name, prompt, seed, g in zip(batch["label_name"], batch["prompt"], batch["seed"], batch["guidance"])
        ]
