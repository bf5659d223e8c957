"""Training data: GoPro-layout folders and blur synthesised on the fly, as one item format.

Every item is ``{"blurred": (T, 3, H, W) float32 in [0, 1], "sharp": (T, 3, H, W) float32}``;
image models use T = 1, recurrent models a window of T consecutive frames of one sequence.
Randomness (crops, flips, synthesis) comes from ``np.random.default_rng([seed, epoch, index])``,
never from global state, so an item is the same in any DataLoader worker or DDP rank; call
``set_epoch`` (as with DistributedSampler) to draw new crops each epoch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from .synth.clip import ShakeConfig, render_object_clip, render_video_clip
from .synth.sources import Source, VideoFile, read_rgb

SPLITS = ("train", "test")
BLUR_KINDS = ("blur", "blur_gamma")
Item = dict[str, torch.Tensor]


@dataclass(frozen=True)
class GoProSequence:
    name: str
    blur: tuple[Path, ...]
    sharp: tuple[Path, ...]


def scan_gopro(root: str | Path, split: str, blur_kind: str = "blur") -> list[GoProSequence]:
    """Sequences of ``<root>/<split>/<sequence>/{blur|blur_gamma, sharp}/*.png``, checked pair by pair."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; allowed: {', '.join(SPLITS)}")
    if blur_kind not in BLUR_KINDS:
        raise ValueError(f"unknown blur kind {blur_kind!r}; allowed: {', '.join(BLUR_KINDS)}")
    folder = Path(root) / split
    if not folder.is_dir():
        raise FileNotFoundError(f"GoPro folder {folder} does not exist; expected <root>/{{train,test}}/<sequence>/{{blur,sharp}}/*.png")
    sequences = []
    for seq in sorted(p for p in folder.iterdir() if p.is_dir()):
        blur, sharp = _pngs(seq / blur_kind), _pngs(seq / "sharp")
        if len(blur) != len(sharp):
            raise ValueError(f"sequence {seq}: {len(blur)} {blur_kind} frames but {len(sharp)} sharp frames")
        for b, s in zip(blur, sharp):
            if b.name != s.name:
                raise ValueError(f"sequence {seq}: {blur_kind}/{b.name} is paired with sharp/{s.name}; names must match")
        if blur:
            sequences.append(GoProSequence(seq.name, tuple(blur), tuple(sharp)))
    if not sequences:
        raise ValueError(f"GoPro folder {folder} has no sequences with {blur_kind}/ and sharp/ PNGs")
    return sequences


def _pngs(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise FileNotFoundError(f"missing folder {folder}")
    return sorted(folder.glob("*.png"))


class GoProDataset(Dataset):
    """Pairs (window=1) or windows of consecutive frames of one sequence, randomly cropped and flipped.

    crop: (height, width), a square size, or None for whole frames (evaluation). stride: frames
    between window starts; default ``window`` (non-overlapping, each frame seen once per epoch).
    """

    def __init__(self, root: str | Path, *, split: str = "train", window: int = 1, stride: int | None = None,
                 crop: int | tuple[int, int] | None = 256, flips: bool = True, blur_kind: str = "blur",
                 seed: int = 0, min_detail: float = 0.0) -> None:
        if window < 1 or (stride is not None and stride < 1):
            raise ValueError(f"window and stride must be >= 1; got {window}, {stride}")
        self.sequences = scan_gopro(root, split, blur_kind)
        self.crop = (crop, crop) if isinstance(crop, int) else crop
        self.flips, self.seed, self.epoch, self.min_detail = flips, seed, 0, min_detail
        step = stride or window
        self.windows = [(i, start) for i, seq in enumerate(self.sequences)
                        for start in range(0, len(seq.blur) - window + 1, step)]
        if not self.windows:
            raise ValueError(f"no sequence in {Path(root) / split} has {window} frames for one window")
        self.window = window

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, index: int) -> Item:
        rng = np.random.default_rng([self.seed, self.epoch, index])
        for _ in range(FLAT_TRIES):
            blurred, sharp = random_crop_flip(*self._window(index), rng, self.crop, self.flips)
            if self.min_detail <= 0 or detail(sharp) >= self.min_detail:
                break
            index = int(rng.integers(len(self.windows)))  # flat: another window, drawn from this item's stream
        return to_item(blurred, sharp)

    def _window(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The (T, H, W, 3) uint8 blurred and sharp frames of window ``index``."""
        seq_index, start = self.windows[index]
        seq = self.sequences[seq_index]
        span = range(start, start + self.window)
        blurred = np.stack([read_rgb(seq.blur[i]) for i in span])
        sharp = np.stack([read_rgb(seq.sharp[i]) for i in span])
        if blurred.shape != sharp.shape:
            raise ValueError(f"sequence {seq.name}: blurred frames {blurred.shape[1:3]} differ from sharp {sharp.shape[1:3]}")
        return blurred, sharp


# Re-draws a flat window gets before the last draw is kept (a set of only flat images must still train).
FLAT_TRIES = 8


def detail(sharp: np.ndarray) -> float:
    """Mean absolute luma gradient of a (T, H, W, 3) uint8 window's first frame, |dx| + |dy| in 8-bit
    levels: about 1 on clear sky or bokeh (whose blurred input is already within ~40 dB of the target,
    nothing to learn), 10-20 on foliage or text. ``data.min_detail`` skips windows below it."""
    y = sharp[0].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    return float(np.abs(np.diff(y, axis=0)).mean() + np.abs(np.diff(y, axis=1)).mean())


def random_crop_flip(blurred: np.ndarray, sharp: np.ndarray, rng: np.random.Generator,
                     crop: tuple[int, int] | None, flips: bool) -> tuple[np.ndarray, np.ndarray]:
    """One crop and one flip for the whole (T, H, W, 3) window, so motion stays consistent in time."""
    h, w = blurred.shape[1:3]
    if crop is not None:
        ch, cw = crop
        if ch > h or cw > w:
            raise ValueError(f"crop {cw}x{ch} is larger than the frames ({w}x{h})")
        y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        blurred, sharp = blurred[:, y:y + ch, x:x + cw], sharp[:, y:y + ch, x:x + cw]
    if flips:
        flip_h, flip_v = rng.uniform(size=2) < 0.5
        axes = tuple(a for a, f in ((2, flip_h), (1, flip_v)) if f)
        if axes:
            blurred, sharp = np.flip(blurred, axes), np.flip(sharp, axes)
    return blurred, sharp


def to_item(blurred: np.ndarray, sharp: np.ndarray) -> Item:
    """(T, H, W, 3) uint8 pair -> the dataset item of (T, 3, H, W) float32 tensors in [0, 1]."""
    def tensor(frames: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(frames.transpose(0, 3, 1, 2))).float().div_(255)

    return {"blurred": tensor(blurred), "sharp": tensor(sharp)}


class SyntheticDataset(Dataset):
    """Clips synthesised on the fly from image folders or videos; ``length`` items per epoch.

    Item i picks a source and a frame (or a video window), rescales it by a random factor in
    ``scale`` (never below the crop size) and renders a shaken clip. scale < 1 shows more scene
    per crop and, for large photos, removes their own softness so the target is truly sharp.
    per_output: consecutive video frames averaged into one output frame (1 for normal-fps video).
    region_margin: 0 rescales the whole photo and renders anywhere in it (what ``render_dataset`` does, so
    held-out sets stay as they were); > 0 rescales only a region of the window plus this margin on every side,
    the window at its middle: 3-10x less resizing and colour conversion per training item on photos of
    1-2 Mpx, the same distribution of windows (a window within the margin of the photo's edge shifts inwards).
    """

    def __init__(self, sources: Sequence[Source], *, length: int, frames: int = 1, height: int = 256,
                 width: int = 256, config: ShakeConfig | None = None, scale: tuple[float, float] = (0.5, 1.0),
                 per_output: int = 1, seed: int = 0, min_detail: float = 0.0, region_margin: int = 0) -> None:
        if not sources:
            raise ValueError("SyntheticDataset needs at least one source")
        if length < 1 or frames < 1 or per_output < 1:
            raise ValueError(f"length, frames and per_output must be >= 1; got {length}, {frames}, {per_output}")
        if not 0 < scale[0] <= scale[1]:
            raise ValueError(f"scale must be a range with 0 < lo <= hi; got {scale}")
        if region_margin < 0:
            raise ValueError(f"region_margin must be >= 0; got {region_margin}")
        for source in sources:
            if isinstance(source, VideoFile) and len(source) < frames * per_output:
                raise ValueError(f"{source.name} has {len(source)} frames; a clip needs {frames * per_output}")
        self.sources, self.length, self.frames = list(sources), length, frames
        self.height, self.width, self.config = height, width, config or ShakeConfig()
        self.scale, self.per_output, self.seed, self.epoch = scale, per_output, seed, 0
        self.min_detail, self.region_margin = min_detail, region_margin

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> Item:
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} outside a dataset of {self.length} items")
        rng = np.random.default_rng([self.seed, self.epoch, index])
        for _ in range(FLAT_TRIES):  # a flat clip is drawn again from the item's own stream (data.min_detail)
            blurred, sharp, moving = self._clip(rng)
            if self.min_detail <= 0 or detail(sharp) >= self.min_detail:
                break
        item = to_item(blurred, sharp)
        if self.config.objects is not None or self.config.parallax is not None:  # (T, H, W) bool: what one homography misses
            item["moving"] = torch.from_numpy(moving)
        return item

    def _clip(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        source = self.sources[int(rng.integers(len(self.sources)))]
        factor = float(rng.uniform(*self.scale))
        clip_seed = int(rng.integers(2**63))
        size = dict(frames=self.frames, height=self.height, width=self.width, seed=clip_seed, config=self.config)
        if isinstance(source, VideoFile):
            start = int(rng.integers(0, len(source) - self.frames * self.per_output + 1))
            video = source.read_frames(start, self.frames * self.per_output)
            video = np.stack([self._rescale(f, factor) for f in video])
            blurred, sharp = render_video_clip(video, per_output=self.per_output, **size)
            return blurred, sharp, np.zeros(blurred.shape[:3], bool)
        if self.region_margin:
            image = self._region(source.read(int(rng.integers(len(source)))), factor, rng)
            return render_object_clip(image, centred=True, **size)
        image = self._rescale(source.read(int(rng.integers(len(source)))), factor)
        return render_object_clip(image, **size)

    def _region(self, image: np.ndarray, factor: float, rng: np.random.Generator) -> np.ndarray:
        """The part of ``_rescale(image, factor)`` a clip can look at: the window plus ``region_margin``
        on every side (less where the photo is smaller), at a random place, cut from the source first."""
        h, w = image.shape[:2]
        factor, big_h, big_w = self._rescaled_size(h, w, factor)
        rh, rw = min(big_h, self.height + 2 * self.region_margin), min(big_w, self.width + 2 * self.region_margin)
        y0, x0 = int(rng.integers(0, big_h - rh + 1)), int(rng.integers(0, big_w - rw + 1))
        fy, fx = big_h / h, big_w / w  # rescaled px per source px
        sy0, sx0 = int(y0 / fy), int(x0 / fx)
        sy1, sx1 = min(h, int(np.ceil((y0 + rh) / fy))), min(w, int(np.ceil((x0 + rw) / fx)))
        return _resize(image[sy0:sy1, sx0:sx1], rh, rw, factor)

    def _rescaled_size(self, h: int, w: int, factor: float) -> tuple[float, int, int]:
        """(factor, height, width) of an h x w image rescaled by ``factor``, never smaller than the output window."""
        factor = max(factor, self.height / h, self.width / w)
        return factor, max(self.height, round(h * factor)), max(self.width, round(w * factor))

    def _rescale(self, image: np.ndarray, factor: float) -> np.ndarray:
        factor, height, width = self._rescaled_size(*image.shape[:2], factor)
        return image if factor == 1.0 else _resize(image, height, width, factor)


def _resize(image: np.ndarray, height: int, width: int, factor: float) -> np.ndarray:
    # INTER_AREA is the alias-free way down; upscaling (small sources only) uses cubic.
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if factor < 1 else cv2.INTER_CUBIC)
