"""DeblurGAN-v2's FPN-Inception generator (Kupyn et al., ICCV 2019), the paper's quality model, with
the parameter names of the authors' released ``fpn_inception.h5``.

The backbone is Inception-ResNet-v2 (Szegedy et al. 2017) with the module names of the widely used
``pretrainedmodels`` port the authors build on: unpadded ("valid") stem convolutions, 10 / 20 / 9
residual Inception blocks at three scales (scaled by 0.17 / 0.10 / 0.20 before the sum). Its layers
past ``mixed_7a`` and the classifier are in the file but not used. The pyramid takes its five stages
and reflection-pads the laterals so that the odd sizes of the valid convolutions line up again;
everything around it (heads, normalisation, padding, frame statistics) is the FPN-MobileNet
generator's (``deblurganv2.FPNGenerator``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..registry import register
from .deblurganv2 import FPNGenerator, FrameBatchNorm, Pyramid


@dataclass(frozen=True)
class FPNInceptionConfig:
    num_filters: int = 128  # head width (the released file's)
    num_filters_fpn: int = 256  # pyramid width
    # Residual Inception blocks at strides 8, 16 and 32 (the last stage is the unused classifier part).
    repeats: tuple[int, int, int] = (10, 20, 9)


class BasicConv2d(nn.Module):
    """conv (no bias) -> batch norm (eps 1e-3, as the TensorFlow original) -> ReLU."""

    def __init__(self, cin: int, cout: int, kernel: int | tuple[int, int], stride: int = 1,
                 padding: int | tuple[int, int] = 0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, padding, bias=False)
        self.bn = FrameBatchNorm(cout, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


class Branches(nn.Module):
    """Parallel branches (``branch0``, ``branch1``, ...) concatenated along the channels."""

    def __init__(self, *branches: nn.Module) -> None:
        super().__init__()
        for i, branch in enumerate(branches):
            setattr(self, f"branch{i}", branch)
        self.count = len(branches)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([getattr(self, f"branch{i}")(x) for i in range(self.count)], dim=1)


class ResidualInception(Branches):
    """Branches -> 1x1 back to the input width (``conv2d``), scaled, added to the input, ReLU."""

    def __init__(self, channels: int, mixed: int, scale: float, *branches: nn.Module, relu: bool = True) -> None:
        super().__init__(*branches)
        self.conv2d = nn.Conv2d(mixed, channels, 1)
        self.scale, self.relu = scale, relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2d(super().forward(x)) * self.scale + x
        return F.relu(out) if self.relu else out


def _seq(*layers: nn.Module) -> nn.Sequential:
    return nn.Sequential(*layers)


def block35() -> ResidualInception:  # 35x35 grid of the original (stride 8 here)
    return ResidualInception(320, 128, 0.17, BasicConv2d(320, 32, 1),
                             _seq(BasicConv2d(320, 32, 1), BasicConv2d(32, 32, 3, padding=1)),
                             _seq(BasicConv2d(320, 32, 1), BasicConv2d(32, 48, 3, padding=1), BasicConv2d(48, 64, 3, padding=1)))


def block17() -> ResidualInception:  # 17x17 grid (stride 16): factorised 1x7 / 7x1
    return ResidualInception(1088, 384, 0.10, BasicConv2d(1088, 192, 1),
                             _seq(BasicConv2d(1088, 128, 1), BasicConv2d(128, 160, (1, 7), padding=(0, 3)),
                                  BasicConv2d(160, 192, (7, 1), padding=(3, 0))))


def block8(scale: float = 0.20, relu: bool = True) -> ResidualInception:  # 8x8 grid (stride 32)
    return ResidualInception(2080, 448, scale, BasicConv2d(2080, 192, 1),
                             _seq(BasicConv2d(2080, 192, 1), BasicConv2d(192, 224, (1, 3), padding=(0, 1)),
                                  BasicConv2d(224, 256, (3, 1), padding=(1, 0))), relu=relu)


class InceptionResNetV2(nn.Module):
    def __init__(self, repeats: tuple[int, int, int]) -> None:
        super().__init__()
        self.conv2d_1a = BasicConv2d(3, 32, 3, stride=2)
        self.conv2d_2a = BasicConv2d(32, 32, 3)
        self.conv2d_2b = BasicConv2d(32, 64, 3, padding=1)
        self.maxpool_3a = nn.MaxPool2d(3, stride=2)
        self.conv2d_3b = BasicConv2d(64, 80, 1)
        self.conv2d_4a = BasicConv2d(80, 192, 3)
        self.maxpool_5a = nn.MaxPool2d(3, stride=2)
        self.mixed_5b = Branches(BasicConv2d(192, 96, 1),
                                 _seq(BasicConv2d(192, 48, 1), BasicConv2d(48, 64, 5, padding=2)),
                                 _seq(BasicConv2d(192, 64, 1), BasicConv2d(64, 96, 3, padding=1), BasicConv2d(96, 96, 3, padding=1)),
                                 _seq(nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False), BasicConv2d(192, 64, 1)))
        self.repeat = _seq(*[block35() for _ in range(repeats[0])])
        self.mixed_6a = Branches(BasicConv2d(320, 384, 3, stride=2),
                                 _seq(BasicConv2d(320, 256, 1), BasicConv2d(256, 256, 3, padding=1), BasicConv2d(256, 384, 3, stride=2)),
                                 nn.MaxPool2d(3, stride=2))
        self.repeat_1 = _seq(*[block17() for _ in range(repeats[1])])
        self.mixed_7a = Branches(_seq(BasicConv2d(1088, 256, 1), BasicConv2d(256, 384, 3, stride=2)),
                                 _seq(BasicConv2d(1088, 256, 1), BasicConv2d(256, 288, 3, stride=2)),
                                 _seq(BasicConv2d(1088, 256, 1), BasicConv2d(256, 288, 3, padding=1), BasicConv2d(288, 320, 3, stride=2)),
                                 nn.MaxPool2d(3, stride=2))
        # In the released file, unused by the generator (the classifier's part of the network).
        self.repeat_2 = _seq(*[block8() for _ in range(repeats[2])])
        self.block8 = block8(1.0, relu=False)
        self.conv2d_7b = BasicConv2d(2080, 1536, 1)
        self.last_linear = nn.Linear(1536, 1000)


class FPNInceptionPyramid(Pyramid):
    # Valid convolutions leave each stage 1-3 px short of stride-aligned: reflection pads restore it
    # (for a 128-row input: 63, 30, 13, 6, 2 rows -> 64, 32, 16, 8, 4). (left, right, top, bottom)
    _ALIGN = ((0, 1, 0, 1), (1, 1, 1, 1), (1, 2, 1, 2), (1, 1, 1, 1), (1, 1, 1, 1))

    def __init__(self, width: int, repeats: tuple[int, int, int]) -> None:
        super().__init__(width, (32, 64, 192, 1088, 2080))
        net = self.inception = InceptionResNetV2(repeats)
        # The stages share the backbone's modules, so the file names each weight twice, as the released one does.
        self.enc0 = net.conv2d_1a  # stride 2, 32 channels
        self.enc1 = _seq(net.conv2d_2a, net.conv2d_2b, net.maxpool_3a)  # stride 4, 64
        self.enc2 = _seq(net.conv2d_3b, net.conv2d_4a, net.maxpool_5a)  # stride 8, 192
        self.enc3 = _seq(net.mixed_5b, net.repeat, net.mixed_6a)  # stride 16, 1088
        self.enc4 = _seq(net.repeat_1, net.mixed_7a)  # stride 32, 2080

    def align(self, level: int, lateral: torch.Tensor) -> torch.Tensor:
        return F.pad(lateral, self._ALIGN[level], mode="reflect")


class FPNInception(FPNGenerator):
    # Valid convolutions leave a 96 px frame 1 px at stride 32, too small for the pyramid's reflection
    # pad (the authors' predictor fails there): smaller frames are padded to 128 px.
    min_blocks = 4

    def __init__(self, cfg: FPNInceptionConfig) -> None:
        super().__init__(cfg, FPNInceptionPyramid(cfg.num_filters_fpn, cfg.repeats))  # type: ignore[arg-type]


def config_from_shapes(shapes: Mapping[str, torch.Size]) -> dict[str, Any]:
    """The config of an FPN-Inception state dict, read from its shapes (KeyError if it is none)."""
    if "fpn.inception.conv2d_1a.conv.weight" not in shapes:  # the backbone's first conv: absent from other layouts
        raise KeyError("fpn.inception.conv2d_1a.conv.weight")
    def blocks(stage: str) -> int:
        return sum(1 for k in shapes if k.startswith(f"fpn.inception.{stage}.") and k.endswith(".conv2d.weight"))

    return {"num_filters": int(shapes["head1.block0.weight"][0]), "num_filters_fpn": int(shapes["fpn.td1.0.weight"][0]),
            "repeats": (blocks("repeat"), blocks("repeat_1"), blocks("repeat_2"))}


register("deblurgan_v2_inception", FPNInceptionConfig, discriminator="",
         description="DeblurGAN-v2 FPN-Inception generator (Kupyn et al. 2019), released fpn_inception.h5 layout")(FPNInception)
