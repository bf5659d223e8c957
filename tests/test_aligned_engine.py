"""A model that takes its previous frame aligned by the global motion (input kind rgb+motion) through
the engine: resets, tiles, the CLI with the torch and ONNX Runtime backends, several streams at once."""

from pathlib import Path

import av
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import write_frames

from vdeblur.engine.backends import load_backend
from vdeblur.engine.cli import cli
from vdeblur.engine.stream import DeblurStream
from vdeblur.engine.tiling import TileSpec
from vdeblur.train.frames import from_uint8
from vdeblur.train.metrics import psnr_ssim_uint8


@pytest.fixture(scope="module")
def aligned_checkpoint(tmp_path_factory):
    """A small vdeblur_deep with the aligned previous frame, every zero-initialised branch given values."""
    from vdeblur.train.checkpoint import save_checkpoint
    from vdeblur.train.registry import build_model

    torch.manual_seed(3)
    model = build_model("vdeblur_deep", {"channels": (8, 16, 16, 16), "lstm_hidden": 8, "feedback": 4,
                                         "aligned_previous": True})
    with torch.no_grad():
        for p in model.parameters():
            if not p.any():
                p.normal_(0.0, 0.02)
    return save_checkpoint(tmp_path_factory.mktemp("aligned") / "aligned.safetensors", model)


def _pan(photo: np.ndarray, frames: int, height: int = 120, width: int = 200) -> list[np.ndarray]:
    return [np.ascontiguousarray(photo[100 + 2 * t:100 + 2 * t + height, 5 * t:5 * t + width]) for t in range(frames)]


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return psnr_ssim_uint8(from_uint8(a)[None], from_uint8(b)[None])[0]


def test_the_previous_frame_is_used_and_a_reset_forgets_it(aligned_checkpoint, photo) -> None:
    backend = load_backend(str(aligned_checkpoint), "torch", "cpu")
    frames = _pan(photo, 3)
    stream = DeblurStream(backend)
    carried = [stream.push(f) for f in frames]
    fresh = DeblurStream(backend).push(frames[2])
    assert _psnr(carried[2], fresh) < 60  # the previous frames changed frame 3
    stream.reset()
    assert np.array_equal(stream.push(frames[2]), fresh)  # after a reset: a first frame again


def test_tiles_estimate_the_motion_in_each_tile_and_stay_close_to_whole_frames(aligned_checkpoint, photo) -> None:
    backend = load_backend(str(aligned_checkpoint), "torch", "cpu")
    frames = _pan(photo, 3)
    whole_stream = DeblurStream(backend)
    whole = [whole_stream.push(f) for f in frames]
    big = DeblurStream(backend, tile=TileSpec(256, 32))  # one tile: the whole-frame path, bit for bit
    assert all(np.array_equal(big.push(f), w) for f, w in zip(frames, whole))
    tiled_stream = DeblurStream(backend, tile=TileSpec(96, 32))
    tiled = [tiled_stream.push(f) for f in frames]
    assert min(_psnr(t, w) for t, w in zip(tiled, whole)) > 40


def _read(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def test_cli_runs_it_on_torch_and_onnxruntime_alike_and_batches_streams(aligned_checkpoint, photo, tmp_path) -> None:
    pytest.importorskip("onnxruntime")
    src = write_frames(tmp_path / "in.mkv", _pan(photo, 5))
    lossless = ["--codec", "ffv1", "--pix-fmt", "bgr0", "--quiet", "--model", str(aligned_checkpoint)]
    outs = {}
    for backend in ("torch", "onnxruntime"):
        outs[backend] = tmp_path / f"{backend}.mkv"
        result = CliRunner().invoke(cli, [str(src), str(outs[backend]), "--backend", backend, *lossless])
        assert result.exit_code == 0, result.output
    torch_frames, ort_frames = _read(outs["torch"]), _read(outs["onnxruntime"])
    assert len(torch_frames) == len(ort_frames) == 5
    assert min(_psnr(a, b) for a, b in zip(torch_frames, ort_frames)) > 50
    # Two files at once, frames batched across them: each as it is alone.
    other = write_frames(tmp_path / "other.mkv", _pan(photo[::-1].copy(), 4))
    (tmp_path / "many").mkdir()
    result = CliRunner().invoke(cli, [str(src), str(other), str(tmp_path / "many"), "--streams", "2",
                                      "--backend", "torch", *lossless])
    assert result.exit_code == 0, result.output
    many = sorted((tmp_path / "many").iterdir())
    assert [p.name for p in many] == ["in.mkv", "other.mkv"]
    assert min(_psnr(a, b) for a, b in zip(_read(many[0]), torch_frames)) > 50


def test_motion_estimated_in_the_decode_stage_gives_what_the_step_would_estimate(aligned_checkpoint, photo,
                                                                                 tmp_path) -> None:
    from vdeblur.engine.pipeline import EncodeOptions, deblur_video

    frames = _pan(photo, 4)
    src = write_frames(tmp_path / "in.mkv", frames)
    backend = load_backend(str(aligned_checkpoint), "torch", "cpu")
    deblur_video(src, tmp_path / "out.mkv", backend, encode=EncodeOptions(codec="ffv1", crf=None, preset=None,
                                                                           pix_fmt="bgr0"))
    stream = DeblurStream(backend)  # no motion given: each step estimates it from its previous frame
    for got, f in zip(_read(tmp_path / "out.mkv"), frames, strict=True):
        assert np.array_equal(got, stream.push(f))
    # Tiles given the frame's motion (each in its own coordinates) stay close to whole frames too.
    from vdeblur.engine.pipeline import with_motion
    from vdeblur.engine.video_io import DecodedFrame

    whole, tiled = DeblurStream(backend), DeblurStream(backend, tile=TileSpec(96, 32))
    previous = None
    for f in frames:
        item = with_motion(DecodedFrame(f, None, 1, 0), previous)
        previous = f
        assert _psnr(tiled.push(f, item.motion), whole.push(f, item.motion)) > 40
