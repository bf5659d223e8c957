"""Classical deblurring baselines, so the learned models' numbers have a floor to stand on.

Every baseline maps one (H, W, 3) uint8 RGB frame to another:

* ``input``: the blurred frame itself (what doing nothing scores);
* ``unsharp``: unsharp masking (scikit-image), which sharpens edges but knows nothing of motion;
* ``wiener`` and ``richardson_lucy``: non-blind deconvolution (scikit-image) with a kernel
  *estimated from the frame itself* by ``estimate_motion_kernel``.

The kernel estimate assumes uniform linear motion blur, the classic cepstral method (Rom 1975;
Cannon 1976): a box blur of length L along angle a multiplies the spectrum by a sinc whose zeros
repeat every 1/L, so the cepstrum (inverse FFT of the log magnitude spectrum) has a negative spike
at distance L along a. We search angles x lengths for the deepest dip. Real camera shake is curved
and spatially varying, so this is the best a single straight kernel can do, which is the point of
the comparison. A frame without a clear dip (sharp, or shake too curved) falls back to an
anisotropic Gaussian fitted to the spectrum's fall-off: natural images have a power spectrum close
to 1/f^2, so log(P(f) * f^2) = c - 4 pi^2 f' S f for a Gaussian blur of covariance S, a linear
least-squares fit over mid frequencies (below the noise and JPEG floor). Sharp photos fit to about
1 px already (their spectra fall a little faster than 1/f^2), so that much is taken as no blur.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
from scipy import ndimage
from skimage import restoration

FrameFilter = Callable[[np.ndarray], np.ndarray]
BASELINES = ("input", "unsharp", "wiener", "richardson_lucy")


@dataclass(frozen=True)
class BaselineConfig:
    max_blur_px: int = 40  # longest kernel searched; longer shake is beyond any straight-line model anyway
    angle_step_deg: float = 2.0
    # A dip must stand this many robust standard deviations below the median of the searched
    # cepstrum values; sharp photos reach about -8, a 3 px box blur about -50.
    min_dip_z: float = 12.0
    # Gaussian fall-back: frequency band of the fit (cycles/px) and the sigma sharp photos fit to anyway.
    fit_band: tuple[float, float] = (0.03, 0.2)
    sharp_sigma_px: float = 1.0
    unsharp_radius: float = 2.0
    unsharp_amount: float = 1.0
    # Noise-to-signal weight of the Laplacian regulariser, per px of kernel length: a longer box has
    # more spectral zeros to amplify quantisation noise at, so it needs more regularisation.
    wiener_balance_per_px: float = 0.012
    rl_iterations: int = 10  # more iterations sharpen further but ring once the kernel estimate is off


@dataclass(frozen=True)
class MotionEstimate:
    length: float  # px; 1 means "no straight-line blur found"
    angle_deg: float  # counter-clockwise from the +x axis, image y pointing up
    dip_z: float


def line_kernel(length: float, angle_deg: float) -> np.ndarray:
    """(k, k) float64 box kernel of a straight motion, anti-aliased by drawing it 8x larger."""
    size = max(1, int(np.ceil(length))) | 1  # odd, so the kernel has a centre pixel
    scale = 8
    canvas = np.zeros((size * scale, size * scale), np.float32)
    centre = (size * scale - 1) / 2
    dx = np.cos(np.deg2rad(angle_deg)) * (length - 1) * scale / 2
    dy = -np.sin(np.deg2rad(angle_deg)) * (length - 1) * scale / 2
    p0 = (int(round(centre - dx)), int(round(centre - dy)))
    p1 = (int(round(centre + dx)), int(round(centre + dy)))
    cv2.line(canvas, p0, p1, 1.0, thickness=scale)
    kernel = cv2.resize(canvas, (size, size), interpolation=cv2.INTER_AREA).astype(np.float64)
    return kernel / kernel.sum()


def estimate_motion_kernel(frame: np.ndarray, config: BaselineConfig = BaselineConfig()) -> MotionEstimate:
    """Length and angle of a straight motion blur from the cepstrum of the frame's luma."""
    gray = cv2.cvtColor(_check_frame(frame), cv2.COLOR_RGB2GRAY).astype(np.float64)
    h, w = gray.shape
    # The Hann window removes the frame border's discontinuity, whose spectral cross would swamp the dips.
    windowed = (gray - gray.mean()) * np.outer(np.hanning(h), np.hanning(w))
    cepstrum = np.fft.fftshift(np.real(np.fft.ifft2(np.log(np.abs(np.fft.fft2(windowed)) + 1e-3))))
    max_len = min(config.max_blur_px, h // 2 - 1, w // 2 - 1)
    if max_len < 3:
        raise ValueError(f"frame {w}x{h} is too small to estimate a blur kernel (needs at least 8x8)")
    angles = np.arange(0.0, 180.0, config.angle_step_deg)
    lengths = np.arange(3, max_len + 1)
    theta = np.deg2rad(angles)[:, None]
    ys = h // 2 - np.sin(theta) * lengths[None]  # (angles, lengths)
    xs = w // 2 + np.cos(theta) * lengths[None]
    values = ndimage.map_coordinates(cepstrum, [ys.ravel(), xs.ravel()], order=1).reshape(ys.shape)
    median = np.median(values)
    spread = 1.4826 * np.median(np.abs(values - median)) + 1e-12  # MAD -> standard deviation
    i, j = np.unravel_index(np.argmin(values), values.shape)
    dip_z = float((values[i, j] - median) / spread)
    if dip_z > -config.min_dip_z:
        return MotionEstimate(1.0, 0.0, dip_z)
    return MotionEstimate(float(lengths[j]), float(angles[i]), dip_z)


def gaussian_blur_covariance(frame: np.ndarray, config: BaselineConfig = BaselineConfig()) -> np.ndarray:
    """(2, 2) covariance in px^2 (x, y order) of the Gaussian blur that best explains the spectral fall-off,
    minus what a sharp photo fits to (``sharp_sigma_px``) along each principal axis."""
    gray = cv2.cvtColor(_check_frame(frame), cv2.COLOR_RGB2GRAY).astype(np.float64)
    h, w = gray.shape
    power = np.abs(np.fft.fft2((gray - gray.mean()) * np.outer(np.hanning(h), np.hanning(w)))) ** 2
    fy, fx = np.meshgrid(np.fft.fftfreq(h), np.fft.fftfreq(w), indexing="ij")
    radius = np.hypot(fx, fy)
    band = (radius > config.fit_band[0]) & (radius < config.fit_band[1])
    fx, fy, radius = fx[band], fy[band], radius[band]
    target = np.log(power[band] + 1e-9) + 2 * np.log(radius)  # flat for an unblurred 1/f^2 image
    design = np.stack([np.ones_like(fx), fx * fx, 2 * fx * fy, fy * fy], axis=1) * np.array([1, *[-4 * np.pi**2] * 3])
    coef = np.linalg.lstsq(design, target, rcond=None)[0]
    values, vectors = np.linalg.eigh(np.array([[coef[1], coef[2]], [coef[2], coef[3]]]))
    values = np.clip(values - config.sharp_sigma_px**2, 0, None)
    return vectors @ np.diag(values) @ vectors.T


def gaussian_kernel(covariance: np.ndarray) -> np.ndarray:
    """Normalised kernel of an anisotropic Gaussian, 3 sigma of its widest axis on each side."""
    sigma = float(np.sqrt(max(np.linalg.eigvalsh(covariance).max(), 1e-6)))
    r = int(np.ceil(3 * sigma))
    y, x = np.mgrid[-r:r + 1, -r:r + 1].astype(np.float64)
    inv = np.linalg.inv(covariance + 1e-3 * np.eye(2))  # the ridge keeps a one-axis (line) blur invertible
    kernel = np.exp(-0.5 * (inv[0, 0] * x * x + 2 * inv[0, 1] * x * y + inv[1, 1] * y * y))
    return kernel / kernel.sum()


def estimate_kernel(frame: np.ndarray, config: BaselineConfig = BaselineConfig()) -> np.ndarray | None:
    """The deconvolution kernel of a frame: a straight line if the cepstrum shows one, else the Gaussian
    fit; None when neither finds blur worth removing (under half a pixel)."""
    motion = estimate_motion_kernel(frame, config)
    if motion.length > 1:
        return line_kernel(motion.length, motion.angle_deg)
    covariance = gaussian_blur_covariance(frame, config)
    if np.linalg.eigvalsh(covariance).max() < 0.25:
        return None
    return gaussian_kernel(covariance)


def unsharp(frame: np.ndarray, config: BaselineConfig = BaselineConfig()) -> np.ndarray:
    """frame + amount * (frame - gaussian(frame)): edges get steeper, motion streaks stay."""
    # OpenCV rather than skimage.filters.unsharp_mask, whose colour path returns shifted values in 0.26.
    image = _check_frame(frame).astype(np.float64) / 255
    soft = cv2.GaussianBlur(image, (0, 0), sigmaX=config.unsharp_radius, borderType=cv2.BORDER_REFLECT)
    return _to_uint8(image + config.unsharp_amount * (image - soft))


def wiener(frame: np.ndarray, config: BaselineConfig = BaselineConfig(), kernel: np.ndarray | None = None) -> np.ndarray:
    """Wiener deconvolution; ``kernel`` defaults to the frame's own estimate."""
    def solve(channel: np.ndarray, psf: np.ndarray) -> np.ndarray:
        balance = config.wiener_balance_per_px * psf.shape[0]  # kernel size stands in for blur length
        return restoration.wiener(channel, psf, balance, clip=False)

    return _deconvolve(frame, config, kernel, solve)


def richardson_lucy(frame: np.ndarray, config: BaselineConfig = BaselineConfig(),
                    kernel: np.ndarray | None = None) -> np.ndarray:
    """Richardson-Lucy deconvolution; ``kernel`` defaults to the frame's own estimate."""
    return _deconvolve(frame, config, kernel,
                       lambda channel, psf: restoration.richardson_lucy(channel, psf, num_iter=config.rl_iterations,
                                                                        clip=False))


def _deconvolve(frame: np.ndarray, config: BaselineConfig, kernel: np.ndarray | None,
                solve: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> np.ndarray:
    frame = _check_frame(frame)
    kernel = estimate_kernel(frame, config) if kernel is None else kernel
    if kernel is None:
        return frame.copy()
    # Both solvers work in the Fourier domain (circular boundaries): reflect-padding by the kernel
    # size keeps the wrap-around ringing in the margin we crop away.
    pad = kernel.shape[0]
    padded = np.pad(frame.astype(np.float64) / 255, ((pad, pad), (pad, pad), (0, 0)), mode="reflect")
    # RL multiplies by ratios of the image; a floor keeps black pixels from dividing by zero.
    padded = np.maximum(padded, 1e-3)
    out = np.stack([solve(padded[..., c], kernel) for c in range(3)], axis=-1)
    return _to_uint8(out[pad:-pad, pad:-pad])


def baseline_filters(config: BaselineConfig = BaselineConfig()) -> dict[str, FrameFilter]:
    """Name -> frame filter for every baseline in ``BASELINES``, with ``config`` applied."""
    return {
        "input": lambda frame: _check_frame(frame).copy(),
        "unsharp": lambda frame: unsharp(frame, config),
        "wiener": lambda frame: wiener(frame, config),
        "richardson_lucy": lambda frame: richardson_lucy(frame, config),
    }


def _check_frame(frame: np.ndarray) -> np.ndarray:
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"baselines take (H, W, 3) uint8 RGB frames; got {frame.shape} {frame.dtype}")
    return frame


def _to_uint8(image: np.ndarray) -> np.ndarray:
    """Float in [0, 1] (nominally) -> uint8, clipping the overshoot deconvolution produces."""
    return np.clip(np.round(image * 255), 0, 255).astype(np.uint8)
