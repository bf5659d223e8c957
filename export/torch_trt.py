"""Torch-TensorRT (dynamo) build: an alternative to ONNX -> TensorRT on x86/desktop GPUs.

Written from the Torch-TensorRT 2.x documentation; Torch-TensorRT cannot be installed where this
package is developed, so this module has never run (see docs/export.md). On Jetson Orin there is no
Torch-TensorRT after 2.8: use ONNX -> TensorRT (or trtexec) there.

The state must be functional for Torch-TensorRT (returning mutated buffers crashes compilation,
pytorch/TensorRT #4694); our model contract already passes it in and out. Dynamic H/W are declared
through one base dim per axis: frame H = pad_multiple * k and each state H = (pad_multiple / stride)
* k, which is the exact relation the convolutions imply, so torch.export proves it instead of
rejecting independent dims. In the FP16 build the whole model, the cell state included, runs in
FP16 with FP32 inputs and outputs; the ONNX FP16 engine keeps the cell state in FP32.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch import nn

from vdeblur.train.archs.base import DeblurModel, padded_size

from .contract import GraphInfo
from .dependencies import import_optional
from .onnx import StepGraph, inference_copy
from .profiles import ShapeProfile, profile_shapes

INSTALL_HINT = ('Torch-TensorRT is not installed: on a machine with an NVIDIA GPU run pip install "vdeblur[tensorrt]" '
                "(it has no Jetson wheels after 2.8: use vdeblur-export tensorrt or trtexec-cmd there)")


def import_torch_tensorrt() -> ModuleType:
    return import_optional("torch_tensorrt", INSTALL_HINT)


class _CastStep(nn.Module):
    """FP32 in and out around a model running in ``dtype`` (FP16 inside, as TensorRT will run it)."""

    def __init__(self, step: StepGraph, dtype: torch.dtype) -> None:
        super().__init__()
        self.step = step.to(dtype)
        self.dtype = dtype

    def forward(self, frame: torch.Tensor, *state: torch.Tensor) -> tuple[torch.Tensor, ...]:
        outs = self.step(frame.to(self.dtype), *(s.to(self.dtype) for s in state))
        return tuple(o.float() for o in outs)


def dynamic_shapes(info: GraphInfo, profile: ShapeProfile) -> tuple[Any, ...]:
    """torch.export dims for (frame, *state): one base dim per axis, ranges from the profile."""
    from torch.export import Dim

    p = info.pad_multiple
    kh = Dim("kh", min=padded_size(profile.min.height, p) // p, max=padded_size(profile.max.height, p) // p)
    kw = Dim("kw", min=padded_size(profile.min.width, p) // p, max=padded_size(profile.max.width, p) // p)
    frame = {2: p * kh, 3: p * kw}
    state = tuple({2: (p // s.stride) * kh, 3: (p // s.stride) * kw} for s in info.state_slots)
    # forward(frame, *state) takes the state as one varargs tuple, which torch.export drops when empty.
    return (frame, state) if state else (frame,)


def export_program(model: DeblurModel, profile: ShapeProfile, precision: str = "fp16",
                   device: str = "cuda") -> tuple[torch.export.ExportedProgram, tuple[torch.Tensor, ...]]:
    """torch.export of one time step with dynamic H/W over ``profile`` (FP32 I/O), and its example inputs."""
    if precision not in ("fp16", "fp32"):
        raise ValueError(f"precision {precision!r} is not one of fp16, fp32")
    info = GraphInfo.from_model(model, precision)
    dtype = torch.float16 if precision == "fp16" else torch.float32
    step = _CastStep(StepGraph(inference_copy(model)), dtype).to(device).eval()
    examples = tuple(torch.rand(mid, device=device) for _, mid, _ in profile_shapes(info, profile).values())
    return torch.export.export(step, examples, dynamic_shapes=dynamic_shapes(info, profile)), examples


def compile_and_save(model: DeblurModel, profile: ShapeProfile, path: str | Path, precision: str = "fp16") -> Path:
    """Compile one time step with Torch-TensorRT (dynamo) and save it with ``torch_tensorrt.save``."""
    torch_tensorrt = import_torch_tensorrt()
    if not torch.cuda.is_available():
        raise RuntimeError("Torch-TensorRT needs a CUDA GPU, and torch sees none")
    exported, examples = export_program(model, profile, precision)
    inputs = [torch_tensorrt.Input(min_shape=lo, opt_shape=mid, max_shape=hi, dtype=torch.float32, name=name)
              for name, (lo, mid, hi) in profile_shapes(GraphInfo.from_model(model), profile).items()]
    compiled = torch_tensorrt.dynamo.compile(exported, inputs=inputs, use_explicit_typing=True)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # exported_program is the default format; loading it back needs the Torch-TensorRT C++ runtime.
    torch_tensorrt.save(compiled, str(path), output_format="exported_program", arg_inputs=list(examples))
    return path
