"""Ctrl-C at any stage of a run: one line, exit status 130, no traceback, nothing left behind.

The process interrupts itself with SIGINT when it reaches the stage named by VDEBLUR_INTERRUPT_AT
(``vdeblur.console.reach``), so each stage is hit every time, however fast or loaded the machine."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import make_clip

from vdeblur.console import INTERRUPT_AT, STAGES

# What each stage needs to be reached at all.
EXTRA = {"export": ["--backend", "onnxruntime"], "adapt": ["--adapt", "5"]}


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("interrupts") / "in.mp4"
    make_clip(path, width=64, height=48, frames=4)
    return path


def run(tmp_path: Path, stage: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, INTERRUPT_AT: stage, "VDEBLUR_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    # Ctrl-C's default action, as an interactive shell starts a command (the suite may run with SIGINT
    # ignored, as a shell's background job, and a child inherits that).
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, timeout=600,
                          preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def assert_one_line_and_130(done: subprocess.CompletedProcess[str], prog: str) -> None:
    assert done.returncode == 130, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith(f"{prog}: interrupted;"), done.stderr
    assert "Traceback" not in done.stderr and sum("interrupted" in line for line in lines) == 1, done.stderr


@pytest.mark.parametrize("stage", list(STAGES))
def test_vdeblur_interrupted_at_each_stage_leaves_nothing(tmp_path: Path, clip: Path, fast_checkpoint: Path,
                                                          stage: str) -> None:
    out = tmp_path / "out" / "deblurred.mp4"
    out.parent.mkdir()
    done = run(tmp_path, stage, "-m", "vdeblur.engine.cli", str(clip), str(out), "--model", str(fast_checkpoint),
               "--preset", "ultrafast", *EXTRA.get(stage, []))
    assert_one_line_and_130(done, "vdeblur")
    assert list(out.parent.iterdir()) == []  # neither the output nor its part file
    cached = [p.name for p in (tmp_path / "cache").rglob("*") if p.is_file() and not p.name.endswith(".lock")]
    assert cached == [], cached  # an interrupted export leaves no half-written ONNX file in the cache


def test_interrupted_output_replacement_keeps_the_old_file(tmp_path: Path, clip: Path, fast_checkpoint: Path) -> None:
    out = tmp_path / "kept.mp4"
    out.write_bytes(b"the user's earlier result")
    done = run(tmp_path, "flush", "-m", "vdeblur.engine.cli", str(clip), str(out), "--model", str(fast_checkpoint),
               "--overwrite")
    assert_one_line_and_130(done, "vdeblur")
    assert out.read_bytes() == b"the user's earlier result" and sorted(p.name for p in tmp_path.iterdir()) == ["kept.mp4"]


def test_training_interrupted_while_torch_loads(tmp_path: Path) -> None:
    done = run(tmp_path, "imports", "-m", "vdeblur.train.cli", "--config", "vdeblur_fast", "--steps", "1",
               "--out", str(tmp_path / "run"))
    assert_one_line_and_130(done, "vdeblur-train")
    assert not (tmp_path / "run").exists()


# Ctrl-C while the command-line module itself still loads (click, PyAV), before its main can answer:
# an import hook raises KeyboardInterrupt as the module imports click.
LAUNCH = """
import sys
class CtrlC:
    def find_spec(self, name, path=None, target=None):
        if name == "click":
            raise KeyboardInterrupt
sys.meta_path.insert(0, CtrlC())
import vdeblur.launch
getattr(vdeblur.launch, sys.argv[1])()
"""


@pytest.mark.parametrize("prog", ["vdeblur", "vdeblur-train", "vdeblur-export", "vdeblur-bench"])
def test_interrupted_while_the_command_line_loads(tmp_path: Path, prog: str) -> None:
    done = run(tmp_path, "none", "-c", LAUNCH, prog.replace("-", "_"))
    assert_one_line_and_130(done, prog)


def test_an_interrupt_python_wrapped_in_another_error_counts_as_one() -> None:
    from vdeblur.launch import caused_by_interrupt

    try:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as e:
            raise RuntimeError("Error calling __set_name__") from e  # what Python 3.11 does in a class body
    except RuntimeError as wrapped:
        assert caused_by_interrupt(wrapped)
    assert not caused_by_interrupt(ValueError("bad input"))
