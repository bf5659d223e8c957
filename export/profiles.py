"""Shape profiles for TensorRT builds: parse ``--min/--opt/--max`` and derive every input's range.

Shapes are written ``HxW`` (``360x640``) or in full NCHW (``1x3x360x640``), height first like the
NCHW tensors they describe. They are *video* frame sizes: each is padded up to the model's multiple
(as the engine pads every frame), and each state input's range follows from the padded frame's
through the stride of its level (state H = padded H / stride), because TensorRT needs a range for
every dynamic input and the state must fit the frame it is fed with.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from vdeblur.train.archs.base import padded_size

from .contract import FRAME_INPUT, GraphInfo, state_input_name

Shape = tuple[int, int, int, int]
_SHAPE = re.compile(r"^\d+(x\d+){1,3}$")


@dataclass(frozen=True)
class FrameSize:
    batch: int
    height: int
    width: int

    def __str__(self) -> str:
        return f"{self.height}x{self.width}"


def parse_frame_size(text: str, in_channels: int | None = None) -> FrameSize:
    """``"360x640"`` or ``"1x3x360x640"`` -> FrameSize(1, 360, 640); channels are checked if given."""
    text = text.strip().lower()
    if not _SHAPE.match(text):
        raise ValueError(f"shape {text!r} is not HxW (e.g. 360x640) or NxCxHxW (e.g. 1x3x360x640)")
    parts = [int(p) for p in text.split("x")]
    if len(parts) == 3:
        raise ValueError(f"shape {text!r} has 3 dims; write HxW or NxCxHxW")
    if len(parts) == 4:
        batch, channels, height, width = parts
        if in_channels is not None and channels != in_channels:
            raise ValueError(f"shape {text!r} has {channels} channels; the model takes {in_channels}")
    else:
        batch, (height, width) = 1, parts
    if min(batch, height, width) < 1:
        raise ValueError(f"shape {text!r} has a zero dim")
    return FrameSize(batch, height, width)


@dataclass(frozen=True)
class ShapeProfile:
    """min/opt/max video frame sizes of one TensorRT optimisation profile."""

    min: FrameSize
    opt: FrameSize
    max: FrameSize

    def __post_init__(self) -> None:
        for attr in ("batch", "height", "width"):
            lo, mid, hi = (getattr(s, attr) for s in (self.min, self.opt, self.max))
            if not lo <= mid <= hi:
                raise ValueError(f"profile {attr} must satisfy min <= opt <= max; got {lo}, {mid}, {hi}")

    @property
    def is_static(self) -> bool:
        return self.min == self.opt == self.max

    def to_dict(self) -> dict[str, str]:
        return {k: f"{s.batch}x{s.height}x{s.width}" for k, s in (("min", self.min), ("opt", self.opt), ("max", self.max))}

    @classmethod
    def from_dict(cls, data: dict[str, str]) -> ShapeProfile:
        sizes = []
        for key in ("min", "opt", "max"):
            b, h, w = (int(v) for v in data[key].split("x"))
            sizes.append(FrameSize(b, h, w))
        return cls(*sizes)

    def tag(self) -> str:
        """A file-name fragment: ``360x640-720x1280-1080x1920`` (batch added when not 1)."""
        parts = [str(s) if s.batch == 1 else f"{s.batch}x{s}" for s in (self.min, self.opt, self.max)]
        return "-".join(parts)


def parse_profile(min_text: str, opt_text: str | None, max_text: str | None,
                  in_channels: int | None = None) -> ShapeProfile:
    """The three CLI strings -> a profile; opt and max default to the one before (a static profile
    when only min is given)."""
    lo = parse_frame_size(min_text, in_channels)
    mid = parse_frame_size(opt_text, in_channels) if opt_text else lo
    hi = parse_frame_size(max_text, in_channels) if max_text else mid
    return ShapeProfile(lo, mid, hi)


def input_shapes(info: GraphInfo, size: FrameSize) -> dict[str, Shape]:
    """The NCHW shape of every graph input for one video frame size (padded to the model's multiple)."""
    ph, pw = padded_size(size.height, info.pad_multiple), padded_size(size.width, info.pad_multiple)
    shapes: dict[str, Shape] = {FRAME_INPUT: (size.batch, info.in_channels, ph, pw)}
    for slot in info.state_slots:
        shapes[state_input_name(slot)] = (size.batch, slot.channels, ph // slot.stride, pw // slot.stride)
    return shapes


def profile_shapes(info: GraphInfo, profile: ShapeProfile) -> dict[str, tuple[Shape, Shape, Shape]]:
    """``{input name: (min, opt, max)}`` for the frame and every state input."""
    per_size = [input_shapes(info, s) for s in (profile.min, profile.opt, profile.max)]
    return {name: (per_size[0][name], per_size[1][name], per_size[2][name]) for name in info.input_names}


# What `vdeblur --backend tensorrt` builds for a checkpoint: any video from 64x64 to 4K, tuned for 720p
# (the frame size is not known when the backend is made; other sizes: vdeblur-export tensorrt --min/--max).
DEFAULT_TRT_PROFILE = parse_profile("64x64", "720x1280", "2160x3840")
