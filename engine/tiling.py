"""Tiled inference for frames too large for memory (or for a model's fixed-size engine profile).

The frame is cut into overlapping tiles of at most ``tile`` x ``tile`` pixels; every tile runs
through the model with **its own recurrent state** (a tile keeps its place from frame to frame, so
its ConvLSTM state keeps describing the same part of the scene), and the outputs are blended with
weights that ramp linearly across the overlaps. The ramp hides the seams: a tile's border pixels see
padding instead of image, and they get the least weight exactly where a neighbour sees real context.

Tiles run one after another, so peak memory is one tile's activations, whatever the frame size.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from vdeblur.train.archs.base import padded_size
from vdeblur.train.motion import GlobalMotion
from vdeblur.train.padding import Steppable, run_padded

from .backends.base import Backend
from .tile_spec import TileSpec


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets covering ``length`` with tiles of ``tile`` (the last one flush with the end)."""
    if length <= tile:
        return [0]
    stride = tile - overlap
    starts = list(range(0, length - tile, stride))
    return starts + [length - tile]


def _ramp(length: int, start: int, size: int, overlap: int, device: torch.device) -> torch.Tensor:
    """(size,) weights: 1 inside, rising linearly over ``overlap`` at edges that border another tile."""
    w = torch.ones(size, device=device)
    ramp = torch.arange(1, overlap + 1, device=device, dtype=torch.float32) / (overlap + 1)  # never 0
    n = min(overlap, size)
    if start > 0 and n:
        w[:n] = torch.minimum(w[:n], ramp[:n])
    if start + size < length and n:
        w[-n:] = torch.minimum(w[-n:], ramp[:n].flip(0))
    return w


class TiledRunner:
    """``run_padded`` over a grid of tiles, with one state per tile (the state is a list of them)."""

    def __init__(self, backend: Backend | Steppable, spec: TileSpec) -> None:
        self.backend, self.spec = backend, spec
        # Blend weights depend only on the frame size: made once per size, not on every frame.
        self._blend: dict[tuple[int, int, torch.device], tuple[list[torch.Tensor], torch.Tensor]] = {}

    def grid(self, height: int, width: int) -> list[tuple[int, int, int, int]]:
        """(y, x, h, w) of every tile, row-major."""
        th, tw = min(self.spec.tile, height), min(self.spec.tile, width)
        return [(y, x, th, tw) for y in tile_starts(height, th, self.spec.overlap)
                for x in tile_starts(width, tw, self.spec.overlap)]

    def initial_state(self, height: int, width: int) -> list[Any]:
        m = self.backend.pad_multiple
        return [self.backend.initial_state(padded_size(h, m), padded_size(w, m))  # type: ignore[union-attr]
                for _, _, h, w in self.grid(height, width)]

    def run(self, frame: torch.Tensor, states: list[Any],
            motions: Sequence[GlobalMotion] | None = None) -> tuple[torch.Tensor, list[Any]]:
        """(B, 3, H, W) -> ((B, 3, H, W) blended output, next per-tile states). ``motions``: the frames'
        global motion onto their previous ones, when estimated already (each tile gets it in its own
        coordinates); None lets every tile estimate it against its own previous tile."""
        height, width = frame.shape[-2:]
        grid = self.grid(height, width)
        if len(states) != len(grid):
            raise ValueError(f"{len(states)} tile states for a {len(grid)}-tile grid; start from initial_state")
        weights, total = self._weights(height, width, frame.device)
        out = torch.zeros(frame.shape[0], 3, height, width, device=frame.device)
        new_states = []
        for (y, x, h, w), state, weight in zip(grid, states, weights):
            tile_motions = None if motions is None else [m.in_window(y, x) for m in motions]
            y_out, state = run_padded(self.backend, frame[..., y:y + h, x:x + w].contiguous(), state, tile_motions)
            out[..., y:y + h, x:x + w] += y_out.to(frame.device, torch.float32) * weight
            new_states.append(state)
        return out / total, new_states

    def _weights(self, height: int, width: int, device: torch.device) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Each tile's (h, w) blend weight and their (H, W) sum, for frames of this size."""
        key = (height, width, device)
        if key not in self._blend:
            weights, total = [], torch.zeros(height, width, device=device)
            for y, x, h, w in self.grid(height, width):
                weight = _ramp(height, y, h, self.spec.overlap, device)[:, None] * \
                    _ramp(width, x, w, self.spec.overlap, device)[None, :]  # (h, w)
                weights.append(weight)
                total[y:y + h, x:x + w] += weight
            self._blend[key] = weights, total
        return self._blend[key]
