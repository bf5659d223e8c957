"""70x70 PatchGAN discriminator (pix2pix) with optional spectral norm / no norm for WGAN-GP."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from ..blocks import maybe_sn, norm_layer


@dataclass(frozen=True)
class PatchGANConfig:
    in_channels: int = 6  # conditional: blurred input and (fake or real) sharp image, concatenated
    base_channels: int = 64
    layers: int = 3  # 3 stride-2 convs + 2 stride-1 convs of kernel 4 give the 70x70 receptive field
    norm: str = "batch"
    spectral_norm: bool = False


class PatchGAN(nn.Module):
    def __init__(self, cfg: PatchGANConfig) -> None:
        super().__init__()
        self.cfg = cfg
        c, sn = cfg.base_channels, cfg.spectral_norm
        # Spectral norm replaces the norm layer (as in SAGAN); WGAN-GP forbids batch norm in the critic
        # because the gradient penalty is per-sample.
        norm = "none" if sn else cfg.norm
        layers: list[nn.Module] = [maybe_sn(nn.Conv2d(cfg.in_channels, c, 4, 2, 1), sn), nn.LeakyReLU(0.2, True)]
        cin = c
        for i in range(1, cfg.layers + 1):
            cout = c * min(2 ** i, 8)
            stride = 2 if i < cfg.layers else 1
            layers += [maybe_sn(nn.Conv2d(cin, cout, 4, stride, 1), sn), norm_layer(norm, cout), nn.LeakyReLU(0.2, True)]
            cin = cout
        layers.append(maybe_sn(nn.Conv2d(cin, 1, 4, 1, 1), sn))
        self.net = nn.Sequential(*layers)

    def forward(self, blurred: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        # Both in [0, 1]; the critic sees them in [-1, 1] like the generator.
        return self.net(torch.cat([blurred, image], dim=1) * 2 - 1)  # (B, 1, H/8 - 2, W/8 - 2)


_DISCRIMINATORS: dict[str, Callable[[], PatchGAN]] = {
    "patchgan": lambda: PatchGAN(PatchGANConfig()),
    "patchgan_sn": lambda: PatchGAN(PatchGANConfig(spectral_norm=True)),
    "patchgan_wgan": lambda: PatchGAN(PatchGANConfig(norm="instance")),
}


def build_discriminator(name: str) -> PatchGAN:
    try:
        return _DISCRIMINATORS[name]()
    except KeyError:
        raise KeyError(f"unknown discriminator {name!r}; allowed: {', '.join(sorted(_DISCRIMINATORS))}") from None
