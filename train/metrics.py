"""PSNR and SSIM in torch, matching scikit-image's GoPro convention.

The reference is ``skimage.metrics.structural_similarity(a, b, gaussian_weights=True, sigma=1.5,
use_sample_covariance=False, data_range=255, channel_axis=-1)`` and
``peak_signal_noise_ratio(a, b, data_range=255)`` on RGB uint8 images. Running in torch lets the
trainer and benchmarks evaluate on the GPU without a round trip through numpy.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

_SIGMA = 1.5
_TRUNCATE = 3.5  # scipy.ndimage.gaussian_filter's default, used by skimage: radius = int(3.5*1.5+0.5) = 5
_K1, _K2 = 0.01, 0.03


def quantize(x: torch.Tensor) -> torch.Tensor:
    """Float [0, 1] -> the uint8 grid (still float, values 0..255), as when frames are saved."""
    return torch.round(x.clamp(0, 1) * 255)


def psnr(pred: torch.Tensor, target: torch.Tensor, data_range: float = 255.0) -> torch.Tensor:
    """Per-image PSNR in dB of (B, C, H, W) tensors; infinite where they are identical."""
    _check_pair(pred, target)
    diff = pred.double() - target.double()
    mse = diff.pow(2).flatten(1).mean(dim=1)
    return 10 * torch.log10(data_range**2 / mse)


def _gaussian_kernel(device: torch.device) -> torch.Tensor:
    radius = int(_TRUNCATE * _SIGMA + 0.5)
    x = torch.arange(-radius, radius + 1, dtype=torch.float64, device=device)
    k = torch.exp(-0.5 * (x / _SIGMA) ** 2)
    return k / k.sum()


def ssim(pred: torch.Tensor, target: torch.Tensor, data_range: float = 255.0) -> torch.Tensor:
    """Per-image mean SSIM of (B, C, H, W) tensors (each channel separately, then averaged).

    skimage filters with reflect padding and then drops a border of the filter radius before
    averaging; a 'valid' convolution computes exactly the kept region, so no padding is needed.
    """
    _check_pair(pred, target)
    b, c, h, w = pred.shape
    k = _gaussian_kernel(pred.device)
    if h < k.numel() or w < k.numel():
        raise ValueError(f"SSIM needs images of at least {k.numel()}x{k.numel()}; got {w}x{h}")
    x = pred.double().reshape(b * c, 1, h, w)
    y = target.double().reshape(b * c, 1, h, w)
    kh, kw = k.view(1, 1, -1, 1), k.view(1, 1, 1, -1)

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.conv2d(t, kh), kw)

    ux, uy = blur(x), blur(y)
    vx = blur(x * x) - ux * ux  # population covariance (use_sample_covariance=False)
    vy = blur(y * y) - uy * uy
    vxy = blur(x * y) - ux * uy
    c1, c2 = (_K1 * data_range) ** 2, (_K2 * data_range) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    return s.flatten(1).mean(dim=1).view(b, c).mean(dim=1)


def _check_pair(pred: torch.Tensor, target: torch.Tensor) -> None:
    if pred.shape != target.shape or pred.dim() != 4:
        raise ValueError(f"expected two (B, C, H, W) tensors of one shape; got {tuple(pred.shape)} and {tuple(target.shape)}")


def psnr_ssim_uint8(pred: torch.Tensor, target: torch.Tensor) -> tuple[float, float]:
    """Mean PSNR/SSIM over a batch of [0, 1] frames, after quantising both to 8 bits like saved PNGs."""
    p, t = quantize(pred), quantize(target)
    ps = psnr(p, t)
    # Identical images have infinite PSNR; cap at 100 dB so means stay finite and comparable.
    ps = torch.where(torch.isinf(ps), torch.full_like(ps, 100.0), ps)
    return float(ps.mean()), float(ssim(p, t).mean())

