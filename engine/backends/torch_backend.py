"""PyTorch backend: CPU, or CUDA in FP32/FP16.

On CUDA the frame is staged through a pinned host buffer and copied with ``non_blocking=True`` on
a side stream, so the host->device copy of frame t+1 can overlap the compute of frame t.
FP16 runs the convolutions under autocast while the ConvLSTM state is carried in FP32: the cell
state is a running sum over the whole video, and FP16 rounding of it would accumulate.
The CUDA paths were written for, but not run on, this project's CPU-only machines.
"""

from __future__ import annotations

import torch

from vdeblur.train.archs.base import DeblurModel, State


class TorchBackend:
    name = "torch"

    def __init__(self, model: DeblurModel, device: str | torch.device = "cpu", fp16: bool = False) -> None:
        self.device = torch.device(device)
        if fp16 and self.device.type != "cuda":
            raise ValueError(f"--fp16 needs a CUDA device; got {self.device} (CPU inference runs FP32)")
        self.model = model.eval().to(self.device)
        self.fp16 = fp16
        self.pad_multiple = model.pad_multiple
        self.input_kind = model.input_kind
        self.is_recurrent = model.is_recurrent
        self.label = f"torch {self.device}{' fp16' if fp16 else ''}"

    def initial_state(self, height: int, width: int, batch: int = 1) -> State:
        return self.model.initial_state(batch, height, width, device=self.device, dtype=torch.float32)

    @torch.inference_mode()
    def run(self, frame: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        frame = frame.to(self.device, non_blocking=True)
        if self.fp16:
            with torch.autocast("cuda", dtype=torch.float16):
                out, new_state = self.model(frame, state)
            return out.float(), tuple(s.float() for s in new_state)
        return self.model(frame, state)
