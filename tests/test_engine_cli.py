"""`vdeblur` from the command line: bad input gives one line, exit 1, and no output file."""

import os
import re
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
from click.testing import CliRunner
from conftest import make_clip

from vdeblur.engine.cli import cli
from vdeblur.engine.scene import CutDetector
from vdeblur.engine.stream import DeblurStream


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("clips") / "in.mp4"
    make_clip(path, frames=6)
    return path


def _bad_inputs(tmp: Path, clip: Path) -> dict[str, tuple[Path, str]]:
    empty = tmp / "empty.mp4"
    empty.write_bytes(b"")
    text = tmp / "notes.mp4"
    text.write_text("not a video at all\n" * 50)
    truncated = tmp / "truncated.mp4"
    truncated.write_bytes(clip.read_bytes()[: clip.stat().st_size // 3])
    audio_only = tmp / "audio.m4a"
    with av.open(str(audio_only), "w") as c:
        a = c.add_stream("aac", rate=48000, layout="mono")
        f = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        f.sample_rate, f.pts = 48000, 0
        c.mux(a.encode(f))
        c.mux(a.encode(None))
    return {"missing": (tmp / "nope.mp4", "does not exist"), "empty": (empty, "is empty"),
            "text": (text, "not a readable video"), "truncated": (truncated, "truncated|could not be decoded|not a readable"),
            "audio-only": (audio_only, "no video stream")}


@pytest.mark.parametrize("case", ["missing", "empty", "text", "truncated", "audio-only"])
def test_bad_inputs_fail_in_one_line_without_output(tmp_path: Path, clip: Path, fast_checkpoint, case: str) -> None:
    import re

    src, expected = _bad_inputs(tmp_path, clip)[case]
    out = tmp_path / "out.mp4"
    code, text = _run(str(src), str(out), "--model", str(fast_checkpoint), "--quiet")
    assert code == 1 and re.search(expected, text), text
    assert "Traceback" not in text and len(text.strip().splitlines()) == 1
    assert not out.exists() and not list(tmp_path.glob(".out.*"))


def test_refusals_protect_user_files(tmp_path: Path, clip: Path, fast_checkpoint) -> None:
    existing = tmp_path / "existing.mp4"
    existing.write_bytes(b"keep me")
    ck = ["--model", str(fast_checkpoint), "--quiet"]
    code, text = _run(str(clip), str(existing), *ck)
    assert code == 1 and "--overwrite" in text and existing.read_bytes() == b"keep me"
    code, text = _run(str(clip), str(clip), *ck, "--overwrite")
    assert code == 1 and "is the input file" in text and clip.stat().st_size > 1000
    code, text = _run(str(clip), str(tmp_path / "no_dir" / "o.mp4"), *ck)
    assert code == 1 and "does not exist" in text
    code, text = _run(str(clip), str(tmp_path / "o.mp4"), *ck, "--codec", "nosuchcodec")
    assert code == 1 and "nosuchcodec" in text and not (tmp_path / "o.mp4").exists()
    code, text = _run(str(clip), str(tmp_path / "o.xyz"), *ck)
    assert code == 1 and "unknown container" in text and not (tmp_path / "o.xyz").exists()


def test_unwritable_destination_and_corrupt_model(tmp_path: Path, clip: Path, fast_checkpoint) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    code, text = _run(str(clip), str(locked / "o.mp4"), "--model", str(fast_checkpoint), "--quiet")
    if code == 1:  # root ignores directory permissions; the check is still exercised where it applies
        assert "not writable" in text
    locked.chmod(0o700)
    corrupt = tmp_path / "bad.safetensors"
    corrupt.write_bytes(b"\x00" * 64)
    code, text = _run(str(clip), str(tmp_path / "o.mp4"), "--model", str(corrupt))
    assert code == 1 and "not a safetensors checkpoint" in text and not (tmp_path / "o.mp4").exists()
    code, text = _run(str(clip), str(tmp_path / "o.mp4"), "--model", str(tmp_path / "missing.onnx"))
    assert code == 1 and "does not exist" in text


def test_folder_of_inputs_goes_to_output_folder(tmp_path: Path, fast_checkpoint) -> None:
    src = tmp_path / "in"
    src.mkdir()
    for name in ("a.mp4", "b.mkv"):
        make_clip(src / name, frames=3, audio=False)
    (src / "readme.txt").write_text("not a video")
    code, text = _run(str(src), str(tmp_path / "out"), "--model", str(fast_checkpoint), "--quiet")
    assert code == 0, text
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.mp4", "b.mkv"]


def test_sample_then_deblur_end_to_end_through_the_console_script(tmp_path: Path, fast_checkpoint) -> None:
    sample, out = tmp_path / "sample.mp4", tmp_path / "out.mp4"
    exe = [sys.executable, "-m", "vdeblur.engine.cli"]
    done = subprocess.run([*exe, "sample", str(sample), "--frames", "4"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    with av.open(str(sample)) as c:
        assert len(list(c.decode(video=0))) == 8 and c.streams.audio
    done = subprocess.run([*exe, str(sample), str(out), "--model", str(fast_checkpoint), "--reset-on-cut"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "8 frames" in done.stderr and "fps" in done.stderr
    # The summary says how many threads the model had (the default depends on the load of the moment).
    threads = int(re.search(r"inference threads: (\d+)", done.stderr)[1])
    assert 1 <= threads <= len(os.sched_getaffinity(0)), done.stderr
    with av.open(str(out)) as c:
        assert len(list(c.decode(video=0))) == 8 and c.streams.audio


def test_cut_detector_fires_on_a_cut_not_on_shake() -> None:
    from vdeblur.engine.sample import render_sample

    frames = render_sample(frames_per_shot=6)  # coffee shot, then rocket shot
    detector = CutDetector()
    cuts = [i for i, f in enumerate(frames) if detector.is_cut(f)]
    assert cuts == [6]


def test_stream_accepts_numpy_and_torch_and_resets(fast_checkpoint) -> None:
    import torch

    from vdeblur.engine.backends import load_backend

    stream = DeblurStream(load_backend(str(fast_checkpoint), "torch", "cpu"), reset_every=2)
    rgb = (np.random.default_rng(0).random((37, 45, 3)) * 255).astype(np.uint8)
    out = stream.push(rgb)
    assert out.shape == rgb.shape and out.dtype == np.uint8
    t = torch.from_numpy(rgb).permute(2, 0, 1).float() / 255
    assert stream.push(t).shape == t.shape
    stream.push(rgb)  # third frame: reset_every=2 starts a fresh state
    assert stream.state_starts == 2
    with pytest.raises(ValueError, match=r"\(H, W, 3\) uint8"):
        stream.push(rgb.astype(np.float32))


def test_video_io_auto_falls_back_to_pyav_and_nvcodec_is_refused_up_front(tmp_path: Path, clip: Path,
                                                                        fast_checkpoint) -> None:
    out = tmp_path / "auto.mp4"
    code, text = _run(str(clip), str(out), "--model", str(fast_checkpoint), "--device", "cpu", "--video-io", "auto")
    assert code == 0 and "decoding and encoding on PyAV" in text and out.exists(), text
    code, text = _run(str(clip), str(out), "--model", str(fast_checkpoint), "--device", "cpu", "--video-io", "auto",
                      "--overwrite", "--quiet")
    assert code == 0 and text.strip() == "", text  # --quiet silences the fallback line too
    refused = tmp_path / "hw.mp4"
    code, text = _run(str(clip), str(refused), "--model", str(fast_checkpoint), "--video-io", "nvcodec", "--quiet")
    assert code == 1 and "nvcodec video I/O cannot run" in text and len(text.strip().splitlines()) == 1, text
    assert not refused.exists() and not list(tmp_path.glob(".hw.*"))


def test_two_inputs_of_the_same_name_into_one_folder_are_refused(tmp_path: Path, clip: Path, fast_checkpoint) -> None:
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "take.mp4").write_bytes(clip.read_bytes())
    out = tmp_path / "out"
    code, text = _run(str(tmp_path / "a"), str(tmp_path / "b"), str(out), "--model", str(fast_checkpoint),
                      "--overwrite", "--quiet")
    assert code == 1 and "is the target of both" in text and len(text.strip().splitlines()) == 1, text
    assert not out.exists()  # refused before anything was made or written


def test_default_threads_are_the_cores_other_processes_leave_free(monkeypatch) -> None:
    from vdeblur.engine.options import inference_threads

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    assert inference_threads(load=0.2) == 2  # idle: every core, as torch's own default
    assert inference_threads(load=1.1) == 1  # a training on one core: the model keeps off it
    assert inference_threads(load=6.5) == 1  # never fewer than one
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)))
    assert inference_threads(load=2.6) == 5 and inference_threads(load=0.0) == 8
    monkeypatch.setattr(os, "getloadavg", lambda: (3.0, 1.0, 1.0))
    assert inference_threads() == 5  # the 1-minute average when none is given
