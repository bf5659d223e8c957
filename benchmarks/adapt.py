"""What ``--adapt`` adds: per-clip gain with and without adaptation on held-out GoPro-layout folders.

For every clip: the model's PSNR on it as it is, then ``adapt_model`` on the clip's blurred frames
alone (the sharp frames are only used to score) and the PSNR of the weights it kept. Several
budgets give the curve of gain against adaptation time.

    python -m vdeblur.benchmarks.adapt --model vdeblur_deep --eval data/eval --eval data/eval_shutter \
        --budget 30 --budget 60 --threads 1 --out benchmarks/results/adapt/deep
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

from vdeblur.engine.adapt import AdaptConfig, adapt_model
from vdeblur.engine.backends import resolve_model
from vdeblur.train.checkpoint import load_checkpoint, save_checkpoint
from vdeblur.train.frames import from_uint8
from vdeblur.train.metrics import psnr_ssim_uint8

from .quality import Clip, gopro_clips, model_method


@dataclass(frozen=True)
class ClipAdapt:
    clip: str
    frames: int
    input_psnr: float
    base_psnr: float
    adapted_psnr: float  # of the weights adaptation kept (the base ones when it fell back)
    kept: bool
    check_gain: float  # adapted - base on the held-back pseudo-pairs (the smaller of the two sets), dB; nan: skipped
    steps: int
    seconds: float
    blur_px: tuple[float, float]  # the clip's blur as estimated (10th-90th percentile of its frames)
    skipped: str = ""
    real_gain: float = float("nan")  # adapted - base on the clip's own frames (realcheck), dB; nan: not measured
    # PSNR of the fine-tuned copy whether kept or not (nan: none trained): what a perfect check would choose from.
    tuned_psnr: float = float("nan")


@dataclass(frozen=True)
class SetAdapt:
    data: str
    budget_s: float
    clips: int
    base_gain: float  # over the input, frame-weighted mean, dB
    adapted_gain: float
    added: float  # adapted - base
    worst_added: float
    best_added: float
    kept_share: float
    skipped_share: float  # clips with no nearly sharp frame, not adapted
    seconds_per_frame: float


def evaluate_set(model_name: str, clips: list[Clip], data: str, budget: float, config: AdaptConfig,
                 keep_weights: Path | None = None) -> tuple[SetAdapt, list[ClipAdapt]]:
    base, _ = load_checkpoint(resolve_model(model_name))
    run_base = model_method(base)
    rows = []
    for clip in clips:
        p_in = psnr_ssim_uint8(from_uint8(clip.blurred), from_uint8(clip.sharp))[0]
        p_base = psnr_ssim_uint8(from_uint8(run_base(clip.blurred)), from_uint8(clip.sharp))[0]
        result = adapt_model(list(clip.blurred), base, replace(config, budget_s=budget))
        p_tuned = float("nan") if result.tuned is None else \
            psnr_ssim_uint8(from_uint8(model_method(result.tuned)(clip.blurred)), from_uint8(clip.sharp))[0]
        p_adapt = p_tuned if result.adapted else p_base
        if keep_weights is not None and result.tuned is not None:
            save_checkpoint(keep_weights / copy_name(data, clip.name, budget), result.tuned,
                            metrics={"adapt_check_gain": result.check_gain})
        rows.append(ClipAdapt(clip.name, len(clip.blurred), p_in, p_base, p_adapt, result.adapted,
                              result.check_gain, result.steps, result.seconds, result.plan.blur_px, result.skipped,
                              result.real_gain, p_tuned))
        verdict = "skipped" if result.skipped else "kept" if result.adapted else "fell back"
        print(f"  {data} {clip.name}: base {p_base - p_in:+.2f} adapted {p_adapt - p_in:+.2f} "
              f"({verdict}, check {rows[-1].check_gain:+.2f}, own frames {result.real_gain:+.2f}, {result.steps} steps, "
              f"blur {result.plan.blur_px[0]:.1f}-{result.plan.blur_px[1]:.1f})", flush=True)
    frames = np.array([r.frames for r in rows], dtype=float)
    mean = lambda xs: float(np.average(xs, weights=frames))  # noqa: E731  (frame-weighted, as model_study)
    added = [r.adapted_psnr - r.base_psnr for r in rows]
    summary = SetAdapt(data, budget, len(rows), mean([r.base_psnr - r.input_psnr for r in rows]),
                       mean([r.adapted_psnr - r.input_psnr for r in rows]), mean(added), float(min(added)),
                       float(max(added)), float(np.mean([r.kept for r in rows])), float(np.mean([bool(r.skipped) for r in rows])),
                       float(sum(r.seconds for r in rows) / frames.sum()))
    return summary, rows


def copy_name(data: str, clip: str, budget: float) -> str:
    """The file ``--keep-weights`` writes a clip's fine-tuned copy to."""
    return f"{Path(data).name}-{clip}-{budget:g}.safetensors"


def markdown(model: str, results: list[SetAdapt]) -> str:
    lines = [f"| model | data | budget s | clips | gain without | gain with --adapt | added | worst clip | best clip | "
             f"adapted kept | skipped | adapt s / frame |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {model} | {r.data} | {r.budget_s:g} | {r.clips} | {r.base_gain:+.2f} | {r.adapted_gain:+.2f} | "
              f"{r.added:+.2f} | {r.worst_added:+.2f} | {r.best_added:+.2f} | {r.kept_share:.0%} | {r.skipped_share:.0%} | "
              f"{r.seconds_per_frame:.2f} |" for r in results]
    return "\n".join(lines) + "\n"


def per_clip_markdown(per_clip: dict[str, list[dict]]) -> str:
    """One row per clip and set: the gain over the input without and with adaptation, what the check
    read and what was done (``x``: the base weights were used)."""
    lines = ["| data @ budget | clip | gain without | added by --adapt | check | own frames | used |",
             "|---|---|---:|---:|---:|---:|---|"]
    for key, rows in per_clip.items():
        for r in rows:
            used = "skipped" if r.get("skipped") else "adapted" if r["kept"] else "x"
            check = "" if r["check_gain"] != r["check_gain"] else f"{r['check_gain']:+.2f}"  # nan: skipped
            real = r.get("real_gain", float("nan"))
            real = "" if real != real else f"{real:+.2f}"
            lines.append(f"| {key} | {r['clip']} | {r['base_psnr'] - r['input_psnr']:+.2f} | "
                         f"{r['adapted_psnr'] - r['base_psnr']:+.2f} | {check} | {real} | {used} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    defaults = AdaptConfig()  # the shipped settings: what the search varies from
    parser.add_argument("--model", default="vdeblur_deep", help="model name with bundled weights, or a checkpoint")
    parser.add_argument("--eval", type=Path, action="append", required=True, help="GoPro-layout folder (its test/ split)")
    parser.add_argument("--budget", type=float, action="append", required=True, help="seconds of adaptation per clip")
    parser.add_argument("--frames", type=int, default=1000, help="at most this many frames of each clip")
    parser.add_argument("--clips", type=int, default=0, help="only the first N clips of each folder (0: all)")
    parser.add_argument("--only", action="append", default=[], metavar="CLIP",
                        help="only the clips of this name (repeatable), in any folder that has them")
    parser.add_argument("--lr", type=float, default=defaults.tune.lr)
    parser.add_argument("--layers", choices=["all", "norm+last"], default=defaults.tune.layers)
    parser.add_argument("--blur-px", type=float, nargs=2, default=None, help="fixed blur range of the pairs")
    parser.add_argument("--degrade", choices=["training", "measured"], default=defaults.degrade)
    parser.add_argument("--targets", choices=["restored", "frames"], default=defaults.targets)
    parser.add_argument("--replay", type=float, default=defaults.replay,
                        help="share of training pairs blurred up to the top of the trained range")
    parser.add_argument("--train-clips", type=int, default=defaults.train_clips,
                        help="distinct training windows cut from the clip's targets")
    parser.add_argument("--no-real-check", action="store_true", help="keep on the synthetic check alone")
    parser.add_argument("--keep-weights", type=Path, default=None,
                        help="write every clip's fine-tuned copy here (kept or not), to score other checks without adapting again")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.keep_weights is not None:
        args.keep_weights.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(args.threads)
    config = replace(defaults, replay=args.replay, train_clips=args.train_clips, real_check=not args.no_real_check,
                     targets=args.targets, degrade=args.degrade,
                     blur_px=tuple(args.blur_px) if args.blur_px else None,
                     tune=replace(defaults.tune, lr=args.lr, layers=args.layers))
    results, per_clip = [], {}
    for folder in args.eval:
        clips = [c for c in gopro_clips(folder, args.frames) if not args.only or c.name in args.only][: args.clips or None]
        if not clips:
            continue
        for budget in args.budget:
            summary, rows = evaluate_set(args.model, clips, str(folder), budget, config, args.keep_weights)
            results.append(summary)
            per_clip[f"{folder}@{budget:g}"] = [asdict(r) for r in rows]
            print(markdown(args.model, [summary]).splitlines()[-1], flush=True)
    args.out.mkdir(parents=True, exist_ok=True)  # again: a long run should not lose its results to a moved folder
    header = (f"Measured with `python -m vdeblur.benchmarks.adapt {' '.join(sys.argv[1:] if argv is None else argv)}` "
              f"on {platform.processor() or platform.machine()}, torch {torch.__version__}, "
              f"{torch.get_num_threads()} thread(s).\n\n")
    (args.out / "adapt.md").write_text(header + markdown(args.model, results) + "\n" + per_clip_markdown(per_clip))
    (args.out / "adapt.json").write_text(json.dumps({"model": args.model, "config": asdict(config),
                                                     "sets": [asdict(r) for r in results], "per_clip": per_clip},
                                                    indent=1))
    print(header + markdown(args.model, results))


if __name__ == "__main__":
    main()
