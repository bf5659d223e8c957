"""Tiled inference for frames too large for memory (or for a model's fixed-size engine profile).

The frame is cut into overlapping tiles of at most ``tile`` x ``tile`` pixels; every tile runs
through the model with **its own recurrent state** (a tile keeps its place from frame to frame, so
its ConvLSTM state keeps describing the same part of the scene), and the outputs are blended with
weights that ramp linearly across the overlaps. The ramp hides the seams: a tile's border pixels see
padding instead of image, and they get the least weight exactly where a neighbour sees real context.

Tiles run one after another, so peak memory is one tile's activations, whatever the frame size.

A model that takes its previous frame aligned (``rgb+motion``) would lose, if each tile warped its own
previous tile, everything the camera's motion brings in across the tile's edges: a band as wide as
the motion along every inner edge where it has no previous frame and falls back to single-frame
quality. So the tiler keeps the whole previous frame, estimates the motion on whole frames (or takes
the caller's), warps the previous frame once for the whole frame, and hands each tile its crop of
that, already aligned, with the whole frame's validity: every tile sees what the whole-frame model
would see there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from vdeblur.train.archs.base import padded_size
from vdeblur.train.archs.deep import warp
from vdeblur.train.motion import GlobalMotion, add_motion_channels
from vdeblur.train.padding import Steppable, pad_to_multiple, run_padded

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


@dataclass(frozen=True)
class TiledState:
    tiles: list[Any]  # one backend state per tile, row-major
    previous: torch.Tensor | None  # (B, 3, H, W) the whole previous frame, for an rgb+motion model; else None


class TiledRunner:
    """``run_padded`` over a grid of tiles, with one state per tile."""

    def __init__(self, backend: Backend | Steppable, spec: TileSpec) -> None:
        self.backend, self.spec = backend, spec
        # Blend weights depend only on the frame size: made once per size, not on every frame.
        self._blend: dict[tuple[int, int, torch.device], tuple[list[torch.Tensor], torch.Tensor]] = {}

    def grid(self, height: int, width: int) -> list[tuple[int, int, int, int]]:
        """(y, x, h, w) of every tile, row-major."""
        th, tw = min(self.spec.tile, height), min(self.spec.tile, width)
        return [(y, x, th, tw) for y in tile_starts(height, th, self.spec.overlap)
                for x in tile_starts(width, tw, self.spec.overlap)]

    def initial_state(self, height: int, width: int, batch: int = 1) -> TiledState:
        m = self.backend.pad_multiple
        tiles = [self.backend.initial_state(padded_size(h, m), padded_size(w, m))  # type: ignore[union-attr]
                 for _, _, h, w in self.grid(height, width)]
        aligned = self.backend.input_kind == "rgb+motion" and len(tiles) > 1
        device = getattr(self.backend, "device", None)
        return TiledState(tiles, torch.zeros(batch, 3, height, width, device=device) if aligned else None)

    def run(self, frame: torch.Tensor, state: TiledState,
            motions: Sequence[GlobalMotion] | None = None) -> tuple[torch.Tensor, TiledState]:
        """(B, 3, H, W) -> ((B, 3, H, W) blended output, the next state). ``motions``: the frames' global
        motion onto their previous ones, when estimated already; None estimates them on whole frames."""
        height, width = frame.shape[-2:]
        grid = self.grid(height, width)
        if len(state.tiles) != len(grid):
            raise ValueError(f"{len(state.tiles)} tile states for a {len(grid)}-tile grid; start from initial_state")
        weights, total = self._weights(height, width, frame.device)
        out = torch.zeros(frame.shape[0], 3, height, width, device=frame.device)
        inputs = self._tile_inputs(frame, state, motions)
        new_tiles = []
        for (y, x, h, w), tile_state, weight in zip(grid, state.tiles, weights):
            if inputs is None:  # one tile is the whole frame; a model without motion input needs nothing else
                tile_motions = None if motions is None else [m.in_window(y, x) for m in motions]
                y_out, tile_state = run_padded(self.backend, frame[..., y:y + h, x:x + w].contiguous(), tile_state,
                                               tile_motions)
            else:
                tile_in, previous = (pad_to_multiple(t[..., y:y + h, x:x + w], self.backend.pad_multiple)
                                     for t in inputs)
                y_out, tile_state = self.backend.run(tile_in.contiguous(), (previous.contiguous(), *tile_state[1:]))
                y_out = y_out[..., :h, :w]
            out[..., y:y + h, x:x + w] += y_out.to(frame.device, torch.float32) * weight
            new_tiles.append(tile_state)
        return out / total, TiledState(new_tiles, None if state.previous is None else frame)

    def _tile_inputs(self, frame: torch.Tensor, state: TiledState, motions: Sequence[GlobalMotion] | None
                     ) -> tuple[torch.Tensor, torch.Tensor] | None:
        """For an rgb+motion model over several tiles: the (B, 7, H, W) input whose field says "already
        aligned, valid where the whole previous frame has a pixel", and the (B, 3, H, W) previous frame
        warped onto this one on the whole frame, to be cropped per tile; None otherwise."""
        if state.previous is None:
            return None
        height, width = frame.shape[-2:]
        x = add_motion_channels(frame, state.previous, motions)  # (B, 7, H, W): RGB, dx, dy, valid, confidence
        # Warped as the whole-frame model warps: both padded, so that a sample within half a pixel of the
        # frame's bottom or right edge blends in the same padding row.
        multiple = self.backend.pad_multiple
        field = pad_to_multiple(x[:, 3:5], multiple)
        aligned = warp(pad_to_multiple(state.previous, multiple), field)[..., :height, :width]
        still = torch.cat([x[:, :3], torch.zeros_like(x[:, 3:5]), x[:, 5:]], dim=1)
        return still, aligned

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
