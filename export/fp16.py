"""The FP16 variant of an exported graph: FP16 compute, FP32 inputs and outputs.

TensorRT 11 dropped ``BuilderFlag.FP16`` (weak typing): FP16 has to be written into the ONNX graph
and built as a strongly-typed network, which works on TensorRT 10.x and 11.x alike. Three things
stay FP32 because FP16 (max 65504, 11-bit mantissa) would break them:

* the ConvLSTM cell state ``c``: it is an unbounded running sum (``c1 = f*c + i*g``), carried for
  the whole video, so it would drift and could overflow; ``h`` is bounded by tanh and is fine;
* normalisation and softmax: sums of squares / exponentials over a whole 1080p plane overflow;
* pooling over the whole plane (channel attention), whose sum overflows the same way, and window
  means taken as differences of a running sum (NAFNet's local attention): the running sum grows
  with the frame, and FP16 would round away the difference of two large sums.

The conversion itself is ONNX Runtime's float16 converter (``keep_io_types`` inserts the casts at
the graph boundary and around every node kept in FP32).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from vdeblur.train.metrics import psnr

from .contract import GraphInfo, state_input_name
from .dependencies import import_onnx, import_onnxruntime

onnx = import_onnx()

# Ops whose FP16 version overflows or loses too much on full-resolution frames.
FP32_OPS = ("InstanceNormalization", "LayerNormalization", "BatchNormalization", "GroupNormalization", "Softmax",
            "GlobalAveragePool", "ReduceMean", "ReduceSum", "CumSum")
# Ops through which the cell state keeps its magnitude (the LSTM update is c1 = f*c + i*g).
_CELL_STATE_OPS = ("Mul", "Add", "Sub")
CELL_STATE_SLOTS = ("c",)


def cell_state_nodes(graph: onnx.GraphProto, state_inputs: Iterable[str]) -> list[str]:
    """Names of the nodes that compute the cell state from ``state_inputs``, through every
    iteration of an unrolled loop (nodes are stored in topological order)."""
    carried = set(state_inputs)
    kept: list[str] = []
    for node in graph.node:
        if node.op_type in _CELL_STATE_OPS and carried.intersection(node.input):
            kept.append(node.name)
            carried.update(node.output)
    return kept


# Ops from a running sum to the window mean taken from it (gather two ends, subtract, divide).
_RUNNING_SUM_OPS = ("Concat", "Gather", "Sub", "Div")


def running_sum_nodes(graph: onnx.GraphProto) -> list[str]:
    """Names of the nodes that take window sums out of a ``CumSum``, up to the division that makes
    them means again (nodes are stored in topological order)."""
    carried: set[str] = set()
    kept: list[str] = []
    for node in graph.node:
        if node.op_type == "CumSum":
            carried.update(node.output)
        elif node.op_type in _RUNNING_SUM_OPS and carried.intersection(node.input):
            kept.append(node.name)
            if node.op_type != "Div":
                carried.update(node.output)
    return kept


def convert_to_fp16(proto: onnx.ModelProto, info: GraphInfo) -> onnx.ModelProto:
    """FP16 copy of an FP32 graph from ``export_onnx`` with FP32 I/O and the FP32 islands above."""
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

    proto = onnx.ModelProto.FromString(proto.SerializeToString())
    for i, node in enumerate(proto.graph.node):
        if not node.name:  # the node block list works by name
            node.name = f"node_{i}_{node.op_type}"
    cell_inputs = [state_input_name(s) for s in info.state_slots if s.name in CELL_STATE_SLOTS]
    kept = cell_state_nodes(proto.graph, cell_inputs)
    if cell_inputs and not kept:
        raise ValueError(f"{info.model}: found no node computing the cell state from {cell_inputs}; "
                         "the FP16 converter would put it in FP16")
    converted = convert_float_to_float16(proto, keep_io_types=True, op_block_list=[*DEFAULT_OP_BLOCK_LIST, *FP32_OPS],
                                         node_block_list=kept + running_sum_nodes(proto.graph))
    _drop_fp16_round_trips(converted)
    _sort_topologically(converted.graph)
    return converted


def _drop_fp16_round_trips(proto: onnx.ModelProto) -> None:
    """Remove ``Cast(to=FLOAT)(Cast(to=FLOAT16)(x))`` where ``x`` is FP32.

    The converter treats every FP32 node as an island: its inputs arrive through FP16 and its output
    leaves through FP16, even between two FP32 nodes and to an FP32 graph output. For the cell state
    that round trip would be exactly the FP16 rounding we keep it away from, so consumers of such a
    pair read ``x`` itself (a graph output keeps its name through an Identity)."""
    graph = proto.graph
    inferred = onnx.shape_inference.infer_shapes(proto)
    elem = {v.name: v.type.tensor_type.elem_type
            for v in [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]}
    producer = {out: node for node in graph.node for out in node.output}
    outputs = {v.name for v in graph.output}
    fp32, fp16 = onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16
    replace: dict[str, str] = {}
    for node in graph.node:
        inner = producer.get(node.input[0]) if node.op_type == "Cast" else None
        if (inner is not None and inner.op_type == "Cast" and _cast_to(node) == fp32 and _cast_to(inner) == fp16
                and elem.get(inner.input[0]) == fp32):
            replace[node.output[0]] = inner.input[0]
    for node in graph.node:
        for i, name in enumerate(node.input):
            node.input[i] = replace.get(name, name)
        if node.output[0] in replace and node.output[0] in outputs:
            node.op_type, node.input[0] = "Identity", replace[node.output[0]]
            node.ClearField("attribute")
    _drop_unused_nodes(graph)


def _drop_unused_nodes(graph: onnx.GraphProto) -> None:
    outputs = {v.name for v in graph.output}
    while True:
        used = {i for n in graph.node for i in n.input} | outputs
        kept = [n for n in graph.node if any(o in used for o in n.output)]
        if len(kept) == len(graph.node):
            return
        graph.ClearField("node")
        graph.node.extend(kept)


def _cast_to(node: onnx.NodeProto) -> int:
    return next(a.i for a in node.attribute if a.name == "to")


def _sort_topologically(graph: onnx.GraphProto) -> None:
    """Reorder nodes so each comes after its producers: the converter appends the input casts at
    the end of the node list, which onnx.checker (and TensorRT's parser) refuse."""
    ready = {""} | {v.name for v in graph.input} | {t.name for t in graph.initializer}
    pending, ordered = list(graph.node), []
    while pending:
        progress = [n for n in pending if ready.issuperset(n.input)]
        if not progress:
            raise ValueError(f"graph has a cycle or a dangling input at node {pending[0].name!r}")
        for node in progress:
            ordered.append(node)
            ready.update(node.output)
        done = {id(n) for n in progress}
        pending = [n for n in pending if id(n) not in done]
    graph.ClearField("node")
    graph.node.extend(ordered)


def graph_io_types(proto: onnx.ModelProto) -> dict[str, str]:
    """Element type of every graph input and output, e.g. {'frame': 'FLOAT', ...}."""
    return {v.name: onnx.TensorProto.DataType.Name(v.type.tensor_type.elem_type)
            for v in [*proto.graph.input, *proto.graph.output]}


def run_onnx_sequence(path: str, frames: Iterable[np.ndarray], *, optimize: bool = True) -> list[np.ndarray]:
    """Outputs of an exported graph on a sequence of (B, C, H, W) float32 frames with ONNX Runtime
    (CPU), each step's state outputs fed back as the next step's inputs, zeros on the first.

    ``optimize=False`` keeps the graph as written: ORT's optimiser drops FP32->FP16->FP32 cast pairs,
    which would hide the FP16 rounding being measured.
    """
    from .onnx import read_graph_info

    ort = import_onnxruntime()

    info = read_graph_info(path)
    options = ort.SessionOptions()
    if not optimize:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    outputs, state = [], None
    for frame in frames:
        if state is None:
            b, _, h, w = frame.shape
            state = [np.zeros((b, s.channels, h // s.stride, w // s.stride), np.float32) for s in info.state_slots]
        values = session.run(info.output_names, dict(zip(info.input_names, [frame, *state])))
        outputs.append(values[0])
        state = values[1:]
    return outputs


@dataclass(frozen=True)
class Fp16Check:
    frames: int
    finite: bool
    psnr_db: float  # FP16 vs FP32 output, both clipped to [0, 1], mean over frames
    max_abs_diff: float


def compare_fp16(fp32_path: str, fp16_path: str, frames: list[np.ndarray]) -> Fp16Check:
    """Run both graphs on the same real frames, each carrying its own state, and compare outputs.
    Raises whatever ONNX Runtime raises if it has no kernel for an FP16 op on this machine."""
    import torch

    if not frames:
        raise ValueError("compare_fp16 needs at least one frame")
    out32 = np.concatenate(run_onnx_sequence(fp32_path, frames))
    out16 = np.concatenate(run_onnx_sequence(fp16_path, frames, optimize=False))
    finite = bool(np.isfinite(out16).all())
    a, b = (torch.from_numpy(o).clamp(0, 1) for o in (out32, out16))
    return Fp16Check(len(frames), finite, float(psnr(b, a, data_range=1.0).mean()), float((a - b).abs().max()))
