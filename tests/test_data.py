"""Datasets: the GoPro layout reader, image/video sources, and on-the-fly synthetic clips."""

from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from vdeblur.train.data import GoProDataset, SyntheticDataset, detail, scan_gopro
from vdeblur.train.synth import ShakeConfig
from vdeblur.train.synth.render_dataset import render_folder
from vdeblur.train.synth.sources import VideoFile, image_folder, open_source, skimage_photos

FRAMES, H, W = 5, 40, 56


def _write(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


@pytest.fixture()
def gopro(tmp_path: Path, photo: np.ndarray) -> Path:
    # Frame i of a sequence is a crop brightened by 10 * i; its blurred twin is the negative.
    # Both facts survive a crop and a flip only if the same crop/flip hits every frame and both halves.
    for s, name in enumerate(["GOPR0001_11_00", "GOPR0002_11_01"]):
        base = (photo[s * 50:s * 50 + H, :W] // 2).astype(np.uint8)
        for i in range(FRAMES):
            sharp = base + 10 * i
            for split in ("train", "test"):
                _write(tmp_path / split / name / "sharp" / f"{i:06d}.png", sharp)
                _write(tmp_path / split / name / "blur" / f"{i:06d}.png", 255 - sharp)
    return tmp_path


def test_pairs_are_aligned_cropped_and_in_range(gopro: Path) -> None:
    ds = GoProDataset(gopro, split="train", crop=24, seed=3)
    assert len(ds) == 2 * FRAMES
    item = ds[4]
    assert item["blurred"].shape == item["sharp"].shape == (1, 3, 24, 24)
    assert item["blurred"].dtype == torch.float32 and 0 <= item["sharp"].min() and item["sharp"].max() <= 1
    assert torch.allclose(item["blurred"], 1 - item["sharp"], atol=1e-6)


def test_windows_share_one_crop_and_flip(gopro: Path) -> None:
    ds = GoProDataset(gopro, split="train", window=3, stride=1, crop=(16, 32), seed=0)
    assert len(ds) == 2 * (FRAMES - 3 + 1)
    for index in range(len(ds)):
        sharp = ds[index]["sharp"]  # (3, 3, 16, 32)
        steps = (sharp[1:] - sharp[:-1]) * 255
        assert torch.allclose(steps, torch.full_like(steps, 10.0), atol=1e-3)


def test_items_depend_on_seed_epoch_and_index_only(gopro: Path) -> None:
    a, b = GoProDataset(gopro, crop=16, seed=1), GoProDataset(gopro, crop=16, seed=1)
    assert torch.equal(a[3]["sharp"], b[3]["sharp"])
    crops = {a[3]["sharp"].sum().item()}
    for epoch in range(1, 6):
        a.set_epoch(epoch)
        crops.add(a[3]["sharp"].sum().item())
    assert len(crops) > 1  # a new epoch draws new crops
    full = GoProDataset(gopro, split="test", crop=None, flips=False)
    assert full[0]["sharp"].shape == (1, 3, H, W)


def test_gopro_errors_name_the_problem(gopro: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        GoProDataset(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="allowed: train, test"):
        scan_gopro(gopro, "val")
    with pytest.raises(ValueError, match="larger than the frames"):
        GoProDataset(gopro, crop=512)[0]
    seq = gopro / "train" / "GOPR0001_11_00"
    (seq / "blur" / "000004.png").unlink()
    with pytest.raises(ValueError, match="4 blur frames but 5 sharp frames"):
        scan_gopro(gopro, "train")
    (seq / "blur" / "000004.png").write_bytes(b"not a png")
    ds = GoProDataset(gopro, flips=False, crop=None)
    with pytest.raises(ValueError, match="cannot read image .*000004.png"):
        ds[4]
    (seq / "blur" / "000004.png").rename(seq / "blur" / "000009.png")
    with pytest.raises(ValueError, match="names must match"):
        scan_gopro(gopro, "train")
    with pytest.raises(FileNotFoundError, match="missing folder .*blur_gamma"):
        scan_gopro(gopro, "test", blur_kind="blur_gamma")


def test_synthetic_items_are_deterministic_and_loader_safe() -> None:
    config = ShakeConfig(compression=None)
    ds = SyntheticDataset([skimage_photos()], length=4, frames=2, height=48, width=64, config=config, seed=5)
    item = ds[1]
    assert item["blurred"].shape == item["sharp"].shape == (2, 3, 48, 64)
    assert item["blurred"].dtype == torch.float32
    assert torch.equal(ds[1]["blurred"], item["blurred"]) and not torch.equal(ds[2]["sharp"], item["sharp"])
    other = SyntheticDataset([skimage_photos()], length=4, frames=2, height=48, width=64, config=config, seed=6)
    assert not torch.equal(other[1]["blurred"], item["blurred"])
    # Worker processes see the same items as the main process (no global RNG involved).
    batches = list(DataLoader(ds, batch_size=2, num_workers=2))
    assert torch.equal(batches[0]["blurred"][1], item["blurred"])


@pytest.fixture()
def video(tmp_path: Path, photo: np.ndarray) -> Path:
    path = tmp_path / "pan.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 128, 96, "yuv420p"
        stream.options = {"g": "4", "crf": "18"}  # short GOPs so reads really seek
        for i in range(12):
            frame = np.ascontiguousarray(photo[100:196, 4 * i:4 * i + 128])
            out.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        out.mux(stream.encode(None))
    return path


def test_video_source_seeks_to_the_right_frames(video: Path) -> None:
    source = open_source(video)
    assert isinstance(source, VideoFile) and len(source) == 12
    with av.open(str(video)) as container:
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert np.array_equal(source.read_frames(5, 4), np.stack(decoded[5:9]))
    assert np.array_equal(source.read(11), decoded[11])
    with pytest.raises(IndexError, match="outside"):
        source.read_frames(10, 3)
    ds = SyntheticDataset([source], length=2, frames=3, height=64, width=64, per_output=3, seed=0)
    assert ds[0]["sharp"].shape == (3, 3, 64, 64)
    with pytest.raises(ValueError, match="a clip needs 15"):
        SyntheticDataset([source], length=2, frames=5, per_output=3)


def test_sources_refuse_missing_empty_and_broken_inputs(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        image_folder(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no images"):
        image_folder(tmp_path / "empty")
    (tmp_path / "broken.mp4").write_bytes(b"\x00" * 64)
    with pytest.raises(ValueError, match="broken.mp4"):
        open_source(tmp_path / "broken.mp4")
    with pytest.raises(FileNotFoundError, match="'skimage'"):
        open_source(tmp_path / "missing.mov")
    assert len(open_source("skimage")) == 6


def test_rendered_folder_reads_back_as_gopro_with_identical_pixels(tmp_path: Path) -> None:
    synth = SyntheticDataset([open_source("skimage")], length=2, frames=3, height=48, width=64, seed=5)
    assert render_folder(synth, tmp_path, "train") == 6
    back = GoProDataset(tmp_path, split="train", window=3, crop=None, flips=False)
    assert len(back) == 2
    for i in range(2):
        for key in ("blurred", "sharp"):
            assert torch.equal(back[i][key], synth[i][key])


def test_detail_tells_flat_from_textured(photo: np.ndarray) -> None:
    flat = np.full((1, 32, 32, 3), 120, np.uint8)
    ramp = np.broadcast_to(np.arange(32, dtype=np.uint8)[None, None, :, None], (1, 32, 32, 3))
    assert detail(flat) == 0.0
    assert detail(ramp) == pytest.approx(1.0, abs=1e-5)  # one level per column: |dx| = 1, |dy| = 0
    assert detail(photo[None, 100:164, 150:214]) > 5  # real photo content


def _flat_and_textured_gopro(root: Path, photo: np.ndarray) -> Path:
    # One sky-like sequence (a constant frame) beside three of photo content.
    for s in range(4):
        for i in range(3):
            frame = np.full((H, W, 3), 140, np.uint8) if s == 0 else photo[s * 40:s * 40 + H, i:i + W]
            for kind in ("sharp", "blur"):
                _write(root / "train" / f"seq{s}" / kind / f"{i:06d}.png", frame)
    return root


def test_min_detail_skips_flat_windows(tmp_path: Path, photo: np.ndarray) -> None:
    root = _flat_and_textured_gopro(tmp_path, photo)
    keep = GoProDataset(root, split="train", window=1, crop=24, seed=0)
    skip = GoProDataset(root, split="train", window=1, crop=24, seed=0, min_detail=2.5)
    flat = lambda item: bool(item["sharp"].max() == item["sharp"].min())  # noqa: E731
    assert sum(flat(keep[i]) for i in range(len(keep))) == 3  # the flat sequence's 3 windows, unskipped
    assert not any(flat(skip[i]) for i in range(len(skip)))
    # Textured windows are left as they were, and the re-draws are deterministic.
    assert all(torch.equal(skip[i]["sharp"], keep[i]["sharp"]) for i in range(3, len(keep)))
    assert torch.equal(skip[0]["sharp"], skip[0]["sharp"])
    # A set of only flat windows still yields items (the last draw is kept) instead of looping forever.
    for i in range(2):
        _write(tmp_path / "sky" / "train" / "seq0" / "sharp" / f"{i:06d}.png", np.full((H, W, 3), 140, np.uint8))
        _write(tmp_path / "sky" / "train" / "seq0" / "blur" / f"{i:06d}.png", np.full((H, W, 3), 140, np.uint8))
    assert flat(GoProDataset(tmp_path / "sky", split="train", window=1, crop=24, min_detail=2.5)[1])


def test_min_detail_redraws_flat_synthetic_clips(tmp_path: Path, photo: np.ndarray) -> None:
    _write(tmp_path / "src" / "a_flat.png", np.full((96, 96, 3), 90, np.uint8))
    _write(tmp_path / "src" / "b_photo.png", np.ascontiguousarray(photo[:96, :96]))
    config = ShakeConfig(compression=None, noise=None)
    kw = dict(length=12, frames=1, height=48, width=48, config=config, seed=2)
    keep = SyntheticDataset([open_source(tmp_path / "src")], **kw)
    skip = SyntheticDataset([open_source(tmp_path / "src")], **kw, min_detail=2.5)
    details = lambda ds: [detail((ds[i]["sharp"].permute(0, 2, 3, 1) * 255).round().byte().numpy())  # noqa: E731
                          for i in range(len(ds))]
    assert min(details(keep)) < 1 and min(details(skip)) >= 2.5


def test_image_folders_decode_each_photo_once_and_share_it_read_only(tmp_path: Path, photo: np.ndarray,
                                                                      monkeypatch) -> None:
    _write(tmp_path / "a.png", photo)
    folder = image_folder(tmp_path)
    calls = []
    from vdeblur.train.synth import sources

    real = sources.read_rgb
    monkeypatch.setattr(sources, "read_rgb", lambda path: calls.append(path) or real(path))
    first, again = folder.read(0), folder.read(0)
    assert first is again and len(calls) == 1 and np.array_equal(first, photo)
    with pytest.raises(ValueError, match="read-only"):
        first[0, 0] = 0  # a cached photo is shared by every later clip: nobody may draw on it


def test_dead_leaves_pool_spec_and_cache() -> None:
    pool = open_source("deadleaves:3")
    assert len(pool) == 3
    assert pool.read(1) is pool.read(1) and not np.array_equal(pool.read(0), pool.read(1))
    # The pool's images are the first images of the unbounded source (same seed): only the count differs.
    assert np.array_equal(pool.read(2), open_source("deadleaves").read(2))
    for bad in ("deadleaves:", "deadleaves:0", "deadleaves:many"):
        with pytest.raises(ValueError, match="pool size after 'deadleaves:'"):
            open_source(bad)


def test_shake_config_defaults_are_the_renderers_defaults_and_choices_are_checked() -> None:
    from vdeblur.train.synth.clip import shake_config

    assert shake_config() == ShakeConfig()
    quiet = shake_config(blur_px=(3, 20), noise="none", compression="h264", compression_probability=1.0, h264_crf=(12, 12))
    assert quiet.blur_px == (3.0, 20.0) and quiet.noise is None
    assert (quiet.compression.kind, quiet.compression.probability, quiet.compression.h264_crf) == ("h264", 1.0, (12, 12))
    with pytest.raises(ValueError, match="noise 'loud' is not allowed"):
        shake_config(noise="loud")


def test_region_rendering_cuts_the_window_from_the_photo_itself(photo: np.ndarray) -> None:
    class One:  # one photo, as an image folder reads it
        name = "one photo"

        def __len__(self) -> int:
            return 1

        def read(self, index: int) -> np.ndarray:
            return photo

    still = ShakeConfig(blur_px=(0.0, 0.0), noise=None, compression=None)  # no shake: the views copy the source
    ds = SyntheticDataset([One()], length=6, frames=2, height=48, width=64, config=still, scale=(1.0, 1.0),
                          region_margin=16)
    for index in range(len(ds)):
        sharp = (ds[index]["sharp"][0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        assert np.array_equal(sharp, (ds[index]["blurred"][0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
        found = cv2.matchTemplate(photo, sharp, cv2.TM_SQDIFF)
        y, x = np.unravel_index(found.argmin(), found.shape)
        assert np.array_equal(photo[y:y + 48, x:x + 64], sharp)  # an exact copy of a window of the photo
        assert 16 <= y <= photo.shape[0] - 48 - 16 and 16 <= x <= photo.shape[1] - 64 - 16  # the margin inside it
    assert not torch.equal(ds[0]["sharp"], ds[1]["sharp"]) and torch.equal(ds[2]["sharp"], ds[2]["sharp"])
    scaled = SyntheticDataset([One()], length=2, frames=2, height=48, width=64, scale=(0.3, 0.5), region_margin=24)
    assert scaled[0]["blurred"].shape == (2, 3, 48, 64) and torch.equal(scaled[1]["sharp"], scaled[1]["sharp"])
    with pytest.raises(ValueError, match="region_margin must be >= 0"):
        SyntheticDataset([One()], length=1, region_margin=-1)


def test_data_path_benchmark_prints_both_paths(capsys) -> None:
    from vdeblur.benchmarks import data_paths

    data_paths.main(["--source", "skimage", "--batches", "1", "--batch", "2", "--crop", "64", "--clips", "2",
                     "--region-margin", "16"])
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ") and "CPU-s" not in line]
    assert [r.split(" | ")[0] for r in rows] == ["| pre-rendered (gopro)", "| fresh, whole photo",
                                                  "| fresh, region (margin 16)"]
    assert rows[0].endswith("| 1.00x |") and all(float(r.split(" | ")[1]) > 0 for r in rows)
