"""Per-frame latency, throughput and peak memory of one model step, per model x backend x resolution.

What is timed: ``backend.run(frame, state)`` on a frame already padded to the model's multiple and
already on the backend's device, with the state carried from step to step as in a video. Decode,
copies and encode are the stage benchmark's job (``stages.py``). Each measurement opens a fresh
backend, runs ``warmup`` untimed steps (allocator, cuDNN/ORT algorithm choice, compilation), then
``repeats`` runs of ``frames`` timed steps; on CUDA the device is synchronised before every clock
read. Per-frame p50/p95/p99 and frames/s are computed per repeat and the median over repeats is
reported, so one disturbed repeat (another process on a shared machine) does not move the figure.

Peak host memory is the resident-set high-water mark (VmHWM), reset before each measurement via
``/proc/self/clear_refs`` so every row has its own peak; where that reset is not allowed the figure
is the process's peak so far (and says so in ``rss_scope``). Peak GPU memory is
``torch.cuda.max_memory_allocated`` (torch's allocations only: ORT/TensorRT use their own).
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from vdeblur.engine.backends.base import Backend
from vdeblur.train.archs.base import DeblurModel, padded_size

from .complexity import measure as measure_complexity
from .settings import BACKENDS, LatencyConfig

class BackendUnavailable(RuntimeError):
    """A backend this machine cannot run (no GPU, library not installed); the message says why."""


@dataclass(frozen=True)
class LatencyResult:
    model: str
    backend: str
    width: int
    height: int
    status: str  # "ok" or "skipped"
    reason: str  # why it was skipped ("" when ok)
    device: str
    p50_ms: float
    p95_ms: float
    p99_ms: float
    fps: float
    peak_rss_mib: float
    rss_scope: str  # "this measurement" or "process so far"
    peak_gpu_mib: float | None
    params: int
    gflops: float  # per frame, on the padded frame (benchmarks.complexity)
    frames: int
    repeats: int
    warmup: int


def measure_latency(model: DeblurModel, backend: str, width: int, height: int, config: LatencyConfig,
                    workdir: Path, threads: int | None = None, label: str | None = None) -> LatencyResult:
    """Time one backend on ``width`` x ``height`` frames; unavailable backends give a 'skipped' row.
    ``label`` names the row (default: the model's architecture name)."""
    params = sum(p.numel() for p in model.parameters())
    gflops = measure_complexity(model.model_name, width, height, asdict(model.cfg)).gflops
    common = dict(model=label or model.model_name, backend=backend, width=width, height=height, params=params, gflops=gflops,
                  frames=config.frames, repeats=config.repeats, warmup=config.warmup)
    rss_scope = _reset_peaks()
    try:
        runner = open_backend(backend, model, workdir, (height, width), threads)
    except BackendUnavailable as e:
        return LatencyResult(status="skipped", reason=str(e), device="-", p50_ms=float("nan"), p95_ms=float("nan"),
                             p99_ms=float("nan"), fps=float("nan"), peak_rss_mib=float("nan"), rss_scope="-",
                             peak_gpu_mib=None, **common)
    ph, pw = padded_size(height, runner.pad_multiple), padded_size(width, runner.pad_multiple)
    generator = torch.Generator().manual_seed(0)
    frame = torch.rand(1, model.in_channels, ph, pw, generator=generator).to(runner.device)  # (1, C_in, H', W')
    sync = _synchronizer(runner.device)
    stats = np.median([_timed_repeat(runner, frame, config, sync) for _ in range(config.repeats)], axis=0)
    peak_gpu = torch.cuda.max_memory_allocated(runner.device) / 2**20 if runner.device.type == "cuda" else None
    result = LatencyResult(status="ok", reason="", device=str(runner.device), p50_ms=float(stats[0]),
                           p95_ms=float(stats[1]), p99_ms=float(stats[2]), fps=float(stats[3]),
                           peak_rss_mib=_peak_rss_mib(), rss_scope=rss_scope, peak_gpu_mib=peak_gpu, **common)
    del runner
    gc.collect()  # the next row's memory peak must not include this backend's buffers
    return result


def _timed_repeat(runner: Backend, frame: torch.Tensor, config: LatencyConfig, sync: Callable[[], None]) -> list[float]:
    """[p50 ms, p95 ms, p99 ms, frames/s] of one repeat: warm-up, then ``frames`` timed steps."""
    h, w = frame.shape[-2:]
    state = runner.initial_state(h, w)
    with torch.no_grad():
        for _ in range(config.warmup):
            _, state = runner.run(frame, state)
        sync()
        times = []
        start = time.perf_counter()
        for _ in range(config.frames):
            t0 = time.perf_counter()
            _, state = runner.run(frame, state)
            sync()
            times.append(time.perf_counter() - t0)
        total = time.perf_counter() - start
    ms = np.asarray(times) * 1000
    return [*np.percentile(ms, [50, 95, 99]).tolist(), config.frames / total]


def _synchronizer(device: torch.device) -> Callable[[], None]:
    # CUDA kernels run asynchronously: without a synchronise the clock would stop at the launch.
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


def _reset_peaks() -> str:
    """Reset the RSS high-water mark (and torch's CUDA peak); returns what the RSS peak will cover."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    try:
        # Writing "5" resets VmHWM to the current RSS (Linux >= 4.0, see proc(5)).
        Path("/proc/self/clear_refs").write_text("5")
        return "this measurement"
    except OSError:
        return "process so far"


def _peak_rss_mib() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource  # not Linux /proc: the lifetime peak is all there is (KiB on Linux, bytes on macOS)

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if peak > 2**32 else peak / 1024


def open_backend(name: str, model: DeblurModel, workdir: Path, frame_hw: tuple[int, int],
                 threads: int | None = None) -> Backend:
    """A ready engine backend of kind ``name`` for ``model``; BackendUnavailable where this machine cannot run it.

    ONNX files (and TensorRT engines) are written to ``workdir`` once per model and reused across
    resolutions: their H and W are dynamic.
    """
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; allowed: {', '.join(BACKENDS)}")
    cuda = torch.cuda.is_available()
    from vdeblur.engine.backends.torch_backend import TorchBackend

    if name == "torch-fp32":
        return TorchBackend(model, "cuda" if cuda else "cpu")
    if name == "torch-fp16":
        if not cuda:
            raise BackendUnavailable("torch FP16 needs a CUDA GPU (the engine runs FP32 on the CPU)")
        return TorchBackend(model, "cuda", fp16=True)
    if name == "torch-compiled":  # torch.compile (inductor): FP16 on a GPU, FP32 on the CPU
        return TorchBackend(model, "cuda" if cuda else "cpu", fp16=cuda, compile="inductor")
    if name == "torch-cudagraphs":
        if not cuda:
            raise BackendUnavailable("CUDA graphs need a CUDA GPU")
        return TorchBackend(model, "cuda", fp16=True, compile="cuda-graphs")
    if name == "onnxruntime":
        return _open_onnxruntime(model, workdir, threads)
    return _open_tensorrt(model, workdir, frame_hw)


def _open_onnxruntime(model: DeblurModel, workdir: Path, threads: int | None) -> Backend:
    from vdeblur.export.dependencies import MissingDependencyError, import_onnxruntime

    try:
        onnxruntime = import_onnxruntime()
        import vdeblur.export.onnx  # noqa: F401  (the export below needs onnx too)
    except MissingDependencyError as e:
        raise BackendUnavailable(str(e)) from None
    from vdeblur.engine.backends.ort_backend import OrtBackend

    # The CUDA provider where this onnxruntime build has one and there is a GPU, else the CPU.
    gpu = torch.cuda.is_available() and "CUDAExecutionProvider" in onnxruntime.get_available_providers()
    return OrtBackend(_onnx_file(model, workdir, "fp32"), device="cuda" if gpu else "cpu", threads=threads or 0)


def _onnx_file(model: DeblurModel, workdir: Path, precision: str) -> Path:
    from vdeblur.export.onnx import export_onnx

    path = workdir / f"{model.model_name}-{precision}.onnx"
    if not path.is_file():
        export_onnx(model, path, precision=precision)
    return path


def _open_tensorrt(model: DeblurModel, workdir: Path, frame_hw: tuple[int, int]) -> Backend:
    from vdeblur.export.profiles import FrameSize, ShapeProfile
    from vdeblur.export.tensorrt import BuildConfig, MissingDependencyError, build_engine, import_tensorrt

    try:
        import_tensorrt()
    except MissingDependencyError as e:
        raise BackendUnavailable(str(e)) from None
    if not torch.cuda.is_available():
        raise BackendUnavailable("TensorRT needs a CUDA GPU; torch sees none")
    from vdeblur.engine.backends.trt_backend import TensorRTBackend

    onnx_path = _onnx_file(model, workdir, "fp16")
    size = FrameSize(1, *frame_hw)
    # A static profile per resolution: the fastest engine for exactly the size being timed.
    engine = build_engine(onnx_path, BuildConfig(profile=ShapeProfile(size, size, size), precision="fp16"))
    return TensorRTBackend(engine, onnx_path)
