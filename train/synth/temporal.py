"""GoPro-style blur: average many sharp sub-frames along the camera path, in linear light.

This is how the GoPro dataset was made (Nah et al. 2017: 7-13 frames of 240 fps video averaged),
except that the sub-frames are views along a synthetic camera path (``camera.py``) and, for a
video source, also consecutive source frames, so real scene motion blurs as well. Averaging is
done in linear light because that is what a sensor integrates; averaging sRGB values gives blur
whose highlights are too dark. The sharp target is the middle sub-frame, so the blurred frame
and its target are aligned at mid-exposure.

Enough sub-frames are rendered that consecutive views move by at most ``max_step_px``: fewer
would leave visible ghost copies instead of a continuous streak.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from .camera import CameraPath
from .objects import Layer, composite, subframes_for


def subframe_count(length_px: float, max_step_px: float, max_count: int, at_least: int = 1) -> int:
    """Odd number of sub-frames so that a path of ``length_px`` moves <= ``max_step_px`` between views."""
    if max_step_px <= 0:
        raise ValueError(f"max_step_px must be > 0; got {max_step_px}")
    n = max(int(np.ceil(length_px / max_step_px)) + 1, at_least, 1)
    n = min(n, max_count)
    return n if n % 2 else n + 1  # odd: the middle view exists and is the sharp target


def warp_view(linear: np.ndarray, homography: np.ndarray, height: int, width: int, *, sharp: bool = False) -> np.ndarray:
    """(Hs, Ws, 3) float32 source -> (height, width, 3) view through ``homography`` (output -> source px).

    The sharp target is resampled bicubically: bilinear interpolation at half-pixel shifts is itself a
    [0.5, 0.5] blur, which would teach the model a soft target. Sub-frames inside the average do not
    need it, the average hides it, and bilinear is twice as fast.
    """
    flags = (cv2.INTER_CUBIC if sharp else cv2.INTER_LINEAR) | cv2.WARP_INVERSE_MAP
    # Reflection keeps natural statistics where the camera looks past the source's edge.
    return cv2.warpPerspective(linear, homography, (width, height), flags=flags, borderMode=cv2.BORDER_REFLECT_101)


def source_indices(frame: int, count: int, per_output: int, available: int) -> np.ndarray:
    """(count,) which source frame each sub-frame of output ``frame`` shows.

    A still image (``available == 1``) serves every sub-frame; a video spends ``per_output``
    consecutive frames on one output frame, spread evenly over its sub-frames.
    """
    if available == 1:
        return np.zeros(count, dtype=np.int64)
    needed = (frame + 1) * per_output
    if needed > available:
        raise ValueError(f"output frame {frame} needs {needed} source frames ({per_output} per output); got {available}")
    return frame * per_output + (np.arange(count) * per_output) // count


def subframe_homographies(path: CameraPath, *, frames: int, duty: float, source_center: tuple[float, float],
                          at_least: int = 1, max_step_px: float = 1.0, max_subframes: int = 61) -> list[np.ndarray]:
    """Per output frame, the (n, 3, 3) homographies of its sub-frames (n odd, the middle one is the sharp view).

    Shared by ``render_temporal_clip`` and ``device_render.py``, so both average the same views.
    """
    lengths = path.exposure_lengths(np.arange(frames, dtype=np.float64), duty)  # (T,)
    out = []
    for t in range(frames):
        n = subframe_count(lengths[t], max_step_px, max_subframes, at_least=at_least)
        out.append(path.homographies(exposure_times(t, n, duty), source_center))
    return out


def exposure_times(frame: int, count: int, duty: float) -> np.ndarray:
    """(count,) instants of a frame's sub-frames, in frames, centred on the frame time."""
    return frame + duty * (np.arange(count) / max(count - 1, 1) - 0.5)


def render_temporal_clip(sources: Sequence[np.ndarray], path: CameraPath, *, frames: int, duty: float,
                         source_center: tuple[float, float], per_output: int = 1, max_step_px: float = 1.0,
                         max_subframes: int = 61,
                         objects: Sequence[Layer] = ()) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Blurred and sharp linear frames ((H, W, 3) float32 each) of a clip along ``path``.

    sources: linear-light (Hs, Ws, 3) float32 frames: one still image, or a video of at least
    ``frames * per_output`` frames. duty: exposure as a fraction of the frame interval. objects: moving
    cut-outs and near layers composited over every sub-frame at its instant (``objects.py``; later ones in
    front), with enough sub-frames that none of them jumps more than ``max_step_px`` between two.
    """
    if not sources:
        raise ValueError("render_temporal_clip needs at least one source frame")
    if not 0 < duty <= 1:
        raise ValueError(f"duty must be in (0, 1]; got {duty}")
    at_least = max(per_output if len(sources) > 1 else 1, subframes_for(list(objects), duty, max_step_px))
    all_homs = subframe_homographies(path, frames=frames, duty=duty, source_center=source_center,
                                     at_least=at_least, max_step_px=max_step_px,
                                     max_subframes=max_subframes)
    blurred, sharp = [], []
    for t, homs in enumerate(all_homs):
        n = len(homs)
        index = source_indices(t, n, per_output, len(sources))
        times = exposure_times(t, n, duty)
        mid = n // 2
        target = composite(warp_view(sources[index[mid]], homs[mid], path.height, path.width, sharp=True), objects, t)
        acc = target.copy()
        for j in range(n):
            if j != mid:
                acc += composite(warp_view(sources[index[j]], homs[j], path.height, path.width), objects, times[j])
        blurred.append(acc / n)
        sharp.append(target)
    return blurred, sharp
