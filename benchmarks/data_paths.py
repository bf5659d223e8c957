"""CPU seconds per training batch of the two data paths (``python -m vdeblur.benchmarks.data_paths``).

One thing changes between the rows: where a batch's (blurred, sharp) windows come from.
- ``pre-rendered``: ``GoProDataset`` reading a folder that ``render_dataset`` wrote once (PNG decode,
  crop, flip), as ``data.kind = "gopro"`` trains on ``data/shake2``;
- ``fresh``: ``SyntheticDataset`` rendering every item anew (crop, scale, camera shake, noise,
  compression) from the training sources, as ``data.kind = "synthetic"`` (the default) trains: from
  the whole rescaled photo (``data.region_margin = 0``), or from the window's region of it (the preset's
  ``region_margin``).
Both make batches of the default run's shape (8 windows of 2 frames of 128x128) on one thread, the
share of a training process on a shared 2-core machine. The fresh path is timed after one pass over its
sources (each photo decoded once, each dead-leaves image generated once, then kept in memory, as in a
run of thousands of steps). ``--step-s`` adds a model step's CPU time to both rows, for the ratio that
matters: the whole training step (``benchmarks/train_speed.py`` measures it: 0.160 CPU-s for
vdeblur_deep with bf16 + channels_last).
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from vdeblur.train.data import GoProDataset, SyntheticDataset
from vdeblur.train.run_state import open_sources
from vdeblur.train.synth.clip import shake_config
from vdeblur.train.synth.render_dataset import render_folder


def cpu_per_batch(dataset: torch.utils.data.Dataset, batches: int, batch: int, first: int = 0) -> float:
    """CPU seconds per batch of ``batch`` consecutive items from ``first`` on."""
    start = time.process_time()
    for i in range(first, first + batches * batch):
        dataset[i % len(dataset)]
    return (time.process_time() - start) / batches


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", action="append", default=None,
                        help="training source (repeatable) [the default run's: data/photos/train twice, deadleaves:96]")
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--window", type=int, default=2)
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--clips", type=int, default=200, help="clips of the pre-rendered folder (4 frames, 160x160)")
    parser.add_argument("--step-s", type=float, default=0.160, help="a model step's CPU seconds, added to every row")
    parser.add_argument("--region-margin", type=int, default=96, help="data.region_margin of the region row")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    sources = open_sources(tuple(args.source or ("data/photos/train", "data/photos/train", "deadleaves:96")))
    shake = shake_config(blur_px=(3.0, 20.0))
    size = dict(frames=args.window, height=args.crop, width=args.crop, scale=(0.3, 1.0), config=shake)
    whole = SyntheticDataset(sources, length=10**6, seed=0, **size)
    region = SyntheticDataset(sources, length=10**6, seed=0, region_margin=args.region_margin, **size)
    with tempfile.TemporaryDirectory() as tmp:
        render_folder(SyntheticDataset(sources, length=args.clips, frames=4, height=160, width=160, seed=1,
                                       scale=(0.3, 1.0), config=shake), Path(tmp), "train")
        rendered = GoProDataset(tmp, split="train", window=args.window, crop=args.crop)
        cpu_per_batch(rendered, 2, args.batch)  # page cache and imports
        pre = cpu_per_batch(rendered, args.batches, args.batch)
    # Warm the caches: every photo and every dead-leaves image read once (what a long run pays once).
    for source in {id(s): s for s in sources}.values():
        for index in range(len(source)):
            source.read(index)
    rows = {"pre-rendered (gopro)": pre,
            "fresh, whole photo": cpu_per_batch(whole, args.batches, args.batch, first=10**5),
            f"fresh, region (margin {args.region_margin})": cpu_per_batch(region, args.batches, args.batch, first=10**5)}
    print(f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, 1 thread, "
          f"batch {args.batch} x {args.window} frames of {args.crop}x{args.crop}")
    print("| data path | data CPU-s / batch | + model step | ratio |")
    print("|---|---:|---:|---:|")
    for name, seconds in rows.items():
        total = seconds + args.step_s
        print(f"| {name} | {seconds:.3f} | {total:.3f} | {total / (pre + args.step_s):.2f}x |")


if __name__ == "__main__":
    main()
