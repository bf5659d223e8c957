"""The check on the clip's own frames: do the adapted weights bring its real blurred frames closer to
the sharpest frame next to them than the base weights do?

The held-back pairs the adapter also scores are synthetic: their blur is the project's own, their
sharp side the base model's restoration. Adapted weights learn that restoration's look, and those
pairs reward it: on clips blurred throughout they read up to +2 dB where the true result was a loss
(docs/adapt.md). Real frames have no sharp truth, but the survey's sharpest frame of a stretch and
the frames around it show the same moment: deblurred, the neighbours should come closer to it.
Both weights are scored against the same reference, so its own residual blur and the misalignment
left after a global shift cost both alike; only their difference is used.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from vdeblur.train.archs.base import DeblurModel

from .finetune import psnr_u8, run_clip
from .sharpness import luma
from .survey import Candidate

_MARGIN = 0.05  # share of each side left out of the comparison: what a shift brings in from the edge


def window_outputs(model: DeblurModel, candidates: Sequence[Candidate]) -> list[np.ndarray]:
    """The model's output for each candidate's window of decoded frames, (T, H, W, 3) uint8 each."""
    return [run_clip(model, np.stack(c.window)) for c in candidates]


def closeness(outputs: Sequence[np.ndarray], candidates: Sequence[Candidate]) -> np.ndarray:
    """(K,) PSNR, dB, of each output frame of a neighbour against its window's sharpest frame as
    decoded, after shifting it onto that frame (phase correlation: the camera moved between them)."""
    scores = []
    for out, c in zip(outputs, candidates):
        reference = c.window[c.at]
        for t, frame in enumerate(out):
            if t != c.at:
                scores.append(psnr_u8(*_crop(_shift_onto(frame, reference), reference)))
    return np.asarray(scores)


def real_frames_gain(base_outputs: Sequence[np.ndarray], adapted_outputs: Sequence[np.ndarray],
                     candidates: Sequence[Candidate]) -> float:
    """Mean dB the adapted weights bring the neighbours closer to their sharpest frame than the base
    weights do; nan when no candidate has a neighbour."""
    base, adapted = closeness(base_outputs, candidates), closeness(adapted_outputs, candidates)
    return float(np.mean(adapted - base)) if len(base) else float("nan")


def _shift_onto(frame: np.ndarray, reference: np.ndarray) -> np.ndarray:
    (dx, dy), _ = cv2.phaseCorrelate(luma(reference).astype(np.float64), luma(frame).astype(np.float64))
    shift = np.float32([[1, 0, -dx], [0, 1, -dy]])
    return cv2.warpAffine(frame, shift, (frame.shape[1], frame.shape[0]), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REFLECT)


def _crop(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    my, mx = max(1, round(a.shape[0] * _MARGIN)), max(1, round(a.shape[1] * _MARGIN))
    return a[my:-my, mx:-mx], b[my:-my, mx:-mx]
