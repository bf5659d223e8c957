"""Rendered text: signs, pages and number plates, a procedural source of what users most want to read.

Photographs hold little text, yet what a deblurred video is most often asked to show is a street sign,
a document or a licence plate: strokes one to a few pixels wide with sharp corners, which a model
trained on natural scenes rounds off. Each image is a background (a colour gradient with mottling, or
out-of-focus dead leaves) under a few tilted panels of four kinds:

- pages: a light (sometimes dark) sheet with lines of small text, 6-16 px high, ragged on the right;
- signs: a saturated panel, often with a rim, carrying 1-3 lines of large text (14-60 px);
- plates: a white or yellow plate with a dark rim and a registration-like string (``AB 123 CD``);
- loose words on the background, outlined so that they read on any colour.

Panels are rotated and sheared a little (text is rarely seen square-on), overlap, and run off the
edges. Everything is drawn at twice the output size and reduced with INTER_AREA, so edges are
antialiased but crisp. Glyphs come from TrueType/OpenType files (``scripts/fetch_fonts.sh`` unpacks
Debian's text fonts into ``data/fonts``; source ``"text:96:data/fonts"``) or, with none given, from
Pillow's built-in scalable font (``"text:96"``). Everything comes from the image's seed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .deadleaves import DeadLeavesConfig, dead_leaves
from .generated import GeneratedImages

FONT_EXTENSIONS = (".ttf", ".otf", ".ttc")
SUPERSAMPLE = 2
# English letter frequencies (Lewand), so words have the shapes of real words' letters.
_LETTERS = "etaoinshrdlcumwfgypbvkjxqz"
_LETTER_P = np.array([12.7, 9.1, 8.2, 7.5, 7.0, 6.7, 6.3, 6.1, 6.0, 4.3, 4.0, 2.8, 2.8, 2.4, 2.4, 2.2, 2.0, 2.0,
                      1.9, 1.5, 1.0, 0.8, 0.15, 0.15, 0.1, 0.07])
_LETTER_P = _LETTER_P / _LETTER_P.sum()
_PUNCTUATION = ".,:;-/&%()!?'"
# Sign colours (RGB 0..1): road-sign red, blue, green, brown, yellow, orange, white, black.
_SIGN_COLOURS = np.array([[0.75, 0.1, 0.12], [0.05, 0.25, 0.6], [0.0, 0.45, 0.25], [0.45, 0.25, 0.12],
                          [0.97, 0.8, 0.05], [0.95, 0.45, 0.05], [0.95, 0.95, 0.93], [0.08, 0.08, 0.08]])
_PLATE_PATTERNS = ("LL DDD LL", "LLL DDDD", "LL-DDDD", "DLLL DDD", "LLL-DDD", "DD LL DD", "L DDDD LL", "LLDD LLL")


@dataclass(frozen=True)
class TextConfig:
    size: int = 512  # square image side, px
    panels: tuple[int, int] = (4, 10)  # panels per image, inclusive range
    small_px: tuple[float, float] = (6.0, 16.0)  # glyph height range of page text, output px
    large_px: tuple[float, float] = (14.0, 60.0)  # of signs, plates and loose words
    tilt_deg: float = 8.0  # rotation standard deviation; panels also get up to 0.15 of shear

    def __post_init__(self) -> None:
        if self.size < 32 or not 1 <= self.panels[0] <= self.panels[1]:
            raise ValueError(f"invalid text config {self}: size >= 32 and 1 <= panels[0] <= panels[1]")
        if not 0 < self.small_px[0] <= self.small_px[1] or not 0 < self.large_px[0] <= self.large_px[1]:
            raise ValueError(f"invalid text config {self}: glyph height ranges need 0 < lo <= hi")


def font_files(folder: str | Path) -> list[Path]:
    """Every TrueType/OpenType font under ``folder``, sorted so that indices are stable."""
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"font folder {root} does not exist; scripts/fetch_fonts.sh {root} fetches "
                                f"Debian's text fonts there")
    fonts = sorted(p for p in root.rglob("*") if p.suffix.lower() in FONT_EXTENSIONS and p.is_file())
    if not fonts:
        raise ValueError(f"font folder {root} holds no fonts ({', '.join(FONT_EXTENSIONS)})")
    for path in fonts:
        try:
            ImageFont.truetype(str(path), 12)
        except OSError as e:
            raise ValueError(f"font {path} does not load: {e}") from None
    return fonts


class RenderedText(GeneratedImages):
    """A source of ``count`` rendered-text images, read by index like an image folder (``generated.py``)."""

    kind = "rendered text"

    def __init__(self, count: int = 10000, seed: int = 0, fonts: Sequence[Path] = (),
                 config: TextConfig = TextConfig()) -> None:
        faces = f"{len(fonts)} fonts" if fonts else "Pillow's built-in font"
        super().__init__(count, seed, f"rendered text ({count} images, seed {seed}, {config.size} px, {faces})")
        self.fonts, self.config = tuple(Path(f) for f in fonts), config

    def draw(self, seed: int) -> np.ndarray:
        return rendered_text(seed, self.fonts, self.config)


def rendered_text(seed: int, fonts: Sequence[Path] = (), cfg: TextConfig = TextConfig()) -> np.ndarray:
    """One (size, size, 3) uint8 RGB image of text panels on a background."""
    rng = np.random.default_rng(seed)
    big = cfg.size * SUPERSAMPLE
    canvas = Image.fromarray(_background(rng, cfg.size, big)).convert("RGBA")
    draw_panel = (_page, _sign, _plate, _words)
    for _ in range(int(rng.integers(cfg.panels[0], cfg.panels[1] + 1))):
        kind = int(rng.choice(4, p=[0.3, 0.3, 0.15, 0.25]))
        layer = _tilt(draw_panel[kind](rng, _Fonts(rng, fonts), cfg, big), rng, cfg.tilt_deg)
        h, w = layer.shape[:2]
        x = int(rng.integers(-w // 3, max(big - 2 * w // 3, -w // 3 + 1)))
        y = int(rng.integers(-h // 3, max(big - 2 * h // 3, -h // 3 + 1)))
        canvas.alpha_composite(*_clipped(layer, x, y, big))
    out = np.asarray(canvas.convert("RGB"))
    return cv2.resize(out, (cfg.size, cfg.size), interpolation=cv2.INTER_AREA)


class _Fonts:
    """Faces for one panel: one file drawn from ``files`` (or Pillow's built-in font), at any size."""

    def __init__(self, rng: np.random.Generator, files: Sequence[Path]) -> None:
        self.file = str(files[int(rng.integers(len(files)))]) if files else None

    def at(self, height_px: float) -> ImageFont.FreeTypeFont:
        """The face at a size whose capitals are about ``height_px`` high (font size ~1.4x cap height)."""
        size = max(4, round(height_px * 1.4))
        if self.file is None:
            return ImageFont.load_default(size)
        return ImageFont.truetype(self.file, size)


# --- content ------------------------------------------------------------------------------------

def _word(rng: np.random.Generator) -> str:
    roll = rng.uniform()
    if roll < 0.12:  # a number: prices, times, house numbers
        digits = "".join(str(d) for d in rng.integers(0, 10, int(rng.integers(1, 6))))
        return digits if rng.uniform() < 0.6 else f"{digits[:-2] or '0'}{rng.choice(list('.,:'))}{digits[-2:]}"
    letters = "".join(rng.choice(list(_LETTERS), int(rng.integers(1, 11)), p=_LETTER_P))
    case = rng.uniform()
    word = letters.upper() if case < 0.25 else letters.capitalize() if case < 0.5 else letters
    if rng.uniform() < 0.1:
        word += str(rng.choice(list(_PUNCTUATION)))
    return word


def _line(rng: np.random.Generator, font: ImageFont.FreeTypeFont, width: float) -> str:
    """Words until the line is about ``width`` px wide (at least one)."""
    words = [_word(rng)]
    while True:
        longer = f"{' '.join(words)} {_word(rng)}"
        if font.getlength(longer) > width:
            return " ".join(words)
        words = longer.split(" ")


def _plate_string(rng: np.random.Generator) -> str:
    pattern = _PLATE_PATTERNS[int(rng.integers(len(_PLATE_PATTERNS)))]
    upper = "ABCDEFGHJKLMNPRSTUVWXYZ"
    return "".join(upper[int(rng.integers(len(upper)))] if c == "L" else str(int(rng.integers(10))) if c == "D" else c
                   for c in pattern)


# --- colours --------------------------------------------------------------------------------------

def _luma(rgb: np.ndarray) -> float:
    return float(rgb @ np.array([0.299, 0.587, 0.114]))


def _contrasting(rng: np.random.Generator, under: np.ndarray) -> np.ndarray:
    """A colour that reads on ``under``: dark on light, light on dark, at least 0.4 apart in luma."""
    dark = _luma(under) > 0.5
    for _ in range(20):
        colour = rng.uniform(0, 0.35, 3) if dark else rng.uniform(0.7, 1.0, 3)
        if rng.uniform() < 0.5:  # often plain black or white
            colour = np.full(3, rng.uniform(0, 0.12) if dark else rng.uniform(0.9, 1.0))
        if abs(_luma(colour) - _luma(under)) >= 0.4:
            return colour
    return np.zeros(3) if dark else np.ones(3)


def _rgba(colour: np.ndarray, alpha: int = 255) -> tuple[int, int, int, int]:
    r, g, b = (int(round(c * 255)) for c in np.clip(colour, 0, 1))
    return r, g, b, alpha


# --- panels (RGBA at SUPERSAMPLE x the output scale) ----------------------------------------------

def _page(rng: np.random.Generator, fonts: _Fonts, cfg: TextConfig, big: int) -> np.ndarray:
    px = rng.uniform(*cfg.small_px) * SUPERSAMPLE
    font = fonts.at(px)
    w, h = int(big * rng.uniform(0.3, 0.8)), int(big * rng.uniform(0.2, 0.7))
    paper = rng.uniform(0.82, 1.0, 3) if rng.uniform() < 0.85 else rng.uniform(0.0, 0.25, 3)
    ink = _contrasting(rng, paper)
    image = Image.new("RGBA", (w, h), _rgba(paper))
    draw = ImageDraw.Draw(image)
    margin, step = int(rng.uniform(0.5, 2.0) * px), px * rng.uniform(1.5, 2.2)
    y = margin
    while y + px < h - margin / 2:
        width = (w - 2 * margin) * (rng.uniform(0.2, 0.7) if rng.uniform() < 0.15 else rng.uniform(0.8, 1.0))
        draw.text((margin, y), _line(rng, font, width), font=font, fill=_rgba(ink))
        y += step * (2 if rng.uniform() < 0.1 else 1)  # a paragraph break now and then
    return np.asarray(image)


def _sign(rng: np.random.Generator, fonts: _Fonts, cfg: TextConfig, big: int) -> np.ndarray:
    px = rng.uniform(*cfg.large_px) * SUPERSAMPLE
    font = fonts.at(px)
    panel = np.clip(_SIGN_COLOURS[int(rng.integers(len(_SIGN_COLOURS)))] + rng.normal(0, 0.04, 3), 0, 1)
    ink = _contrasting(rng, panel)
    bold = int(rng.integers(0, max(1, round(px / 12))))  # a stroke around the glyphs: bold faces
    lines = [" ".join(_word(rng) for _ in range(int(rng.integers(1, 4)))) for _ in range(int(rng.integers(1, 4)))]
    if rng.uniform() < 0.5:
        lines = [line.upper() for line in lines]
    widths = [font.getlength(line) + 2 * bold for line in lines]
    pad = int(px * rng.uniform(0.4, 1.0))
    w = min(int(max(widths)) + 2 * pad, big)
    h = min(int(len(lines) * px * 1.5 + 2 * pad), big)
    image = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    radius = int(pad * rng.uniform(0, 0.8))
    draw.rounded_rectangle((0, 0, w - 1, h - 1), radius, fill=_rgba(panel))
    if rng.uniform() < 0.6:  # a rim in the ink's colour, inset a little
        inset, rim = int(pad * 0.25), max(2, round(px / 10))
        draw.rounded_rectangle((inset, inset, w - 1 - inset, h - 1 - inset), max(0, radius - inset),
                               outline=_rgba(ink), width=rim)
    for i, line in enumerate(lines):
        draw.text((w / 2, pad + (i + 0.5) * px * 1.5), line, font=font, fill=_rgba(ink), anchor="mm",
                  stroke_width=bold, stroke_fill=_rgba(ink))
    return np.asarray(image)


def _plate(rng: np.random.Generator, fonts: _Fonts, cfg: TextConfig, big: int) -> np.ndarray:
    px = rng.uniform(cfg.large_px[0], max(cfg.large_px[0], cfg.large_px[1] * 0.66)) * SUPERSAMPLE
    font = fonts.at(px)
    text = _plate_string(rng)
    paper = np.array([0.96, 0.96, 0.94]) if rng.uniform() < 0.6 else np.array([0.98, 0.8, 0.1])
    ink = np.full(3, rng.uniform(0, 0.1))
    bold = int(rng.integers(0, max(1, round(px / 10))))
    w = min(int(font.getlength(text) + 2 * bold + 1.6 * px), big)
    h = min(int(px * 2.0), big)
    image = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    rim = max(2, round(px / 12))
    draw.rounded_rectangle((0, 0, w - 1, h - 1), int(px * 0.25), fill=_rgba(paper), outline=_rgba(ink), width=rim)
    draw.text((w / 2, h / 2), text, font=font, fill=_rgba(ink), anchor="mm", stroke_width=bold,
              stroke_fill=_rgba(ink))
    return np.asarray(image)


def _words(rng: np.random.Generator, fonts: _Fonts, cfg: TextConfig, big: int) -> np.ndarray:
    px = rng.uniform(*cfg.large_px) * SUPERSAMPLE * rng.uniform(0.4, 1.0)
    font = fonts.at(px)
    text = " ".join(_word(rng) for _ in range(int(rng.integers(1, 5))))
    ink = rng.uniform(0, 1, 3)
    outline = int(max(1, round(px / 14)))  # an outline of the opposite brightness: reads on any background
    w = min(int(font.getlength(text) + 4 * outline + px), big)
    h = min(int(px * 2.0), big)
    image = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    ImageDraw.Draw(image).text((w / 2, h / 2), text, font=font, fill=_rgba(ink), anchor="mm", stroke_width=outline,
                               stroke_fill=_rgba(_contrasting(rng, ink)))
    return np.asarray(image)


# --- background and placement ------------------------------------------------------------------

def _background(rng: np.random.Generator, size: int, big: int) -> np.ndarray:
    """(big, big, 3) uint8: out-of-focus dead leaves, or a gradient with mottling (walls, sky, paper)."""
    if rng.uniform() < 0.3:
        leaves = dead_leaves(int(rng.integers(2**63)), DeadLeavesConfig(size=size, discs=800, r_min=4))
        leaves = cv2.GaussianBlur(leaves, (0, 0), rng.uniform(1.0, 4.0))
        return cv2.resize(leaves, (big, big), interpolation=cv2.INTER_LINEAR)
    a, b = rng.uniform(0, 1, 3), rng.uniform(0, 1, 3)
    theta = rng.uniform(0, 2 * np.pi)
    ramp = np.linspace(0, 1, 64, dtype=np.float32)
    t = np.clip(0.5 + (ramp[None, :] - 0.5) * np.cos(theta) + (ramp[:, None] - 0.5) * np.sin(theta), 0, 1)
    small = a * (1 - t[..., None]) + b * t[..., None]
    mottle = cv2.GaussianBlur(rng.normal(0, 1, (64, 64)).astype(np.float32), (0, 0), rng.uniform(1, 6))
    small = small * (1 + rng.uniform(0.0, 0.2) * mottle / (mottle.std() + 1e-6))[..., None]
    image = cv2.resize(small.astype(np.float32), (big, big), interpolation=cv2.INTER_CUBIC)
    return (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)


def _tilt(layer: np.ndarray, rng: np.random.Generator, tilt_deg: float) -> np.ndarray:
    """``layer`` (RGBA) rotated by N(0, tilt_deg) degrees and sheared, on a canvas that holds all of it."""
    h, w = layer.shape[:2]
    angle = np.deg2rad(np.clip(rng.normal(0, tilt_deg), -3 * tilt_deg, 3 * tilt_deg))
    shear = rng.uniform(-0.15, 0.15)
    m = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]) @ np.array([[1, shear], [0, 1]])
    corners = np.array([[0, 0], [w, 0], [0, h], [w, h]], np.float64) @ m.T
    lo, hi = corners.min(axis=0), corners.max(axis=0)
    size = (int(np.ceil(hi[0] - lo[0])), int(np.ceil(hi[1] - lo[1])))
    affine = np.hstack([m, -lo[:, None]]).astype(np.float32)
    # Premultiplied alpha, so the transparent surround does not bleed black into the panel's rim.
    rgba = layer.astype(np.float32)
    rgba[..., :3] *= rgba[..., 3:] / 255
    out = cv2.warpAffine(rgba, affine, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    alpha = out[..., 3:]
    out[..., :3] = np.where(alpha > 0, out[..., :3] * 255 / np.maximum(alpha, 1e-6), 0)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def _clipped(layer: np.ndarray, x: int, y: int, big: int) -> tuple[Image.Image, tuple[int, int]]:
    """The part of ``layer`` placed at (x, y) that lies on a big x big canvas, and where it goes (the
    placement in ``rendered_text`` keeps at least a third of the layer on the canvas, so it is never empty)."""
    h, w = layer.shape[:2]
    x0, y0 = max(0, -x), max(0, -y)
    x1, y1 = min(w, big - x), min(h, big - y)
    return Image.fromarray(np.ascontiguousarray(layer[y0:y1, x0:x1])), (x + x0, y + y0)
