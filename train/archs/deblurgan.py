"""DeblurGAN's ResNet generator and the paper's two variants: a Canny edge map as 4th input
channel, and a ConvLSTM feedback loop unrolled over the generator."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..blocks import ConvBlock, ConvLSTMCell, ResBlock, ResizeConvUp
from ..registry import register
from .base import DeblurModel, State, StateSlot


@dataclass(frozen=True)
class DeblurGANConfig:
    ngf: int = 64
    n_blocks: int = 9
    norm: str = "instance"
    dropout: float = 0.5  # DeblurGAN's ResnetGenerator uses dropout inside residual blocks
    edge_input: bool = False


@dataclass(frozen=True)
class DeblurGANEdgeConfig(DeblurGANConfig):
    edge_input: bool = True


def _encoder(cin: int, ngf: int, norm: str) -> nn.Sequential:
    # 7x7 stem then two stride-2 convs: the residual blocks run at stride 4 with 4*ngf channels.
    return nn.Sequential(ConvBlock(cin, ngf, 7, norm=norm), ConvBlock(ngf, ngf * 2, 3, 2, norm=norm),
                         ConvBlock(ngf * 2, ngf * 4, 3, 2, norm=norm))


def _decoder(ngf: int, norm: str) -> nn.Sequential:
    # Resize-conv replaces DeblurGAN's ConvTranspose, whose checkerboards show up on flat sky.
    return nn.Sequential(ResizeConvUp(ngf * 4, ngf * 2, norm=norm), ResizeConvUp(ngf * 2, ngf, norm=norm),
                         nn.Conv2d(ngf, 3, 7, padding=3), nn.Tanh())


class ResnetGenerator(DeblurModel):
    pad_multiple = 4

    def __init__(self, cfg: DeblurGANConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.in_channels = 4 if cfg.edge_input else 3
        self.input_kind = "rgb+canny" if cfg.edge_input else "rgb"
        self.encoder = _encoder(self.in_channels, cfg.ngf, cfg.norm)
        self.blocks = nn.Sequential(*[ResBlock(cfg.ngf * 4, cfg.norm, dropout=cfg.dropout) for _ in range(cfg.n_blocks)])
        self.decoder = _decoder(cfg.ngf, cfg.norm)

    def forward(self, frame: torch.Tensor, state: State = ()) -> tuple[torch.Tensor, State]:
        rgb = frame[:, :3]
        y = self.decoder(self.blocks(self.encoder(frame * 2 - 1)))
        # Global residual as in DeblurGAN: the network predicts the correction to the blurred frame.
        return rgb + y, ()


@dataclass(frozen=True)
class DeblurGANFeedbackConfig:
    ngf: int = 32
    n_blocks: int = 6
    norm: str = "instance"
    iterations: int = 4  # the paper unrolls the feedback loop 4 times per frame


class FeedbackGenerator(DeblurModel):
    """DeblurGAN with a ConvLSTM at the bottleneck and a feedback loop.

    Each frame is refined ``iterations`` times: the encoder sees the blurred frame and the current
    estimate, the ConvLSTM updates its state, the decoder predicts a correction. The ConvLSTM state
    (h, c) is carried across iterations *and* across frames, so a video engine passes it on.
    """

    pad_multiple = 4

    def __init__(self, cfg: DeblurGANFeedbackConfig) -> None:
        super().__init__()
        self.cfg = cfg
        hidden = cfg.ngf * 4
        self.state_slots = (StateSlot("h", hidden, 4), StateSlot("c", hidden, 4))
        self.encoder = _encoder(6, cfg.ngf, cfg.norm)
        self.lstm = ConvLSTMCell(hidden, hidden)
        self.blocks = nn.Sequential(*[ResBlock(hidden, cfg.norm) for _ in range(cfg.n_blocks)])
        self.decoder = _decoder(cfg.ngf, cfg.norm)
        # Four corrections of up to +-1 each are summed per frame; with default init the loop is chaotic
        # (outputs beyond [0, 3], float rounding amplified ~3x per frame). A zero last conv starts the
        # loop as the identity and lets training grow the corrections.
        nn.init.zeros_(self.decoder[-2].weight)
        nn.init.zeros_(self.decoder[-2].bias)

    def forward(self, frame: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        h, c = state
        estimate = frame
        for _ in range(self.cfg.iterations):
            feat = self.encoder(torch.cat([frame, estimate], dim=1) * 2 - 1)
            h, c = self.lstm(feat, (h, c))
            estimate = estimate + self.decoder(self.blocks(h))
        return estimate, (h, c)


register("deblurgan", DeblurGANConfig, discriminator="patchgan_wgan",
         description="DeblurGAN ResNet generator (9 blocks), WGAN-GP critic")(ResnetGenerator)
register("deblurgan_edge", DeblurGANEdgeConfig, discriminator="patchgan_wgan",
         description="DeblurGAN with a Canny edge map as 4th input channel")(ResnetGenerator)
register("deblurgan_feedback", DeblurGANFeedbackConfig, discriminator="patchgan_wgan",
         description="DeblurGAN with a bottleneck ConvLSTM feedback loop unrolled 4 times")(FeedbackGenerator)
