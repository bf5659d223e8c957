"""DeblurGAN-v2's FPN-MobileNet generator (Kupyn et al., ICCV 2019), stateless, with the parameter
names of the authors' released ``fpn_mobilenet.h5`` so it loads unchanged.

A MobileNetV2 backbone (Sandler et al. 2018) feeds a feature pyramid: 1x1 laterals at strides 2-32,
a top-down path of nearest 2x upsampling + 3x3 conv, four two-conv heads brought to stride 4 and
concatenated, two smoothing convs back up to full resolution, then ``tanh`` added to the input
(a global residual) and clamped to [-1, 1].

What the authors' predictor does around the network is part of the model here, because the
released weights only work with it:
* normalisation: [0, 1] -> [-1, 1], rounded as theirs;
* padding: zeros (in [-1, 1], i.e. mid-grey) to the next multiple of 32 *plus one block* (a frame
  already a multiple of 32 still gets 32 more rows and columns): the pyramid's strides need
  multiples of 32, and the instance norm statistics include the pad, so it must be this exact pad;
* normalisation layers use the frame's own statistics: the authors run the generator in train mode
  ("GAN inference should be in train mode"), so batch norm never uses its stored running averages
  and the instance norm's stored ones are ignored too. Per frame, not per batch, so frames batched
  by ``--streams`` give what they give alone (the authors run one image at a time).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..registry import register
from .base import DeblurModel, State

BLOCK = 32  # the deepest stride of the pyramid
# MobileNetV2's inverted residual stages: (expansion, channels, repeats, first stride).
_MOBILENET_V2 = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                 (6, 320, 1, 1))


@dataclass(frozen=True)
class FPNMobileNetConfig:
    num_filters: int = 64  # head width (the released file's)
    num_filters_fpn: int = 128  # pyramid width


class FrameBatchNorm(nn.BatchNorm2d):
    """Batch norm as the authors run it (train mode, batch of one): each frame's own mean and
    variance, the learnt scale and shift; the running averages are kept only as names of the file."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.instance_norm(x, weight=self.weight, bias=self.bias, use_input_stats=True, eps=self.eps)


class FrameInstanceNorm(nn.InstanceNorm2d):
    """Instance norm without affine, with (unused) running statistics, as DeblurGAN-v2's config makes it."""

    def __init__(self, channels: int) -> None:
        super().__init__(channels, affine=False, track_running_stats=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.instance_norm(x, use_input_stats=True, eps=self.eps)


def _conv_bn(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1, act: bool = True) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
                               FrameBatchNorm(cout)]
    return layers + [nn.ReLU6(inplace=True)] if act else layers


class InvertedResidual(nn.Module):
    """1x1 expand -> depthwise 3x3 -> 1x1 project (linear), residual when the shape is kept."""

    def __init__(self, cin: int, cout: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = cin * expansion
        expand = _conv_bn(cin, hidden, 1) if expansion != 1 else []
        self.conv = nn.Sequential(*expand, *_conv_bn(hidden, hidden, 3, stride, groups=hidden),
                                  *_conv_bn(hidden, cout, 1, act=False))
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.residual else self.conv(x)


def mobilenet_v2_features() -> nn.Sequential:
    layers: list[nn.Module] = [nn.Sequential(*_conv_bn(3, 32, 3, 2))]
    cin = 32
    for expansion, cout, repeats, stride in _MOBILENET_V2:
        for i in range(repeats):
            layers.append(InvertedResidual(cin, cout, stride if i == 0 else 1, expansion))
            cin = cout
    layers.append(nn.Sequential(*_conv_bn(cin, 1280, 1)))  # the classifier's last conv: in the file, unused here
    return nn.Sequential(*layers)


def conv_norm_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), FrameInstanceNorm(cout), nn.ReLU(inplace=True))


class FPNHead(nn.Module):
    def __init__(self, cin: int, mid: int, cout: int) -> None:
        super().__init__()
        self.block0 = nn.Conv2d(cin, mid, 3, padding=1, bias=False)
        self.block1 = nn.Conv2d(mid, cout, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.block1(F.relu(self.block0(x))))


def upsample(x: torch.Tensor, factor: int = 2) -> torch.Tensor:
    return F.interpolate(x, scale_factor=factor, mode="nearest")


class Pyramid(nn.Module):
    """The top-down half of DeblurGAN-v2's feature pyramid over a backbone's five stages ``enc0`` ..
    ``enc4`` (strides 2-32, set by the subclass): a 1x1 lateral per stage, then from the deepest
    level down, nearest 2x upsampling + the lateral -> 3x3 conv, norm, ReLU."""

    def __init__(self, width: int, stage_channels: tuple[int, ...]) -> None:
        super().__init__()
        self.td1, self.td2, self.td3 = (conv_norm_relu(width, width) for _ in range(3))
        for k, channels in enumerate(stage_channels):
            setattr(self, f"lateral{k}", nn.Conv2d(channels, width // 2 if k == 0 else width, 1, bias=False))

    def align(self, level: int, lateral: torch.Tensor) -> torch.Tensor:
        """A lateral brought to its level's size (backbones whose stages come out short pad here)."""
        return lateral

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        laterals = []
        for k in range(5):
            x = getattr(self, f"enc{k}")(x)
            laterals.append(self.align(k, getattr(self, f"lateral{k}")(x)))
        map4 = laterals[4]  # stride 32
        map3 = self.td1(laterals[3] + upsample(map4))
        map2 = self.td2(laterals[2] + upsample(map3))
        map1 = self.td3(laterals[1] + upsample(map2))
        return laterals[0], map1, map2, map3, map4


class FPN(Pyramid):
    def __init__(self, width: int) -> None:
        super().__init__(width, (16, 24, 32, 64, 160))
        self.features = mobilenet_v2_features()
        # The stages share the backbone's modules, so the file names each weight twice
        # (``features.N`` and ``encK.M``), as the released checkpoint does.
        stages = ((0, 2), (2, 4), (4, 7), (7, 11), (11, 16))  # outputs at strides 2, 4, 8, 16, 32
        for k, (a, b) in enumerate(stages):
            setattr(self, f"enc{k}", nn.Sequential(*self.features[a:b]))


class FPNGenerator(DeblurModel):
    """What DeblurGAN-v2's generators share around their backbone's pyramid: four heads brought to
    stride 4, two smoothing convs up to full resolution, ``tanh`` added to the input, and the
    authors' predictor (normalise, pad, clamp) around it all."""

    pad_multiple = 1  # the forward pads itself, as the authors' predictor does (see the module docstring)
    min_blocks = 0  # blocks of 32 px a backbone needs at least; frames padded less would fail in it

    def __init__(self, cfg: FPNMobileNetConfig, fpn: nn.Module) -> None:
        super().__init__()
        self.cfg = cfg
        f, p = cfg.num_filters, cfg.num_filters_fpn
        self.fpn = fpn
        self.head1, self.head2, self.head3, self.head4 = (FPNHead(p, f, f) for _ in range(4))
        self.smooth = nn.Sequential(nn.Conv2d(4 * f, f, 3, padding=1), FrameInstanceNorm(f), nn.ReLU())
        self.smooth2 = nn.Sequential(nn.Conv2d(f, f // 2, 3, padding=1), FrameInstanceNorm(f // 2), nn.ReLU())
        self.final = nn.Conv2d(f // 2, 3, 3, padding=1)

    def forward(self, frame: torch.Tensor, state: State = ()) -> tuple[torch.Tensor, State]:
        h, w = frame.shape[-2:]
        # The authors' normalisation to [-1, 1], (v - 127.5) * (1 / 127.5) on 8-bit values, in this exact
        # order: ``frame * 2 - 1`` differs in the last bit, which the network amplifies ~500x.
        x = F.pad((frame * 255 - 127.5) * (1 / 127.5), (0, self._pad(w), 0, self._pad(h)))
        map0, map1, map2, map3, map4 = self.fpn(x)
        heads = [upsample(self.head4(map4), 8), upsample(self.head3(map3), 4), upsample(self.head2(map2), 2),
                 self.head1(map1)]  # all at stride 4
        y = upsample(self.smooth(torch.cat(heads, dim=1)))  # stride 2
        y = upsample(self.smooth2(y + map0))  # full resolution
        out = torch.clamp(torch.tanh(self.final(y)) + x, -1, 1)
        return (out[..., :h, :w] + 1) / 2, ()


    def _pad(self, size: int) -> int:
        """Zeros to add: up to the next multiple of 32 plus one block (the authors' rule), and to at
        least ``min_blocks`` blocks, where the authors' predictor would fail instead."""
        blocks = size // BLOCK + 1
        if self.min_blocks:  # a property of the architecture, not of the frame
            short = self.min_blocks - blocks
            blocks = blocks + (short + abs(short)) // 2  # max(short, 0) with no comparison: the export keeps it symbolic
        return blocks * BLOCK - size


class FPNMobileNet(FPNGenerator):
    def __init__(self, cfg: FPNMobileNetConfig) -> None:
        super().__init__(cfg, FPN(cfg.num_filters_fpn))


def config_from_shapes(shapes: Mapping[str, torch.Size]) -> dict[str, Any]:
    """The config of an FPN-MobileNet state dict, read from its shapes (KeyError if it is none)."""
    return {"num_filters": int(shapes["head1.block0.weight"][0]), "num_filters_fpn": int(shapes["fpn.td1.0.weight"][0])}


register("deblurgan_v2_mobilenet", FPNMobileNetConfig, discriminator="",
         description="DeblurGAN-v2 FPN-MobileNet generator (Kupyn et al. 2019), released fpn_mobilenet.h5 layout")(FPNMobileNet)
