"""Residual-in-Residual encoder-decoder (RCAN-style residual groups of residual blocks, long skip)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..blocks import ConvBlock, PixelShuffleUp, ResBlock
from ..registry import register
from .base import DeblurModel, State


@dataclass(frozen=True)
class RiRConfig:
    channels: int = 64
    groups: int = 4
    blocks_per_group: int = 4
    downsamples: int = 2  # the residual groups run at stride 2**downsamples to keep 720p affordable
    global_residual: bool = True


@dataclass(frozen=True)
class RiRLargeConfig(RiRConfig):
    channels: int = 96
    groups: int = 6
    blocks_per_group: int = 6


class ResidualGroup(nn.Module):
    """Residual blocks + conv, wrapped in its own skip (the inner 'residual' of residual-in-residual)."""

    def __init__(self, channels: int, blocks: int) -> None:
        super().__init__()
        self.body = nn.Sequential(*[ResBlock(channels) for _ in range(blocks)], nn.Conv2d(channels, channels, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class RiRNet(DeblurModel):
    def __init__(self, cfg: RiRConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.pad_multiple = 2 ** cfg.downsamples
        c = cfg.channels
        enc: list[nn.Module] = [ConvBlock(3, c // 2)]
        cin = c // 2
        for _ in range(cfg.downsamples):
            enc.append(ConvBlock(cin, c, stride=2))
            cin = c
        self.encoder = nn.Sequential(*enc)
        self.groups = nn.Sequential(*[ResidualGroup(c, cfg.blocks_per_group) for _ in range(cfg.groups)],
                                    nn.Conv2d(c, c, 3, padding=1))
        self.decoder = nn.Sequential(*[PixelShuffleUp(c, c) for _ in range(cfg.downsamples)], nn.Conv2d(c, 3, 3, padding=1))

    def forward(self, frame: torch.Tensor, state: State = ()) -> tuple[torch.Tensor, State]:
        feat = self.encoder(frame)
        feat = feat + self.groups(feat)  # long skip over all groups
        y = self.decoder(feat)
        return (frame + y if self.cfg.global_residual else y), ()


register("rir", RiRConfig, description="Residual-in-Residual encoder-decoder")(RiRNet)
register("rir_large", RiRLargeConfig, description="Residual-in-Residual encoder-decoder, Large")(RiRNet)
