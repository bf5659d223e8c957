"""What ``--tile`` costs: PSNR of tiled against whole-frame output, and time per frame, per tile size
(``python -m vdeblur.benchmarks.tiling``).

Both runs carry their state through the same clip (the sample clip by default); the PSNR is between
the two 8-bit outputs, so it measures the seams and the lost border context, not deblurring quality.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

import numpy as np
import torch

from vdeblur import DEFAULT_MODEL
from vdeblur.engine.backends import load_backend
from vdeblur.engine.backends.base import Backend
from vdeblur.engine.sample import render_sample
from vdeblur.engine.stream import DeblurStream
from vdeblur.engine.tiling import TiledRunner, TileSpec
from vdeblur.train.frames import from_uint8
from vdeblur.train.metrics import psnr_ssim_uint8


def run(backend: Backend, frames: Sequence[np.ndarray], tile: TileSpec | None) -> tuple[list[np.ndarray], float]:
    """Outputs and seconds per frame of one stream over ``frames``."""
    stream = DeblurStream(backend, tile=tile)
    start = time.perf_counter()
    outs = [stream.push(f) for f in frames]
    return outs, (time.perf_counter() - start) / len(frames)


def compare(backend: Backend, frames: Sequence[np.ndarray], specs: Sequence[TileSpec]) -> list[str]:
    whole, whole_s = run(backend, frames, None)
    h, w = frames[0].shape[:2]
    lines = ["| tile | overlap | tiles per frame | min PSNR vs whole (dB) | mean (dB) | ms/frame |",
             "|---:|---:|---:|---:|---:|---:|", f"| whole {w}x{h} | - | 1 | - | - | {1000 * whole_s:.0f} |"]
    for spec in specs:
        outs, seconds = run(backend, frames, spec)
        psnrs = [psnr_ssim_uint8(from_uint8(a)[None], from_uint8(b)[None])[0] for a, b in zip(outs, whole)]
        tiles = len(TiledRunner(backend, spec).grid(h, w))
        lines.append(f"| {spec.tile} | {spec.overlap} | {tiles} | {min(psnrs):.1f} | {np.mean(psnrs):.1f} | "
                     f"{1000 * seconds:.0f} |")
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None,
                        help=f"checkpoint or model name [the bundled default, {DEFAULT_MODEL}; vdeblur_fast for real time]")
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--tiles", default="128:16,128:32,192:32,256:48", help="TILE:OVERLAP,...")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    specs = [TileSpec(*map(int, item.split(":"))) for item in args.tiles.split(",")]
    frames = list(render_sample(frames_per_shot=args.frames)[: args.frames])
    backend = load_backend(args.model, "torch", "cpu")
    print(f"{args.frames} frames of the sample clip, {backend.label}, {args.threads} thread(s)\n")
    print("\n".join(compare(backend, frames, specs)))


if __name__ == "__main__":
    main()
