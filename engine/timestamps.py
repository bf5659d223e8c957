"""The output's video timestamps: the source's where they are valid, otherwise regenerated from the
frame rate, for the whole file.

Valid means what every muxer accepts and what the frames' order says: every decoded frame has a
pts, and each is later than the one before. Real files break this in a few known ways: AVI has no
presentation times at all (MPEG-4 Part 2 with "packed" B-frames, as DivX/Xvid cameras write it,
decodes to 1, 2, 3, 5, 4, ...: the frames come out in the right order but with their neighbours'
stamps), raw elementary streams and damaged MPEG-TS carry none, concatenated MPEG-TS segments jump
back, and some recorders stamp two frames alike. The decoder always hands frames over in display
order, so the order is kept and only the stamps are replaced, as ffmpeg does for such input:
``start + i / rate`` for frame ``i``, in the stream's time base, starting from the first frame's
own pts. The choice is made once per file, over all its frames (``scan.scan_source`` reads them
before the first frame is deblurred), so variable frame rate survives wherever it is intact and a
file is never half one and half the other.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction

_FALLBACK_RATE = Fraction(25)  # ffmpeg's guess for a stream that states no frame rate


@dataclass(frozen=True)
class Timing:
    """How frame ``i`` is stamped: ``pts(i, source_pts)``; ``reason`` says why stamps were regenerated
    (empty when the source's are kept)."""

    time_base: Fraction
    start: int = 0
    step: Fraction = Fraction(1)  # one frame, in ticks of time_base
    reason: str = ""

    @property
    def regenerated(self) -> bool:
        return bool(self.reason)

    def pts(self, index: int, source: int | None) -> int | None:
        return self.start + round(index * self.step) if self.regenerated else source


def choose_timing(pts: Iterable[int | None], time_base: Fraction, rate: Fraction | None) -> Timing:
    """Keep the source timestamps ``pts`` (decoded frames, display order) if every one is present and
    later than the one before; otherwise regenerate all of them from ``rate`` (frames per second;
    25 when unknown) in ``time_base``, starting at the first frame's pts (0 if it has none).

    A frame shorter than one tick of ``time_base`` is given one tick, so regenerated stamps always
    increase. ``pts`` is read once, in order, holding nothing: a long file costs no memory here.
    """
    first: int | None = None
    previous: int | None = None
    reason = ""
    for i, p in enumerate(pts):
        if i == 0:
            first = p
        if not reason:
            if p is None:
                reason = f"frame {i} has no timestamp"
            elif previous is not None and p <= previous:
                reason = (f"frame {i} repeats the timestamp {as_seconds(p, time_base)}" if p == previous else
                          f"frame {i}'s timestamp goes back from {as_seconds(previous, time_base)} to {as_seconds(p, time_base)}")
        previous = p
    if not reason:
        return Timing(time_base)
    fps = rate if rate and rate > 0 else _FALLBACK_RATE
    step = max(Fraction(1), 1 / (fps * time_base))
    return Timing(time_base, start=first or 0, step=step, reason=reason)


def as_seconds(pts: int, time_base: Fraction) -> str:
    """A timestamp for a message: ``0.417 s``."""
    return f"{float(pts * time_base):.3f} s"
