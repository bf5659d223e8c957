"""A first pass over an input, before any frame is deblurred: how many frames decode, which packets
do not, the timestamps to write (``timestamps.choose_timing``), and whether the streams copied
unchanged (audio, subtitles) can be muxed as they are.

It decodes the video without converting it to RGB and holds nothing per frame, so a long file costs
time, not memory: 270 frames of 720x528 MPEG-4 in 0.10 s on this project's 2-core CPU (2600
frames/s, measured), where the CPU models deblur a few frames/s. Next to a GPU model running
hundreds of frames/s it would be a visible share of the run.

When the output counts as complete, and so the run may succeed:
- every video packet decoded. A packet the decoder rejects is a lost frame; the scan goes on to the
  end, counts them all and the run stops with one line saying how many and where the first one is,
  before any work, and writes nothing. Damage the decoder repairs itself (H.264 error concealment)
  gives a frame for every packet and counts as decoded;
The copied streams (audio, subtitles) are watched on the way: a stream whose packets lack timestamps
or repeat or go back has its timestamps rebuilt from the packet durations (``packet_timing``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import av

from .packet_timing import PacketChecker, PacketTiming
from .timestamps import Timing, as_seconds, choose_timing
from .video_io import VideoError, open_input


@dataclass(frozen=True)
class SourceScan:
    frames: int  # decoded frames
    lost: int  # video packets that did not decode
    first_lost: str  # where the first one was ("video packet 12 (0.500 s)"); empty when none
    timing: Timing
    packet_timing: dict[int, PacketTiming] = field(default_factory=dict)  # copied streams, by input index

    def problem(self) -> str:
        """Why the output could not be complete; empty when it can."""
        if not self.lost:
            return ""
        return (f"{self.lost} video frame(s) could not be decoded (corrupt data, first in {self.first_lost}; "
                f"{self.frames} decoded); only complete outputs are written")


def scan_source(path: str | Path) -> SourceScan:
    """Read ``path`` once (see the module's docstring)."""
    with open_input(path) as container:
        video = container.streams.video[0]
        # Slice threads only: frame threads report a packet's decode error a few packets later,
        # which would name the wrong place in the message.
        video.thread_type = "SLICE"
        counts = {"frames": 0, "lost": 0}
        first_lost: list[str] = []
        copied = {s.index: PacketChecker(s) for s in container.streams if s.type in ("audio", "subtitle")}

        def frame_pts() -> Iterator[int | None]:
            for i, packet in enumerate(_packets(container, path, copied)):
                try:
                    frames = packet.decode()
                except av.error.FFmpegError:
                    counts["lost"] += 1
                    if not first_lost:
                        first_lost.append(_where(i, packet))
                    continue
                for frame in frames:
                    counts["frames"] += 1
                    yield frame.pts

        timing = choose_timing(frame_pts(), video.time_base, video.average_rate or video.guessed_rate)
    return SourceScan(counts["frames"], counts["lost"], "".join(first_lost), timing,
                      {i: checker.timing() for i, checker in copied.items()})


def _packets(container: av.container.InputContainer, path: str | Path,
             copied: dict[int, PacketChecker]) -> Iterator[av.Packet]:
    """The video packets (the flush included); the copied streams' packets are shown to their checker."""
    video = container.streams.video[0]
    try:
        for packet in container.demux():
            if packet.stream.index == video.index:
                yield packet
            elif packet.size and packet.stream.index in copied:  # size 0: a flush packet, nothing to copy
                copied[packet.stream.index].see(packet)
    except av.error.FFmpegError as e:
        raise VideoError(f"input {path} could not be read to the end ({e.strerror or e})") from None


def _where(index: int, packet: av.Packet) -> str:
    """Packets are counted in file order, which is not display order where frames are reordered."""
    stamp = packet.pts if packet.pts is not None else packet.dts
    return f"video packet {index}" + (f" ({as_seconds(stamp, packet.time_base)})" if stamp is not None else "")
