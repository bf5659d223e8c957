"""What a SOURCE or SINK string names, and how it is opened: a file, a capture device
(``/dev/video0``, through v4l2), a network stream (``udp://``, ``rtsp://``, ...) or ``-`` (a
container on stdin / MPEG-TS or Matroska on stdout).

Everything that can be refused is refused here, before any output exists: an unknown URL scheme, a
missing device, a terminal instead of a pipe, a source that cannot be reached or sends no video
within ``--wait`` (a source that starts late is waited for, by default until Ctrl-C). Each refusal is one ``VideoError`` line naming what was given and what is
allowed.
"""

from __future__ import annotations

import os
import re
import select
import stat
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av

from .checks import check_paths
from .video_io import VideoError, open_input

SOURCE_SCHEMES = ("http", "https", "rtmp", "rtsp", "srt", "tcp", "udp")
# The container each network sink gets: MPEG-TS where the protocol carries bytes, else the one the
# protocol itself requires (RTSP publishes through FFmpeg's rtsp muxer, RTMP carries FLV).
SINK_FORMATS = {"udp": "mpegts", "tcp": "mpegts", "srt": "mpegts", "rtsp": "rtsp", "rtmp": "flv"}
STREAM_FORMATS = ("mpegts", "matroska")  # for "-" (stdout)
_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_DEVICE_NAME = re.compile(r"^/dev/(video\d+|v4l/.+)$")
_ALLOWED_SOURCES = f"a video file, a capture device (/dev/videoN), {', '.join(s + '://' for s in SOURCE_SCHEMES)} or - (stdin)"
_ALLOWED_SINKS = f"a video file, {', '.join(s + '://' for s in SINK_FORMATS)} or - (stdout)"
# Live probing: FFmpeg's defaults read up to 5 s of a stream before the first frame comes out.
# 0.2 s and 1 MB find an H.264/HEVC stream's size and rate while keeping start-up latency short.
_QUIET_WAIT_S = 0.5  # a source that has not sent by then is said to be waited for
DEFAULT_LATENCY_MS = 300.0  # a live frame older than this when it could be encoded is dropped
_LIVE_PROBE = {"analyzeduration": "200000", "probesize": "1000000"}


@dataclass(frozen=True)
class Endpoint:
    kind: str  # "file", "device", "network", "pipe" (stdin or stdout)
    spec: str  # as the user gave it
    scheme: str = ""  # network: "udp", "rtsp", ...

    @property
    def is_file(self) -> bool:
        return self.kind == "file"

    @property
    def is_live(self) -> bool:
        """Frames arrive in real time whether we keep up or not (stdin is a pipe: it waits for us)."""
        return self.kind in ("device", "network")

    @property
    def label(self) -> str:
        return {"pipe": "-"}.get(self.kind, self.spec)


def is_stream(spec: str) -> bool:
    """True for anything that is not a plain file path: ``-``, a URL or a capture device."""
    return spec == "-" or bool(_URL.match(spec)) or is_device(spec)


def is_device(spec: str) -> bool:
    """A character device, or a missing path named like one (so that its absence is reported as a
    missing camera); a file under /dev/shm is a file."""
    if os.path.exists(spec):
        return stat.S_ISCHR(os.stat(spec).st_mode)
    return bool(_DEVICE_NAME.match(spec))


def parse_source(spec: str) -> Endpoint:
    if spec == "-":
        return Endpoint("pipe", spec)
    if is_device(spec):
        return Endpoint("device", spec)
    match = _URL.match(spec)
    if match is None:
        return Endpoint("file", spec)
    scheme = match.group(1).lower()
    if scheme not in SOURCE_SCHEMES:
        raise VideoError(f"source {spec}: unsupported scheme {scheme}://; allowed: {_ALLOWED_SOURCES}")
    return Endpoint("network", spec, scheme)


def parse_sink(spec: str) -> Endpoint:
    if spec == "-":
        return Endpoint("pipe", spec)
    if is_device(spec):
        raise VideoError(f"sink {spec}: writing to devices is not supported; allowed: {_ALLOWED_SINKS}")
    match = _URL.match(spec)
    if match is None:
        return Endpoint("file", spec)
    scheme = match.group(1).lower()
    if scheme not in SINK_FORMATS:
        raise VideoError(f"sink {spec}: unsupported scheme {scheme}://; allowed: {_ALLOWED_SINKS}")
    return Endpoint("network", spec, scheme)


def check_source(source: Endpoint) -> None:
    """The refusals that need no connection (run before the model is loaded)."""
    if source.kind == "device" and not os.path.exists(source.spec):
        found = sorted(str(p) for p in Path("/dev").glob("video*"))
        raise VideoError(f"capture device {source.spec} does not exist; devices here: {', '.join(found) or 'none'}")
    if source.kind == "pipe" and sys.stdin is not None and sys.stdin.isatty():
        raise VideoError("source - reads a video container from stdin, but stdin is a terminal; pipe one in "
                         "(e.g. ... -f mpegts - | vdeblur - out.mp4)")


def latency_bound_s(source: Endpoint, max_latency_ms: float | None) -> float | None:
    """The drop rule's bound, or None where every frame is kept."""
    if source.is_file:
        if max_latency_ms is not None:
            raise VideoError(f"--max-latency-ms applies to live sources; {source.spec} is a file, whose "
                             f"frames are all kept")
        return None
    if max_latency_ms is not None and max_latency_ms <= 0:
        raise VideoError(f"--max-latency-ms must be > 0; got {max_latency_ms:g}")
    if max_latency_ms is None:
        return DEFAULT_LATENCY_MS / 1000 if source.is_live else None
    return max_latency_ms / 1000


def check_endpoints(source: str, sink: str, overwrite: bool,
                    max_latency_ms: float | None) -> tuple[Endpoint, Endpoint, float | None]:
    """Every refusal that needs no connection (so the CLI can give it before loading the model):
    (source, sink, latency bound or None)."""
    src, dst = parse_source(source), parse_sink(sink)
    check_source(src)
    bound = latency_bound_s(src, max_latency_ms)
    if dst.is_file:
        check_paths(Path(source), Path(sink), overwrite)
    return src, dst, bound


def open_source(source: Endpoint, timeout_s: float, options: dict[str, str] | None = None, *,
                wait_s: float | None = None, log: Callable[[str], None] | None = None) -> av.container.InputContainer:
    """Open ``source`` for reading. A stream, device or pipe may start after us: it is waited for
    (``wait_s``, None: until Ctrl-C), with one line to ``log`` saying so and where; once it has sent
    data, ``timeout_s`` without more ends it, as an error rather than a hang."""
    if source.is_file:
        return open_input(source.spec)
    check_source(source)
    opts = {**(_LIVE_PROBE if source.is_live else {}), **(options or {})}
    if source.scheme == "udp":
        opts.setdefault("overrun_nonfatal", "1")  # a late read loses packets (counted as a gap), not the stream
    target: object = source.spec
    fmt = None
    if source.kind == "pipe":
        target = TimedReader(sys.stdin.fileno(), timeout_s, first_timeout_s=wait_s)
    elif source.kind == "device":
        fmt = "video4linux2"  # the v4l2 path was written from FFmpeg's documentation; no camera here, never run
    try:
        container = _open_waiting(lambda: av.open(target, mode="r", format=fmt, options=opts,
                                                  timeout=(wait_s, timeout_s)), source, wait_s, log)
    except (av.error.FFmpegError, OSError) as e:
        raise VideoError(_open_failure(source, e, wait_s, timeout_s)) from None
    if not container.streams.video:
        container.close()
        raise VideoError(f"source {source.label} has no video stream")
    return container


def _open_waiting(open_it: Callable[[], av.container.InputContainer], source: Endpoint, wait_s: float | None,
                  log: Callable[[str], None] | None) -> av.container.InputContainer:
    """``open_it()`` on a helper thread, so that Ctrl-C reaches this one while FFmpeg blocks waiting for the
    first data (its own wait does not look at signals); says once that it waits when that takes a while."""
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            result["container"] = open_it()
        except BaseException as e:  # handed to the caller's thread below
            result["error"] = e

    opener = threading.Thread(target=run, name="vdeblur-open", daemon=True)
    opener.start()
    opener.join(_QUIET_WAIT_S)
    if opener.is_alive() and log is not None:
        bound = "" if wait_s is None else f", at most {wait_s:g} s (--wait)"
        log(f"vdeblur: waiting for {_what(source)} to send video (Ctrl-C stops{bound})")
    while opener.is_alive():
        opener.join(0.1)  # short joins: a Ctrl-C is raised here at once
    if "error" in result:
        raise result["error"]
    return result["container"]


def _what(source: Endpoint) -> str:
    return "source - (stdin)" if source.kind == "pipe" else source.spec


def _open_failure(source: Endpoint, e: BaseException, wait_s: float | None, timeout_s: float) -> str:
    what = f"source {_what(source)}"
    if isinstance(e, (TimeoutError, av.error.ExitError)):  # ExitError: PyAV's timeout interrupted FFmpeg
        if wait_s is None or isinstance(e, WentQuiet):
            return f"{what} went quiet before a video arrived (nothing for {timeout_s:g} s)"
        hint = "" if source.kind == "pipe" else " (is the sender running, and sending to this address?)"
        return f"{what} sent no video within {wait_s:g} s (--wait){hint}"
    if isinstance(e, av.error.ProtocolNotFoundError):
        return (f"{what}: this FFmpeg build (PyAV {av.__version__}) has no {source.scheme}:// protocol; "
                f"use another of {', '.join(SOURCE_SCHEMES)} or a PyAV built against an FFmpeg that has it")
    if isinstance(e, ConnectionRefusedError):
        return f"{what} refused the connection (nothing is serving there)"
    if source.kind == "pipe" and isinstance(e, av.error.InvalidDataError):
        return (f"{what} ended before a video arrived, or is not a streamable container; "
                f"pipe MPEG-TS or Matroska into -")
    reason = getattr(e, "strerror", None) or str(e)
    return f"{what} could not be opened ({reason})"


def sink_target(sink: Endpoint, stream_format: str) -> tuple[str, str]:
    """(what FFmpeg opens, container format) for a stream sink."""
    if stream_format not in STREAM_FORMATS:
        raise VideoError(f"stream format {stream_format!r} is not supported; allowed: {', '.join(STREAM_FORMATS)}")
    if sink.kind == "pipe":
        return "pipe:1", stream_format
    fmt = SINK_FORMATS[sink.scheme]
    return sink.spec, stream_format if fmt == "mpegts" else fmt


class WentQuiet(TimeoutError):
    """A source that had started sending sent nothing more for its timeout."""


class TimedReader:
    """A file-like reader of a pipe that gives up after ``timeout_s`` without data once data came, and
    after ``first_timeout_s`` (None: never) before the first.

    FFmpeg's own ``pipe:`` protocol blocks in read() forever, out of reach of PyAV's timeout; a
    select() before each read bounds the wait (an exception raised here surfaces from PyAV's call)."""

    def __init__(self, fd: int, timeout_s: float, first_timeout_s: float | None = None) -> None:
        self.fd, self.timeout_s, self.first_timeout_s, self.started = fd, timeout_s, first_timeout_s, False

    def read(self, size: int) -> bytes:
        limit = self.timeout_s if self.started else self.first_timeout_s
        ready, _, _ = select.select([self.fd], [], [], limit)
        if not ready:
            raise (WentQuiet if self.started else TimeoutError)(f"stdin sent nothing for {limit:g} s")
        data = os.read(self.fd, size)
        self.started = True
        return data
