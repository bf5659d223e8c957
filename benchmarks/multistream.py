"""Aggregate frames/s of several streams at once, beside the codec-only ceiling of the same run.

``python -m vdeblur.benchmarks.multistream``: ``deblur_many`` against the number of streams.

For each N of ``--streams``, N copies of the input (a generated shaken clip, or the ``--inputs``
given, cycled) run through ``deblur_many`` twice: once with the model, once with ``IdentityBackend``
(no network: the same decoding, stream work and encoding). The codec-only figure is the most the
model run could reach on this machine; model / codec-only near 1 means the codecs, not the network,
are the limit. Frames per model call says how much the streams were actually batched.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from vdeblur import DEFAULT_MODEL
from vdeblur.engine.backends import load_backend
from vdeblur.engine.backends.base import Backend, BackendState
from vdeblur.engine.multistream import deblur_many

from .report import machine_info, machine_line
from .stages import make_test_video


class IdentityBackend:
    """Returns the frame unchanged: runs the pipeline with no network, for the codec-only ceiling."""

    name = "identity"
    device = torch.device("cpu")
    pad_multiple = 1
    input_kind = "rgb"
    is_recurrent = False

    def initial_state(self, height: int, width: int, batch: int = 1) -> BackendState:
        return ()

    def run(self, frame: torch.Tensor, state: BackendState) -> tuple[torch.Tensor, BackendState]:
        return frame, state


class CountingBackend:
    """Wraps a backend and records the frames of every ``run`` call (batch sizes)."""

    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        self.name, self.device, self.pad_multiple = inner.name, inner.device, inner.pad_multiple
        self.input_kind, self.is_recurrent = inner.input_kind, inner.is_recurrent
        self.calls: list[int] = []

    def initial_state(self, height: int, width: int, batch: int = 1) -> BackendState:
        return self.inner.initial_state(height, width, batch)

    def run(self, frame: torch.Tensor, state: BackendState) -> tuple[torch.Tensor, BackendState]:
        self.calls.append(frame.shape[0])
        return self.inner.run(frame, state)


@dataclass(frozen=True)
class StreamsResult:
    streams: int
    frames: int  # over all streams
    model_fps: float  # aggregate: all streams' frames / wall time of a run (median over repeats)
    codec_fps: float  # the same with IdentityBackend
    ratio: float  # model_fps / codec_fps
    frames_per_call: float  # mean batch of the model run


def measure(backend: Backend, inputs: list[Path], streams: int, out_dir: Path, max_batch: int,
            repeats: int) -> StreamsResult:
    """Medians over ``repeats`` runs (the first run of a batch size also pays its one-time set-up)."""
    jobs = [(inputs[i % len(inputs)], out_dir / f"out{i}.mp4") for i in range(streams)]
    counted = CountingBackend(backend)
    model = [_aggregate_fps(jobs, counted, max_batch) for _ in range(repeats)]
    codec = [_aggregate_fps(jobs, IdentityBackend(), max_batch) for _ in range(repeats)]
    model_fps, codec_fps = statistics.median(f for f, _ in model), statistics.median(f for f, _ in codec)
    frames = model[0][1]
    return StreamsResult(streams, frames, model_fps, codec_fps, model_fps / codec_fps,
                         sum(counted.calls) / len(counted.calls))


def _aggregate_fps(jobs: list[tuple[Path, Path]], backend: Backend, max_batch: int) -> tuple[float, int]:
    """All streams' frames / wall time of one ``deblur_many`` run, and those frames."""
    started = time.perf_counter()
    results = deblur_many(jobs, backend, max_streams=len(jobs), max_batch=max_batch, overwrite=True)
    wall = time.perf_counter() - started
    failed = [f"{r.src}: {r.error}" for r in results if not r.ok]
    if failed:
        raise RuntimeError(f"the benchmark run failed on {'; '.join(failed)}")
    frames = sum(r.stats.frames for r in results if r.stats is not None)
    return frames / wall, frames


def table(rows: list[StreamsResult]) -> str:
    one = next((r.model_fps for r in rows if r.streams == 1), None)
    lines = ["| streams | frames | model frames/s | codec-only frames/s | model / codec-only | speed-up vs 1 stream | "
             "frames per model call |", "|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        speedup = f"{r.model_fps / one:.2f}x" if one else "-"
        lines.append(f"| {r.streams} | {r.frames} | {r.model_fps:.1f} | {r.codec_fps:.1f} | {r.ratio:.2f} | "
                     f"{speedup} | {r.frames_per_call:.2f} |")
    return "\n".join(lines)


def run(args: argparse.Namespace, argv: list[str]) -> dict[str, Any]:
    torch.set_num_threads(args.threads)
    backend = load_backend(args.model, args.backend, args.device)
    machine = machine_info()
    counts = sorted({int(n) for n in args.streams.split(",")})
    if counts[0] < 1:
        raise ValueError(f"--streams must be positive counts, e.g. 1,2,4; got {args.streams!r}")
    source = f"generated {args.width}x{args.height}, {args.frames} frames"
    with tempfile.TemporaryDirectory(prefix="vdeblur-multistream-") as tmp:
        inputs = [Path(p) for p in args.inputs] or [make_test_video(Path(tmp) / "clip.mp4", args.width,
                                                                    args.height, args.frames)]
        rows = [measure(backend, inputs, n, Path(tmp), args.max_batch, args.repeats) for n in counts]
    settings = {"model": args.model or f"{DEFAULT_MODEL} (bundled)", "backend": getattr(backend, "label", backend.name),
                "inputs": [str(p) for p in args.inputs] or source, "streams": counts, "max_batch": args.max_batch,
                "repeats": args.repeats, "threads": args.threads, "load_average_at_end": list(os.getloadavg())}
    return {"command": " ".join(["python -m vdeblur.benchmarks.multistream", *argv]),
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "machine": machine, "settings": settings, "rows": [asdict(r) for r in rows]}


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None,
                        help=f"checkpoint, exported file or model name [the bundled default, {DEFAULT_MODEL}; "
                             "vdeblur_fast for real time]")
    parser.add_argument("--backend", default="torch", help="torch or onnxruntime [torch]")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--streams", default="1,2,4", help="stream counts to measure [1,2,4]")
    parser.add_argument("--inputs", nargs="*", default=[], help="videos to use (cycled) instead of a generated clip")
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=180)
    parser.add_argument("--frames", type=int, default=96)
    parser.add_argument("--max-batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3, help="runs per figure; the median is reported [3]")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--json", type=Path, default=Path("multistream.json"), help="where to write the figures")
    args = parser.parse_args(argv)
    report = run(args, argv)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"{machine_line(report['machine'])}\n{report['command']}\n")
    print(table([StreamsResult(**r) for r in report["rows"]]))
    print(f"\nload average at start {report['machine']['load_average_at_start']}, "
          f"at end {report['settings']['load_average_at_end']}; written {args.json}")


if __name__ == "__main__":
    main()
