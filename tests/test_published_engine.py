"""Other projects' checkpoints through the whole engine: a video in, the authors' frames out.

The clips are lossless (FFV1, RGB) so the comparison with the authors' 8-bit outputs is exact up
to their conversion to 8 bits: NAFNet rounds as we do (equal), DeblurGAN-v2 truncates (we round:
at most one level above theirs).
"""

from __future__ import annotations

import lzma
from pathlib import Path

import av
import numpy as np
import pytest
from click.testing import CliRunner
from conftest import make_clip

from vdeblur.engine.cli import cli
from vdeblur.engine.cluster import TaskSettings, deblur_file
from vdeblur.engine.pipeline import EncodeOptions

FIXTURES = Path(__file__).parent / "fixtures" / "published"
CASES = {"nafnet": ("nafnet-width8.pth", "nafnet-width8.npz"),
         "deblurgan_v2_mobilenet": ("fpn_mobilenet-width16.h5", "fpn_mobilenet-width16.npz"),
         "deblurgan_v2_inception": ("fpn_inception-width16.h5", "fpn_inception-width16.npz")}
LOSSLESS = ["--codec", "ffv1", "--pix-fmt", "bgr0"]


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, tuple[Path, Path, np.ndarray]]:
    """Per case: (checkpoint, lossless clip with audio of the recorded frames, the authors' outputs)."""
    folder = tmp_path_factory.mktemp("published-engine")
    out = {}
    for case, (checkpoint, records) in CASES.items():
        path = folder / checkpoint
        path.write_bytes(lzma.decompress((FIXTURES / f"{checkpoint}.xz").read_bytes()))
        data = np.load(FIXTURES / records)
        clip = folder / f"{case}.mkv"
        make_clip(clip, codec="ffv1", pix_fmt="bgr0", images=data["frames"])
        out[case] = path, clip, data["frames_out"]
    return out


def decoded(path: Path) -> tuple[np.ndarray, int]:
    """(frames as (N, H, W, 3) uint8 RGB, number of audio streams)."""
    with av.open(str(path)) as c:
        audio = len(c.streams.audio)
        frames = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])
    return frames, audio


def assert_authors_frames(got: np.ndarray, authors: np.ndarray, case: str) -> None:
    assert got.shape == authors.shape
    diff = got.astype(int) - authors.astype(int)
    if case == "nafnet":
        assert not diff.any(), f"{np.count_nonzero(diff)} values differ"
    else:  # their astype(uint8) truncates where we round
        assert diff.min() >= 0 and diff.max() <= 1, (diff.min(), diff.max())


def vdeblur(*args: str) -> str:
    result = CliRunner().invoke(cli, [*args, "--quiet"])
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("case", CASES)
def test_video_through_vdeblur_is_the_authors_frame_by_frame(case: str, clips, tmp_path) -> None:
    checkpoint, clip, authors = clips[case]
    vdeblur(str(clip), str(tmp_path / "out.mkv"), "--model", str(checkpoint), *LOSSLESS)
    frames, audio = decoded(tmp_path / "out.mkv")
    assert audio == 1
    assert_authors_frames(frames, authors, case)


# FPN-Inception's export (54 M parameters whatever the head width) is tested at reduced depth in test_export_onnx.
@pytest.mark.parametrize("case", ["nafnet", "deblurgan_v2_mobilenet"])
def test_onnxruntime_backend_runs_their_file(case: str, clips, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("VDEBLUR_CACHE", str(tmp_path / "cache"))
    checkpoint, clip, authors = clips[case]
    vdeblur(str(clip), str(tmp_path / "out.mkv"), "--model", str(checkpoint), "--backend", "onnxruntime", *LOSSLESS)
    frames, _ = decoded(tmp_path / "out.mkv")
    # ONNX Runtime's float32 rounding differs from PyTorch's: a value next to a rounding boundary may
    # land one level off.
    assert np.abs(frames.astype(int) - authors.astype(int)).max() <= 1 + (case != "nafnet")
    assert list((tmp_path / "cache" / "onnx").glob(f"{'nafnet_local' if case == 'nafnet' else case}.fp32.*.onnx"))


def test_streams_batch_and_arch_override(clips, tmp_path) -> None:
    checkpoint, clip, authors = clips["nafnet"]
    other = tmp_path / "second.mkv"
    other.write_bytes(clip.read_bytes())
    # Two files batched into one model call per frame: each still gets the authors' frames.
    vdeblur(str(clip), str(other), str(tmp_path / "out"), "--model", str(checkpoint), "--streams", "2",
            "--arch", "nafnet", *LOSSLESS)
    for name in (clip.name, other.name):
        assert_authors_frames(decoded(tmp_path / "out" / name)[0], authors, "nafnet")
    # A `vdeblur batch` task, as a Ray worker runs it.
    settings = TaskSettings(str(checkpoint), device="cpu", encode=EncodeOptions("ffv1", 0, "medium", "bgr0"))
    result = deblur_file(str(clip), str(tmp_path / "task.mkv"), settings)
    assert result.ok and result.frames == len(authors)
    assert_authors_frames(decoded(tmp_path / "task.mkv")[0], authors, "nafnet")


def test_bad_arch_and_foreign_file_errors_are_one_line(clips, tmp_path) -> None:
    checkpoint, clip, _ = clips["nafnet"]
    for args, phrase in [(["--arch", "deblurgan_v2_mobilenet"], "matches no known layout"),
                         (["--arch", "pix2pix"], "reads no foreign checkpoint; allowed: nafnet_local, nafnet")]:
        result = CliRunner().invoke(cli, [str(clip), str(tmp_path / "o.mkv"), "--model", str(checkpoint), *args])
        assert result.exit_code == 1 and phrase in result.output and result.output.count("\n") == 1, result.output
        assert not (tmp_path / "o.mkv").exists()


def test_bench_reports_their_file_beside_ours(clips, tmp_path) -> None:
    import json

    from vdeblur.benchmarks.cli import bench

    checkpoint, _, _ = clips["deblurgan_v2_mobilenet"]
    args = ["--model", str(checkpoint), "--models", "vdeblur_fast", "--parts", "latency,quality", "--resolutions", "64x48",
            "--backends", "torch-fp32", "--frames", "2", "--repeats", "1", "--clips", "1", "--clip-size", "64x48",
            "--no-baselines", "--threads", "1", "--out", str(tmp_path / "bench")]
    result = CliRunner().invoke(bench, args)
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "bench" / "bench.json").read_text())
    assert [r["model"] for r in report["latency"]] == ["vdeblur_fast", "deblurgan_v2_mobilenet"]
    quality = {r["method"]: r for r in report["quality"]}
    assert quality["deblurgan_v2_mobilenet"]["weights"] == str(checkpoint) and quality["deblurgan_v2_mobilenet"]["psnr"] > 0


def test_live_pipe_runs_their_file(clips) -> None:
    import io
    import subprocess
    import sys

    checkpoint, clip, authors = clips["nafnet"]
    result = subprocess.run([sys.executable, "-m", "vdeblur.engine.cli", "-", "-", "--model", str(checkpoint), "--arch",
                             "nafnet", *LOSSLESS, "--stream-format", "matroska", "--threads", "1", "--quiet"], input=clip.read_bytes(),
                            capture_output=True, timeout=120)
    assert result.returncode == 0, result.stderr.decode()
    with av.open(io.BytesIO(result.stdout)) as c:
        frames = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])
    assert_authors_frames(frames, authors, "nafnet")
