"""Ghosts on real footage: does a model fed the previous frame paste it where things move on their own?

    python -m vdeblur.benchmarks.ghosts VIDEO --reference vdeblur_deep --candidate runs/x/last.safetensors \
        --frames 40 --out benchmarks/results/ghosts

Real video has no sharp ground truth, so this compares two models on the same frames: the candidate
(which sees the previous frame, aligned by the global motion) against a reference (which does not).
Where the picture moves on its own (|frame t - frame t-1| above ``--moving`` levels on the grey
frames, people walking in a fixed camera's view), a ghost is the candidate's output leaning towards
the previous frame: the *ghost share* is the least-squares coefficient g of
``candidate - reference ~ g * (previous - current)`` over those pixels (0: no trace of the previous
frame, 1: the previous frame pasted in). The same figure over the still pixels is printed beside it,
and a PNG per listed frame shows input, reference, candidate and their difference (x4) side by side.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import av
import cv2
import numpy as np
import torch

from vdeblur.engine.backends import load_backend
from vdeblur.engine.stream import DeblurStream


def read_frames(path: Path, count: int) -> list[np.ndarray]:
    frames = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="rgb24"))
            if len(frames) == count:
                break
    if len(frames) < 2:
        raise SystemExit(f"ghosts: {path} has fewer than 2 video frames")
    return frames


def ghost_share(delta: np.ndarray, change: np.ndarray, where: np.ndarray) -> float:
    """Least-squares g of delta ~ g * change over the (H, W) pixels ``where`` (all channels)."""
    d, c = delta[where].astype(np.float64).ravel(), change[where].astype(np.float64).ravel()
    return float((d * c).sum() / max((c * c).sum(), 1e-9))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("video", type=Path)
    parser.add_argument("--reference", required=True, help="model name or checkpoint without the previous frame")
    parser.add_argument("--candidate", required=True, help="checkpoint that takes the previous frame aligned")
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--moving", type=float, default=20.0, help="grey-level change that marks a moving pixel")
    parser.add_argument("--show", type=int, nargs="*", default=[10, 20, 30], help="frame indices to draw")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    frames = read_frames(args.video, args.frames)
    streams = {name: DeblurStream(load_backend(spec, "torch", "cpu"))
               for name, spec in (("reference", args.reference), ("candidate", args.candidate))}
    outs = {name: [s.push(f) for f in frames] for name, s in streams.items()}
    args.out.mkdir(parents=True, exist_ok=True)
    moving_shares, still_shares = [], []
    print("| frame | moving pixels | ghost share, moving | ghost share, still |")
    print("|---:|---:|---:|---:|")
    for t in range(1, len(frames)):
        grey = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY).astype(np.int16) for f in (frames[t - 1], frames[t])]
        moving = np.abs(grey[1] - grey[0]) > args.moving
        delta = outs["candidate"][t].astype(np.int16) - outs["reference"][t].astype(np.int16)
        change = frames[t - 1].astype(np.int16) - frames[t].astype(np.int16)
        m = ghost_share(delta, change, moving) if moving.any() else float("nan")
        s = ghost_share(delta, change, ~moving)
        moving_shares.append(m), still_shares.append(s)
        print(f"| {t} | {moving.mean():.1%} | {m:+.3f} | {s:+.3f} |")
        if t in args.show:
            diff = np.clip(128 + 4 * delta, 0, 255).astype(np.uint8)
            row = np.concatenate([frames[t], outs["reference"][t], outs["candidate"][t], diff], axis=1)
            cv2.imwrite(str(args.out / f"frame{t:04d}.png"), cv2.cvtColor(row, cv2.COLOR_RGB2BGR))
    print(f"mean ghost share: moving {np.nanmean(moving_shares):+.3f}, still {np.mean(still_shares):+.3f} "
          f"over {len(frames) - 1} frames of {args.video.name}")


if __name__ == "__main__":
    main()
