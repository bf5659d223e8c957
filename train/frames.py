"""Conversions between 8-bit RGB images and the float frames every model takes.

One place decides the rounding (round half up after clamping to [0, 1]), so the engine's output,
the edge channel and the benchmarks agree to the bit on what a float frame looks like in 8 bits.
"""

from __future__ import annotations

import numpy as np
import torch


def from_uint8(rgb: np.ndarray) -> torch.Tensor:
    """(..., H, W, 3) uint8 -> (..., 3, H, W) float32 in [0, 1], contiguous."""
    return torch.from_numpy(rgb).movedim(-1, -3).float().div_(255).contiguous()


def to_uint8(frames: torch.Tensor) -> np.ndarray:
    """(..., 3, H, W) float in [0, 1] -> (..., H, W, 3) uint8 numpy, clamped and rounded half up."""
    return (frames.detach().clamp(0, 1) * 255 + 0.5).to(torch.uint8).movedim(-3, -1).cpu().numpy()
