"""``--tile``'s settings, checked on their own so that the command line refuses bad values before
torch loads (``tiling`` does the work)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TileSpec:
    tile: int  # largest tile side in pixels
    overlap: int = 32  # pixels shared by neighbouring tiles; make it at least the blur length

    def __post_init__(self) -> None:
        if self.overlap < 0 or self.tile < 16 or self.tile <= 2 * self.overlap:
            raise ValueError(f"tile {self.tile} with overlap {self.overlap} is not allowed: need tile >= 16, "
                             f"overlap >= 0 and tile > 2 x overlap")
