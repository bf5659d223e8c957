"""What a benchmark run writes: JSON (with the machine and command), a Markdown table, PNG plots.

Plots need matplotlib, an optional extra (``pip install "vdeblur[bench]"``); it is imported only
when plots are drawn, so JSON and Markdown work without it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import os
import platform
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from .latency import LatencyResult
from .quality import QualityResult
from .stages import StageResult

PLOT_INSTALL_HINT = 'plots need matplotlib, which is not installed: pip install "vdeblur[bench]" (or pip install matplotlib)'
_LIBRARIES = ("vdeblur", "torch", "numpy", "onnx", "onnxruntime", "av", "opencv-python-headless", "scikit-image",
              "tensorrt", "matplotlib")


@dataclass(frozen=True)
class BenchReport:
    command: str
    date: str
    machine: dict[str, Any]
    settings: dict[str, Any]
    latency: list[LatencyResult] = field(default_factory=list)
    quality: list[QualityResult] = field(default_factory=list)
    stages: list[StageResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def machine_info() -> dict[str, Any]:
    """CPU, cores, memory, GPU and driver, library versions and the load when the run started."""
    info: dict[str, Any] = {
        "cpu": _cpu_model(),
        "logical_cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "memory_gib": _memory_gib(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "gpu_driver": _nvidia_driver(),
        "cuda": torch.version.cuda,
        "libraries": {name: _version(name) for name in _LIBRARIES},
        # Other processes on a shared machine slow every figure; the load average says how busy it was.
        "load_average_at_start": list(os.getloadavg()),
    }
    return info


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def _nvidia_driver() -> str | None:
    if shutil.which("nvidia-smi") is None:
        return None
    done = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"], capture_output=True,
                          text=True, timeout=20, check=False)
    return done.stdout.strip().splitlines()[0] if done.returncode == 0 and done.stdout.strip() else None


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def new_report(settings: dict[str, Any], argv: list[str] | None = None) -> BenchReport:
    command = " ".join(["vdeblur-bench", *(sys.argv[1:] if argv is None else argv)])
    return BenchReport(command, dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), machine_info(), settings)


def to_json(report: BenchReport) -> str:
    # NaN (a figure that does not exist, e.g. flicker of 1-frame clips) is written as null: valid JSON.
    return json.dumps(_finite(dataclasses.asdict(report)), indent=2, sort_keys=False) + "\n"


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _num(value: float | None, digits: int = 1) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def machine_line(machine: dict[str, Any]) -> str:
    gpu = f"{machine['gpu']} (driver {machine['gpu_driver']})" if machine.get("gpu") else "no GPU"
    libs = machine["libraries"]
    return (f"{machine['cpu']}, {machine['usable_cores']} usable cores ({machine['torch_threads']} torch threads), "
            f"{machine['memory_gib']} GiB, {gpu}; "
            f"torch {libs['torch']}, onnxruntime {libs['onnxruntime']}, PyAV {libs['av']}, Python {machine['python']}")


def latency_table(rows: list[LatencyResult]) -> str:
    """One row per model x backend x resolution; speed-up against torch-fp32 of the same model and size."""
    base = {(r.model, r.width, r.height): r.p50_ms for r in rows if r.backend == "torch-fp32" and r.status == "ok"}
    lines = ["| model | backend | resolution | p50 ms | p95 ms | p99 ms | frames/s | speed-up vs torch-fp32 | "
             "peak RSS MiB | peak GPU MiB | params M | GFLOPs/frame |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        if r.status != "ok":
            continue
        ref = base.get((r.model, r.width, r.height))
        speedup = f"{ref / r.p50_ms:.2f}x" if ref and r.p50_ms else "-"
        lines.append(f"| `{r.model}` | {r.backend} | {r.width}x{r.height} | {_num(r.p50_ms)} | {_num(r.p95_ms)} | "
                     f"{_num(r.p99_ms)} | {_num(r.fps, 2)} | {speedup} | {_num(r.peak_rss_mib, 0)} | "
                     f"{_num(r.peak_gpu_mib, 0)} | {r.params / 1e6:.2f} | {_num(r.gflops)} |")
    skipped = sorted({f"- {r.backend}: {r.reason}" for r in rows if r.status != "ok"})
    return "\n".join(lines + (["", "Skipped:", *skipped] if skipped else []))


def quality_table(rows: list[QualityResult]) -> str:
    lines = ["| method | kind | weights | PSNR dB | SSIM | flicker (output) | flicker (sharp) | frames/s |",
             "|---|---|---|---:|---:|---:|---:|---:|"]
    lines += [f"| `{r.method}` | {r.kind} | {r.weights} | {r.psnr:.2f} | {r.ssim:.4f} | {_num(r.flicker, 2)} | "
              f"{_num(r.flicker_sharp, 2)} | {_num(r.fps, 2)} |" for r in rows]
    return "\n".join(lines)


def stages_table(rows: list[StageResult]) -> str:
    names = list(rows[0].stage_ms) if rows else []
    lines = ["| model | backend | resolution | " + " | ".join(f"{n} ms" for n in names)
             + " | end-to-end ms/frame | its inference stage ms/frame | end-to-end / its inference |",
             "|---|---|---|" + "---:|" * (len(names) + 3)]
    for r in rows:
        stages = " | ".join(_num(r.stage_ms[n], 2) for n in names)
        lines.append(f"| `{r.model}` | {r.backend} | {r.width}x{r.height} | {stages} | {_num(r.end_to_end_ms)} | "
                     f"{_num(r.pipeline_inference_ms)} | {_num(r.ratio, 2)}x |")
    return "\n".join(lines)


def to_markdown(report: BenchReport) -> str:
    parts = [f"# vdeblur benchmark, {report.date}", "", f"Command: `{report.command}`", "",
             f"Machine: {machine_line(report.machine)}.", "",
             f"Load average (1/5/15 min) at start {report.machine['load_average_at_start']}, "
             f"at end {report.settings.get('load_average_at_end', '-')}.", ""]
    parts += [f"> {note}" for note in report.notes] + ([""] if report.notes else [])
    if report.latency:
        parts += ["## Latency and throughput (one model step per frame, after warm-up; medians over repeats)", "",
                  latency_table(report.latency), ""]
    if report.quality:
        data = report.quality[0].data
        parts += [f"## Quality ({data})", "", quality_table(report.quality), ""]
    if report.stages:
        parts += ["## Pipeline stages (per frame)", "",
                  "The stage columns time each stage on its own, one after another. The last three come from a "
                  "second run, the engine's threaded pipeline: its wall time per frame, the time its inference "
                  "stage took in that same run, and their ratio (1.00x: decode and encode completely hidden "
                  "behind the model).", "", stages_table(report.stages), ""]
    return "\n".join(parts)


def write_report(report: BenchReport, out_dir: Path) -> list[Path]:
    """``bench.json`` and ``bench.md`` in ``out_dir``; returns the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out_dir / "bench.json", out_dir / "bench.md"
    json_path.write_text(to_json(report))
    md_path.write_text(to_markdown(report))
    return [json_path, md_path]


def write_plots(report: BenchReport, out_dir: Path) -> list[Path]:
    """Latency vs resolution per backend, and PSNR vs frames/s; ImportError with PLOT_INSTALL_HINT without matplotlib."""
    try:
        import matplotlib
    except ImportError:
        raise ImportError(PLOT_INSTALL_HINT) from None
    matplotlib.use("Agg")  # files only: no display on servers and CI
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    if any(r.status == "ok" for r in report.latency):
        written.append(_plot_latency(plt, report, out_dir / "latency_vs_resolution.png"))
    if report.quality:
        written.append(_plot_pareto(plt, report, out_dir / "quality_vs_speed.png"))
    return written


def _plot_latency(plt: Any, report: BenchReport, path: Path) -> Path:
    rows = [r for r in report.latency if r.status == "ok"]
    models = sorted({r.model for r in rows})
    cols = min(4, len(models))  # wrap: 11 models side by side would be unreadable
    rows_n = math.ceil(len(models) / cols)
    fig, axes = plt.subplots(rows_n, cols, figsize=(5 * cols, 4 * rows_n), squeeze=False)
    for ax in axes.flat[len(models):]:
        ax.set_visible(False)
    for ax, model in zip(axes.flat, models):
        for backend in sorted({r.backend for r in rows if r.model == model}):
            points = sorted((r.width * r.height / 1e6, r.p50_ms, f"{r.width}x{r.height}")
                            for r in rows if r.model == model and r.backend == backend)
            ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=backend)
        ax.set(title=model, xlabel="megapixels per frame", ylabel="p50 latency per frame (ms)")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(f"Latency vs resolution ({report.machine['cpu']}, {report.machine.get('gpu') or 'CPU only'})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _plot_pareto(plt: Any, report: BenchReport, path: Path) -> Path:
    rows = [r for r in report.quality if math.isfinite(r.fps) and math.isfinite(r.psnr)]
    fig, ax = plt.subplots(figsize=(7, 5))
    for kind, marker in (("model", "o"), ("baseline", "s")):
        chosen = [r for r in rows if r.kind == kind]
        ax.scatter([r.fps for r in chosen], [r.psnr for r in chosen], marker=marker, label=kind)
        for r in chosen:
            ax.annotate(r.method, (r.fps, r.psnr), textcoords="offset points", xytext=(4, 4), fontsize=8)
    front = pareto_front([(r.fps, r.psnr) for r in rows])
    ax.plot([p[0] for p in front], [p[1] for p in front], linestyle="--", color="grey", label="Pareto front")
    ax.set(xscale="log", xlabel="frames/s (quality pass, CPU torch FP32 for models)", ylabel="PSNR (dB)",
           title="Quality vs speed")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Points no other point beats in both speed and quality, fastest first."""
    front: list[tuple[float, float]] = []
    for speed, quality in sorted(points, key=lambda p: (-p[0], -p[1])):
        if not front or quality > front[-1][1]:
            front.append((speed, quality))
    return front
