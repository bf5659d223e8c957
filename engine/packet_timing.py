"""Timestamps of the streams copied packet for packet (audio, subtitles): the source's where they
are valid, otherwise rebuilt from the packets' durations, per stream, for the whole file.

Valid means what every muxer accepts: each packet has a timestamp later than the one before. AVI
often stores audio without any (every packet demuxes at 0), a recorder may stamp two packets alike,
and concatenated MPEG-TS segments jump back. Matroska takes such packets as they are; MP4 and
MPEG-TS refuse them. The bytes are never touched: only the stamps are rebuilt, as a clock that starts
at the first packet's own timestamp and advances by each packet's duration (or, where a packet states
none, by the stream's frame length: one codec frame of samples at the sample rate). As for video
(``timestamps``), the choice is made once per stream over all its packets (``scan.scan_source``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction

import av

from .timestamps import as_seconds


@dataclass(frozen=True)
class PacketTiming:
    """How the packets of one copied stream are stamped; ``reason`` is empty when their own stamps are
    kept, else says why they are rebuilt."""

    kind: str  # "audio" or "subtitle": for messages
    reason: str = ""
    start: int = 0  # the first packet's stamp, in the stream's time base
    step: int = 1  # ticks a packet without a duration lasts

    def line(self, source: str) -> str:
        return f"{source}: the {self.kind} stream's {self.reason}; its timestamps rebuilt from the packet durations"


class PacketChecker:
    """Watches a stream's packets in demux order (``see``); ``timing()`` is the decision."""

    def __init__(self, stream: av.stream.Stream) -> None:
        # What the decision needs from the stream, read now: it must not outlive its container.
        self.kind, self.time_base, self.step = stream.type, stream.time_base, _frame_ticks(stream)
        self.count, self.reason = 0, ""
        self.start: int | None = None
        self.previous: int | None = None

    def see(self, packet: av.Packet) -> None:
        stamp = packet.dts if packet.dts is not None else packet.pts
        if self.count == 0:
            self.start = stamp
        if not self.reason:
            tb = packet.time_base or self.time_base
            if stamp is None:
                self.reason = f"packet {self.count} has no timestamp"
            elif self.previous is not None and stamp <= self.previous:
                self.reason = (f"packet {self.count} repeats the timestamp {as_seconds(stamp, tb)}" if stamp == self.previous
                               else f"timestamps go back from {as_seconds(self.previous, tb)} to {as_seconds(stamp, tb)} "
                                    f"at packet {self.count}")
        self.previous = stamp if stamp is not None else self.previous
        self.count += 1

    def timing(self) -> PacketTiming:
        if not self.reason:
            return PacketTiming(self.kind)
        return PacketTiming(self.kind, self.reason, self.start or 0, self.step)


def _frame_ticks(stream: av.stream.Stream) -> int:
    """One codec frame in ticks of the stream's time base (1 where the stream does not say)."""
    cc = stream.codec_context
    rate, samples = getattr(cc, "sample_rate", 0), getattr(cc, "frame_size", 0)
    if not (rate and samples and stream.time_base):
        return 1
    return max(1, round(Fraction(samples, rate) / stream.time_base))


class PacketClock:
    """Stamps the packets of streams whose timing is rebuilt (``timings`` keyed by input stream index)."""

    def __init__(self, timings: Mapping[int, PacketTiming]) -> None:
        self.timings = {i: t for i, t in timings.items() if t.reason}
        self.next = {i: t.start for i, t in self.timings.items()}

    def stamp(self, packet: av.Packet, index: int) -> None:
        timing = self.timings.get(index)
        if timing is None:
            return
        packet.pts = packet.dts = self.next[index]
        self.next[index] += packet.duration if packet.duration and packet.duration > 0 else timing.step
