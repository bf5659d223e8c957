"""DeblurGAN's random-walk camera trajectories, rasterised to blur kernels: ``B = S * K + N``.

The walk is the model of Boracchi & Foi (2012) as DeblurGAN implements it (``Trajectory.fit``): a
2-D point moving at constant speed whose velocity receives Gaussian shake, a centripetal pull back
to the origin and, rarely, an abrupt jerk. We differ in one respect that matters for video: one long
walk spans a whole clip, and frame ``t`` is blurred by the segment inside its exposure, so the
kernels of neighbouring frames are consecutive pieces of one camera motion (and the frame content
moves with the walk) instead of unrelated random kernels.

The walk and the rasteriser are numba loops; every random number is drawn beforehand from the
caller's numpy Generator, so output depends on the seed alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numba
import numpy as np

# DeblurGAN walks 2000 steps for one exposure of 60 px; we keep its step count per exposure so
# its shake/centripetal constants mean what they meant there, then rescale to the wanted length.
_STEPS_PER_EXPOSURE = 2000
_DEBLURGAN_MAX_LEN = 60.0


@dataclass(frozen=True)
class WalkParams:
    """The per-sequence random constants of DeblurGAN's walk (``Trajectory.fit``)."""

    expl: float  # overall strength of perturbations ("anxiety")
    centripetal: float
    prob_big_shake: float
    gaussian_shake: float
    init_angle: float  # radians

    @staticmethod
    def sample(rng: np.random.Generator) -> WalkParams:
        # DeblurGAN draws expl from (0, 0.1): with gaussian_shake up to 10 its walk then turns by up
        # to ~1 rad per step, a Brownian tangle that rasterises to a Gaussian-like blob. A hand
        # turns ~1 rad per exposure, so expl is 20x smaller here; the other draws are DeblurGAN's.
        return WalkParams(
            expl=0.005 * rng.uniform(0.1, 1.0),
            centripetal=0.7 * rng.uniform(),
            prob_big_shake=0.2 * rng.uniform(),
            gaussian_shake=10.0 * rng.uniform(),
            init_angle=rng.uniform(0.0, 2 * np.pi),
        )


@numba.njit(cache=True)
def _walk(steps: int, step_len: float, expl: float, centripetal: float, prob_big_shake: float,
          gaussian_shake: float, init_angle: float, normals: np.ndarray, uniforms: np.ndarray) -> np.ndarray:
    # normals: (steps, 2) N(0, 1); uniforms: (steps, 2) U(0, 1). Returns (steps, 2) positions in px.
    pos = np.zeros((steps, 2))
    vx = np.cos(init_angle) * step_len
    vy = np.sin(init_angle) * step_len
    if expl > 0:
        vx, vy = np.cos(init_angle) * expl, np.sin(init_angle) * expl
    for t in range(steps - 1):
        dvx = 0.0
        dvy = 0.0
        if uniforms[t, 0] < prob_big_shake * expl:
            # An abrupt jerk: roughly reverse the velocity, +-0.5 rad off the exact reversal.
            a = np.pi + (uniforms[t, 1] - 0.5)
            dvx = 2 * (vx * np.cos(a) - vy * np.sin(a))
            dvy = 2 * (vx * np.sin(a) + vy * np.cos(a))
        dvx += expl * (gaussian_shake * normals[t, 0] - centripetal * pos[t, 0]) * step_len
        dvy += expl * (gaussian_shake * normals[t, 1] - centripetal * pos[t, 1]) * step_len
        vx += dvx
        vy += dvy
        norm = np.sqrt(vx * vx + vy * vy) + 1e-12
        vx, vy = vx / norm * step_len, vy / norm * step_len
        pos[t + 1, 0] = pos[t, 0] + vx
        pos[t + 1, 1] = pos[t, 1] + vy
    return pos


def random_walk(rng: np.random.Generator, exposures: float, params: WalkParams | None = None) -> np.ndarray:
    """(steps, 2) positions in DeblurGAN units: one exposure is 2000 steps and 60 px of path."""
    if exposures <= 0:
        raise ValueError(f"exposures must be > 0; got {exposures}")
    params = params or WalkParams.sample(rng)
    steps = max(2, int(round(exposures * _STEPS_PER_EXPOSURE)))
    normals = rng.standard_normal((steps, 2))
    uniforms = rng.uniform(size=(steps, 2))
    step_len = _DEBLURGAN_MAX_LEN / (_STEPS_PER_EXPOSURE - 1)
    return _walk(steps, step_len, params.expl, params.centripetal, params.prob_big_shake,
                 params.gaussian_shake, params.init_angle, normals, uniforms)


@numba.njit(cache=True)
def _splat(points: np.ndarray, size: int) -> np.ndarray:
    # Bilinear splat of (n, 2) sub-pixel points, already offset so the kernel centre is (size // 2).
    kernel = np.zeros((size, size), dtype=np.float32)
    w = 1.0 / points.shape[0]
    for i in range(points.shape[0]):
        x, y = points[i, 0], points[i, 1]
        x0, y0 = int(np.floor(x)), int(np.floor(y))
        fx, fy = x - x0, y - y0
        if 0 <= x0 and x0 + 1 < size and 0 <= y0 and y0 + 1 < size:
            kernel[y0, x0] += w * (1 - fx) * (1 - fy)
            kernel[y0, x0 + 1] += w * fx * (1 - fy)
            kernel[y0 + 1, x0] += w * (1 - fx) * fy
            kernel[y0 + 1, x0 + 1] += w * fx * fy
    return kernel


def rasterize_kernel(points: np.ndarray) -> np.ndarray:
    """(n, 2) path in px, relative to the point the sharp frame shows -> (k, k) float32 kernel, sum 1.

    The kernel is odd-sized and centred on (0, 0) of the path, so blurring with it keeps the sharp
    frame's content in place (the sharp target is the mid-exposure view).
    """
    if points.ndim != 2 or points.shape[1] != 2 or len(points) == 0:
        raise ValueError(f"points must be (n, 2) with n > 0; got {points.shape}")
    radius = int(np.ceil(np.abs(points).max())) + 1
    size = 2 * radius + 1
    kernel = _splat(np.ascontiguousarray(points + radius, dtype=np.float64), size)
    return kernel / kernel.sum()


def clip_kernels(rng: np.random.Generator, frames: int, blur_px: np.ndarray,
                 duty: float) -> tuple[list[np.ndarray], np.ndarray]:
    """Kernels of ``frames`` consecutive exposures cut from one walk.

    blur_px: (frames,) wanted path length of each exposure in px. duty: exposure time / frame interval,
    in (0, 1]. Returns the kernels and (frames, 2) mid-exposure positions in px (where the camera
    points, which moves the frame content from frame to frame).
    """
    if not 0 < duty <= 1:
        raise ValueError(f"duty must be in (0, 1]; got {duty}")
    blur_px = np.asarray(blur_px, dtype=np.float64)
    if blur_px.shape != (frames,):
        raise ValueError(f"blur_px must have shape ({frames},); got {blur_px.shape}")
    walk = random_walk(rng, exposures=frames / duty)  # (steps, 2) in DeblurGAN px
    per_frame = len(walk) / frames
    exposure = max(2, int(per_frame * duty))
    kernels, centres = [], np.zeros((frames, 2))
    pos, prev_mid = np.zeros(2), walk[0]
    for t in range(frames):
        start = int(t * per_frame)
        seg = walk[start:start + exposure]  # (exposure, 2)
        # Each frame has its own scale (blur varies over the clip); motion since the previous
        # mid-exposure point is scaled with it, so the content path stays continuous.
        scale = blur_px[t] / max(_path_length(seg), 1e-9)
        mid = seg[len(seg) // 2]
        kernels.append(rasterize_kernel((seg - mid) * scale))
        pos = pos + (mid - prev_mid) * scale
        centres[t], prev_mid = pos, mid
    return kernels, centres


def render_kernel_clip(sources: list[np.ndarray], rng: np.random.Generator, *, height: int, width: int,
                       blur_px: np.ndarray, duty: float,
                       source_center: tuple[float, float]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Blurred and sharp linear frames of a clip: ``sources[t]`` seen from the walk, blurred by kernel t.

    sources: one linear (Hs, Ws, 3) float32 image per output frame (the same array repeated for a
    still image). The view is rendered with a margin of the kernel radius so the convolution never
    sees an artificial border.
    """
    kernels, centres = clip_kernels(rng, len(sources), blur_px, duty)
    blurred, sharp = [], []
    for source, kernel, (dx, dy) in zip(sources, kernels, centres):
        r = kernel.shape[0] // 2
        # Output pixel (x, y) of the padded view shows source pixel (x - r - W/2 + cx + dx, ...).
        shift = np.array([[1.0, 0.0, source_center[0] - width / 2 - r + dx],
                          [0.0, 1.0, source_center[1] - height / 2 - r + dy]])
        view = cv2.warpAffine(source, shift, (width + 2 * r, height + 2 * r),
                              flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REFLECT_101)
        # filter2D correlates: B(x) = sum_k K(k) S(x + k), i.e. the mean of views along the path.
        blurred.append(cv2.filter2D(view, -1, kernel, borderType=cv2.BORDER_REFLECT_101)[r:r + height, r:r + width])
        sharp.append(view[r:r + height, r:r + width])
    return blurred, sharp


def _path_length(points: np.ndarray) -> float:
    return float(np.hypot(*np.diff(points, axis=0).T).sum())
