"""The pipeline keeps everything but the blur: frames, timestamps, audio bytes, rotation, size."""

import re
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from conftest import make_clip

from vdeblur.engine.backends import load_backend
from vdeblur.engine.pipeline import EncodeOptions, deblur_video
from vdeblur.engine.stream import DeblurStream
from vdeblur.train.checkpoint import load_checkpoint
from vdeblur.train.padding import run_padded


def _probe(path: Path) -> dict:
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        frames = list(c.decode(video=0))
        info = {"times": [float(f.pts * f.time_base) for f in frames], "size": (v.width, v.height),
                "rate": v.average_rate, "rotation": frames[0].rotation, "types": sorted(s.type for s in c.streams),
                "rgb": [f.to_ndarray(format="rgb24") for f in frames]}
    with av.open(str(path)) as c:
        info["audio"] = [bytes(p) for p in c.demux(audio=0) if p.size] if c.streams.audio else []
    return info


@pytest.fixture(scope="module")
def backend(fast_checkpoint):
    return load_backend(str(fast_checkpoint), "torch", "cpu")


def test_round_trip_keeps_frames_timestamps_rate_and_audio_bytes(tmp_path: Path, backend) -> None:
    src, dst = tmp_path / "in.mp4", tmp_path / "out.mp4"
    make_clip(src, frames=15)
    stats = deblur_video(src, dst, backend)
    a, b = _probe(src), _probe(dst)
    assert stats.frames == 15 and len(b["times"]) == 15
    assert b["times"] == a["times"] and b["size"] == a["size"]
    # The container derives the average rate from frame durations; the last one may be rounded.
    assert abs(float(b["rate"]) / float(a["rate"]) - 1) < 2e-3
    assert b["types"] == ["audio", "video"] and b["audio"] == a["audio"] and len(a["audio"]) > 10
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4", "out.mp4"]  # no temp file left
    assert dst.stat().st_mode & 0o777 == src.stat().st_mode & 0o777  # not mkstemp's private 0600


def test_variable_frame_rate_timestamps_survive(tmp_path: Path, backend) -> None:
    src, dst = tmp_path / "vfr.mkv", tmp_path / "out.mkv"
    make_clip(src, frames=9, vfr=True, audio=True)
    deblur_video(src, dst, backend)
    times, out = _probe(src)["times"], _probe(dst)["times"]
    assert out == times and len(set(np.round(np.diff(out), 3))) > 1  # really variable, and kept


def test_rotation_is_kept(tmp_path: Path, backend) -> None:
    src, dst = tmp_path / "rot.mp4", tmp_path / "out.mp4"
    make_clip(src, frames=4, rotation=90, audio=True)  # with audio: its first packet writes the header
    deblur_video(src, dst, backend)
    assert _probe(src)["rotation"] == _probe(dst)["rotation"] != 0


def test_odd_size_keeps_its_size(tmp_path: Path, backend) -> None:
    src, dst = tmp_path / "odd.mkv", tmp_path / "out.mp4"
    make_clip(src, width=341, height=251, frames=3, audio=False, codec="ffv1", pix_fmt="yuv444p")
    deblur_video(src, dst, backend)
    out = _probe(dst)
    assert out["size"] == (341, 251) and len(out["times"]) == 3


def test_pipeline_equals_frame_by_frame_model_calls(tmp_path: Path, backend, fast_checkpoint) -> None:
    """Near-lossless RGB output (ffv1, bgr0): the pipeline's frames are run_padded's, state carried.

    swscale's rgb24 -> bgr0 step moves a handful of values by one grey level, so equality is
    checked to within 1 on at most 0.1 % of the values; a wrong state or an extra reset changes far more.
    """
    src, dst = tmp_path / "in.mkv", tmp_path / "out.mkv"
    make_clip(src, frames=6, audio=False, codec="ffv1", pix_fmt="bgr0")
    deblur_video(src, dst, backend, encode=EncodeOptions(codec="ffv1", crf=None, preset=None, pix_fmt="bgr0"))
    model, _ = load_checkpoint(fast_checkpoint)
    frames = _probe(src)["rgb"]
    state = model.initial_state(1, 64, 96)
    expected = []
    with torch.no_grad():
        for rgb in frames:
            out, state = run_padded(model, torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255, state)
            expected.append((out.clamp(0, 1)[0].permute(1, 2, 0) * 255 + 0.5).to(torch.uint8).numpy())
    got = _probe(dst)["rgb"]
    assert len(got) == 6
    for g, e in zip(got, expected):
        diff = np.abs(g.astype(int) - e.astype(int))
        assert diff.max() <= 1 and (diff > 0).mean() < 1e-3
    assert not np.array_equal(expected[0], frames[0])  # the model really changed the frames


def test_onnxruntime_backend_matches_torch(tmp_path: Path, fast_checkpoint) -> None:
    from vdeblur.export.onnx import export_onnx

    model, _ = load_checkpoint(fast_checkpoint)
    export_onnx(model, tmp_path / "fast.onnx")
    rng = np.random.default_rng(3)
    frames = [(rng.random((50, 70, 3)) * 255).astype(np.uint8) for _ in range(4)]
    torch_stream = DeblurStream(load_backend(str(fast_checkpoint), "torch", "cpu"))
    ort_stream = DeblurStream(load_backend(str(tmp_path / "fast.onnx"), "auto", "cpu"))
    # ONNX Runtime takes the threads --threads gives torch, not all cores of its own accord.
    assert ort_stream.backend.session.get_session_options().intra_op_num_threads == torch.get_num_threads()
    for f in frames:
        diff = np.abs(torch_stream.push(f).astype(int) - ort_stream.push(f).astype(int))
        assert diff.max() <= 1  # uint8 rounding of float outputs that agree to ~1e-5


class _Interrupting:
    """Wraps a backend and raises KeyboardInterrupt at a given frame, like Ctrl-C mid-file."""

    def __init__(self, inner, at: int) -> None:
        self.inner, self.at, self.calls = inner, at, 0
        self.device, self.pad_multiple, self.input_kind = inner.device, inner.pad_multiple, inner.input_kind
        self.is_recurrent, self.name = inner.is_recurrent, "interrupting"

    def initial_state(self, h: int, w: int, batch: int = 1):
        return self.inner.initial_state(h, w, batch)

    def run(self, frame, state):
        self.calls += 1
        if self.calls == self.at:
            raise KeyboardInterrupt
        return self.inner.run(frame, state)


def test_interrupted_run_leaves_nothing_and_keeps_existing_output(tmp_path: Path, backend) -> None:
    src, dst = tmp_path / "in.mp4", tmp_path / "out.mp4"
    make_clip(src, frames=12)
    with pytest.raises(KeyboardInterrupt):
        deblur_video(src, dst, _Interrupting(backend, at=5))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]
    dst.write_bytes(b"precious")
    with pytest.raises(KeyboardInterrupt):
        deblur_video(src, dst, _Interrupting(backend, at=3), overwrite=True)
    assert dst.read_bytes() == b"precious"  # replaced only by a finished output


def _peak_rss_during(run) -> int:
    """Peak resident memory (bytes) while ``run()`` runs: Linux resets the high-water mark on request."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError as e:  # a sandbox may forbid it
        pytest.skip(f"the peak RSS cannot be reset here ({e})")
    run()
    status = Path("/proc/self/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) * 1024


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux's resettable peak RSS")
def test_memory_is_bounded_by_the_queues_not_the_clip(tmp_path: Path, backend, one_thread) -> None:
    """A long clip's peak memory exceeds a 3-frame clip's by no more than the queues can hold.

    Every frame in flight is in one of the two queues or held by a stage (decode, inference and
    encode each hold one item, and one more can wait to be queued), and an item carries at most two
    frames (input and output): at most 2 * (2 * Q + 4) frames of 640x360 RGB, plus a fixed allowance
    for what the allocator keeps from one run to the next (up to 16 MB measured between two identical
    runs). Frames are measured as resident memory, not with tracemalloc, which does not see them
    (their buffers belong to FFmpeg and torch). x264's look-ahead would hold up to 40 frames of its
    own, so the output is encoded with "ultrafast", which has none.

    The bound cannot depend on how full the queues happen to be: it is what they can hold when full.
    It fails when memory grows with the clip: 100 frames hold 66 MB of RGB alone (93 MB measured
    with FFmpeg's frames) against a bound of 52 MB, and with a queue of unbounded size decoding
    (hundreds of frames/s) runs ahead of the model and holds nearly all of them.
    """
    from vdeblur.engine.pipeline import _QUEUE_FRAMES

    width, height, frames = 640, 360, 100
    frame_bytes = width * height * 3
    bound = 2 * (2 * _QUEUE_FRAMES + 4) * frame_bytes + 24 * 2**20
    assert frames * frame_bytes > bound  # keeping every frame could not pass
    encode = EncodeOptions(preset="ultrafast")
    short, long = tmp_path / "short.mkv", tmp_path / "long.mkv"
    make_clip(short, width=width, height=height, frames=3, audio=False, codec="mpeg4")
    make_clip(long, width=width, height=height, frames=frames, audio=False, codec="mpeg4")
    deblur_video(short, tmp_path / "warm.mkv", backend, encode=encode)  # first-run allocations: not the clip's
    base = _peak_rss_during(lambda: deblur_video(short, tmp_path / "short_out.mkv", backend, encode=encode))
    peak = _peak_rss_during(lambda: deblur_video(long, tmp_path / "long_out.mkv", backend, encode=encode))
    assert peak - base < bound, f"{(peak - base) / 2**20:.1f} MB over the 3-frame run; bound {bound / 2**20:.1f} MB"
