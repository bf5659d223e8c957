"""An account of the packets copied into an output (audio, subtitles), checked against what the file
holds once it is closed, so that a packet lost on the way is said, never silently missing.

A muxer may refuse a packet with an error (counted here with the error's words) or drop it without
one: FFmpeg's MP4 muxer silently leaves out AC-3 packets it cannot parse at the start of a stream, as
a damaged first packet of an AVI. Reading the closed file back (packets only, nothing decoded) finds
those: each stream's packets are counted, and where some are missing they are located by comparing
sizes in order (a muxer may strip headers from every packet, ADTS from AAC into MP4, so a size that
differs throughout only says how many).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import av


class CopyLedger:
    def __init__(self, container_format: str) -> None:
        self.format = container_format
        self.sent: dict[int, list[tuple[int, float]]] = defaultdict(list)  # output stream -> (size, seconds)
        self.kinds: dict[int, str] = {}
        self.refused: dict[int, list[tuple[float, str]]] = defaultdict(list)  # -> (seconds, why)

    def wrote(self, index: int, kind: str, size: int, seconds: float) -> None:
        self.kinds[index] = kind
        self.sent[index].append((size, seconds))

    def refuse(self, index: int, kind: str, seconds: float, why: str) -> None:
        """``index``: the output stream's, or any other number for a stream the output could not hold."""
        self.kinds[index] = kind
        self.refused[index].append((seconds, why))

    def losses(self, written: Path) -> str:
        """One phrase per stream that lost packets ("" when none did), from the file at ``written``."""
        held: dict[int, list[int]] = defaultdict(list)
        if self.sent:
            with av.open(str(written)) as container:
                for packet in container.demux():
                    if packet.size and packet.stream.index in self.sent:
                        held[packet.stream.index].append(packet.size)
        phrases = []
        for index in sorted(self.kinds):
            lost = len(self.sent[index]) - len(held[index])
            refused = self.refused[index]
            total = len(self.sent[index]) + len(refused)
            if refused:
                phrases.append(f"{len(refused)} of {total} {self.kinds[index]} packets not written: the {self.format} "
                               f"muxer refused them ({refused[0][1]}; the first at {refused[0][0]:.3f} s)")
            if lost > 0:
                where = _missing(self.sent[index], held[index])
                first = f" (the first at {where[0]:.3f} s)" if len(where) == lost else ""
                phrases.append(f"{lost} of {total} {self.kinds[index]} packets left out by the {self.format} "
                               f"muxer, which drops packets it cannot parse{first}")
        return "; ".join(phrases)


def _missing(sent: list[tuple[int, float]], held: list[int]) -> list[float]:
    """Times of the ``sent`` packets absent from ``held`` (the sizes the file holds, in order); a muxer
    drops packets but never adds or reorders them within a stream."""
    missing, j = [], 0
    for size, seconds in sent:
        if j < len(held) and held[j] == size:
            j += 1
        else:
            missing.append(seconds)
    return missing
