"""Pad frames to a model's multiple and crop results back, so any frame size works."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from collections.abc import Sequence
from typing import Any, Protocol

from .archs.base import padded_size
from .inputs import prepare_input
from .motion import GlobalMotion


def pad_to_multiple(frame: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad the bottom/right edges of (B, C, H, W) up to a multiple.

    Reflection keeps image statistics at the border (zero padding would add a fake dark edge the
    network tries to 'deblur'); replicate takes over where the pad is larger than the frame, which
    reflection cannot do.
    """
    h, w = frame.shape[-2:]
    ph, pw = padded_size(h, multiple) - h, padded_size(w, multiple) - w
    if ph == 0 and pw == 0:
        return frame
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(frame, (0, pw, 0, ph), mode=mode)


class Steppable(Protocol):
    """A model or an engine backend: both run one step on a padded frame with the model's inputs."""

    pad_multiple: int
    input_kind: str

    def run(self, frame: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]: ...


def run_padded(model: Steppable, frame: torch.Tensor, state: Any,
               motions: Sequence[GlobalMotion] | None = None) -> tuple[torch.Tensor, Any]:
    """One step on an RGB frame of any size: (edge or motion channels) -> pad -> run -> crop.

    The state stays at the padded size, which ``initial_state`` already accounts for.
    """
    h, w = frame.shape[-2:]
    x = pad_to_multiple(prepare_input(frame, model.input_kind, state, motions), model.pad_multiple)
    out, new_state = model.run(x, state)
    return out[..., :h, :w], new_state
