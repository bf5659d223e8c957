"""The small protocol every inference backend implements (one backend per file).

A backend runs *one model step* on a frame that is already padded to ``pad_multiple`` and already
has the model's input channels (see ``vdeblur.train.edges.prepare_input``). Padding, cropping,
edge channels and state resets are the stream's job (``vdeblur.engine.stream``), so they are
written once for all backends. The state is opaque to callers: whatever ``initial_state`` returned
is passed back into ``run`` and replaced by what ``run`` returns.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch

BackendState = Any


@runtime_checkable
class Backend(Protocol):
    name: str  # "torch", "onnxruntime", "tensorrt"
    device: torch.device  # where ``run`` wants its input frame and returns its output
    pad_multiple: int
    input_kind: str  # "rgb" or "rgb+canny"
    is_recurrent: bool

    def initial_state(self, height: int, width: int, batch: int = 1) -> BackendState:
        """Zero state for padded frames of ``height`` x ``width``."""
        ...

    def run(self, frame: torch.Tensor, state: BackendState) -> tuple[torch.Tensor, BackendState]:
        """(B, C_in, H, W) float32 in [0, 1] on ``device`` -> ((B, 3, H, W) float32, next state)."""
        ...
