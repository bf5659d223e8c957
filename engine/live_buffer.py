"""The rules of live running, kept free of I/O so that tests can drive them with a fake clock.

``FrameBuffer`` joins capture to inference. Live (``drop=True``), ``put`` never waits: capture
must keep reading or the device/socket loses data where nobody counts it. ``take`` hands out the
oldest frame that can still be finished within the latency bound and drops (counts) the older
ones, but never the newest: a model slower than the bound still shows the latest picture rather
than none. The bound is a ceiling, not a target: a queue that does not drain (``STANDING_TAKES``
takes in a row found a newer frame already waiting: inference is slower than the source, not
just hiccuping) is cut to its newest frame, so a slow model runs at the lowest latency it can
instead of at the bound. Frames leave in capture order; none is reordered. Not live
(``drop=False``: files and pipes, whose writer waits for us), ``put`` waits for room and every
frame is kept.

``Retimer`` turns source timestamps into output timestamps that start at 0 and always increase,
whatever the source does (a capture clock that starts at hours, an MPEG-TS clock that wraps).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

Clock = Callable[[], float]
STANDING_TAKES = 5  # a hiccup (one slow frame, a burst of packets) drains within a few frames


@dataclass(frozen=True)
class Captured:
    rgb: np.ndarray  # (H, W, 3) uint8
    pts: int | None
    captured_s: float  # clock() when the decoder handed the frame over
    index: int  # capture order, from 0


class FrameBuffer:
    def __init__(self, capacity: int, *, drop: bool, clock: Clock = time.perf_counter) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1; got {capacity}")
        self.capacity, self.drop, self.clock = capacity, drop, clock
        self.dropped = 0
        self.end_reason: str | None = None  # set by finish(): why no more frames will come
        self._frames: deque[Captured] = deque()
        self._gap = False  # frames were lost since the last take (drops or a source-side gap)
        self._backlogged = 0  # takes in a row that found a newer frame waiting
        self._cond = threading.Condition()

    def put(self, frame: Captured, stop: threading.Event | None = None) -> None:
        with self._cond:
            if self.drop:
                if len(self._frames) >= self.capacity:  # inference stalled (e.g. a first-frame compile)
                    self._frames.popleft()
                    self._lose(1)
            else:
                while len(self._frames) >= self.capacity and not (stop is not None and stop.is_set()):
                    self._cond.wait(0.1)
            self._frames.append(frame)
            self._cond.notify_all()

    def mark_gap(self) -> None:
        """The source lost frames before they reached us (a packet that did not decode)."""
        with self._cond:
            self._gap = True

    def finish(self, reason: str) -> None:
        with self._cond:
            if self.end_reason is None:
                self.end_reason = reason
            self._cond.notify_all()

    def take(self, bound_s: float, remaining_s: float, wait_s: float = 0.1) -> tuple[Captured | None, bool]:
        """(next frame, whether frames were lost just before it), or (None, _) after ``wait_s``
        without a frame. Live, a frame is dropped when ``age + remaining_s > bound_s`` (it could
        not be encoded in time) unless it is the newest."""
        with self._cond:
            if not self._frames and self.end_reason is None:
                self._cond.wait(wait_s)
            if not self._frames:
                return None, False
            self._backlogged = self._backlogged + 1 if len(self._frames) > 1 else 0
            if self.drop:
                now = self.clock()
                standing = self._backlogged >= STANDING_TAKES
                while len(self._frames) > 1 and (standing or now - self._frames[0].captured_s + remaining_s > bound_s):
                    self._frames.popleft()
                    self._lose(1)
            frame = self._frames.popleft()
            gap, self._gap = self._gap, False
            self._cond.notify_all()
            return frame, gap

    @property
    def ended(self) -> bool:
        """No frame is left and none will come."""
        with self._cond:
            return self.end_reason is not None and not self._frames

    def discard(self) -> int:
        """Drop what is still waiting (stopping); returns how many."""
        with self._cond:
            n = len(self._frames)
            self._frames.clear()
            self._lose(n)
            self._cond.notify_all()
            return n

    def _lose(self, n: int) -> None:
        self.dropped += n
        self._gap = self._gap or n > 0


class Retimer:
    """Source pts -> output pts in the same time base: from 0, strictly increasing, gaps kept (a
    dropped frame leaves its time to the previous one, so playback keeps real time)."""

    def __init__(self, time_base: Fraction, rate: Fraction | None) -> None:
        self.time_base = time_base
        self.step = max(1, round(1 / (rate * time_base))) if rate else 1  # one frame, in ticks
        self._offset: int | None = None
        self._last: int | None = None

    def __call__(self, pts: int | None, captured_s: float) -> int:
        if pts is None:  # no source clock: use the capture clock
            pts = round(captured_s / self.time_base)
        if self._offset is None:
            self._offset = pts
        out = pts - self._offset
        if self._last is not None and out <= self._last:  # the source clock jumped back: continue from here
            out = self._last + self.step
            self._offset = pts - out
        self._last = out
        return out


class Ema:
    """Running estimate of a duration (seconds) that follows changes within a few frames.

    ``value`` is the mean plus twice the mean deviation (as TCP estimates its retransmission
    timeout): the mean alone is exceeded by every other frame, which would breach the bound."""

    def __init__(self, weight: float = 0.2) -> None:
        self.weight, self.mean, self.deviation = weight, 0.0, 0.0
        self._seen = False

    @property
    def value(self) -> float:
        return self.mean + 2 * self.deviation

    def update(self, sample: float) -> None:
        if not self._seen:
            self.mean, self._seen = sample, True
            return
        self.deviation += self.weight * (abs(sample - self.mean) - self.deviation)
        self.mean += self.weight * (sample - self.mean)


def percentile_ms(samples: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(samples) * 1000, q)) if samples else float("nan")
