"""Torch PSNR/SSIM against scikit-image (the GoPro evaluation convention) on real photographs."""

import cv2
import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from vdeblur.train.metrics import psnr, psnr_ssim_uint8, quantize, ssim


def _t(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(img).permute(2, 0, 1)[None].float()


def _degradations(photo: np.ndarray) -> list[np.ndarray]:
    rng = np.random.default_rng(1)
    kernel = np.zeros((15, 15), np.float32)
    kernel[7, :] = 1 / 15  # horizontal motion blur
    noisy = np.clip(photo + rng.normal(0, 8, photo.shape), 0, 255).astype(np.uint8)
    return [cv2.filter2D(photo, -1, kernel), cv2.GaussianBlur(photo, (0, 0), 2.5), noisy,
            np.ascontiguousarray(photo[::-1])]


def test_ssim_and_psnr_match_scikit_image(photo: np.ndarray) -> None:
    crop = photo[37:37 + 301, 11:11 + 253]  # odd size on purpose
    for degraded in _degradations(crop):
        ref_ssim = structural_similarity(crop, degraded, gaussian_weights=True, sigma=1.5,
                                         use_sample_covariance=False, data_range=255, channel_axis=-1)
        ref_psnr = peak_signal_noise_ratio(crop, degraded, data_range=255)
        assert abs(float(ssim(_t(degraded), _t(crop))) - ref_ssim) < 1e-4
        assert abs(float(psnr(_t(degraded), _t(crop))) - ref_psnr) < 1e-3


def test_batched_metrics_are_per_image(photo: np.ndarray) -> None:
    a = _t(photo[:128, :128])
    b = _t(cv2.GaussianBlur(photo[:128, :128], (0, 0), 1.5))
    batch = ssim(torch.cat([b, a]), torch.cat([a, a]))
    assert batch.shape == (2,) and batch[1] == pytest.approx(1.0) and batch[0] < 0.99
    assert torch.isinf(psnr(a, a)).all()


def test_uint8_helper_quantises_and_caps_identical(photo: np.ndarray) -> None:
    x = _t(photo[:64, :64]) / 255
    p, s = psnr_ssim_uint8(x + 1e-4, x)  # below half a grey level: identical after quantisation
    assert p == 100.0 and s == pytest.approx(1.0)
    assert torch.equal(quantize(torch.tensor([-0.1, 0.5, 1.2])), torch.tensor([0.0, 128.0, 255.0]))


def test_metrics_refuse_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match="one shape"):
        psnr(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 9))
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8))
