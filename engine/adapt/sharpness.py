"""No-reference sharpness of a frame, its sensor noise, and blur lengths read off a clip's own content.

Pass 1 of ``--adapt`` scores every frame of a video, so each measure works on a small grey
thumbnail (``gray_thumbnail``: at most 320 px a side, ~1 ms a frame). The adapter only compares
frames of one clip, which mostly show the same scene, so a measure has to rank those frames by
their blur; absolute values across different scenes do not matter.

``SHARPNESS`` was chosen by ``python -m vdeblur.benchmarks.sharpness`` (benchmarks/results/
adapt-sharpness): on clips rendered by the project's own camera-shake synthesis with known blur per
frame, with sensor noise and H.264 as a phone saves them, it ranks frames best of the candidates
in ``MEASURES`` (per-clip Spearman correlation with the true blur length; table in docs/adapt.md).
Gradients on a half-size copy lose most of the sensor noise, which a full-size Laplacian mistakes
for detail: a noisy blurred frame then outscores a clean sharp one.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from vdeblur.train.synth.clip import ShakeConfig, render_shake_clip

Measure = Callable[[np.ndarray], float]


def luma(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 -> (H, W) float32 luma in [0, 1]."""
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255


def gray_thumbnail(rgb: np.ndarray, max_side: int = 320) -> np.ndarray:
    """(H, W, 3) uint8 -> (h, w) float32 luma in [0, 1], area-downscaled so the longer side is <= max_side."""
    gray = luma(rgb)
    scale = max(gray.shape) / max_side
    if scale > 1:
        size = (max(1, round(gray.shape[1] / scale)), max(1, round(gray.shape[0] / scale)))
        gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
    return gray


def _half(gray: np.ndarray) -> np.ndarray:
    return cv2.resize(gray, (max(1, gray.shape[1] // 2), max(1, gray.shape[0] // 2)), interpolation=cv2.INTER_AREA)


def _gradient(gray: np.ndarray) -> np.ndarray:
    gx, gy = cv2.Sobel(gray, cv2.CV_32F, 1, 0), cv2.Sobel(gray, cv2.CV_32F, 0, 1)
    return np.sqrt(gx * gx + gy * gy)


def laplacian_variance(gray: np.ndarray) -> float:
    return float(cv2.Laplacian(gray, cv2.CV_32F).var())


def tenengrad(gray: np.ndarray) -> float:
    return float(np.mean(_gradient(gray) ** 2))


def tenengrad_half(gray: np.ndarray) -> float:
    return tenengrad(_half(gray))


def edge_p90_half(gray: np.ndarray) -> float:
    """The 90th percentile of gradient magnitude at half size: strong edges only, flat noise ignored."""
    return float(np.percentile(_gradient(_half(gray)), 90))


def fine_to_coarse(gray: np.ndarray) -> float:
    """Gradient energy at half size over that at quarter size: blur takes the fine scale first."""
    half = _half(gray)
    return tenengrad(half) / max(tenengrad(_half(half)), 1e-12)


MEASURES: dict[str, Measure] = {
    "laplacian_var": laplacian_variance,
    "tenengrad": tenengrad,
    "tenengrad_half": tenengrad_half,
    "edge_p90_half": edge_p90_half,
    "fine_to_coarse": fine_to_coarse,
}
SHARPNESS = "tenengrad_half"


def sharpness(gray: np.ndarray) -> float:
    """The chosen measure (``SHARPNESS``) of a ``gray_thumbnail``; higher is sharper."""
    return MEASURES[SHARPNESS](gray)


_IMMERKAER = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float32)


def noise_sigma(gray: np.ndarray) -> float:
    """Std of additive noise in a (H, W) float image (Immerkaer 1996), from its flattest half: the
    mask cancels smooth image content, and edges, which it does not cancel, are left out."""
    if min(gray.shape) < 3:
        return 0.0
    response = np.abs(cv2.filter2D(gray, cv2.CV_32F, _IMMERKAER)[1:-1, 1:-1])
    edges = _gradient(gray)[1:-1, 1:-1]
    flat = response[edges <= np.median(edges)]
    return float(np.sqrt(np.pi / 2) * flat.mean() / 6)


_CALIBRATION_PX = np.array([0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0])


def estimate_blur_px(target: np.ndarray, scores: np.ndarray, noise: float, seed: int = 0) -> np.ndarray:
    """(N,) blur in px of frames scored ``scores``, relative to ``target`` ((H, W, 3) uint8, the
    clip's sharpest content): ``target`` is shaken by known lengths with the synthesis, noise of
    ``noise`` std added, scored, and each score read off that curve (monotone by construction)."""
    h, w = target.shape[:2]
    rng = np.random.default_rng(seed)
    curve = []
    for px in _CALIBRATION_PX:
        config = ShakeConfig(blur_px=(px, px) if px > 0 else (0.0, 0.0), noise=None, compression=None)
        shaken, _ = render_shake_clip(target, frames=1, height=h, width=w, seed=seed, config=config, centred=True)
        noisy = shaken[0].astype(np.float32) + rng.standard_normal(shaken[0].shape, dtype=np.float32) * (noise * 255)
        curve.append(sharpness(gray_thumbnail(np.clip(noisy + 0.5, 0, 255).astype(np.uint8))))
    # Sharpness falls as blur grows; a running minimum keeps the curve monotone where noise wobbles it.
    falling = np.minimum.accumulate(np.asarray(curve))
    return np.interp(-np.asarray(scores, dtype=np.float64), -falling, _CALIBRATION_PX)
