"""Backend selection: turn what the user named (a checkpoint, an ONNX file, a TensorRT engine, a
registry name with bundled weights) and ``--backend`` into one ``Backend``.

A checkpoint asked to run on ONNX Runtime or TensorRT is exported (and built) on first use into the
cache folder and taken from there afterwards (``vdeblur.export.model_cache``).

TensorRT and ONNX Runtime are imported only when chosen, so neither is needed for the torch path.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from vdeblur import DEFAULT_MODEL, bundled_model_path
from vdeblur.train.checkpoint import load_checkpoint
from vdeblur.train.foreign import FOREIGN_SUFFIXES

from .base import Backend

BACKENDS = ("auto", "torch", "onnxruntime", "tensorrt")
_ENGINE_SUFFIXES = (".engine", ".plan", ".trt")


def resolve_model(spec: str | None) -> Path:
    """``None`` -> the bundled default; a registry name -> its bundled weights; else a file path."""
    if spec is None:
        spec = DEFAULT_MODEL
    path = Path(spec)
    if path.suffix:
        if not path.is_file():
            raise FileNotFoundError(f"model file {path} does not exist")
        return path
    bundled = bundled_model_path(spec)
    if not bundled.is_file():
        raise FileNotFoundError(f"no trained weights are bundled for model {spec!r} (looked for {bundled}); "
                                f"give a checkpoint (.safetensors), an ONNX file or a TensorRT engine")
    return bundled


def pick_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} was asked for but torch sees no CUDA GPU; use --device cpu")
    if device != "cpu" and not device.startswith("cuda"):
        raise ValueError(f"device {device!r} is not supported; allowed: auto, cpu, cuda, cuda:N")
    return device


def load_backend(model: str | None = None, backend: str = "auto", device: str = "auto", fp16: bool = False,
                 compile: str = "off", log: Callable[[str], None] | None = None, arch: str | None = None) -> Backend:
    """Build the backend for ``model``; ``auto`` follows the file type (engine -> TensorRT, .onnx ->
    ONNX Runtime, checkpoint -> PyTorch on the GPU when there is one). A checkpoint with
    ``onnxruntime`` or ``tensorrt`` runs its cached export (FP16 graph with ``fp16``), built first if
    needed; ``log`` (default stderr) gets the line saying which. ``compile`` is the torch backend's
    mode (off, inductor, cuda-graphs). Another project's checkpoint (``.pth``, ``.h5``: NAFNet,
    DeblurGAN-v2) runs like one of ours; ``arch`` overrides the architecture read from its layout."""
    if backend not in BACKENDS:
        raise ValueError(f"backend {backend!r} is not supported; allowed: {', '.join(BACKENDS)}")
    path = resolve_model(model)
    suffix = path.suffix.lower()
    checkpoints = {s: "torch" for s in (".safetensors", *FOREIGN_SUFFIXES)}
    kind = {".onnx": "onnxruntime", **checkpoints}.get(suffix, "tensorrt" if suffix in _ENGINE_SUFFIXES else "")
    if not kind:
        raise ValueError(f"model file {path} has an unknown type {suffix!r}; allowed: {', '.join(checkpoints)}, "
                         f".onnx, {', '.join(_ENGINE_SUFFIXES)}")
    if arch is not None and suffix not in FOREIGN_SUFFIXES:
        raise ValueError(f"--arch applies to other projects' checkpoints ({', '.join(FOREIGN_SUFFIXES)}); "
                         f"{path.name} names its own architecture")
    if kind == "torch" and backend in ("onnxruntime", "tensorrt"):
        return _cached_backend(path, backend, device, fp16, compile, log, arch)
    if backend not in ("auto", kind):
        raise ValueError(f"backend {backend!r} cannot run {path.name} (a {kind} model file); "
                         f"export it first with vdeblur-export or use --backend {kind}")
    if compile != "off" and kind != "torch":
        raise ValueError(f"--compile {compile} applies to the torch backend; {path.name} runs on {kind}")
    dev = pick_device(device)
    if kind == "tensorrt":
        from .trt_backend import TensorRTBackend

        return TensorRTBackend(path)
    if kind == "onnxruntime":
        from .ort_backend import OrtBackend

        return OrtBackend(path, device=dev, threads=torch.get_num_threads())  # what --threads set for torch
    from .torch_backend import TorchBackend

    net, _ = load_checkpoint(path, arch=arch)
    return TorchBackend(net, dev, fp16=fp16, compile=compile)


def _cached_backend(checkpoint: Path, backend: str, device: str, fp16: bool, compile: str,
                    log: Callable[[str], None] | None, arch: str | None = None) -> Backend:
    from vdeblur.export.artifact_cache import to_stderr
    from vdeblur.export.model_cache import cached_engine, cached_onnx

    if compile != "off":
        raise ValueError(f"--compile {compile} applies to the torch backend; --backend {backend} runs an export")
    dev = pick_device(device)
    precision = "fp16" if fp16 else "fp32"
    if backend == "tensorrt":
        from .trt_backend import TensorRTBackend

        engine, onnx_path = cached_engine(checkpoint, precision, log=to_stderr if log is None else log, arch=arch)
        return TensorRTBackend(engine, onnx_path)
    from vdeblur.export.dependencies import import_onnxruntime

    from .ort_backend import OrtBackend

    import_onnxruntime()  # a missing runtime is one line before the export work, not after it
    return OrtBackend(cached_onnx(checkpoint, precision, log=to_stderr if log is None else log, arch=arch), device=dev,
                      threads=torch.get_num_threads())  # what --threads set for torch
