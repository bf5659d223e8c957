"""The camera pipeline after the optics: linear light, sensor noise, sRGB encoding, compression.

Blur is an average of *light*, so synthesis happens in linear light and goes back to sRGB here.
Noise is added before the encoding, where the sensor adds it: shot noise whose variance grows with
the signal plus a constant read noise (the Poisson-Gaussian model, Foi et al. 2008). Compression
(JPEG per frame, or H.264 over the clip through PyAV) comes last, as on a phone. Only the blurred
input is degraded; the sharp target stays clean, so a model also learns not to reproduce noise and
blocking. Levels are drawn once per clip: one camera, one ISO, one encoder setting.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import av
import cv2
import numba
import numpy as np

COMPRESSION_KINDS = ("none", "jpeg", "h264", "mixed")

# uint8 sRGB code value -> linear light (IEC 61966-2-1).
_V = np.arange(256, dtype=np.float64) / 255
SRGB_TO_LINEAR = np.where(_V <= 0.04045, _V / 12.92, ((_V + 0.055) / 1.055) ** 2.4).astype(np.float32)


@dataclass(frozen=True)
class NoiseConfig:
    """Per-clip noise levels in linear light, drawn log-uniformly from each range."""

    probability: float = 0.9  # share of clips that get noise at all
    # Variance per unit signal: 3e-3 is ~11/255 of noise at mid grey, a phone at high ISO.
    shot: tuple[float, float] = (1e-4, 3e-3)
    # Standard deviation; dominates in the shadows, where sRGB's slope magnifies it 12.9x.
    read: tuple[float, float] = (2e-4, 3e-3)

    def __post_init__(self) -> None:
        _check_probability("NoiseConfig.probability", self.probability)
        for name in ("shot", "read"):
            lo, hi = getattr(self, name)
            if not 0 < lo <= hi:
                raise ValueError(f"NoiseConfig.{name} must be a range with 0 < lo <= hi; got {(lo, hi)}")


@dataclass(frozen=True)
class CompressionConfig:
    kind: str = "mixed"  # "mixed" picks JPEG or H.264 per clip
    probability: float = 0.5  # share of clips that are compressed
    jpeg_quality: tuple[int, int] = (60, 95)
    h264_crf: tuple[int, int] = (18, 32)

    def __post_init__(self) -> None:
        if self.kind not in COMPRESSION_KINDS:
            raise ValueError(f"unknown compression kind {self.kind!r}; allowed: {', '.join(COMPRESSION_KINDS)}")
        _check_probability("CompressionConfig.probability", self.probability)
        if not 1 <= self.jpeg_quality[0] <= self.jpeg_quality[1] <= 100:
            raise ValueError(f"jpeg_quality must be a range within 1..100; got {self.jpeg_quality}")
        if not 0 <= self.h264_crf[0] <= self.h264_crf[1] <= 51:
            raise ValueError(f"h264_crf must be a range within 0..51; got {self.h264_crf}")


def srgb_to_linear(image: np.ndarray) -> np.ndarray:
    """(..., 3) uint8 sRGB -> float32 linear light in [0, 1]."""
    if image.dtype != np.uint8:
        raise ValueError(f"srgb_to_linear expects uint8; got {image.dtype}")
    return SRGB_TO_LINEAR[image]


@numba.njit(cache=True)
def _encode(linear: np.ndarray, normals: np.ndarray, shot: float, read: float) -> np.ndarray:
    # linear: (N, 3) float32; normals: (N, 3) float32 or (0, 3) for no noise -> (N, 3) uint8 sRGB.
    out = np.empty(linear.shape, dtype=np.uint8)
    noisy = normals.shape[0] > 0
    for i in range(linear.shape[0]):
        for c in range(3):
            v = linear[i, c]
            if noisy:
                v += np.sqrt(max(shot * v + read * read, 0.0)) * normals[i, c]
            v = min(max(v, 0.0), 1.0)
            s = 12.92 * v if v <= 0.0031308 else 1.055 * v ** (1 / 2.4) - 0.055
            out[i, c] = np.uint8(s * 255 + 0.5)
    return out


def linear_to_srgb(linear: np.ndarray, noise: tuple[float, float] | None = None,
                   rng: np.random.Generator | None = None) -> np.ndarray:
    """(H, W, 3) float32 linear -> uint8 sRGB, adding shot/read noise ``(shot, read)`` if given."""
    flat = np.ascontiguousarray(linear, dtype=np.float32).reshape(-1, 3)
    if noise is None:
        normals = np.zeros((0, 3), dtype=np.float32)
        shot = read = 0.0
    else:
        if rng is None:
            raise ValueError("linear_to_srgb with noise needs rng")
        normals = rng.standard_normal(flat.shape, dtype=np.float32)
        shot, read = noise
    return _encode(flat, normals, shot, read).reshape(linear.shape)


def jpeg_roundtrip(frame: np.ndarray, quality: int) -> np.ndarray:
    """(H, W, 3) uint8 RGB through a JPEG encode/decode at ``quality``."""
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError(f"OpenCV failed to JPEG-encode a {frame.shape} frame")
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def h264_roundtrip(frames: np.ndarray, crf: int) -> np.ndarray:
    """(T, H, W, 3) uint8 RGB through libx264 (yuv420p, ``crf``) and back, in memory."""
    t, h, w, _ = frames.shape
    # yuv420p needs even sizes: pad by edge replication, crop after decoding.
    padded = np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    buf = io.BytesIO()
    # A raw Annex-B stream: nothing but the coded frames, no container timestamps or IDs.
    with av.open(buf, mode="w", format="h264") as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = padded.shape[2], padded.shape[1], "yuv420p"
        # x264's macroblock-tree rate control gave different bytes from run to run on the same input
        # (4 of 30 clip/CRF cases, 6 tries each, any thread count); without it every run matched.
        # Phone hardware encoders have no mbtree either.
        stream.options = {"crf": str(int(crf)), "preset": "veryfast", "x264-params": "mbtree=0"}
        for frame in padded:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        out.mux(stream.encode(None))  # flush the encoder's delayed frames
    buf.seek(0)
    with av.open(buf, mode="r", format="h264") as src:
        decoded = [f.to_ndarray(format="rgb24") for f in src.decode(video=0)]
    if len(decoded) != t:
        raise RuntimeError(f"H.264 round trip returned {len(decoded)} frames for {t}")
    return np.stack(decoded)[:, :h, :w]


def degrade_clip(linear: list[np.ndarray], rng: np.random.Generator, noise: NoiseConfig | None,
                 compression: CompressionConfig | None) -> np.ndarray:
    """Blurred linear frames (each (H, W, 3) float32) -> (T, H, W, 3) uint8 as a camera would save them."""
    levels = draw_noise_levels(rng, noise)
    frames = np.stack([linear_to_srgb(f, levels, rng) for f in linear])
    if compression is None or compression.kind == "none" or rng.uniform() >= compression.probability:
        return frames
    kind = compression.kind if compression.kind != "mixed" else ("jpeg", "h264")[int(rng.integers(2))]
    if kind == "jpeg":
        quality = int(rng.integers(compression.jpeg_quality[0], compression.jpeg_quality[1] + 1))
        return np.stack([jpeg_roundtrip(f, quality) for f in frames])
    crf = int(rng.integers(compression.h264_crf[0], compression.h264_crf[1] + 1))
    return h264_roundtrip(frames, crf)


def draw_noise_levels(rng: np.random.Generator, noise: NoiseConfig | None) -> tuple[float, float] | None:
    """One clip's (shot variance, read std), or None for a clip without noise."""
    if noise is not None and rng.uniform() < noise.probability:
        return _log_uniform(rng, noise.shot), _log_uniform(rng, noise.read)
    return None


def _log_uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(np.exp(rng.uniform(np.log(bounds[0]), np.log(bounds[1]))))


def _check_probability(name: str, p: float) -> None:
    if not 0 <= p <= 1:
        raise ValueError(f"{name} must be in [0, 1]; got {p}")
