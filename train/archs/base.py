"""The one contract every generator follows.

``forward(frame, state) -> (out, new_state)`` with ``frame`` of shape (B, C_in, H, W), float in
[0, 1] RGB (plus an edge channel for edge models), H and W multiples of ``pad_multiple``.
``state`` is a plain tuple of tensors from ``initial_state``; stateless models use ``()``.
Export, streaming and the trainer all rely on this and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

State = tuple[torch.Tensor, ...]


@dataclass(frozen=True)
class StateSlot:
    """One recurrent state tensor: (B, channels, H/stride, W/stride) of the padded frame."""

    name: str
    channels: int
    stride: int


def padded_size(size: int, multiple: int) -> int:
    return -(-size // multiple) * multiple


class DeblurModel(nn.Module):
    in_channels: int = 3
    pad_multiple: int = 1
    # "rgb" or "rgb+canny": what the caller must feed (see vdeblur.train.edges).
    input_kind: str = "rgb"
    state_slots: tuple[StateSlot, ...] = ()
    model_name: str = ""

    def initial_state(self, batch: int, height: int, width: int, device: torch.device | str | None = None,
                      dtype: torch.dtype | None = None) -> State:
        """Zero state for frames of ``height`` x ``width`` (padded here to the model's multiple)."""
        ph, pw = padded_size(height, self.pad_multiple), padded_size(width, self.pad_multiple)
        if device is None or dtype is None:
            ref = next(self.parameters())
            device = device if device is not None else ref.device
            dtype = dtype if dtype is not None else ref.dtype
        return tuple(
            torch.zeros(batch, s.channels, ph // s.stride, pw // s.stride, device=device, dtype=dtype)
            for s in self.state_slots
        )

    def run(self, frame: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """The engine's Backend method name for one step, so a model and a backend are driven alike."""
        return self(frame, state)

    def load_grown(self, state: dict[str, torch.Tensor]) -> list[str]:
        """Load the weights of a smaller model of the same family so that this one computes the same
        function, and return the names it had to add. Families that can grow override this."""
        raise ValueError(f"{self.model_name or type(self).__name__} cannot start from a model of another shape")

    @property
    def is_recurrent(self) -> bool:
        return bool(self.state_slots)

    def check_input(self, frame: torch.Tensor) -> None:
        """Fail early, naming the shape, when a frame does not fit the model."""
        if frame.dim() != 4 or frame.shape[1] != self.in_channels:
            raise ValueError(f"{self.model_name or type(self).__name__} expects (B, {self.in_channels}, H, W); got {tuple(frame.shape)}")
        h, w = frame.shape[-2:]
        if h % self.pad_multiple or w % self.pad_multiple:
            raise ValueError(f"frame {w}x{h} is not a multiple of {self.pad_multiple}; pad it first (vdeblur.train.padding)")
