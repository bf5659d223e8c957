"""Small reusable blocks shared by every architecture file."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm


def maybe_sn(module: nn.Module, enabled: bool) -> nn.Module:
    return spectral_norm(module) if enabled else module


def norm_layer(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {kind!r}; allowed: batch, instance, none")


class ConvBlock(nn.Sequential):
    """conv -> norm -> activation, the unit most encoders are built from."""

    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: int = 1, norm: str = "none",
                 act: str = "relu", sn: bool = False, bias: bool = True) -> None:
        layers: list[nn.Module] = [maybe_sn(nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=bias), sn)]
        if norm != "none":
            layers.append(norm_layer(norm, cout))
        if act != "none":
            layers.append(activation(act))
        super().__init__(*layers)


def activation(kind: str) -> nn.Module:
    if kind == "relu":
        return nn.ReLU(inplace=True)
    if kind == "lrelu":
        return nn.LeakyReLU(0.2, inplace=True)
    if kind == "gelu":
        return nn.GELU()
    raise ValueError(f"unknown activation {kind!r}; allowed: relu, lrelu, gelu")


class ResBlock(nn.Module):
    """x + conv(act(conv(x))) — the EDSR/DeblurGAN residual block (norm optional)."""

    def __init__(self, channels: int, norm: str = "none", act: str = "relu", res_scale: float = 1.0,
                 channel_attention: bool = False, dropout: float = 0.0) -> None:
        super().__init__()
        layers: list[nn.Module] = [ConvBlock(channels, channels, norm=norm, act=act)]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        layers.append(ConvBlock(channels, channels, norm=norm, act="none"))
        if channel_attention:
            layers.append(ChannelAttention(channels))
        self.body = nn.Sequential(*layers)
        self.res_scale = res_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.res_scale * self.body(x)


class ChannelAttention(nn.Module):
    """Squeeze-and-excitation with 1x1 convs: global average pool -> bottleneck -> sigmoid gate."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = max(channels // reduction, 4)
        self.gate = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(channels, hidden, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, 1),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x)


class SelfAttention(nn.Module):
    """SAGAN self-attention: 1x1 query/key/value, softmax over all positions, output scaled by a
    learned gamma initialised to 0 (so a fresh block is the identity and training starts stable).

    Memory and time are quadratic in the number of positions H*W; callers place it at a
    downsampled level, and ``max_positions`` makes an oversized input fail with a clear message
    instead of exhausting memory.
    """

    def __init__(self, channels: int, max_positions: int = 16384, sn: bool = False) -> None:
        super().__init__()
        inner = max(channels // 8, 1)
        self.query = maybe_sn(nn.Conv2d(channels, inner, 1), sn)
        self.key = maybe_sn(nn.Conv2d(channels, inner, 1), sn)
        self.value = maybe_sn(nn.Conv2d(channels, channels, 1), sn)
        self.gamma = nn.Parameter(torch.zeros(1))
        self.max_positions = max_positions

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        n = h * w
        if not torch.jit.is_tracing() and not torch.compiler.is_compiling() and n > self.max_positions:
            raise ValueError(
                f"self-attention over {h}x{w}={n} positions exceeds the limit of {self.max_positions} "
                f"(memory grows with positions squared); use a smaller frame or --tile"
            )
        q = self.query(x).flatten(2).transpose(1, 2)  # (B, N, C/8)
        k = self.key(x).flatten(2)  # (B, C/8, N)
        attn = torch.softmax(torch.bmm(q, k), dim=-1)  # (B, N, N)
        v = self.value(x).flatten(2)  # (B, C, N)
        out = torch.bmm(v, attn.transpose(1, 2)).view(b, c, h, w)
        return x + self.gamma * out


class ConvLSTMCell(nn.Module):
    """Convolutional LSTM cell with explicit state: ``(x, (h, c)) -> (h1, c1)``.

    Nothing is stored on the module between calls, so the same cell serves training (unrolled
    windows), ONNX export (state as graph inputs/outputs) and streaming (state carried per stream).
    """

    def __init__(self, cin: int, hidden: int, kernel: int = 3) -> None:
        super().__init__()
        self.hidden = hidden
        self.gates = nn.Conv2d(cin + hidden, 4 * hidden, kernel, padding=kernel // 2)

    def forward(self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        h, c = state
        i, f, g, o = self.gates(torch.cat([x, h], dim=1)).chunk(4, dim=1)
        c1 = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h1 = torch.sigmoid(o) * torch.tanh(c1)
        return h1, c1


class ResizeConvUp(nn.Sequential):
    """2x upsampling by nearest resize + conv: avoids ConvTranspose checkerboard artefacts."""

    def __init__(self, cin: int, cout: int, norm: str = "none", act: str = "relu", sn: bool = False) -> None:
        super().__init__(nn.Upsample(scale_factor=2, mode="nearest"), ConvBlock(cin, cout, norm=norm, act=act, sn=sn))


class PixelShuffleUp(nn.Sequential):
    """2x upsampling by conv to 4x channels + PixelShuffle (sub-pixel conv): cheap and checkerboard-free
    when initialised sensibly; the conv runs at the low resolution."""

    def __init__(self, cin: int, cout: int, act: str = "relu") -> None:
        layers: list[nn.Module] = [nn.Conv2d(cin, cout * 4, 3, padding=1), nn.PixelShuffle(2)]
        if act != "none":
            layers.append(activation(act))
        super().__init__(*layers)
