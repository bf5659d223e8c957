"""What a file run will do, settled before anything heavy loads: the (input, output) pairs, the
--adapt settings, and every refusal that needs neither the model nor a decoded frame."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from .checks import check_checkpoint_output, check_distinct_outputs, check_paths
from .options import EncodeOptions
from .pix_fmts import check_encoding
from .video_io import open_input

if TYPE_CHECKING:
    from .adapt import AdaptConfig

AUTO_BUDGET = -1.0  # --adapt without a value: the budget default_budget() picks for the clip
_VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".m4v", ".webm", ".avi"}


def plan_jobs(paths: tuple[Path, ...]) -> list[tuple[Path, Path]]:
    """(input, output) pairs: ``IN OUT`` for one file, else every input into the last path, a folder."""
    if len(paths) < 2:
        raise click.UsageError("give an INPUT and an OUTPUT (or several inputs and an output folder)")
    *inputs, out = paths
    if len(inputs) == 1 and not inputs[0].is_dir() and out.suffix:
        return [(inputs[0], out)]
    files: list[Path] = []
    for p in inputs:
        files += sorted(f for f in p.iterdir() if f.suffix.lower() in _VIDEO_SUFFIXES) if p.is_dir() else [p]
    if not files:
        raise ValueError(f"no video files ({', '.join(sorted(_VIDEO_SUFFIXES))}) in {', '.join(map(str, inputs))}")
    if out.exists() and not out.is_dir():
        raise ValueError(f"output {out} must be a folder when several inputs or a folder are given")
    jobs = [(f, out / f.name) for f in files]
    check_distinct_outputs(jobs)  # before the folder is made: a refused run leaves nothing behind
    out.mkdir(parents=True, exist_ok=True)
    return jobs


def check_adapt_options(budget: float | None, save_adapted: Path | None, several: bool, streams: int) -> None:
    """Refuse what --adapt and --save-adapted cannot do together with the rest, before any work."""
    if budget is None:
        if save_adapted is not None:
            raise ValueError("--save-adapted writes the weights --adapt made; add --adapt")
        return
    if save_adapted is not None and several:
        raise ValueError("--save-adapted writes the weights adapted to one input; several were given")
    if streams > 1 and several:
        raise ValueError("--adapt trains one model per file, and --streams batches several files through one "
                         "model; use one of them")


def adapt_config(budget: float | None) -> AdaptConfig | None:
    """What --adapt asks for (its options already checked); imports the training code, so call it
    only once the run is going ahead."""
    if budget is None:
        return None
    from .adapt import AdaptConfig

    return AdaptConfig(budget_s=None if budget == AUTO_BUDGET else budget)


def probe_jobs(jobs: list[tuple[Path, Path]], encoding: EncodeOptions, overwrite: bool,
               save_adapted: Path | None, log: Callable[[str], None]) -> None:
    """Every refusal that needs neither the model nor a decoded frame, before either loads: the
    outputs (existing, missing folder, the input itself), the encoder, container and pixel format,
    and each input opened with PyAV (missing, empty, not a video, no video stream)."""
    note = check_encoding(encoding.codec, encoding.pix_fmt, jobs[0][1])
    if note:
        log(note)
    for src, dst in jobs:
        check_paths(src, dst, overwrite)
        check_encoding(encoding.codec, None, dst)
        open_input(src).close()
    if save_adapted is not None:
        check_checkpoint_output(save_adapted, overwrite)
