"""The export cache: a checkpoint run on ONNX Runtime is exported once, reused, rebuilt when stale or
corrupt, safe under concurrent runs, and falls back to a temporary folder when the cache cannot be
written. The TensorRT half cannot run here (no TensorRT, no GPU): its key and rebuild logic are
tested with a stand-in for the library's build call."""

from __future__ import annotations

import errno
import json
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from vdeblur import bundled_model_path
from vdeblur.engine.backends import load_backend
from vdeblur.export import model_cache, tensorrt
from vdeblur.export.artifact_cache import cache_root, check_entry, record_path
from vdeblur.export.engine_cache import DeviceEnv, read_sidecar, sidecar_path
from vdeblur.export.profiles import parse_profile

BUNDLED = bundled_model_path("vdeblur_fast")


class Lines(list):
    def __call__(self, line: str) -> None:
        self.append(line)


def _entry(root: Path) -> Path:
    [path] = (root / "onnx").glob("*.onnx")
    return path


def test_cache_root_follows_the_environment(tmp_path) -> None:
    assert cache_root({"VDEBLUR_CACHE": str(tmp_path / "c"), "XDG_CACHE_HOME": "/x"}) == tmp_path / "c"
    assert cache_root({"XDG_CACHE_HOME": str(tmp_path)}) == tmp_path / "vdeblur"
    assert cache_root({}) == Path.home() / ".cache" / "vdeblur"


def test_miss_then_hit(tmp_path) -> None:
    log = Lines()
    path = model_cache.cached_onnx(BUNDLED, root=tmp_path, log=log)
    assert path.parent == tmp_path / "onnx" and path.name.startswith("vdeblur_fast.fp32.opset17.")
    assert log == [f"exported vdeblur_fast to ONNX FP32 (cached: {path})"]
    stamp = path.stat().st_mtime_ns
    assert model_cache.cached_onnx(BUNDLED, root=tmp_path, log=log) == path
    assert log[1] == f"using cached {path}" and path.stat().st_mtime_ns == stamp  # not rebuilt
    record = json.loads(record_path(path).read_text())["key"]
    assert record["torch"] == torch.__version__ and record["opset"] == 17 and len(record["checkpoint_sha256"]) == 64
    fp16 = model_cache.cached_onnx(BUNDLED, "fp16", root=tmp_path, log=log)  # precision is part of the key
    assert fp16 != path and log[2].startswith("exported vdeblur_fast to ONNX FP16")


def test_other_checkpoint_is_another_entry(tmp_path, fast_checkpoint) -> None:
    a = model_cache.cached_onnx(BUNDLED, root=tmp_path, log=Lines())
    b = model_cache.cached_onnx(fast_checkpoint, root=tmp_path, log=Lines())
    assert a != b and not check_entry(a, model_cache.onnx_key(BUNDLED, "vdeblur_fast", "fp32", 17))


@pytest.mark.parametrize("damage, phrase", [
    ("exporter", "stale: built for torch '1.0.0' (now"),
    ("truncate", "corrupt: its bytes do not match"),
    ("flip", "corrupt: its bytes do not match"),
    ("record", "unusable (its record is damaged"),
    ("no-record", "unusable (it has no record)"),
])
def test_stale_or_corrupt_entry_is_rebuilt(tmp_path, damage: str, phrase: str) -> None:
    path = model_cache.cached_onnx(BUNDLED, root=tmp_path, log=Lines())
    good = path.read_bytes()
    record = record_path(path)
    if damage == "exporter":
        data = json.loads(record.read_text())
        data["key"]["torch"] = "1.0.0"
        record.write_text(json.dumps(data))
    elif damage == "truncate":
        path.write_bytes(good[: len(good) // 2])
    elif damage == "flip":
        path.write_bytes(good[:-100] + bytes([good[-100] ^ 1]) + good[-99:])
    elif damage == "record":
        record.write_text("{not json")
    else:
        record.unlink()
    log = Lines()
    assert model_cache.cached_onnx(BUNDLED, root=tmp_path, log=log) == path
    [line] = log
    assert line.startswith(f"exported vdeblur_fast to ONNX FP32 (cached: {path}; the cached one was ")
    assert phrase in line
    assert path.read_bytes() == good  # the export is deterministic: the rebuilt file is the original one
    assert not check_entry(path, json.loads(record.read_text())["key"])


def test_two_threads_at_once_export_once(tmp_path) -> None:
    results: list[Path] = []
    log = Lines()
    threads = [threading.Thread(target=lambda: results.append(model_cache.cached_onnx(BUNDLED, root=tmp_path, log=log)))
               for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 2 and results[0] == results[1]
    assert sorted(line.split(" ")[0] for line in log) == ["exported", "using"]  # the lock made one wait
    assert sorted(p.name for p in (tmp_path / "onnx").iterdir() if not p.name.startswith(".")) == \
        [results[0].name, results[0].name + ".json"]
    assert [p.name for p in (tmp_path / "onnx").glob(".*.tmp")] == []


@pytest.mark.slow
def test_two_processes_at_once_leave_a_whole_entry(tmp_path) -> None:
    """Two real processes on an empty cache: both get a loadable file, one exports, the cache is whole."""
    code = ("import sys, onnxruntime; from vdeblur import bundled_model_path; "
            "from vdeblur.export.model_cache import cached_onnx; "
            f"p = cached_onnx(bundled_model_path(), root=__import__('pathlib').Path({str(tmp_path)!r})); "
            "onnxruntime.InferenceSession(str(p), providers=['CPUExecutionProvider'])")
    procs = [subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True) for _ in range(2)]
    errs = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errs
    lines = [e.strip().splitlines()[-1] for e in errs]
    assert sorted(line.split(" ")[0] for line in lines) == ["exported", "using"], lines
    path = _entry(tmp_path)
    assert not check_entry(path, json.loads(record_path(path).read_text())["key"])
    assert [p.name for p in (tmp_path / "onnx").glob(".*.tmp")] == []


def test_unwritable_cache_falls_back_to_a_temporary_folder(tmp_path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    log = Lines()
    path = model_cache.cached_onnx(BUNDLED, root=blocker / "cache", log=log)
    assert log[0].startswith(f"cache folder {blocker / 'cache'} cannot be written (") and "for this run" in log[0]
    assert log[1] == f"exported vdeblur_fast to ONNX FP32 (cached: {path})" and len(log) == 2
    assert path.is_file() and not str(path).startswith(str(tmp_path))


def test_read_only_cache_falls_back(tmp_path, monkeypatch) -> None:
    """A read-only folder refuses the first write, the lock file (root ignores chmod, so the refusal
    is injected where the kernel would give it: EROFS on a read-only mount)."""
    from vdeblur.export import artifact_cache

    real_open = open

    def read_only(path, *args, **kwargs):
        if str(path).startswith(str(tmp_path)) and args and args[0] not in ("r", "rb"):
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(artifact_cache, "open", read_only, raising=False)
    log = Lines()
    path = model_cache.cached_onnx(BUNDLED, root=tmp_path, log=log)
    assert log[0].startswith(f"cache folder {tmp_path} cannot be written (Read-only file system); using ")
    assert path.is_file() and not str(path).startswith(str(tmp_path))
    assert [p for p in (tmp_path / "onnx").iterdir()] == []


def test_full_cache_falls_back_and_leaves_no_partial_file(tmp_path, monkeypatch) -> None:
    export = model_cache._export

    def full_disk(checkpoint, out, precision, opset, arch=None):  # what a full disk does to the export in the cache
        if str(out).startswith(str(tmp_path)):
            export(checkpoint, out, precision, opset, arch)
            raise OSError(errno.ENOSPC, "No space left on device")
        export(checkpoint, out, precision, opset)

    monkeypatch.setattr(model_cache, "_export", full_disk)
    log = Lines()
    path = model_cache.cached_onnx(BUNDLED, root=tmp_path, log=log)
    assert "cannot be written (No space left on device)" in log[0] and path.is_file()
    assert [p.name for p in (tmp_path / "onnx").iterdir() if not p.name.endswith(".lock")] == []


def test_load_backend_runs_a_checkpoint_on_onnxruntime(tmp_path, monkeypatch, fast_checkpoint) -> None:
    monkeypatch.setenv("VDEBLUR_CACHE", str(tmp_path))
    log = Lines()
    ort = load_backend(str(fast_checkpoint), "onnxruntime", "cpu", log=log)
    assert ort.name == "onnxruntime" and log[0].startswith("exported vdeblur_fast to ONNX FP32 (cached: ")
    reference = load_backend(str(fast_checkpoint), "torch", "cpu")
    frame = torch.rand(1, 3, 32, 48)
    state_a, state_b = ort.initial_state(32, 48), reference.initial_state(32, 48)
    for _ in range(3):  # the state is carried through the cached graph's outputs
        a, state_a = ort.run(frame, state_a)
        b, state_b = reference.run(frame, state_b)
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-4)
    assert load_backend(str(fast_checkpoint), "onnxruntime", "cpu", log=log).name == "onnxruntime"
    assert log[1].startswith("using cached ")
    assert load_backend(str(fast_checkpoint), "auto", "cpu", log=log).name == "torch" and len(log) == 2
    with pytest.raises(ValueError, match="--compile inductor applies to the torch backend"):
        load_backend(str(fast_checkpoint), "onnxruntime", "cpu", compile="inductor")


@pytest.mark.slow
def test_vdeblur_cli_exports_then_reuses(tmp_path) -> None:
    from conftest import make_clip

    make_clip(tmp_path / "in.mp4", width=48, height=32, frames=3, audio=False)
    env = {"VDEBLUR_CACHE": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin"}
    exe = [sys.executable, "-m", "vdeblur.engine.cli"]
    lines = []
    for out in ("a.mp4", "b.mp4"):
        done = subprocess.run([*exe, str(tmp_path / "in.mp4"), str(tmp_path / out), "--backend", "onnxruntime",
                               "--threads", "1"], capture_output=True, text=True, env=env, timeout=120)
        assert done.returncode == 0, done.stderr
        lines.append(done.stderr.splitlines()[0])
    entry = _entry(tmp_path / "cache")
    # No --model: the bundled default.
    assert lines == [f"vdeblur: exported vdeblur_deep to ONNX FP32 (cached: {entry})", f"vdeblur: using cached {entry}"]


# --- TensorRT: the library is replaced by a stand-in for its build call (never run for real here) ---

ORIN = DeviceEnv("10.3.0", "Orin", "8.7")


@pytest.fixture
def fake_trt(monkeypatch):
    """``import_tensorrt``, the device and the build itself faked; counts the builds."""
    builds: list[tuple[str, dict]] = []
    env = {"now": ORIN}

    class Trt:
        __version__ = "10.3.0"

    def build(trt, onnx_path, cfg, precision, shapes, cache_file):
        builds.append((precision, shapes))
        return f"plan for {onnx_path.name} {precision} {sorted(shapes.items())}".encode()

    monkeypatch.setattr(tensorrt, "import_tensorrt", lambda: Trt)
    monkeypatch.setattr(tensorrt, "device_env", lambda trt: env["now"])
    monkeypatch.setattr(tensorrt, "_build_serialized", build)
    return builds, env


def test_engine_cache_key_and_rebuilds(tmp_path, fake_trt) -> None:
    builds, env = fake_trt
    log = Lines()
    engine, onnx_path = model_cache.cached_engine(BUNDLED, root=tmp_path, log=log)
    assert engine.parent == tmp_path / "tensorrt" and onnx_path.parent == tmp_path / "onnx" and len(builds) == 1
    assert log[0].startswith("exported vdeblur_fast to ONNX FP16") and log[1].startswith(
        "built TensorRT engine FP16 64x64-720x1280-2160x3840 (cached: ")
    shapes = builds[0][1]
    assert shapes["frame"] == ((1, 3, 64, 64), (1, 3, 720, 1280), (1, 3, 2160, 3840))
    assert shapes["h0"][2] == (1, 96, 135, 240)  # the state's profile follows the frame's through stride 16
    record = read_sidecar(engine)
    assert record.compute_capability == "8.7" and record.engine_sha256

    assert model_cache.cached_engine(BUNDLED, root=tmp_path, log=log)[0] == engine and len(builds) == 1
    assert log[-1] == f"using cached {engine}"

    env["now"] = DeviceEnv("10.3.0", "Orin", "8.9")  # same GPU name and TensorRT, other compute capability
    assert model_cache.cached_engine(BUNDLED, root=tmp_path, log=log)[0] == engine and len(builds) == 2
    assert "the cached one was stale: built for compute capability '8.7' (now '8.9')" in log[-1]

    engine.write_bytes(engine.read_bytes()[:-1])  # truncated: never deserialized, rebuilt
    model_cache.cached_engine(BUNDLED, root=tmp_path, log=log)
    assert len(builds) == 3 and "corrupt" in log[-1]

    sidecar_path(engine).write_text("{")  # a damaged sidecar: rebuilt
    model_cache.cached_engine(BUNDLED, root=tmp_path, log=log)
    assert len(builds) == 4 and "damaged" in log[-1]

    other = model_cache.cached_engine(BUNDLED, profile=parse_profile("360x640", None, None), root=tmp_path, log=log)[0]
    assert other != engine and len(builds) == 5  # another profile is another engine; the first one stays
    assert engine.is_file()

    fp32, fp32_onnx = model_cache.cached_engine(BUNDLED, "fp32", root=tmp_path, log=log)
    assert fp32_onnx != onnx_path and builds[-1][0] == "fp32" and ".fp32." in fp32.name
    env["now"] = DeviceEnv("10.8.0", "Orin", "8.7")  # another TensorRT: another engine name, built anew
    assert model_cache.cached_engine(BUNDLED, root=tmp_path, log=log)[0] != engine and len(builds) == 7


def test_engine_build_needs_tensorrt_before_any_export(tmp_path) -> None:
    with pytest.raises(tensorrt.MissingDependencyError, match="TensorRT is not installed"):
        model_cache.cached_engine(BUNDLED, root=tmp_path, log=Lines())
    assert not (tmp_path / "onnx").exists()


def test_vdeblur_backend_tensorrt_without_tensorrt_is_one_line(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("VDEBLUR_CACHE", str(tmp_path))
    with pytest.raises(tensorrt.MissingDependencyError, match="TensorRT is not installed"):
        load_backend(None, "tensorrt", "cpu", log=Lines())
    assert not (tmp_path / "onnx").exists()


def test_export_tensorrt_without_onnx_file_builds_the_bundled_model(tmp_path, monkeypatch, fake_trt, capsys) -> None:
    from vdeblur.export.cli import main

    builds, _ = fake_trt
    monkeypatch.setenv("VDEBLUR_CACHE", str(tmp_path))
    main(["tensorrt", "--min", "360x640", "--max", "1080x1920"])
    captured = capsys.readouterr()
    [engine] = (tmp_path / "tensorrt").glob("*.engine")
    assert captured.out == f"engine {engine}\n" and engine.name.startswith("vdeblur_deep.fp16.opset17.")
    assert captured.err.startswith("exported vdeblur_deep to ONNX FP16 (cached: ") and len(builds) == 1
    main(["tensorrt", "--min", "360x640", "--max", "1080x1920"])  # everything cached: no export, no build
    assert capsys.readouterr().err.startswith("using cached ") and len(builds) == 1
    with pytest.raises(SystemExit):
        main(["tensorrt", "--min", "64x64", "--model", "rir"])
    assert "has no trained weights to build an engine from" in capsys.readouterr().err
