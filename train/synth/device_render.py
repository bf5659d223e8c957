"""Camera-shake blur rendered with torch on the training device: a whole batch of clips per call.

The CPU renderer (``clip.py``) makes tens of pairs per second per core, too few to feed a GPU. Here the
cheap part stays on the CPU: for each clip numpy draws, from the clip's seed, exactly what
``render_shake_clip`` draws in temporal mode (``draw_shot``, ``random_camera_path``,
``subframe_homographies``, ``draw_noise_levels``), a few hundred floats per clip. The expensive part,
resampling the source once per sub-frame, runs as ``grid_sample`` on whatever device holds the
source tensors: bilinear for the sub-frames, bicubic (A = -0.75, as OpenCV's INTER_CUBIC) for the
sharp middle view, mirrored at the source's edges (OpenCV's BORDER_REFLECT_101). Then the average
in linear light, Poisson-Gaussian noise drawn on the device, sRGB encoding and the 8-bit grid.

All sources of a batch are packed into one atlas image, so one ``grid_sample`` call serves the
sub-frames of many clips; calls are split only where the grid would exceed ``max_samples``.

Left out, compared with the CPU path (which keeps them):

- **kernel-mode blur** (``trajectories.py``): every clip is a temporal one. In ``"mixed"`` mode a
  clip the CPU would have blurred with a kernel is rendered along its camera path instead;
  ``mode="kernel"`` is refused.
- **JPEG / H.264 compression** (``degrade.py``): codecs do not run on the device; the blurred
  input is noisy but uncompressed.
- **the noise samples themselves**: levels are the CPU's draws, the normals come from a torch
  generator seeded per clip, so CPU and device noise differ sample by sample (same statistics),
  and CUDA and CPU torch give different normals for one seed.

Everything but the normals is the same computation on CPU and CUDA torch (up to float rounding). Only the CPU has run
this code; the CUDA path is never run (no GPU on the development machine).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .camera import random_camera_path
from .clip import ShakeConfig, draw_shot
from .degrade import SRGB_TO_LINEAR, draw_noise_levels
from .temporal import subframe_homographies

# Border of mirrored pixels around each atlas tile: bicubic reads 2 pixels beyond a coordinate.
_MARGIN = 2
# grid_sample output samples per call (sub-frames x height x width): ~200 MB of grid and output.
MAX_SAMPLES = 1 << 24


@dataclass(frozen=True, eq=False)
class ClipPlan:
    """What numpy drew for one clip: every sub-frame's view, the noise levels and the noise seed."""

    homographies: tuple[np.ndarray, ...]  # per frame (n, 3, 3), output px -> source px; n odd, middle = sharp
    noise: tuple[float, float] | None  # (shot variance, read std) in linear light, or None
    noise_seed: int


def plan_clip(seed: int, source_hw: tuple[int, int], *, frames: int, height: int, width: int,
              config: ShakeConfig) -> ClipPlan:
    """The draws ``render_shake_clip(seed=seed)`` makes for a temporal clip on a source of ``source_hw``."""
    if config.mode == "kernel":
        raise ValueError("the device renderer makes temporal blur only; ShakeConfig.mode 'kernel' needs the CPU path "
                         "(allowed here: temporal, mixed)")
    rng = np.random.default_rng(seed)
    _, blur, duty, center = draw_shot(rng, config, source_hw, height=height, width=width)
    path = random_camera_path(rng, config.camera, frames=frames, height=height, width=width, blur_px=blur, duty=duty)
    homs = subframe_homographies(path, frames=frames, duty=duty, source_center=center,
                                 max_step_px=config.max_step_px, max_subframes=config.max_subframes)
    noise = draw_noise_levels(rng, config.noise)
    return ClipPlan(tuple(homs), noise, int(rng.integers(2**63)))


def srgb_to_linear_tensor(image: torch.Tensor) -> torch.Tensor:
    """uint8 sRGB tensor (any shape) -> float32 linear light, on the tensor's device (the CPU table)."""
    if image.dtype != torch.uint8:
        raise ValueError(f"srgb_to_linear_tensor expects uint8; got {image.dtype}")
    return _srgb_table(image.device)[image.long()]


@functools.lru_cache(maxsize=8)
def _srgb_table(device: torch.device) -> torch.Tensor:
    return torch.as_tensor(SRGB_TO_LINEAR, device=device)  # one upload per device, not one per clip


def linear_to_srgb_grid(linear: torch.Tensor) -> torch.Tensor:
    """Linear light -> sRGB in [0, 1] on the 8-bit grid (k / 255), as ``linear_to_srgb`` then ``/ 255``."""
    v = linear.clamp(0, 1)
    s = torch.where(v <= 0.0031308, 12.92 * v, 1.055 * v.pow(1 / 2.4) - 0.055)
    return torch.floor(s * 255 + 0.5) / 255


def render_batch(sources: Sequence[torch.Tensor], plans: Sequence[ClipPlan], *, height: int, width: int,
                 max_samples: int = MAX_SAMPLES) -> tuple[torch.Tensor, torch.Tensor]:
    """(blurred, sharp), each (B, T, 3, height, width) float32 sRGB on the 8-bit grid, on the sources' device.

    sources: clip b's linear-light source, (3, Hs, Ws) float32 (sizes may differ); plans: clip b's draws.
    """
    if len(sources) != len(plans) or not plans:
        raise ValueError(f"render_batch needs one source per plan; got {len(sources)} sources, {len(plans)} plans")
    frames = len(plans[0].homographies)
    if any(len(p.homographies) != frames for p in plans):
        raise ValueError("every clip of a batch must have the same number of frames")
    device = sources[0].device
    atlas, tiles = _pack(sources)
    # Rows of (clip, frame): its middle view and the other sub-frames, which are summed per frame.
    mids, others, counts = [], [], []
    for b, plan in enumerate(plans):
        for homs in plan.homographies:
            mid = len(homs) // 2
            mids.append((b, homs[mid]))
            others.append([(b, h) for j, h in enumerate(homs) if j != mid])
            counts.append(len(homs))
    sharp = torch.cat([_warp(atlas, tiles, chunk, height, width, "bicubic")
                       for chunk in _chunks([[m] for m in mids], height * width, max_samples)])
    sums = torch.zeros_like(sharp)
    row = 0
    for chunk_rows in _chunks(others, height * width, max_samples, as_rows=True):
        views = _warp(atlas, tiles, [v for r in chunk_rows for v in r], height, width, "bilinear")
        start = 0
        for r in chunk_rows:  # one plain sum per frame: deterministic, unlike index_add_ on CUDA
            if r:
                sums[row] = views[start:start + len(r)].sum(0)
            start, row = start + len(r), row + 1
    n = torch.tensor(counts, dtype=torch.float32, device=device).view(-1, 1, 1, 1)
    blurred = ((sums + sharp) / n).view(len(plans), frames, 3, height, width)
    blurred = torch.stack([_add_noise(clip, plan) for clip, plan in zip(blurred, plans)])
    return linear_to_srgb_grid(blurred), linear_to_srgb_grid(sharp).view(len(plans), frames, 3, height, width)


def _add_noise(linear: torch.Tensor, plan: ClipPlan) -> torch.Tensor:
    """Shot + read noise as ``degrade.linear_to_srgb``: v + sqrt(shot * v + read^2) * N(0, 1)."""
    if plan.noise is None:
        return linear
    shot, read = plan.noise
    gen = torch.Generator(device=linear.device).manual_seed(plan.noise_seed)
    normals = torch.randn(linear.shape, generator=gen, device=linear.device, dtype=linear.dtype)
    return linear + (shot * linear + read * read).clamp(min=0).sqrt() * normals


def _pack(sources: Sequence[torch.Tensor]) -> tuple[torch.Tensor, list[tuple[int, int, int, int]]]:
    """All sources in one (3, AH, AW) atlas, each with a mirrored border; per source (x0, y0, h, w) of its pixel (0, 0)."""
    per_row = math.ceil(math.sqrt(len(sources)))  # a square-ish atlas keeps float32 grid coordinates precise
    places, x, y, row_h, width = [], 0, 0, 0, 0
    for i, s in enumerate(sources):
        if s.ndim != 3 or s.shape[0] != 3 or min(s.shape[1:]) < _MARGIN + 1:
            raise ValueError(f"sources must be (3, H, W) with H, W >= {_MARGIN + 1}; got {tuple(s.shape)}")
        if i and i % per_row == 0:
            x, y, row_h = 0, y + row_h, 0
        h, w = s.shape[1] + 2 * _MARGIN, s.shape[2] + 2 * _MARGIN
        places.append((x, y))
        x, row_h, width = x + w, max(row_h, h), max(width, x + w)
    atlas = torch.zeros(3, y + row_h, width, dtype=torch.float32, device=sources[0].device)
    tiles = []
    for (x, y), s in zip(places, sources):
        # torch's "reflect" mirrors without repeating the edge pixel: OpenCV's BORDER_REFLECT_101.
        tile = F.pad(s[None].float(), (_MARGIN,) * 4, mode="reflect")[0]
        atlas[:, y:y + tile.shape[1], x:x + tile.shape[2]] = tile
        tiles.append((x + _MARGIN, y + _MARGIN, s.shape[1], s.shape[2]))
    return atlas, tiles


def _chunks(rows: list[list], pixels: int, max_samples: int, as_rows: bool = False) -> list[list]:
    """Rows (frames) grouped so that one group's views stay under ``max_samples`` output samples;
    a frame is never split. Without ``as_rows`` the groups are flattened to their views."""
    groups, current, size = [], [], 0
    for r in rows:
        if current and (size + len(r)) * pixels > max_samples:
            groups.append(current)
            current, size = [], 0
        current.append(r)
        size += len(r)
    if current:
        groups.append(current)
    return groups if as_rows else [[v for r in g for v in r] for g in groups]


def _warp(atlas: torch.Tensor, tiles: list[tuple[int, int, int, int]], views: list[tuple[int, np.ndarray]],
          height: int, width: int, mode: str) -> torch.Tensor:
    """(n, 3, height, width): view k of clip b through homography h (output px -> source px), in one grid_sample."""
    n = len(views)
    if n == 0:
        return atlas.new_zeros(0, 3, height, width)
    homs = np.stack([h for _, h in views])  # (n, 3, 3) float64
    place = np.array([tiles[b] for b, _ in views], dtype=np.float64)  # (n, 4): x0, y0, h, w
    ah, aw = atlas.shape[1:]
    inside = _inside(homs, place, height, width)
    parts = []  # (mask, (m, H, W, 2) grid) for the views inside their source and for the others
    if inside.any():
        # The usual case: the views stay within the source, so source px -> atlas px -> grid_sample's
        # [-1, 1] is one affine map, folded (in float64) into the homography.
        norm = np.zeros((int(inside.sum()), 3, 3))
        norm[:, 0, 0], norm[:, 1, 1], norm[:, 2, 2] = 2 / (aw - 1), 2 / (ah - 1), 1.0
        norm[:, 0, 2] = 2 * place[inside, 0] / (aw - 1) - 1
        norm[:, 1, 2] = 2 * place[inside, 1] / (ah - 1) - 1
        parts.append((inside, torch.stack(_project(_as_tensor(norm @ homs[inside], atlas), height, width), dim=-1)))
    if not inside.all():
        out = ~inside
        sx, sy = _project(_as_tensor(homs[out], atlas), height, width)  # source px
        col = _as_tensor(place[out], atlas)[:, None, None, :]  # (m, 1, 1, 4)
        # Mirror the coordinate into the source, then read the tile: interpolating a mirrored signal at
        # x equals interpolating at its mirror image, so this is reflection padding for every tap.
        ax = _reflect(sx, col[..., 3]) + col[..., 0]
        ay = _reflect(sy, col[..., 2]) + col[..., 1]
        parts.append((out, torch.stack([ax * (2 / (aw - 1)) - 1, ay * (2 / (ah - 1)) - 1], dim=-1)))
    if len(parts) == 1:
        grid = parts[0][1]
    else:
        grid = torch.empty(n, height, width, 2, dtype=torch.float32, device=atlas.device)
        for mask, values in parts:
            grid[torch.as_tensor(mask, device=atlas.device)] = values
    # align_corners: -1 and +1 are the centres of the atlas's corner pixels.
    sampled = F.grid_sample(atlas[None], grid.reshape(1, n * height, width, 2), mode=mode, padding_mode="border",
                            align_corners=True)  # (1, 3, n * H, W)
    return sampled[0].view(3, n, height, width).transpose(0, 1)


def _project(homs: torch.Tensor, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(m, 3, 3) homographies -> (x, y), each (m, H, W): where output pixel (col, row) lands."""
    x = torch.arange(width, dtype=torch.float32, device=homs.device).view(1, 1, width)
    y = torch.arange(height, dtype=torch.float32, device=homs.device).view(1, height, 1)
    h = homs.view(-1, 3, 3, 1, 1)
    # Row r of H times (x, y, 1), broadcast from a row and a column: no (m, H, W, 3) product tensor.
    row = lambda r: h[:, r, 0] * x + h[:, r, 1] * y + h[:, r, 2]  # noqa: E731
    inv = row(2).reciprocal_()
    return row(0).mul_(inv), row(1).mul_(inv)


def _inside(homs: np.ndarray, place: np.ndarray, height: int, width: int) -> np.ndarray:
    """(n,) bool: view k samples only within its source (no mirroring needed). A homography maps the
    output rectangle to a quadrilateral, so its four corners bound every sample (denominators > 0)."""
    corners = np.array([[0, 0, 1], [width - 1, 0, 1], [0, height - 1, 1], [width - 1, height - 1, 1]], dtype=np.float64)
    mapped = np.einsum("nij,cj->nci", homs, corners)  # (n, 4, 3)
    den = mapped[..., 2]
    x, y = mapped[..., 0] / den, mapped[..., 1] / den
    return ((den > 0).all(1) & (x.min(1) >= 0) & (y.min(1) >= 0) & (x.max(1) <= place[:, 3] - 1)
            & (y.max(1) <= place[:, 2] - 1))


def _as_tensor(array: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(array, dtype=torch.float32, device=like.device)


def _reflect(x: torch.Tensor, size: torch.Tensor) -> torch.Tensor:
    """Coordinates mirrored into [0, size - 1] about the edge pixels' centres (period 2 (size - 1))."""
    period = 2 * (size - 1)
    x = torch.remainder(x, period)
    return torch.where(x > size - 1, period - x, x)

