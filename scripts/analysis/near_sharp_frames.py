"""Where a model loses on a held-out clip: per frame, the input and output PSNR, the output's PSNR with
its mean error removed and at its best half-pixel shift, and the output error above a 3 px Gaussian.

    python scripts/analysis/near_sharp_frames.py [--eval data/eval_crf12] [--clip ev00008] [--model PATH]

(docs/model_study.md, third stage; an analysis run by hand, not a test.)
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
import torch

from vdeblur import bundled_model_path
from vdeblur.benchmarks.quality import gopro_clips, model_method
from vdeblur.train.checkpoint import load_checkpoint


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255.0 ** 2 / np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)))


def best_shift_psnr(out: np.ndarray, sharp: np.ndarray, step: float = 0.5, reach: float = 1.5) -> float:
    """PSNR of ``out`` against ``sharp`` moved by the best (dx, dy) on a half-pixel grid (8 px border left out)."""
    h, w = sharp.shape[:2]
    best = -np.inf
    for dy in np.arange(-reach, reach + 1e-9, step):
        for dx in np.arange(-reach, reach + 1e-9, step):
            moved = cv2.warpAffine(sharp, np.float32([[1, 0, dx], [0, 1, dy]]), (w, h), flags=cv2.INTER_CUBIC,
                                   borderMode=cv2.BORDER_REFLECT)
            best = max(best, psnr(out[8:-8, 8:-8], moved[8:-8, 8:-8]))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--eval", type=Path, default=Path("data/eval_crf12"))
    parser.add_argument("--clip", default="ev00008")
    parser.add_argument("--model", type=Path, default=bundled_model_path())
    args = parser.parse_args()
    torch.set_num_threads(1)
    clip = next(c for c in gopro_clips(args.eval, 8) if c.name == args.clip)
    model, _ = load_checkpoint(args.model)
    out = model_method(model.eval())(clip.blurred)
    print("frame | input dB | output dB | mean error removed | best shift | high-freq error RMS (input RMS)")
    for t, (o, s, i) in enumerate(zip(out, clip.sharp, clip.blurred)):
        err = o.astype(np.float64) - s
        high = err - cv2.GaussianBlur(err, (0, 0), 3)
        debiased = np.clip(o - err.mean((0, 1)), 0, 255)
        print(f"{t + 1} | {psnr(i, s):.2f} | {psnr(o, s):.2f} | {psnr(debiased, s):.2f} | "
              f"{best_shift_psnr(o, s):.2f} (aligned {psnr(o[8:-8, 8:-8], s[8:-8, 8:-8]):.2f}) | "
              f"{np.sqrt((high ** 2).mean()):.2f} ({np.sqrt(((i.astype(np.float64) - s) ** 2).mean()):.2f})")


if __name__ == "__main__":
    main()
