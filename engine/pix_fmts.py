"""Which output pixel formats an encoder can really write, decided before any work.

An encoder's list of formats is a promise that does not always hold: FFmpeg's ffv1 lists float
formats it opens only in experimental mode, libx265 lists alpha formats its library refuses. So a
format is accepted only after a tiny encoder of that format was opened and fed one frame converted
from RGB the way the writer converts every frame (about a millisecond a format).

8-bit RGB has several memory layouts holding the same samples (planar gbrp, packed rgb24/bgr24,
padded bgr0...). An encoder takes some of them only (ffv1 stores 8-bit RGB as bgr0, libx264rgb as
rgb24): asked for another layout of the same samples, the writer uses the one the encoder takes,
which is just as lossless, and says so.
"""

from __future__ import annotations

from fractions import Fraction
from functools import cache
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from .video_io import VideoError, _format_for, check_encoder

# Layouts of the same 8-bit R, G and B samples (the padding byte of bgr0 and friends holds nothing).
_RGB8 = ("gbrp", "rgb24", "bgr24", "bgr0", "rgb0", "0rgb", "0bgr")


@cache
def can_write(codec: str, pix_fmt: str) -> bool:
    """True when ``codec`` opens with ``pix_fmt`` and encodes an RGB frame converted to it."""
    try:
        ctx = av.codec.CodecContext.create(codec, "w")
        ctx.width, ctx.height, ctx.pix_fmt = 64, 48, pix_fmt
        ctx.time_base, ctx.framerate = Fraction(1, 25), Fraction(25)
        ctx.open()
        rgb = av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="rgb24")
        frame = VideoReformatter().reformat(rgb, format=pix_fmt)
        frame.pts = 0
        ctx.encode(frame)
        ctx.encode(None)
    except (av.error.FFmpegError, ValueError, TypeError):
        return False
    return True


def listed_formats(codec: str) -> list[str]:
    """The formats ``codec``'s encoder lists, in its order (empty when it lists none)."""
    return [f.name for f in (av.codec.Codec(codec, "w").video_formats or [])]


def writable_formats(codec: str) -> list[str]:
    return [f for f in listed_formats(codec) if can_write(codec, f)]


def output_pix_fmt(codec: str, requested: str) -> tuple[str, str | None]:
    """(the format to write for ``--pix-fmt requested``, a line saying why it differs, or None).

    Raises ``VideoError`` naming the formats that work when ``requested`` cannot be written."""
    listed = listed_formats(codec)
    if (requested in listed or not listed) and can_write(codec, requested):
        return requested, None
    if requested in _RGB8:
        same = [f for f in listed if f in _RGB8 and can_write(codec, f)]
        if same:
            return same[0], (f"{codec} stores 8-bit RGB as {same[0]}, not {requested}; writing {same[0]}, "
                             f"the same samples (lossless)")
    works = writable_formats(codec)
    raise VideoError(f"--pix-fmt {requested} cannot be written by {codec}; formats that work: {', '.join(works)}")


def check_encoding(codec: str, pix_fmt: str | None, output: str | Path | None) -> str | None:
    """Refuse an encoder, an output container or a ``--pix-fmt`` that cannot be written, before any
    work; returns the line to show when another layout of the asked-for samples is written."""
    check_encoder(codec)
    if output is not None:
        _format_for(Path(output))
    return output_pix_fmt(codec, pix_fmt)[1] if pix_fmt else None
