"""Parity of a faster inference path with the FP32 reference, on real frames with the state carried.

``vdeblur-export parity --model M`` runs the reference (eager PyTorch, FP32, TF32 off) and each
candidate through the same clip, every path carrying its own recurrent state from frame to frame
exactly as the engine does, and reports the PSNR between their outputs (both clipped to [0, 1]):
the minimum over frames, so one bad frame (say, a drifting FP16 cell state) cannot hide in a mean.
The bar is 45 dB: below the visible, and well above what an 8-bit encode keeps anyway (~50 dB is
one grey level of error on every pixel).

Candidates: ``torch-fp16`` (autocast on CUDA), ``torch-compile`` (inductor; FP16 on CUDA),
``cuda-graphs`` (FP16 on CUDA), ``onnx-fp32`` and ``onnx-fp16`` (ONNX Runtime, the graphs that
TensorRT builds from). Candidates this machine cannot run are reported as skipped, with the reason.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vdeblur.engine.backends.base import Backend
from vdeblur.engine.backends.torch_backend import TorchBackend
from vdeblur.engine.stream import DeblurStream
from vdeblur.train.archs.base import DeblurModel
from vdeblur.train.frames import from_uint8
from vdeblur.train.metrics import psnr

from .dependencies import MissingDependencyError, import_onnxruntime
from .parity_bar import CANDIDATES, THRESHOLD_DB


@dataclass(frozen=True)
class ParityResult:
    candidate: str
    status: str  # "ok", "skipped"
    reason: str
    device: str
    frames: int
    min_psnr_db: float  # over frames; inf when the outputs are identical
    mean_psnr_db: float
    max_abs_diff: float
    passed: bool | None  # None when skipped


class Unavailable(RuntimeError):
    """This machine cannot run the candidate (no GPU, no onnxruntime); the message says why."""


def open_candidate(name: str, model: DeblurModel, workdir: Path) -> Backend:
    cuda = torch.cuda.is_available()
    if name in ("torch-fp16", "cuda-graphs") and not cuda:
        raise Unavailable(f"{name} needs a CUDA GPU")
    if name == "torch-fp16":
        return TorchBackend(model, "cuda", fp16=True)
    if name == "torch-compile":
        return TorchBackend(model, "cuda" if cuda else "cpu", fp16=cuda, compile="inductor")
    if name == "cuda-graphs":
        return TorchBackend(model, "cuda", fp16=True, compile="cuda-graphs")
    if name in ("onnx-fp32", "onnx-fp16"):
        try:
            import_onnxruntime()
            from .onnx import export_onnx
        except MissingDependencyError as e:
            raise Unavailable(str(e)) from None
        from vdeblur.engine.backends.ort_backend import OrtBackend

        precision = name.removeprefix("onnx-")
        path = workdir / f"{model.model_name}-{precision}.onnx"
        export_onnx(model, path, precision=precision)
        return OrtBackend(path, "cpu")
    raise ValueError(f"unknown parity candidate {name!r}; allowed: {', '.join(CANDIDATES)}")


def run_clip(backend: Backend, frames: Sequence[np.ndarray]) -> torch.Tensor:
    """(T, 3, H, W) float outputs on the CPU of one fresh stream over ``frames`` ((H, W, 3) uint8)."""
    stream = DeblurStream(backend)
    outs = [stream.push(from_uint8(f)) for f in frames]
    return torch.stack([o.cpu().float() for o in outs])


def reference_outputs(model: DeblurModel, frames: Sequence[np.ndarray]) -> torch.Tensor:
    """Eager FP32 on the GPU when there is one (TF32 off: it would be a reduced-precision reference)."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    flags = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        return run_clip(TorchBackend(model, device), frames)
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = flags


def compare(name: str, reference: torch.Tensor, candidate: torch.Tensor, device: str,
            threshold_db: float = THRESHOLD_DB) -> ParityResult:
    per_frame = [float(psnr(c[None], r[None], data_range=1.0)) for c, r in zip(candidate, reference)]
    finite = bool(torch.isfinite(candidate).all())
    low = min(per_frame) if finite else -math.inf
    return ParityResult(name, "ok", "", device, len(per_frame), low, float(np.mean(per_frame)) if finite else -math.inf,
                        float((candidate - reference).abs().max()), finite and low > threshold_db)


def check_parity(model: DeblurModel, frames: Sequence[np.ndarray], candidates: Sequence[str] = CANDIDATES,
                 threshold_db: float = THRESHOLD_DB, log: Callable[[str], None] = lambda _: None) -> list[ParityResult]:
    """One result per candidate (skipped ones included) against the FP32 reference on ``frames``."""
    unknown = [c for c in candidates if c not in CANDIDATES]
    if unknown:
        raise ValueError(f"unknown parity candidate(s) {unknown}; allowed: {', '.join(CANDIDATES)}")
    if len(frames) < 2:
        raise ValueError(f"parity needs a sequence (the state must be carried); got {len(frames)} frame(s)")
    reference = reference_outputs(model, frames)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in candidates:
            try:
                backend = open_candidate(name, model, Path(tmp))
            except Unavailable as e:
                results.append(ParityResult(name, "skipped", str(e), "-", 0, math.nan, math.nan, math.nan, None))
                log(f"{name}: skipped ({e})")
                continue
            result = compare(name, reference, run_clip(backend, frames), str(backend.device), threshold_db)
            results.append(result)
            log(f"{name}: min {result.min_psnr_db:.1f} dB over {result.frames} frames "
                f"({'pass' if result.passed else 'FAIL'})")
    return results


def markdown_table(results: Sequence[ParityResult], threshold_db: float = THRESHOLD_DB) -> str:
    lines = [f"| candidate | device | frames | min PSNR vs FP32 (dB) | mean (dB) | max abs diff | > {threshold_db:g} dB |",
             "|---|---|---:|---:|---:|---:|---|"]
    for r in results:
        if r.status == "skipped":
            lines.append(f"| {r.candidate} | - | - | - | - | - | skipped: {r.reason} |")
        else:
            lines.append(f"| {r.candidate} | {r.device} | {r.frames} | {r.min_psnr_db:.1f} | {r.mean_psnr_db:.1f} | "
                         f"{r.max_abs_diff:.2e} | {'yes' if r.passed else 'NO'} |")
    return "\n".join(lines)
