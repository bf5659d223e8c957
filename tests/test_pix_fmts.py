"""Every pixel format an encoder lists is either written or refused up front, in one line naming the
formats that work; 8-bit RGB asked for in a layout the encoder lacks is written losslessly anyway."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from click.testing import CliRunner
from conftest import make_clip

from vdeblur.engine.cli import cli
from vdeblur.engine.options import EncodeOptions
from vdeblur.engine.pix_fmts import listed_formats, output_pix_fmt, writable_formats
from vdeblur.engine.video_io import VideoError, VideoWriter

ENCODERS = sorted({"ffv1", "libx264", "libx264rgb", EncodeOptions().codec})
RGB8 = ("gbrp", "rgb24", "bgr24", "bgr0")


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("pix") / "src.mkv"
    make_clip(path, width=64, height=48, frames=2, audio=True)
    return path


def frames(count: int = 3) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) for _ in range(count)]


def write(source: Path, out: Path, codec: str, pix_fmt: str, rgb: list[np.ndarray]) -> str:
    """Writes ``rgb`` asking for ``pix_fmt``; returns the format the encoder was given."""
    with av.open(str(source)) as src, VideoWriter(out, src, codec=codec, crf=None, preset=None, pix_fmt=pix_fmt) as w:
        for i, f in enumerate(rgb):
            w.write_frame(f, i * 40, Fraction(1, 1000))
        return w.video.pix_fmt


def decoded(path: Path) -> tuple[str, list[np.ndarray]]:
    with av.open(str(path)) as c:
        got = list(c.decode(video=0))
        return got[0].format.name, [f.to_ndarray(format="rgb24") for f in got]


@pytest.mark.parametrize("codec", ENCODERS)
def test_every_listed_format_is_written_or_refused_naming_those_that_work(tmp_path: Path, source: Path,
                                                                          codec: str) -> None:
    works = writable_formats(codec)
    assert works, codec
    for i, fmt in enumerate(listed_formats(codec)):
        try:
            used, _ = output_pix_fmt(codec, fmt)
        except VideoError as e:
            assert fmt not in works and f"formats that work: {', '.join(works)}" in str(e)
            continue
        out = tmp_path / f"{i}.mkv"
        assert write(source, out, codec, fmt, frames()) == used
        _, got = decoded(out)  # (a decoder may hand the same samples back in another layout)
        assert len(got) == 3 and got[0].shape == (48, 64, 3), (codec, fmt)


@pytest.mark.parametrize("codec", ["ffv1", "libx264rgb"])
@pytest.mark.parametrize("asked", RGB8)
def test_rgb_layouts_are_written_losslessly(tmp_path: Path, source: Path, codec: str, asked: str) -> None:
    rgb = frames()
    out = tmp_path / "out.mkv"
    options = {"qp": "0"} if codec == "libx264rgb" else {}  # x264's lossless mode; ffv1 is always lossless
    with av.open(str(source)) as src, VideoWriter(out, src, codec=codec, crf=None, preset=None, pix_fmt=asked,
                                                  codec_options=options) as w:
        for i, f in enumerate(rgb):
            w.write_frame(f, i * 40, Fraction(1, 1000))
    written, got = decoded(out)
    assert written in RGB8 and all(np.array_equal(a, b) for a, b in zip(got, rgb)), (codec, asked, written)


def test_cli_ffv1_gbrp_writes_lossless_rgb_with_the_audio(tmp_path: Path, source: Path, fast_checkpoint: Path) -> None:
    out = tmp_path / "out.mkv"
    result = CliRunner().invoke(cli, [str(source), str(out), "--model", str(fast_checkpoint), "--codec", "ffv1",
                                      "--pix-fmt", "gbrp"])
    assert result.exit_code == 0, result.output
    assert "ffv1 stores 8-bit RGB as bgr0" in result.output
    with av.open(str(out)) as c:
        assert c.streams.video[0].codec_context.pix_fmt == "bgr0" and len(c.streams.audio) == 1


def test_unwritable_format_is_refused_before_any_work(tmp_path: Path, source: Path) -> None:
    out = tmp_path / "out.mp4"
    result = CliRunner().invoke(cli, [str(source), str(out), "--codec", "libx264", "--pix-fmt", "rgb48le"])
    assert result.exit_code == 1 and "--pix-fmt rgb48le cannot be written by libx264" in result.output
    assert "yuv420p" in result.output and len(result.output.strip().splitlines()) == 1 and not out.exists()
