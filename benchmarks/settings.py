"""What each part of ``vdeblur-bench`` measures, as frozen configs: apart from the measuring code so
that the command line builds its presets and help without loading torch."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

BACKENDS = ("torch-fp32", "torch-fp16", "torch-compiled", "torch-cudagraphs", "onnxruntime", "tensorrt-fp16")


@dataclass(frozen=True)
class LatencyConfig:
    frames: int = 20  # timed steps per repeat
    warmup: int = 3
    repeats: int = 3

    def __post_init__(self) -> None:
        if self.frames < 1 or self.repeats < 1 or self.warmup < 0:
            raise ValueError(f"need frames >= 1, repeats >= 1, warmup >= 0; got {self.frames}, {self.repeats}, {self.warmup}")


@dataclass(frozen=True)
class QualityConfig:
    clips: int = 6
    frames: int = 8  # per clip: enough frames for the recurrent state and the flicker figure to matter
    height: int = 256
    width: int = 256
    gopro: Path | None = None
    gopro_frames: int = 8  # frames per GoPro test sequence (the first ones), to bound CPU time


@dataclass(frozen=True)
class StagesConfig:
    frames: int = 30  # frames of the test video

    def __post_init__(self) -> None:
        if self.frames < 2:
            raise ValueError(f"the stage benchmark needs a video of at least 2 frames; got {self.frames}")
