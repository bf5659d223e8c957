"""What the engine's output encoder costs: held-out clips as H.264 files through `vdeblur run --crf C`.

    python scripts/analysis/encode_crf.py [--eval data/eval_crf12] [--clips ev00001 ...] [--crf 18 12 8]

Each clip's blurred frames are written as an H.264 CRF 12 file (yuv420p, as a phone saves video),
deblurred by the `vdeblur` command with the default model at each output CRF, decoded, and scored
against the sharp frames. Prints the per-clip PSNR of the input file and of each output.
(docs/model_study.md, third stage; an analysis run by hand, not a test.)
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
from pathlib import Path

import av
import numpy as np

from vdeblur.benchmarks.quality import gopro_clips
from vdeblur.train.frames import from_uint8
from vdeblur.train.metrics import psnr_ssim_uint8


def write_h264(frames: np.ndarray, path: Path, crf: int) -> None:
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=30, options={"crf": str(crf), "x264-params": "mbtree=0"})
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        for frame in frames:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        out.mux(stream.encode(None))


def read_rgb(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def psnr(frames: np.ndarray, sharp: np.ndarray) -> float:
    return psnr_ssim_uint8(from_uint8(frames), from_uint8(sharp))[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--eval", type=Path, default=Path("data/eval_crf12"))
    parser.add_argument("--clips", nargs="+", default=["ev00001", "ev00002", "ev00007", "ev00011", "ev00014", "ev00022"])
    parser.add_argument("--crf", type=int, nargs="+", default=[18, 12, 8])
    args = parser.parse_args()
    clips = [c for c in gopro_clips(args.eval, 8) if c.name in args.clips]
    rows: dict[str, list[float]] = {"input": [], **{f"crf {c}": [] for c in args.crf}}
    with tempfile.TemporaryDirectory() as tmp:
        for clip in clips:
            src = Path(tmp) / f"{clip.name}.mp4"
            write_h264(clip.blurred, src, 12)
            rows["input"].append(psnr(read_rgb(src), clip.sharp))
            for crf in args.crf:
                out = Path(tmp) / f"{clip.name}.crf{crf}.mp4"
                subprocess.run(["vdeblur", "run", str(src), str(out), "--crf", str(crf), "--threads", "1"],
                               check=True, capture_output=True)
                rows[f"crf {crf}"].append(psnr(read_rgb(out), clip.sharp))
    print("clips:", " ".join(c.name for c in clips))
    for name, values in rows.items():
        print(f"{name:>7}: " + " ".join(f"{v:.2f}" for v in values) + f" | mean {np.mean(values):.2f} dB")


if __name__ == "__main__":
    main()
