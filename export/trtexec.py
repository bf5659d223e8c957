"""The exact ``trtexec`` command that builds an engine on the target itself (Jetson).

An engine only runs on the TensorRT version and GPU it was built with, so on a Jetson the engine is
built *on the Jetson* with JetPack's ``trtexec``; this module prints that command from the ONNX
file's metadata and a shape profile. Written from the trtexec documentation, never run here.

Precision: an FP16 graph is built with ``--stronglyTyped`` on TensorRT 10 (JetPack 6 ships 10.3);
TensorRT 11 types every network strongly and removed ``--fp16``, so no flag is needed there.
``--fp16`` on an FP32 graph is the TensorRT 10 fallback. DLA cores take no dynamic shapes, so a DLA
build needs a static profile (one engine per resolution).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

from .contract import GraphInfo
from .profiles import ShapeProfile, profile_shapes

TRT_MAJORS = (10, 11)


@dataclass(frozen=True)
class TrtexecOptions:
    onnx: Path
    engine: Path
    profile: ShapeProfile
    fp16: bool = True
    timing_cache: Path | None = None
    workspace_mib: int = 1024
    opt_level: int = 3
    dla_core: int | None = None
    trt_major: int = 10  # JetPack 6.x: TensorRT 10.3


def _shapes_arg(shapes: dict[str, tuple[int, ...]]) -> str:
    """``frame:1x3x368x640,h0:1x96x23x40,...``: the trtexec spelling of input shapes."""
    return ",".join(f"{name}:{'x'.join(str(d) for d in shape)}" for name, shape in shapes.items())


def precision_flags(info: GraphInfo, fp16: bool, trt_major: int) -> list[str]:
    if trt_major not in TRT_MAJORS:
        raise ValueError(f"TensorRT major version {trt_major} is not one of {TRT_MAJORS}")
    if info.precision == "fp16":
        if not fp16:
            raise ValueError("this ONNX graph is FP16; export an FP32 graph (without --fp16) for an FP32 engine")
        return ["--stronglyTyped"] if trt_major == 10 else []
    if not fp16:
        return []
    if trt_major >= 11:
        raise ValueError("TensorRT 11 trtexec has no --fp16; export an FP16 graph (vdeblur-export onnx --fp16)")
    return ["--fp16"]


def trtexec_command(info: GraphInfo, opts: TrtexecOptions) -> list[str]:
    """The argument list of the build (``trtexec`` first)."""
    if opts.dla_core is not None:
        if opts.dla_core < 0:
            raise ValueError(f"DLA core {opts.dla_core} must be 0 or more (Orin has cores 0 and 1)")
        if not opts.profile.is_static:
            raise ValueError(f"DLA needs static shapes (min = opt = max); got min {opts.profile.min}, "
                             f"opt {opts.profile.opt}, max {opts.profile.max}: build one engine per resolution")
        if not opts.fp16:
            raise ValueError("DLA runs FP16 or INT8 only; drop --fp32 for a DLA build")
    if not 0 <= opts.opt_level <= 5:
        raise ValueError(f"builder optimisation level {opts.opt_level} is outside 0..5")
    shapes = profile_shapes(info, opts.profile)
    cmd = ["trtexec", f"--onnx={opts.onnx}", f"--saveEngine={opts.engine}"]
    cmd += precision_flags(info, opts.fp16, opts.trt_major)
    for key, index in (("min", 0), ("opt", 1), ("max", 2)):
        cmd.append(f"--{key}Shapes={_shapes_arg({n: s[index] for n, s in shapes.items()})}")
    if opts.timing_cache is not None:
        cmd.append(f"--timingCacheFile={opts.timing_cache}")
    cmd += [f"--memPoolSize=workspace:{opts.workspace_mib}M", f"--builderOptimizationLevel={opts.opt_level}"]
    if opts.dla_core is not None:
        # Layers DLA cannot run fall back to the GPU silently: inspect the engine's layer placement.
        cmd += [f"--useDLACore={opts.dla_core}", "--allowGPUFallback"]
    cmd.append("--skipInference")  # build only; benchmark separately with --loadEngine
    return cmd


def format_command(cmd: list[str]) -> str:
    """One shell line, quoted where needed."""
    return shlex.join(cmd)
