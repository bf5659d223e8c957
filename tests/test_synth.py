"""Blur synthesis: determinism, linear-light averaging, blur magnitude, kernels, noise, compression, moving objects."""

from dataclasses import replace

import cv2
import numba
import numpy as np
import pytest

from vdeblur.train.synth import CameraConfig, CompressionConfig, NoiseConfig, ShakeConfig, render_shake_clip, render_video_clip
from vdeblur.train.synth.camera import random_camera_path
from vdeblur.train.synth.degrade import (_CODE_FROM, _CODE_START, SRGB_TO_LINEAR, _table_code, degrade_clip,
                                         h264_roundtrip, jpeg_roundtrip, linear_to_srgb, srgb_codes, srgb_to_linear)
from vdeblur.train.synth.temporal import subframe_count
from vdeblur.train.synth.trajectories import clip_kernels, rasterize_kernel

CLEAN = dict(noise=None, compression=None)


@pytest.mark.parametrize("mode", ["temporal", "kernel"])
def test_same_seed_same_clip_other_seed_other_clip(photo: np.ndarray, mode: str) -> None:
    config = ShakeConfig(mode=mode, noise=NoiseConfig(probability=1.0), compression=CompressionConfig(kind="h264", probability=1.0))
    a = render_shake_clip(photo, frames=3, height=64, width=80, seed=7, config=config)
    b = render_shake_clip(photo, frames=3, height=64, width=80, seed=7, config=config)
    c = render_shake_clip(photo, frames=3, height=64, width=80, seed=8, config=config)
    assert a[0].shape == a[1].shape == (3, 64, 80, 3) and a[0].dtype == a[1].dtype == np.uint8
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_blur_is_strong_where_asked_and_frames_move(photo: np.ndarray) -> None:
    def error(blur: float) -> float:
        config = ShakeConfig(mode="temporal", blur_px=(blur, blur), **CLEAN)
        blurred, sharp = render_shake_clip(photo, frames=4, height=128, width=128, seed=3, config=config)
        return float(np.abs(blurred.astype(float) - sharp).mean())

    assert error(2.0) < error(8.0) < error(30.0)
    config = ShakeConfig(mode="temporal", blur_px=(20.0, 20.0), **CLEAN)
    _, sharp = render_shake_clip(photo, frames=3, height=128, width=128, seed=3, config=config)
    assert not np.array_equal(sharp[0], sharp[1])  # the camera moves between frames, not only within them


def test_camera_path_blurs_by_the_requested_length() -> None:
    rng = np.random.default_rng(0)
    for blur in (3.0, 30.0):
        path = random_camera_path(rng, CameraConfig(), frames=8, height=256, width=256, blur_px=blur, duty=0.5)
        lengths = path.exposure_lengths(np.arange(8.0), 0.5)
        assert lengths.mean() == pytest.approx(blur, rel=0.05)
        # Smooth in time: consecutive frames do not jump from sharp to heavily blurred.
        assert np.abs(np.diff(lengths)).max() < 1.5 * blur


def test_temporal_average_is_in_linear_light(photo: np.ndarray) -> None:
    # No shake: a "video" whose content moves 6 px per frame blurs only by averaging frames.
    video = np.stack([np.roll(photo, 6 * i, axis=1) for i in range(6)])
    config = ShakeConfig(blur_px=(0.0, 0.0), mode="temporal", **CLEAN)
    blurred, sharp = render_video_clip(video, frames=2, height=96, width=96, seed=1, per_output=3, config=config)
    # Find the window: the sharp target is the middle source frame, copied exactly.
    match = cv2.matchTemplate(video[1], sharp[0], cv2.TM_SQDIFF)
    y, x = np.unravel_index(np.argmin(match), match.shape)
    assert np.array_equal(sharp[0], video[1, y:y + 96, x:x + 96])
    window = video[0:3, y:y + 96, x:x + 96]
    linear_mean = linear_to_srgb(srgb_to_linear(window).mean(axis=0))
    assert np.abs(blurred[0].astype(int) - linear_mean).max() <= 1
    # Averaging sRGB codes instead would be darker; make sure the test can tell the two apart.
    assert np.abs(window.astype(float).mean(axis=0) - linear_mean).max() > 10


def test_srgb_round_trip_is_exact() -> None:
    codes = np.arange(256, dtype=np.uint8).reshape(16, 16, 1).repeat(3, axis=2)
    assert np.array_equal(linear_to_srgb(srgb_to_linear(codes)), codes)
    # Any (..., 3) layout decodes through the same table: video stacks, strided views.
    video = np.random.default_rng(2).integers(0, 256, (3, 20, 30, 3), dtype=np.uint8)
    for view in (video, video[:, ::2, 1::3], video[0]):
        assert np.array_equal(srgb_to_linear(view), SRGB_TO_LINEAR[view])


@numba.njit
def _through_table(values: np.ndarray) -> np.ndarray:
    out = np.empty(values.shape[0], dtype=np.uint8)
    for i in range(values.shape[0]):
        out[i] = _table_code(values[i], _CODE_START, _CODE_FROM)
    return out


def test_srgb_encoding_table_matches_the_formula_at_every_code_boundary() -> None:
    # The encoder counts thresholds instead of taking a power per value; it must give the formula's code
    # on both sides of every boundary, where a rounding slip would show, and anywhere else.
    edges = _CODE_FROM[1:]
    values = np.concatenate([edges, np.nextafter(edges, -1.0), np.nextafter(edges, 2.0), [-0.5, 0.0, 1.0, 1.5],
                             np.random.default_rng(0).uniform(-0.05, 1.05, 200_000)])
    assert np.array_equal(_through_table(values), srgb_codes(values))
    singles = values.astype(np.float32)  # noiseless frames reach the table as float32
    assert np.array_equal(linear_to_srgb(singles.reshape(-1, 1, 1).repeat(3, axis=2))[:, 0, 0],
                          srgb_codes(singles.astype(np.float64)))
    assert len(np.unique(srgb_codes(edges))) == 255  # one threshold opens each code


def test_noisy_srgb_encoding_is_the_formula_on_the_noisy_value() -> None:
    linear = np.random.default_rng(1).uniform(0, 1, (64, 64, 3)).astype(np.float32) ** 2.2
    shot, read = 3e-3, 2e-3
    got = linear_to_srgb(linear, (shot, read), np.random.default_rng(7))
    normals = np.random.default_rng(7).standard_normal((64 * 64, 3), dtype=np.float32).reshape(linear.shape)
    v = linear.astype(np.float64)
    noisy = v + np.sqrt(np.maximum(shot * v + read * read, 0.0)) * normals.astype(np.float64)
    assert np.array_equal(got, srgb_codes(noisy.ravel()).reshape(linear.shape))


def test_subframes_are_odd_and_dense_enough() -> None:
    for length in (0.0, 1.0, 7.3, 40.0):
        n = subframe_count(length, 1.0, max_count=99)
        assert n % 2 == 1 and length / max(n - 1, 1) <= 1.0
    assert subframe_count(500.0, 1.0, max_count=61) == 61


def test_kernel_of_a_straight_path_is_a_centred_line() -> None:
    points = np.stack([np.linspace(-10, 10, 200), np.zeros(200)], axis=1)
    k = rasterize_kernel(points)
    assert k.shape[0] % 2 == 1 and k.sum() == pytest.approx(1.0, abs=1e-5)
    rows = np.nonzero(k.sum(axis=1) > 1e-6)[0]
    cols = np.nonzero(k.sum(axis=0) > 1e-6)[0]
    c = k.shape[0] // 2
    assert list(rows) == [c] and cols.min() == c - 10 and cols.max() == c + 10


def test_walk_kernels_grow_with_blur_and_are_curved_paths() -> None:
    small, _ = clip_kernels(np.random.default_rng(5), 4, np.full(4, 4.0), 0.5)
    large, centres = clip_kernels(np.random.default_rng(5), 4, np.full(4, 30.0), 0.5)
    assert centres.shape == (4, 2)
    for ks, kl in zip(small, large):
        assert ks.shape[0] < kl.shape[0]
        # A path, not a Gaussian haze: most of the kernel's support is empty.
        assert (kl > 0).mean() < 0.3


def test_noise_grows_with_level_and_compression_stays_close(photo: np.ndarray) -> None:
    linear = [srgb_to_linear(photo[:64, :64])] * 2
    clean = degrade_clip(linear, np.random.default_rng(0), None, None)
    weak = degrade_clip(linear, np.random.default_rng(0), NoiseConfig(1.0, (1e-4, 1e-4), (2e-4, 2e-4)), None)
    strong = degrade_clip(linear, np.random.default_rng(0), NoiseConfig(1.0, (3e-3, 3e-3), (3e-3, 3e-3)), None)
    assert 0 < np.abs(weak.astype(float) - clean).mean() < np.abs(strong.astype(float) - clean).mean()
    assert not np.array_equal(strong[0], strong[1])  # fresh noise every frame
    odd = photo[:33, :47]
    for out in (jpeg_roundtrip(odd, 80)[None], h264_roundtrip(np.stack([odd, odd]), 23)):
        assert out.shape[1:] == odd.shape
        assert np.abs(out.astype(float) - odd).mean() < 8


def test_h264_round_trip_is_repeatable(photo: np.ndarray) -> None:
    # x264's mbtree once made these bytes vary between runs for a few CRFs; seeds must pin clips.
    config = ShakeConfig(mode="kernel", noise=NoiseConfig(probability=1.0), compression=None)
    noisy, _ = render_shake_clip(photo, frames=3, height=64, width=80, seed=7, config=config)
    for crf in range(18, 23):
        first = h264_roundtrip(noisy, crf)
        assert all(np.array_equal(first, h264_roundtrip(noisy, crf)) for _ in range(3))


def test_bad_inputs_name_what_is_allowed(photo: np.ndarray) -> None:
    with pytest.raises(ValueError, match="allowed: temporal, kernel, mixed"):
        ShakeConfig(mode="gaussian")
    with pytest.raises(ValueError, match="blur_px"):
        ShakeConfig(blur_px=(0.0, 10.0))
    with pytest.raises(ValueError, match="allowed: none, jpeg, h264, mixed"):
        CompressionConfig(kind="webp")
    with pytest.raises(ValueError, match="smaller than the requested 600x64"):
        render_shake_clip(photo, frames=1, height=64, width=600, seed=0)
    with pytest.raises(ValueError, match="uint8"):
        render_shake_clip(photo.astype(np.float32), frames=1, height=64, width=64, seed=0)
    with pytest.raises(ValueError, match="need 9 video frames"):
        render_video_clip(np.stack([photo] * 4), frames=3, height=64, width=64, seed=0, per_output=3)


def test_dead_leaves_are_deterministic_dense_and_power_law() -> None:
    from vdeblur.train.synth.deadleaves import DeadLeaves, DeadLeavesConfig, power_law_radii
    from vdeblur.train.synth.sources import open_source

    small = DeadLeavesConfig(size=96, discs=600)
    source = DeadLeaves(count=3, seed=5, config=small)
    a, b = source.read(1), DeadLeaves(count=3, seed=5, config=small).read(1)
    assert a.shape == (96, 96, 3) and a.dtype == np.uint8 and np.array_equal(a, b)
    assert not np.array_equal(a, source.read(2))
    # Edges everywhere, at every scale: strong gradients over a good share of the image.
    grad = np.abs(np.diff(a.astype(np.int16), axis=1)).max(axis=2)
    assert (grad > 20).mean() > 0.05
    # Radii follow r^-alpha: the fitted log-log slope of their histogram is close to -alpha.
    radii = power_law_radii(np.random.default_rng(0), 200_000, DeadLeavesConfig(alpha=3.0, r_min=1, r_max=100))
    hist, edges = np.histogram(radii, bins=np.geomspace(1, 100, 12))
    density = hist / np.diff(edges)
    slope = np.polyfit(np.log(np.sqrt(edges[1:] * edges[:-1])), np.log(density), 1)[0]
    assert -3.2 < slope < -2.8 and radii.min() >= 1 and radii.max() <= 100
    assert isinstance(open_source("deadleaves"), DeadLeaves)
    with pytest.raises(IndexError, match="outside dead leaves"):
        source.read(3)
    with pytest.raises(ValueError, match="invalid dead-leaves config"):
        DeadLeavesConfig(r_min=5, r_max=2)


def _builtin_font(folder) -> None:
    """Pillow's built-in face written out as a font file: a font folder without downloads."""
    from PIL import ImageFont

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "builtin.ttf").write_bytes(ImageFont.load_default(12).font_bytes)


def test_rendered_text_is_deterministic_and_full_of_sharp_strokes(tmp_path) -> None:
    from vdeblur.train.synth.text import RenderedText, TextConfig, font_files

    small = TextConfig(size=128)
    source = RenderedText(count=3, seed=5, config=small)
    a = source.read(1)
    assert a.shape == (128, 128, 3) and a.dtype == np.uint8 and not a.flags.writeable
    assert np.array_equal(a, RenderedText(count=3, seed=5, config=small).read(1))
    assert not np.array_equal(a, source.read(2))
    with pytest.raises(IndexError, match="outside rendered text"):
        source.read(3)
    # Strokes: steep edges, and far more fine detail than the same image seen through a 1.5 px blur.
    images = [RenderedText(count=4, seed=1, config=small).read(i).astype(np.float32) for i in range(4)]
    for image in images:
        grad = np.abs(np.diff(image, axis=1)).max(axis=2)
        assert (grad > 60).mean() > 0.01
        fine = image - cv2.GaussianBlur(image, (0, 0), 1.5)
        assert fine.std() > 8
    _builtin_font(tmp_path / "fonts")
    fonts = font_files(tmp_path / "fonts")
    with_files = RenderedText(count=2, seed=5, fonts=fonts, config=small)
    assert "1 fonts" in with_files.name and with_files.read(0).shape == (128, 128, 3)
    with pytest.raises(ValueError, match="glyph height ranges"):
        TextConfig(small_px=(10.0, 5.0))


def test_procedural_source_specs_and_their_errors(tmp_path) -> None:
    from vdeblur.train.synth.deadleaves import DeadLeaves
    from vdeblur.train.synth.sources import open_source
    from vdeblur.train.synth.text import RenderedText

    assert isinstance(open_source("text"), RenderedText) and len(open_source("text:7")) == 7
    assert len(open_source("deadleaves:5")) == 5 and isinstance(open_source("deadleaves"), DeadLeaves)
    _builtin_font(tmp_path / "fonts")
    pooled = open_source(f"text:4:{tmp_path / 'fonts'}")
    assert isinstance(pooled, RenderedText) and len(pooled) == 4 and len(pooled.fonts) == 1
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("no fonts here")
    for spec, error, message in [("text:0", ValueError, "whole number >= 1"), ("text:x", ValueError, "whole number"),
                                 ("deadleaves:4:fonts", ValueError, "takes a pool size only"),
                                 (f"text:4:{tmp_path / 'nowhere'}", FileNotFoundError, "fetch_fonts.sh"),
                                 (f"text:4:{tmp_path / 'empty'}", ValueError, "holds no fonts")]:
        with pytest.raises(error, match=message):
            open_source(spec)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "bad.ttf").write_bytes(b"not a font")
    with pytest.raises(ValueError, match="bad.ttf does not load"):
        open_source(f"text:2:{broken}")
    with pytest.raises(FileNotFoundError, match="'text\\[:N\\[:FONT_FOLDER\\]\\]'"):
        open_source(tmp_path / "missing.mp4")


def test_render_dataset_takes_blur_scale_and_prefix(tmp_path) -> None:
    import json

    from vdeblur.train.data import scan_gopro
    from vdeblur.train.synth.render_dataset import main

    for prefix in ("ph", "dl"):
        main(["--source", "deadleaves", "--out", str(tmp_path), "--split", "train", "--sequences", "2", "--frames", "2",
              "--size", "48x64", "--blur-px", "4", "6", "--scale", "0.2", "0.3", "--prefix", prefix])
    names = [s.name for s in scan_gopro(tmp_path, "train")]
    assert names == ["dl00000", "dl00001", "ph00000", "ph00001"]
    record = json.loads((tmp_path / "train-dl.json").read_text())
    assert record["blur_px"] == [4.0, 6.0] and record["scale"] == [0.2, 0.3] and record["frames_written"] == 4
    with pytest.raises(SystemExit):
        main(["--source", "deadleaves", "--out", str(tmp_path), "--blur-px", "6", "4"])


def test_render_dataset_clean_h264_variant_keeps_the_blur_and_changes_only_the_degradation(tmp_path, capsys) -> None:
    import json

    from vdeblur.train.synth.render_dataset import main

    args = ["--source", "deadleaves", "--split", "test", "--sequences", "2", "--frames", "3", "--size", "48x64",
            "--seed", "5"]
    for name, extra in {"default": [], "clean": ["--noise", "none", "--h264-crf", "12"]}.items():
        main([*args, "--out", str(tmp_path / name), *extra])
    read = lambda name, kind: np.stack([cv2.imread(str(tmp_path / name / "test" / f"seq0000{i}" / kind / f"{t:06d}.png"))
                                        for i in range(2) for t in range(3)]).astype(float)  # noqa: E731
    assert np.array_equal(read("default", "sharp"), read("clean", "sharp"))  # same seed: same clips
    assert not np.array_equal(read("default", "blur"), read("clean", "blur"))
    record = json.loads((tmp_path / "clean" / "test-seq.json").read_text())
    assert record["noise"] == "none" and record["h264_crf"] == 12
    assert json.loads((tmp_path / "default" / "test-seq.json").read_text())["h264_crf"] is None
    with pytest.raises(SystemExit):
        main([*args, "--out", str(tmp_path / "bad"), "--h264-crf", "60"])
    assert "h264_crf must be a range within 0..51" in capsys.readouterr().err


def test_moving_objects_cross_the_view_on_their_own_paths_and_their_masks_say_where(photo: np.ndarray) -> None:
    from vdeblur.train.synth.clip import render_object_clip
    from vdeblur.train.synth.objects import ObjectsConfig

    plain = ShakeConfig(mode="temporal", blur_px=(4.0, 6.0), noise=None, compression=None)
    moving = replace(plain, objects=ObjectsConfig(count=(2, 2), speed_px=(10.0, 12.0)))
    _, sharp, none = render_object_clip(photo, frames=4, height=96, width=128, seed=5, config=plain)
    blurred, with_objects, masks = render_object_clip(photo, frames=4, height=96, width=128, seed=5, config=moving)
    assert not none.any() and masks.shape == (4, 96, 128) and all(m.mean() > 0.01 for m in masks)
    # The camera is the same draw; only where objects are does the sharp frame change.
    diff = np.abs(with_objects.astype(int) - sharp.astype(int)).max(axis=-1)
    near = np.stack([cv2.dilate(m.astype(np.uint8), np.ones((11, 11), np.uint8)) > 0 for m in masks])  # + feathering
    assert diff[~near].max() == 0 and diff[masks].mean() > 5
    # They move on screen by about their speed per frame, whatever the camera does.
    centres = [np.argwhere(m).mean(axis=0) for m in masks]
    steps = [np.linalg.norm(b - a) for a, b in zip(centres, centres[1:])]
    assert all(2 < s < 20 for s in steps), steps
    # Without objects: the clips of before, draw for draw.
    again, _ = render_shake_clip(photo, frames=4, height=96, width=128, seed=5, config=plain)
    assert np.array_equal(render_object_clip(photo, frames=4, height=96, width=128, seed=5, config=plain)[0], again)
    assert blurred.shape == again.shape


def test_near_layers_move_by_their_share_more_than_the_background_and_nowhere_else(photo: np.ndarray) -> None:
    from vdeblur.train.synth.clip import render_object_clip
    from vdeblur.train.synth.objects import ParallaxConfig
    from vdeblur.train.synth.temporal import subframe_homographies, warp_view
    from vdeblur.train.synth.degrade import srgb_to_linear

    plain = ShakeConfig(mode="temporal", blur_px=(8.0, 10.0), noise=None, compression=None)
    deep = replace(plain, parallax=ParallaxConfig(count=(1, 1), size=(0.4, 0.4), gain=(0.45, 0.45)))
    _, sharp, none = render_object_clip(photo, frames=5, height=96, width=128, seed=4, config=plain)
    _, layered, masks = render_object_clip(photo, frames=5, height=96, width=128, seed=4, config=deep)
    assert not none.any() and masks.shape == (5, 96, 128) and all(m.mean() > 0.02 for m in masks)
    # The camera is the same draw; only the layer changes the sharp frames, and at the clip's middle
    # instant it sits where the background puts it: no seam.
    diff = np.abs(layered.astype(int) - sharp.astype(int)).max(axis=-1)
    near = np.stack([cv2.dilate(m.astype(np.uint8), np.ones((11, 11), np.uint8)) > 0 for m in masks])
    assert diff[~near].max() == 0
    assert diff[2][masks[2]].mean() < 2 and max(diff[t][masks[t]].mean() for t in (0, 4)) > 5

    # Aligned by the camera's true motion (what the engine's estimate aims at), the previous sharp frame
    # agrees with the current one outside the layer and not inside it.
    from vdeblur.train.synth.camera import random_camera_path
    from vdeblur.train.synth.clip import draw_shot
    rng = np.random.default_rng(4)
    _, blur, duty, center = draw_shot(rng, deep, photo.shape[:2], height=96, width=128)
    path = random_camera_path(rng, deep.camera, frames=5, height=96, width=128, blur_px=blur, duty=duty)
    views = [h[len(h) // 2] for h in subframe_homographies(path, frames=5, duty=duty, source_center=center)]
    linear = srgb_to_linear(layered[3])
    aligned = warp_view(linear, np.linalg.inv(views[3]) @ views[4], 96, 128, sharp=True)
    error = np.abs(aligned - srgb_to_linear(layered[4])).max(axis=-1)
    inner = cv2.erode(masks[4].astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
    outer = ~near[3] & ~near[4]
    outer[:8], outer[-8:], outer[:, :8], outer[:, -8:] = False, False, False, False  # the mirrored edge
    assert np.median(error[outer]) < 0.01 and np.median(error[inner]) > 0.05
    with pytest.raises(ValueError, match="gain must be a range within"):
        ParallaxConfig(gain=(0.5, 1.5))
