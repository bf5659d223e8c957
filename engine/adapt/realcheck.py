"""The check on the clip's own frames: do the adapted weights bring its real blurred frames closer
together, onto one picture of the moment, than the base weights do?

The held-back pairs the adapter also scores are synthetic: their blur is the project's own, their
sharp side the base model's restoration. Adapted weights learn that restoration's look, and those
pairs reward it: on clips blurred throughout they read up to +3 dB where the true result was a loss
(docs/adapt.md). Real frames have no sharp truth, but the survey's sharpest frame of a stretch and
the frames around it show the same moment, blurred differently: deblurred well, they agree.

The reference is the sharpest frame as the *adapted* weights restore it, and both weights' outputs
for its neighbours are scored against it. Against that frame as decoded, a copy that deblurred
beyond the frame's own residual blur moved its neighbours away from it and read as a loss: on the
realistic-shutter set that refused copies worth +1.3 and +0.5 dB. Against the base weights'
restoration, the base weights' own look won on most clips, winners included. The adapted copy's restoration
favours the copy, so what this refuses is a copy that does not bring the frames together even on
its own terms; those were the clips that lost most (measured in docs/adapt.md).
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
# What the neighbours are scored against: the sharpest frame as the adapted weights restore it (the
# check), or, for comparing checks (benchmarks/adapt_checks.py), as decoded, as the base weights
# restore it, or as each weights restore it themselves.
REFERENCES = ("adapted", "decoded", "base", "each")


def checkable(candidates: Sequence[Candidate]) -> list[Candidate]:
    """The candidates the check runs on: those with at least one neighbour to bring to them."""
    return [c for c in candidates if len(c.window) > 1]


def window_outputs(model: DeblurModel, candidates: Sequence[Candidate]) -> list[np.ndarray]:
    """The model's output for each candidate's window of decoded frames, (T, H, W, 3) uint8 each."""
    return [run_clip(model, np.stack(c.window)) for c in candidates]


def closeness(outputs: Sequence[np.ndarray], references: Sequence[np.ndarray], candidates: Sequence[Candidate]) -> np.ndarray:
    """(K,) PSNR, dB, of each output frame of a neighbour against its window's reference frame
    ((H, W, 3) uint8, one per candidate), after shifting it onto that frame (phase correlation: the
    camera moved between them)."""
    scores = []
    for out, reference, c in zip(outputs, references, candidates):
        for t, frame in enumerate(out):
            if t != c.at:
                scores.append(psnr_u8(*_crop(_shift_onto(frame, reference), reference)))
    return np.asarray(scores)


def real_frames_gain(base_outputs: Sequence[np.ndarray], adapted_outputs: Sequence[np.ndarray],
                     candidates: Sequence[Candidate], reference: str = "adapted") -> float:
    """Mean dB the adapted weights bring the neighbours closer to the sharpest frame, as the adapted
    weights restore it (``reference``: see ``REFERENCES``), than the base weights do; nan when no
    candidate has a neighbour."""
    if reference not in REFERENCES:
        raise ValueError(f"unknown reference {reference!r}; allowed: {', '.join(REFERENCES)}")

    by_base = [out[c.at] for out, c in zip(base_outputs, candidates)]
    by_adapted = [out[c.at] for out, c in zip(adapted_outputs, candidates)]
    decoded = [c.window[c.at] for c in candidates]
    base_ref, adapted_ref = {"adapted": (by_adapted, by_adapted), "decoded": (decoded, decoded),
                             "base": (by_base, by_base), "each": (by_base, by_adapted)}[reference]
    base, adapted = closeness(base_outputs, base_ref, candidates), closeness(adapted_outputs, adapted_ref, candidates)
    return float(np.mean(adapted - base)) if len(base) else float("nan")


def _shift_onto(frame: np.ndarray, reference: np.ndarray) -> np.ndarray:
    (dx, dy), _ = cv2.phaseCorrelate(luma(reference).astype(np.float64), luma(frame).astype(np.float64))
    shift = np.float32([[1, 0, -dx], [0, 1, -dy]])
    return cv2.warpAffine(frame, shift, (frame.shape[1], frame.shape[0]), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REFLECT)


def _crop(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    my, mx = max(1, round(a.shape[0] * _MARGIN)), max(1, round(a.shape[1] * _MARGIN))
    return a[my:-my, mx:-mx], b[my:-my, mx:-mx]
