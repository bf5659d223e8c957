"""PyTorch -> ONNX: one time step of any registered model, state as explicit graph I/O.

The graph takes ``frame`` and one input per state slot (``h0``, ``c0``, ...) and returns
``deblurred`` and the next state (``h1``, ``c1``, ...) (names from ``vdeblur.export.contract``).
There is no ONNX ``Loop``/``Scan``: the runtime carries the state, which is what TensorRT can build
(ConvLSTM loops fail there: NVIDIA/TensorRT #4424). H and W are symbolic, and every state tensor
gets dims of its own name, so a TensorRT profile or an ORT session sets each one explicitly.
"""

from __future__ import annotations

import io
import warnings
from copy import deepcopy
from pathlib import Path

import torch
from torch import nn
from torch.nn.utils import parametrize

from vdeblur.train.archs.base import DeblurModel, padded_size

from .contract import FRAME_INPUT, FRAME_OUTPUT, GraphInfo, state_input_name, state_output_name
from .dependencies import import_onnx

# Not a plain `import onnx`: onnx is an extra, and every ONNX path (export, the export cache, the
# onnxruntime and TensorRT backends) comes through here, so a missing one is one line naming the extra.
onnx = import_onnx()

MIN_OPSET = 17  # opset 17 has LayerNormalization, which TensorRT keeps as one normalisation layer
PRECISIONS = ("fp32", "fp16")


class StepGraph(nn.Module):
    """``forward(frame, *state) -> (out, *new_state)``: the model contract with the state tuple
    flattened into positional tensors, which is what an exporter can name one by one."""

    def __init__(self, model: DeblurModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, frame: torch.Tensor, *state: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out, new_state = self.model(frame, tuple(state))
        return (out, *new_state)


def dim_names(info: GraphInfo) -> dict[str, list[str | int]]:
    """The shape of every graph input and output, symbolic dims named per tensor."""
    shapes: dict[str, list[str | int]] = {
        FRAME_INPUT: ["batch", info.in_channels, "height", "width"],
        FRAME_OUTPUT: ["batch", 3, "height", "width"],
    }
    for slot in info.state_slots:
        for name in (state_input_name(slot), state_output_name(slot)):
            shapes[name] = ["batch", slot.channels, f"{name}_height", f"{name}_width"]
    return shapes


def default_sample_hw(pad_multiple: int) -> tuple[int, int]:
    """A small, non-square trace size that fits the padding multiple (H != W so no dim is confused)."""
    h = padded_size(64, pad_multiple)
    return h, max(padded_size(96, pad_multiple), h + pad_multiple)


def export_onnx(model: DeblurModel, path: str | Path, *, opset: int = MIN_OPSET, precision: str = "fp32",
                sample_hw: tuple[int, int] | None = None) -> GraphInfo:
    """Write one time step of ``model`` to ``path`` and return the metadata stored in it.

    ``precision="fp16"`` writes an FP16 graph with FP32 inputs and outputs (see ``fp16.py``).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r} is not supported; allowed: {', '.join(PRECISIONS)}")
    if opset < MIN_OPSET:
        raise ValueError(f"opset {opset} is too old; use {MIN_OPSET} or newer")
    if not getattr(model, "model_name", ""):
        raise ValueError("model has no registry name; build it with vdeblur.train.registry.build_model or load a checkpoint")
    info = GraphInfo.from_model(model, precision)
    proto = _trace_to_onnx(model, info, opset, sample_hw or default_sample_hw(model.pad_multiple))
    if precision == "fp16":
        from .fp16 import convert_to_fp16

        proto = convert_to_fp16(proto, info)
    _set_io_shapes(proto, info)
    proto.doc_string = (f"vdeblur {info.model}: one time step. {FRAME_INPUT}: (B, {info.in_channels}, H, W) float32 in [0, 1] "
                        f"({info.input_kind}), H and W multiples of {info.pad_multiple}; state inputs zero on the first frame, "
                        f"then the previous step's state outputs.")
    onnx.helper.set_model_props(proto, info.to_metadata())
    onnx.checker.check_model(proto, full_check=True)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(proto, str(path))
    return info


def _trace_to_onnx(model: DeblurModel, info: GraphInfo, opset: int, sample_hw: tuple[int, int]) -> onnx.ModelProto:
    h, w = sample_hw
    if h % model.pad_multiple or w % model.pad_multiple:
        raise ValueError(f"sample size {h}x{w} is not a multiple of {model.pad_multiple} for {info.model}")
    ref = next(model.parameters())
    frame = torch.rand(1, info.in_channels, h, w, device=ref.device, dtype=torch.float32)
    state = model.initial_state(1, h, w, device=ref.device, dtype=torch.float32)
    axes = {name: {i: d for i, d in enumerate(dims) if isinstance(d, str)} for name, dims in dim_names(info).items()}
    buffer = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        # The TorchScript exporter is deprecated in favour of torch.export, but torch.export derives
        # every state dim from the frame's (no per-tensor names) and takes ~30x longer per model.
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        # Benign here: the tracer flags Python-side shape checks (instance norm's channel check), and
        # instance norm always uses the frame's own statistics, which is what "train=True" means for it.
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message=".*operator 'instance_norm' is set to train=True.*")
        torch.onnx.export(StepGraph(inference_copy(model)), (frame, *state), buffer, dynamo=False,
                          opset_version=opset, input_names=info.input_names, output_names=info.output_names,
                          dynamic_axes=axes, do_constant_folding=True)
    return onnx.load_from_string(buffer.getvalue())


def inference_copy(model: DeblurModel) -> DeblurModel:
    """An eval-mode copy (dropout off, batch norm on running statistics) with spectral norm baked in.

    Spectral norm divides the weight by sigma = u.(W v) on every call (an ``aten::vdot`` the exporter
    cannot write); in eval mode u and v are fixed, so the divided weight is a constant and is stored as
    a plain weight.
    """
    copy = deepcopy(model).eval()
    targets = [m for m in copy.modules() if parametrize.is_parametrized(m)]  # collected: removal edits the tree
    for module in targets:
        # deepcopy shares the generated 'ParametrizedConv2d' class with the original, and removal
        # deletes the weight property from that class: give the copy a class of its own first.
        cls = type(module)
        namespace = {k: v for k, v in vars(cls).items() if k not in ("__dict__", "__weakref__")}
        module.__class__ = type(cls.__name__, cls.__bases__, namespace)
        for name in list(module.parametrizations):
            parametrize.remove_parametrizations(module, name, leave_parametrized=True)
    return copy


def _set_io_shapes(proto: onnx.ModelProto, info: GraphInfo) -> None:
    """Write our dim names on every graph input/output (the tracer invents names like 'Addh1_dim_1')."""
    shapes = dim_names(info)
    for value in [*proto.graph.input, *proto.graph.output]:
        dims = value.type.tensor_type.shape.dim
        for dim, want in zip(dims, shapes[value.name], strict=True):
            if isinstance(want, str):
                dim.dim_param = want
            else:
                dim.dim_value = want


def read_graph_info(path: str | Path) -> GraphInfo:
    """The vdeblur metadata of an exported ONNX file (weights are not loaded)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ONNX file {path} does not exist")
    from google.protobuf.message import DecodeError  # protobuf comes with onnx

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except DecodeError as e:
        raise ValueError(f"{path} is not an ONNX model ({e})") from None
    return GraphInfo.from_metadata({p.key: p.value for p in proto.metadata_props}, source=str(path))
