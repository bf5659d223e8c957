"""Everything around TensorRT that runs without it: shape profiles, state-profile derivation, the
engine sidecar and its staleness rules, engine naming, the trtexec command, the lazy-import errors,
the torch.export half of the Torch-TensorRT path. A real engine build runs only where TensorRT and
a CUDA GPU are present and is skipped, with the reason, elsewhere."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from vdeblur.export.cli import main
from vdeblur.export.contract import GraphInfo
from vdeblur.export.engine_cache import (DeviceEnv, EngineRecord, StaleEngineError, check_runnable, engine_path,
                                         model_hash, needs_build, read_sidecar, sidecar_path, timing_cache_path,
                                         write_sidecar)
from vdeblur.export.onnx import export_onnx, read_graph_info
from vdeblur.export.profiles import FrameSize, parse_frame_size, parse_profile, profile_shapes
from vdeblur.export.tensorrt import BuildConfig, MissingDependencyError, engine_precision, import_tensorrt
from vdeblur.export.torch_trt import export_program, import_torch_tensorrt
from vdeblur.export.trtexec import TrtexecOptions, format_command, trtexec_command
from vdeblur.train.registry import build_model

ORIN = DeviceEnv("10.3.0", "Orin", "8.7")
H100 = DeviceEnv("10.3.0", "NVIDIA H100 80GB HBM3", "9.0")


@pytest.fixture(scope="module")
def fast_onnx(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("onnx") / "vdeblur_fast.onnx"
    export_onnx(build_model("vdeblur_fast").eval(), path, precision="fp16")
    return path


def _info(name: str, **overrides: object) -> GraphInfo:
    return GraphInfo.from_model(build_model(name, overrides))


def _record(onnx_path: Path, env: DeviceEnv = ORIN, **changes: object) -> EngineRecord:
    base = EngineRecord(model_hash(onnx_path), env.tensorrt_version, env.gpu_name, env.compute_capability,
                        parse_profile("360x640", "720x1280", "1080x1920").to_dict(), "fp16", 1024, 3,
                        read_graph_info(onnx_path).to_metadata())
    return replace(base, **changes)


def test_parse_frame_sizes() -> None:
    assert parse_frame_size("360x640") == FrameSize(1, 360, 640)
    assert parse_frame_size(" 2x3x720x1280 ", in_channels=3) == FrameSize(2, 720, 1280)
    with pytest.raises(ValueError, match="has 3 channels; the model takes 4"):
        parse_frame_size("1x3x64x64", in_channels=4)
    for bad in ("640", "360x", "360*640", "1x360x640", "0x640"):
        with pytest.raises(ValueError, match=re.escape(repr(bad.strip()))):
            parse_frame_size(bad)


def test_profile_defaults_and_order() -> None:
    static = parse_profile("360x640", None, None)
    assert static.is_static and static.max == FrameSize(1, 360, 640)
    assert parse_profile("360x640", "720x1280", None).max == FrameSize(1, 720, 1280)
    with pytest.raises(ValueError, match="height must satisfy min <= opt <= max; got 720, 360, 1080"):
        parse_profile("720x1280", "360x640", "1080x1920")
    profile = parse_profile("360x640", "720x1280", "1080x1920")
    assert type(profile).from_dict(profile.to_dict()) == profile
    assert profile.tag() == "360x640-720x1280-1080x1920"


def test_state_profiles_follow_the_frame_through_the_stride() -> None:
    profile = parse_profile("360x640", "720x1280", "1080x1920")
    fast = profile_shapes(_info("vdeblur_fast"), profile)  # pad 16, state at stride 16
    assert fast["frame"] == ((1, 3, 368, 640), (1, 3, 720, 1280), (1, 3, 1088, 1920))
    assert fast["h0"] == fast["c0"] == ((1, 96, 23, 40), (1, 96, 45, 80), (1, 96, 68, 120))
    feedback = profile_shapes(_info("deblurgan_feedback"), profile)  # pad 4, state at stride 4, 128 ch
    assert feedback["h0"][2] == (1, 128, 270, 480)
    edge = profile_shapes(_info("deblurgan_edge"), profile)
    assert list(edge) == ["frame"] and edge["frame"][0] == (1, 4, 360, 640)


def test_sidecar_round_trip_and_staleness(fast_onnx: Path, tmp_path: Path) -> None:
    wanted = _record(fast_onnx)
    engine = engine_path(fast_onnx, wanted, tmp_path)
    assert needs_build(engine, wanted)  # no engine yet
    engine.write_bytes(b"plan")
    assert needs_build(engine, wanted)  # engine without sidecar: rebuild
    with pytest.raises(StaleEngineError, match="has no sidecar"):
        needs_build(engine, wanted, on_stale="refuse")
    write_sidecar(engine, wanted)
    assert read_sidecar(engine) == wanted and read_sidecar(engine).graph_info == read_graph_info(fast_onnx)
    assert not needs_build(engine, wanted) and not needs_build(engine, wanted, "refuse")
    for changes, label in (({"gpu_name": "NVIDIA H100"}, "GPU 'Orin' (now 'NVIDIA H100')"),
                           ({"tensorrt_version": "10.13.0"}, "TensorRT '10.3.0' (now '10.13.0')"),
                           ({"model_sha256": "0" * 64}, "model hash"), ({"opt_level": 5}, "optimisation level 3")):
        other = replace(wanted, **changes)
        assert needs_build(engine, other, "rebuild")
        with pytest.raises(StaleEngineError, match=f"is stale: built for .*{re.escape(label)}"):
            needs_build(engine, other, "refuse")
    with pytest.raises(ValueError, match="on_stale 'ignore' is not one of rebuild, refuse"):
        needs_build(engine, wanted, "ignore")
    sidecar_path(engine).write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(StaleEngineError, match="is damaged"):
        read_sidecar(engine)


def test_runtime_refuses_other_gpu_tensorrt_or_model(fast_onnx: Path, tmp_path: Path) -> None:
    record = _record(fast_onnx)
    engine = tmp_path / "m.engine"
    write_sidecar(engine, record)
    assert check_runnable(engine, ORIN, fast_onnx) == record
    with pytest.raises(StaleEngineError, match=r"GPU 'Orin' \(now 'NVIDIA H100 80GB HBM3'\).*compute capability"):
        check_runnable(engine, H100)
    other = tmp_path / "other.onnx"
    other.write_bytes(fast_onnx.read_bytes() + b"\0")
    with pytest.raises(StaleEngineError, match="model hash"):
        check_runnable(engine, ORIN, other)


def test_engine_and_cache_names(fast_onnx: Path) -> None:
    record = _record(fast_onnx)
    name = engine_path(fast_onnx, record).name
    assert name == f"vdeblur_fast.fp16.360x640-720x1280-1080x1920.ws1024.o3.trt10.3.0.orin.{record.model_sha256[:12]}.engine"
    assert engine_path(fast_onnx, _record(fast_onnx, H100)).name != name
    assert sidecar_path(Path("a/b.engine")) == Path("a/b.engine.json")
    assert timing_cache_path(Path("e/x.engine"), H100) == Path("e/timing.trt10.3.0.nvidia-h100-80gb-hbm3.cache")


def test_engine_precision_rules() -> None:
    assert engine_precision("fp16", "fp16", 10) == "fp16" == engine_precision("fp16", "fp16", 11)
    assert engine_precision("fp32", "fp16", 10) == "fp32+fp16flag"
    assert engine_precision("fp32", "fp32", 11) == "fp32"
    with pytest.raises(ValueError, match="TensorRT 11 has no FP16 builder flag"):
        engine_precision("fp32", "fp16", 11)
    with pytest.raises(ValueError, match="this ONNX graph is FP16"):
        engine_precision("fp16", "fp32", 10)
    with pytest.raises(ValueError, match="optimisation level 7 is outside 0..5"):
        BuildConfig(parse_profile("360x640", None, None), opt_level=7)


def test_trtexec_command_text(fast_onnx: Path) -> None:
    info = read_graph_info(fast_onnx)
    opts = TrtexecOptions(Path("m.onnx"), Path("m.plan"), parse_profile("360x640", "720x1280", "1080x1920"),
                          timing_cache=Path("m.cache"))
    assert format_command(trtexec_command(info, opts)) == (
        "trtexec --onnx=m.onnx --saveEngine=m.plan --stronglyTyped "
        "--minShapes=frame:1x3x368x640,h0:1x96x23x40,c0:1x96x23x40 "
        "--optShapes=frame:1x3x720x1280,h0:1x96x45x80,c0:1x96x45x80 "
        "--maxShapes=frame:1x3x1088x1920,h0:1x96x68x120,c0:1x96x68x120 "
        "--timingCacheFile=m.cache --memPoolSize=workspace:1024M --builderOptimizationLevel=3 --skipInference")
    assert "--stronglyTyped" not in trtexec_command(info, replace(opts, trt_major=11))
    fp32 = replace(info, precision="fp32")
    assert "--fp16" in trtexec_command(fp32, opts) and "--fp16" not in trtexec_command(fp32, replace(opts, fp16=False))
    with pytest.raises(ValueError, match="TensorRT 11 trtexec has no --fp16"):
        trtexec_command(fp32, replace(opts, trt_major=11))
    with pytest.raises(ValueError, match="DLA needs static shapes"):
        trtexec_command(info, replace(opts, dla_core=0))
    dla = trtexec_command(fp32, replace(opts, profile=parse_profile("720x1280", None, None), dla_core=1))
    assert dla[-3:] == ["--useDLACore=1", "--allowGPUFallback", "--skipInference"]
    assert "--minShapes=frame:1x3x720x1280,h0:1x96x45x80,c0:1x96x45x80" in dla


def test_cli_trtexec_cmd(fast_onnx: Path, capsys) -> None:
    main(["trtexec-cmd", str(fast_onnx), "--min", "360x640", "--opt", "720x1280", "--max", "1080x1920"])
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"trtexec --onnx={fast_onnx} --saveEngine={fast_onnx.with_suffix('.plan')} --stronglyTyped")


def _block_import(monkeypatch: pytest.MonkeyPatch, module: str) -> None:
    # None in sys.modules makes `import module` raise ImportError, as on a machine without it.
    monkeypatch.setitem(sys.modules, module, None)


def test_missing_tensorrt_is_one_clear_line(fast_onnx: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    _block_import(monkeypatch, "tensorrt")
    with pytest.raises(MissingDependencyError, match=r'pip install "vdeblur\[tensorrt\]"'):
        import_tensorrt()
    with pytest.raises(SystemExit) as exit_info:
        main(["tensorrt", str(fast_onnx), "--min", "360x640"])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 1 and len(err) == 1 and "NVIDIA GPU" in err[0] and "tensorrt" in err[0]
    from vdeblur.engine.backends.trt_backend import TensorRTBackend

    with pytest.raises(MissingDependencyError, match="TensorRT is not installed"):
        TensorRTBackend(fast_onnx.with_suffix(".engine"))


def test_missing_torch_tensorrt_is_one_clear_line(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    _block_import(monkeypatch, "torch_tensorrt")
    with pytest.raises(MissingDependencyError, match="Torch-TensorRT is not installed"):
        import_torch_tensorrt()
    with pytest.raises(SystemExit):
        main(["torch-trt", "--model", "vdeblur_fast", "x.ep", "--min", "360x640"])
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_trt_backend_refuses_stale_engine(fast_onnx: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The backend checks the sidecar before TensorRT touches the engine (TensorRT itself is faked)."""
    from vdeblur.engine.backends import trt_backend

    engine = tmp_path / "m.engine"
    write_sidecar(engine, _record(fast_onnx, ORIN))
    monkeypatch.setattr(trt_backend, "import_tensorrt", lambda: object())
    monkeypatch.setattr(trt_backend, "device_env", lambda trt: H100)
    with pytest.raises(StaleEngineError, match="cannot run here: built for GPU 'Orin'"):
        trt_backend.TensorRTBackend(engine)


def test_torch_export_program_with_derived_state_dims() -> None:
    """The torch.export half of the Torch-TensorRT path: one program serves several sizes."""
    model = build_model("vdeblur_fast").eval()
    program, _ = export_program(model, parse_profile("32x32", "64x96", "128x128"), "fp32", device="cpu")
    for h, w in ((32, 48), (96, 64)):
        frame, state = torch.rand(1, 3, h, w), model.initial_state(1, h, w)
        out, h1, c1 = program.module()(frame, *state)
        with torch.no_grad():
            ref, (rh, rc) = model(frame, state)
        assert torch.allclose(out, ref, atol=1e-5) and torch.allclose(c1, rc, atol=1e-5)


@pytest.mark.cuda
@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is None or not torch.cuda.is_available(),
                    reason="needs TensorRT and a CUDA GPU: pip install \"vdeblur[tensorrt]\" on an NVIDIA machine")
def test_real_engine_build_and_run(fast_onnx: Path, tmp_path: Path) -> None:
    from vdeblur.engine.backends.trt_backend import TensorRTBackend
    from vdeblur.export.fp16 import run_onnx_sequence
    from vdeblur.export.tensorrt import build_engine

    cfg = BuildConfig(parse_profile("64x64", "64x96", "128x128"), out_dir=tmp_path)
    engine = build_engine(fast_onnx, cfg)
    assert build_engine(fast_onnx, cfg) == engine and read_sidecar(engine).precision == "fp16"
    backend = TensorRTBackend(engine, fast_onnx)
    frames = [torch.rand(1, 3, 64, 96) for _ in range(3)]
    state, outs = backend.initial_state(64, 96), []
    for frame in frames:
        out, state = backend.run(frame.cuda(), state)
        outs.append(out.cpu().numpy())
    ref = run_onnx_sequence(str(fast_onnx), [f.numpy() for f in frames])
    assert all(abs(a - b).max() < 2e-2 for a, b in zip(outs, ref))
