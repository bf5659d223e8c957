"""ONNX -> serialized TensorRT engine (TensorRT 10.x / 11.x Python API) with its JSON sidecar.

Written from the TensorRT 10 documentation and samples; TensorRT cannot be installed where this
package is developed, so this module has never run (see docs/export.md). Everything around it
(profiles, sidecar, naming, staleness) is tested without TensorRT.

Precision: an FP16 ONNX graph (``vdeblur-export onnx --fp16``) is built as a strongly-typed network,
which works on TensorRT 10 and 11. ``BuilderFlag.FP16`` on an FP32 graph is only a fallback for
TensorRT 10: TensorRT 11 removed weak typing.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType
from typing import Any

from .artifact_cache import atomic_write_bytes, build_lock
from .dependencies import MissingDependencyError, import_optional  # noqa: F401 (callers catch it from here)
from .engine_cache import (DeviceEnv, EngineRecord, build_reason, engine_path, model_hash, timing_cache_path,
                           write_sidecar)
from .onnx import read_graph_info
from .profiles import ShapeProfile, profile_shapes

INSTALL_HINT = ('TensorRT is not installed: on a machine with an NVIDIA GPU run pip install "vdeblur[tensorrt]" '
                "(on Jetson use JetPack's TensorRT, or print a trtexec command with vdeblur-export trtexec-cmd)")
BUILD_PRECISIONS = ("fp16", "fp32")


def import_tensorrt() -> ModuleType:
    """``import tensorrt``, or a one-line error saying how to get it."""
    return import_optional("tensorrt", INSTALL_HINT)


def device_env(trt: ModuleType) -> DeviceEnv:
    """TensorRT version and the current CUDA GPU (name, compute capability)."""
    import torch

    if not torch.cuda.is_available():
        raise RuntimeError("TensorRT needs a CUDA GPU, and torch sees none (torch.cuda.is_available() is False)")
    major, minor = torch.cuda.get_device_capability()
    return DeviceEnv(trt.__version__, torch.cuda.get_device_name(), f"{major}.{minor}")


@dataclass(frozen=True)
class BuildConfig:
    profile: ShapeProfile
    precision: str = "fp16"  # what the engine computes in; an FP32 graph + fp16 uses the TRT-10 flag
    workspace_mib: int = 1024
    opt_level: int = 3  # builder optimisation level 0..5: higher searches more tactics, builds slower
    on_stale: str = "rebuild"  # or "refuse": keep a stale engine's file and stop with the reason
    out_dir: Path | None = None  # default: beside the ONNX file
    timing_cache: Path | None = None  # default: one per GPU + TensorRT version beside the engine

    def __post_init__(self) -> None:
        if self.precision not in BUILD_PRECISIONS:
            raise ValueError(f"precision {self.precision!r} is not one of {', '.join(BUILD_PRECISIONS)}")
        if not 0 <= self.opt_level <= 5:
            raise ValueError(f"builder optimisation level {self.opt_level} is outside 0..5")
        if self.workspace_mib < 1:
            raise ValueError(f"workspace {self.workspace_mib} MiB must be at least 1")


def engine_precision(graph_precision: str, wanted: str, trt_major: int) -> str:
    """How an engine of ``wanted`` precision is made from a graph of ``graph_precision``:
    'fp16' (FP16 graph, strongly typed), 'fp32', or 'fp32+fp16flag' (TRT 10 weak typing)."""
    if graph_precision == "fp16":
        if wanted != "fp16":
            raise ValueError("this ONNX graph is FP16; export an FP32 graph (without --fp16) for an FP32 engine")
        return "fp16"
    if wanted == "fp32":
        return "fp32"
    if trt_major >= 11:
        raise ValueError("TensorRT 11 has no FP16 builder flag; export an FP16 graph (vdeblur-export onnx --fp16) "
                         "and build that")
    return "fp32+fp16flag"


def build_engine(onnx_path: str | Path, cfg: BuildConfig) -> Path:
    """Build (or reuse, if its sidecar still matches) the engine for ``onnx_path``; returns its path."""
    return ensure_engine(onnx_path, cfg)[0]


def ensure_engine(onnx_path: str | Path, cfg: BuildConfig) -> tuple[Path, str]:
    """The engine for ``onnx_path`` and ``cfg``, and why it was (re)built ("" when a matching one was
    reused). The build holds the entry's lock, so two processes never build the same engine at once;
    the engine and then its sidecar (with the engine's sha256) are each renamed into place."""
    onnx_path = Path(onnx_path)
    info = read_graph_info(onnx_path)
    trt = import_tensorrt()
    env = device_env(trt)
    precision = engine_precision(info.precision, cfg.precision, int(trt.__version__.split(".")[0]))
    record = EngineRecord(model_sha256=model_hash(onnx_path), tensorrt_version=env.tensorrt_version,
                          gpu_name=env.gpu_name, compute_capability=env.compute_capability,
                          profile=cfg.profile.to_dict(), precision=precision, workspace_mib=cfg.workspace_mib,
                          opt_level=cfg.opt_level, graph=info.to_metadata())
    engine = engine_path(onnx_path, record, cfg.out_dir)
    with build_lock(engine):  # checked again under the lock: another process may have just built it
        reason = build_reason(engine, record, cfg.on_stale)
        if not reason:
            return engine, ""
        cache_file = cfg.timing_cache or timing_cache_path(engine, env)
        plan = _build_serialized(trt, onnx_path, cfg, precision, profile_shapes(info, cfg.profile), cache_file)
        atomic_write_bytes(engine, plan)
        write_sidecar(engine, replace(record, engine_sha256=hashlib.sha256(plan).hexdigest()))
    return engine, reason


def _build_serialized(trt: ModuleType, onnx_path: Path, cfg: BuildConfig, precision: str,
                      shapes: dict[str, tuple[tuple[int, ...], ...]], cache_file: Path) -> bytes:
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    # Explicit batch is implicit since TensorRT 10. Strong typing takes the precision from the graph
    # (every cast in our FP16 graph is honoured, so the FP32 cell state stays FP32). TensorRT 11 types
    # every network strongly and deprecates (ignores) the flag, so it is only passed to 10.x.
    strongly_typed = precision != "fp32+fp16flag" and int(trt.__version__.split(".")[0]) < 11
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED) if strongly_typed else 0
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):  # from the file, so external weight files are found
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT could not parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, cfg.workspace_mib << 20)
    config.builder_optimization_level = cfg.opt_level
    if precision == "fp32+fp16flag":
        config.set_flag(trt.BuilderFlag.FP16)
    profile = builder.create_optimization_profile()
    for name, (lo, mid, hi) in shapes.items():  # the frame and every state input
        profile.set_shape(name, lo, mid, hi)
    config.add_optimization_profile(profile)
    cache = _attach_timing_cache(config, cache_file)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise RuntimeError(f"TensorRT failed to build an engine from {onnx_path} (see the TensorRT log above)")
    atomic_write_bytes(cache_file, bytes(cache.serialize()))
    return bytes(plan)


def _attach_timing_cache(config: Any, cache_file: Path) -> Any:
    """Load the previous timing cache (if any) into ``config``; a cache from another device or TensorRT
    version is refused by TensorRT (ignore_mismatch=False) rather than silently misused."""
    previous = cache_file.read_bytes() if cache_file.is_file() else b""
    cache = config.create_timing_cache(previous)
    if not config.set_timing_cache(cache, ignore_mismatch=False):
        raise RuntimeError(f"timing cache {cache_file} does not match this GPU/TensorRT; delete it to start a new one")
    return cache
