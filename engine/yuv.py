"""YUV <-> RGB on torch tensors, on whatever device the planes are on: hardware decoders and
encoders (NVDEC, NVENC: ``engine/nvcodec.py``) hand over and take raw 4:2:0 planes in CUDA memory,
and converting them there keeps the frame off the host.

Layouts are NVIDIA's: NV12 is one (H * 3/2, W) uint8 surface, the Y plane on top of the
interleaved U/V plane; P016 is the same in uint16 with each sample in the high bits (10-bit
content is ``value << 6``). The colours match FFmpeg's own conversion, the one the PyAV path uses
(``video_io.to_rgb``), so both paths give the same output: the matrix (BT.601, BT.709, BT.2020)
and range (limited / full) come from the stream, an unspecified matrix is read as BT.601 like
swscale does, and each chroma sample covers its 2x2 pixels (swscale's unscaled 4:2:0 -> RGB path
and NVIDIA's sample kernels do the same).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .video_io import _is_full_range

# (Kr, Kb) luma weights of each matrix; Kg = 1 - Kr - Kb.
_KR_KB = {"bt601": (0.299, 0.114), "bt709": (0.2126, 0.0722), "bt2020": (0.2627, 0.0593)}
# FFmpeg's AVColorSpace values; 2 is "unspecified", read as BT.601 like swscale does.
_AVCOL_SPC = {1: "bt709", 2: "bt601", 5: "bt601", 6: "bt601", 9: "bt2020", 10: "bt2020"}


@dataclass(frozen=True)
class ColourSpec:
    matrix: str = "bt601"  # "bt601", "bt709" or "bt2020"
    full_range: bool = False  # limited: Y in [16, 235], U/V in [16, 240] (times 2^(bits-8))
    bit_depth: int = 8

    def __post_init__(self) -> None:
        if self.matrix not in _KR_KB:
            raise ValueError(f"colour matrix {self.matrix!r} is not supported; allowed: {', '.join(_KR_KB)}")
        if not 8 <= self.bit_depth <= 16:
            raise ValueError(f"bit depth {self.bit_depth} is not supported; allowed: 8 to 16")


def colour_spec_of(source: object) -> ColourSpec:
    """The colour of a PyAV codec context or video frame: matrix, range and bit depth."""
    pix_fmt = getattr(getattr(source, "format", None), "name", None) or getattr(source, "pix_fmt", None) or "yuv420p"
    space = getattr(source, "colorspace", None)
    space = 2 if space is None else int(space)  # 0 is RGB, not "unspecified"
    if space not in _AVCOL_SPC:
        raise ValueError(f"colour matrix {space} (FFmpeg AVColorSpace) is not supported; allowed: "
                         f"BT.601 (5, 6), BT.709 (1), BT.2020 (9, 10) or unspecified (2)")
    deep = re.search(r"(\d+)[lb]e$", pix_fmt)  # yuv420p10le, p010le; 8-bit formats have no suffix
    depth = int(deep.group(1)) if deep else 8
    return ColourSpec(_AVCOL_SPC[space], _is_full_range(source, pix_fmt), depth)


def nv12_to_rgb(surface: torch.Tensor, spec: ColourSpec) -> torch.Tensor:
    """NV12 (uint8) or P016 (uint16) surface (H * 3/2, W) -> RGB (3, H, W) float32 in [0, 1]."""
    rows, width = surface.shape
    if rows % 3 or width % 2:
        raise ValueError(f"an NV12/P016 surface is (H * 3/2, W) with even H and W; got {tuple(surface.shape)}")
    height = rows * 2 // 3
    planes = surface.to(torch.float32)  # uint16 supports little beyond conversion in torch
    if surface.dtype == torch.uint16:
        planes = planes / 2 ** (16 - spec.bit_depth)  # P016 keeps the sample in the high bits
    elif surface.dtype != torch.uint8:
        raise ValueError(f"NV12 surfaces are uint8 and P016 surfaces uint16; got {surface.dtype}")
    y = planes[:height]  # (H, W)
    uv = planes[height:].reshape(height // 2, width // 2, 2).permute(2, 0, 1)  # (2, H/2, W/2)
    return yuv_to_rgb(y, uv, spec)


def yuv_to_rgb(y: torch.Tensor, uv: torch.Tensor, spec: ColourSpec) -> torch.Tensor:
    """Y (H, W) and U/V (2, H/2, W/2) code values (any real dtype) -> RGB (3, H, W) float32 in [0, 1]."""
    luma, chroma = _normalise(y.to(torch.float32), uv.to(torch.float32), spec)
    chroma = chroma.repeat_interleave(2, dim=1).repeat_interleave(2, dim=2)  # (2, H, W)
    yuv = torch.cat([luma[None], chroma])  # (3, H, W): Y in [0, 1], U/V in [-0.5, 0.5]
    matrix = _yuv_to_rgb_matrix(spec.matrix).to(yuv.device)
    return torch.einsum("rc,chw->rhw", matrix, yuv).clamp_(0, 1)


def rgb_to_nv12(rgb: torch.Tensor, spec: ColourSpec) -> torch.Tensor:
    """RGB (3, H, W) float in [0, 1] -> contiguous NV12 surface (H * 3/2, W) uint8, ready for an
    encoder; chroma is the mean of each 2x2 block."""
    if spec.bit_depth != 8:
        raise ValueError(f"NV12 holds 8-bit samples; this stream is {spec.bit_depth}-bit")
    _, height, width = rgb.shape
    if height % 2 or width % 2:
        raise ValueError(f"4:2:0 needs an even width and height; got {width}x{height}")
    yuv = torch.einsum("cr,rhw->chw", torch.linalg.inv(_yuv_to_rgb_matrix(spec.matrix)).to(rgb.device),
                       rgb.to(torch.float32))
    chroma = F.avg_pool2d(yuv[None, 1:], 2)[0]  # (2, H/2, W/2)
    black, scale_y, scale_c = _code_range(spec)
    y = yuv[0] * scale_y + black
    uv = chroma * scale_c + 2 ** (spec.bit_depth - 1)
    surface = torch.cat([y, uv.permute(1, 2, 0).reshape(height // 2, width)])
    return surface.round_().clamp_(0, 255).to(torch.uint8).contiguous()


def _normalise(y: torch.Tensor, uv: torch.Tensor, spec: ColourSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """Code values -> Y in [0, 1] and U/V centred on 0 in [-0.5, 0.5]."""
    black, scale_y, scale_c = _code_range(spec)
    return (y - black) / scale_y, (uv - 2 ** (spec.bit_depth - 1)) / scale_c


def _code_range(spec: ColourSpec) -> tuple[float, float, float]:
    """(black level, luma span, chroma span) in code values of ``spec.bit_depth`` bits."""
    if spec.full_range:
        top = 2 ** spec.bit_depth - 1
        return 0.0, float(top), float(top)
    step = 2 ** (spec.bit_depth - 8)
    return 16.0 * step, 219.0 * step, 224.0 * step


def _yuv_to_rgb_matrix(name: str) -> torch.Tensor:
    kr, kb = _KR_KB[name]
    kg = 1 - kr - kb
    return torch.tensor([[1.0, 0.0, 2 * (1 - kr)],
                         [1.0, -2 * kb * (1 - kb) / kg, -2 * kr * (1 - kr) / kg],
                         [1.0, 2 * (1 - kb), 0.0]], dtype=torch.float64).to(torch.float32)
