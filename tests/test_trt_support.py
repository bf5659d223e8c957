"""The static TensorRT check: every registered model's exported graph, FP32 and FP16, uses only what
TensorRT 10's ONNX parser supports (onnx-tensorrt's operator matrix, ``export/trt_support.py``) and
fits one optimisation profile; and the check does catch what the matrix rules out. TensorRT itself
cannot be installed here, so this is all the checking its parser gets before a GPU machine."""

from __future__ import annotations

import copy

import onnx
import pytest
from onnx import TensorProto, helper
from test_export_onnx import small_model

from vdeblur.export.cli import main
from vdeblur.export.onnx import export_onnx, read_graph_info
from vdeblur.export.trt_support import SUPPORTED, check_graph
from vdeblur.train.registry import list_models


@pytest.fixture(scope="module")
def fast_graph(tmp_path_factory):
    path = tmp_path_factory.mktemp("trt") / "fast.onnx"
    info = export_onnx(small_model("vdeblur_fast"), path)
    return onnx.load(str(path)), info, path


@pytest.mark.slow  # 22 exports: ~10 s on an idle 2-core CPU, ~50 s under load
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
@pytest.mark.parametrize("name", list_models())
def test_every_registered_model_passes(name: str, precision: str, tmp_path) -> None:
    path = tmp_path / f"{name}.onnx"
    info = export_onnx(small_model(name), path, precision=precision)  # small widths, same ops
    verdict = check_graph(onnx.load(str(path)), read_graph_info(path))
    assert verdict.ok, "\n".join(verdict.problems)
    assert verdict.nodes > 10 and "Conv" in verdict.ops and set(verdict.ops) <= set(SUPPORTED)
    assert info.precision == precision


def _edited(proto: onnx.ModelProto, op: str) -> tuple[onnx.ModelProto, onnx.NodeProto]:
    out = copy.deepcopy(proto)
    return out, next(n for n in out.graph.node if n.op_type == op)


def test_an_unsupported_operator_fails(fast_graph) -> None:
    proto, info, _ = fast_graph
    bad, node = _edited(proto, "Relu")
    node.op_type = "Unique"  # "Supported: N" in the matrix
    verdict = check_graph(bad, info)
    assert not verdict.ok and any("operator Unique is not supported" in p for p in verdict.problems)
    bad, node = _edited(proto, "Relu")
    node.op_type = "Loop"  # supported by TensorRT, refused by this project's one-step export rule
    assert any("explicit state instead of a loop" in p for p in check_graph(bad, info).problems)


def test_attribute_and_type_restrictions_fail(tmp_path) -> None:
    """A small graph per restriction: Resize cubic, antialias, non-constant Slice axes, DOUBLE, BOOL Mul."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    scales = helper.make_tensor("scales", TensorProto.FLOAT, [4], [1, 1, 2, 2])

    def graph(nodes, inputs=(x,), inits=()):
        return helper.make_model(helper.make_graph(nodes, "g", list(inputs), [y], list(inits)),
                                 opset_imports=[helper.make_opsetid("", 17)])

    cubic = graph([helper.make_node("Resize", ["x", "", "scales"], ["y"], mode="cubic", antialias=1)], inits=[scales])
    problems = check_graph(cubic).problems
    assert any("mode='cubic'" in p for p in problems) and any("antialias" in p for p in problems)
    assert check_graph(graph([helper.make_node("Resize", ["x", "", "scales"], ["y"], mode="linear")],
                             inits=[scales])).ok  # the same graph, as TensorRT takes it

    axes = helper.make_tensor_value_info("axes", TensorProto.INT64, [1])
    starts, ends = (helper.make_tensor(n, TensorProto.INT64, [1], [0]) for n in ("starts", "ends"))
    sliced = graph([helper.make_node("Slice", ["x", "starts", "ends", "axes"], ["y"])], [x, axes], [starts, ends])
    assert any("axes) must be an initializer" in p for p in check_graph(sliced).problems)

    double = graph([helper.make_node("Cast", ["x"], ["d"], to=TensorProto.DOUBLE),
                    helper.make_node("Cast", ["d"], ["y"], to=TensorProto.FLOAT)])
    assert any("'d' is DOUBLE" in p for p in check_graph(double).problems)

    flags = helper.make_tensor_value_info("b", TensorProto.BOOL, [1, 3, 8, 8])
    boolean = graph([helper.make_node("Mul", ["b", "b"], ["m"]), helper.make_node("Cast", ["m"], ["y"], to=1)], [flags])
    assert any("'b' is BOOL; TensorRT supports Mul on" in p for p in check_graph(boolean).problems)

    new_opset = graph([helper.make_node("Relu", ["x"], ["y"])])
    new_opset.opset_import[0].version = 21
    assert any("opset 21 is outside" in p for p in check_graph(new_opset).problems)


def test_shapes_one_profile_cannot_cover_fail(fast_graph) -> None:
    proto, info, _ = fast_graph
    assert check_graph(proto, info).ok
    shared = copy.deepcopy(proto)
    h0 = next(v for v in shared.graph.input if v.name == "h0")
    h0.type.tensor_type.shape.dim[2].dim_param = "height"  # the state's H tied to the frame's: stride 16 is lost
    assert any("share the dim 'height'" in p for p in check_graph(shared, info).problems)
    dynamic = copy.deepcopy(proto)
    dynamic.graph.input[0].type.tensor_type.shape.dim[1].dim_param = "channels"
    assert any("'frame' must have 3 static channels" in p for p in check_graph(dynamic, info).problems)
    extra = copy.deepcopy(proto)
    extra.graph.input.append(helper.make_tensor_value_info("gain", TensorProto.FLOAT, [1]))
    assert any("are not the frame and state inputs" in p for p in check_graph(extra, info).problems)


def test_cli_check_trt(fast_graph, tmp_path, capsys) -> None:
    proto, _, path = fast_graph
    main(["check-trt", str(path)])
    out = capsys.readouterr().out
    assert "ok for TensorRT 10's ONNX parser" in out and "10.1-GA" in out
    bad, node = _edited(proto, "Relu")
    node.op_type = "Bernoulli"  # unsupported, and shape inference still works: one problem
    onnx.save(bad, str(tmp_path / "bad.onnx"))
    with pytest.raises(SystemExit) as exit_info:
        main(["check-trt", str(tmp_path / "bad.onnx")])
    err = capsys.readouterr().err
    assert exit_info.value.code == 1 and "operator Bernoulli is not supported" in err and "1 problem(s)" in err
