"""Alignment faults for training a model that takes its previous frame aligned (``rgb+motion``).

On real footage the global motion is sometimes wrong or missing, and a cut the scene detector does
not see hands the model a previous frame of another scene. Trained only on clips where one
homography aligns everything, a model learns to trust its previous frame blindly and pastes it in
where it does not belong (ghosts). ``train.alignment_faults`` gives that share of the frames that
have a previous frame one of three faults, drawn with equal odds:

- ``failed``: no estimate (what the estimator returns on a flat frame or a cut it notices);
- ``wrong``: the estimate shifted by 3-16 px in a random direction and turned by up to 1 degree,
  confidence kept (a dominant moving object pulls the estimate away while it still looks certain);
- ``cut``: the whole state (previous frame and memory) of another clip in the batch, with the
  motion estimated against its previous frame as the engine would (usually no estimate, sometimes
  a confident wrong one).

Draws use torch's generator, so a resumed run repeats them exactly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from .motion import NO_MOTION, GlobalMotion, estimate_motions

FAULTS = ("failed", "wrong", "cut")
WRONG_SHIFT_PX = (3.0, 16.0)
WRONG_TURN_DEG = 1.0


def with_alignment_faults(frame: torch.Tensor, state: Sequence[torch.Tensor], share: float
                          ) -> tuple[list[GlobalMotion], tuple[torch.Tensor, ...]]:
    """(B, 3, H, W) frames and the state a ``rgb+motion`` model is about to run with -> the motions
    onto each previous frame (estimated, then faulted for ``share`` of the frames that have one) and
    the state, where a ``cut`` replaced an item's state with another item's."""
    b, _, h, w = frame.shape
    previous = state[0][:, :3, :h, :w].detach()
    has_previous = previous.flatten(1).abs().amax(1) > 0  # the zero state of a window's first frame has none
    draw = torch.rand(b)
    kind = torch.randint(len(FAULTS), (b,))
    faulted = (draw < share) & has_previous
    donor = torch.roll(torch.arange(b), 1)  # the clip whose state a cut hands over
    cut = faulted & (kind == FAULTS.index("cut")) & has_previous[donor] & (b > 1)
    if cut.any():
        state = tuple(torch.where(cut.view(-1, *[1] * (s.dim() - 1)).to(s.device), s[donor], s) for s in state)
    motions = []
    for i, motion in enumerate(estimate_motions(frame, state[0].detach())):
        if faulted[i] and FAULTS[int(kind[i])] == "failed":
            motion = NO_MOTION
        elif faulted[i] and FAULTS[int(kind[i])] == "wrong" and motion.found:
            motion = _shifted(motion, h, w)
        motions.append(motion)
    return motions, tuple(state)


def _shifted(motion: GlobalMotion, height: int, width: int) -> GlobalMotion:
    """``motion`` followed by a random turn about the frame's centre and a random shift."""
    lo, hi = WRONG_SHIFT_PX
    length = lo + (hi - lo) * float(torch.rand(()))
    direction = 2 * math.pi * float(torch.rand(()))
    turn = math.radians(WRONG_TURN_DEG) * (2 * float(torch.rand(())) - 1)
    return wrong_motion(motion, height, width, shift_px=length, direction=direction, turn=turn)


def wrong_motion(motion: GlobalMotion, height: int, width: int, *, shift_px: float, direction: float,
                 turn: float = 0.0) -> GlobalMotion:
    """``motion`` followed by a turn of ``turn`` radians about the frame's centre and a shift of ``shift_px``
    towards ``direction`` (radians), its confidence kept: an estimate that is wrong and looks certain.
    No estimate stays none."""
    if not motion.found:
        return motion
    cx, cy = (width - 1) / 2, (height - 1) / 2
    c, s = math.cos(turn), math.sin(turn)
    # In the previous frame's coordinates: rotate about the centre, then shift.
    error = np.array([[c, -s, cx - c * cx + s * cy + shift_px * math.cos(direction)],
                      [s, c, cy - s * cx - c * cy + shift_px * math.sin(direction)],
                      [0.0, 0.0, 1.0]])
    return GlobalMotion(error @ motion.homography, motion.confidence)
