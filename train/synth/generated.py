"""A fixed pool of procedurally generated images, read by index like an image folder.

Drawing one image (dead leaves, rendered text) costs more CPU than a training step, so a source such as
``"deadleaves:96"`` is a pool of 96 images, each drawn once from ``np.random.default_rng([seed, index])``
(the same index always gives the same image) and then kept in memory.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

# Generated images kept per source (512 px: 0.75 MiB each); a larger pool is drawn again on every read.
CACHE_IMAGES = 256


class GeneratedImages(ABC):
    """``count`` generated images; subclasses say how one is drawn from its seed (``draw``)."""

    kind = "generated images"

    def __init__(self, count: int, seed: int, name: str) -> None:
        if count < 1:
            raise ValueError(f"{self.kind}: count must be >= 1; got {count}")
        self.count, self.seed, self.name = count, seed, name
        self._cache: dict[int, np.ndarray] = {}

    @abstractmethod
    def draw(self, seed: int) -> np.ndarray:
        """One (H, W, 3) uint8 RGB image, a function of ``seed`` alone."""

    def __len__(self) -> int:
        return self.count

    def read(self, index: int) -> np.ndarray:
        if not 0 <= index < self.count:
            raise IndexError(f"index {index} outside {self.name}")
        if index in self._cache:
            return self._cache[index]
        image = self.draw(int(np.random.default_rng([self.seed, index]).integers(2**63)))
        if len(self._cache) < CACHE_IMAGES:
            image.flags.writeable = False  # shared by every later read: nobody may draw on it
            self._cache[index] = image
        return image

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.count}, seed={self.seed})"
