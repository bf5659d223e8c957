"""Blur rendered with torch (data.kind = "device"): agreement with the CPU renderer, determinism, noise.

Run on the CPU only: the CUDA path is the same code on another device and has never been run.
"""

import numpy as np
import pytest
import torch

from vdeblur.train.device_data import DeviceShakeBatches
from vdeblur.train.synth import NoiseConfig, ShakeConfig, render_shake_clip
from vdeblur.train.synth.degrade import SRGB_TO_LINEAR, degrade_clip
from vdeblur.train.synth.device_render import ClipPlan, plan_clip, render_batch, srgb_to_linear_tensor
from vdeblur.train.synth.sources import ImageFiles, skimage_photos

pytestmark = pytest.mark.usefixtures("one_thread")
CLEAN = dict(noise=None, compression=None)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def to_u8(frames: torch.Tensor) -> np.ndarray:
    """(T, 3, H, W) on the 8-bit grid -> (T, H, W, 3) uint8, exactly."""
    u8 = torch.round(frames * 255).to(torch.uint8)
    assert torch.equal(u8.float() / 255, frames)  # the output lies on the 8-bit grid
    return u8.permute(0, 2, 3, 1).numpy()


def tensor(image: np.ndarray) -> torch.Tensor:
    return srgb_to_linear_tensor(torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))))


@pytest.mark.parametrize("window", ["inside", "edge"])
def test_device_render_matches_the_cpu_renderer(photo: np.ndarray, window: str) -> None:
    # "edge": the source is the window itself, so heavy shake looks far past its edges (mirrored).
    image = photo[:300, :360].copy() if window == "inside" else photo[100:196, 200:328].copy()
    config = ShakeConfig(mode="temporal", blur_px=(4.0, 40.0), **CLEAN)
    seeds = range(5)
    plans = [plan_clip(s, image.shape[:2], frames=3, height=96, width=128, config=config) for s in seeds]
    # A small sample budget forces several grid_sample calls: the split must not change the result.
    blurred, sharp = render_batch([tensor(image)] * len(plans), plans, height=96, width=128, max_samples=96 * 128 * 40)
    assert blurred.shape == sharp.shape == (5, 3, 3, 96, 128)
    for i, seed in enumerate(seeds):
        cpu_blurred, cpu_sharp = render_shake_clip(image, frames=3, height=96, width=128, seed=seed, config=config)
        assert psnr(to_u8(sharp[i]), cpu_sharp) > 45 and psnr(to_u8(blurred[i]), cpu_blurred) > 45
        assert np.abs(to_u8(blurred[i]).astype(int) - cpu_blurred).max() <= 2
    assert max(len(h) for p in plans for h in p.homographies) > 20  # real blur was compared, not near-copies
    one, _ = render_batch([tensor(image)], plans[:1], height=96, width=128)
    # A clip does not depend on the rest of its batch, up to float rounding of the atlas coordinates.
    diff = (one[0] - blurred[0]).abs()
    assert diff.max() <= 1 / 255 + 1e-6 and (diff > 0).float().mean() < 1e-3


def test_mixed_mode_renders_the_temporal_path_and_kernel_mode_is_refused(photo: np.ndarray) -> None:
    mixed = plan_clip(3, photo.shape[:2], frames=2, height=64, width=64, config=ShakeConfig(mode="mixed"))
    temporal = plan_clip(3, photo.shape[:2], frames=2, height=64, width=64, config=ShakeConfig(mode="temporal"))
    assert all(np.array_equal(a, b) for a, b in zip(mixed.homographies, temporal.homographies))
    with pytest.raises(ValueError, match="'kernel' needs the CPU path"):
        plan_clip(3, photo.shape[:2], frames=2, height=64, width=64, config=ShakeConfig(mode="kernel"))


def test_noise_has_the_cpu_statistics() -> None:
    level, shot, read = 0.2, 3e-3, 3e-3
    noise = NoiseConfig(probability=1.0, shot=(shot, shot), read=(read, read))
    config = ShakeConfig(mode="temporal", noise=noise, compression=None)
    flat = torch.full((3, 96, 96), level)  # a flat source: blur changes nothing, only noise remains
    plans = [plan_clip(s, (96, 96), frames=2, height=64, width=64, config=config) for s in range(4)]
    assert all(p.noise == (pytest.approx(shot), pytest.approx(read)) for p in plans)
    blurred, sharp = render_batch([flat] * 4, plans, height=64, width=64)
    lut = torch.as_tensor(SRGB_TO_LINEAR)
    linear = lut[torch.round(blurred * 255).long()]
    expected = np.sqrt(shot * level + read**2)
    assert linear.mean().item() == pytest.approx(level, abs=1e-3)
    assert linear.std().item() == pytest.approx(expected, rel=0.05)
    cpu = degrade_clip([np.full((64, 64, 3), level, np.float32)] * 2, np.random.default_rng(0), noise, None)
    assert SRGB_TO_LINEAR[cpu].std() == pytest.approx(linear.std().item(), rel=0.05)
    assert not torch.equal(linear[0, 0], linear[0, 1]) and not torch.equal(linear[0], linear[1])  # fresh per frame, clip
    assert torch.unique(sharp).numel() == 1  # the target stays clean
    quiet = [ClipPlan(p.homographies, None, p.noise_seed) for p in plans]
    clean, _ = render_batch([flat] * 4, quiet, height=64, width=64)
    assert torch.equal(clean, sharp)


@pytest.fixture(scope="module")
def photos() -> ImageFiles:
    return skimage_photos()


def test_device_batches_depend_on_seed_rank_and_step_only(photos: ImageFiles) -> None:
    def batches(**kw) -> DeviceShakeBatches:
        args = dict(device=torch.device("cpu"), batch=3, frames=2, height=48, width=48, seed=1, rank=0) | kw
        return DeviceShakeBatches([photos], **args)

    a = batches()
    first = a.batch(5)
    assert first["blurred"].shape == first["sharp"].shape == (3, 2, 3, 48, 48)
    assert first["blurred"].dtype == torch.float32 and first["blurred"].device.type == "cpu"
    a.batch(6)  # what came before does not matter
    again = batches().batch(5)
    assert all(torch.equal(first[k], again[k]) for k in first)
    for other in (a.batch(6), batches(rank=1).batch(5), batches(seed=2).batch(5)):
        assert not torch.equal(first["sharp"], other["sharp"])
    assert (first["blurred"] - first["sharp"]).abs().mean() > 0.01  # the input really is degraded


def test_device_rescale_matches_the_synthetic_dataset(photo: np.ndarray, photos: ImageFiles) -> None:
    from vdeblur.train.data import SyntheticDataset
    from vdeblur.train.device_data import rescaled_size

    cpu = SyntheticDataset([photos], length=1, height=96, width=128)
    h, w = photo.shape[:2]
    for factor, floor_db in ((0.1, 35), (0.37, 35), (0.7, 35), (0.93, 35), (1.3, 60)):
        expected = cpu._rescale(photo, factor)
        size = rescaled_size(h, w, factor, 96, 128)
        image = torch.from_numpy(np.ascontiguousarray(photo.transpose(2, 0, 1)))
        got = DeviceShakeBatches._rescale(image, size).permute(1, 2, 0).numpy()
        assert got.shape == expected.shape and psnr(got, expected) > floor_db, (factor, psnr(got, expected))
    assert rescaled_size(h, w, 1.0, 96, 128) is None and rescaled_size(h, w, 0.1, 96, 128) == (128, 128)  # never below the window


@pytest.mark.slow
def test_device_batches_are_the_same_with_a_pool_of_workers(photos: ImageFiles) -> None:
    args = dict(device=torch.device("cpu"), batch=3, frames=2, height=48, width=48, seed=1)
    serial = DeviceShakeBatches([photos], **args).batch(5)
    pooled = DeviceShakeBatches([photos], workers=2, **args)  # the numpy draws in two spawned processes
    try:
        assert pooled.draws(5)[0].plan.homographies[0].shape[1:] == (3, 3) and pooled._pool is not None
        assert all(torch.equal(serial[k], v) for k, v in pooled.batch(5).items())
    finally:
        pooled.close()


def test_device_batches_refuse_video_sources(tmp_path, photos: ImageFiles) -> None:
    from conftest import make_clip

    from vdeblur.train.synth.sources import open_source

    make_clip(tmp_path / "v.mp4", audio=False)
    with pytest.raises(ValueError, match="takes still images .* is a video: use data.kind = 'synthetic'"):
        DeviceShakeBatches([photos, open_source(tmp_path / "v.mp4")], device=torch.device("cpu"), batch=1, frames=1,
                           height=32, width=32)
