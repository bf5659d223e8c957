"""Render synthetic camera-shake clips once into a GoPro-layout folder.

On-the-fly synthesis costs more CPU per frame than a small model's training step, so a fixed
rendered set (re-cropped and flipped every epoch by ``GoProDataset``) trains faster on few cores.
It also gives every model of an ablation exactly the same data, and held-out clips a fixed form
for evaluation. The folder is ``<out>/<split>/<seq>/{blur,sharp}/NNNNNN.png``, readable by
``vdeblur.train.data.GoProDataset`` like GOPRO_Large.

    python -m vdeblur.train.synth.render_dataset --source photos/train --out data/shake --split train \
        --sequences 600 --frames 8 --size 256x256 --seed 1
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np
import torch

from ..data import SyntheticDataset
from .clip import NOISE_CHOICES, ShakeConfig, shake_config
from .sources import open_source


def _to_uint8(frames: torch.Tensor) -> np.ndarray:
    """(T, 3, H, W) float in [0, 1] (exactly k/255, as the dataset made it) -> (T, H, W, 3) uint8."""
    return (frames * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def render_folder(dataset: SyntheticDataset, out: Path, split: str, prefix: str = "seq") -> int:
    """Write every item of ``dataset`` as one sequence folder; returns the number of frames written."""
    written = 0
    for index in range(len(dataset)):
        item = dataset[index]
        seq = out / split / f"{prefix}{index:05d}"
        for kind, key in (("blur", "blurred"), ("sharp", "sharp")):
            folder = seq / kind
            folder.mkdir(parents=True, exist_ok=True)
            for t, frame in enumerate(_to_uint8(item[key])):
                if not cv2.imwrite(str(folder / f"{t:06d}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)):
                    raise OSError(f"could not write {folder / f'{t:06d}.png'}")
        if "moving" in item:  # where objects and near layers move, for scoring those regions alone
            folder = seq / "mask"
            folder.mkdir(parents=True, exist_ok=True)
            for t, mask in enumerate(item["moving"].numpy()):
                if not cv2.imwrite(str(folder / f"{t:06d}.png"), mask.astype(np.uint8) * 255):
                    raise OSError(f"could not write {folder / f'{t:06d}.png'}")
        written += item["sharp"].shape[0]
    return written


def _size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size {text!r} is not HEIGHTxWIDTH, e.g. 256x256") from None
    return h, w


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Render synthetic camera-shake clips into a GoPro-layout folder.")
    parser.add_argument("--source", action="append", required=True,
                        help="folder of images, video file, 'skimage', 'deadleaves[:N]' or 'text[:N[:FONT_FOLDER]]' (repeatable)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--split", default="train", choices=["train", "test"])
    parser.add_argument("--sequences", type=int, default=100)
    parser.add_argument("--frames", type=int, default=8, help="frames per sequence")
    parser.add_argument("--size", type=_size, default=(256, 256), help="HEIGHTxWIDTH of each frame")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--prefix", default="seq", help="sequence folder name prefix, so several sources can share a folder")
    parser.add_argument("--blur-px", type=float, nargs=2, metavar=("LO", "HI"), default=ShakeConfig.blur_px,
                        help="mean blur length per clip, log-uniform in [LO, HI] output px [%(default)s]")
    parser.add_argument("--scale", type=float, nargs=2, metavar=("LO", "HI"), default=(0.5, 1.0),
                        help="random downscale of each source image before the clip is cut [%(default)s]")
    parser.add_argument("--noise", choices=NOISE_CHOICES, default="default",
                        help="sensor noise of the blurred input: the ShakeConfig default (most clips noisy), or none")
    parser.add_argument("--h264-crf", type=int, default=None, metavar="CRF",
                        help="encode every clip with H.264 at this CRF instead of the default mix of "
                             "none/JPEG/H.264 (a held-out set like a phone video: e.g. 12)")
    parser.add_argument("--min-detail", type=float, default=0.0, metavar="LEVELS",
                        help="redraw clips whose sharp frame's mean |dx|+|dy| of luma is below this (8-bit levels; "
                             "a held-out set of dense detail: e.g. 8) [%(default)s]")
    parser.add_argument("--shutter", type=float, nargs=2, metavar=("LO", "HI"), default=None,
                        help="exposure as a share of the frame interval, drawn per clip, scaling --blur-px (then the "
                             "blur of a whole interval) as a real shutter does; e.g. 0.25 1 for phone video in "
                             "daylight [default: every exposure blurs by --blur-px]")
    parser.add_argument("--objects", action="store_true",
                        help="1-3 cut-outs of the photo moving on their own across each view (temporal blur only), with "
                             "their masks written to <seq>/mask/ (a held-out set for what one homography cannot align)")
    parser.add_argument("--parallax", action="store_true",
                        help="1-2 near layers per view, moving further or less far than the background as parallax does "
                             "(temporal blur only), their masks written to <seq>/mask/ with any objects'")
    args = parser.parse_args(argv)
    try:
        crf = {} if args.h264_crf is None else dict(compression="h264", compression_probability=1.0,
                                                     h264_crf=(args.h264_crf, args.h264_crf))
        shake = shake_config(blur_px=tuple(args.blur_px), noise=args.noise, shutter=args.shutter,
                             objects=(1, 3) if args.objects else None,
                             parallax=(1, 2) if args.parallax else None, **crf)
        dataset = SyntheticDataset([open_source(s) for s in args.source], length=args.sequences, frames=args.frames,
                                   height=args.size[0], width=args.size[1], seed=args.seed, config=shake,
                                   scale=tuple(args.scale), min_detail=args.min_detail)
    except (ValueError, OSError) as e:
        parser.error(str(e))
    frames = render_folder(dataset, args.out, args.split, args.prefix)
    # A record of how the folder was made, so a model card can cite it exactly.
    (args.out / f"{args.split}-{args.prefix}.json").write_text(json.dumps(
        {"sources": args.source, "sequences": args.sequences, "frames": args.frames, "size": list(args.size),
         "seed": args.seed, "blur_px": list(args.blur_px), "scale": list(args.scale), "noise": args.noise,
         "h264_crf": args.h264_crf, "min_detail": args.min_detail, "shutter": args.shutter, "objects": args.objects,
         "parallax": args.parallax, "frames_written": frames}, indent=2))
    print(f"wrote {args.sequences} sequences, {frames} frame pairs, to {args.out / args.split}")


if __name__ == "__main__":
    main()
