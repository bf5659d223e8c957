"""Objects that move on their own across a shaken view: what one global homography cannot align.

A model fed the previous frame aligned by the camera's global motion (``train/motion.py``) must learn
to ignore whatever does not follow that motion: people, cars, a waving hand. These are cut-outs of
the source photograph (soft elliptical masks, cut at another place than the window shows) that cross
the frame along their own paths in screen coordinates, independent of the camera, composited in
linear light into every sub-frame of the exposure, so they blur by their own motion and by the
camera's. Their union mask at the middle of each exposure (the sharp target's instant) lets an
evaluation score the moving regions alone.

Near layers are the other thing one homography misses: parallax. A scene with depth, filmed by a camera
that also translates, moves nearer parts further on screen than the background. A near layer is a soft
region of the view itself (cut from the sharp view at the clip's middle instant, so it is seamless there)
that moves ``1 + gain`` times as far as the background under the camera's motion: a few pixels of local
shift between frames where the camera shakes by tens, in either direction (nearer or further), and
nothing where it holds still.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Protocol

import cv2
import numpy as np

from .camera import CameraPath


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


@dataclass(frozen=True)
class ParallaxConfig:
    count: tuple[int, int] = (1, 2)  # near layers per clip, uniform, inclusive
    size: tuple[float, float] = (0.25, 0.6)  # diameter as a share of the frame's short side
    # How much further (or less far) than the background a layer moves, as a share of the camera's own
    # motion at its place, uniform in magnitude, either sign.
    gain: tuple[float, float] = (0.15, 0.5)

    def __post_init__(self) -> None:
        if not 0 <= self.count[0] <= self.count[1]:
            raise ValueError(f"count must be a range 0 <= lo <= hi; got {self.count}")
        if not 0 < self.size[0] <= self.size[1] <= 1:
            raise ValueError(f"size must be a range within (0, 1]; got {self.size}")
        if not 0 < self.gain[0] <= self.gain[1] < 1:
            raise ValueError(f"gain must be a range within (0, 1); got {self.gain}")


class Layer(Protocol):
    """What the renderer composites over each sub-frame: a cut-out placed on screen at an instant."""

    @property
    def speed_px(self) -> float: ...  # the most it moves on screen in one frame interval

    def placed(self, time: float, height: int, width: int) -> tuple[np.ndarray, np.ndarray]: ...


def _place(rgb: np.ndarray, alpha: np.ndarray, centre: np.ndarray, height: int,
           width: int) -> tuple[np.ndarray, np.ndarray]:
    """(premultiplied RGB, alpha) of a square cut-out centred at ``centre`` on a (height, width) screen."""
    s = alpha.shape[0]
    x, y = centre - (s - 1) / 2
    m = np.array([[1.0, 0.0, x], [0.0, 1.0, y]])
    placed_alpha = cv2.warpAffine(alpha, m, (width, height), flags=cv2.INTER_LINEAR, borderValue=0.0)
    placed_rgb = cv2.warpAffine(rgb * alpha[..., None], m, (width, height), flags=cv2.INTER_LINEAR,
                                borderValue=(0.0, 0.0, 0.0))
    return placed_rgb, placed_alpha


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

    @property
    def speed_px(self) -> float:
        return float(np.linalg.norm(self.velocity))

    def placed(self, time: float, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
        """(premultiplied RGB, alpha) on the (height, width) screen at ``time``, sub-pixel placed."""
        return _place(self.rgb, self.alpha, self.centre(time), height, width)


@dataclass(frozen=True, eq=False)
class NearLayer:
    """A region of the scene nearer (gain > 0) or further (gain < 0) than the background."""

    rgb: np.ndarray  # (s, s, 3) float32 linear light, the sharp view around ``anchor`` at ``mid``
    alpha: np.ndarray  # (s, s) float32 in [0, 1], feathered
    anchor: np.ndarray  # (2,) x, y on screen at time ``mid``
    gain: float
    path: CameraPath
    source_center: tuple[float, float]
    frames: int  # of the clip

    @property
    def mid(self) -> float:
        """The instant at which the layer sits where the background would put it: the clip's middle."""
        return (self.frames - 1) / 2

    @cached_property
    def scene_point(self) -> np.ndarray:
        """(3,) the source point under ``anchor`` at ``mid``, homogeneous (once: every sub-frame asks)."""
        at_mid = self.path.homographies(np.array([self.mid]), self.source_center)[0]
        return at_mid @ np.array([self.anchor[0], self.anchor[1], 1.0])

    @cached_property
    def speed_px(self) -> float:
        """Its fastest step between whole frames, from a track sampled at quarter frames (a bound for the
        sub-frames inside an exposure)."""
        times = np.linspace(0, self.frames - 1, 4 * max(self.frames - 1, 1) + 1)
        track = np.stack([self.centre(t) for t in times])
        return float(np.linalg.norm(np.diff(track, axis=0), axis=1).max(initial=0.0)) * 4

    def background_position(self, time: float) -> np.ndarray:
        """Where the scene point under ``anchor`` at ``mid`` is on screen at ``time``, with no depth."""
        screen = np.linalg.solve(self.path.homographies(np.array([time]), self.source_center)[0], self.scene_point)
        return screen[:2] / screen[2]

    def centre(self, time: float) -> np.ndarray:
        return self.anchor + (1 + self.gain) * (self.background_position(time) - self.anchor)

    def placed(self, time: float, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
        return _place(self.rgb, self.alpha, self.centre(time), height, width)


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


def draw_near_layers(rng: np.random.Generator, mid_view: np.ndarray, path: CameraPath, source_center: tuple[float, float],
                     config: ParallaxConfig, *, frames: int) -> list[NearLayer]:
    """Near layers of a clip along ``path``, cut from ``mid_view``: the sharp (H, W, 3) linear view at the
    clip's middle instant."""
    height, width = mid_view.shape[:2]
    count = int(rng.integers(config.count[0], config.count[1] + 1))
    layers = []
    for _ in range(count):
        size = int(max(8, rng.uniform(*config.size) * min(height, width)))
        corner = np.round(np.array([rng.uniform(0.2, 0.8) * width, rng.uniform(0.2, 0.8) * height]) - (size - 1) / 2)
        # On whole pixels, cut and pasted back at the middle instant reproduce the view exactly (no resampling).
        anchor = corner + (size - 1) / 2
        gain = float(rng.uniform(*config.gain) * rng.choice([-1.0, 1.0]))
        # Edge pixels repeat where the square reaches past the view; the feathered ellipse hides them.
        rgb = cv2.getRectSubPix(mid_view, (size, size), (float(anchor[0]), float(anchor[1])))
        layers.append(NearLayer(rgb, _soft_ellipse(rng, size), anchor, gain, path, source_center, frames))
    return layers


def _soft_ellipse(rng: np.random.Generator, size: int) -> np.ndarray:
    """A filled ellipse of random axes and angle, feathered over ~2 px like a matted cut-out."""
    alpha = np.zeros((size, size), np.float32)
    axes = (max(2, int(size * rng.uniform(0.3, 0.48))), max(2, int(size * rng.uniform(0.2, 0.48))))
    cv2.ellipse(alpha, (size // 2, size // 2), axes, float(rng.uniform(0, 180)), 0, 360, 1.0, -1, cv2.LINE_AA)
    return cv2.GaussianBlur(alpha, (0, 0), 1.0)


def composite(view: np.ndarray, objects: Sequence[Layer], time: float) -> np.ndarray:
    """The (H, W, 3) linear view with every object over it at ``time`` (later objects in front)."""
    h, w = view.shape[:2]
    out = view
    for obj in objects:
        rgb, alpha = obj.placed(time, h, w)
        out = out * (1 - alpha[..., None]) + rgb
    return out.astype(np.float32, copy=False)


def object_mask(objects: Sequence[Layer], time: float, height: int, width: int) -> np.ndarray:
    """(H, W) bool: where any object or near layer covers at least half of a pixel at ``time``."""
    cover = np.zeros((height, width), np.float32)
    for obj in objects:
        cover = np.maximum(cover, obj.placed(time, height, width)[1])
    return cover >= 0.5


def subframes_for(objects: Sequence[Layer], duty: float, max_step_px: float) -> int:
    """Sub-frames an exposure needs so that no object jumps more than ``max_step_px`` between them."""
    if not objects:
        return 1
    fastest = max(o.speed_px for o in objects)
    return int(np.ceil(fastest * duty / max_step_px)) + 1
