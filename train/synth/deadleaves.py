"""Dead-leaves images: a procedural source of sharp, scale-invariant detail.

Random discs fall one on top of another (the "dead leaves" model of Matheron, used for natural-image
statistics by Lee, Mumford and Huang 2001 and for training restoration networks, e.g. Achddou et al.
2021): radii follow a power law ``p(r) ~ r^-alpha`` between ``r_min`` and ``r_max``, which gives the
1/f spectrum of photographs and edges at every scale and orientation, exactly what a deblurrer has to
learn to restore. Colours are drawn from a few per-image palette centres (natural images have
correlated colours); a share of the discs carries a texture (a sinusoidal grating or fine noise), so
flat interiors do not dominate. Everything comes from ``np.random.default_rng([seed, index])``:
the same index always gives the same image.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .generated import GeneratedImages


@dataclass(frozen=True)
class DeadLeavesConfig:
    size: int = 512  # square image side, px
    r_min: float = 1.5
    r_max: float = 160.0
    alpha: float = 3.0  # power-law exponent of the radius density (3 is scale invariant)
    discs: int = 4000  # most of the image covered; the background colour still shows in places
    palette: int = 6  # colour centres per image
    textured_share: float = 0.35

    def __post_init__(self) -> None:
        if not 0 < self.r_min < self.r_max or self.size < 16 or self.discs < 1 or self.palette < 1:
            raise ValueError(f"invalid dead-leaves config {self}")
        if not 0 <= self.textured_share <= 1:
            raise ValueError(f"textured_share must be in [0, 1]; got {self.textured_share}")


def power_law_radii(rng: np.random.Generator, n: int, cfg: DeadLeavesConfig) -> np.ndarray:
    """n radii with density ~ r^-alpha on [r_min, r_max] (inverse-CDF sampling)."""
    a = 1 - cfg.alpha
    lo, hi = cfg.r_min ** a, cfg.r_max ** a
    return (lo + rng.uniform(size=n) * (hi - lo)) ** (1 / a)


def dead_leaves(seed: int, cfg: DeadLeavesConfig = DeadLeavesConfig()) -> np.ndarray:
    """One (size, size, 3) uint8 RGB dead-leaves image."""
    rng = np.random.default_rng(seed)
    s = cfg.size
    # Palette: muted colours (a saturation draw mixes each centre towards its grey), as in photographs.
    centres = rng.uniform(0, 1, size=(cfg.palette, 3)).astype(np.float32)
    grey = centres.mean(axis=1, keepdims=True)
    centres = grey + rng.uniform(0.2, 1.0, size=(cfg.palette, 1)).astype(np.float32) * (centres - grey)
    image = np.empty((s, s, 3), np.float32)
    image[:] = centres[rng.integers(cfg.palette)]
    # Back to front: every disc covers what lies under it. Radii come in random order, so large
    # leaves are cut by the many small ones drawn after them.
    mask = np.zeros((s, s), np.uint8)
    for r in power_law_radii(rng, cfg.discs, cfg):
        cx, cy = rng.uniform(-r, s + r, size=2)
        x0, x1 = max(0, int(cx - r) - 1), min(s, int(cx + r) + 2)
        y0, y1 = max(0, int(cy - r) - 1), min(s, int(cy + r) + 2)
        if x0 >= x1 or y0 >= y1:
            continue
        sub = mask[y0:y1, x0:x1]
        sub[:] = 0
        # Sub-pixel centre and radius (shift=4): edges at arbitrary positions, not only on the grid.
        cv2.circle(sub, (round((cx - x0) * 16), round((cy - y0) * 16)), max(1, round(r * 16)), 1, -1, cv2.LINE_8, 4)
        inside = sub == 1
        colour = np.clip(centres[rng.integers(cfg.palette)] * rng.uniform(0.5, 1.3)
                         + rng.normal(0, 0.05, 3), 0, 1).astype(np.float32)
        patch = np.broadcast_to(colour, (y1 - y0, x1 - x0, 3))
        if rng.uniform() < cfg.textured_share:
            patch = patch * _texture(rng, y1 - y0, x1 - x0)[..., None]
        image[y0:y1, x0:x1][inside] = patch[inside]
    return (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)


def _texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A multiplicative texture in [0.5, 1.5]: an oriented grating, or fine noise."""
    if rng.uniform() < 0.5:
        theta, period = rng.uniform(0, np.pi), rng.uniform(2.5, 24)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        phase = (xx * np.cos(theta) + yy * np.sin(theta)) * (2 * np.pi / period)
        return 1 + rng.uniform(0.15, 0.5) * np.sin(phase + rng.uniform(0, 2 * np.pi)).astype(np.float32)
    noise = rng.normal(0, 1, (h, w)).astype(np.float32)
    sigma = rng.uniform(0.5, 2.0)
    noise = cv2.GaussianBlur(noise, (0, 0), sigma)
    return 1 + np.clip(noise / (noise.std() + 1e-6) * rng.uniform(0.1, 0.3), -0.5, 0.5)


class DeadLeaves(GeneratedImages):
    """A source of ``count`` dead-leaves images, read by index like an image folder (``generated.py``)."""

    kind = "dead leaves"

    def __init__(self, count: int = 10000, seed: int = 0, config: DeadLeavesConfig = DeadLeavesConfig()) -> None:
        super().__init__(count, seed, f"dead leaves ({count} images, seed {seed}, {config.size} px)")
        self.config = config

    def draw(self, seed: int) -> np.ndarray:
        return dead_leaves(seed, self.config)
