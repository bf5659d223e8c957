"""The model study's figures: held-out curves from training logs, and a final per-clip evaluation.

    python -m vdeblur.benchmarks.model_study curves --runs runs/study --out benchmarks/results/model-study
    python -m vdeblur.benchmarks.model_study evaluate --runs runs/study --eval data/eval --eval data/eval_small \\
        [--checkpoint NAME=PATH ...] [--misalign PX] --out benchmarks/results/model-study

``curves`` reads every ``RUN/log.csv`` (validation rows: held-out PSNR/SSIM of the model and of the
blurred input, against the run's training CPU minutes) and writes ``curves.md`` and, with matplotlib,
``curves.png``. ``evaluate`` runs each run's ``last.safetensors`` (and any ``--checkpoint``) through
every held-out sequence of each ``--eval`` GoPro-layout folder with its state carried, and reports the
mean gain over the blurred input, the worst clip's gain and the share of clips made better: a default
model must gain on average *and* lose on no clip. ``--misalign PX`` tells models fed the previous frame
aligned every estimated motion shifted by PX pixels with its confidence kept: what a confidently wrong
alignment costs them, against a single-frame model that never trusted one.
"""

from __future__ import annotations

import argparse
import csv
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from vdeblur.train.checkpoint import load_checkpoint, read_info
from vdeblur.train.frames import from_uint8
from vdeblur.train.metrics import psnr_ssim_uint8

from .quality import Clip, gopro_clips, model_method


@dataclass(frozen=True)
class CurvePoint:
    step: int
    cpu_min: float
    psnr: float
    input_psnr: float
    ssim: float
    input_ssim: float

    @property
    def gain(self) -> float:
        return self.psnr - self.input_psnr


def read_curve(log: Path) -> list[CurvePoint]:
    """The validation rows of one run's log.csv."""
    with log.open(newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("val_psnr")]
    return [CurvePoint(int(r["step"]), float(r.get("cpu_s") or "nan") / 60, float(r["val_psnr"]),
                       float(r["val_input_psnr"]), float(r["val_ssim"]), float(r["val_input_ssim"])) for r in rows]


def runs_in(folder: Path) -> dict[str, Path]:
    return {p.name: p for p in sorted(folder.iterdir()) if (p / "log.csv").is_file()}


def curves_markdown(curves: dict[str, list[CurvePoint]]) -> str:
    lines = ["| run | step | CPU min | held-out PSNR | input PSNR | gain dB | SSIM | input SSIM |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, points in curves.items():
        lines += [f"| {name} | {p.step} | {p.cpu_min:.1f} | {p.psnr:.2f} | {p.input_psnr:.2f} | {p.gain:+.3f} | "
                  f"{p.ssim:.4f} | {p.input_ssim:.4f} |" for p in points]
    return "\n".join(lines) + "\n"


def plot_curves(curves: dict[str, list[CurvePoint]], path: Path) -> Path | None:
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for name, points in curves.items():
        ax.plot([p.cpu_min for p in points], [p.gain for p in points], marker=".", label=name)
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xlabel("training CPU minutes (one thread)")
    ax.set_ylabel("held-out PSNR gain over the input, dB")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


@dataclass(frozen=True)
class ClipScore:
    clip: str
    input_psnr: float
    psnr: float
    input_ssim: float
    ssim: float
    # PSNR inside the regions where objects move on their own (clips with masks), else None
    moving_input_psnr: float | None = None
    moving_psnr: float | None = None


@dataclass(frozen=True)
class EvalResult:
    model: str
    weights: str
    data: str
    clips: int
    frames: int
    input_psnr: float
    psnr: float
    input_ssim: float
    ssim: float
    worst_clip_gain: float
    share_improved: float
    moving_gain: float | None = None  # mean over clips of the gain inside the moving regions

    @property
    def gain(self) -> float:
        return self.psnr - self.input_psnr


def input_scores(clips: list[Clip]) -> list[tuple[float, float]]:
    """PSNR/SSIM of each blurred clip itself: the baseline, computed once per data set, not per model."""
    return [psnr_ssim_uint8(from_uint8(c.blurred), from_uint8(c.sharp)) for c in clips]


def score_clips(run, clips: list[Clip], inputs: list[tuple[float, float]]) -> list[ClipScore]:
    scores = []
    for clip, (p_in, s_in) in zip(clips, inputs):
        out = run(clip.blurred)
        p, s = psnr_ssim_uint8(from_uint8(out), from_uint8(clip.sharp))
        moving = {} if clip.moving is None or not clip.moving.any() else \
            dict(moving_input_psnr=masked_psnr(clip.blurred, clip.sharp, clip.moving),
                 moving_psnr=masked_psnr(out, clip.sharp, clip.moving))
        scores.append(ClipScore(clip.name, p_in, p, s_in, s, **moving))
    return scores


def masked_psnr(frames: np.ndarray, sharp: np.ndarray, mask: np.ndarray) -> float:
    """PSNR in dB of (T, H, W, 3) uint8 frames against the sharp ones over the (T, H, W) mask's pixels only."""
    err = (frames.astype(np.float64) - sharp.astype(np.float64))[mask]
    return float(10 * np.log10(255.0**2 / max(np.mean(err**2), 1e-10)))


def summarise(model: str, weights: str, data: str, clips: list[Clip], scores: list[ClipScore]) -> EvalResult:
    frames = np.array([len(c.blurred) for c in clips], dtype=float)
    mean = lambda xs: float(np.average(xs, weights=frames))  # noqa: E731  (frame-weighted, as quality.py)
    gains = [s.psnr - s.input_psnr for s in scores]
    moving = [s.moving_psnr - s.moving_input_psnr for s in scores if s.moving_psnr is not None]
    return EvalResult(model, weights, data, len(clips), int(frames.sum()), mean([s.input_psnr for s in scores]),
                      mean([s.psnr for s in scores]), mean([s.input_ssim for s in scores]), mean([s.ssim for s in scores]),
                      float(min(gains)), float(np.mean([g > 0 for g in gains])),
                      float(np.mean(moving)) if moving else None)


def eval_markdown(results: list[EvalResult]) -> str:
    lines = ["| model | data | clips | input PSNR | PSNR | gain dB | worst clip dB | clips improved | input SSIM | SSIM "
             "| gain in moving regions dB |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {r.model} | {r.data} | {r.clips} | {r.input_psnr:.2f} | {r.psnr:.2f} | {r.gain:+.2f} | "
              f"{r.worst_clip_gain:+.2f} | {r.share_improved:.0%} | {r.input_ssim:.4f} | {r.ssim:.4f} | "
              f"{'-' if r.moving_gain is None else f'{r.moving_gain:+.2f}'} |" for r in results]
    return "\n".join(lines) + "\n"


def _named_checkpoints(runs: Path | None, extra: list[str]) -> dict[str, Path]:
    found = {name: run / "last.safetensors" for name, run in (runs_in(runs).items() if runs else [])
             if (run / "last.safetensors").is_file()}
    for item in extra:
        name, sep, path = item.partition("=")
        if not sep or not name or not Path(path).is_file():
            raise SystemExit(f"--checkpoint {item!r}: expected NAME=PATH of an existing checkpoint")
        found[name] = Path(path)
    return found


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("curves", help="held-out curves from RUN/log.csv files")
    c.add_argument("--runs", type=Path, required=True)
    c.add_argument("--out", type=Path, required=True)
    e = sub.add_parser("evaluate", help="per-clip evaluation of final checkpoints on held-out GoPro-layout folders")
    e.add_argument("--runs", type=Path, help="folder of runs; each RUN/last.safetensors is evaluated")
    e.add_argument("--checkpoint", action="append", default=[], metavar="NAME=PATH")
    e.add_argument("--eval", type=Path, action="append", required=True, help="GoPro-layout folder (its test/ split)")
    e.add_argument("--frames", type=int, default=8)
    e.add_argument("--threads", type=int, default=1)
    e.add_argument("--misalign", type=float, default=0.0, metavar="PX",
                   help="tell models fed the previous frame aligned every estimated motion shifted by PX pixels, "
                        "confidence kept (a wrong alignment that looks certain); other models run as always [0]")
    e.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.command == "curves":
        curves = {name: read_curve(run / "log.csv") for name, run in runs_in(args.runs).items()}
        (args.out / "curves.md").write_text(curves_markdown(curves))
        (args.out / "curves.json").write_text(json.dumps(
            {n: [asdict(p) | {"gain": p.gain} for p in pts] for n, pts in curves.items()}, indent=1))
        png = plot_curves(curves, args.out / "curves.png")
        print(curves_markdown(curves) + (f"plot: {png}" if png else "(matplotlib missing: no plot)"))
        return
    torch.set_num_threads(args.threads)
    checkpoints = _named_checkpoints(args.runs, args.checkpoint)
    datasets = {str(folder): gopro_clips(folder, args.frames) for folder in args.eval}
    inputs = {data: input_scores(clips) for data, clips in datasets.items()}
    results, per_clip = [], []
    for name, path in checkpoints.items():
        model, _ = load_checkpoint(path)
        run = model_method(model.eval(), args.misalign)
        for data, clips in datasets.items():
            scores = score_clips(run, clips, inputs[data])
            label = f"{name}, told {args.misalign:g} px wrong" if args.misalign and model.input_kind == "rgb+motion" else name
            result = summarise(label, str(path), data, clips, scores)
            results.append(result)
            per_clip.append([asdict(s) for s in scores])
            print(eval_markdown([result]).splitlines()[-1], flush=True)
    (args.out / "evaluation.md").write_text(eval_markdown(results))
    (args.out / "evaluation.json").write_text(json.dumps(
        [asdict(r) | {"gain": r.gain, "step": read_info(r.weights).step, "per_clip": c} for r, c in zip(results, per_clip)],
        indent=1))
    print(eval_markdown(results))


if __name__ == "__main__":
    main()
