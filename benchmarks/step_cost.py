"""Paired cost of one model step: two or more models timed round by round, interleaved.

For questions of the kind "is the new model slower than the old one", where a few per cent matter and
a shared machine's load drifts: each round runs every model for the same number of steps, one after
the other, so that whatever else the machine does falls on all of them alike. Per model it prints
the median over rounds of the process CPU time per step (all of torch's threads together: what the
model costs) and the wall time per step (what a user waits), and both as a ratio to the first model.
The frame is random at the given size (padded to the model's multiple), the state is carried from
step to step as in a video, and a model that takes the aligned previous frame (rgb+motion) gets a
motion field that moves it by a few pixels, so its warp does the work it does on real footage.

  python -m vdeblur.benchmarks.step_cost vdeblur_deep OTHER.safetensors --size 640x368 --threads 1
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass

import torch

from vdeblur.engine.backends import resolve_model
from vdeblur.train.archs.base import DeblurModel, padded_size
from vdeblur.train.checkpoint import load_checkpoint
from vdeblur.train.motion import MOTION_CHANNELS

from .cli import parse_resolution


@dataclass(frozen=True)
class StepCost:
    model: str
    cpu_ms: float  # median over rounds of process CPU time per step
    wall_ms: float  # median over rounds of wall time per step


def model_input(model: DeblurModel, height: int, width: int) -> torch.Tensor:
    """A random frame of the model's input kind; for rgb+motion, a 3 px shift with every pixel valid
    and full confidence (the motion channels' order is train/motion.py's)."""
    g = torch.Generator().manual_seed(0)
    frame = torch.rand(1, 3, height, width, generator=g)
    if model.in_channels == 3:
        return frame
    if model.in_channels != 3 + MOTION_CHANNELS:
        raise ValueError(f"step_cost times rgb and rgb+motion models; {model.model_name} takes {model.in_channels} channels")
    field = torch.ones(1, MOTION_CHANNELS, height, width)
    field[:, :2] = 3.0
    return torch.cat([frame, field], dim=1)


def measure(models: dict[str, DeblurModel], height: int, width: int, rounds: int, steps: int) -> list[StepCost]:
    inputs = {name: model_input(m, padded_size(height, m.pad_multiple), padded_size(width, m.pad_multiple))
              for name, m in models.items()}
    states = {name: m.initial_state(1, height, width) for name, m in models.items()}
    cpu: dict[str, list[float]] = {name: [] for name in models}
    wall: dict[str, list[float]] = {name: [] for name in models}
    with torch.inference_mode():
        for r in range(rounds + 1):  # round 0 warms up (allocator, oneDNN primitives) and is not counted
            for name, model in models.items():
                c0, w0 = time.process_time(), time.perf_counter()
                for _ in range(steps):
                    _, states[name] = model(inputs[name], states[name])
                if r:
                    cpu[name].append((time.process_time() - c0) / steps * 1e3)
                    wall[name].append((time.perf_counter() - w0) / steps * 1e3)
    return [StepCost(name, statistics.median(cpu[name]), statistics.median(wall[name])) for name in models]


def markdown_table(rows: list[StepCost]) -> str:
    first = rows[0]
    lines = ["| model | CPU ms per step | ratio | wall ms per step | ratio |", "|---|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r.model} | {r.cpu_ms:.1f} | {r.cpu_ms / first.cpu_ms:.3f} | {r.wall_ms:.1f} | "
                     f"{r.wall_ms / first.wall_ms:.3f} |")
    return "\n".join(lines)


def _size(text: str) -> tuple[int, int]:
    """``WxH`` or a named resolution (benchmarks.cli's parser), at least 16x16."""
    try:
        w, h = parse_resolution(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    if w < 16 or h < 16:
        raise argparse.ArgumentTypeError(f"size {text!r} is below 16x16")
    return w, h


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="registry names (bundled weights) or .safetensors checkpoints; "
                                                  "ratios are to the first")
    parser.add_argument("--size", type=_size, default=(640, 368), help="WIDTHxHEIGHT of the frame, or 360p/720p/1080p (default 640x368)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--steps", type=int, default=3, help="steps per model per round")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.steps < 1 or args.threads < 1:
        parser.error(f"--rounds, --steps and --threads must be >= 1; got {args.rounds}, {args.steps}, {args.threads}")
    if len(set(args.models)) != len(args.models):
        parser.error(f"each model once; got {' '.join(args.models)}")
    try:
        paths = [resolve_model(m) for m in args.models]  # a missing file fails here, before any model loads
    except (FileNotFoundError, ValueError) as e:
        parser.error(str(e))
    for spec, path in zip(args.models, paths):
        if path.suffix != ".safetensors":
            parser.error(f"model {spec}: step_cost times this project's checkpoints (.safetensors); got {path.name}")
    torch.set_num_threads(args.threads)
    models = {spec: load_checkpoint(path)[0].eval() for spec, path in zip(args.models, paths)}
    w, h = args.size
    rows = measure(models, h, w, args.rounds, args.steps)
    print(f"{w}x{h}, {args.threads} thread(s), median of {args.rounds} interleaved rounds of {args.steps} steps each")
    print(markdown_table(rows))


if __name__ == "__main__":
    main()
