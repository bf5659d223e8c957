"""Parameters and GFLOPs per frame of every registered model (``python -m vdeblur.benchmarks.complexity``).

FLOPs are counted by ``torch.utils.flop_counter`` (a multiply-add counts as 2 FLOPs) on the *meta*
device: shapes propagate, nothing is computed, so even 1080p for a 40 M-parameter U-Net takes
milliseconds. The frame is padded to the model's multiple first, as the engine does.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from vdeblur.train.archs.base import padded_size
from vdeblur.train.registry import build_model, list_models


@dataclass(frozen=True)
class Complexity:
    model: str
    params: int
    gflops: float
    width: int
    height: int
    pad_multiple: int


def measure(name: str, width: int = 1280, height: int = 720, config: Mapping[str, Any] | None = None) -> Complexity:
    """``config``: the model's registry config fields (a checkpoint's), defaults when None."""
    with torch.device("meta"):
        model = build_model(name, config).eval()
        ph, pw = padded_size(height, model.pad_multiple), padded_size(width, model.pad_multiple)
        frame = torch.empty(1, model.in_channels, ph, pw)
        state = model.initial_state(1, ph, pw, device="meta", dtype=torch.float32)
    params = sum(p.numel() for p in model.parameters())
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(frame, state)
    return Complexity(name, params, counter.get_total_flops() / 1e9, width, height, model.pad_multiple)


def markdown_table(rows: list[Complexity]) -> str:
    lines = ["| model | params (M) | GFLOPs/frame | padded to multiple of |", "|---|---:|---:|---:|"]
    lines += [f"| `{r.model}` | {r.params / 1e6:.2f} | {r.gflops:.1f} | {r.pad_multiple} |" for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    args = parser.parse_args(argv)
    rows = [measure(n, args.width, args.height) for n in list_models()]
    print(f"Complexity at {args.width}x{args.height} (FLOPs: multiply-add = 2)\n")
    print(markdown_table(rows))


if __name__ == "__main__":
    main()
