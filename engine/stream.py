"""The push-frame API: feed frames in order, get deblurred frames back, with the recurrent state
held here (never on the model) and reset where a carried state would hurt.

    stream = DeblurStream(load_backend("model.safetensors"))
    for rgb in camera:                 # (H, W, 3) uint8 RGB, or a (3, H, W) float tensor in [0, 1]
        sharp = stream.push(rgb)       # same type, size and device as given

Padding to the model's multiple, the edge channel of edge models and cropping back are done by
``vdeblur.train.padding.run_padded``, the same code the trainer and tests use. With ``tile`` the
frame runs as overlapping tiles, each with its own state (``vdeblur.engine.tiling``).
"""

from __future__ import annotations

from typing import overload

import numpy as np
import torch

from vdeblur.train.archs.base import padded_size
from vdeblur.train.frames import to_uint8
from vdeblur.train.motion import NO_MOTION, GlobalMotion
from vdeblur.train.padding import run_padded

from .backends.base import Backend, BackendState
from .scene import CutDetector
from .tiling import TiledRunner, TileSpec


class DeblurStream:
    def __init__(self, backend: Backend, *, reset_on_cut: bool = False, reset_every: int = 0,
                 cut_threshold: float = 0.6, tile: TileSpec | None = None) -> None:
        if reset_every < 0:
            raise ValueError(f"reset_every must be >= 0 (0 = never); got {reset_every}")
        self.backend = backend
        self.reset_every = reset_every
        self.cuts = CutDetector(cut_threshold) if reset_on_cut else None
        self.tiler = TiledRunner(backend, tile) if tile is not None else None
        self.state_starts = 0  # fresh states begun (first frame, size change, resets)
        self._state: BackendState | None = None
        self._size: tuple[int, int] | None = None
        self._since_reset = 0

    def reset(self) -> None:
        """Drop the carried state: the next frame starts from zeros (new shot, seek, discontinuity)."""
        self._state = None

    @overload
    def push(self, frame: np.ndarray, motion: GlobalMotion | None = None) -> np.ndarray: ...
    @overload
    def push(self, frame: torch.Tensor, motion: GlobalMotion | None = None) -> torch.Tensor: ...

    def push(self, frame: np.ndarray | torch.Tensor, motion: GlobalMotion | None = None) -> np.ndarray | torch.Tensor:
        """The deblurred frame. ``motion``: the global motion from this frame back to the one pushed before
        (``vdeblur.train.motion.estimate_motion``), for a model that takes its previous frame aligned,
        when the caller estimated it already (the engine does, in its decode stage); None estimates it
        here. Ignored where the state starts afresh: there is no previous frame then."""
        x = self._as_tensor(frame)  # (1, 3, H, W) float32 in [0, 1] on the backend's device
        h, w = x.shape[-2:]
        if self.cuts is not None and self.cuts.is_cut(_as_uint8(frame)):
            self.reset()
        if self.reset_every and self._since_reset >= self.reset_every:
            self.reset()
        if self._state is None or self._size != (h, w):
            self._state = self._initial_state(h, w)
            self._size, self._since_reset = (h, w), 0
            self.state_starts += 1
            motion = NO_MOTION  # no previous frame, whatever was estimated against the last one pushed
        motions = None if motion is None else [motion]
        if self.tiler is not None:
            out, self._state = self.tiler.run(x, self._state, motions)
        else:
            out, self._state = run_padded(self.backend, x, self._state, motions)
        self._since_reset += 1
        out = out.clamp(0, 1)
        if isinstance(frame, np.ndarray):
            return to_uint8(out[0])
        return out.to(frame.device) if frame.dim() == 4 else out[0].to(frame.device)

    def _initial_state(self, h: int, w: int) -> BackendState:
        if self.tiler is not None:
            return self.tiler.initial_state(h, w)
        m = self.backend.pad_multiple
        return self.backend.initial_state(padded_size(h, m), padded_size(w, m))

    def _as_tensor(self, frame: np.ndarray | torch.Tensor) -> torch.Tensor:
        if isinstance(frame, np.ndarray):
            if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
                raise ValueError(f"numpy frames must be (H, W, 3) uint8 RGB; got {frame.shape} {frame.dtype}")
            t = torch.from_numpy(frame).to(self.backend.device, non_blocking=True)
            # contiguous NCHW: a permuted (channels-last) view makes oneDNN pick other conv kernels
            # whose last-bit differences would make the output depend on how the frame was stored.
            return t.permute(2, 0, 1)[None].float().div_(255).contiguous()
        if frame.dim() == 3:
            frame = frame[None]
        if frame.dim() != 4 or frame.shape[:2] != (1, 3) or not frame.is_floating_point():
            raise ValueError(f"tensor frames must be (3, H, W) or (1, 3, H, W) float in [0, 1]; got "
                             f"{tuple(frame.shape)} {frame.dtype}")
        return frame.to(self.backend.device, torch.float32).contiguous()


def _as_uint8(frame: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(frame, np.ndarray):
        return frame
    return to_uint8(frame[0] if frame.dim() == 4 else frame)
