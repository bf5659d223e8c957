"""What TensorRT 10's ONNX parser accepts, as data, and a static check of an exported graph against it.

TensorRT cannot be installed where vdeblur is developed, so no graph of ours has been parsed by it.
What can be checked without it is checked here, before anyone is on the target: every node's
operator, the data types it sees, the attribute restrictions that apply to what our exporter
writes, the opset, and that one optimisation profile covers every input (dynamic batch/H/W only in
the frame and state inputs, each state input's dims its own).

Source: the operator support matrix of the ONNX-TensorRT parser, ``docs/operators.md`` of
github.com/onnx/onnx-tensorrt at branch ``10.1-GA`` (commit 96e781103cfc, 2024-06-17), the newest
release branch in the mirror read for this; its header reads "TensorRT 10.0 supports operators in
the inclusive range of opset 9 to opset 20". JetPack 6 ships TensorRT 10.3, whose parser is a
superset. The parser may still reject a graph for reasons no table states; this check only
catches what the table does.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from .contract import GraphInfo
from .dependencies import import_onnx
from .profiles import DEFAULT_TRT_PROFILE, profile_shapes

onnx = import_onnx()
TensorProto = onnx.TensorProto

MATRIX_SOURCE = "onnx/onnx-tensorrt docs/operators.md, branch 10.1-GA (commit 96e781103cfc)"
OPSET_RANGE = (9, 20)

_F = ("FLOAT", "FLOAT16", "BFLOAT16")
_FI = (*_F, "INT32", "INT64")
_FIB = (*_FI, "BOOL")
# Supported operators -> the data types the matrix lists for them ("Supported: Y" rows), grouped by type list.
_BY_TYPES: dict[tuple[str, ...], str] = {
    _F: "Acos Acosh Asin Asinh Atan Atanh AveragePool BatchNormalization Ceil Celu Clip Conv ConvTranspose Cos Cosh "
        "CumSum Dropout Einsum Elu Erf Exp Floor Gemm GlobalAveragePool GlobalLpPool GlobalMaxPool GroupNormalization "
        "GRU HardSigmoid HardSwish Hardmax ImageScaler InstanceNormalization IsInf LayerNormalization LeakyRelu Log "
        "LogSoftmax LRN LSTM LpNormalization LpPool MatMul MaxPool MeanVarianceNormalization ParametricSoftplus Pow "
        "PRelu QuantizeLinear RandomNormal RandomNormalLike RandomUniform RandomUniformLike Reciprocal Resize RNN "
        "Round ScaledTanh Scan Selu Sigmoid Sin Sinh Softmax Softplus Softsign Sqrt Tan Tanh ThresholdedRelu Upsample",
    _FI: "Abs Add ArgMax ArgMin DepthToSpace Div Equal Greater GreaterOrEqual IsNaN Less LessOrEqual Max Min Mod Mul "
         "Neg Pad Range ReduceLogSum ReduceLogSumExp ReduceMax ReduceMean ReduceMin ReduceProd ReduceSum "
         "ReduceSumSquare Relu Scatter ScatterElements ScatterND Shrink Sign SpaceToDepth Sub Sum TopK",
    # (the matrix spells ConstantOfShape's INT64 "INF64")
    _FIB: "Concat Constant ConstantOfShape Expand EyeLike Flatten Gather GatherElements GatherND Identity If Loop "
          "OneHot Reshape ReverseSequence Shape Size Slice Split Squeeze Tile Transpose Trilu Unsqueeze Where",
    ("FLOAT", "FLOAT16"): "DeformConv GridSample Mish NonMaxSuppression NonZero RoiAlign",
    ("BOOL",): "And Not Or Xor",
    (*_FIB, "UINT8"): "Cast CastLike",
    ("INT8", "FLOAT8E4M3FN", "INT4"): "DequantizeLinear",
    (*_FI, "INT8"): "Gelu",
    (*_FI, "FLOAT8E4M3FN"): "Mean",
}
SUPPORTED: dict[str, frozenset[str]] = {op: frozenset(types) for types, ops in _BY_TYPES.items() for op in ops.split()}

# Our own rule on top of the matrix: recurrent models export one step, never a loop (ConvLSTM loops
# fail to build in TensorRT: NVIDIA/TensorRT #4424, #2582), and the state is explicit graph I/O.
PROJECT_FORBIDDEN = {"Loop": "export one time step with explicit state instead of a loop",
                     "Scan": "export one time step with explicit state instead of a scan"}

# Inputs that carry shapes, indices or a condition, not the data the type list describes.
_NON_DATA_INPUTS: dict[str, tuple[int, ...]] = {
    "Reshape": (1,), "Slice": (1, 2, 3, 4), "Gather": (1,), "GatherElements": (1,), "GatherND": (1,),
    "Resize": (1, 2, 3), "Upsample": (1,), "Squeeze": (1,), "Unsqueeze": (1,), "Expand": (1,), "Tile": (1,),
    "Pad": (1, 3), "Split": (1,), "ConstantOfShape": (0,), "TopK": (1,), "CumSum": (1,), "OneHot": (0, 1),
    "ScatterND": (1,), "ScatterElements": (1,), "Scatter": (1,), "Where": (0,), "Dropout": (1, 2),
    "ReduceSum": (1,), "ReduceMean": (1,), "ReduceMax": (1,), "ReduceMin": (1,), "ReduceProd": (1,),
    "ReduceL1": (1,), "ReduceL2": (1,), "ReduceLogSum": (1,), "ReduceLogSumExp": (1,), "ReduceSumSquare": (1,),
}
# Operators whose type list describes their output (they have no data input).
_TYPED_BY_OUTPUT = {"Constant", "ConstantOfShape", "Cast", "CastLike", "RandomNormal", "RandomUniform", "EyeLike"}
# "`axes` must be an initializer" (a Constant node's output is imported as weights too).
_CONSTANT_INPUTS: dict[str, tuple[int, ...]] = {
    "Slice": (3,), "Squeeze": (1,), "Unsqueeze": (1,), "Pad": (3,), "CumSum": (1,),
    **{op: (1,) for op in ("ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceMax", "ReduceMean",
                           "ReduceMin", "ReduceProd", "ReduceSum", "ReduceSumSquare")},
}
_RESIZE = {"mode": {"nearest", "linear"},
           "coordinate_transformation_mode": {"half_pixel", "pytorch_half_pixel", "tf_half_pixel_for_nn",
                                              "asymmetric", "align_corners"},
           "nearest_mode": {"floor", "ceil", "round_prefer_floor", "round_prefer_ceil"},
           "keep_aspect_ratio_policy": {"stretch"}}
_RESIZE_DEFAULTS = {"mode": "nearest", "coordinate_transformation_mode": "half_pixel",
                    "nearest_mode": "round_prefer_floor", "keep_aspect_ratio_policy": "stretch"}


@dataclass(frozen=True)
class TrtVerdict:
    problems: tuple[str, ...]
    ops: tuple[str, ...]  # the distinct operators of the graph
    nodes: int

    @property
    def ok(self) -> bool:
        return not self.problems


def check_graph(proto: onnx.ModelProto, info: GraphInfo | None = None) -> TrtVerdict:
    """Every reason TensorRT 10's parser would refuse ``proto`` that the support matrix states, plus
    the single-profile check when ``info`` (the graph's vdeblur metadata) is given."""
    problems: list[str] = []
    for opset in proto.opset_import:
        if opset.domain in ("", "ai.onnx") and not OPSET_RANGE[0] <= opset.version <= OPSET_RANGE[1]:
            problems.append(f"opset {opset.version} is outside TensorRT 10's {OPSET_RANGE[0]}..{OPSET_RANGE[1]}")
        elif opset.domain not in ("", "ai.onnx"):
            problems.append(f"operator domain {opset.domain!r}: custom operators need a TensorRT plugin")
    try:
        inferred = onnx.shape_inference.infer_shapes(proto, strict_mode=True)
    except (onnx.shape_inference.InferenceError, ValueError) as e:  # go on, to name every problem
        problems.append(f"ONNX shape inference fails ({str(e).splitlines()[0][:300]})")
        inferred = proto
    types = _tensor_types(inferred.graph)
    constants = {i.name for i in inferred.graph.initializer}
    nodes = list(_walk(inferred.graph))
    constants |= {o for n in nodes if n.op_type == "Constant" for o in n.output}
    for node in nodes:
        problems += _check_node(node, types, constants)
    problems += _check_io_types(inferred.graph)
    if info is not None:
        problems += check_profile(proto, info)
    return TrtVerdict(tuple(problems), tuple(sorted({n.op_type for n in nodes})), len(nodes))


def _walk(graph: onnx.GraphProto) -> Iterator[onnx.NodeProto]:
    for node in graph.node:
        yield node
        for attr in node.attribute:  # If/Loop/Scan bodies
            for sub in [attr.g] * attr.HasField("g") + list(attr.graphs):
                yield from _walk(sub)


def _tensor_types(graph: onnx.GraphProto) -> dict[str, str]:
    types = {i.name: TensorProto.DataType.Name(i.data_type) for i in graph.initializer}
    for value in [*graph.input, *graph.output, *graph.value_info]:
        if value.type.HasField("tensor_type"):
            types[value.name] = TensorProto.DataType.Name(value.type.tensor_type.elem_type)
    return types


def _check_node(node: onnx.NodeProto, types: dict[str, str], constants: set[str]) -> list[str]:
    op, where = node.op_type, f"{node.op_type} node {node.name or node.output[0]!r}"
    if node.domain not in ("", "ai.onnx"):
        return [f"{where}: domain {node.domain!r} needs a TensorRT plugin"]
    if op in PROJECT_FORBIDDEN:
        return [f"{where}: {PROJECT_FORBIDDEN[op]}"]
    if op not in SUPPORTED:
        return [f"{where}: operator {op} is not supported by TensorRT 10's ONNX parser"]
    allowed, problems = SUPPORTED[op], []
    skip = _NON_DATA_INPUTS.get(op, ())
    seen = [name for i, name in enumerate(node.input) if name and i not in skip]
    if op in _TYPED_BY_OUTPUT:
        seen = [o for o in node.output if o] + (seen[:1] if op in ("Cast", "CastLike") else [])
    for name in seen:
        dtype = types.get(name)
        if dtype is None:
            problems.append(f"{where}: the type of {name!r} is unknown after shape inference")
        elif dtype not in allowed:
            problems.append(f"{where}: {name!r} is {dtype}; TensorRT supports {op} on {', '.join(sorted(allowed))}")
    for i in _CONSTANT_INPUTS.get(op, ()):
        if i < len(node.input) and node.input[i] and node.input[i] not in constants:
            problems.append(f"{where}: input {i} ({node.input[i]!r}, axes) must be an initializer or a Constant")
    return problems + _check_attributes(node, where, constants)


def _check_attributes(node: onnx.NodeProto, where: str, constants: set[str]) -> list[str]:
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    text = {k: v.decode() if isinstance(v, bytes) else v for k, v in attrs.items()}
    op, problems = node.op_type, []
    if op == "Resize":
        for name, allowed in _RESIZE.items():
            value = text.get(name, _RESIZE_DEFAULTS[name])
            if value not in allowed:
                problems.append(f"{where}: {name}={value!r}; TensorRT supports {', '.join(sorted(allowed))}")
        if attrs.get("antialias", 0):
            problems.append(f"{where}: antialias is not supported")
    elif op in ("MaxPool", "AveragePool", "LpPool"):
        if any(d != 1 for d in attrs.get("dilations", [])):
            problems.append(f"{where}: dilations must be empty or all ones")
        if len(attrs.get("kernel_shape", [0, 0])) not in (2, 3) and op != "LpPool":
            problems.append(f"{where}: only 2D or 3D pooling is supported")
        if op == "MaxPool" and len([o for o in node.output if o]) > 1:
            problems.append(f"{where}: the Indices output is not supported")
    elif op == "Dropout" and len(node.input) > 2 and node.input[2] and node.input[2] not in constants:
        problems.append(f"{where}: training_mode must be an initializer (False)")
    elif op == "LayerNormalization" and len([o for o in node.output if o]) > 1:
        problems.append(f"{where}: only the first output Y is supported")
    elif op == "Constant" and set(attrs) & {"sparse_value", "value_string", "value_strings"}:
        problems.append(f"{where}: sparse or string constants are not supported")
    elif op == "ScatterND" and text.get("reduction", "none") != "none":
        problems.append(f"{where}: reduction is not supported")
    elif op == "LSTM" and (attrs.get("input_forget", 0) or attrs.get("layout", 0)):
        problems.append(f"{where}: input_forget and layout must be 0")
    elif op == "TopK" and attrs.get("sorted", 1) != 1:
        problems.append(f"{where}: sorted must be 1")
    return problems


def _check_io_types(graph: onnx.GraphProto) -> list[str]:
    """DOUBLE is cast down (clamped) by TensorRT; UINT8 only at the network's edges; quantized types only
    through Q/DQ nodes (not ours)."""
    io = {v.name for v in [*graph.input, *graph.output]}
    problems = []
    for value in [*graph.input, *graph.output, *graph.value_info]:
        dtype = TensorProto.DataType.Name(value.type.tensor_type.elem_type)
        if dtype == "DOUBLE" or (dtype == "UINT8" and value.name not in io) or dtype in ("INT8", "INT4", "STRING"):
            problems.append(f"tensor {value.name!r} is {dtype}, which TensorRT does not run as such here")
    return problems


def check_profile(proto: onnx.ModelProto, info: GraphInfo) -> list[str]:
    """One optimisation profile covers the graph: its inputs are exactly the frame and the state, each
    (batch, channels, H, W) with static channels, and every dynamic dim named per tensor so the
    profile can set the state's H/W (frame / stride) apart from the frame's."""
    problems = []
    inputs = {v.name: v for v in proto.graph.input}
    if list(inputs) != info.input_names:
        problems.append(f"graph inputs {list(inputs)} are not the frame and state inputs {info.input_names}")
    channels = {"frame": info.in_channels, **{f"{s.name}0": s.channels for s in info.state_slots}}
    owners: dict[str, set[str]] = {}
    for name, value in inputs.items():
        dims = value.type.tensor_type.shape.dim
        if len(dims) != 4:
            problems.append(f"input {name!r} has rank {len(dims)}, not 4 (B, C, H, W)")
            continue
        if dims[1].dim_param or dims[1].dim_value != channels.get(name):
            problems.append(f"input {name!r} must have {channels.get(name)} static channels")
        for axis, dim in enumerate(dims):
            if not dim.dim_param and not dim.dim_value:
                problems.append(f"input {name!r} dim {axis} has neither a size nor a name")
            elif dim.dim_param and axis >= 2:  # the batch is one for all; H/W each tensor's own
                owners.setdefault(dim.dim_param, set()).add(name)
    problems += [f"inputs {', '.join(sorted(names))} share the dim {dim!r}: the profile cannot set them apart"
                 for dim, names in owners.items() if len(names) > 1]
    if not problems:
        covered = set(profile_shapes(info, DEFAULT_TRT_PROFILE))
        problems += [f"input {n!r} gets no shape from the profile" for n in inputs if n not in covered]
    return problems
