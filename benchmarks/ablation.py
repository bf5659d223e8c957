"""The paper's ablation at small scale: all ten rows plus our default model, trained the same way and
evaluated on the same held-out clips (``python -m vdeblur.benchmarks.ablation train|table``).

    python -m vdeblur.benchmarks.ablation train --data DATA --runs runs/ablation [--rows pix2pix,rir]
    python -m vdeblur.benchmarks.ablation table --runs runs/ablation --test HELD_OUT --out docs/ablation

"The same way" means one shared budget (``AblationBudget``: steps, batch, crop, window, seed) and one
GoPro-layout training folder for every row, on top of each row's preset (its losses, optimiser and
schedule, i.e. the paper's setup). Two adaptations are forced by the budget and by what this
project can obtain, and are applied to every row that needs them, never silently:

- the Pix2Pix U-Nets are as deep as the crop allows (``num_downs = log2(crop)``): the paper's
  unet_256 needs 256x256 crops, which a CPU budget cannot afford for ten models;
- without VGG19 weights (``--vgg-weights``) the perceptual term cannot be computed. The rows whose
  preset adds it to L1 keep their L1 term; the DeblurGAN rows (all three), whose only content term
  is the perceptual one, get pixel L1 x 100 in its place (otherwise they would train on the GAN loss alone).

``table`` rebuilds everything from the checkpoints (``<runs>/<row>/last.safetensors``: the end of
the budget, no checkpoint picked on held-out data) and writes ``ablation.json``, ``ablation.md`` and
``ablation_crops.png`` (the same crop from every row).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vdeblur.train.checkpoint import load_checkpoint, read_info
from vdeblur.train.cli import train as train_run
from vdeblur.train.config import load_config
from vdeblur.train.frames import from_uint8

from vdeblur.train.metrics import psnr_ssim_uint8

from .complexity import measure as measure_complexity
from .quality import Clip, evaluate, gopro_clips, mean_frame_difference, model_method
from .report import machine_info


@dataclass(frozen=True)
class Row:
    key: str  # run folder name and preset name
    label: str  # as the paper names the row
    paper_psnr: float | None  # the paper's GoPro figures (None: the paper has no such row)
    paper_ssim: float | None


ROWS: tuple[Row, ...] = (
    Row("pix2pix", "Pix2Pix", 25.41, 0.810),
    Row("pix2pix_sa", "+SA", 25.41, 0.808),
    Row("pix2pix_sa_gr", "+SA+GR", 27.29, 0.858),
    Row("pix2pix_sa_sn", "+SA+SN", 26.05, 0.831),
    Row("pix2pix_sa_ca_gr_sn", "+SA+CA+GR+SN+Perceptual", 27.05, 0.831),
    Row("rir", "RiR", 22.70, 0.640),
    Row("rir_large", "RiR-Large", 23.46, 0.671),
    Row("deblurgan", "DeblurGAN", 28.70, 0.958),
    Row("deblurgan_edge", "DeblurGAN+Edge", 25.27, 0.773),
    Row("deblurgan_feedback", "DeblurGAN+Feedback", 27.20, 0.827),
    Row("vdeblur_fast", "vdeblur_fast (ours)", None, None),
)
_BY_KEY = {r.key: r for r in ROWS}


@dataclass(frozen=True)
class AblationBudget:
    steps: int = 1200
    batch: int = 4
    crop: int = 64
    window: int = 2  # frames per training window for the recurrent rows (feedback, ours)
    seed: int = 0
    val_every: int = 300
    val_sequences: int = 4

    def __post_init__(self) -> None:
        if min(self.steps, self.batch, self.window, self.val_every, self.val_sequences) < 1:
            raise ValueError(f"budget values must be >= 1; got {self}")
        if self.crop < 16 or self.crop & (self.crop - 1):
            raise ValueError(f"crop must be a power of two >= 16 (the U-Net depth follows it); got {self.crop}")


def row_overrides(row: Row, budget: AblationBudget, data: Path, vgg_weights: str = "") -> list[str]:
    """The ``--set`` overrides that put ``row``'s preset on the shared budget (see the module text)."""
    sets = ['data.kind="gopro"', f'data.root="{data}"', f"data.val_sequences={budget.val_sequences}",
            f"train.steps={budget.steps}", f"train.batch={budget.batch}", f"train.crop={budget.crop}",
            f"train.window={budget.window}", f"train.seed={budget.seed}", f"train.val_every={budget.val_every}",
            f"train.ckpt_every={budget.val_every}"]
    if row.key.startswith("pix2pix"):
        sets.append(f"model.overrides.num_downs={int(math.log2(budget.crop))}")
    if vgg_weights:
        sets.append(f'loss.vgg_weights="{vgg_weights}"')
    else:
        sets.append("loss.perceptual_weight=0.0")
        if load_config(row.key).loss.content_weight == 0:  # DeblurGAN's rows: perceptual was the content term
            sets += ['loss.content="l1"', "loss.content_weight=100.0"]
    return sets


def pick_rows(keys: str | None) -> list[Row]:
    if not keys:
        return list(ROWS)
    unknown = [k for k in keys.split(",") if k not in _BY_KEY]
    if unknown:
        raise ValueError(f"unknown ablation row(s) {unknown}; allowed: {', '.join(_BY_KEY)}")
    return [_BY_KEY[k] for k in keys.split(",")]


def train_rows(rows: Sequence[Row], budget: AblationBudget, data: Path, runs: Path, device: str = "cpu",
               vgg_weights: str = "", extra_sets: Sequence[str] = ()) -> None:
    """Train each row to the budget; a row whose run folder exists is resumed (or skipped when done).
    ``extra_sets`` go after the shared overrides (e.g. ``data.val_size=0`` for tiny test frames)."""
    for row in rows:
        out = runs / row.key
        resume = (out / "last.train.pt").exists()
        if resume and read_info(out / "last.safetensors").step >= budget.steps:
            print(f"{row.key}: already at {budget.steps} steps", flush=True)
            continue
        start = time.perf_counter()
        sets = (*row_overrides(row, budget, data, vgg_weights), *extra_sets)
        train_run(row.key, None, out, resume, device, sets, None)
        print(f"{row.key}: trained in {(time.perf_counter() - start) / 60:.1f} min", flush=True)


@dataclass(frozen=True)
class AblationResult:
    key: str
    label: str
    steps: int  # training steps of the evaluated checkpoint
    psnr: float
    ssim: float
    flicker: float  # mean |out[t] - out[t-1]| (0..255); compare with the sharp clips' figure
    params: int
    gflops_720p: float
    cpu_ms_360p: float | None  # torch FP32 p50 per frame at 640x360 (None: not measured)
    paper_psnr: float | None
    paper_ssim: float | None


@dataclass(frozen=True)
class RowRun:
    result: AblationResult
    train_config: dict[str, Any]  # what the run was trained with, read back from its checkpoint
    shown: np.ndarray  # (T, H, W, 3) uint8 output on the clip the crops picture shows


def evaluate_row(row: Row, checkpoint: Path, clips: Sequence[Clip], data: str, latency: bool, workdir: Path,
                 shown: Clip, threads: int | None = None) -> RowRun:
    """Metrics of one checkpoint over ``clips``; the output on ``shown`` (one of them) is kept for the
    crops picture, so no model runs twice."""
    model, info = load_checkpoint(checkpoint)
    run, outputs = model_method(model), {}

    def run_and_keep(blurred: np.ndarray) -> np.ndarray:
        out = run(blurred)
        if blurred is shown.blurred:
            outputs["shown"] = out
        return out

    q = evaluate(row.key, "model", str(checkpoint), run_and_keep, clips, data)
    cost = measure_complexity(info.model, 1280, 720, info.config)
    ms = None
    if latency:
        from .latency import LatencyConfig, measure_latency

        ms = measure_latency(model, "torch-fp32", 640, 360, LatencyConfig(frames=5, warmup=1, repeats=3), workdir,
                             threads).p50_ms
    result = AblationResult(row.key, row.label, info.step, q.psnr, q.ssim, q.flicker, cost.params, cost.gflops, ms,
                            row.paper_psnr, row.paper_ssim)
    return RowRun(result, info.extra.get("config", {}), outputs["shown"])


def input_result(clips: Sequence[Clip], data: str) -> AblationResult:
    """The blurred input itself: the row every model must beat."""
    q = evaluate("input", "baseline", "-", lambda clip: clip, clips, data)
    return AblationResult("input", "blurred input (no model)", 0, q.psnr, q.ssim, q.flicker, 0, 0.0, None, None, None)


def markdown(results: Sequence[AblationResult], sharp_flicker: float) -> str:
    def num(v: float | None, fmt: str) -> str:
        return "-" if v is None else format(v, fmt)

    base = next((r for r in results if r.key == "input"), None)
    lines = ["| row | paper PSNR / SSIM | ours PSNR / SSIM | vs input (dB) | flicker | params (M) | GFLOPs @720p | "
             "CPU ms @360p | steps |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        paper = f"{num(r.paper_psnr, '.2f')} / {num(r.paper_ssim, '.3f')}" if r.paper_psnr is not None else "-"
        delta = f"{r.psnr - base.psnr:+.2f}" if base is not None and r.key != "input" else "-"
        lines.append(f"| {r.label} | {paper} | {r.psnr:.2f} / {r.ssim:.4f} | {delta} | {r.flicker:.2f} | "
                     f"{r.params / 1e6:.2f} | {r.gflops_720p:.1f} | {num(r.cpu_ms_360p, '.0f')} | {r.steps} |")
    lines.append(f"\nflicker: mean absolute frame-to-frame difference (0..255); the sharp clips' own figure is "
                 f"{sharp_flicker:.2f}, excess over it is flicker.")
    return "\n".join(lines)


def crops_picture(outputs: Sequence[tuple[str, np.ndarray]], clip: Clip, path: Path, size: int = 160) -> Path:
    """The same crop of one held-out frame from every row: input, each (label, output clip), sharp."""
    import cv2

    from .before_after import label

    t = len(clip.blurred) - 1  # the last frame: recurrent rows have carried their state through the clip
    size = min(size, *clip.sharp.shape[1:3])
    y, x = busiest_window(clip.sharp[t], size)
    crop = lambda im: np.ascontiguousarray(im[y:y + size, x:x + size])  # noqa: E731
    tiles = [label(crop(clip.blurred[t]), "input")]
    tiles += [label(crop(out[t]), text) for text, out in outputs]
    tiles.append(label(crop(clip.sharp[t]), "sharp"))
    per_row = 5
    tiles += [np.zeros_like(tiles[0])] * (-len(tiles) % per_row)
    grid = np.vstack([np.hstack(tiles[i:i + per_row]) for i in range(0, len(tiles), per_row)])
    cv2.imwrite(str(path), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))
    return path


def busiest_window(image: np.ndarray, size: int) -> tuple[int, int]:
    """Top-left corner of the ``size`` window (on a half-window grid) with the most edges: blur and
    its removal show on detail, not on sky."""
    grey = image.astype(np.float32).mean(axis=2)
    edges = np.abs(np.diff(grey, axis=0))[:, :-1] + np.abs(np.diff(grey, axis=1))[:-1, :]
    h, w = edges.shape
    step = max(size // 2, 1)
    corners = [(y, x) for y in range(0, max(h - size, 0) + 1, step) for x in range(0, max(w - size, 0) + 1, step)]
    return max(corners, key=lambda c: float(edges[c[0]:c[0] + size, c[1]:c[1] + size].sum()))


def write_table(rows: Sequence[Row], runs: Path, test: Path, out: Path, frames: int = 8, latency: bool = True,
                threads: int | None = None) -> list[Path]:
    """Evaluate every row's last checkpoint on ``<test>/test`` and write JSON, Markdown and the crops."""
    missing = [str(runs / r.key / "last.safetensors") for r in rows if not (runs / r.key / "last.safetensors").is_file()]
    if missing:
        raise FileNotFoundError(f"no checkpoint for: {', '.join(missing)}; run the train command first")
    clips = gopro_clips(test, frames)
    if not clips:
        raise ValueError(f"no test sequences in {test / 'test'}")
    data = f"{test} ({len(clips)} sequences, first {frames} frames each)"
    out.mkdir(parents=True, exist_ok=True)
    # The picture shows the most blurred clip: the case deblurring is for.
    worst = min(clips, key=lambda c: psnr_ssim_uint8(from_uint8(c.blurred), from_uint8(c.sharp))[0])
    runs_done = []
    for row in rows:
        runs_done.append(evaluate_row(row, runs / row.key / "last.safetensors", clips, data, latency, out, worst,
                                      threads))
        print(f"{row.key}: {runs_done[-1].result.psnr:.2f} dB / {runs_done[-1].result.ssim:.4f}", flush=True)
    results = [input_result(clips, data)] + [r.result for r in runs_done]
    sharp_flicker = float(np.mean([mean_frame_difference(c.sharp) for c in clips if len(c.sharp) > 1]))
    # The budget is read back from each checkpoint: the table trusts no flag.
    report = {"machine": machine_info(), "command": sys.argv, "data": data, "runs": str(runs),
              "budget": {row.key: r.train_config for row, r in zip(rows, runs_done)}, "sharp_flicker": sharp_flicker,
              "results": [asdict(r) for r in results]}
    paths = [out / "ablation.json", out / "ablation.md"]
    paths[0].write_text(json.dumps(report, indent=2, default=str) + "\n")
    paths[1].write_text(f"Held-out data: {data}\n\n{markdown(results, sharp_flicker)}\n")
    shown = [(row.label, r.shown) for row, r in zip(rows, runs_done)]
    paths.append(crops_picture(shown, worst, out / "ablation_crops.png"))
    return paths


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train every row (or --rows) on the shared budget; resumes")
    t.add_argument("--data", type=Path, required=True, help="GoPro-layout folder (train/ trains, test/ validates)")
    t.add_argument("--runs", type=Path, required=True, help="folder of run folders, one per row")
    t.add_argument("--rows", help=f"comma-separated subset of: {','.join(_BY_KEY)}")
    t.add_argument("--device", default="cpu")
    t.add_argument("--threads", type=int, help="torch CPU threads")
    t.add_argument("--vgg-weights", default="", help="torchvision vgg19 state dict: keeps the perceptual terms")
    t.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="one more config override for every row, after the shared ones (repeatable)")
    for f in ("steps", "batch", "crop", "window", "seed", "val_every", "val_sequences"):
        t.add_argument(f"--{f.replace('_', '-')}", type=int, default=getattr(AblationBudget(), f))
    tb = sub.add_parser("table", help="evaluate the rows' checkpoints; write JSON, Markdown and the crops picture")
    tb.add_argument("--runs", type=Path, required=True)
    tb.add_argument("--test", type=Path, required=True, help="GoPro-layout folder whose test/ split is held out")
    tb.add_argument("--out", type=Path, required=True, help="folder for ablation.json, ablation.md, ablation_crops.png")
    tb.add_argument("--rows", help="comma-separated subset")
    tb.add_argument("--frames", type=int, default=8, help="frames per test sequence")
    tb.add_argument("--no-latency", action="store_true", help="skip the CPU latency column")
    tb.add_argument("--threads", type=int, help="torch CPU threads")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        if args.command == "train":
            budget = AblationBudget(args.steps, args.batch, args.crop, args.window, args.seed, args.val_every,
                                    args.val_sequences)
            train_rows(pick_rows(args.rows), budget, args.data, args.runs, args.device, args.vgg_weights, args.sets)
        else:
            for path in write_table(pick_rows(args.rows), args.runs, args.test, args.out, args.frames,
                                    not args.no_latency, args.threads):
                print(f"wrote {path}")
    except (ValueError, FileNotFoundError) as e:
        sys.exit(f"ablation: error: {e}")


if __name__ == "__main__":
    main()
