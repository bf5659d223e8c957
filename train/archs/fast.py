"""vdeblur_fast: our default real-time recurrent model.

A narrow U-Net whose deepest level (stride 16) holds a ConvLSTM carrying motion context from frame
to frame, so consecutive frames of a shaky clip can lend each other detail with zero look-ahead.
Design rules, all for deployment: PixelShuffle upsampling (no ConvTranspose checkerboards), no
normalisation layers (nothing to overflow in FP16, nothing that depends on frame size), no
grid_sample or deformable conv (no TensorRT op), global residual (the network predicts a
correction, so an untrained or unsure model degrades to the identity instead of to mush).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..blocks import ConvBlock, ConvLSTMCell, ResBlock
from ..registry import register
from .base import DeblurModel, State, StateSlot


@dataclass(frozen=True)
class FastConfig:
    # The first level already sits at stride ``unshuffle`` (PixelUnshuffle of the input): no conv runs
    # at full resolution, which is what keeps a 720p frame under 25 GFLOPs.
    unshuffle: int = 2
    channels: tuple[int, ...] = (24, 48, 96, 96)  # widths at strides 2, 4, 8, 16
    res_blocks: tuple[int, ...] = (0, 0, 1, 0)  # extra residual blocks per level
    lstm_hidden: int = 96  # ConvLSTM at the deepest level: a 3x3 there sees 48 px of the frame
    act: str = "relu"


class _PixelShuffle1x1Up(nn.Sequential):
    """2x up: 1x1 conv to 4*cout channels + PixelShuffle. A 1x1 projection costs a ninth of a 3x3 one;
    the 3x3 refine conv after the skip addition provides the spatial mixing."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(nn.Conv2d(cin, cout * 4, 1), nn.PixelShuffle(2))


class FastRecurrentDeblur(DeblurModel):
    def __init__(self, cfg: FastConfig) -> None:
        super().__init__()
        if len(cfg.channels) != len(cfg.res_blocks):
            raise ValueError(f"channels {cfg.channels} and res_blocks {cfg.res_blocks} must have the same length")
        self.cfg = cfg
        ch, u = cfg.channels, cfg.unshuffle
        deepest = u * 2 ** (len(ch) - 1)
        self.pad_multiple = deepest
        self.state_slots = (StateSlot("h", cfg.lstm_hidden, deepest), StateSlot("c", cfg.lstm_hidden, deepest))
        self.unshuffle = nn.PixelUnshuffle(u)
        self.levels = nn.ModuleList()
        for i, width in enumerate(ch):
            first = ConvBlock(3 * u * u, width, act=cfg.act) if i == 0 else ConvBlock(ch[i - 1], width, stride=2, act=cfg.act)
            self.levels.append(nn.Sequential(first, *[ResBlock(width, act=cfg.act) for _ in range(cfg.res_blocks[i])]))
        self.lstm = ConvLSTMCell(ch[-1], cfg.lstm_hidden)
        self.fuse = ConvBlock(ch[-1] + cfg.lstm_hidden, ch[-1], kernel=1, act=cfg.act)
        self.ups = nn.ModuleList(_PixelShuffle1x1Up(ch[i], ch[i - 1]) for i in reversed(range(1, len(ch))))
        self.refine = nn.ModuleList(ConvBlock(ch[i - 1], ch[i - 1], act=cfg.act) for i in reversed(range(1, len(ch))))
        self.head = nn.Sequential(nn.Conv2d(ch[0], 3 * u * u, 3, padding=1), nn.PixelShuffle(u))
        # Start as the identity: a zero head makes the global residual pass the input through.
        nn.init.zeros_(self.head[0].weight)
        nn.init.zeros_(self.head[0].bias)

    def forward(self, frame: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        h, c = state
        x = self.unshuffle(frame * 2 - 1)  # (B, 3*u*u, H/u, W/u)
        skips = []
        for level in self.levels:
            x = level(x)
            skips.append(x)  # strides u, 2u, 4u, 8u
        h, c = self.lstm(x, (h, c))  # (B, hidden, H/8u, W/8u)
        x = self.fuse(torch.cat([x, h], dim=1))
        for up, refine, skip in zip(self.ups, self.refine, reversed(skips[:-1])):
            x = refine(up(x) + skip)
        return frame + self.head(x), (h, c)


register("vdeblur_fast", FastConfig, discriminator="patchgan",
         description="vdeblur default: narrow recurrent U-Net, ConvLSTM at stride 16, no full-resolution convs")(FastRecurrentDeblur)
