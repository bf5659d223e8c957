"""Without the onnx extra, every ONNX path says in one line which extra to install (no traceback).

Each case runs the console entry point in a fresh interpreter where the library cannot be imported
(``sys.modules[name] = None`` makes ``import name`` fail as if it were not installed).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from vdeblur.export.dependencies import MissingDependencyError, import_optional

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "samples" / "shake.mp4"
EXTRA = 'pip install "vdeblur[onnx]"'


def run_without(hidden: tuple[str, ...], entry: str, args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    code = (f"import sys\nfor name in {hidden!r}: sys.modules[name] = None\n"
            f"from {entry} import main\nsys.argv = ['tool', *{args!r}]\nmain()\n")
    env = {**os.environ, "VDEBLUR_CACHE": str(tmp_path / "cache")}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path,
                          timeout=300, check=False)


def assert_one_line_naming_the_extra(done: subprocess.CompletedProcess, tool: str) -> None:
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{tool}: error: "), done.stderr
    assert EXTRA in lines[0] and "Traceback" not in done.stderr


def test_import_optional_names_the_install_hint() -> None:
    with pytest.raises(MissingDependencyError, match=r"get it with pip install x \(No module named 'no_such_module_"):
        import_optional("no_such_module_vdeblur", "get it with pip install x")
    assert issubclass(MissingDependencyError, ImportError) and issubclass(MissingDependencyError, RuntimeError)


@pytest.mark.slow
def test_export_onnx_without_onnx_names_the_extra(tmp_path: Path) -> None:
    done = run_without(("onnx",), "vdeblur.export.cli", ["onnx", "out.onnx"], tmp_path)
    assert_one_line_naming_the_extra(done, "vdeblur-export")
    assert not (tmp_path / "out.onnx").exists()


@pytest.mark.slow
@pytest.mark.parametrize("hidden", [("onnx",), ("onnxruntime",)])
def test_onnxruntime_backend_without_the_extra_names_it_before_any_work(tmp_path: Path, hidden: tuple[str, ...]) -> None:
    done = run_without(hidden, "vdeblur.engine.cli", [str(SAMPLE), "out.mp4", "--backend", "onnxruntime", "--quiet"],
                       tmp_path)
    assert_one_line_naming_the_extra(done, "vdeblur")
    assert sorted(p.name for p in tmp_path.iterdir()) in ([], ["cache"])  # no output, nothing exported
    assert not any((tmp_path / "cache").rglob("*.onnx"))
