"""Blur synthesis throughput in (blurred, sharp) pairs per second (``python -m vdeblur.benchmarks.synth_speed``).

One thing changes per row: the blur mode. Every row renders the same clips (same seeds, the
scikit-image photos, default noise and compression draws) on one CPU thread, which is what one
DataLoader worker gets; multiply by the worker count for a training machine. numba's compilation
and the first clip are excluded (warm-up).

The last row is the torch renderer of ``data.kind = "device"`` (``train/device_data.py``: temporal
blur and noise, no kernel mode, no compression) making whole training batches, on ``--device``
(default cpu, one torch thread). Its clips include the per-clip rescale of the source, as a
training step does. ``--device cuda`` has never been run.
"""

from __future__ import annotations

import argparse
import platform
import time
from dataclasses import dataclass

import cv2
import numpy as np

from vdeblur.train.synth import BLUR_MODES, ShakeConfig, render_shake_clip
from vdeblur.train.synth.sources import skimage_photos


@dataclass(frozen=True)
class Throughput:
    mode: str
    pairs: int
    seconds: float

    @property
    def pairs_per_s(self) -> float:
        return self.pairs / self.seconds


def measure(mode: str, images: list[np.ndarray], *, clips: int, frames: int, size: int) -> Throughput:
    config = ShakeConfig(mode=mode)
    render_shake_clip(images[0], frames=frames, height=size, width=size, seed=0, config=config)  # warm-up
    start = time.perf_counter()
    for seed in range(clips):
        render_shake_clip(images[seed % len(images)], frames=frames, height=size, width=size, seed=seed, config=config)
    return Throughput(mode, clips * frames, time.perf_counter() - start)


def measure_device(device: str, *, clips: int, frames: int, size: int, batch: int) -> Throughput:
    """Batches of ``batch`` clips from ``DeviceShakeBatches`` (sources already on the device)."""
    import torch

    from vdeblur.train.device_data import DeviceShakeBatches

    target = torch.device(device)
    batches = DeviceShakeBatches([skimage_photos()], device=target, batch=batch, frames=frames, height=size,
                                 width=size, seed=0)
    sync = torch.cuda.synchronize if target.type == "cuda" else (lambda: None)
    batches.batch(0)  # warm-up
    sync()
    steps = max(1, clips // batch)
    start = time.perf_counter()
    for step in range(1, steps + 1):
        batches.batch(step)
    sync()
    return Throughput(f"device renderer ({device}, batch {batch})", steps * batch * frames, time.perf_counter() - start)


def markdown_table(rows: list[Throughput]) -> str:
    lines = ["| blur mode | pairs/s | ms/pair |", "|---|---:|---:|"]
    lines += [f"| `{r.mode}` | {r.pairs_per_s:.1f} | {1000 / r.pairs_per_s:.1f} |" for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256, help="square output size in px")
    parser.add_argument("--clips", type=int, default=40, help="clips per mode")
    parser.add_argument("--frames", type=int, default=4, help="frames per clip (pairs = clips * frames)")
    parser.add_argument("--device", default="cpu", help="device of the torch renderer's row (cuda: never run)")
    parser.add_argument("--batch", type=int, default=8, help="clips per batch of the torch renderer")
    args = parser.parse_args(argv)
    cv2.setNumThreads(1)  # one DataLoader worker's share; numba's loops are single-threaded already
    if args.device == "cpu":
        import torch

        torch.set_num_threads(1)  # the same one-thread share for the torch row
    source = skimage_photos()
    images = [source.read(i) for i in range(len(source))]
    rows = [measure(mode, images, clips=args.clips, frames=args.frames, size=args.size) for mode in BLUR_MODES]
    rows.append(measure_device(args.device, clips=args.clips, frames=args.frames, size=args.size, batch=args.batch))
    print(f"Synthesis at {args.size}x{args.size}, {args.clips} clips x {args.frames} frames per mode, one thread "
          f"({platform.processor() or platform.machine()}, {platform.python_version()})\n")
    print(markdown_table(rows))


if __name__ == "__main__":
    main()
