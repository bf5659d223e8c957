"""The CUDA paths against their CPU/FP32 references: FP16 and CUDA-graph replay (``vdeblur-export
parity``), the whole pipeline on the GPU against the CPU output, multi-stream batching on the GPU
against one file at a time, and ``torch.compile`` on CUDA.

NEVER RUN YET: this project has had no GPU; these tests skip here ("needs a CUDA GPU") and are the
``-m cuda`` selection that ``scripts/gpu_session.sh`` runs on a rented GPU machine. Each compares
against a reference computed in the same test, so a wrong device path fails it rather than skips.
"""

from pathlib import Path

import av
import numpy as np
import pytest
import torch
from click.testing import CliRunner

import vdeblur
from vdeblur.benchmarks.multistream import CountingBackend
from vdeblur.engine.backends import load_backend
from vdeblur.engine.multistream import deblur_many
from vdeblur.engine.pipeline import EncodeOptions, deblur_video
from vdeblur.export.cli import cli as export_cli
from vdeblur.export.parity import THRESHOLD_DB, check_parity
from vdeblur.train.checkpoint import load_checkpoint
from vdeblur.train.frames import from_uint8
from vdeblur.train.metrics import psnr

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

LOSSLESS = EncodeOptions(codec="ffv1", crf=None, preset=None, pix_fmt="bgr0")  # compare frames, not x264's choices


def _lossless_pan(path: Path, photo: np.ndarray, width: int, height: int, frames: int, y: int) -> Path:
    """A lossless clip (ffv1) of a slow pan over a real photograph."""
    with av.open(str(path), "w") as c:
        v = c.add_stream("ffv1", rate=24)
        v.width, v.height, v.pix_fmt = width, height, "bgr0"
        for t in range(frames):
            rgb = np.ascontiguousarray(photo[y:y + height, 3 * t:3 * t + width])
            c.mux(v.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        c.mux(v.encode(None))
    return path


def _decoded(path: Path) -> tuple[list[np.ndarray], list[float]]:
    with av.open(str(path)) as c:
        frames = list(c.decode(video=0))
        return [f.to_ndarray(format="rgb24") for f in frames], [float(f.pts * f.time_base) for f in frames]


def _min_psnr_db(got: list[np.ndarray], want: list[np.ndarray]) -> float:
    assert len(got) == len(want)
    return min(float(psnr(from_uint8(g)[None], from_uint8(w)[None], data_range=1.0)) for g, w in zip(got, want))


def _bundled_model() -> str:
    path = vdeblur.bundled_model_path()
    if not path.is_file():
        pytest.skip(f"no bundled default model at {path}: parity of random weights says little")
    return str(path)


def test_fp16_and_cuda_graphs_match_fp32_eager_on_real_frames_with_state_carried() -> None:
    """``vdeblur-export parity`` on 10 frames of the sample clip: worst frame above 45 dB on the GPU."""
    result = CliRunner().invoke(export_cli, ["parity", "--model", _bundled_model(), "--frames", "10",
                                             "--candidates", "torch-fp16,cuda-graphs"])
    assert result.exit_code == 0, result.output
    for candidate in ("torch-fp16", "cuda-graphs"):
        row = next(line for line in result.output.splitlines() if line.startswith(f"| {candidate} |"))
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[1].startswith("cuda") and cells[2] == "10", row  # ran on the GPU, every frame compared
        assert float(cells[3]) > THRESHOLD_DB and cells[-1] == "yes", row


def test_pipeline_on_cuda_matches_the_cpu_output(tmp_path: Path, fast_checkpoint, photo) -> None:
    """The whole engine (pinned upload, inference, copy-back in the encode thread) on the GPU, FP32
    and FP16, against the same clip through the CPU: same frames and timestamps, worst frame > 45 dB."""
    src = _lossless_pan(tmp_path / "in.mkv", photo, 256, 192, 8, 100)
    cpu = deblur_video(src, tmp_path / "cpu.mkv", load_backend(str(fast_checkpoint), "torch", "cpu"), encode=LOSSLESS)
    want, want_times = _decoded(tmp_path / "cpu.mkv")
    for name, backend in (("fp32", load_backend(str(fast_checkpoint), "torch", "cuda")),
                          ("fp16", load_backend(str(fast_checkpoint), "torch", "cuda", fp16=True))):
        assert backend.device.type == "cuda"
        stats = deblur_video(src, tmp_path / f"cuda-{name}.mkv", backend, encode=LOSSLESS)
        got, times = _decoded(tmp_path / f"cuda-{name}.mkv")
        assert stats.frames == cpu.frames == 8 and times == want_times
        assert _min_psnr_db(got, want) > THRESHOLD_DB, name
        inputs, _ = _decoded(src)
        assert _min_psnr_db(got, inputs) < 60, "the model changed nothing: this compares copies of the input"


def test_multistream_on_cuda_equals_each_file_alone(tmp_path: Path, fast_checkpoint, photo) -> None:
    """Two files of one size batched on the GPU give what each gives alone. As on the CPU
    (test_multistream), a batch of 2 may pick other convolution kernels than a batch of 1: one grey
    level on a rare pixel is allowed; a state mixed up between streams changes far more."""
    backend = load_backend(str(fast_checkpoint), "torch", "cuda")
    sources = [_lossless_pan(tmp_path / "a.mkv", photo, 128, 96, 8, 100),
               _lossless_pan(tmp_path / "b.mkv", photo, 128, 96, 6, 300)]
    counted = CountingBackend(backend)
    results = deblur_many([(s, tmp_path / f"many-{s.name}") for s in sources], counted, encode=LOSSLESS)
    assert [r.ok for r in results] == [True, True] and max(counted.calls) == 2  # really batched
    for src, result in zip(sources, results):
        deblur_video(src, tmp_path / f"one-{src.name}", backend, encode=LOSSLESS)
        got, got_times = _decoded(result.dst)
        want, want_times = _decoded(tmp_path / f"one-{src.name}")
        assert got_times == want_times
        diff = np.abs(np.stack(got).astype(int) - np.stack(want).astype(int))
        identical = float((diff == 0).mean())
        assert diff.max() <= 1 and identical > 1 - 1e-3, f"{src.name}: {identical:.6f} of values identical"


def test_torch_compile_inductor_on_cuda_matches_fp32_eager() -> None:
    """``--compile inductor`` on CUDA (FP16): the same 45 dB bar on 8 frames of the sample clip."""
    model, _ = load_checkpoint(_bundled_model())
    from vdeblur.engine.sample import render_sample

    frames = list(render_sample(frames_per_shot=8)[:8])
    result = check_parity(model, frames, ["torch-compile"])[0]
    assert result.status == "ok" and result.device.startswith("cuda"), result
    assert result.passed and result.min_psnr_db > THRESHOLD_DB, result
