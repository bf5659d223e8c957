"""``data.kind = "device"``: training batches whose blur is rendered on the training device itself.

The source images are decoded once and held on the device as uint8; every step draws a fresh batch
from ``np.random.default_rng([seed, rank, step, i])`` for clip i, so a batch depends only on the
seed, the rank and the step (a resumed run continues exactly, and each DDP rank renders its own
share), and renders it with ``synth.device_render``. The per-clip draws follow
``SyntheticDataset.__getitem__`` (source, rescale factor, clip seed, image); what the device path
leaves out (kernel blur, compression) is listed in ``synth/device_render.py``.

The numpy draws (camera path, sub-frame homographies) cost a few ms per clip, which at batch 64
would be most of a GPU step; with ``workers`` > 0 (``data.workers``) a process pool draws them in
parallel (and decodes the images at start). The pool returns them in order, so the batch is the
same with any number of workers.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.pool
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

import numpy as np
import torch
import torch.nn.functional as F

from .synth.clip import ShakeConfig
from .synth.device_render import ClipPlan, plan_clip, render_batch, srgb_to_linear_tensor
from .synth.sources import Source, VideoFile

# Images held per source, evenly spaced over it: bounds the start-up decode and the device memory
# (256 photos of 12 Mpx are 9 GiB of uint8; a dead-leaves image takes ~0.4 s to make here).
IMAGES_PER_SOURCE = 256
Batch = dict[str, torch.Tensor]
T = TypeVar("T")


@dataclass(frozen=True)
class ClipDraw:
    source: int
    image: int
    size: tuple[int, int] | None  # (height, width) to rescale the image to; None = as it is
    plan: ClipPlan


@dataclass(frozen=True)
class _Setting:
    """Everything a clip's draws depend on besides (step, i): what a pool worker is sent."""

    sizes: tuple[tuple[tuple[int, int], ...], ...]  # per source, per held image: (height, width)
    seed: int
    rank: int
    frames: int
    height: int
    width: int
    scale: tuple[float, float]
    config: ShakeConfig


def draw_clip(setting: _Setting, step: int, index: int) -> ClipDraw:
    """Clip ``index`` of the batch of ``step``: numpy only, the same in any process."""
    rng = np.random.default_rng([setting.seed, setting.rank, step, index])
    source = int(rng.integers(len(setting.sizes)))
    factor = float(rng.uniform(*setting.scale))
    clip_seed = int(rng.integers(2**63))
    image = int(rng.integers(len(setting.sizes[source])))
    h, w = setting.sizes[source][image]
    size = rescaled_size(h, w, factor, setting.height, setting.width)
    plan = plan_clip(clip_seed, size or (h, w), frames=setting.frames, height=setting.height, width=setting.width,
                     config=setting.config)
    return ClipDraw(source, image, size, plan)


def rescaled_size(h: int, w: int, factor: float, height: int, width: int) -> tuple[int, int] | None:
    """As ``SyntheticDataset._rescale``: the factor is raised so the image never gets smaller than the window."""
    factor = max(factor, height / h, width / w)
    if factor == 1.0:
        return None
    return max(height, round(h * factor)), max(width, round(w * factor))


class DeviceShakeBatches:
    """Batches {"blurred", "sharp"} of (batch, frames, 3, height, width) float32, rendered on ``device``."""

    def __init__(self, sources: Sequence[Source], *, device: torch.device, batch: int, frames: int, height: int,
                 width: int, scale: tuple[float, float] = (0.5, 1.0), seed: int = 0, rank: int = 0,
                 config: ShakeConfig | None = None, images_per_source: int = IMAGES_PER_SOURCE,
                 workers: int = 0) -> None:
        if not sources:
            raise ValueError("DeviceShakeBatches needs at least one source")
        if min(batch, frames, height, width, images_per_source) < 1 or workers < 0:
            raise ValueError(f"batch, frames, height, width and images_per_source must be >= 1 and workers >= 0; "
                             f"got {batch}, {frames}, {height}, {width}, {images_per_source}, {workers}")
        if not 0 < scale[0] <= scale[1]:
            raise ValueError(f"scale must be a range with 0 < lo <= hi; got {scale}")
        for source in sources:
            if isinstance(source, VideoFile):
                raise ValueError(f"data.kind = 'device' takes still images (folders, 'skimage', 'deadleaves', 'text'); "
                                 f"{source.name} is a video: use data.kind = 'synthetic' for video sources")
        self.device, self.batch_size, self.workers = device, batch, workers
        self._pool: multiprocessing.pool.Pool | None = None
        self.images = [[self._upload(image) for image in self._map(source.read, _spread(len(source), images_per_source))]
                       for source in sources]
        sizes = tuple(tuple((int(im.shape[1]), int(im.shape[2])) for im in images) for images in self.images)
        self.setting = _Setting(sizes, seed, rank, frames, height, width, scale, config or ShakeConfig())

    def _upload(self, image: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).to(self.device)  # (3, H, W) uint8

    def _map(self, fn: Callable[[int], T], items: Sequence[int]) -> list[T]:
        """``[fn(i) for i in items]``, in the worker pool when there is one (in order either way)."""
        items = [int(i) for i in items]
        if self.workers == 0:
            return [fn(i) for i in items]
        if self._pool is None:
            # spawn: the workers run numpy and OpenCV only and must not inherit a CUDA context.
            self._pool = multiprocessing.get_context("spawn").Pool(self.workers)
            weakref.finalize(self, self._pool.terminate)
        return self._pool.map(fn, items, chunksize=-(-len(items) // self.workers))

    def draws(self, step: int) -> list[ClipDraw]:
        return self._map(partial(draw_clip, self.setting, step), range(self.batch_size))

    def batch(self, step: int) -> Batch:
        """The batch of training step ``step``: the same for the same (seed, rank, step), whatever came before."""
        draws = self.draws(step)
        linear = [srgb_to_linear_tensor(self._rescale(self.images[d.source][d.image], d.size)) for d in draws]
        s = self.setting
        blurred, sharp = render_batch(linear, [d.plan for d in draws], height=s.height, width=s.width)
        return {"blurred": blurred, "sharp": sharp}

    def close(self) -> None:
        if self._pool is not None:
            self._pool.terminate()
            self._pool = None

    @staticmethod
    def _rescale(image: torch.Tensor, size: tuple[int, int] | None) -> torch.Tensor:
        """As ``SyntheticDataset._rescale`` (alias-free down, cubic up, uint8 out), on the device."""
        if size is None:
            return image
        x = image[None].float()
        down = size[0] <= image.shape[1] and size[1] <= image.shape[2]  # factor < 1 (both sides shrink)
        # Down: torch's "area" is adaptive pooling (whole-pixel windows, 34-37 dB from OpenCV's
        # INTER_AREA on a photo); an antialiased triangle filter comes closer (40-55 dB).
        x = F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False) if down else \
            F.interpolate(x, size=size, mode="bicubic", align_corners=False)
        return x[0].round().clamp(0, 255).to(torch.uint8)


def _spread(length: int, count: int) -> np.ndarray:
    """Up to ``count`` indices evenly spaced over ``range(length)``."""
    return np.unique(np.linspace(0, length - 1, min(count, length)).round().astype(np.int64))
