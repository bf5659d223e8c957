"""PyTorch backend: CPU, or CUDA in FP32/FP16, eager, ``torch.compile``d or replayed as CUDA graphs.

On CUDA a host frame is copied into pinned memory and sent with ``non_blocking=True``: the copy is
queued on the CUDA stream instead of blocking the inference thread.
FP16 runs the convolutions under autocast while the ConvLSTM state is carried in FP32: the cell
state is a running sum over the whole video, and FP16 rounding of it would accumulate.

``compile``:
- ``"off"``: eager PyTorch;
- ``"inductor"``: ``torch.compile`` with static shapes (one compilation per resolution, the first
  frame of each size pays it: ~40 s for vdeblur_fast on this project's 2-core CPU);
- ``"cuda-graphs"``: one captured CUDA graph per resolution (``cuda_graphs.CudaGraphStep``).
The CUDA paths (FP16, pinned copies, CUDA graphs) were written for, but not run on, this project's
CPU-only machines; ``vdeblur-export parity`` checks them against FP32 where a GPU is present.
"""

from __future__ import annotations

import torch

from vdeblur.train.archs.base import DeblurModel, State

from .cuda_graphs import CudaGraphStep

COMPILE_MODES = ("off", "inductor", "cuda-graphs")


class TorchBackend:
    name = "torch"

    def __init__(self, model: DeblurModel, device: str | torch.device = "cpu", fp16: bool = False,
                 compile: str = "off") -> None:
        self.device = torch.device(device)
        if fp16 and self.device.type != "cuda":
            raise ValueError(f"--fp16 needs a CUDA device; got {self.device} (CPU inference runs FP32)")
        if compile not in COMPILE_MODES:
            raise ValueError(f"compile mode {compile!r} is not supported; allowed: {', '.join(COMPILE_MODES)}")
        if compile == "cuda-graphs" and self.device.type != "cuda":
            raise ValueError(f"--compile cuda-graphs needs a CUDA device; got {self.device} (use inductor or off)")
        self.model = model.eval().to(self.device)
        self.fp16 = fp16
        self.pad_multiple = model.pad_multiple
        self.input_kind = model.input_kind
        self.is_recurrent = model.is_recurrent
        self.compile = compile
        self._step = self._eager_step
        if compile == "inductor":
            # dynamic=False: a kernel specialised per resolution beats a shape-generic one, and a
            # video keeps one resolution.
            self._step = torch.compile(self._eager_step, dynamic=False)
        elif compile == "cuda-graphs":
            self._step = CudaGraphStep(self._eager_step)
        extras = [" fp16" if fp16 else "", "" if compile == "off" else f" {compile}"]
        self.label = f"torch {self.device}{''.join(extras)}"

    def initial_state(self, height: int, width: int, batch: int = 1) -> State:
        return self.model.initial_state(batch, height, width, device=self.device, dtype=torch.float32)

    @torch.inference_mode()
    def run(self, frame: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        if self.device.type == "cuda" and frame.device.type == "cpu":
            frame = frame.pin_memory()
        return self._step(frame.to(self.device, non_blocking=True), tuple(state))

    def _eager_step(self, frame: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        if self.fp16:
            with torch.autocast("cuda", dtype=torch.float16):
                out, new_state = self.model(frame, state)
            return out.float(), tuple(s.float() for s in new_state)
        return self.model(frame, state)
