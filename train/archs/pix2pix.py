"""Pix2pix U-Net generator and its ablations from the paper (self-attention, global residual,
spectral norm, channel attention)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..blocks import ChannelAttention, SelfAttention, activation, maybe_sn, norm_layer
from ..registry import register
from .base import DeblurModel, State


@dataclass(frozen=True)
class UNetConfig:
    base_channels: int = 64
    num_downs: int = 8  # unet_256 of pix2pix: 2**8 = 256 is also the padding multiple
    norm: str = "batch"
    dropout: float = 0.5  # pix2pix's decoder dropout; inactive in eval mode so inference is deterministic
    self_attention: bool = False
    # Self-attention sits after the encoder level of this stride. At stride 16 a 1280x720 frame
    # (padded to 1280x768) gives 80x48 = 3840 positions: a 3840^2 attention map is ~59 MB in FP32,
    # affordable, whereas at full resolution it would need ~3 TB.
    attention_stride: int = 16
    global_residual: bool = False
    spectral_norm: bool = False
    channel_attention: bool = False


class _Down(nn.Sequential):
    def __init__(self, cin: int, cout: int, norm: str, sn: bool, first: bool, innermost: bool) -> None:
        layers: list[nn.Module] = [] if first else [activation("lrelu")]
        layers.append(maybe_sn(nn.Conv2d(cin, cout, 4, 2, 1, bias=norm != "batch"), sn))
        # pix2pix has no norm on the first and the innermost (1x1 at 256 px) level.
        if not first and not innermost:
            layers.append(norm_layer(norm, cout))
        super().__init__(*layers)


class _Up(nn.Sequential):
    """ReLU -> nearest 2x -> conv (resize-conv instead of pix2pix's ConvTranspose: no checkerboards)."""

    def __init__(self, cin: int, cout: int, norm: str, sn: bool, dropout: float, ca: bool, outermost: bool) -> None:
        layers: list[nn.Module] = [nn.ReLU(inplace=False), nn.Upsample(scale_factor=2, mode="nearest"),
                                   maybe_sn(nn.Conv2d(cin, cout, 3, 1, 1), sn)]
        if not outermost:
            layers.append(norm_layer(norm, cout))
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            if ca:
                layers.append(ChannelAttention(cout))
        super().__init__(*layers)


class UNetGenerator(DeblurModel):
    def __init__(self, cfg: UNetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.pad_multiple = 2 ** cfg.num_downs
        c = cfg.base_channels
        widths = [min(c * 2 ** i, c * 8) for i in range(cfg.num_downs)]  # 64,128,256,512,512,...
        self.downs = nn.ModuleList()
        cin = 3
        for i, w in enumerate(widths):
            self.downs.append(_Down(cin, w, cfg.norm, cfg.spectral_norm, first=i == 0, innermost=i == cfg.num_downs - 1))
            cin = w
        self.attn_level = cfg.attention_stride.bit_length() - 2  # stride 16 -> index 3 (after 4 downs)
        if cfg.self_attention and not 0 <= self.attn_level < cfg.num_downs:
            raise ValueError(f"attention_stride {cfg.attention_stride} is outside the encoder (strides 2..{2**cfg.num_downs})")
        self.attention = SelfAttention(widths[self.attn_level], sn=cfg.spectral_norm) if cfg.self_attention else None
        self.ups = nn.ModuleList()
        for i in reversed(range(cfg.num_downs)):
            up_in = widths[i] if i == cfg.num_downs - 1 else widths[i] * 2  # skip concat doubles channels
            up_out = 3 if i == 0 else widths[i - 1]
            # pix2pix applies dropout to the three innermost decoder levels only.
            drop = cfg.dropout if i >= cfg.num_downs - 3 else 0.0
            self.ups.append(_Up(up_in, up_out, cfg.norm, cfg.spectral_norm, drop, cfg.channel_attention, outermost=i == 0))

    def forward(self, frame: torch.Tensor, state: State = ()) -> tuple[torch.Tensor, State]:
        x = frame * 2 - 1  # the generator works in [-1, 1] as pix2pix does
        skips = []
        for i, down in enumerate(self.downs):
            x = down(x)
            if self.attention is not None and i == self.attn_level:
                x = self.attention(x)
            skips.append(x)
        for j, up in enumerate(self.ups):
            if j > 0:
                x = torch.cat([x, skips[-1 - j]], dim=1)
            x = up(x)
        y = torch.tanh(x)
        out = frame + y if self.cfg.global_residual else (y + 1) / 2
        return out, ()


@dataclass(frozen=True)
class UNetSAConfig(UNetConfig):
    self_attention: bool = True


@dataclass(frozen=True)
class UNetSAGRConfig(UNetConfig):
    self_attention: bool = True
    global_residual: bool = True


@dataclass(frozen=True)
class UNetSASNConfig(UNetConfig):
    self_attention: bool = True
    spectral_norm: bool = True


@dataclass(frozen=True)
class UNetFullConfig(UNetConfig):
    self_attention: bool = True
    channel_attention: bool = True
    global_residual: bool = True
    spectral_norm: bool = True


register("pix2pix", UNetConfig, description="pix2pix U-Net (8 levels) + 70x70 PatchGAN")(UNetGenerator)
register("pix2pix_sa", UNetSAConfig, description="pix2pix + self-attention at stride 16")(UNetGenerator)
register("pix2pix_sa_gr", UNetSAGRConfig, description="pix2pix + self-attention + global residual")(UNetGenerator)
register("pix2pix_sa_sn", UNetSASNConfig, discriminator="patchgan_sn",
         description="pix2pix + self-attention + spectral norm in G and D")(UNetGenerator)
register("pix2pix_sa_ca_gr_sn", UNetFullConfig, discriminator="patchgan_sn",
         description="pix2pix + self-attention + channel attention + global residual + spectral norm")(UNetGenerator)
