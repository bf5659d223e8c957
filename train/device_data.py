"""``data.kind = "device"``: training batches whose blur is rendered on the training device itself.

The source images are decoded once and held on the device as uint8; every step draws a fresh batch
from ``np.random.default_rng([seed, rank, step, i])`` for clip i, so a batch depends only on the
seed, the rank and the step (a resumed run continues exactly, and each DDP rank renders its own
share), and renders it with ``synth.device_render``. The per-clip draws follow
``SyntheticDataset.__getitem__`` (source, rescale factor, clip seed, image); what the device path
leaves out (kernel blur, compression) is listed in ``synth/device_render.py``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .synth.clip import ShakeConfig
from .synth.device_render import plan_clip, render_batch, srgb_to_linear_tensor
from .synth.sources import Source, VideoFile

# Images held per source, evenly spaced over it: bounds the start-up decode and the device memory
# (256 photos of 12 Mpx are 9 GiB of uint8; the procedural dead-leaves source has 10 000 images).
IMAGES_PER_SOURCE = 256
Batch = dict[str, torch.Tensor]


class DeviceShakeBatches:
    """Batches {"blurred", "sharp"} of (batch, frames, 3, height, width) float32, rendered on ``device``."""

    def __init__(self, sources: Sequence[Source], *, device: torch.device, batch: int, frames: int, height: int,
                 width: int, scale: tuple[float, float] = (0.5, 1.0), seed: int = 0, rank: int = 0,
                 config: ShakeConfig | None = None, images_per_source: int = IMAGES_PER_SOURCE) -> None:
        if not sources:
            raise ValueError("DeviceShakeBatches needs at least one source")
        if min(batch, frames, height, width, images_per_source) < 1:
            raise ValueError(f"batch, frames, height, width and images_per_source must be >= 1; "
                             f"got {batch}, {frames}, {height}, {width}, {images_per_source}")
        if not 0 < scale[0] <= scale[1]:
            raise ValueError(f"scale must be a range with 0 < lo <= hi; got {scale}")
        for source in sources:
            if isinstance(source, VideoFile):
                raise ValueError(f"data.kind = 'device' takes still images (folders, 'skimage', 'deadleaves'); "
                                 f"{source.name} is a video: use data.kind = 'synthetic' for video sources")
        self.device, self.batch_size, self.frames = device, batch, frames
        self.height, self.width, self.scale = height, width, scale
        self.seed, self.rank, self.config = seed, rank, config or ShakeConfig()
        self.images = [[self._upload(source.read(int(i))) for i in _spread(len(source), images_per_source)]
                       for source in sources]

    def _upload(self, image: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).to(self.device)  # (3, H, W) uint8

    def batch(self, step: int) -> Batch:
        """The batch of training step ``step``: the same for the same (seed, rank, step), whatever came before."""
        linear, plans = [], []
        for i in range(self.batch_size):
            rng = np.random.default_rng([self.seed, self.rank, step, i])
            images = self.images[int(rng.integers(len(self.images)))]
            factor = float(rng.uniform(*self.scale))
            clip_seed = int(rng.integers(2**63))
            image = self._rescale(images[int(rng.integers(len(images)))], factor)
            linear.append(srgb_to_linear_tensor(image))
            plans.append(plan_clip(clip_seed, tuple(image.shape[1:]), frames=self.frames, height=self.height,
                                   width=self.width, config=self.config))
        blurred, sharp = render_batch(linear, plans, height=self.height, width=self.width)
        return {"blurred": blurred, "sharp": sharp}

    def _rescale(self, image: torch.Tensor, factor: float) -> torch.Tensor:
        """As ``SyntheticDataset._rescale`` (never below the window; area down, cubic up, uint8 out), on the device."""
        h, w = image.shape[1:]
        factor = max(factor, self.height / h, self.width / w)
        if factor == 1.0:
            return image
        size = (max(self.height, round(h * factor)), max(self.width, round(w * factor)))
        x = image[None].float()
        x = F.interpolate(x, size=size, mode="area") if factor < 1 else \
            F.interpolate(x, size=size, mode="bicubic", align_corners=False)
        return x[0].round().clamp(0, 255).to(torch.uint8)


def _spread(length: int, count: int) -> np.ndarray:
    """Up to ``count`` indices evenly spaced over ``range(length)``."""
    return np.unique(np.linspace(0, length - 1, min(count, length)).round().astype(np.int64))
