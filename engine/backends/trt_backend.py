"""TensorRT runtime backend: one engine step per frame, state carried in GPU buffers.

Written from the TensorRT 10 Python API documentation and samples (name-based I/O,
``execute_async_v3``); TensorRT cannot be installed where this package is developed, so this file
has never run (see docs/export.md).

TensorRT has no public input/output aliasing, so the state lives in two buffer sets that swap roles
every frame (ping-pong): step t reads set A and writes set B, step t+1 reads B and writes A. Buffers
and input shapes are (re)bound only when the frame size changes; the per-frame work is setting
addresses and one ``execute_async_v3`` on torch's current stream, so it orders with the torch ops
around it without any synchronisation.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from vdeblur.export.contract import FRAME_INPUT, FRAME_OUTPUT, state_input_name, state_output_name
from vdeblur.export.engine_cache import check_runnable
from vdeblur.export.profiles import FrameSize, input_shapes
from vdeblur.export.tensorrt import device_env, import_tensorrt


@dataclass(frozen=True)
class TrtState:
    """Which buffer set holds the current state. Valid until the next ``run`` of the same backend,
    which overwrites the other set and hands back a new TrtState."""

    step: int
    current: int  # 0 or 1
    shape: tuple[int, int, int]  # (batch, height, width) of the frames it belongs to


class TensorRTBackend:
    name = "tensorrt"

    def __init__(self, engine_path: str | Path, onnx_path: str | Path | None = None) -> None:
        trt = import_tensorrt()
        # Refuses an engine built for another TensorRT/GPU (or other ONNX bytes) before TensorRT would.
        record = check_runnable(engine_path, device_env(trt), onnx_path)
        self.info = record.graph_info
        self.profile = record.shape_profile
        self.device = torch.device("cuda", torch.cuda.current_device())
        self.pad_multiple = self.info.pad_multiple
        self.input_kind = self.info.input_kind
        self.is_recurrent = bool(self.info.state_slots)
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._engine = trt.Runtime(self._logger).deserialize_cuda_engine(Path(engine_path).read_bytes())
        if self._engine is None:
            raise RuntimeError(f"TensorRT could not deserialize {engine_path} (see the TensorRT log above)")
        self._context = self._engine.create_execution_context()
        self._check_io(trt)
        self._bound: tuple[int, int, int] | None = None
        self._buffers: list[list[torch.Tensor]] = [[], []]  # ping-pong state sets, slot order
        self._step = 0

    def _check_io(self, trt: object) -> None:
        names = [self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)]
        inputs = {n for n in names if self._engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT}
        if inputs != set(self.info.input_names) or set(names) - inputs != set(self.info.output_names):
            raise RuntimeError(f"engine I/O {sorted(names)} does not match its sidecar's graph "
                               f"({self.info.input_names} -> {self.info.output_names}); rebuild it")
        wrong = [n for n in names if self._engine.get_tensor_dtype(n) != trt.DataType.FLOAT]
        if wrong:  # our exports keep FP32 I/O even in FP16 graphs, so the buffers here are float32
            raise RuntimeError(f"engine tensors {wrong} are not FP32; rebuild from a vdeblur-export ONNX file")

    def _bind(self, batch: int, height: int, width: int) -> None:
        """Allocate the ping-pong state sets and set every input shape for a new frame size."""
        lo = input_shapes(self.info, self.profile.min)[FRAME_INPUT]  # padded (B, C, H, W)
        hi = input_shapes(self.info, self.profile.max)[FRAME_INPUT]
        size = (batch, height, width)
        if not all(lo[i] <= v <= hi[i] for i, v in zip((0, 2, 3), size)):
            raise ValueError(f"padded frame {batch}x{height}x{width} is outside the engine's profile "
                             f"{lo[0]}x{lo[2]}x{lo[3]}..{hi[0]}x{hi[2]}x{hi[3]}; build an engine for it")
        shapes = input_shapes(self.info, FrameSize(batch, height, width))
        for name, shape in shapes.items():
            if not self._context.set_input_shape(name, shape):
                raise RuntimeError(f"TensorRT refused shape {shape} for input {name!r}")
        self._buffers = [[torch.zeros(shapes[state_input_name(s)], device=self.device) for s in self.info.state_slots]
                         for _ in range(2)]
        self._bound = (batch, height, width)

    def initial_state(self, height: int, width: int, batch: int = 1) -> TrtState:
        """Zero state for padded frames of ``height`` x ``width`` (re-binds if the size changed)."""
        if self._bound != (batch, height, width):
            self._bind(batch, height, width)
        for buf in self._buffers[0]:
            buf.zero_()
        self._step += 1
        return TrtState(self._step, 0, (batch, height, width))

    def run(self, frame: torch.Tensor, state: TrtState) -> tuple[torch.Tensor, TrtState]:
        b, c, h, w = frame.shape
        if c != self.info.in_channels or frame.device != self.device or frame.dtype != torch.float32:
            raise ValueError(f"expected a (B, {self.info.in_channels}, H, W) float32 frame on {self.device}; "
                             f"got {tuple(frame.shape)} {frame.dtype} on {frame.device}")
        if state.step != self._step or state.shape != (b, h, w) or self._bound != (b, h, w):
            raise ValueError(f"state is stale (step {state.step}, frames {state.shape}); this backend is at step "
                             f"{self._step} with frames {self._bound}: call initial_state for a new stream or size")
        frame = frame.contiguous()  # TensorRT reads dense NCHW; a sliced view would be read wrongly
        out = torch.empty((b, 3, h, w), device=self.device)
        reads, writes = self._buffers[state.current], self._buffers[1 - state.current]
        self._context.set_tensor_address(FRAME_INPUT, frame.data_ptr())
        self._context.set_tensor_address(FRAME_OUTPUT, out.data_ptr())
        for slot, src, dst in zip(self.info.state_slots, reads, writes):
            self._context.set_tensor_address(state_input_name(slot), src.data_ptr())
            self._context.set_tensor_address(state_output_name(slot), dst.data_ptr())
        if not self._context.execute_async_v3(torch.cuda.current_stream(self.device).cuda_stream):
            raise RuntimeError("TensorRT execute_async_v3 failed (see the TensorRT log above)")
        self._step += 1
        return out, TrtState(self._step, 1 - state.current, state.shape)
