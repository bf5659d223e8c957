"""Smooth handheld camera paths as homographies, continuous in time across a whole clip.

A handheld camera mostly *rotates* (wrist and arm tremor), so the path is a rotation (yaw, pitch,
roll) plus a small zoom, seen through a pinhole of random field of view: ``H = K R K^-1``. Yaw and
pitch give the familiar shift with a little keystone; roll and zoom make the blur vary across the
frame (streaks grow towards the corners), which a single kernel cannot.

Each degree of freedom is a slow drift (a pan) plus a few sinusoids at tremor frequencies. The
path is defined for any real time ``t`` in frame units, so sub-frames inside an exposure and the
frames of a clip all lie on one smooth curve: a recurrent model sees motion that persists.
Amplitudes are finally scaled so the mean blur (path length of image points during an exposure)
is the length the caller asked for.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

# Image points whose motion defines "the blur length": the centre and four points halfway to the
# corners (the corners themselves over-weight roll).
_REFERENCE_POINTS = np.array([[0.5, 0.5], [0.25, 0.25], [0.75, 0.25], [0.25, 0.75], [0.75, 0.75]])
_SAMPLES_PER_EXPOSURE = 9


@dataclass(frozen=True)
class CameraConfig:
    fov_deg: tuple[float, float] = (50.0, 80.0)
    # Cycles per frame: 0.04-0.2 is 1.2-6 Hz at 30 fps, where handheld shake has most of its energy
    # (faster physiological tremor is too small to blur).
    shake_freq: tuple[float, float] = (0.04, 0.2)
    components: int = 3
    # Relative weights of the degrees of freedom against yaw (1): handheld shake is mostly yaw/pitch.
    pitch_weight: tuple[float, float] = (0.4, 1.0)
    roll_weight: tuple[float, float] = (0.0, 0.5)
    zoom_weight: tuple[float, float] = (0.0, 0.3)
    # Share of a steady pan in the motion, against the oscillating shake.
    drift_share: tuple[float, float] = (0.0, 0.6)
    # Width of the whole frame the output is a crop of. It sets the focal length (and the radius
    # roll and zoom are measured at), so a 256 px training crop sees the mild perspective of 720p
    # footage instead of the extreme one of a 256 px wide camera.
    frame_width: int = 1280

    def __post_init__(self) -> None:
        if self.components < 1:
            raise ValueError(f"components must be >= 1; got {self.components}")
        for name in ("fov_deg", "shake_freq", "pitch_weight", "roll_weight", "zoom_weight", "drift_share"):
            lo, hi = getattr(self, name)
            if not 0 <= lo <= hi:
                raise ValueError(f"{name} must be a range (lo, hi) with 0 <= lo <= hi; got {(lo, hi)}")
        if self.frame_width < 1:
            raise ValueError(f"frame_width must be >= 1; got {self.frame_width}")


@dataclass(frozen=True, eq=False)
class CameraPath:
    """Pose of the camera over time, in px-equivalents per degree of freedom (yaw, pitch, roll, zoom)."""

    drift: np.ndarray  # (4,) px per frame
    amp: np.ndarray  # (4, K) px
    freq: np.ndarray  # (4, K) cycles per frame
    phase: np.ndarray  # (4, K) radians
    origin: np.ndarray  # (4,) unscaled pose subtracted so the clip is centred on the source window
    focal: float  # px
    radius: float  # px at which roll and zoom displacements are measured
    height: int
    width: int
    scale: float = 1.0

    def pose(self, times: np.ndarray) -> np.ndarray:
        """(n,) times in frames -> (n, 4) yaw, pitch, roll, zoom in px at the frame's focal/radius."""
        t = np.asarray(times, dtype=np.float64)[:, None, None]  # (n, 1, 1)
        waves = (self.amp * np.sin(2 * np.pi * self.freq * t + self.phase)).sum(-1)  # (n, 4)
        return self.scale * (self.drift * t[:, :, 0] + waves - self.origin)

    def homographies(self, times: np.ndarray, source_center: tuple[float, float]) -> np.ndarray:
        """(n, 3, 3) maps from output pixel (x, y, 1) to source pixel, for warpPerspective's inverse map."""
        p = self.pose(times)
        yaw, pitch = p[:, 0] / self.focal, p[:, 1] / self.focal
        roll, zoom = p[:, 2] / self.radius, np.exp(p[:, 3] / self.radius)
        k = np.diag([self.focal, self.focal, 1.0])
        rot = _rz(roll) @ _rx(pitch) @ _ry(yaw)  # (n, 3, 3)
        to_center = _translate(-self.width / 2, -self.height / 2)
        to_source = _translate(*source_center)
        scale = np.zeros((len(p), 3, 3))
        scale[:, 0, 0] = scale[:, 1, 1] = zoom
        scale[:, 2, 2] = 1.0
        return to_source @ scale @ k @ rot @ np.linalg.inv(k) @ to_center

    def exposure_lengths(self, frame_times: np.ndarray, duty: float) -> np.ndarray:
        """(T,) mean path length in px of the reference points during each frame's exposure."""
        offsets = np.linspace(-duty / 2, duty / 2, _SAMPLES_PER_EXPOSURE)
        times = (np.asarray(frame_times, dtype=np.float64)[:, None] + offsets).ravel()
        pts = _REFERENCE_POINTS * [self.width, self.height]
        hom = np.concatenate([pts, np.ones((len(pts), 1))], axis=1)  # (P, 3)
        mapped = np.einsum("nij,pj->npi", self.homographies(times, (0.0, 0.0)), hom)
        xy = mapped[..., :2] / mapped[..., 2:]  # (T * S, P, 2)
        xy = xy.reshape(len(frame_times), _SAMPLES_PER_EXPOSURE, len(pts), 2)
        return np.linalg.norm(np.diff(xy, axis=1), axis=-1).sum(axis=1).mean(axis=1)


def random_camera_path(rng: np.random.Generator, config: CameraConfig, *, frames: int, height: int, width: int,
                       blur_px: float, duty: float) -> CameraPath:
    """A path whose exposures of ``duty`` (fraction of a frame) blur by ``blur_px`` on average."""
    fov = np.deg2rad(rng.uniform(*config.fov_deg))
    weights = np.array([1.0, rng.uniform(*config.pitch_weight), rng.uniform(*config.roll_weight),
                        rng.uniform(*config.zoom_weight)])  # (4,)
    k = config.components
    freq = rng.uniform(*config.shake_freq, size=(4, k))
    # Amplitude ~ 1/f gives every component a similar velocity, so no single frequency dominates the blur.
    amp = weights[:, None] * np.abs(rng.standard_normal((4, k))) / (2 * np.pi * freq)
    phase = rng.uniform(0, 2 * np.pi, size=(4, k))
    drift = rng.uniform(*config.drift_share) * weights * rng.standard_normal(4) * np.sqrt(k)
    full_width = max(config.frame_width, width)
    path = CameraPath(drift, amp, freq, phase, np.zeros(4), 0.5 * full_width / np.tan(fov / 2), 0.5 * full_width,
                      height, width)
    frame_times = np.arange(frames, dtype=np.float64)
    # Centre the clip's mean pose on the source window so the camera wanders around it, not away.
    path = replace(path, origin=path.pose(frame_times).mean(axis=0))
    if blur_px <= 0:
        return replace(path, scale=0.0)
    # Blur is linear in the scale only for small angles; a few fixed-point passes absorb the rest.
    for _ in range(3):
        measured = path.exposure_lengths(frame_times, duty).mean()
        path = replace(path, scale=path.scale * blur_px / max(measured, 1e-9))
    return path


def _translate(x: float, y: float) -> np.ndarray:
    return np.array([[1.0, 0.0, x], [0.0, 1.0, y], [0.0, 0.0, 1.0]])


def _rx(a: np.ndarray) -> np.ndarray:
    c, s, o, z = np.cos(a), np.sin(a), np.ones_like(a), np.zeros_like(a)
    return np.stack([np.stack([o, z, z], -1), np.stack([z, c, -s], -1), np.stack([z, s, c], -1)], -2)


def _ry(a: np.ndarray) -> np.ndarray:
    c, s, o, z = np.cos(a), np.sin(a), np.ones_like(a), np.zeros_like(a)
    return np.stack([np.stack([c, z, s], -1), np.stack([z, o, z], -1), np.stack([-s, z, c], -1)], -2)


def _rz(a: np.ndarray) -> np.ndarray:
    c, s, o, z = np.cos(a), np.sin(a), np.ones_like(a), np.zeros_like(a)
    return np.stack([np.stack([c, -s, z], -1), np.stack([s, c, z], -1), np.stack([z, z, o], -1)], -2)
