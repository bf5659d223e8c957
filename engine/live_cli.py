"""``vdeblur SOURCE SINK`` where either end is a device, a network stream or ``-``: the options
of live runs and the glue from the command line to ``live.run_live``. ``cli.py`` only dispatches
here, so that file runs keep their own code path untouched. Like ``cli.py`` it loads torch and the
live loop only once every check that needs no connection and no model has passed."""

from __future__ import annotations

from typing import Any

import click

from .endpoints import STREAM_FORMATS, check_endpoints, is_stream
from .options import EncodeOptions, inference_threads
from .pix_fmts import check_encoding
from .tile_spec import TileSpec

# x264's "medium" costs ~11 ms of CPU per 640x360 frame here; "veryfast" about a third of that,
# which a live run on a small machine needs for inference. An explicit --preset wins.
LIVE_PRESET = "veryfast"

_LIVE_OPTIONS = [
    click.option("--max-latency-ms", type=float, default=None,
                 help="Live: frames that cannot be encoded within this long of their capture are dropped "
                      "[default: 300 for devices and network streams; - keeps every frame unless given]."),
    click.option("--wait", type=click.FloatRange(min=0, min_open=True), default=None, metavar="SECONDS",
                 help="How long to wait for a live source (or -) to start sending [default: until Ctrl-C]."),
    click.option("--source-timeout", type=click.FloatRange(min=0.1), default=5.0, show_default=True,
                 help="Seconds without data, once a live source has started, after which it counts as ended."),
    click.option("--fps-report", is_flag=True, help="Live: a line every second with fps, drops and latency p50/p95."),
    click.option("--stream-format", type=click.Choice(STREAM_FORMATS), default="mpegts", show_default=True,
                 help="Container written to - and to udp://, tcp://, srt:// sinks."),
    click.option("--input-option", "input_options", multiple=True, metavar="KEY=VALUE",
                 help="FFmpeg option for the source, e.g. video_size=1280x720, input_format=mjpeg, "
                      "rtsp_transport=tcp (repeatable)."),
]
_DEFAULTS = {"max_latency_ms": None, "wait": None, "source_timeout": 5.0, "fps_report": False, "stream_format": "mpegts",
             "input_options": ()}


def live_options(command: Any) -> Any:
    for option in reversed(_LIVE_OPTIONS):
        command = option(command)
    return command


def is_stream_job(paths: tuple[str, ...]) -> bool:
    """A device, stream or pipe at either end; refused with several inputs (one SOURCE, one SINK)."""
    if not any(is_stream(p) for p in paths):
        return False
    if len(paths) != 2:
        raise ValueError(f"a device, network stream or - takes exactly one SOURCE and one SINK; got {len(paths)} paths")
    return True


def refuse_live_options(ctx: click.Context) -> None:
    """File runs: a live option given there would silently do nothing."""
    given = [f"--{k.replace('_', '-')}" for k, v in _DEFAULTS.items() if ctx.params.get(k) != v]
    if given:
        raise ValueError(f"{', '.join(given)} {'applies' if len(given) == 1 else 'apply'} to live sources and "
                         f"stream sinks (a device, URL or -), not to files")


def run_stream_job(ctx: click.Context, say: Any) -> None:
    p = ctx.params
    source, sink = p["paths"]
    src, dst, _ = check_endpoints(source, sink, p["overwrite"], p["max_latency_ms"])  # before the model loads
    if p["video_io"] == "nvcodec":
        raise ValueError("--video-io nvcodec reads and writes files; live runs decode and encode with PyAV")
    tiles = TileSpec(p["tile"], p["tile_overlap"]) if p["tile"] else None
    input_options = tuple(_key_value(o) for o in p["input_options"])
    note = check_encoding(p["codec"], p["pix_fmt"], sink if dst.is_file else None)
    if note:
        say(f"vdeblur: {note}")
    from .live import LiveOptions, run_live

    options = LiveOptions(max_latency_ms=p["max_latency_ms"], source_timeout_s=p["source_timeout"], wait_s=p["wait"],
                          report_every_s=1.0 if p["fps_report"] else 0.0, stream_format=p["stream_format"],
                          input_options=input_options)
    preset = p["preset"] if ctx.get_parameter_source("preset") != click.core.ParameterSource.DEFAULT else LIVE_PRESET
    import torch

    torch.set_num_threads(p["threads"] or inference_threads())
    from .backends import load_backend

    engine = load_backend(p["model"], p["backend"], p["device"], p["fp16"], p["compile_mode"],
                          log=lambda line: say(f"vdeblur: {line}"), arch=p["arch"])  # the export cache's line
    say(f"vdeblur: {getattr(engine, 'label', engine.name)} backend")
    stats = run_live(source, sink, engine, options=options, encode=EncodeOptions(p["codec"], p["crf"], preset, p["pix_fmt"]),
                     overwrite=p["overwrite"], reset_on_cut=p["reset_on_cut"], reset_every=p["state_reset_every"],
                     tile=tiles, log=say)
    say(f"{src.label} -> {dst.label}: {stats.summary()}")
    if stats.lost and p["quiet"]:  # shown even with --quiet: the output ended early, for a reason
        click.echo(f"vdeblur: {stats.ended}; output closed: {dst.label}", err=True)


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise click.BadParameter(f"{text!r} is not KEY=VALUE", param_hint="--input-option")
    return key, value
