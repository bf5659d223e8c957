"""Live runs: a capture device, network stream or pipe in; a file, network stream or stdout out.

    capture thread --FrameBuffer--> inference (this thread) --2 frames--> encode thread --> sink

Capture never waits for inference. From a live source (device, network) a frame that could not be
encoded within ``max_latency_ms`` of its capture is dropped, counted, and the recurrent state is
reset before the next one (a gap breaks the motion the state carries); order is never changed.
When inference is steadily slower than the source only the newest frame is run, at the lowest
latency the model allows (``live_buffer.FrameBuffer``).
Files and pipes (whose writer waits for us) keep every frame, as the file pipeline does; into a
network sink they are sent no faster than their own timestamps, so receivers play them in real
time. The end of the source, its loss (an error, or silence longer than ``source_timeout_s``), a
``stop`` event, Ctrl-C or SIGTERM all end the run the same way: the frames in flight are
encoded, the encoder flushed and the container closed, so the output plays to its end. A file
sink grows in a hidden part file renamed on that clean close; an error (model, encoder, sink)
removes it. Audio and subtitles are not carried in live runs (their clocks are not retimed).

Latency is measured per frame from the moment the decoder handed it over to the moment its
packet was written; the camera's own exposure-to-delivery delay is not visible here.
"""

from __future__ import annotations

import math
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
from av.video.reformatter import VideoReformatter

from vdeblur.export.artifact_cache import to_stderr

from .backends.base import Backend
from .endpoints import Endpoint, check_endpoints, open_source, sink_target
from .live_buffer import Captured, Ema, FrameBuffer, Retimer, percentile_ms
from .part_files import PartFile, remove_stale_part_files
from .options import EncodeOptions
from .pipeline import _END, _Channel, _Stop, stage
from .stream import DeblurStream
from .tiling import TileSpec
from .video_io import VideoError, VideoWriter, to_rgb

_BUFFER_FRAMES = 16  # capture -> inference: rides out a stall (a first-frame compile); ~100 MB at 1080p
_ENCODE_FRAMES = 2  # inference -> encode: short, so a slow sink shows as counted drops, not hidden latency
_GAP_FRAMES = 3  # a source timestamp jump of more than this many frames means frames were lost there
_PAUSE_S = 0.5  # a read that waited longer is a pause of the source, left out of the fps span


@dataclass(frozen=True)
class LiveOptions:
    max_latency_ms: float | None = None  # None: DEFAULT_LATENCY_MS for live sources, every frame kept otherwise
    source_timeout_s: float = 5.0  # no data for this long, once the source has started, ends it
    wait_s: float | None = None  # how long to wait for the source's first data; None: until Ctrl-C
    report_every_s: float = 0.0  # a throughput/latency line this often (0: the summary only)
    stream_format: str = "mpegts"  # container for "-" and byte-stream network sinks (udp, tcp, srt)
    input_options: tuple[tuple[str, str], ...] = ()  # FFmpeg options for the source (video_size=1280x720, ...)


@dataclass
class LiveStats:
    captured: int = 0
    encoded: int = 0
    dropped: int = 0
    gaps: int = 0  # state resets after lost frames
    latency_s: list[float] = field(default_factory=list)
    wall_s: float = 0.0  # the whole run, start-up and the final silence of a quiet source included
    active_s: float = 0.0  # first frame captured to last encoded, less the source's pauses: the fps span
    ended: str = ""
    lost: bool = False  # the source failed or went quiet (rather than ending or being stopped)

    def summary(self) -> str:
        span = max(self.active_s, 1e-9)
        p50, p95 = percentile_ms(self.latency_s, 50), percentile_ms(self.latency_s, 95)
        return (f"{self.encoded} frames in {self.active_s:.1f} s ({self.encoded / span:.1f} fps out, "
                f"{self.captured / span:.1f} fps in), {self.dropped} dropped, latency p50 {p50:.0f} ms / "
                f"p95 {p95:.0f} ms (capture to encoded), {self.gaps} state resets after gaps; {self.ended}")


def live_codec_options(codec: str, rate: Any) -> dict[str, str]:
    """No look-ahead or B-frames (x264/x265 would hold ~40 frames back), and a keyframe every
    second so that a viewer joining a stream waits at most that long for a picture."""
    options = {"g": str(max(1, round(float(rate)))) if rate else "25"}
    if codec in ("libx264", "libx265"):
        options["tune"] = "zerolatency"
    return options


def run_live(source: str, sink: str, backend: Backend, *, options: LiveOptions = LiveOptions(),
             encode: EncodeOptions = EncodeOptions(), overwrite: bool = False, reset_on_cut: bool = False,
             reset_every: int = 0, tile: TileSpec | None = None, log: Callable[[str], None] | None = None,
             stop: threading.Event | None = None) -> LiveStats:
    """Deblur ``source`` into ``sink`` (see the module docstring); ``stop`` ends the run cleanly
    from another thread. Raises ``VideoError`` before any output exists for a source or sink
    that cannot be used."""
    src, dst, bound = check_endpoints(source, sink, overwrite, options.max_latency_ms)
    container = open_source(src, options.source_timeout_s, dict(options.input_options), wait_s=options.wait_s,
                            log=log or to_stderr)
    stream = DeblurStream(backend, reset_on_cut=reset_on_cut, reset_every=reset_every, tile=tile)
    run = _LiveRun(container, src, dst, stream, encode, options, bound, stop or threading.Event(), log)
    return run.go()


class _LiveRun:
    def __init__(self, container: av.container.InputContainer, source: Endpoint, sink: Endpoint, stream: DeblurStream,
                 encode: EncodeOptions, options: LiveOptions, bound_s: float | None, stop: threading.Event,
                 log: Callable[[str], None] | None) -> None:
        self.container, self.source, self.sink, self.stream = container, source, sink, stream
        self.encoding, self.options, self.bound_s, self.stop, self.log = encode, options, bound_s, stop, log
        video = container.streams.video[0]
        self.time_base = video.time_base
        self.rate = video.average_rate or video.guessed_rate
        self.stats = LiveStats()
        self._first_capture_s: float | None = None
        self._paused_s = 0.0  # reads that waited longer than _PAUSE_S (the MPEG-TS demuxer hands over
        # a stream's last frame only when the read after it times out: that wait is not throughput)
        self.buffer = FrameBuffer(_BUFFER_FRAMES, drop=bound_s is not None)
        self.failed = threading.Event()
        self.interrupted = threading.Event()  # Ctrl-C or SIGTERM seen (see _interrupts_noted)
        self.errors: list[BaseException] = []
        self.outbox = _Channel(self.failed, _ENCODE_FRAMES)
        self.retime = Retimer(self.time_base, self.rate)
        self.remaining = Ema()  # seconds from inference start to the packet written
        self.pace = bound_s is None and sink.kind == "network"
        self.writer: VideoWriter | None = None
        self.part: PartFile | None = None  # a file sink's hidden part file, locked while written
        self._pending: dict[int, float] = {}  # output pts -> capture time, until its packet is written
        self._last_pts: int | None = None
        self._pace_origin: float | None = None
        self._reported = (0.0, 0, 0)  # (time, encoded, latency samples) at the last report line
        self._reader_gone = False  # the program reading our stdout closed it (ffplay was closed)

    def go(self) -> LiveStats:
        started = time.perf_counter()
        threads = [threading.Thread(target=stage(body, self.errors, self.failed), name=name, daemon=True)
                   for body, name in ((self._capture, "vdeblur-capture"), (self._encode, "vdeblur-encode"))]
        try:
            for t in threads:
                t.start()
            with _interrupts_noted(self.interrupted):
                self.stats.ended = self._infer_until_end()
            if self._reader_gone:
                self.stats.ended = "the reader of - closed the pipe"
            self.stop.set()
            self.outbox.put(_END)
            threads[1].join()
            if self.errors:
                raise self.errors[0]
            self._close()
        except BaseException as e:
            self.failed.set()  # the encode thread stops at its next frame ...
            if threads[1].is_alive():
                threads[1].join(timeout=5)  # ... and is out of the writer before it is closed under it
            self._abandon(writer_free=not threads[1].is_alive())
            if isinstance(e, _Stop):
                raise self.errors[0] from None
            raise
        finally:
            self.stop.set()
            # Capture sees the stop at its next packet; from a quiet source that is its read timeout
            # away, which Ctrl-C should not wait for. A thread still reading keeps the container
            # (closing it under the read would crash); it ends by itself at the timeout.
            threads[0].join(timeout=1.0)
            if not threads[0].is_alive():
                self.container.close()
            self.buffer.discard()  # captured but not run when the run stopped: counted with the drops
            self.stats.dropped = self.buffer.dropped
        self.stats.wall_s = time.perf_counter() - started
        return self.stats

    def _infer_until_end(self) -> str:
        """Run frames until the source ends or a stop; returns why it ended."""
        bound = math.inf if self.bound_s is None else self.bound_s
        pushed, size = 0, None
        try:
            while not self.stop.is_set():
                if self.failed.is_set():
                    raise _Stop
                if self.interrupted.is_set():
                    raise KeyboardInterrupt  # one whose raise was lost on its way (_interrupts_noted)
                frame, gap = self.buffer.take(bound, self.remaining.value)
                if frame is None:
                    if self.buffer.ended:
                        break
                    continue
                if self.writer is None:
                    self._open_writer()
                if size is not None and frame.rgb.shape != size:  # the encoder's size is fixed once opened
                    self.stats.lost = True
                    return (f"source changed its frame size from {size[1]}x{size[0]} to "
                            f"{frame.rgb.shape[1]}x{frame.rgb.shape[0]}")
                size = frame.rgb.shape
                if pushed and (gap or self._discontinuous(frame)):
                    self.stream.reset()
                    self.stats.gaps += 1
                self._last_pts = frame.pts
                started = time.perf_counter()
                rgb = self.stream.push(frame.rgb)
                self.outbox.put((frame, rgb, started))
                pushed += 1
        except KeyboardInterrupt:
            if self.writer is None:
                raise  # nothing written yet: the CLI says "interrupted; no output was written"
            return "stopped by Ctrl-C"
        if self.writer is None:
            raise VideoError(f"source {self.source.label} sent no video frame ({self.buffer.end_reason or 'stopped'})")
        return self.buffer.end_reason or "stopped"

    def _discontinuous(self, frame: Captured) -> bool:
        if frame.pts is None or self._last_pts is None:
            return False
        step = self.retime.step
        return frame.pts <= self._last_pts or frame.pts - self._last_pts > _GAP_FRAMES * step

    def _capture(self) -> None:
        video = self.container.streams.video[0]
        # Frame threads hold frames back (one per thread); slices do not. Files keep the faster setting.
        video.thread_type = "SLICE" if self.bound_s is not None else "AUTO"
        reformat = VideoReformatter()  # this thread's own: its swscale context is not thread-safe
        packets = self.container.demux(video)
        while not self.stop.is_set():
            try:
                asked = time.perf_counter()
                packet = next(packets)
                if (waited := time.perf_counter() - asked) > _PAUSE_S:
                    self._paused_s += waited
            except StopIteration:
                return self.buffer.finish("end of stream")
            except (av.error.FFmpegError, OSError) as e:
                if self.source.is_file:
                    raise VideoError(f"input {self.source.spec} could not be read after {self.stats.captured} "
                                     f"frames ({getattr(e, 'strerror', None) or e})") from None
                return self.buffer.finish(self._lost(e))
            for frame in self._decode(packet):
                captured = Captured(to_rgb(frame, reformat), frame.pts, time.perf_counter(), self.stats.captured)
                if self._first_capture_s is None:
                    self._first_capture_s = captured.captured_s
                self.buffer.put(captured, self.stop)
                self.stats.captured += 1
        self.buffer.finish("stopped")

    def _decode(self, packet: av.Packet) -> Iterator[av.VideoFrame]:
        try:
            yield from packet.decode()
        except av.error.InvalidDataError as e:
            if self.source.is_file:
                raise VideoError(f"input {self.source.spec} could not be decoded after {self.stats.captured} "
                                 f"frames ({e.strerror or e})") from None
            self.buffer.mark_gap()  # a stream with lost packets goes on; the state resets across the hole

    def _lost(self, e: BaseException) -> str:
        self.stats.lost = True
        if isinstance(e, (TimeoutError, av.error.ExitError)):
            return f"source went quiet (nothing for {self.options.source_timeout_s:g} s)"
        return f"source lost ({getattr(e, 'strerror', None) or e})"

    def _open_writer(self) -> None:
        enc = self.encoding
        common: dict[str, Any] = dict(codec=enc.codec, crf=enc.crf, preset=enc.preset, pix_fmt=enc.pix_fmt,
                                      codec_options=live_codec_options(enc.codec, self.rate), copy_streams=False)
        if self.sink.is_file:
            dst = Path(self.sink.spec)
            for stale in remove_stale_part_files(dst):  # what a run killed by SIGKILL or a power cut left
                (self.log or to_stderr)(f"vdeblur: removed {stale.name}, left in {stale.parent} by an earlier "
                                        f"run that was killed")
            self.part = PartFile(dst)
            self.writer = VideoWriter(self.part.path, self.container, format_from=dst, **common)
        else:
            target, fmt = sink_target(self.sink, self.options.stream_format)
            self.writer = VideoWriter(target, self.container, format=fmt, **common)
        try:  # connect and write the header now: an unreachable sink fails before any frame is run
            self.writer.container.start_encoding()
        except (av.error.FFmpegError, OSError) as e:
            raise VideoError(f"sink {self.sink.label} could not be opened ({getattr(e, 'strerror', None) or e})") from None

    def _encode(self) -> None:
        while (item := self.outbox.get()) is not _END:
            frame, rgb, started = item
            pts = self.retime(frame.pts, frame.captured_s)
            self._pending[pts] = frame.captured_s
            if self.pace:
                self._wait_for(pts)
            assert self.writer is not None  # opened before the first frame was pushed
            if self._reader_gone:
                continue  # drain what is in flight; nobody reads it any more
            try:
                written = self.writer.write_frame(rgb, pts, self.time_base)
            except BrokenPipeError:
                if self.sink.kind != "pipe":
                    raise
                self._reader_gone = True
                self.stop.set()
                continue
            for done in written:
                captured = self._pending.pop(done, None) if done is not None else None
                if captured is not None:
                    self.stats.latency_s.append(time.perf_counter() - captured)
            self.remaining.update(time.perf_counter() - started)
            self.stats.encoded += 1
            if self._first_capture_s is not None:
                self.stats.active_s = time.perf_counter() - self._first_capture_s - self._paused_s
            self._report()

    def _wait_for(self, pts: int) -> None:
        """Hold a frame until its own time (files into network sinks: receivers expect real time)."""
        now = time.perf_counter()
        if self._pace_origin is None:
            self._pace_origin = now - float(pts * self.time_base)
        delay = self._pace_origin + float(pts * self.time_base) - now
        if delay > 0:
            self.stop.wait(delay)  # a stop sends the frames in flight at once

    def _report(self) -> None:
        every = self.options.report_every_s
        now = time.perf_counter()
        if not every or self.log is None:
            return
        t0, encoded0, samples0 = self._reported
        if not t0:
            self._reported = (now, self.stats.encoded, len(self.stats.latency_s))
            return
        if now - t0 < every:
            return
        recent = self.stats.latency_s[samples0:]
        self.log(f"live: {(self.stats.encoded - encoded0) / (now - t0):.1f} fps, {self.buffer.dropped} dropped, "
                 f"latency p50 {percentile_ms(recent, 50):.0f} ms / p95 {percentile_ms(recent, 95):.0f} ms")
        self._reported = (now, self.stats.encoded, len(self.stats.latency_s))

    def _close(self) -> None:
        """Flush and close the output; a file sink's part file becomes the output."""
        assert self.writer is not None
        if self._reader_gone:
            self._abandon()  # no reader: nothing to flush into
            return
        if self.stats.encoded == 0:
            raise VideoError(f"stopped before the first frame was encoded; no output was written to {self.sink.label}")
        self.writer.close()
        if self.part is not None:
            os.replace(self.part.path, self.sink.spec)
            self.part.release()

    def _abandon(self, writer_free: bool = True) -> None:
        """Error path: close the output without finishing it and remove a part file. A writer
        still in use by a stuck encode thread is left open (closing it would crash); the part
        file goes all the same."""
        if self.writer is not None and writer_free:
            try:
                self.writer.container.close()
            except (av.error.FFmpegError, OSError):
                pass  # the sink already failed; the error being raised says why
        if self.part is not None:
            self.part.path.unlink(missing_ok=True)
            self.part.release()


@contextmanager
def _interrupts_noted(noted: threading.Event) -> Iterator[None]:
    """Ctrl-C, and SIGTERM (systemd, docker stop) like it, end a live run: output closed, not truncated.

    Each is also noted in ``noted``, which the frame loop checks on every frame: a KeyboardInterrupt that
    Python raises while the main thread is inside a callback from C code is printed and dropped there
    ("Exception ignored in ..."), and the recording would go on until the source ends.

    A signal the process was started with ignored stays ignored, as Python itself leaves it: a shell
    starts a script's background job (``vdeblur ... &``) with SIGINT ignored so that the terminal's
    Ctrl-C stops the script, not the recording it started."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        noted.set()
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGINT, signal.SIGTERM)
                if signal.getsignal(sig) is not signal.SIG_IGN}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
