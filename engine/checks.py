"""Refusals that protect the user's files, decided from paths alone (no model, no decoding), so
the command line gives them before any heavy library loads and before any work starts."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from .video_io import VideoError


def check_paths(src: Path, dst: Path, overwrite: bool) -> None:
    """Refuse what would lose user data, before any work is done."""
    if dst.exists() and src.exists() and dst.resolve() == src.resolve():
        raise VideoError(f"output {dst} is the input file; choose another output name")
    check_output(dst, overwrite)


def check_output(dst: Path, overwrite: bool) -> None:
    if dst.is_dir():
        raise VideoError(f"output {dst} is a directory; give a file name inside it")
    if dst.exists() and not overwrite:
        raise VideoError(f"output {dst} already exists; pass --overwrite to replace it")
    if not dst.parent.is_dir():
        raise VideoError(f"output folder {dst.parent} does not exist")
    if not os.access(dst.parent, os.W_OK):
        raise VideoError(f"output folder {dst.parent} is not writable")


def check_checkpoint_output(path: Path, overwrite: bool) -> None:
    if path.suffix != ".safetensors":
        raise VideoError(f"checkpoint {path} must end in .safetensors (the format --model loads)")
    check_output(path, overwrite)


def check_distinct_outputs(jobs: Sequence[tuple[str | Path, str | Path]]) -> None:
    """Refuse jobs that would write one output twice or write over another job's input, before any
    work starts (e.g. two folders holding files of the same name, deblurred into one folder)."""
    inputs = {os.path.realpath(src) for src, _ in jobs}
    seen: dict[str, str | Path] = {}
    for src, dst in jobs:
        key = os.path.realpath(dst)
        if key in seen:
            raise ValueError(f"output {dst} is the target of both {seen[key]} and {src}; "
                             f"give each input its own output")
        if key in inputs:
            raise ValueError(f"output {dst} is also an input of this run; choose another output name")
        seen[key] = src
