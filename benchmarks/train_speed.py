"""Training-step cost per precision and memory layout (``python -m vdeblur.benchmarks.train_speed``).

One thing changes per row: ``train.amp`` (off / bf16) and ``train.channels_last``. Every row runs
the project's own ``Trainer.train_step`` (forward over the window with the state carried, loss,
backward, gradient clip, Adam, EMA) on the same batch, and reports CPU seconds per step (process
time, so a busy machine inflates it less than wall time) and steps per second. The figure that
matters for training on a CPU is CPU-s per step: the budget of the model study and of
``--cpu-limit`` is counted in it.

The last columns compare the gradient of one step under each setting with the FP32 one (cosine and
norm ratio, from the same weights and batch: the bundled trained weights where the model has them,
so that every layer has a gradient): the speed is worth nothing if the gradient changes.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from vdeblur import bundled_model_path
from vdeblur.train.checkpoint import load_weights
from vdeblur.train.config import load_config
from vdeblur.train.distributed import DistInfo
from vdeblur.train.trainer import Trainer

SETTINGS = ((False, False), (False, True), (True, False), (True, True))  # (bf16, channels_last)


@dataclass(frozen=True)
class StepCost:
    amp: str
    channels_last: bool
    cpu_s: float
    wall_s: float
    grad_cos: float
    grad_norm_ratio: float


def _trainer(model: str, sets: list[str], out: Path, device: torch.device) -> Trainer:
    cfg = load_config(model, ["data.kind=synthetic", "data.sources=['skimage']", "data.val_sources=[]",
                              "data.val_sequences=1", "data.length=64", *sets])
    return Trainer(cfg, out, DistInfo(0, 1, device))


def _gradient(trainer: Trainer, batch: dict[str, torch.Tensor], weights: dict[str, torch.Tensor]) -> torch.Tensor:
    """The generator's gradient of one step's loss from ``weights`` (the optimiser is not stepped)."""
    trainer.g.load_state_dict(weights)
    trainer.g.zero_grad(set_to_none=True)
    blurred, sharp = batch["blurred"].to(trainer.device), batch["sharp"].to(trainer.device).flatten(0, 1)
    with trainer.autocast():
        fake = trainer.unroll(trainer.g, blurred)
    sum(trainer.reconstruction_terms(fake, sharp).values()).backward()
    return torch.cat([p.grad.flatten().float() for p in trainer.g.parameters() if p.grad is not None])


def measure(model: str, *, batch: int, crop: int, steps: int, device: torch.device) -> list[StepCost]:
    rows, reference = [], None
    with tempfile.TemporaryDirectory() as tmp:
        base = _trainer(model, [f"train.batch={batch}", f"train.crop={crop}"], Path(tmp) / "base", device)
        data = next(base.batches())
        if bundled_model_path(model).is_file():  # trained weights: the zero-initialised head of a fresh model
            load_weights(base.g, bundled_model_path(model))  # would leave the body with no gradient to compare
        weights = {k: v.clone() for k, v in base.g.state_dict().items()}
        for bf16, cl in SETTINGS:
            amp = "bf16" if bf16 else "off"
            sets = [f"train.batch={batch}", f"train.crop={crop}", f"train.amp={amp}", f"train.channels_last={str(cl).lower()}"]
            trainer = _trainer(model, sets, Path(tmp) / f"{amp}-{cl}", device)
            grad = _gradient(trainer, data, weights)
            reference = grad if reference is None else reference
            for _ in range(2):  # warm-up: oneDNN primitive creation, allocator
                trainer.train_step(data)
            if device.type == "cuda":
                torch.cuda.synchronize()
            cpu, wall = time.process_time(), time.perf_counter()
            for _ in range(steps):
                trainer.train_step(data)
            if device.type == "cuda":
                torch.cuda.synchronize()
            cos = float(grad @ reference / (grad.norm() * reference.norm()))
            rows.append(StepCost(amp, cl, (time.process_time() - cpu) / steps, (time.perf_counter() - wall) / steps,
                                 cos, float(grad.norm() / reference.norm())))
    return rows


def table(rows: list[StepCost]) -> str:
    base = rows[0].cpu_s
    lines = ["| train.amp | train.channels_last | CPU-s per step | wall s per step | speed-up (CPU-s) | grad cos vs FP32 | grad norm ratio |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r.amp} | {str(r.channels_last).lower()} | {r.cpu_s:.3f} | {r.wall_s:.3f} | {base / r.cpu_s:.2f}x "
                     f"| {r.grad_cos:.5f} | {r.grad_norm_ratio:.4f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="vdeblur_deep", help="preset name (default: vdeblur_deep)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--steps", type=int, default=8, help="timed steps per row (after 2 warm-up steps)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    print(f"{args.model}, batch {args.batch} x window of the preset, crop {args.crop}, {args.threads} thread(s), "
          f"{device}; {platform.processor() or platform.machine()}, torch {torch.__version__}")
    print(table(measure(args.model, batch=args.batch, crop=args.crop, steps=args.steps, device=device)))


if __name__ == "__main__":
    main()
