"""Every console script answers -h and --help; `vdeblur --help` leads with `vdeblur INPUT OUTPUT` and its options."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from vdeblur import DEFAULT_MODEL
from vdeblur.benchmarks.cli import bench
from vdeblur.engine.cli import cli as vdeblur
from vdeblur.export.cli import cli as vdeblur_export
from vdeblur.train.cli import cli as vdeblur_train

TOOLS = {"vdeblur": vdeblur, "vdeblur-export": vdeblur_export, "vdeblur-bench": bench, "vdeblur-train": vdeblur_train}


def help_of(command: click.Command, *args: str, prog: str = "vdeblur") -> str:
    result = CliRunner().invoke(command, list(args), prog_name=prog)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("prog", TOOLS)
def test_every_tool_takes_dash_h(prog: str) -> None:
    assert help_of(TOOLS[prog], "-h", prog=prog) == help_of(TOOLS[prog], "--help", prog=prog)
    assert f"Usage: {prog}" in help_of(TOOLS[prog], "-h", prog=prog)


@pytest.mark.parametrize("command", ["onnx", "tensorrt", "torch-trt", "trtexec-cmd", "check-trt", "parity", "safetensors"])
def test_export_subcommands_take_dash_h(command: str) -> None:
    assert f"Usage: vdeblur-export {command}" in help_of(vdeblur_export, command, "-h", prog="vdeblur-export")


def test_vdeblur_help_shows_the_main_use_and_its_options() -> None:
    text = help_of(vdeblur, "--help")
    assert text.startswith("Usage: vdeblur INPUT OUTPUT [OPTIONS]")
    for usage in ("vdeblur IN1 IN2 ... OUT_DIR", "vdeblur SOURCE SINK", "vdeblur batch", "vdeblur sample"):
        assert usage in text
    for option in ("--model", "--backend", "--device", "--overwrite", "--tile", "--threads", "--quiet"):
        assert f"  {option} " in text
    assert "vdeblur run --help" in text
    assert "Commands:" in text and "batch" in text and "sample" in text


def test_run_help_names_its_arguments() -> None:
    assert "Usage: vdeblur run [OPTIONS] INPUT OUTPUT | IN... OUT_DIR | SOURCE SINK" in help_of(vdeblur, "run", "-h")


def test_help_texts_name_the_real_default_model() -> None:
    for text in (help_of(vdeblur, "-h"), help_of(vdeblur_export, "onnx", "-h", prog="vdeblur-export")):
        flat = " ".join(text.split())
        assert f"[default: the bundled {DEFAULT_MODEL};" in flat
