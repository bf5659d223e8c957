"""Which no-reference sharpness measure ranks a clip's frames by their blur: the choice behind ``--adapt``.

Clips of one photograph whose frames are shaken by known, different lengths (the project's own
synthesis, ``render_shake_clip``), with one sensor-noise level and one encoder setting per clip, as
a camera would save them. For every measure of ``vdeblur.engine.adapt.sharpness.MEASURES``: the
mean over clips of the Spearman correlation between the measure and minus the true blur, how often
its sharpest frame is truly among the three sharpest, and its time per frame. The last table is
``estimate_blur_px``: blur lengths read off the clip's own sharpest frame, against the truth.

    python -m vdeblur.benchmarks.sharpness --photos data/photos/test_dense --out benchmarks/results/adapt-sharpness
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from vdeblur.engine.adapt.sharpness import MEASURES, SHARPNESS, estimate_blur_px, gray_thumbnail, noise_sigma
from vdeblur.train.synth.clip import ShakeConfig, render_shake_clip
from vdeblur.train.synth.degrade import NoiseConfig, h264_roundtrip
from vdeblur.train.synth.sources import read_rgb


@dataclass(frozen=True)
class Condition:
    name: str
    shot: float  # Poisson-Gaussian levels in linear light (train/synth/degrade.py); 0: no noise
    read: float
    crf: int


CONDITIONS = (Condition("phone: mild noise, H.264 CRF 23", 3e-4, 1e-3, 23),
              Condition("low light: strong noise, CRF 23", 3e-3, 3e-3, 23),
              Condition("clean: no noise, CRF 12", 0.0, 0.0, 12))


def render_clip(photo: np.ndarray, blur: np.ndarray, condition: Condition, seed: int, size: tuple[int, int]) -> np.ndarray:
    """(T, H, W, 3) uint8: frame t is the photo's centre shaken by ``blur[t]`` px, then noise and H.264."""
    noise = NoiseConfig(probability=1.0, shot=(condition.shot,) * 2, read=(condition.read,) * 2) if condition.shot else None
    frames = []
    for t, px in enumerate(blur):
        config = ShakeConfig(blur_px=(px, px), noise=noise, compression=None)
        clip, _ = render_shake_clip(photo, frames=1, height=size[0], width=size[1], seed=seed * 1000 + t, config=config,
                                    centred=True)
        frames.append(clip[0])
    return h264_roundtrip(np.stack(frames), condition.crf)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=Path, action="append", required=True, help="folder of held-out photographs")
    parser.add_argument("--clips", type=int, default=12, help="clips per condition")
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    paths = sorted(p for folder in args.photos for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".png", ".webp"))
    rng = np.random.default_rng(0)
    rows, timing = [], {name: 0.0 for name in MEASURES}
    frames_scored = 0
    for condition in CONDITIONS:
        per_measure: dict[str, list[tuple[float, bool]]] = {name: [] for name in MEASURES}
        estimate_rho, estimate_err = [], []
        for i in range(args.clips):
            photo = read_rgb(paths[i % len(paths)])
            blur = np.exp(rng.uniform(np.log(0.3), np.log(16), size=args.frames))  # (T,) px, known
            clip = render_clip(photo, blur, condition, seed=i, size=(240, 320))
            grays = [gray_thumbnail(f) for f in clip]
            frames_scored += len(grays)
            for name, measure in MEASURES.items():
                started = time.perf_counter()
                scores = np.array([measure(g) for g in grays])
                timing[name] += time.perf_counter() - started
                rho = float(spearmanr(scores, -blur).statistic)
                per_measure[name].append((rho, int(np.argmax(scores)) in np.argsort(blur)[:3]))
            scores = np.array([MEASURES[SHARPNESS](g) for g in grays])
            best = int(np.argmax(scores))
            noise = min(noise_sigma(g) for g in grays)
            estimate = estimate_blur_px(clip[best], scores, noise)
            truth = np.maximum(blur - blur[best], 0)  # relative to the frame the estimate starts from
            estimate_rho.append(float(spearmanr(estimate, truth).statistic))
            estimate_err.append(float(np.median(np.abs(estimate - truth))))
        for name, results in per_measure.items():
            rows.append({"condition": condition.name, "measure": name, "spearman": float(np.mean([r for r, _ in results])),
                         "worst_spearman": float(np.min([r for r, _ in results])),
                         "sharpest_in_top3": float(np.mean([hit for _, hit in results]))})
        rows.append({"condition": condition.name, "measure": f"estimate_blur_px ({SHARPNESS})",
                     "spearman": float(np.mean(estimate_rho)), "median_abs_error_px": float(np.median(estimate_err))})
    ms = {name: 1000 * t / frames_scored for name, t in timing.items()}
    lines = ["| condition | measure | Spearman (mean) | worst clip | sharpest frame in true top 3 | ms / frame |",
             "|---|---|---:|---:|---:|---:|"]
    for r in rows:
        if "median_abs_error_px" in r:
            continue
        lines.append(f"| {r['condition']} | {r['measure']}{' (chosen)' if r['measure'] == SHARPNESS else ''} | "
                     f"{r['spearman']:.3f} | {r['worst_spearman']:.3f} | {r['sharpest_in_top3']:.0%} | "
                     f"{ms[r['measure']]:.2f} |")
    lines += ["", "| condition | blur estimate: Spearman with the true blur | median abs error px |", "|---|---:|---:|"]
    lines += [f"| {r['condition']} | {r['spearman']:.3f} | {r['median_abs_error_px']:.2f} |"
              for r in rows if "median_abs_error_px" in r]
    header = (f"Measured with `python -m vdeblur.benchmarks.sharpness {' '.join(sys.argv[1:] if argv is None else argv)}` "
              f"on {platform.processor() or platform.machine()}: {args.clips} clips x {args.frames} frames of 320x240 "
              f"per condition, blur per frame log-uniform in 0.3-16 px.\n\n")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "sharpness.md").write_text(header + "\n".join(lines) + "\n")
    (args.out / "sharpness.json").write_text(json.dumps({"rows": rows, "ms_per_frame": ms}, indent=1))
    print(header + "\n".join(lines))


if __name__ == "__main__":
    main()
