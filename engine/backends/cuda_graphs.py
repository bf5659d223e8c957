"""CUDA graphs for one model step: capture once per frame shape, then replay.

A ~1 M-parameter network at 1080p launches a few hundred small kernels per frame; replaying a
captured graph removes the per-kernel CPU launch cost, which is what bounds small models on a fast
GPU. Graphs need static shapes and static memory, so there is one graph per input shape (one per
resolution in practice), each with its own input buffers: a step copies the frame and the state
into them, replays, and clones the outputs (the next replay overwrites the graph's output buffers,
and the state returned here is fed back as the next step's input).

Written from PyTorch's CUDA-graph documentation (``torch.cuda.graph``, warm-up on a side stream
before capture); this project's machines have no GPU, so this path has not been run here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

State = tuple[torch.Tensor, ...]
Step = Callable[[torch.Tensor, State], tuple[torch.Tensor, State]]
_WARMUP_STEPS = 3  # cuDNN picks its algorithms and the allocator settles before capture


@dataclass
class _Captured:
    graph: torch.cuda.CUDAGraph
    frame: torch.Tensor  # static input buffers the graph reads
    state: State
    out: torch.Tensor  # static output buffers the graph writes
    new_state: State


class CudaGraphStep:
    """Wraps ``step`` (frame, state) -> (out, new_state); call it inside no_grad/inference_mode."""

    def __init__(self, step: Step) -> None:
        self.step = step
        self.captured: dict[tuple[tuple[int, ...], ...], _Captured] = {}

    def __call__(self, frame: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        if frame.device.type != "cuda":
            raise ValueError(f"CUDA graphs need CUDA tensors; got a frame on {frame.device}")
        key = (tuple(frame.shape), *(tuple(s.shape) for s in state))
        c = self.captured.get(key)
        if c is None:
            c = self.captured[key] = self._capture(frame, state)
        c.frame.copy_(frame, non_blocking=True)
        for buffer, value in zip(c.state, state):
            buffer.copy_(value, non_blocking=True)
        c.graph.replay()
        return c.out.clone(), tuple(s.clone() for s in c.new_state)

    def _capture(self, frame: torch.Tensor, state: State) -> _Captured:
        static_frame, static_state = frame.clone(), tuple(s.clone() for s in state)
        side = torch.cuda.Stream(frame.device)
        side.wait_stream(torch.cuda.current_stream(frame.device))
        with torch.cuda.stream(side):
            for _ in range(_WARMUP_STEPS):
                self.step(static_frame, static_state)
        torch.cuda.current_stream(frame.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            out, new_state = self.step(static_frame, static_state)
        return _Captured(graph, static_frame, static_state, out, tuple(new_state))
