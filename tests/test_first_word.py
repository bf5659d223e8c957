"""Help, usage errors and every refusal that needs no model answer before torch, ONNX Runtime or the
model code is imported: each console script runs in a subprocess, which reports at exit which of
those modules it had loaded (what makes the answer take seconds instead of a fraction of one)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import make_clip

HEAVY = ("torch", "onnxruntime", "vdeblur.train.archs", "vdeblur.engine.pipeline", "vdeblur.engine.backends")
# Runs the installed console script's entry point, as the shell would, and reports the heavy modules at exit.
PROBE = f"""
import atexit, sys
from importlib.metadata import entry_points
atexit.register(lambda: print("LOADED=" + ",".join(m for m in {HEAVY!r} if m in sys.modules), file=sys.stderr))
prog, *sys.argv[1:] = sys.argv[1:]
sys.argv[0] = prog
entry_points(group="console_scripts", name=prog)[prog].load()()
"""


def first_word(prog: str, *args: str) -> tuple[int, str, list[str]]:
    """(exit status, what the user saw, the heavy modules loaded by then)."""
    done = subprocess.run([sys.executable, "-c", PROBE, prog, *args], capture_output=True, text=True, timeout=120)
    text, _, loaded = (done.stdout + done.stderr).rpartition("LOADED=")
    return done.returncode, text, [m for m in loaded.strip().split(",") if m]


@pytest.mark.parametrize("prog", ["vdeblur", "vdeblur-train", "vdeblur-export", "vdeblur-bench"])
@pytest.mark.parametrize("flag", ["-h", "--help"])
def test_help_comes_without_torch(prog: str, flag: str) -> None:
    code, text, loaded = first_word(prog, flag)
    assert code == 0 and f"Usage: {prog}" in text, text
    assert loaded == [], f"{prog} {flag} imported {loaded}"


@pytest.mark.parametrize("prog, args, expected", [
    ("vdeblur", ["--crf", "99", "a.mp4", "b.mp4"], "--crf"),
    ("vdeblur", ["run"], "Missing argument"),
    ("vdeblur-export", ["parity", "--threshold-db", "x"], "--threshold-db"),
    ("vdeblur-export", ["onnx", "--opset", "x", "out.onnx"], "--opset"),
    ("vdeblur-train", [], "--config"),
    ("vdeblur-train", ["--config", "vdeblur_fast", "--resume", "--init-from", "x"], "--resume"),
    ("vdeblur-bench", ["--frames", "x"], "--frames"),
])
def test_usage_errors_come_without_torch(prog: str, args: list[str], expected: str) -> None:
    code, text, loaded = first_word(prog, *args)
    assert code == 2 and expected in text, text
    assert loaded == [], f"{prog} {' '.join(args)} imported {loaded}"


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("first-word") / "in.mp4"
    make_clip(path, frames=3)
    return path


def test_input_and_output_refusals_come_without_torch(tmp_path: Path, clip: Path) -> None:
    existing = tmp_path / "existing.mp4"
    existing.write_bytes(b"keep me")
    text_file = tmp_path / "notes.mp4"
    text_file.write_text("not a video\n" * 40)
    out = str(tmp_path / "out.mp4")
    cases = {
        "does not exist": [str(tmp_path / "nosuch.mp4"), out],
        "not a readable video": [str(text_file), out],
        "already exists": [str(clip), str(existing)],
        "output folder": [str(clip), str(tmp_path / "no_dir" / "o.mp4")],
        "is the input file": [str(clip), str(clip), "--overwrite"],
        "nosuchcodec": [str(clip), out, "--codec", "nosuchcodec"],
        "unknown container": [str(clip), str(tmp_path / "o.xyz")],
        "formats that work": [str(clip), out, "--pix-fmt", "nosuchformat"],
        "tile 8": [str(clip), out, "--tile", "8"],
        "--save-adapted": [str(clip), out, "--save-adapted", str(tmp_path / "w.safetensors")],
    }
    for expected, args in cases.items():
        code, text, loaded = first_word("vdeblur", *args)
        assert code == 1 and expected in text and len(text.strip().splitlines()) == 1, (args, text)
        assert loaded == [], f"vdeblur {' '.join(args)} imported {loaded}"
    assert existing.read_bytes() == b"keep me" and not Path(out).exists()


def test_live_refusals_come_without_torch(tmp_path: Path) -> None:
    out = str(tmp_path / "rec.mp4")
    for expected, args in {"unsupported scheme ftp://": ["ftp://127.0.0.1/x.ts", out],
                           "formats that work": ["udp://127.0.0.1:9", out, "--pix-fmt", "rgb48le"],
                           "--max-latency-ms must be > 0": ["udp://127.0.0.1:9", out, "--max-latency-ms", "-1"]}.items():
        code, text, loaded = first_word("vdeblur", *args)
        assert code == 1 and expected in text and len(text.strip().splitlines()) == 1, (args, text)
        assert loaded == [], f"vdeblur {' '.join(args)} imported {loaded}"
