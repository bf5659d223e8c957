"""``vdeblur sample OUT.mp4``: a short camera-shake clip to try the engine on.

Two shots (scikit-image's bundled coffee and rocket photographs, filmed by the synthetic shaking
camera of ``vdeblur.train.synth``) with a hard cut between them and a quiet 440 Hz audio track, so
the clip also exercises the state reset and the audio remux. Deterministic for a given seed.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from skimage import data

from vdeblur.train.synth import ShakeConfig, render_shake_clip

from .checks import check_output

FPS = 24
HEIGHT, WIDTH = 352, 512  # fits both photos (coffee is 400x600) and vdeblur_fast's multiple of 16
# Clearly visible but realistic shake: 8-20 px of mean motion per exposure at this size.
SAMPLE_SHAKE = ShakeConfig(mode="temporal", blur_px=(8.0, 20.0), compression=None)


def render_sample(frames_per_shot: int = 24, seed: int = 0) -> np.ndarray:
    """(T, H, W, 3) uint8: the blurred frames of both shots, one after the other."""
    shots = [render_shake_clip(photo, frames=frames_per_shot, height=HEIGHT, width=WIDTH, seed=seed + i,
                               config=SAMPLE_SHAKE)[0] for i, photo in enumerate((data.coffee(), data.rocket()))]
    return np.concatenate(shots)


def write_sample(path: str | Path, *, frames_per_shot: int = 24, seed: int = 0, overwrite: bool = False) -> int:
    """Write the sample clip (H.264 + AAC) to ``path``; returns the number of video frames."""
    path = Path(path)
    check_output(path, overwrite)
    frames = render_sample(frames_per_shot, seed)
    with av.open(str(path), mode="w") as out:
        video = out.add_stream("libx264", rate=FPS, options={"crf": "20"})
        video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        audio = out.add_stream("aac", rate=48000, layout="mono")
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, FPS)
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        mux_tone(out, audio, 48000 * len(frames) // FPS, amplitude=0.1)
    return len(frames)


def mux_tone(out: av.container.OutputContainer, audio: av.audio.stream.AudioStream, samples: int,
             amplitude: float) -> None:
    """Encode and mux a 440 Hz mono tone of ``samples`` samples into a 48 kHz ``fltp`` stream, flushed."""
    tone = (amplitude * np.sin(2 * np.pi * 440 * np.arange(samples) / 48000)).astype(np.float32)[None]
    for start in range(0, samples, 1024):
        chunk = av.AudioFrame.from_ndarray(np.ascontiguousarray(tone[:, start:start + 1024]), format="fltp", layout="mono")
        chunk.sample_rate, chunk.pts = 48000, start
        out.mux(audio.encode(chunk))
    out.mux(audio.encode(None))
