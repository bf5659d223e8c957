"""Blur synthesis: (blurred, sharp) training clips with realistic camera shake from sharp footage.

``render_shake_clip`` (a still image) and ``render_video_clip`` (consecutive video frames) are the
entry points; ``ShakeConfig`` holds every knob. See docs/synthesis.md.
"""

from .camera import CameraConfig
from .clip import BLUR_MODES, ShakeConfig, render_shake_clip, render_video_clip
from .degrade import CompressionConfig, NoiseConfig

__all__ = ["BLUR_MODES", "CameraConfig", "CompressionConfig", "NoiseConfig", "ShakeConfig", "render_shake_clip",
           "render_video_clip"]
