"""Pass 1 of ``--adapt``: one decode of the clip that scores every frame's sharpness and keeps the
sharpest frame of each stretch of it, at full resolution, to make training pairs from.

Memory stays bounded however long the clip: a score per frame and, per segment, its sharpest frame
with the few frames around it (the real frames the adapted weights are checked on).
Segments spread the picks over the clip, so one steady second cannot supply every pair (a clip's
look changes along it: lighting, scene, zoom).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..video_io import DecodedFrame, demux, open_input
from .sharpness import gray_thumbnail, luma, noise_sigma, sharpness


@dataclass(frozen=True, eq=False)
class Candidate:
    """The sharpest frame of one segment of the clip."""

    index: int
    score: float
    rgb: np.ndarray  # (H, W, 3) uint8, full resolution
    # The frames around it as decoded, itself included, in order (up to ``neighbours`` either side):
    # the same moment of the video blurred as the clip blurs it.
    window: list[np.ndarray] = field(default_factory=list)
    at: int = 0  # where the frame itself is in ``window``


@dataclass(frozen=True, eq=False)
class ClipSurvey:
    scores: np.ndarray  # (N,) sharpness of every frame, higher = sharper
    candidates: tuple[Candidate, ...]  # sharpest first
    noise: float  # sensor-noise std of the frames, in [0, 1] units of 8-bit luma
    height: int
    width: int

    @property
    def frames(self) -> int:
        return len(self.scores)


def survey_frames(frames: Iterable[np.ndarray], total: int, segments: int = 8, neighbours: int = 2) -> ClipSurvey:
    """Score ``total`` frames ((H, W, 3) uint8 each, in order) and keep each segment's sharpest, with
    up to ``neighbours`` frames either side of it."""
    if total < 1:
        raise ValueError(f"a clip to adapt to needs at least one frame; got {total}")
    segments = max(1, min(segments, total))
    scores: list[float] = []
    best: dict[int, Candidate] = {}
    recent: deque[np.ndarray] = deque(maxlen=neighbours)  # the frames before the current one
    filling: list[Candidate] = []  # segment bests still collecting the frames after them
    for index, frame in enumerate(frames):
        rgb = frame.copy()  # kept past this step: a caller may reuse its buffer for the next frame
        for c in filling:
            c.window.append(rgb)
        filling = [c for c in filling if len(c.window) - c.at <= neighbours]
        score = sharpness(gray_thumbnail(rgb))
        scores.append(score)
        segment = min(index * segments // total, segments - 1)
        if segment not in best or score > best[segment].score:
            if segment in best and best[segment] in filling:
                filling.remove(best[segment])
            best[segment] = Candidate(index, score, rgb, [*recent, rgb], len(recent))
            if neighbours > 0:
                filling.append(best[segment])
        recent.append(rgb)
    if not scores:
        raise ValueError("the clip to adapt to has no frames")
    candidates = tuple(sorted(best.values(), key=lambda c: -c.score))
    # Texture inflates a noise estimate, never deflates it: the lowest over the candidates is the
    # one closest to the sensor's.
    noise = min(noise_sigma(luma(c.rgb)) for c in candidates)
    h, w = candidates[0].rgb.shape[:2]
    return ClipSurvey(np.asarray(scores, dtype=np.float64), candidates, float(noise), h, w)


def survey_video(path: str | Path, total: int, segments: int = 8, neighbours: int = 2) -> ClipSurvey:
    """``survey_frames`` over a video file's decoded frames (``total``: the count a scan found)."""
    with open_input(path) as container:
        decoded = (item.rgb for item in demux(container, path) if isinstance(item, DecodedFrame))
        return survey_frames(decoded, total, segments, neighbours)

