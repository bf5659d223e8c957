"""vdeblur_deep: the quality default. Depth where blur is undone, and a recurrent path at fine scale.

What ``vdeblur_fast`` lacks for 8-15 px camera shake, and what this adds (docs/model_study.md):
- depth at low resolution: residual blocks at every level, most of them at strides 8 and 16 where
  they are cheap, with dilated convolutions there, so the receptive field (~500 px) spans the
  longest streak and its context several times over;
- multi-scale input (as MIMO-UNet): the frame, pixel-unshuffled to each encoder stride, is added
  to that level through a 1x1 projection, so the coarse levels see exact pixels, not only what the
  finer levels kept;
- two recurrent states, both explicit: a ConvLSTM at stride 16 (scene and motion context) and the
  previous frame's stride-4 decoder features, fed back into the stride-4 encoder level through a
  3x3 conv (+-4 px of shift tolerance at full resolution). Handheld shake blurs some frames less
  than others; this path lets a sharper previous frame lend detail to a blurred one, with no
  look-ahead. Its conv starts at zero, so an untrained path changes nothing;
- optionally (``aligned_previous``, the bundled weights) the previous input frame itself, warped onto
  the current one by the global camera motion estimated outside (train/motion.py), which reaches the
  tens of pixels handheld shake moves a picture between frames (docs/aligned_frames.md);
- the deployment rules of the project: no normalisation layers (nothing FP16-fragile or
  size-dependent), PixelShuffle upsampling, no deformable conv (grid_sample only in the optional
  aligned feedback, ``feedback_align``: TensorRT >= 8.5), a global residual with a
  zero-initialised head (an untrained model is the identity).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..blocks import ConvBlock, ConvLSTMCell, activation
from ..motion import MOTION_CHANNELS
from ..registry import register
from .base import DeblurModel, State, StateSlot


@dataclass(frozen=True)
class DeepConfig:
    channels: tuple[int, int, int, int] = (32, 48, 96, 128)  # widths at strides 2, 4, 8, 16
    # Residual blocks per encoder level and per decoder level (strides 2, 4, 8). 14 in all since the
    # photograph pool: with data that no longer limits it, the depth at strides 8-16 bought +0.03 to
    # +0.12 dB on every held-out set at equal training (docs/model_study.md, seventh stage); 7 before.
    enc_blocks: tuple[int, int, int, int] = (0, 1, 4, 6)
    dec_blocks: tuple[int, int, int] = (0, 2, 1)
    # Dilation of the second conv in each residual block at strides 8 and 16 (1 = plain 3x3).
    dilation: int = 2
    lstm_hidden: int = 64  # ConvLSTM at stride 16; 0 = none
    feedback: int = 24  # channels of the previous frame's stride-4 features carried as state; 0 = none
    multiscale_input: bool = True
    # Warp the previous frame's stride-4 features to the current frame before a second injection, at
    # the stride-4 decoder level, by a flow estimated from the current features and the previous ones
    # (a tiny two-level flow head, +-24 px of reach). Starts as "no motion, no injection", so it can be
    # grown onto a trained model (load_grown). Needs feedback > 0.
    feedback_align: bool = False
    # The previous decoded frame as a second view, warped onto the current one by the global camera
    # motion estimated between the two (train/motion.py; input kind rgb+motion: RGB + displacement,
    # validity and confidence), injected at the input and at stride 4 through convs that start at
    # zero, so it can be grown onto a trained model. The frame is kept as the first state slot.
    aligned_previous: bool = False
    # Where the aligned frame enters: beside the frame in enc1's first conv (full resolution) and at
    # stride 4, or (False) at stride 4 only, which spares the full-resolution conv most of what the
    # aligned input adds to the network's CPU time (docs/aligned_frames.md, "What it costs").
    aligned_first_conv: bool = True
    act: str = "relu"

    def __post_init__(self) -> None:
        if len(self.channels) != 4 or len(self.enc_blocks) != 4 or len(self.dec_blocks) != 3:
            raise ValueError(f"vdeblur_deep has 4 levels: channels/enc_blocks need 4 values, dec_blocks 3; got {self}")
        if self.dilation < 1 or self.lstm_hidden < 0 or self.feedback < 0:
            raise ValueError(f"dilation must be >= 1, lstm_hidden and feedback >= 0; got {self}")
        if self.feedback_align and not self.feedback:
            raise ValueError(f"feedback_align warps the fed-back features: it needs feedback > 0; got {self}")
        if not self.aligned_first_conv and not self.aligned_previous:
            raise ValueError(f"aligned_first_conv = false says where the aligned frame enters: it needs "
                             f"aligned_previous = true; got {self}")


ALIGNED_CHANNELS = 5  # what the aligned previous frame adds: warped RGB, validity, confidence


class DilatedResBlock(nn.Module):
    """x + conv_d(act(conv(x))): the second conv dilated, which widens the receptive field for free."""

    def __init__(self, channels: int, dilation: int, act: str) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), activation(act),
                                  nn.Conv2d(channels, channels, 3, padding=dilation, dilation=dilation))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def _blocks(n: int, channels: int, dilation: int, act: str) -> nn.Sequential:
    return nn.Sequential(*[DilatedResBlock(channels, dilation, act) for _ in range(n)])


def warp(features: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """features (B, C, H, W) sampled at pixel + flow (B, 2, H, W: x, y in pixels), bilinear, edges clamped.

    The grid is computed in FP32 whatever the features are: in FP16, normalised coordinates of a
    320-cell-wide map (720p at stride 4) would be off by ~0.1 cell. GridSample is in TensorRT's ONNX
    parser since 8.5 (FP32/FP16; export/trt_support.py).
    """
    h, w = features.shape[-2:]
    flow = flow.float()
    ys = torch.arange(h, device=flow.device, dtype=torch.float32).view(1, h, 1)
    xs = torch.arange(w, device=flow.device, dtype=torch.float32).view(1, 1, w)
    # align_corners=False: normalised -1 and 1 are the outer edges of the map, pixel i's centre is (2i + 1) / n - 1.
    gx = (2 * (xs + flow[:, 0]) + 1) / w - 1
    gy = (2 * (ys + flow[:, 1]) + 1) / h - 1
    grid = torch.stack([gx, gy], dim=-1)  # (B, H, W, 2)
    out = nn.functional.grid_sample(features.float(), grid, mode="bilinear", padding_mode="border", align_corners=False)
    return out.to(features.dtype)


class DeepRecurrentDeblur(DeblurModel):
    pad_multiple = 16

    def __init__(self, cfg: DeepConfig) -> None:
        super().__init__()
        self.cfg = cfg
        c1, c2, c3, c4 = cfg.channels
        b1, b2, b3, b4 = cfg.enc_blocks
        d = cfg.dilation
        slots = []
        if cfg.aligned_previous:
            # The model's own input frame, so the next step can warp it: slot 0 by the rgb+motion contract.
            slots.append(StateSlot("previous", 3, 1))
            self.input_kind, self.in_channels = "rgb+motion", 3 + MOTION_CHANNELS
        if cfg.lstm_hidden:
            slots += [StateSlot("h", cfg.lstm_hidden, 16), StateSlot("c", cfg.lstm_hidden, 16)]
        if cfg.feedback:
            slots.append(StateSlot("f", cfg.feedback, 4))
        self.state_slots = tuple(slots)

        self.unshuffle2 = nn.PixelUnshuffle(2)
        self.enc1 = nn.Sequential(ConvBlock(12, c1, act=cfg.act), _blocks(b1, c1, 1, cfg.act))
        self.down2 = ConvBlock(c1, c2, stride=2, act=cfg.act)
        self.enc2 = _blocks(b2, c2, 1, cfg.act)
        self.down3 = ConvBlock(c2, c3, stride=2, act=cfg.act)
        self.enc3 = _blocks(b3, c3, d, cfg.act)
        self.down4 = ConvBlock(c3, c4, stride=2, act=cfg.act)
        self.enc4 = _blocks(b4, c4, d, cfg.act)
        if cfg.multiscale_input:
            # Frame pixels unshuffled to strides 4, 8, 16 (48, 192, 768 channels) -> each level's width.
            self.inject = nn.ModuleList(nn.Conv2d(3 * s * s, c, 1) for s, c in ((4, c2), (8, c3), (16, c4)))
        if cfg.feedback:
            self.feedback_in = nn.Conv2d(cfg.feedback, c2, 3, padding=1)
            nn.init.zeros_(self.feedback_in.weight)
            nn.init.zeros_(self.feedback_in.bias)
            self.feedback_out = nn.Conv2d(c2, cfg.feedback, 1)
            if cfg.feedback_align:
                # Flow in stride-4 cells from (current encoder features, previous frame's features),
                # estimated at stride 8 for reach and upsampled; zero at the start (no motion).
                self.flow = nn.Sequential(ConvBlock(c2 + cfg.feedback, c2, stride=2, act=cfg.act),
                                          nn.Conv2d(c2, c2, 3, padding=2, dilation=2), activation(cfg.act),
                                          nn.Conv2d(c2, 2, 3, padding=1))
                self.aligned_in = nn.Conv2d(cfg.feedback, c2, 3, padding=1)
                for conv in (self.flow[-1], self.aligned_in):
                    nn.init.zeros_(conv.weight)
                    nn.init.zeros_(conv.bias)
        if cfg.aligned_previous:
            # Warped previous frame (3), validity, confidence: unshuffled like the frame, added before the
            # first activation (as if they were input channels of enc1's conv) and at stride 4.
            convs = []
            if cfg.aligned_first_conv:
                self.previous_in = nn.Conv2d(ALIGNED_CHANNELS * 4, c1, 3, padding=1)
                convs.append(self.previous_in)
            self.previous_inject = nn.Conv2d(ALIGNED_CHANNELS * 16, c2, 1)
            for conv in (*convs, self.previous_inject):
                nn.init.zeros_(conv.weight)
                nn.init.zeros_(conv.bias)
        if cfg.lstm_hidden:
            self.lstm = ConvLSTMCell(c4, cfg.lstm_hidden)
            self.fuse = ConvBlock(c4 + cfg.lstm_hidden, c4, kernel=1, act=cfg.act)
        self.up3 = nn.Sequential(nn.Conv2d(c4, c3 * 4, 1), nn.PixelShuffle(2))
        self.dec3 = nn.Sequential(ConvBlock(c3, c3, act=cfg.act), _blocks(cfg.dec_blocks[2], c3, d, cfg.act))
        self.up2 = nn.Sequential(nn.Conv2d(c3, c2 * 4, 1), nn.PixelShuffle(2))
        self.dec2 = nn.Sequential(ConvBlock(c2, c2, act=cfg.act), _blocks(cfg.dec_blocks[1], c2, 1, cfg.act))
        self.up1 = nn.Sequential(nn.Conv2d(c2, c1 * 4, 1), nn.PixelShuffle(2))
        self.dec1 = nn.Sequential(ConvBlock(c1, c1, act=cfg.act), _blocks(cfg.dec_blocks[0], c1, 1, cfg.act))
        self.head = nn.Sequential(nn.Conv2d(c1, 12, 3, padding=1), nn.PixelShuffle(2))
        nn.init.zeros_(self.head[0].weight)
        nn.init.zeros_(self.head[0].bias)

    def load_grown(self, state: dict[str, torch.Tensor]) -> list[str]:
        """Weights of a vdeblur_deep with fewer residual blocks per level or without the aligned
        feedback path (same widths and state).

        The blocks it lacks start as the identity (their second conv zero, as the head starts) and an
        added aligned path injects nothing, so the grown model computes exactly what the smaller one
        did and training goes on from there: a way to add depth or alignment without throwing away
        CPU-hours of training. One path may also be dropped: the aligned frame's full-resolution conv
        (``previous_in``) when this model takes the aligned frame at stride 4 only
        (``aligned_first_conv = false``); that model starts near, not at, the saved one.
        """
        own = self.state_dict()
        droppable = {k for k in state if k.startswith("previous_in.")} if not self.cfg.aligned_first_conv else set()
        state = {k: v for k, v in state.items() if k not in droppable}
        unexpected = sorted(set(state) - set(own))
        bad_shape = sorted(k for k in set(state) & set(own) if state[k].shape != own[k].shape)
        if unexpected or bad_shape:
            raise ValueError(f"vdeblur_deep can grow only by residual blocks or the aligned feedback path: "
                             f"the smaller model has {unexpected[:3]} "
                             f"that this one lacks, and {bad_shape[:3]} of another shape")
        missing = set(own) - set(state)
        added = set()
        for name, module in self.named_modules():
            keys = {f"{name}.{k}" for k in module.state_dict()}
            if isinstance(module, DilatedResBlock) and keys <= missing:
                nn.init.zeros_(module.body[2].weight)
                nn.init.zeros_(module.body[2].bias)
                added |= keys
            elif name in ("flow", "aligned_in", "previous_in", "previous_inject") and keys <= missing:
                added |= keys  # the aligned paths start as "no motion, no injection" (see __init__)
        if missing - added:
            raise ValueError(f"vdeblur_deep can grow only by whole residual blocks; the smaller model lacks "
                             f"{sorted(missing - added)[:3]}")
        self.load_state_dict({**self.state_dict(), **state})
        return sorted(added)

    def forward(self, frame: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        cfg = self.cfg
        new_state: tuple[torch.Tensor, ...] = ()
        if cfg.aligned_previous:
            frame, field = frame[:, :3], frame[:, 3:]
            aligned = self.aligned_previous_view(state[0], field)  # (B, 5, H, W)
            new_state, state = (frame,), state[1:]
        x = frame * 2 - 1
        if cfg.aligned_previous and cfg.aligned_first_conv:
            # enc1's conv and previous_in as one conv over both inputs (the same sum): one 32-channel conv
            # runs ~2x faster on the CPU than a 12- and a 20-channel one.
            conv, act = self.enc1[0]
            weight = torch.cat([conv.weight, self.previous_in.weight], dim=1)
            both = torch.cat([self.unshuffle2(x), self.unshuffle2(aligned)], dim=1)
            s1 = self.enc1[1](act(nn.functional.conv2d(both, weight, conv.bias + self.previous_in.bias, padding=1)))
        else:
            s1 = self.enc1(self.unshuffle2(x))
        s2 = self.down2(s1)
        if cfg.multiscale_input:
            s2 = s2 + self.inject[0](nn.functional.pixel_unshuffle(x, 4))
        if cfg.aligned_previous:
            s2 = s2 + self.previous_inject(nn.functional.pixel_unshuffle(aligned, 4))
        if cfg.feedback:
            s2 = s2 + self.feedback_in(state[-1])
        s2 = self.enc2(s2)
        s3 = self.down3(s2)
        if cfg.multiscale_input:
            s3 = s3 + self.inject[1](nn.functional.pixel_unshuffle(x, 8))
        s3 = self.enc3(s3)
        s4 = self.down4(s3)
        if cfg.multiscale_input:
            s4 = s4 + self.inject[2](nn.functional.pixel_unshuffle(x, 16))
        s4 = self.enc4(s4)
        if cfg.lstm_hidden:
            h, c = self.lstm(s4, (state[0], state[1]))
            s4 = self.fuse(torch.cat([s4, h], dim=1))
            new_state = (*new_state, h, c)
        y = self.dec3(self.up3(s4) + s3)
        skip2 = s2
        if cfg.feedback_align:
            previous = state[-1]
            flow = self.flow(torch.cat([s2, previous], dim=1))
            flow = nn.functional.interpolate(flow, size=s2.shape[-2:], mode="bilinear", align_corners=False)
            skip2 = s2 + self.aligned_in(warp(previous, flow))
        y = self.dec2(self.up2(y) + skip2)
        if cfg.feedback:
            new_state = (*new_state, self.feedback_out(y))
        y = self.dec1(self.up1(y) + s1)
        return frame + self.head(y), new_state

    @staticmethod
    def aligned_previous_view(previous: torch.Tensor, field: torch.Tensor) -> torch.Tensor:
        """The previous frame warped onto the current one, centred as the frame is and zero where it
        has no pixel, with the validity and confidence channels: (B, 5, H, W)."""
        flow, valid, confidence = field[:, :2], field[:, 2:3], field[:, 3:4]
        warped = (warp(previous, flow) * 2 - 1) * valid
        return torch.cat([warped, valid, confidence], dim=1)


register("vdeblur_deep", DeepConfig, discriminator="patchgan",
         description="vdeblur quality default: deep multi-scale recurrent U-Net, dilated blocks at strides 8/16, "
                     "ConvLSTM at stride 16 and fine-scale (stride 4) feedback of the previous frame")(DeepRecurrentDeblur)
