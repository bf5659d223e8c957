"""A checkpoint -> the ONNX graph or TensorRT engine a runtime needs, built on first use and cached.

``vdeblur --backend onnxruntime|tensorrt`` with a ``.safetensors`` checkpoint (the bundled one
included) comes here. The cache folder is ``artifact_cache.cache_root()``; inside it:

- ``onnx/<model>.<precision>.opset<N>.<checkpoint sha256[:12]>.onnx`` (+ ``.json`` record): the name
  says which artefact it is, the record what makes it valid: the checkpoint's full sha256, opset,
  precision, and the versions of torch (the exporter), onnx and vdeblur (the export code). Any of
  those changed -> the entry is stale and rebuilt in place; bytes that do not match the record's
  sha256 -> corrupt, rebuilt. The ONNX Runtime version is not part of the key: an ONNX file does not
  depend on the runtime that reads it, and a file the installed runtime cannot load fails loudly.
- ``tensorrt/``: engines built from those graphs by ``tensorrt.ensure_engine``, named and checked by
  ``engine_cache`` (TensorRT version, GPU name and compute capability, shape profile, precision,
  build settings, sha256 of the ONNX bytes and of the engine). The TensorRT half has never run: the
  machines this is developed on have no TensorRT and no GPU; its key and rebuild logic are tested
  with a stand-in for the library.
"""

from __future__ import annotations

from pathlib import Path

from vdeblur.console import reach

from .artifact_cache import (Log, atomic_write, build_lock, cache_root, check_entry, file_sha256, to_stderr,
                             with_fallback, write_record)
from .onnx import MIN_OPSET
from .profiles import DEFAULT_TRT_PROFILE, ShapeProfile


def onnx_key(checkpoint: Path, model: str, precision: str, opset: int) -> dict[str, str | int]:
    """Everything that makes a cached ONNX export valid for ``checkpoint``."""
    import torch

    from .onnx import onnx

    import vdeblur

    return {"checkpoint_sha256": file_sha256(checkpoint), "model": model, "precision": precision, "opset": opset,
            "torch": torch.__version__, "onnx": onnx.__version__, "vdeblur": vdeblur.__version__}


def cached_onnx(checkpoint: str | Path, precision: str = "fp32", opset: int = MIN_OPSET, *,
                root: Path | None = None, log: Log = to_stderr, arch: str | None = None) -> Path:
    """The ONNX export of ``checkpoint`` from the cache, exported first if missing, stale or corrupt.
    Says in one line what happened. ``arch``: the architecture to read a foreign checkpoint into."""
    return with_fallback(root or cache_root(), lambda folder: _onnx_entry(Path(checkpoint), precision, opset,
                                                                          folder, log, arch), log)


def _onnx_entry(checkpoint: Path, precision: str, opset: int, folder: Path, log: Log, arch: str | None = None) -> Path:
    from vdeblur.train.checkpoint import read_info

    # A bad checkpoint fails here, before anything is written. The model name is part of the entry's
    # name and key, so one foreign file read as two architectures (--arch) gets two entries.
    model = read_info(checkpoint, arch).model
    key = onnx_key(checkpoint, model, precision, opset)
    path = folder / "onnx" / f"{model}.{precision}.opset{opset}.{str(key['checkpoint_sha256'])[:12]}.onnx"
    if not check_entry(path, key):
        log(f"using cached {path}")
        return path
    with build_lock(path):
        reason = check_entry(path, key)  # again under the lock: another process may have just built it
        if not reason:
            log(f"using cached {path}")
            return path
        atomic_write(path, lambda tmp: _export(checkpoint, tmp, precision, opset, arch))
        write_record(path, key)
    why = "" if reason == "missing" else f"; the cached one was {_as_phrase(reason)}"
    log(f"exported {model} to ONNX {precision.upper()} (cached: {path}{why})")
    return path


def cached_engine(checkpoint: str | Path, precision: str = "fp16", profile: ShapeProfile = DEFAULT_TRT_PROFILE, *,
                  root: Path | None = None, log: Log = to_stderr, arch: str | None = None) -> tuple[Path, Path]:
    """(engine, the ONNX it was built from) for ``checkpoint``, both from the cache, built if needed.

    ``fp16``: an FP16 graph built strongly typed (TensorRT 10 and 11); ``fp32``: an FP32 graph and
    engine. Never run (no TensorRT here)."""
    from .tensorrt import BuildConfig, ensure_engine, import_tensorrt

    import_tensorrt()  # a missing TensorRT is one line before minutes of export work

    def attempt(folder: Path) -> tuple[Path, Path]:
        onnx_path = _onnx_entry(Path(checkpoint), precision, MIN_OPSET, folder, log, arch)
        engine, reason = ensure_engine(onnx_path, BuildConfig(profile, precision, out_dir=folder / "tensorrt"))
        if not reason:
            log(f"using cached {engine}")
        else:
            why = "" if reason == "missing" else f"; the cached one was {_as_phrase(reason)}"
            log(f"built TensorRT engine {precision.upper()} {profile.tag()} (cached: {engine}{why})")
        return engine, onnx_path

    return with_fallback(root or cache_root(), attempt, log)


def _export(checkpoint: Path, out: Path, precision: str, opset: int, arch: str | None = None) -> None:
    from vdeblur.train.checkpoint import load_checkpoint

    from .onnx import export_onnx

    model, _ = load_checkpoint(checkpoint, arch=arch)
    reach("export")
    export_onnx(model, out, opset=opset, precision=precision)


def _as_phrase(reason: str) -> str:
    return reason if reason.startswith(("stale", "corrupt")) else f"unusable ({reason})"

