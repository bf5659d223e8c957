"""``vdeblur-bench``: latency, quality and pipeline stages per model, backend and resolution.

Writes ``bench.json`` (machine, command, every figure), ``bench.md`` (tables) and PNG plots into
``--out``. Errors are raised where the fact is known and printed here as one line (exit code 1);
``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from vdeblur.console import ConsoleCommand, run_console
from vdeblur.launch import SCRIPTS

from .settings import BACKENDS, LatencyConfig, QualityConfig, StagesConfig

if TYPE_CHECKING:  # the measuring code (torch, the models) loads when a benchmark runs, not for --help
    from vdeblur.train.archs.base import DeblurModel

    from .quality import Clip
    from .report import BenchReport

PARTS = ("latency", "quality", "stages")
RESOLUTIONS = {"360p": (640, 360), "720p": (1280, 720), "1080p": (1920, 1080)}
_EXPECTED = (ValueError, KeyError, RuntimeError, OSError)


@dataclass(frozen=True)
class BenchSettings:
    models: tuple[str, ...]
    backends: tuple[str, ...]
    resolutions: tuple[tuple[int, int], ...]  # (width, height)
    parts: tuple[str, ...]
    latency: LatencyConfig
    quality: QualityConfig
    stages: StagesConfig
    baselines: bool = True
    threads: int | None = None  # CPU threads for torch and ONNX Runtime; None: their defaults (all cores)


PRESETS = {
    "full": BenchSettings(models=("vdeblur_fast",), backends=BACKENDS,
                          resolutions=(RESOLUTIONS["360p"], RESOLUTIONS["720p"], RESOLUTIONS["1080p"]), parts=PARTS,
                          latency=LatencyConfig(), quality=QualityConfig(), stages=StagesConfig()),
    # A CPU check: the fast model, the two CPU backends, two sizes, small clips. On 2 cores with one busy,
    # 63 s with --threads 1 and 150 s with both threads (docs/benchmarks.md, "How long --quick takes here").
    "quick": BenchSettings(models=("vdeblur_fast",), backends=("torch-fp32", "onnxruntime"),
                           resolutions=(RESOLUTIONS["360p"], RESOLUTIONS["720p"]), parts=PARTS,
                           latency=LatencyConfig(frames=10, warmup=2, repeats=3),
                           quality=QualityConfig(clips=3, frames=6, height=192, width=256),
                           stages=StagesConfig(frames=12)),
}


def parse_resolution(text: str) -> tuple[int, int]:
    """``360p``/``720p``/``1080p`` or ``WxH`` -> (width, height)."""
    text = text.strip().lower()
    if text in RESOLUTIONS:
        return RESOLUTIONS[text]
    match = re.fullmatch(r"(\d+)x(\d+)", text)
    if not match or min(int(match[1]), int(match[2])) < 1:
        raise ValueError(f"resolution {text!r} is not one of {', '.join(RESOLUTIONS)} or WxH (e.g. 1280x720)")
    return int(match[1]), int(match[2])


def _split(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _choose(text: str, allowed: tuple[str, ...] | list[str], what: str) -> tuple[str, ...]:
    chosen = tuple(allowed) if text.strip() == "all" else tuple(_split(text))
    unknown = [c for c in chosen if c not in allowed]
    if unknown or not chosen:
        raise ValueError(f"{what} {unknown or text!r} not known; allowed: {', '.join(allowed)} or 'all'")
    return chosen


def parse_checkpoints(specs: tuple[str, ...]) -> dict[str, Path]:
    """``NAME=PATH`` options -> {model name: checkpoint path}."""
    result = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            raise ValueError(f"--checkpoint {spec!r} is not NAME=PATH (e.g. vdeblur_fast=runs/best.safetensors)")
        result[name.strip()] = Path(path.strip())
    return result


@dataclass(frozen=True)
class BenchEntry:
    """One model to benchmark: ``label`` names its rows in every table, so the bundled weights and a
    file of the same architecture (``--models vdeblur_deep --model other.safetensors``) stay apart."""

    label: str
    name: str  # the registered architecture
    weights: Path | None  # None: the bundled checkpoint where there is one, else random weights


def bench_entries(models: tuple[str, ...], checkpoints: dict[str, Path], files: tuple[str, ...]) -> list[BenchEntry]:
    """``--models`` (with their ``--checkpoint`` weights), then each ``--model FILE``: its architecture
    (named in its metadata, or read from another project's layout) with its weights, labelled by the
    architecture, or by architecture and file name where that label is already taken."""
    from vdeblur.train.checkpoint import read_info

    unknown = sorted(set(checkpoints) - set(models))
    if unknown:
        raise ValueError(f"--checkpoint for {unknown}, which are not among --models {list(models)}")
    entries = [BenchEntry(name, name, checkpoints.get(name)) for name in models]
    for file in files:
        name = read_info(file).model
        taken = {e.label for e in entries}
        label = next((c for c in (name, f"{name} ({Path(file).name})", f"{name} ({file})") if c not in taken), None)
        if label is None:
            raise ValueError(f"--model {file} is given twice")
        entries.append(BenchEntry(label, name, Path(file)))
    return entries


def resolve_model(entry: BenchEntry) -> tuple[DeblurModel, str]:
    """The model to benchmark and a description of its weights: the given checkpoint, the bundled
    one when the model has bundled weights, or random weights (say so: their quality figures mean nothing)."""
    import vdeblur
    from vdeblur.train.checkpoint import load_checkpoint
    from vdeblur.train.registry import build_model

    path = entry.weights
    if path is None and vdeblur.bundled_model_path(entry.name).is_file():
        path = vdeblur.bundled_model_path(entry.name)
    if path is None:
        return build_model(entry.name).eval(), "random (untrained)"
    model, info = load_checkpoint(path)
    if info.model != entry.name:
        raise ValueError(f"--checkpoint {entry.name}={path} holds a {info.model!r} model, not {entry.name!r}")
    return model, str(path)


def settings_from_options(quick: bool, models: str | None, backends: str | None, resolutions: str | None,
                          parts: str | None, gopro: Path | None, frames: int | None, repeats: int | None,
                          clips: int | None, clip_size: str | None, baselines: bool,
                          threads: int | None = None) -> BenchSettings:
    """The preset (``--quick`` or full) with every option the user gave applied on top."""
    from vdeblur.train.registry import list_models

    s = PRESETS["quick" if quick else "full"]
    if models is not None:
        s = dataclasses.replace(s, models=_choose(models, list_models(), "model(s)"))
    if backends is not None:
        s = dataclasses.replace(s, backends=_choose(backends, BACKENDS, "backend(s)"))
    if resolutions is not None:
        s = dataclasses.replace(s, resolutions=tuple(parse_resolution(r) for r in _split(resolutions)))
    if parts is not None:
        s = dataclasses.replace(s, parts=_choose(parts, PARTS, "part(s)"))
    if frames is not None or repeats is not None:
        lat = dataclasses.replace(s.latency, frames=frames or s.latency.frames, repeats=repeats or s.latency.repeats)
        s = dataclasses.replace(s, latency=lat, stages=dataclasses.replace(s.stages, frames=frames or s.stages.frames))
    quality = s.quality
    if clips is not None:
        quality = dataclasses.replace(quality, clips=clips)
    if clip_size is not None:
        width, height = parse_resolution(clip_size)
        quality = dataclasses.replace(quality, width=width, height=height)
    if gopro is not None:
        quality = dataclasses.replace(quality, gopro=gopro)
    if threads is not None and threads < 1:
        raise ValueError(f"--threads must be >= 1; got {threads}")
    return dataclasses.replace(s, quality=quality, baselines=baselines, threads=threads)


@click.command(cls=ConsoleCommand, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--quick", is_flag=True, help="Small preset for a CPU check (vdeblur_fast, torch + ONNX Runtime, 360p/720p).")
@click.option("--models", help="Comma-separated registered models, or 'all' (default: vdeblur_fast, the real-time "
              "model; vdeblur's own default, vdeblur_deep, runs with --models vdeblur_deep).")
@click.option("--backends", help=f"Comma-separated, or 'all': {', '.join(BACKENDS)}.")
@click.option("--resolutions", help="Comma-separated 360p, 720p, 1080p or WxH (default 360p,720p,1080p).")
@click.option("--parts", help=f"What to run, comma-separated: {', '.join(PARTS)} (default all).")
@click.option("--gopro", type=click.Path(path_type=Path), help="GoPro-layout folder for quality (uses its test/ split).")
@click.option("--model", "model_files", multiple=True, metavar="FILE",
              help="A checkpoint to benchmark beside --models (repeatable): ours (.safetensors) or another project's "
                   "(.pth, .h5: NAFNet, DeblurGAN-v2), its architecture read from the file.")
@click.option("--checkpoint", "checkpoints", multiple=True, metavar="NAME=PATH",
              help="Weights for a model (repeatable). Default: the model's bundled checkpoint (vdeblur_deep, "
                   "vdeblur_fast), random weights otherwise.")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Folder for the results [default: bench-results/<UTC date and time> in the current folder].")
@click.option("--overwrite", is_flag=True, help="Write into an --out folder that already holds files, replacing "
              "earlier results of the same names.")
@click.option("--frames", type=int, help="Timed frames per repeat (latency) and frames of the stage video.")
@click.option("--repeats", type=int, help="Latency repeats; the median over them is reported.")
@click.option("--clips", type=int, help="Synthetic quality clips.")
@click.option("--clip-size", help="Synthetic quality clip size, WxH.")
@click.option("--baselines/--no-baselines", default=True, show_default=True, help="Classical baselines in the quality table.")
@click.option("--threads", type=int, help="CPU threads for torch and ONNX Runtime (default: all cores). On a CPU shared "
              "with other processes, 1 avoids threads waiting on each other's time slices.")
@click.option("--streams", help="Also measure several streams at once for these counts (e.g. 1,2,4): aggregate "
              "frames/s beside the codec-only ceiling, written to OUT/multistream.json (benchmarks.multistream).")
@click.option("--debug", is_flag=True, help="Show tracebacks instead of one-line errors.")
def bench(quick: bool, models: str | None, backends: str | None, resolutions: str | None, parts: str | None,
          gopro: Path | None, model_files: tuple[str, ...], checkpoints: tuple[str, ...], out: Path | None, overwrite: bool, frames: int | None,
          repeats: int | None, clips: int | None, clip_size: str | None, baselines: bool, threads: int | None,
          streams: str | None, debug: bool) -> None:
    """Benchmark models and backends; write JSON, Markdown and plots to --out."""
    try:
        settings = settings_from_options(quick, models, backends, resolutions, parts, gopro, frames, repeats, clips,
                                         clip_size, baselines, threads)
        entries = bench_entries(settings.models, parse_checkpoints(checkpoints), model_files)
        out = results_folder(out, overwrite)
        with tempfile.TemporaryDirectory(prefix="vdeblur-bench-") as workdir:
            run_benchmarks(settings, entries, out, Path(workdir), echo=click.echo)
        if streams:
            import torch

            from .multistream import main as multistream

            multistream(["--streams", streams, "--json", str(out / "multistream.json"),
                         "--device", "cuda" if torch.cuda.is_available() else "cpu",
                         *(["--threads", str(threads)] if threads else []),
                         *(["--repeats", str(repeats)] if repeats else [])])
    except _EXPECTED as e:
        if debug:
            raise
        raise click.ClickException(str(e)) from None


def results_folder(out: Path | None, overwrite: bool) -> Path:
    """``out``, or a new timestamped folder; refused before any work when it already holds files,
    unless ``overwrite`` (the folder itself is made only when the results are written)."""
    if out is None:
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
        out = Path("bench-results") / stamp
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; give a folder for the results")
    held = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    if held and not overwrite:
        shown = ", ".join(held[:4]) + (", ..." if len(held) > 4 else "")
        raise ValueError(f"--out {out} already holds files ({shown}); give another --out, or --overwrite to replace "
                         "earlier results there")
    return out


def run_benchmarks(settings: BenchSettings, entries: list[BenchEntry] | None, out: Path, workdir: Path,
                   echo: Callable[[str], None] = print, argv: list[str] | None = None) -> BenchReport:
    """Every part in ``settings``, one model at a time (so only one model's weights are in memory);
    ``entries`` default to ``settings.models`` with their bundled (or random) weights."""
    import torch

    from .baselines import baseline_filters
    from .quality import baseline_method, evaluate, load_clips
    from .report import new_report, write_plots, write_report

    if entries is None:
        entries = bench_entries(settings.models, {}, ())
    if settings.threads is not None:
        torch.set_num_threads(settings.threads)  # before new_report, which records the thread count
    report = new_report(_settings_dict(settings, entries), argv)
    clips, data = load_clips(settings.quality) if "quality" in settings.parts else ([], "")
    if clips and settings.baselines:
        for name, frame_filter in baseline_filters().items():
            report.quality.append(evaluate(name, "baseline", "-", baseline_method(frame_filter), clips, data))
            echo(f"quality  {name:24s} PSNR {report.quality[-1].psnr:6.2f} dB")
    untrained = []
    for i, entry in enumerate(entries):
        model, weights = resolve_model(entry)
        if weights.startswith("random"):
            untrained.append(entry.label)
        # A folder per entry: its ONNX files and engines are cached by architecture name.
        (workdir / f"model{i}").mkdir(exist_ok=True)
        _bench_model(model, entry.label, weights, settings, clips, data, report, workdir / f"model{i}", echo)
        del model
    if untrained:
        report.notes.append(f"Untrained (random weights): {', '.join(untrained)}. Their PSNR/SSIM only check the "
                            "harness; rerun with --checkpoint NAME=PATH once trained weights exist.")
    load = os.getloadavg()[0]
    # This run alone keeps about torch's thread count busy; more than that (plus slack) is someone else.
    if load > torch.get_num_threads() + 0.5:
        report.notes.append(f"Other processes were running (load average {load:.1f} on {os.cpu_count()} cores, this "
                            f"run used {torch.get_num_threads()} thread(s)): timings are slower than on an idle machine.")
    report.settings["load_average_at_end"] = list(os.getloadavg())
    for path in write_report(report, out):
        echo(f"wrote {path}")
    try:
        for path in write_plots(report, out):
            echo(f"wrote {path}")
    except ImportError as e:
        echo(f"no plots: {e}")
    return report


def _bench_model(model: DeblurModel, name: str, weights: str, settings: BenchSettings, clips: list[Clip], data: str,
                 report: BenchReport, workdir: Path, echo: Callable[[str], None]) -> None:
    """Every part for one model; ``name`` labels its rows."""
    from .latency import measure_latency
    from .quality import evaluate, model_method
    from .stages import measure_stages

    if "latency" in settings.parts:
        for width, height in settings.resolutions:
            for backend in settings.backends:
                r = measure_latency(model, backend, width, height, settings.latency, workdir, settings.threads, label=name)
                report.latency.append(r)
                echo(f"latency  {name:24s} {backend:15s} {width}x{height}: " +
                     (f"p50 {r.p50_ms:8.1f} ms, {r.fps:7.2f} frames/s" if r.status == "ok" else f"skipped ({r.reason})"))
    if clips:
        report.quality.append(evaluate(name, "model", weights, model_method(model), clips, data))
        echo(f"quality  {name:24s} PSNR {report.quality[-1].psnr:6.2f} dB ({weights})")
    if "stages" in settings.parts:
        width, height = settings.resolutions[0]
        for backend in settings.backends:
            stage = measure_stages(model, backend, width, height, settings.stages, workdir, settings.threads, label=name)
            if stage is not None:
                report.stages.append(stage)
                echo(f"stages   {name:24s} {backend:15s} {width}x{height}: end to end {stage.end_to_end_ms:.1f} ms/frame, "
                     f"{stage.ratio:.2f}x its inference stage ({stage.pipeline_inference_ms:.1f} ms/frame)")


def _settings_dict(settings: BenchSettings, entries: list[BenchEntry]) -> dict[str, Any]:
    as_dict = dataclasses.asdict(settings)
    as_dict["models"] = [e.label for e in entries]
    as_dict["weights"] = {e.label: str(e.weights) if e.weights else None for e in entries}
    as_dict["resolutions"] = [f"{w}x{h}" for w, h in settings.resolutions]
    as_dict["quality"]["gopro"] = str(settings.quality.gopro) if settings.quality.gopro else None
    return as_dict


def main(argv: list[str] | None = None) -> None:
    run_console(bench, "vdeblur-bench", SCRIPTS["vdeblur-bench"][1], argv)

if __name__ == "__main__":
    main()
