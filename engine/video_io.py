"""PyAV input and output: decode video frames with their timestamps, encode deblurred frames with
the same timestamps, and remux every other stream (audio, subtitles) untouched.

Faithfulness rules: output frame pts/time base come from the source frame (never regenerated from
the frame index, which breaks variable frame rate), colour range/space/primaries/transfer and the
display rotation are copied, and non-video packets are muxed as they were demuxed, without
re-encoding. Errors are raised as ``VideoError`` naming the file and the problem.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from vdeblur.console import reach

from .copy_ledger import CopyLedger
from .packet_timing import PacketClock, PacketTiming

if TYPE_CHECKING:  # the model side (torch) loads only once a model runs
    from vdeblur.train.motion import GlobalMotion


class VideoError(ValueError):
    """An input or output video that cannot be used; the message says why."""


@dataclass(frozen=True)
class SourceInfo:
    width: int
    height: int
    frames: int  # container's count; 0 when the container does not say
    time_base: Fraction
    rate: Fraction | None
    pix_fmt: str
    codec: str


@dataclass(frozen=True)
class DecodedFrame:
    rgb: np.ndarray  # (H, W, 3) uint8
    pts: int | None
    time_base: Fraction
    index: int
    # The global motion back to the frame decoded before, for models that take their previous frame aligned
    # (estimated in the decode stage, where the frames are on the host anyway); None: not estimated.
    motion: GlobalMotion | None = None


def open_input(path: str | Path) -> av.container.InputContainer:
    """Open ``path`` for reading, with one-line errors for the usual ways a file is not a video."""
    path = Path(path)
    if not path.exists():
        raise VideoError(f"input {path} does not exist")
    if path.is_dir():
        raise VideoError(f"input {path} is a directory; give a video file")
    if path.stat().st_size == 0:
        raise VideoError(f"input {path} is empty (0 bytes)")
    try:
        container = av.open(str(path), mode="r")
    except av.error.FFmpegError as e:
        raise VideoError(f"input {path} is not a readable video ({e.strerror or e})") from None
    if not container.streams.video:
        kinds = ", ".join(sorted({s.type for s in container.streams})) or "no streams"
        container.close()
        raise VideoError(f"input {path} has no video stream (it has: {kinds})")
    return container


def peek_rotation(path: str | Path) -> int:
    """Display rotation of the first frame (PyAV exposes it on frames, not on the stream)."""
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            return int(getattr(frame, "rotation", 0) or 0)
    return 0


def source_info(container: av.container.InputContainer) -> SourceInfo:
    vs = container.streams.video[0]
    cc = vs.codec_context
    return SourceInfo(cc.width, cc.height, vs.frames, vs.time_base, vs.average_rate or vs.guessed_rate,
                      cc.pix_fmt or "yuv420p", cc.name)


def demux(container: av.container.InputContainer, path: str | Path) -> Iterator[DecodedFrame | av.Packet]:
    """Yield decoded video frames and, in demux order, the packets of every other stream.

    Decode errors are raised (a truncated file must fail, not silently lose its tail).
    """
    video = container.streams.video[0]
    video.thread_type = "AUTO"  # frame + slice threads inside FFmpeg's decoder
    # One reformatter per decode loop: it caches an swscale context, which is not safe to share
    # between threads (the encode thread's, or other files decoding at once in deblur_many).
    reformat = VideoReformatter()
    index = 0
    try:
        for packet in container.demux():
            if packet.stream.index != video.index:
                if packet.size:  # flush packets carry nothing to copy
                    yield packet
                continue
            for frame in packet.decode():
                yield DecodedFrame(to_rgb(frame, reformat), frame.pts, frame.time_base or video.time_base, index)
                index += 1
    except av.error.FFmpegError as e:
        raise VideoError(f"input {path} could not be decoded after {index} frames ({e.strerror or e})") from None
    if index == 0:
        raise VideoError(f"input {path} has a video stream but no decodable frame")


_FULL_RANGE = 2  # AVCOL_RANGE_JPEG


def _is_full_range(frame_or_ctx: object, pix_fmt: str) -> bool:
    return pix_fmt.startswith("yuvj") or getattr(frame_or_ctx, "color_range", 0) == _FULL_RANGE


def to_rgb(frame: av.VideoFrame, reformat: VideoReformatter) -> np.ndarray:
    # The source range is passed explicitly: a missing range counts as limited, which would crush
    # the blacks and clip the whites of full-range (JPEG-range) input.
    rng = "JPEG" if _is_full_range(frame, frame.format.name) else "MPEG"
    return reformat.reformat(frame, format="rgb24", src_color_range=rng).to_ndarray()


class VideoWriter:
    """Encode RGB frames into ``path`` with the source's timing, colour and rotation, and remux
    the source's other streams unchanged. Use as a context manager; ``close`` flushes the encoder.

    ``path`` may also be an FFmpeg URL (``udp://...``, ``pipe:1``) when ``format`` names the
    container; ``codec_options`` are extra encoder options (e.g. ``tune``, ``g``); ``copy_streams``
    False writes the video stream alone (live sources, whose other streams are not retimed);
    ``packet_timing`` (from ``scan.scan_source``) says which copied streams get rebuilt timestamps.
    A copied packet the muxer refuses is left out and counted, not fatal: ``copy_losses`` says, once
    the writer is closed, how many each stream lost and why."""

    def __init__(self, path: str | Path, source: av.container.InputContainer, *, codec: str = "libx264",
                 crf: int | None = 18, preset: str | None = "medium", pix_fmt: str | None = None,
                 format_from: str | Path | None = None, rotation: int = 0, format: str | None = None,
                 codec_options: Mapping[str, str] | None = None, copy_streams: bool = True,
                 packet_timing: Mapping[int, PacketTiming] | None = None) -> None:
        from .pix_fmts import output_pix_fmt  # here: pix_fmts builds on this module

        self.path = Path(path)
        self.name = Path(format_from or path)  # what errors call the output: the user's name, not a part file's
        src = source.streams.video[0]
        check_encoder(codec)
        # The container format comes from the final name's extension (``format_from``) when ``path``
        # is a temporary name.
        fmt = format or _format_for(Path(format_from or self.path))
        try:  # str(path), not str(self.path): Path folds the "//" of a URL
            self.container = av.open(str(path), mode="w", format=fmt)
        except (av.error.FFmpegError, ValueError) as e:
            raise VideoError(f"cannot write {self.path} ({e})") from None
        options = {}
        if crf is not None and codec in ("libx264", "libx265", "libvpx-vp9", "libaom-av1", "libsvtav1"):
            options["crf"] = str(crf)
        if preset is not None and codec in ("libx264", "libx265"):
            options["preset"] = preset
        options.update(codec_options or {})
        rate = src.average_rate or src.guessed_rate
        self.video = self.container.add_stream(codec, rate=rate, options=options)
        cc = src.codec_context
        self.video.width, self.video.height = cc.width, cc.height
        self.video.pix_fmt = output_pix_fmt(codec, pix_fmt)[0] if pix_fmt else _output_pix_fmt(cc.pix_fmt or "yuv420p", self.video.codec_context.codec,
                                                         odd=bool(cc.width % 2 or cc.height % 2))
        # Both time bases: with only the stream's set, libx264 encodes in 1/rate and regenerates
        # evenly spaced timestamps, losing variable frame rate.
        self.video.time_base = src.time_base
        self.video.codec_context.time_base = src.time_base
        for attr in ("color_range", "colorspace", "color_primaries", "color_trc"):
            setattr(self.video.codec_context, attr, getattr(cc, attr))
        self.full_range = _is_full_range(cc, cc.pix_fmt or "")
        self.copies: dict[int, av.stream.Stream] = {}
        self._clock = PacketClock(packet_timing or {})
        self._ledger = CopyLedger(fmt)
        self._unfit: dict[int, str] = {}  # input streams the container cannot hold at all -> why
        for stream in source.streams:
            if copy_streams and stream.index != src.index and stream.type in ("audio", "subtitle"):
                try:
                    out = self.container.add_stream_from_template(stream)
                except ValueError:  # e.g. SubRip into MP4: its packets are counted as not written, and why
                    self._unfit[stream.index] = f"{fmt} cannot hold {stream.codec_context.name} {stream.type}"
                    continue
                out.time_base = stream.time_base  # PyAV #1953: not copied by the template
                self.copies[stream.index] = out
        if rotation:
            # Before anything is muxed: the first copied audio packet writes the header, and a
            # display matrix set after that is lost.
            self.video.set_display_rotation(rotation)
        self._reformat = VideoReformatter()

    def write_frame(self, rgb: np.ndarray, pts: int | None, time_base: Fraction) -> list[int | None]:
        """Encode one frame; returns the pts of the frames whose packets were just written (an
        encoder with look-ahead returns earlier frames', or none yet)."""
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
        frame = self._reformat.reformat(frame, format=self.video.pix_fmt,
                                   dst_colorspace=self.video.codec_context.colorspace or None,
                                   dst_color_range="JPEG" if self.full_range else "MPEG")
        frame.pts, frame.time_base = pts, time_base
        at = f"the frame at {float(pts * time_base):.3f} s" if pts is not None else "a frame without a timestamp"
        with self._errors_named(at):
            packets = self.video.encode(frame)
            written = [p.pts for p in packets]  # read before mux, which may rescale them to the muxer's time base
            self.container.mux(packets)
        return written

    def copy_packet(self, packet: av.Packet) -> None:
        out = self.copies.get(packet.stream.index)
        if out is None:
            if packet.stream.index in self._unfit:  # keyed apart from the output's own stream indices
                self._ledger.refuse(-1 - packet.stream.index, packet.stream.type, _seconds(packet),
                                    self._unfit[packet.stream.index])
            return
        self._clock.stamp(packet, packet.stream.index)
        seconds, size = _seconds(packet), packet.size
        packet.stream = out
        try:
            self.container.mux(packet)
        except (av.error.ArgumentError, av.error.InvalidDataError) as e:  # this packet, not the output, is the problem
            self._ledger.refuse(out.index, out.type, seconds, e.strerror or type(e).__name__)
            return
        except av.error.FFmpegError as e:
            raise VideoError(f"output {self.name}: the {out.type} packet at {seconds:.3f} s could not be written "
                             f"({e.strerror or type(e).__name__})") from None
        self._ledger.wrote(out.index, out.type, size, seconds)

    def copy_losses(self) -> str:
        """After ``close``: the copied packets the output lacks, per stream and why ("" when none)."""
        return self._ledger.losses(self.path) if self.copies or self._unfit else ""

    def close(self) -> None:
        reach("flush")
        try:
            with self._errors_named("the encoder's last frames"):
                self.container.mux(self.video.encode(None))  # flush: the encoder holds delayed frames
        finally:
            self.container.close()

    @contextmanager
    def _errors_named(self, what: str) -> Iterator[None]:
        """FFmpeg's errors name the file they were writing, a hidden part file; say the output instead."""
        try:
            yield
        except BrokenPipeError:
            raise  # the reader of a pipe output went away: the live loop ends on it, cleanly
        except av.error.FFmpegError as e:
            raise VideoError(f"output {self.name}: {what} could not be written ({e.strerror or type(e).__name__})") from None

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self.close()
        else:
            self.container.close()


def _seconds(packet: av.Packet) -> float:
    """A packet's time, for messages."""
    stamp = packet.dts if packet.dts is not None else packet.pts
    return float((stamp or 0) * (packet.time_base or 0))


def check_encoder(codec: str) -> None:
    try:
        av.codec.Codec(codec, "w")
    except (av.error.FFmpegError, ValueError):
        raise VideoError(f"video codec {codec!r} is not available for encoding; try libx264, libx265, mpeg4 or ffv1") from None


_FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm", ".avi": "avi",
            ".ts": "mpegts"}


def _format_for(path: Path) -> str:
    fmt = _FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise VideoError(f"output {path}: unknown container {path.suffix!r}; allowed: {', '.join(sorted(_FORMATS))}")
    return fmt


def _output_pix_fmt(source: str, codec: av.codec.Codec, odd: bool = False) -> str:
    """Keep 10-bit input 10-bit where the encoder can; otherwise 8-bit 4:2:0 (plays everywhere).

    4:2:0 cannot hold an odd width or height (chroma is subsampled by 2), so odd-sized frames get
    4:4:4 instead of being cropped or padded.
    """
    supported = {f.name for f in (codec.video_formats or [])}
    deep = "10le" in source or "10be" in source
    for fmt in ([] if not deep else ["yuv444p10le"] if odd else ["yuv420p10le"]) + (["yuv444p"] if odd else ["yuv420p"]):
        if fmt in supported or not supported:
            return fmt
    return sorted(supported)[0]
