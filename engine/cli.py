"""``vdeblur``: deblur videos from the command line.

    vdeblur INPUT OUTPUT [options]          one file
    vdeblur SOURCE SINK [options]           live: /dev/video0, udp://, rtsp://... or - in; a file, a stream or - out
    vdeblur IN1 IN2 ... OUT_DIR/            several files (or a folder of videos) into a folder
    vdeblur batch IN... OUT_DIR/ --ray-address auto --gpus-per-task 1    the same on a Ray cluster
    vdeblur sample OUT.mp4                  write a short camera-shake demo clip

Errors are one line on stderr with exit status 1 (``--debug`` shows the traceback); nothing is
left at the output path when a run fails.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import click

from vdeblur.console import PassInterrupts, reach, run_console
from vdeblur.launch import SCRIPTS, caused_by_interrupt

# Only what parsing and the checks need is imported here: torch, the model code and the pipeline load
# after the arguments, the input and the output have been checked (help and refusals come in well
# under a second).
from .jobs import AUTO_BUDGET, adapt_config, check_adapt_options, plan_jobs, probe_jobs
from .live_cli import is_stream_job, live_options, refuse_live_options, run_stream_job
from .options import EncodeOptions, inference_threads
from .tile_spec import TileSpec


class AdaptBudget(click.ParamType):
    """``--adapt`` takes an optional number of seconds; its one-line error names what was given."""

    name = "seconds"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, float):
            return value
        try:
            seconds = float(value)
        except ValueError:
            seconds = 0.0
        if not seconds > 0 or seconds == float("inf"):
            self.fail(f"{value!r} is not a budget in seconds; give a number > 0 (e.g. --adapt 90), or --adapt "
                      f"alone for the default", param, ctx)
        return seconds


_USAGES = [  # (arguments, what they do); `run` is implied, so its forms lead
    ("INPUT OUTPUT [OPTIONS]", "one file"),
    ("IN1 IN2 ... OUT_DIR [OPTIONS]", "several files, or a folder of videos, into a folder"),
    ("SOURCE SINK [OPTIONS]", "live: /dev/video0, udp://, rtsp://... or - in; a file, a stream or - out"),
    ("batch IN... OUT_DIR [OPTIONS]", "the same on a Ray cluster"),
    ("sample OUT.mp4", "write a short camera-shake demo clip"),
]


class _DefaultToRun(PassInterrupts, click.Group):
    """``vdeblur IN OUT`` means ``vdeblur run IN OUT``; ``batch`` and ``sample`` stay subcommands.

    Its help leads with that main use and lists the run options, since most users never type ``run``.
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h", "--version"):
            args = ["run", *args]
        return super().parse_args(ctx, args)

    def format_usage(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        width = max(len(args) for args, _ in _USAGES)
        for i, (args, what) in enumerate(_USAGES):
            prefix = "Usage: " if i == 0 else "       "
            formatter.write(f"{prefix}{ctx.command_path} {args:{width}}   {what}\n")

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        run = self.commands["run"]
        run_ctx = click.Context(run, info_name="run", parent=ctx)
        rows = [r for p in run.get_params(run_ctx)
                if isinstance(p, click.Option) and (r := p.get_help_record(run_ctx)) and "--help" not in r[0]]
        with formatter.section(f"Options of {ctx.command_path} INPUT OUTPUT (the same as "
                               f"'{ctx.command_path} run --help')"):
            formatter.write_dl(rows)
        own = [r for p in self.get_params(ctx) if (r := p.get_help_record(ctx))]
        with formatter.section("Other options"):
            formatter.write_dl(own)
        self.format_commands(ctx, formatter)


@click.group(cls=_DefaultToRun, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="vdeblur")
def cli() -> None:
    """Remove camera-shake blur from videos.

    The main use is vdeblur INPUT OUTPUT, which runs the `run` command; its options follow.
    """


_SHARED_OPTIONS = [  # what `run` and `batch` both take: the model, where it runs, how the output is encoded
    click.option("--model", default=None, help="Checkpoint (.safetensors, or another project's .pth/.h5), ONNX file, TensorRT engine, or a model name with bundled weights [default: the bundled vdeblur_deep; vdeblur_fast is the real-time option]."),
    click.option("--arch", default=None, help="With another project's checkpoint (.pth, .h5): the architecture to "
                 "read it into, instead of the one its layout names (e.g. nafnet for global attention; docs/published_models.md)."),
    click.option("--backend", type=click.Choice(["auto", "torch", "onnxruntime", "tensorrt"]), default="auto", show_default=True),
    click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N"),
    click.option("--fp16", is_flag=True, help="FP16 inference (CUDA only)."),
    click.option("--codec", default="libx264", show_default=True, help="Any encoder of PyAV's FFmpeg, e.g. libx265, ffv1."),
    click.option("--crf", type=click.IntRange(0, 63), default=18, show_default=True),
    click.option("--preset", default="medium", show_default=True),
    click.option("--pix-fmt", default=None, help="Output pixel format [default: yuv420p, 10-bit kept 10-bit]."),
    click.option("--overwrite", is_flag=True, help="Replace an existing output file."),
    click.option("--reset-on-cut", is_flag=True, help="Reset the recurrent state at scene cuts."),
    click.option("--state-reset-every", type=click.IntRange(min=0), default=0, help="Reset the state every N frames (0 = never)."),
    click.option("--adapt", type=AdaptBudget(), is_flag=False, flag_value=AUTO_BUDGET, default=None, metavar="[SECONDS]",
                 help="Fine-tune a copy of the model on the clip's own sharpest frames first, for SECONDS "
                      "[default: 60 s plus 3 CPU-minutes per minute of 720p video; a tenth on a GPU]; the base "
                      "weights are kept where it does not help (docs/adapt.md)."),
]


def shared_options(command: Any) -> Any:
    for option in reversed(_SHARED_OPTIONS):
        command = option(command)
    return command


@cli.command("run")
# str, not Path: a URL's "//" must survive
@click.argument("paths", nargs=-1, required=True, metavar="INPUT OUTPUT | IN... OUT_DIR | SOURCE SINK")
@shared_options
@live_options
@click.option("--compile", "compile_mode", type=click.Choice(["off", "inductor", "cuda-graphs"]), default="off",
              show_default=True, help="torch backend: torch.compile (first frame of each size compiles) or CUDA graphs.")
@click.option("--video-io", type=click.Choice(["pyav", "auto", "nvcodec"]), default="pyav", show_default=True,
              help="Decode/encode with PyAV (CPU), with NVDEC/NVENC (nvcodec extra; never run by this project yet), "
                   "or auto: NVDEC/NVENC where they can run, else PyAV, the reason printed.")
@click.option("--tile", type=click.IntRange(min=0), default=0, show_default=True,
              help="Run frames as overlapping tiles of at most this many pixels a side, each with its own state "
                   "(for frames too large for memory); 0 = whole frames.")
@click.option("--tile-overlap", type=click.IntRange(min=0), default=32, show_default=True,
              help="Pixels shared by neighbouring tiles, blended linearly.")
@click.option("--streams", type=click.IntRange(min=1), default=1, show_default=True,
              help="With several inputs: files processed at once, their frames batched into one model call "
                   "(one recurrent state per file).")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="CPU threads for inference [default: the cores other processes leave free (load average), at least 1].")
@click.option("--save-adapted", type=click.Path(path_type=Path), default=None,
              help="With --adapt and one input: write the weights used as a checkpoint (.safetensors, loadable with --model).")
@click.option("--quiet", is_flag=True, help="No progress bar or summary.")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
def run_cmd(paths: tuple[str, ...], model: str | None, arch: str | None, backend: str, device: str, fp16: bool, compile_mode: str,
            codec: str, crf: int, preset: str, pix_fmt: str | None, overwrite: bool, reset_on_cut: bool,
            state_reset_every: int, adapt: float | None, video_io: str, tile: int, tile_overlap: int, streams: int,
            threads: int | None, save_adapted: Path | None, quiet: bool, debug: bool, **live: Any) -> None:
    """Deblur INPUT into OUTPUT, or several inputs into an output folder; or a live SOURCE into a SINK."""
    ctx = click.get_current_context()

    def work() -> None:
        if is_stream_job(paths):  # a device, network stream or - at either end: engine/live_cli.py
            if adapt is not None or save_adapted is not None:
                raise ValueError("--adapt learns from the whole clip before deblurring it, and a live source has "
                                 "no whole clip; run it on a file")
            run_stream_job(ctx, lambda line: say(quiet, line))
            return
        refuse_live_options(ctx)
        several = len(paths) > 2 or Path(paths[0]).is_dir()
        check_adapt_options(adapt, save_adapted, several, streams)  # before plan_jobs makes the output folder
        tiles = TileSpec(tile, tile_overlap) if tile else None
        encoding = EncodeOptions(codec, crf, preset, pix_fmt)
        jobs = plan_jobs(tuple(map(Path, paths)))
        if streams == 1 or len(jobs) == 1:  # --streams reports a bad file among several and goes on
            probe_jobs(jobs, encoding, overwrite, save_adapted, lambda line: say(quiet, f"vdeblur: {line}"))
        reach("imports")
        import torch

        from .backends import load_backend
        from .pipeline import deblur_video

        adapting = adapt_config(adapt)
        torch.set_num_threads(threads or inference_threads())
        reach("model-load")
        engine = load_backend(model, backend, device, fp16, compile_mode,
                              log=lambda line: say(quiet, f"vdeblur: {line}"), arch=arch)  # the export cache's line
        say(quiet, f"vdeblur: {getattr(engine, 'label', engine.name)} backend")
        if streams > 1 and len(jobs) > 1:
            run_streams(jobs, engine, streams, encoding, overwrite, reset_on_cut, state_reset_every, tiles, video_io,
                        quiet)
            return
        bars = not quiet and sys.stderr.isatty()
        for src, dst in jobs:
            stats = deblur_video(src, dst, engine, overwrite=overwrite, encode=encoding,
                                 reset_on_cut=reset_on_cut, reset_every=state_reset_every, tile=tiles,
                                 video_io=video_io, adapt=adapting, save_adapted=save_adapted,
                                 log=lambda line: say(quiet, line), progress=Progress(src.name) if bars else None,
                                 adapt_progress=AdaptProgress(src.name) if bars else None)
            say(quiet, f"{src} -> {dst}: {stats.summary()}; inference threads: {torch.get_num_threads()}")

    guarded(work, debug)


def run_streams(jobs: list[tuple[Path, Path]], engine: Any, streams: int, encoding: EncodeOptions, overwrite: bool,
                reset_on_cut: bool, reset_every: int, tiles: TileSpec | None, video_io: str, quiet: bool) -> None:
    """``--streams N``: N files at a time, frames batched across them; a line per file, exit 1 if any failed."""
    from .multistream import deblur_many

    started = time.perf_counter()
    results = deblur_many(jobs, engine, max_streams=streams, overwrite=overwrite, encode=encoding,
                          reset_on_cut=reset_on_cut, reset_every=reset_every, tile=tiles, video_io=video_io,
                          log=lambda line: say(quiet, line))
    for r in results:
        if r.stats is not None:
            say(quiet, f"{r.src} -> {r.dst}: {r.stats.summary()}")
        else:  # failures are shown even with --quiet: the exit status alone would not say which file
            click.echo(f"{r.src}: failed: {r.error}", err=True)
    frames = sum(r.stats.frames for r in results if r.stats)
    wall = time.perf_counter() - started
    say(quiet, f"{len(results)} files, {frames} frames in {wall:.1f} s ({frames / max(wall, 1e-9):.1f} fps in all)")
    failed = [r for r in results if not r.ok]
    if failed:
        raise ValueError(f"{len(failed)} of {len(results)} files failed (see the lines above)")


@cli.command("batch")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@shared_options
@click.option("--ray-address", default=None,
              help="Ray cluster: auto (the one `ray start` began on this machine), HOST:PORT, or ray://HOST:10001 "
                   "[default: a local Ray instance].")
@click.option("--gpus-per-task", type=click.FloatRange(min=0), default=0, show_default=True,
              help="GPUs each file reserves (0.5: two files per GPU; 0: CPU inference).")
@click.option("--cpus-per-task", type=click.FloatRange(min=0), default=1, show_default=True,
              help="CPUs each file reserves; decoding and encoding run on CPUs.")
@click.option("--max-retries", type=click.IntRange(min=0), default=2, show_default=True,
              help="Retries after a system failure (a dead worker or node, CUDA out of memory); bad inputs are not retried.")
@click.option("--report", type=click.Path(path_type=Path), default=None,
              help="JSON report of every file [default: OUT_DIR/vdeblur-batch.json].")
@click.option("--quiet", is_flag=True, help="Only the summary.")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
def batch_cmd(paths: tuple[Path, ...], model: str | None, arch: str | None, backend: str, device: str, fp16: bool, codec: str, crf: int,
              preset: str, pix_fmt: str | None, overwrite: bool, reset_on_cut: bool, state_reset_every: int,
              adapt: float | None, ray_address: str | None, gpus_per_task: float, cpus_per_task: float, max_retries: int,
              report: Path | None, quiet: bool, debug: bool) -> None:
    """Deblur many videos on a Ray cluster, one task per file (pip install 'vdeblur[cluster]').

    Inputs, outputs and the model must be on storage every node sees under the same paths.
    Exit status 1 when any file failed; the report says which and why.
    """
    def work() -> None:
        from .cluster import FileResult, run_batch

        def line(r: FileResult) -> None:
            outcome = f"{r.frames} frames in {r.wall_s:.1f} s" if r.ok else f"failed ({r.error_kind}): {r.error}"
            say(quiet, f"{r.input} -> {r.output}: {outcome}" + (f"; {r.adapt}" if r.adapt else ""))

        check_adapt_options(adapt, None, True, 1)
        jobs = plan_jobs(paths)
        result = run_batch(jobs, model, address=ray_address, num_gpus=gpus_per_task, num_cpus=cpus_per_task,
                           backend=backend, device=device, fp16=fp16, encode=EncodeOptions(codec, crf, preset, pix_fmt),
                           overwrite=overwrite, reset_on_cut=reset_on_cut, reset_every=state_reset_every,
                           adapt=adapt_config(adapt), max_retries=max_retries, report=report or jobs[0][1].parent / "vdeblur-batch.json",
                           on_result=line, arch=arch)
        click.echo(result.summary(), err=True)
        if result.failed:
            sys.exit(1)

    guarded(work, debug)


@cli.command("sample")
@click.argument("output", type=click.Path(path_type=Path))
@click.option("--frames", type=click.IntRange(min=2), default=24, show_default=True, help="Frames per shot (2 shots).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--overwrite", is_flag=True)
@click.option("--debug", is_flag=True)
def sample_cmd(output: Path, frames: int, seed: int, overwrite: bool, debug: bool) -> None:
    """Write a short blurred demo clip (from photos bundled with scikit-image)."""
    from .sample import write_sample

    guarded(lambda: click.echo(f"wrote {write_sample(output, frames_per_shot=frames, seed=seed, overwrite=overwrite)} "
                               f"frames to {output}"), debug)


class AdaptProgress:
    """One self-overwriting stderr line while a clip is adapted: seconds spent of the budget."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __call__(self, spent: float, budget: float) -> None:
        click.echo(f"\r{self.name}: adapting, {spent:.0f}/{budget:.0f} s   ", err=True, nl=False)
        if spent >= budget:
            click.echo("", err=True)


class Progress:
    """One self-overwriting stderr line: frames, frames/s, ETA."""

    def __init__(self, name: str) -> None:
        self.name, self.start = name, time.perf_counter()

    def __call__(self, done: int, total: int) -> None:
        rate = done / max(time.perf_counter() - self.start, 1e-9)
        eta = f", ETA {(total - done) / rate:.0f} s" if total > done else ""
        of = f"/{total}" if total else ""
        click.echo(f"\r{self.name}: {done}{of} frames, {rate:.1f} fps{eta}   ", err=True, nl=False)
        if total and done >= total:
            click.echo("", err=True)


def say(quiet: bool, text: str) -> None:
    if not quiet:
        click.echo(text, err=True)


def guarded(work: object, debug: bool) -> None:
    """Run ``work``; turn any error into one line and exit status 1 (tracebacks only with --debug).
    Ctrl-C is left to ``main``, which answers it the same way wherever it lands."""
    try:
        work()  # type: ignore[operator]
    except (click.ClickException, KeyboardInterrupt):
        raise
    except Exception as e:  # the one place where every failure becomes a user-facing line
        if debug or caused_by_interrupt(e):  # an interrupt Python wrapped in another error: main answers it
            raise
        click.echo(f"vdeblur: error: {e}", err=True)
        sys.exit(1)


def main() -> None:
    run_console(cli, "vdeblur", SCRIPTS["vdeblur"][1])


if __name__ == "__main__":
    main()
