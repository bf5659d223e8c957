"""The Canny edge channel of the DeblurGAN+Edge model.

One function serves training, export checks and the engine so the edge map a model is trained on is
exactly the one it sees at inference. Thresholds are fixed (not adaptive) because a per-frame
threshold would make the fourth channel flicker across a video.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from .frames import to_uint8

# On 8-bit luma; 50/150 is the classic 1:3 hysteresis ratio, low enough to keep edges that blur weakens.
CANNY_LOW = 50
CANNY_HIGH = 150


def canny_edges(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (H, W) float32 edge map in {0, 1}."""
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"canny_edges expects (H, W, 3) uint8 RGB; got {rgb.shape} {rgb.dtype}")
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    return (cv2.Canny(gray, CANNY_LOW, CANNY_HIGH) > 0).astype(np.float32)


def add_edge_channel(frame: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) float [0, 1] -> (B, 4, H, W): RGB plus the Canny map of each image.

    Canny runs in OpenCV on the CPU; the result is moved back to the frame's device and dtype.
    """
    rgb8 = to_uint8(frame)  # (B, H, W, 3)
    edges = np.stack([canny_edges(np.ascontiguousarray(img)) for img in rgb8])[:, None]
    return torch.cat([frame, torch.from_numpy(edges).to(frame.device, frame.dtype)], dim=1)
