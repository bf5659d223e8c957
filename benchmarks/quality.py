"""Quality on paired clips: PSNR/SSIM against the sharp frames, and a temporal-consistency figure.

Clips come from a GoPro-layout folder (``<root>/test/<sequence>/{blur,sharp}/*.png``) when given,
otherwise they are synthesised: ``render_shake_clip`` on scikit-image's bundled photos with fixed
seeds. Training draws its synthesis seeds from a 63-bit generator, so these small seeds give shake,
crops and noise that training never saw; the photos themselves may have been seen (when training
used the ``skimage`` source), which is why a GoPro folder is the real held-out test.

Every method (a model or a classical baseline) is a function from a blurred (T, H, W, 3) uint8 clip
to a deblurred one; models run frame by frame through the clip with their recurrent state carried,
exactly as the engine runs a video. Metrics follow ``vdeblur.train.metrics`` (scikit-image's GoPro
convention) on 8-bit frames, averaged over all frames.

Temporal consistency: the mean absolute difference between consecutive frames (0..255 scale) of
the output, beside the same figure for the sharp ground truth. The camera moves in every clip, so
the ground truth changes too; flicker shows as output figures *above* the ground truth's.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from vdeblur.engine.adapt.finetune import run_clip
from vdeblur.train.archs.base import DeblurModel
from vdeblur.train.data import scan_gopro
from vdeblur.train.frames import from_uint8
from vdeblur.train.faults import wrong_motion
from vdeblur.train.metrics import psnr_ssim_uint8
from vdeblur.train.motion import GlobalMotion, estimate_motions
from vdeblur.train.synth import render_shake_clip
from vdeblur.train.synth.sources import read_rgb, skimage_photos

from .baselines import FrameFilter
from .settings import QualityConfig

ClipMethod = Callable[[np.ndarray], np.ndarray]  # (T, H, W, 3) uint8 -> (T, H, W, 3) uint8
# Far from anything SyntheticDataset draws (np.random seeds of 63 bits), so held-out shake and crops.
HELD_OUT_SEED = 7_000
GOLDEN_ANGLE = math.pi * (3 - math.sqrt(5))  # radians: successive directions never line up


@dataclass(frozen=True)
class Clip:
    name: str
    blurred: np.ndarray  # (T, H, W, 3) uint8
    sharp: np.ndarray  # (T, H, W, 3) uint8
    # (T, H, W) bool: where objects move on their own (sets rendered with --objects), else None
    moving: np.ndarray | None = None


@dataclass(frozen=True)
class QualityResult:
    method: str
    kind: str  # "model" or "baseline"
    weights: str  # checkpoint path, "random (untrained)" or "-" for baselines
    psnr: float
    ssim: float
    flicker: float  # mean |out[t] - out[t-1]| in 0..255
    flicker_sharp: float  # the same for the sharp ground truth
    fps: float  # frames processed per second in this pass (torch FP32 for models), for the Pareto plot
    frames: int
    data: str  # where the clips came from


def synthetic_clips(config: QualityConfig) -> list[Clip]:
    """``config.clips`` shaken clips, cycling through the bundled photos, seeds from HELD_OUT_SEED."""
    source = skimage_photos()
    clips = []
    for i in range(config.clips):
        seed = HELD_OUT_SEED + i
        blurred, sharp = render_shake_clip(source.read(i % len(source)), frames=config.frames, height=config.height,
                                           width=config.width, seed=seed)
        clips.append(Clip(f"{Path(source.paths[i % len(source)]).stem}-seed{seed}", blurred, sharp))
    return clips


def gopro_clips(root: Path, frames_per_sequence: int) -> list[Clip]:
    """The first ``frames_per_sequence`` frames of every sequence of ``<root>/test``."""
    clips = []
    for seq in scan_gopro(root, "test"):
        n = min(frames_per_sequence, len(seq.blur))
        masks = sorted((seq.blur[0].parent.parent / "mask").glob("*.png"))
        moving = np.stack([cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) > 127 for p in masks[:n]]) if masks else None
        clips.append(Clip(seq.name, np.stack([read_rgb(p) for p in seq.blur[:n]]),
                          np.stack([read_rgb(p) for p in seq.sharp[:n]]), moving))
    return clips


def load_clips(config: QualityConfig) -> tuple[list[Clip], str]:
    """The clips to evaluate on and a one-line description of them."""
    if config.gopro is not None:
        clips = gopro_clips(config.gopro, config.gopro_frames)
        return clips, f"GoPro test set {config.gopro} ({len(clips)} sequences, first {config.gopro_frames} frames each)"
    clips = synthetic_clips(config)
    return clips, (f"synthetic: {len(clips)} clips x {config.frames} frames at {config.width}x{config.height}, "
                   f"render_shake_clip on scikit-image photos, seeds {HELD_OUT_SEED}..{HELD_OUT_SEED + len(clips) - 1}")


def model_method(model: DeblurModel, misalign_px: float = 0.0) -> ClipMethod:
    """Run ``model`` (FP32, on its own device) through a clip frame by frame with its state carried.

    ``misalign_px``: an ``rgb+motion`` model is told every estimated motion shifted by this many pixels,
    confidence kept (the direction turns by the golden angle from frame to frame): how it copes when the
    alignment is wrong and looks certain, against a model that never trusted one."""
    if not misalign_px:
        return lambda clip: run_clip(model, clip)

    def told(t: int, frame: torch.Tensor, state: Any) -> list[GlobalMotion]:
        h, w = frame.shape[-2:]
        return [wrong_motion(m, h, w, shift_px=misalign_px, direction=t * GOLDEN_ANGLE)
                for m in estimate_motions(frame, state[0])]

    return lambda clip: run_clip(model, clip, told)


def baseline_method(frame_filter: FrameFilter) -> ClipMethod:
    return lambda clip: np.stack([frame_filter(frame) for frame in clip])


def evaluate(method: str, kind: str, weights: str, run: ClipMethod, clips: Sequence[Clip], data: str) -> QualityResult:
    """PSNR/SSIM, flicker and speed of one method over every clip (frame-weighted means)."""
    if not clips:
        raise ValueError("no clips to evaluate on")
    psnrs, ssims, flicker, flicker_sharp, frames, seconds = [], [], [], [], 0, 0.0
    for clip in clips:
        start = time.perf_counter()
        out = run(clip.blurred)
        seconds += time.perf_counter() - start
        if out.shape != clip.sharp.shape or out.dtype != np.uint8:
            raise ValueError(f"{method} returned {out.shape} {out.dtype} for clip {clip.name} of {clip.sharp.shape} uint8")
        p, s = psnr_ssim_uint8(from_uint8(out), from_uint8(clip.sharp))
        t = len(out)
        psnrs.append(p * t)
        ssims.append(s * t)
        frames += t
        if t > 1:
            flicker.append(mean_frame_difference(out))
            flicker_sharp.append(mean_frame_difference(clip.sharp))
    return QualityResult(method, kind, weights, sum(psnrs) / frames, sum(ssims) / frames,
                         float(np.mean(flicker)) if flicker else float("nan"),
                         float(np.mean(flicker_sharp)) if flicker_sharp else float("nan"),
                         frames / seconds, frames, data)


def mean_frame_difference(clip: np.ndarray) -> float:
    """Mean |frame[t] - frame[t-1]| over pixels, channels and t >= 1, in 0..255 units."""
    if len(clip) < 2:
        raise ValueError(f"a frame-to-frame difference needs at least 2 frames; got {len(clip)}")
    diffs = np.abs(np.diff(clip.astype(np.int16), axis=0))
    return float(diffs.mean())
