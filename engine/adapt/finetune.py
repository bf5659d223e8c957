"""Fine-tune a copy of a model on the clip's pairs until a deadline, and score models on held-back pairs.

The loop is the trainer's generator step without the critic: windows of frames unrolled with the
recurrent state carried (``vdeblur.train.trainer.unroll``), the content + FFT loss the model was
trained with, Adam, gradient clipping. The base model is never touched: the copy is what changes.
"""

from __future__ import annotations

import contextlib
import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from vdeblur.train.archs.base import DeblurModel
from vdeblur.train.frames import from_uint8, to_uint8
from vdeblur.train.losses import FFTLoss, content_loss
from vdeblur.train.metrics import psnr
from vdeblur.train.motion import GlobalMotion
from vdeblur.train.padding import run_padded
from vdeblur.train.trainer import unroll


@dataclass(frozen=True)
class TuneSettings:
    lr: float = 1e-4
    batch: int = 4
    content: str = "charbonnier"  # what the bundled models were trained with
    fft_weight: float = 0.1
    grad_clip: float = 1.0
    layers: str = "all"  # "all", or "norm+last": only normalisation/bias terms and the output layer
    bf16: bool = True  # autocast where the CPU (AVX512-BF16/AMX) or GPU runs it natively

    def __post_init__(self) -> None:
        if self.lr <= 0 or self.batch < 1:
            raise ValueError(f"lr must be > 0 and batch >= 1; got {self.lr}, {self.batch}")
        if self.layers not in ("all", "norm+last"):
            raise ValueError(f"layers must be 'all' or 'norm+last'; got {self.layers!r}")


@dataclass(frozen=True)
class TuneRun:
    model: DeblurModel
    steps: int
    last_loss: float


def finetune(base: DeblurModel, blurred: np.ndarray, sharp: np.ndarray, *, deadline: float,
             settings: TuneSettings = TuneSettings(), seed: int = 0,
             progress: Callable[[int, float], None] | None = None, steps: int | None = None) -> TuneRun:
    """Train a copy of ``base`` on (N, T, S, S, 3) uint8 pairs until ``time.monotonic()`` passes
    ``deadline``, or for exactly ``steps`` steps when given (then the deadline is not looked at);
    ``progress(step, loss)`` after every step."""
    device = next(base.parameters()).device
    model = copy.deepcopy(base).train()
    trainable = _trainable(model, settings.layers)
    opt = torch.optim.Adam(trainable, lr=settings.lr, betas=(0.9, 0.9))
    content, fft = content_loss(settings.content), FFTLoss() if settings.fft_weight > 0 else None
    x_all, y_all = from_uint8(blurred), from_uint8(sharp)  # (N, T, 3, S, S)
    gen = torch.Generator().manual_seed(seed)
    done, loss_value = 0, float("nan")
    while done < steps if steps is not None else time.monotonic() < deadline:
        pick = torch.randint(len(x_all), (min(settings.batch, len(x_all)),), generator=gen)
        x, y = _augment(x_all[pick], y_all[pick], gen)
        x, y = x.to(device), y.to(device).flatten(0, 1)
        with _autocast(device, settings.bf16):
            out = unroll(model, x, model.input_kind)  # (B*T, 3, S, S)
        loss = content(out.float(), y)
        if fft is not None:
            loss = loss + settings.fft_weight * fft(out.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(trainable, settings.grad_clip)
        opt.step()
        done, loss_value = done + 1, loss.item()
        if progress is not None:
            progress(done, loss_value)
    return TuneRun(model.eval(), done, loss_value)


# (t, frame, state) -> the motions an rgb+motion model is told for frame t
MotionsFor = Callable[[int, torch.Tensor, Any], Sequence[GlobalMotion]]


@torch.no_grad()
def run_clip(model: DeblurModel, frames: np.ndarray, motions: MotionsFor | None = None) -> np.ndarray:
    """(T, H, W, 3) uint8 -> the model's output for each frame, in order with its state carried, as the engine runs.

    ``motions``: for an ``rgb+motion`` model, what it is told of frame t's motion onto its previous frame,
    given t, the frame and the state (None: estimated as the engine does)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    x = from_uint8(frames).to(device)  # (T, 3, H, W)
    state = model.initial_state(1, *x.shape[-2:], device=device)
    out = []
    for t in range(x.shape[0]):
        told = motions(t, x[t:t + 1], state) if motions is not None and model.input_kind == "rgb+motion" else None
        y, state = run_padded(model, x[t:t + 1], state, told)
        out.append(y[0])
    model.train(was_training)
    return to_uint8(torch.stack(out))


def pairs_psnr(model: DeblurModel, blurred: np.ndarray, sharp: np.ndarray) -> np.ndarray:
    """(N,) mean PSNR of each held-back clip ((N, T, S, S, 3) uint8), frame by frame with the state carried."""
    return np.asarray([np.mean([psnr_u8(o, t) for o, t in zip(run_clip(model, b), s)]) for b, s in zip(blurred, sharp)])


def psnr_u8(a: np.ndarray, b: np.ndarray) -> float:
    """The project's PSNR (``train.metrics.psnr``) of two (H, W, 3) uint8 images, dB, capped at 100
    for identical ones as ``psnr_ssim_uint8`` does."""
    pred, target = (torch.from_numpy(x).permute(2, 0, 1)[None] for x in (a, b))
    return min(100.0, float(psnr(pred, target)[0]))


def restore(model: DeblurModel, rgb: np.ndarray, repeats: int = 3) -> np.ndarray:
    """(H, W, 3) uint8 -> the model's output for it, the frame fed ``repeats`` times so the recurrent
    state has settled on it as it would have mid-clip."""
    return run_clip(model, np.stack([rgb] * repeats))[-1]


def _trainable(model: nn.Module, layers: str) -> list[nn.Parameter]:
    params = list(model.parameters())
    if layers == "norm+last":
        last = params[-2:]  # the output convolution's weight and bias
        keep = {id(p) for p in last} | {id(p) for n, p in model.named_parameters() if p.dim() == 1}
        for p in params:
            p.requires_grad_(id(p) in keep)
    return [p for p in params if p.requires_grad]


def _augment(x: torch.Tensor, y: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """The same random flip / transpose of input and target (blur has no preferred direction)."""
    k = int(torch.randint(8, (1,), generator=gen))
    if k & 1:
        x, y = x.flip(-1), y.flip(-1)
    if k & 2:
        x, y = x.flip(-2), y.flip(-2)
    if k & 4:
        x, y = x.transpose(-1, -2), y.transpose(-1, -2)
    return x.contiguous(), y.contiguous()


def _autocast(device: torch.device, bf16: bool) -> contextlib.AbstractContextManager:
    if bf16 and (device.type == "cuda" or torch.backends.mkldnn.is_available() and _cpu_has_bf16()):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _cpu_has_bf16() -> bool:
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags
