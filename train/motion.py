"""Global camera motion between two consecutive blurred frames, and the input channels it becomes.

Handheld shake moves the whole picture by several to tens of pixels between frames, while the blur
of each frame covers another stretch of the camera's path. Aligned onto the current frame, the
previous frame is a second view of the same scene with its own blur, noise and compression error,
which constrains the sharp picture far more than one frame does (docs/model_study.md, the aligned-
frames probe). The motion is estimated where a decoder has the frames anyway (CPU, downscaled grey),
as one homography, and handed to the model as a per-pixel field: 2 channels of displacement, a
validity mask and the estimate's confidence. The model warps its previous frame (a state slot) with
the field inside its own graph (grid_sample), so export, padding and tiling treat the field like
any other input channel.

Estimator: Shi-Tomasi corners on the current frame, pyramidal Lucas-Kanade to the previous frame and
back (a track survives when it returns within ``FB_MAX_PX``), RANSAC homography. Fewer than
``MIN_TRACKS`` surviving tracks (a cut, a flat or black frame, the zero state of a first frame)
give "no previous frame": zero displacement, mask and confidence zero, so the model ignores it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from .frames import to_uint8

MOTION_CHANNELS = 4  # displacement x, y (px), validity mask, confidence
# Tracking runs on grey frames no larger than this on their long side: ~3 ms a pair at 320x240 and
# the same at 720p, where the downscale's loss of precision (< 0.3 px at full size) is below what
# the blur leaves of any corner anyway.
TRACK_LONG_SIDE = 480
MAX_CORNERS = 400
CORNER_QUALITY = 0.005
MIN_TRACKS = 8
FB_MAX_PX = 0.5  # forward-backward error allowed, in tracking pixels
RANSAC_PX = 1.0
LK_WINDOW = 21
LK_LEVELS = 3


@dataclass(frozen=True)
class GlobalMotion:
    """``homography`` maps a pixel (x, y, 1) of the current frame to the previous frame (full-size
    pixel coordinates, pixel centres at integers); ``confidence`` is the share of corners whose
    track survived and agreed with it (0 when there is no usable estimate)."""

    homography: np.ndarray  # (3, 3) float64
    confidence: float

    @property
    def found(self) -> bool:
        return self.confidence > 0

    def in_window(self, y: int, x: int) -> GlobalMotion:
        """The same motion in the coordinates of a window whose corner is at (x, y) of the frame (a tile)."""
        if not self.found:
            return self
        shift = np.array([[1.0, 0.0, x], [0.0, 1.0, y], [0.0, 0.0, 1.0]])
        return GlobalMotion(np.linalg.inv(shift) @ self.homography @ shift, self.confidence)


NO_MOTION = GlobalMotion(np.eye(3), 0.0)


def _grey(rgb: np.ndarray, scale: float) -> np.ndarray:
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    if scale == 1.0:
        return grey
    h, w = grey.shape
    return cv2.resize(grey, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)


def estimate_motion(previous: np.ndarray, current: np.ndarray) -> GlobalMotion:
    """The global motion from ``current`` back to ``previous``, both (H, W, 3) uint8 RGB of one size."""
    if previous.shape != current.shape or current.ndim != 3 or current.dtype != np.uint8:
        raise ValueError(f"estimate_motion needs two (H, W, 3) uint8 frames of one size; got {previous.shape} "
                         f"{previous.dtype} and {current.shape} {current.dtype}")
    h, w = current.shape[:2]
    scale = min(1.0, TRACK_LONG_SIDE / max(h, w))
    prev_g, cur_g = _grey(previous, scale), _grey(current, scale)
    corners = cv2.goodFeaturesToTrack(cur_g, MAX_CORNERS, CORNER_QUALITY, 5, blockSize=5)
    if corners is None or len(corners) < MIN_TRACKS:
        return NO_MOTION
    lk = dict(winSize=(LK_WINDOW, LK_WINDOW), maxLevel=LK_LEVELS,
              criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 20, 0.03))
    tracked, ok, _ = cv2.calcOpticalFlowPyrLK(cur_g, prev_g, corners, None, **lk)
    back, ok_back, _ = cv2.calcOpticalFlowPyrLK(prev_g, cur_g, tracked, None, **lk)
    good = (ok[:, 0] == 1) & (ok_back[:, 0] == 1) & (np.linalg.norm((back - corners)[:, 0], axis=1) < FB_MAX_PX)
    if good.sum() < MIN_TRACKS:
        return NO_MOTION
    # Tracking pixels -> full-size pixels (centres at integers in both).
    src = (corners[good, 0].astype(np.float64) + 0.5) / scale - 0.5
    dst = (tracked[good, 0].astype(np.float64) + 0.5) / scale - 0.5
    homography, inliers = cv2.findHomography(src, dst, cv2.RANSAC, RANSAC_PX / scale)
    if homography is None or inliers is None or inliers.sum() < MIN_TRACKS:
        return NO_MOTION
    return GlobalMotion(homography, float(inliers.sum()) / len(corners))


def motion_field(motion: GlobalMotion, height: int, width: int) -> np.ndarray:
    """(4, H, W) float32: where each pixel of the current frame lies in the previous one, as a
    displacement (x, y in px), whether that place is inside the previous frame, and the confidence."""
    if not motion.found:
        return np.zeros((MOTION_CHANNELS, height, width), np.float32)
    m = motion.homography.astype(np.float32)
    # A row and a column broadcast, written into one buffer: a full-size coordinate grid and its
    # temporaries cost several times the arithmetic (11 ms against 3 at 720p), once per frame.
    xs = np.arange(width, dtype=np.float32)[None, :]
    ys = np.arange(height, dtype=np.float32)[:, None]
    field = np.empty((MOTION_CHANNELS, height, width), np.float32)
    px, py, inside = field[0], field[1], field[2]
    z = m[2, 0] * xs + (m[2, 1] * ys + m[2, 2])
    np.divide(m[0, 0] * xs + (m[0, 1] * ys + m[0, 2]), z, out=px)
    np.divide(m[1, 0] * xs + (m[1, 1] * ys + m[1, 2]), z, out=py)
    # Half a pixel of tolerance: bilinear sampling at the outermost centres still reads the frame.
    inside[...] = (px >= -0.5) & (px <= width - 0.5) & (py >= -0.5) & (py <= height - 0.5)
    px -= xs
    py -= ys
    field[3] = motion.confidence
    return field


def estimate_motions(frame: torch.Tensor, previous: torch.Tensor | np.ndarray) -> list[GlobalMotion]:
    """(B, 3, H, W) frames and the (B, >=3, >=H, >=W) previous frames a model keeps in its state (padded,
    so cropped here) -> the global motion of each frame onto its previous one."""
    h, w = frame.shape[-2:]
    previous = torch.as_tensor(previous)[:, :3, :h, :w]
    pairs = zip(to_uint8(frame), to_uint8(previous.float()))
    # The zero state of a first frame (or after a reset) is black: nothing to track, no motion.
    return [estimate_motion(prev, cur) if prev.any() else NO_MOTION for cur, prev in pairs]


def add_motion_channels(frame: torch.Tensor, previous: torch.Tensor | np.ndarray,
                        motions: Sequence[GlobalMotion] | None = None) -> torch.Tensor:
    """(B, 3, H, W) frames + the (B, >=3, >=H, >=W) previous frames a model keeps in its state (padded,
    so cropped here) -> (B, 7, H, W): RGB and the motion field of each frame onto its previous one.

    ``motions``: one per frame, already estimated where the frames were decoded (the engine's decode
    stage, on the host); None estimates them here from the previous frames."""
    h, w = frame.shape[-2:]
    if motions is None:
        motions = estimate_motions(frame, previous)
    if len(motions) != frame.shape[0]:
        raise ValueError(f"{len(motions)} motions for a batch of {frame.shape[0]} frames")
    fields = [motion_field(motion, h, w) for motion in motions]
    field = torch.from_numpy(np.stack(fields)).to(frame.device, frame.dtype)
    return torch.cat([frame, field], dim=1)
