"""NAFNet (Chen et al., "Simple Baselines for Image Restoration", ECCV 2022), stateless, with the
parameter names of the authors' released checkpoints, so their ``.pth`` files load unchanged.

A U-Net of NAF blocks: channel LayerNorm -> 1x1 -> depthwise 3x3 -> SimpleGate (split the channels
in two halves and multiply them) -> simplified channel attention (global mean -> 1x1, a scale per
channel) -> 1x1, then a feed-forward half with the same gate; both halves are residual with a
learned per-channel scale (``beta``, ``gamma``). No activation function and no normalisation across
the frame besides the channel attention's mean.

``nafnet_local`` is the same network with the authors' test-time local converter (TLC, Chu et al.
2021): the channel attention averages a window the size it saw in training (1.5x the 256 px training
crops, scaled to each level) instead of the whole frame, which is how the released GoPro and REDS
scores were measured. Frames no larger than that window get the global mean, as in ``nafnet``.

The authors pad frames with zeros to a multiple of 16 (the stride of the deepest level) inside the
forward and crop afterwards; this does the same, so ``pad_multiple`` is 1 and the engine's own
reflection padding never changes what the network sees.
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


@dataclass(frozen=True)
class NAFNetConfig:
    # The released GoPro/REDS files (options/test/{GoPro,REDS}/NAFNet-width*.yml of the authors).
    width: int = 32
    enc_blocks: tuple[int, ...] = (1, 1, 1, 28)
    middle_blocks: int = 1
    dec_blocks: tuple[int, ...] = (1, 1, 1, 1)
    img_channels: int = 3
    # TLC only: the square training crop; the attention window at stride s is (train_size / s) * 1.5.
    train_size: int = 256
    local_attention: bool = False


@dataclass(frozen=True)
class NAFNetLocalConfig(NAFNetConfig):
    local_attention: bool = True


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channels of each pixel (eps 1e-6, as NAFNet), written with mean/var so the
    exported graph computes exactly what the authors' formula does."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mu = x.mean(1, keepdim=True)
        var = (x - mu).pow(2).mean(1, keepdim=True)
        y = (x - mu) / (var + self.eps).sqrt()
        return self.weight[None, :, None, None] * y + self.bias[None, :, None, None]


def _window_mean_1d(x: torch.Tensor, dim: int, kernel: int) -> torch.Tensor:
    """Mean of a ``kernel``-long window along ``dim`` (clipped to the length), every position kept.

    The windows that fit inside the frame are averaged from a cumulative sum (O(length), whatever the
    window); positions near the border, where no window is centred, repeat the nearest one (the
    authors' replicate padding). With ``kernel >= length`` every position gets the global mean.
    Written without Python branches on the length so one exported graph serves every frame size.
    """
    n = x.shape[dim]
    idx = torch.arange(n, device=x.device)
    # Integer min/max, not clamp: TensorRT has Min/Max for integers but Clip only for floats.
    k = torch.minimum(torch.full_like(idx[:1], kernel), idx[-1:] + 1)  # (1,): the window actually used
    first = torch.minimum(torch.maximum(idx - (k - 1) // 2, torch.zeros_like(k)), n - k)  # each position's window start
    zero = torch.zeros_like(x.narrow(dim, 0, 1))
    cum = torch.cat([zero, x.cumsum(dim)], dim)  # cum[i] = sum of x[:i]
    end = torch.index_select(cum, dim, first + k)
    start = torch.index_select(cum, dim, first)
    return (end - start) / k.to(x.dtype)


class WindowMean(nn.Module):
    """The channel attention's pooling: global mean, or (TLC) the mean of a ``kernel`` x ``kernel``
    window around each pixel. A square mean is a row mean of column means, so two 1-D passes."""

    def __init__(self, kernel: int | None) -> None:
        super().__init__()
        self.kernel = kernel

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kernel is None:
            return x.mean((2, 3), keepdim=True)
        return _window_mean_1d(_window_mean_1d(x, 2, self.kernel), 3, self.kernel)


class NAFBlock(nn.Module):
    def __init__(self, c: int, pool_kernel: int | None) -> None:
        super().__init__()
        dw = 2 * c  # both expansions are 2 in every released configuration
        self.norm1 = ChannelLayerNorm(c)
        self.conv1 = nn.Conv2d(c, dw, 1)
        self.conv2 = nn.Conv2d(dw, dw, 3, padding=1, groups=dw)
        # "sca.1" is the name the released files give the attention conv (index 0 is the pooling).
        self.sca = nn.Sequential(WindowMean(pool_kernel), nn.Conv2d(dw // 2, dw // 2, 1))
        self.conv3 = nn.Conv2d(dw // 2, c, 1)
        self.norm2 = ChannelLayerNorm(c)
        self.conv4 = nn.Conv2d(c, 2 * c, 1)
        self.conv5 = nn.Conv2d(c, c, 1)
        # Zero scales make a fresh block the identity (the authors' init).
        self.beta = nn.Parameter(torch.zeros(1, c, 1, 1))
        self.gamma = nn.Parameter(torch.zeros(1, c, 1, 1))

    @staticmethod
    def _gate(x: torch.Tensor) -> torch.Tensor:
        a, b = x.chunk(2, dim=1)
        return a * b

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        x = self._gate(self.conv2(self.conv1(self.norm1(inp))))
        x = self.conv3(x * self.sca(x))
        y = inp + x * self.beta
        return y + self.conv5(self._gate(self.conv4(self.norm2(y)))) * self.gamma


class NAFNet(DeblurModel):
    pad_multiple = 1  # the forward pads itself, with zeros, as the authors do (see the module docstring)

    def __init__(self, cfg: NAFNetConfig) -> None:
        super().__init__()
        if len(cfg.enc_blocks) != len(cfg.dec_blocks):
            raise ValueError(f"enc_blocks {cfg.enc_blocks} and dec_blocks {cfg.dec_blocks} must have the same length")
        self.cfg = cfg
        self.in_channels = cfg.img_channels
        self.stride = 2 ** len(cfg.enc_blocks)

        def kernel(level: int) -> int | None:
            # The window the attention saw at this level during training, 1.5x as TLC prescribes.
            if not cfg.local_attention:
                return None
            return (cfg.train_size >> level) * int(cfg.train_size * 1.5) // cfg.train_size

        chan = cfg.width
        self.intro = nn.Conv2d(cfg.img_channels, chan, 3, padding=1)
        self.encoders, self.downs = nn.ModuleList(), nn.ModuleList()
        for level, n in enumerate(cfg.enc_blocks):
            self.encoders.append(nn.Sequential(*[NAFBlock(chan, kernel(level)) for _ in range(n)]))
            self.downs.append(nn.Conv2d(chan, 2 * chan, 2, 2))
            chan *= 2
        depth = len(cfg.enc_blocks)
        self.middle_blks = nn.Sequential(*[NAFBlock(chan, kernel(depth)) for _ in range(cfg.middle_blocks)])
        self.ups, self.decoders = nn.ModuleList(), nn.ModuleList()
        for i, n in enumerate(cfg.dec_blocks):
            # 1x1 to 2x channels, then PixelShuffle: half the channels at twice the resolution.
            self.ups.append(nn.Sequential(nn.Conv2d(chan, chan * 2, 1, bias=False), nn.PixelShuffle(2)))
            chan //= 2
            self.decoders.append(nn.Sequential(*[NAFBlock(chan, kernel(depth - 1 - i)) for _ in range(n)]))
        self.ending = nn.Conv2d(cfg.width, cfg.img_channels, 3, padding=1)

    def forward(self, frame: torch.Tensor, state: State = ()) -> tuple[torch.Tensor, State]:
        h, w = frame.shape[-2:]
        s = self.stride
        x0 = F.pad(frame, (0, (s - w % s) % s, 0, (s - h % s) % s))  # (B, C, H16, W16), zeros as the authors
        x = self.intro(x0)
        skips = []
        for encoder, down in zip(self.encoders, self.downs):
            x = encoder(x)
            skips.append(x)
            x = down(x)
        x = self.middle_blks(x)
        for decoder, up, skip in zip(self.decoders, self.ups, reversed(skips)):
            x = decoder(up(x) + skip)
        out = self.ending(x) + x0
        # The authors' evaluation clamps to [0, 1] before rounding to 8 bits.
        return out[..., :h, :w].clamp(0, 1), ()


register("nafnet", NAFNetConfig, discriminator="",
         description="NAFNet (Chen et al. 2022), released GoPro/REDS layout; global channel attention")(NAFNet)
register("nafnet_local", NAFNetLocalConfig, discriminator="",
         description="NAFNet with the test-time local converter (TLC), as its released scores were measured")(NAFNet)


def config_from_shapes(shapes: Mapping[str, torch.Size]) -> dict[str, Any]:
    """The config of a NAFNet state dict, read from its names and shapes (KeyError if it is none)."""

    def blocks(prefix: str) -> int:
        return sum(1 for k in shapes if k.startswith(prefix) and k.endswith(".conv1.weight"))

    levels = sum(1 for k in shapes if k.startswith("downs.") and k.endswith(".weight"))
    width, img_channels = shapes["intro.weight"][:2]
    return {"width": int(width), "img_channels": int(img_channels), "middle_blocks": blocks("middle_blks."),
            "enc_blocks": tuple(blocks(f"encoders.{i}.") for i in range(levels)),
            "dec_blocks": tuple(blocks(f"decoders.{i}.") for i in range(levels))}
