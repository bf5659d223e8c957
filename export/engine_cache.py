"""Engine files and their JSON sidecars: what an engine was built for, and whether it still fits.

A serialized TensorRT engine runs only on the TensorRT version and GPU model it was built with, and
is only right for the ONNX bytes it was built from. The sidecar (``<engine>.json``) records those
facts plus the build settings and the graph's vdeblur metadata, so a runtime needs nothing else,
and a stale engine (other GPU, other TensorRT, other model, other settings) is rebuilt or refused
with a message saying what differs instead of failing deep inside TensorRT.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from .artifact_cache import atomic_write, file_sha256
from .contract import GraphInfo
from .profiles import ShapeProfile

FORMAT = "vdeblur-engine/1"
ON_STALE = ("rebuild", "refuse")


class StaleEngineError(RuntimeError):
    """An engine built for another GPU, TensorRT, model or settings; the message says which."""


@dataclass(frozen=True)
class DeviceEnv:
    """Where an engine is built or run."""

    tensorrt_version: str
    gpu_name: str
    compute_capability: str  # "8.7" (Jetson Orin), "9.0" (H100)


@dataclass(frozen=True)
class EngineRecord:
    """The sidecar's content."""

    model_sha256: str
    tensorrt_version: str
    gpu_name: str
    compute_capability: str
    profile: dict[str, str]  # ShapeProfile.to_dict(): video frame sizes, before padding
    precision: str  # "fp16" (FP16 graph, strongly typed) or "fp32" / "fp32+fp16flag"
    workspace_mib: int
    opt_level: int
    graph: dict[str, str]  # GraphInfo.to_metadata() of the ONNX file
    format: str = FORMAT
    # sha256 of the engine file, so a truncated or damaged engine is rebuilt, not deserialized;
    # empty in sidecars written before it was recorded (those engines are not checked).
    engine_sha256: str = ""

    @property
    def graph_info(self) -> GraphInfo:
        return GraphInfo.from_metadata(self.graph, source="engine sidecar")

    @property
    def shape_profile(self) -> ShapeProfile:
        return ShapeProfile.from_dict(self.profile)


def model_hash(onnx_path: str | Path) -> str:
    """sha256 of the ONNX file's bytes: any re-export, even of the same weights, is a new model."""
    return file_sha256(onnx_path)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def engine_path(onnx_path: str | Path, record: EngineRecord, out_dir: str | Path | None = None) -> Path:
    """Name an engine by everything that makes it unique, as vs-mlrt does, e.g.
    ``vdeblur_fast.fp16.360x640-720x1280-1080x1920.ws1024.o3.trt10.3.0.orin.1a2b3c4d5e6f.engine``."""
    onnx_path = Path(onnx_path)
    parts = [onnx_path.stem, record.precision, record.shape_profile.tag(), f"ws{record.workspace_mib}",
             f"o{record.opt_level}", f"trt{record.tensorrt_version}", _slug(record.gpu_name), record.model_sha256[:12]]
    return Path(out_dir or onnx_path.parent) / (".".join(parts) + ".engine")


def timing_cache_path(engine: str | Path, env: DeviceEnv) -> Path:
    """One timing cache per GPU model and TensorRT version, shared by every engine in the folder:
    a cache from another device or TensorRT is useless (and refused) there."""
    engine = Path(engine)
    return engine.parent / f"timing.trt{env.tensorrt_version}.{_slug(env.gpu_name)}.cache"


def sidecar_path(engine: str | Path) -> Path:
    engine = Path(engine)
    return engine.with_name(engine.name + ".json")


def write_sidecar(engine: str | Path, record: EngineRecord) -> Path:
    text = json.dumps(asdict(record), indent=2, sort_keys=True) + "\n"
    return atomic_write(sidecar_path(engine), lambda tmp: tmp.write_text(text))


def read_sidecar(engine: str | Path) -> EngineRecord:
    path = sidecar_path(engine)
    if not path.is_file():
        raise StaleEngineError(f"engine {engine} has no sidecar {path.name}; rebuild it with vdeblur-export tensorrt")
    try:
        data = json.loads(path.read_text())
        if data.get("format") != FORMAT:
            raise ValueError(f"format {data.get('format')!r}, expected {FORMAT!r}")
        known = {f.name for f in fields(EngineRecord)}
        return EngineRecord(**{k: v for k, v in data.items() if k in known})
    except (ValueError, TypeError) as e:
        raise StaleEngineError(f"sidecar {path} is damaged ({e}); rebuild the engine with vdeblur-export tensorrt") from None


# The facts that decide whether an engine can run here / is the one asked for, with their labels.
_RUNTIME_FIELDS = {"tensorrt_version": "TensorRT", "gpu_name": "GPU", "compute_capability": "compute capability"}
_BUILD_FIELDS = {**_RUNTIME_FIELDS, "model_sha256": "model hash", "profile": "shape profile",
                 "precision": "precision", "workspace_mib": "workspace (MiB)", "opt_level": "optimisation level"}


def differences(built: EngineRecord, wanted: EngineRecord, *, runtime_only: bool = False) -> list[str]:
    """What differs between an engine's record and what is wanted now, one phrase per fact."""
    names = _RUNTIME_FIELDS if runtime_only else _BUILD_FIELDS
    return [f"{label} {getattr(built, name)!r} (now {getattr(wanted, name)!r})"
            for name, label in names.items() if getattr(built, name) != getattr(wanted, name)]


def needs_build(engine: str | Path, wanted: EngineRecord, on_stale: str = "rebuild") -> bool:
    """True if ``engine`` is missing or stale and may be (re)built; raises if stale and ``refuse``."""
    return bool(build_reason(engine, wanted, on_stale))


def build_reason(engine: str | Path, wanted: EngineRecord, on_stale: str = "rebuild") -> str:
    """Why ``engine`` must be (re)built for ``wanted`` ("" if it can be reused): missing, no or damaged
    sidecar, built for other facts, or bytes that do not match the sidecar's sha256. With ``refuse`` a
    stale or damaged engine raises StaleEngineError instead (a missing one may still be built)."""
    if on_stale not in ON_STALE:
        raise ValueError(f"on_stale {on_stale!r} is not one of {', '.join(ON_STALE)}")
    engine = Path(engine)
    if not engine.is_file():
        return "missing"
    try:
        built = read_sidecar(engine)
    except StaleEngineError as e:
        if on_stale == "refuse":
            raise
        return str(e)
    diff = differences(built, wanted)
    if diff:
        reason = f"stale: built for {'; '.join(diff)}"
    elif built.engine_sha256 and file_sha256(engine) != built.engine_sha256:
        reason = "corrupt: its bytes do not match the sha256 in its sidecar"
    else:
        return ""
    if on_stale == "refuse":
        raise StaleEngineError(f"engine {engine} is {reason}; rebuild it (vdeblur-export tensorrt --on-stale rebuild)")
    return reason


def check_runnable(engine: str | Path, env: DeviceEnv, onnx_path: str | Path | None = None) -> EngineRecord:
    """The engine's record if it was built for this TensorRT and GPU (and ``onnx_path``'s bytes, when
    given); otherwise StaleEngineError naming every difference."""
    record = read_sidecar(engine)
    now = EngineRecord(model_sha256=model_hash(onnx_path) if onnx_path else record.model_sha256,
                       tensorrt_version=env.tensorrt_version, gpu_name=env.gpu_name,
                       compute_capability=env.compute_capability, profile=record.profile, precision=record.precision,
                       workspace_mib=record.workspace_mib, opt_level=record.opt_level, graph=record.graph)
    diff = differences(record, now, runtime_only=True)
    if onnx_path and record.model_sha256 != now.model_sha256:
        diff.append(f"model hash {record.model_sha256[:12]} (now {now.model_sha256[:12]} of {onnx_path})")
    if record.engine_sha256 and file_sha256(engine) != record.engine_sha256:
        diff.append("other engine bytes (the file does not match the sha256 in its sidecar: corrupt)")
    if diff:
        raise StaleEngineError(f"engine {engine} cannot run here: built for {'; '.join(diff)}; "
                               "rebuild it on this machine with vdeblur-export tensorrt")
    return record
