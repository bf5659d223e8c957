"""Training pairs made from the clip itself: its sharpest frames (as the base model restores them,
by default), shaken by the project's own camera synthesis (``render_shake_clip``), with the sensor
noise and compression mix the models were trained on.

``plan_pairs`` reads how blurred the clip's frames are; the adapter decides which blur range the
training and held-back pairs get from that (``AdaptConfig.blur_px``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from vdeblur.train.synth.clip import ShakeConfig, render_shake_clip
from vdeblur.train.synth.degrade import h264_roundtrip

from .sharpness import estimate_blur_px
from .survey import ClipSurvey

# Shorter than this a blur is within what the sharpest frame itself may carry; longer than this it
# is past what the models were trained on.
_MIN_BLUR_PX, _MAX_BLUR_PX = 0.5, 40.0


@dataclass(frozen=True, eq=False)
class PairPlan:
    sources: tuple[np.ndarray, ...]  # (H, W, 3) uint8 frames the pairs are cut from
    blur_px: tuple[float, float]  # range of mean blur, px at the clip's resolution
    noise: float  # std added to the blurred side, [0, 1] units
    crf: int | None  # H.264 CRF the blurred side goes through; None: not compressed
    frame_blur_px: np.ndarray  # (N,) the estimate for every frame of the clip, for the report
    degrade: str = "measured"  # "measured": the clip's noise level; "training": the training mix

    def describe(self) -> str:
        lo, hi = self.blur_px
        coded = f", H.264 CRF {self.crf}" if self.crf is not None else ""
        return (f"{len(self.sources)} source frame(s), blur {lo:.1f}-{hi:.1f} px, "
                f"noise {self.noise * 255:.1f}/255{coded}")


def plan_pairs(survey: ClipSurvey, targets: Sequence[np.ndarray], *, crf: int | None = None,
               blur_px: tuple[float, float] | None = None, degrade: str = "measured") -> PairPlan:
    """Pairs cut from ``targets`` (the survey's sharpest candidates, restored by the base model,
    sharpest first), blurred as much as the clip's frames are.

    The blur of every frame is read off its sharpness score against ``targets[0]`` re-blurred by
    known lengths (``estimate_blur_px``): measured on the clip's own content, so texture does not
    pass for sharpness. Restored targets make that an absolute length: a clip whose every frame is
    blurred still gets pairs as blurred as its frames, not merely as the gap to its sharpest one.
    """
    if not targets:
        raise ValueError("plan_pairs needs at least one target frame")
    blur = estimate_blur_px(targets[0], survey.scores, survey.noise)  # (N,) px
    lo, hi = np.percentile(blur, [10, 90])
    lo = float(np.clip(lo, _MIN_BLUR_PX, _MAX_BLUR_PX))
    hi = float(np.clip(hi, lo + _MIN_BLUR_PX, _MAX_BLUR_PX))
    return PairPlan(tuple(targets), blur_px or (lo, hi), survey.noise, crf, np.asarray(blur), degrade)


def render_pairs(plan: PairPlan, *, count: int, frames: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(blurred, sharp), each (count, frames, size, size, 3) uint8: clip ``i`` is cut from source
    ``i % len(sources)`` at a random place, its camera path drawn from ``seed + i``."""
    if plan.degrade == "training":  # the sensor noise and compression mix the models were trained on
        config = ShakeConfig(blur_px=plan.blur_px)
    else:
        config = ShakeConfig(blur_px=plan.blur_px, noise=None, compression=None)
    blurred, sharp = [], []
    for i in range(count):
        source = plan.sources[i % len(plan.sources)]
        b, s = render_shake_clip(source, frames=frames, height=size, width=size, seed=seed + i, config=config)
        blurred.append(b if plan.degrade == "training" else _degrade(b, plan, np.random.default_rng((seed, i))))
        sharp.append(s)
    return np.stack(blurred), np.stack(sharp)


def _degrade(frames: np.ndarray, plan: PairPlan, rng: np.random.Generator) -> np.ndarray:
    if plan.noise > 0:
        noisy = frames.astype(np.float32) + rng.standard_normal(frames.shape, dtype=np.float32) * (plan.noise * 255)
        frames = np.clip(noisy + 0.5, 0, 255).astype(np.uint8)
    return h264_roundtrip(frames, plan.crf) if plan.crf is not None else frames
