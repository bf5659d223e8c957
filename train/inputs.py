"""What a model is fed for an RGB frame: one function for training, export checks and the engine.

A model declares its ``input_kind``; every caller turns RGB frames into that input here, so the
channels a model is trained on are exactly the ones it sees at inference:
- ``rgb``: the frame itself;
- ``rgb+canny``: plus the Canny edge map (``edges.py``, the DeblurGAN+Edge model);
- ``rgb+motion``: plus the global motion from the frame back to the previous one (``motion.py``),
  estimated against the previous frame the model keeps as the first slot of its state.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from .edges import add_edge_channel
from .motion import GlobalMotion, add_motion_channels

INPUT_KINDS = ("rgb", "rgb+canny", "rgb+motion")


def prepare_input(frame: torch.Tensor, input_kind: str, state: Any = (),
                  motions: Sequence[GlobalMotion] | None = None) -> torch.Tensor:
    """(B, 3, H, W) RGB in [0, 1] -> what a model with ``input_kind`` takes, given the state it is
    about to be run with (``rgb+motion`` reads the previous frame from its first slot, and takes the
    motions onto it when the caller has estimated them already)."""
    if input_kind == "rgb":
        return frame
    if input_kind == "rgb+canny":
        return add_edge_channel(frame)
    if input_kind == "rgb+motion":
        if not len(state):
            raise ValueError("an rgb+motion model keeps its previous frame as the first state slot; got no state")
        return add_motion_channels(frame, state[0], motions)
    raise ValueError(f"unknown input kind {input_kind!r}; allowed: {', '.join(INPUT_KINDS)}")
