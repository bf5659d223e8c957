"""Before/after crops of a model on a GoPro-layout test split (``python -m vdeblur.benchmarks.before_after``).

For each chosen sequence the model runs through the first frames with its state carried (as the
engine does), and the last frame is cropped: blurred input | model output | sharp target, with the
PSNR of input and output written on the crop. Sequences are picked by input PSNR (the most blurred
first), so the picture shows the cases deblurring is for, and says so in its caption.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
from vdeblur.engine.backends import load_backend
from vdeblur.engine.stream import DeblurStream
from vdeblur.train.data import scan_gopro
from vdeblur.train.frames import from_uint8
from vdeblur.train.metrics import psnr_ssim_uint8
from vdeblur.train.synth.sources import read_rgb


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return psnr_ssim_uint8(from_uint8(a)[None], from_uint8(b)[None])[0]


def label(img: np.ndarray, text: str) -> np.ndarray:
    out = img.copy()
    # A solid box behind the text: an outline drawn with a thicker stroke misaligns with OpenCV 5's font.
    (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)
    cv2.rectangle(out, (0, 0), (w + 8, h + base + 8), (0, 0, 0), thickness=-1)
    cv2.putText(out, text, (4, h + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="checkpoint, ONNX file or engine")
    parser.add_argument("--gopro", type=Path, required=True, help="GoPro-layout folder (its test/ split)")
    parser.add_argument("--out", type=Path, required=True, help="PNG to write")
    parser.add_argument("--rows", type=int, default=3)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--crop", type=int, default=224)
    args = parser.parse_args(argv)
    backend = load_backend(args.model, "auto", "cpu")
    rows = []
    for seq in scan_gopro(args.gopro, "test"):
        blurred = [read_rgb(p) for p in seq.blur[: args.frames]]
        sharp = read_rgb(seq.sharp[len(blurred) - 1])
        stream = DeblurStream(backend)
        out = [stream.push(f) for f in blurred][-1]
        rows.append((_psnr(blurred[-1], sharp), seq.name, blurred[-1], out, sharp))
    rows.sort(key=lambda r: r[0])
    tiles = []
    for p_in, name, b, o, s in rows[: args.rows]:
        h, w = b.shape[:2]
        y, x = (h - args.crop) // 2, (w - args.crop) // 2
        crop = lambda im: im[y:y + args.crop, x:x + args.crop]  # noqa: E731
        tiles.append(np.hstack([label(crop(b), f"input {p_in:.1f} dB"), label(crop(o), f"output {_psnr(o, s):.1f} dB"),
                                label(crop(s), f"sharp ({name})")]))
    cv2.imwrite(str(args.out), cv2.cvtColor(np.vstack(tiles), cv2.COLOR_RGB2BGR))
    print(f"wrote {args.out}: the {len(tiles)} most blurred of {len(rows)} sequences, frame {args.frames}")


if __name__ == "__main__":
    main()
