"""Objects that move on their own across a shaken view: what one global homography cannot align.

A model fed the previous frame aligned by the camera's global motion (``train/motion.py``) must learn
to ignore whatever does not follow that motion: people, cars, a waving hand. These are cut-outs of
the source photograph (soft elliptical masks, cut at another place than the window shows) that cross
the frame along their own paths in screen coordinates, independent of the camera, composited in
linear light into every sub-frame of the exposure, so they blur by their own motion and by the
camera's. Their union mask at the middle of each exposure (the sharp target's instant) lets an
evaluation score the moving regions alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class ObjectsConfig:
    count: tuple[int, int] = (1, 3)  # objects per clip, uniform, inclusive
    size: tuple[float, float] = (0.2, 0.45)  # diameter as a share of the frame's short side
    speed_px: tuple[float, float] = (3.0, 20.0)  # px per frame on screen, log-uniform
    turn: float = 0.3  # radians per frame the direction may drift by, either way

    def __post_init__(self) -> None:
        if not 0 <= self.count[0] <= self.count[1]:
            raise ValueError(f"count must be a range 0 <= lo <= hi; got {self.count}")
        if not 0 < self.size[0] <= self.size[1] <= 1:
            raise ValueError(f"size must be a range within (0, 1]; got {self.size}")
        if not 0 < self.speed_px[0] <= self.speed_px[1]:
            raise ValueError(f"speed_px must be a range 0 < lo <= hi; got {self.speed_px}")


@dataclass(frozen=True, eq=False)
class MovingObject:
    rgb: np.ndarray  # (s, s, 3) float32 linear light
    alpha: np.ndarray  # (s, s) float32 in [0, 1], feathered
    start: np.ndarray  # (2,) x, y of its centre at time 0, screen px
    velocity: np.ndarray  # (2,) px per frame at time 0
    turn: float  # radians per frame of steady turning

    def centre(self, time: float) -> np.ndarray:
        """Its centre at ``time`` (frames): a steady turn of the velocity, integrated."""
        if abs(self.turn) < 1e-9:
            return self.start + self.velocity * time
        c, s = np.cos(self.turn * time), np.sin(self.turn * time)
        vx, vy = self.velocity
        # The integral of R(turn * u) v du from 0 to time.
        ix = (s * vx - (1 - c) * vy) / self.turn
        iy = ((1 - c) * vx + s * vy) / self.turn
        return self.start + np.array([ix, iy])

    def placed(self, time: float, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
        """(premultiplied RGB, alpha) on the (height, width) screen at ``time``, sub-pixel placed."""
        s = self.alpha.shape[0]
        x, y = self.centre(time) - (s - 1) / 2
        m = np.array([[1.0, 0.0, x], [0.0, 1.0, y]])
        alpha = cv2.warpAffine(self.alpha, m, (width, height), flags=cv2.INTER_LINEAR, borderValue=0.0)
        rgb = cv2.warpAffine(self.rgb * self.alpha[..., None], m, (width, height), flags=cv2.INTER_LINEAR,
                             borderValue=(0.0, 0.0, 0.0))
        return rgb, alpha


def draw_objects(rng: np.random.Generator, linear: np.ndarray, config: ObjectsConfig, *, frames: int, height: int,
                 width: int) -> list[MovingObject]:
    """Cut-outs of ``linear`` (the source, linear light) that cross a (height, width) view during ``frames`` frames."""
    count = int(rng.integers(config.count[0], config.count[1] + 1))
    objects = []
    sh, sw = linear.shape[:2]
    for _ in range(count):
        size = int(np.clip(rng.uniform(*config.size) * min(height, width), 8, min(sh, sw)))
        y0, x0 = int(rng.integers(0, sh - size + 1)), int(rng.integers(0, sw - size + 1))
        rgb = np.ascontiguousarray(linear[y0:y0 + size, x0:x0 + size], dtype=np.float32)
        alpha = _soft_ellipse(rng, size)
        speed = float(np.exp(rng.uniform(np.log(config.speed_px[0]), np.log(config.speed_px[1]))))
        angle = rng.uniform(0, 2 * np.pi)
        velocity = speed * np.array([np.cos(angle), np.sin(angle)])
        # Centred in the view half-way through the clip, so it is on screen for most of it.
        middle = np.array([rng.uniform(0.2, 0.8) * width, rng.uniform(0.2, 0.8) * height])
        turn = float(rng.uniform(-config.turn, config.turn))
        obj = MovingObject(rgb, alpha, middle, velocity, turn)
        objects.append(MovingObject(rgb, alpha, middle - (obj.centre((frames - 1) / 2) - middle), velocity, turn))
    return objects


def _soft_ellipse(rng: np.random.Generator, size: int) -> np.ndarray:
    """A filled ellipse of random axes and angle, feathered over ~2 px like a matted cut-out."""
    alpha = np.zeros((size, size), np.float32)
    axes = (max(2, int(size * rng.uniform(0.3, 0.48))), max(2, int(size * rng.uniform(0.2, 0.48))))
    cv2.ellipse(alpha, (size // 2, size // 2), axes, float(rng.uniform(0, 180)), 0, 360, 1.0, -1, cv2.LINE_AA)
    return cv2.GaussianBlur(alpha, (0, 0), 1.0)


def composite(view: np.ndarray, objects: list[MovingObject], time: float) -> np.ndarray:
    """The (H, W, 3) linear view with every object over it at ``time`` (later objects in front)."""
    h, w = view.shape[:2]
    out = view
    for obj in objects:
        rgb, alpha = obj.placed(time, h, w)
        out = out * (1 - alpha[..., None]) + rgb
    return out.astype(np.float32, copy=False)


def object_mask(objects: list[MovingObject], time: float, height: int, width: int) -> np.ndarray:
    """(H, W) bool: where any object covers at least half of a pixel at ``time``."""
    cover = np.zeros((height, width), np.float32)
    for obj in objects:
        cover = np.maximum(cover, obj.placed(time, height, width)[1])
    return cover >= 0.5


def subframes_for(objects: list[MovingObject], duty: float, max_step_px: float) -> int:
    """Sub-frames an exposure needs so that no object jumps more than ``max_step_px`` between them."""
    if not objects:
        return 1
    fastest = max(float(np.linalg.norm(o.velocity)) for o in objects)
    return int(np.ceil(fastest * duty / max_step_px)) + 1
