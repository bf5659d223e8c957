"""Accuracy and CPU cost of the global motion estimator (``python -m vdeblur.benchmarks.motion``).

The aligned-previous-frame input of ``vdeblur_deep`` rests on ``vdeblur.train.motion.estimate_motion``
run on two consecutive *blurred* frames. This renders shaken clips of the held-out photographs with the
project's camera model (temporal blur, default noise and compression draws), where the true motion
between frames is known: the renderer's sharp view of frame t shows the source at ``H_t p``, so a pixel
p of frame t lies at ``H_{t-1}^-1 H_t p`` in frame t-1. Per resolution it prints the mean and 95th
percentile of the position error over a grid of pixels (px), the share of pairs without an estimate,
and the estimator's CPU time per pair on one thread (OpenCV's own pool set to 1).
"""

from __future__ import annotations

import argparse
import platform
import time
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from vdeblur.train.motion import estimate_motion
from vdeblur.train.synth.camera import random_camera_path
from vdeblur.train.synth.clip import ShakeConfig, draw_shot, shake_config
from vdeblur.train.synth.degrade import degrade_clip, srgb_to_linear
from vdeblur.train.synth.sources import read_rgb
from vdeblur.train.synth.temporal import render_temporal_clip, subframe_homographies

SIZES = {"240p": (240, 320), "360p": (360, 640), "720p": (720, 1280)}


@dataclass(frozen=True)
class MotionScore:
    size: str
    pairs: int
    failed: int
    mean_px: float
    p95_px: float
    cpu_ms: float


def shaken_clip(image: np.ndarray, *, frames: int, height: int, width: int, seed: int,
                config: ShakeConfig) -> tuple[np.ndarray, list[np.ndarray]]:
    """A temporal-blur clip as ``render_shake_clip`` draws it, with each frame's sharp-view homography."""
    rng = np.random.default_rng(seed)
    config = replace(config, mode="temporal")
    _, blur, duty, center = draw_shot(rng, config, image.shape[:2], height=height, width=width)
    path = random_camera_path(rng, config.camera, frames=frames, height=height, width=width, blur_px=blur, duty=duty)
    steps = dict(frames=frames, duty=duty, source_center=center, max_step_px=config.max_step_px,
                 max_subframes=config.max_subframes)
    blurred, _ = render_temporal_clip([srgb_to_linear(image)], path, **steps)
    views = [homs[len(homs) // 2] for homs in subframe_homographies(path, **steps)]
    return degrade_clip(blurred, rng, config.noise, config.compression), views


def position_errors(estimated: np.ndarray, truth: np.ndarray, height: int, width: int) -> np.ndarray:
    ys, xs = np.mgrid[0:height:16, 0:width:16]
    pts = np.stack([xs.ravel(), ys.ravel(), np.ones(xs.size)])
    a, b = estimated @ pts, truth @ pts
    return np.linalg.norm(a[:2] / a[2] - b[:2] / b[2], axis=0)


def measure(images: list[np.ndarray], size: str, *, clips: int, frames: int, blur_px: tuple[float, float]) -> MotionScore:
    height, width = SIZES[size]
    config = shake_config(blur_px=blur_px)
    errors, failed, pairs, cpu = [], 0, 0, 0.0
    for seed in range(clips):
        image = images[seed % len(images)]
        scale = max(height / image.shape[0], width / image.shape[1], 1.0)
        if scale > 1:
            image = cv2.resize(image, (round(image.shape[1] * scale), round(image.shape[0] * scale)), interpolation=cv2.INTER_CUBIC)
        blurred, views = shaken_clip(image, frames=frames, height=height, width=width, seed=seed, config=config)
        for t in range(1, frames):
            tick = time.process_time()
            found = estimate_motion(blurred[t - 1], blurred[t])
            cpu += time.process_time() - tick
            pairs += 1
            if not found.found:
                failed += 1
                continue
            errors.append(position_errors(found.homography, np.linalg.inv(views[t - 1]) @ views[t], height, width))
    err = np.concatenate(errors) if errors else np.array([np.nan])
    return MotionScore(size, pairs, failed, float(err.mean()), float(np.percentile(err, 95)), 1e3 * cpu / pairs)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default="data/photos/test", help="folder of held-out photographs")
    parser.add_argument("--clips", type=int, default=10)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--blur-px", type=float, nargs=2, default=(5.0, 12.0))
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    args = parser.parse_args(argv)
    paths = sorted(p for p in Path(args.source).glob("*") if p.suffix.lower() in (".jpg", ".png"))
    if not paths:
        raise SystemExit(f"motion benchmark: no .jpg/.png photographs in {args.source} (bash scripts/fetch_photos.sh)")
    cv2.setNumThreads(1)
    images = [read_rgb(p) for p in paths]
    print(f"# {platform.processor() or platform.machine()}, {args.clips} clips x {args.frames} frames per size, "
          f"blur {args.blur_px[0]:g}-{args.blur_px[1]:g} px, photos of {args.source}")
    print("| size | pairs | no estimate | mean error (px) | p95 error (px) | CPU ms per pair |")
    print("|---|---:|---:|---:|---:|---:|")
    for size in args.sizes:
        s = measure(images, size, clips=args.clips, frames=args.frames, blur_px=tuple(args.blur_px))
        print(f"| {s.size} | {s.pairs} | {s.failed} | {s.mean_px:.2f} | {s.p95_px:.2f} | {s.cpu_ms:.1f} |")


if __name__ == "__main__":
    main()
