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
from av.video.reformatter import VideoReformatter

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
    if image.ndim < 2 or image.shape[-1] != 3 or image.size == 0:
        return SRGB_TO_LINEAR[image]
    # OpenCV's table lookup gives the same values ~8x faster than numpy's fancy indexing; it takes
    # (rows, cols, channels), so any (..., 3) array goes through as rows of one pixel.
    flat = np.ascontiguousarray(image).reshape(-1, 1, 3)
    return cv2.LUT(flat, SRGB_TO_LINEAR).reshape(image.shape)


@numba.njit(cache=True)
def _srgb_code(v: float) -> int:
    # The encoding's definition (IEC 61966-2-1, rounded to 8 bits) for one linear value: the reference
    # that _CODE_START / _CODE_FROM below reproduce exactly, without a power per value.
    v = min(max(v, 0.0), 1.0)
    s = 12.92 * v if v <= 0.0031308 else 1.055 * v ** (1 / 2.4) - 0.055
    return int(s * 255 + 0.5)


@numba.njit(cache=True)
def srgb_codes(linear: np.ndarray) -> np.ndarray:
    """float64 linear values (1-D) -> their uint8 sRGB codes by the formula (the slow reference)."""
    out = np.empty(linear.shape[0], dtype=np.uint8)
    for i in range(linear.shape[0]):
        out[i] = _srgb_code(linear[i])
    return out


def _code_thresholds() -> np.ndarray:
    """_CODE_FROM[k]: the least float64 the formula encodes as code k or above (k >= 1; [0] is -inf).

    The formula is non-decreasing in v, so code(v) is the number of thresholds <= v. Each threshold is
    found by bisection over the bit patterns of non-negative float64s (ordered as the integers are), with
    the formula itself as the judge: the table matches it on every input, not only to within rounding.
    """
    lo = np.zeros(256, dtype=np.int64)  # bit pattern of 0.0: code 0
    hi = np.full(256, np.float64(1.0).view(np.int64))  # 1.0: code 255
    codes = np.arange(256)
    while np.any(hi - lo > 1):  # invariant: code(lo) < k <= code(hi)
        mid = lo + (hi - lo) // 2
        above = srgb_codes(mid.view(np.float64)).astype(np.int64) >= codes
        hi = np.where(above, mid, hi)
        lo = np.where(above, lo, mid)
    thresholds = hi.view(np.float64).copy()
    thresholds[0] = -np.inf
    return thresholds


_CODE_FROM = _code_thresholds()
# Where to start counting thresholds for a value in bin floor(v * _BINS): the code of the bin's left end.
# sRGB's steepest slope is 12.92 * 255 codes per unit, 0.8 codes per bin of 1/4096, so a value is at most
# one threshold above its bin's start (the loop in _table_code allows for more).
_BINS = 4096
_CODE_START = (np.searchsorted(_CODE_FROM, np.arange(_BINS + 1) / _BINS, side="right") - 1).astype(np.uint8)


@numba.njit(cache=True)
def _encode(linear: np.ndarray, normals: np.ndarray, shot: float, read: float, start: np.ndarray,
            thresholds: np.ndarray) -> np.ndarray:
    # linear: (N, 3) float32; normals: (N, 3) float32 or (0, 3) for no noise -> (N, 3) uint8 sRGB,
    # the codes of _srgb_code found in the threshold table (~5x faster than a power per value).
    out = np.empty(linear.shape, dtype=np.uint8)
    noisy = normals.shape[0] > 0
    for i in range(linear.shape[0]):
        for c in range(3):
            v = np.float64(linear[i, c])
            if noisy:
                v += np.sqrt(max(shot * v + read * read, 0.0)) * normals[i, c]
            out[i, c] = _table_code(v, start, thresholds)
    return out


@numba.njit(cache=True)
def _table_code(v: float, start: np.ndarray, thresholds: np.ndarray) -> int:
    v = min(max(v, 0.0), 1.0)
    code = start[int(v * (start.shape[0] - 1))]
    while code < 255 and v >= thresholds[code + 1]:
        code += 1
    return code


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
    return _encode(flat, normals, shot, read, _CODE_START, _CODE_FROM).reshape(linear.shape)


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
    # One colour converter per direction for the whole clip, on the calling thread: left to PyAV, every
    # frame built a new one with a thread pool, which cost more than converting 128x128 pixels.
    to_yuv, to_rgb = VideoReformatter(), VideoReformatter()
    # A raw Annex-B stream: nothing but the coded frames, no container timestamps or IDs.
    with av.open(buf, mode="w", format="h264") as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = padded.shape[2], padded.shape[1], "yuv420p"
        # x264's macroblock-tree rate control gave different bytes from run to run on the same input
        # (4 of 30 clip/CRF cases, 6 tries each, any thread count); without it every run matched.
        # Phone hardware encoders have no mbtree either. x264's output also depends on its thread count,
        # which FFmpeg would take from the machine's cores: it is fixed (at the 2 the held-out sets were
        # first rendered with) so that every machine renders the same clips.
        stream.options = {"crf": str(int(crf)), "preset": "veryfast", "x264-params": "mbtree=0:threads=2"}
        for frame in padded:
            yuv = to_yuv.reformat(av.VideoFrame.from_ndarray(frame, format="rgb24"), format="yuv420p", threads=1)
            out.mux(stream.encode(yuv))
        out.mux(stream.encode(None))  # flush the encoder's delayed frames
    buf.seek(0)
    with av.open(buf, mode="r", format="h264") as src:
        src.streams.video[0].thread_count = 1  # decoding is exact at any thread count; one is cheapest here
        decoded = [to_rgb.reformat(f, format="rgb24", threads=1).to_ndarray() for f in src.decode(video=0)]
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
