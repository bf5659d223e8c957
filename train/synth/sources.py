"""Where sharp pixels come from: a folder of images, a video file, scikit-image's bundled photos, or a
procedural pool (dead leaves, rendered text).

Every source reads frames as (H, W, 3) uint8 RGB by index and keeps no open file handle between
calls, so a dataset holding one can be pickled into DataLoader workers. Problems (a missing path,
an empty folder, a file that does not decode) are raised when the source is opened or the frame
is read, naming the path.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import av
import cv2
import numpy as np

from .deadleaves import DeadLeaves
from .generated import GeneratedImages
from .text import RenderedText, font_files

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
# scikit-image ships these colour photographs in its wheel (others in its data folder are
# fetched from the network, are grey, or are not natural photos: microscopy, test charts).
SKIMAGE_PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png",
                  "motorcycle_right.png")


def read_rgb(path: Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB of an image file; grey and 16-bit files are converted."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"cannot read image {path}: missing or not a decodable image ({', '.join(IMAGE_EXTENSIONS)})")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


class ImageFiles:
    """A fixed list of image files; index ``i`` reads the i-th.

    Decoded images are kept in memory (per process, filled on first read): training draws a few
    128-px windows from a whole photo, and decoding a 1600-px JPEG for each costs more than the
    training step itself. A pool of a few hundred photos of <= 1600 px is well under 1 GiB.
    """

    def __init__(self, paths: Sequence[Path], name: str) -> None:
        if not paths:
            raise ValueError(f"{name}: no images ({', '.join(IMAGE_EXTENSIONS)})")
        self.paths = [Path(p) for p in paths]
        self.name = name
        self._decoded: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.paths)

    def read(self, index: int) -> np.ndarray:
        if index not in self._decoded:
            self._decoded[index] = read_rgb(self.paths[index])
            self._decoded[index].flags.writeable = False  # shared by every later read: nobody may draw on it
        return self._decoded[index]

    def __repr__(self) -> str:
        return f"ImageFiles({self.name!r}, {len(self)} images)"


def image_folder(path: str | Path) -> ImageFiles:
    """Every image under ``path`` (recursively), in sorted order so indices are stable."""
    root = Path(path)
    if not root.exists():
        raise FileNotFoundError(f"image folder {root} does not exist")
    if not root.is_dir():
        raise NotADirectoryError(f"{root} is not a folder of images")
    paths = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
    return ImageFiles(paths, f"image folder {root}")


def skimage_photos() -> ImageFiles:
    """The colour photographs bundled inside scikit-image (needs scikit-image, not the network)."""
    try:
        import skimage
    except ImportError:
        raise ImportError("the bundled photos come from scikit-image: pip install scikit-image") from None
    folder = Path(skimage.__file__).parent / "data"
    return ImageFiles([folder / name for name in SKIMAGE_PHOTOS], f"scikit-image photos in {folder}")


class VideoFile:
    """Frames of a video file by index, found by seeking (not decoding from the start each time)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"video file {self.path} does not exist")
        # Demuxing without decoding is fast and gives every frame's timestamp, which is what seeks need.
        with self._open() as container:
            stream = container.streams.video[0]
            self._pts = sorted(p.pts for p in container.demux(stream) if p.pts is not None and p.size > 0)
        if not self._pts:
            raise ValueError(f"video file {self.path} has no video frames")
        self.name = f"video {self.path}"

    def _open(self) -> av.container.InputContainer:
        try:
            container = av.open(str(self.path))
        except av.error.FFmpegError as e:
            raise ValueError(f"cannot open video file {self.path}: {e}") from None
        if not container.streams.video:
            container.close()
            raise ValueError(f"{self.path} has no video stream")
        return container

    def __len__(self) -> int:
        return len(self._pts)

    def read(self, index: int) -> np.ndarray:
        return self.read_frames(index, 1)[0]

    def read_frames(self, start: int, count: int) -> np.ndarray:
        """(count, H, W, 3) uint8 RGB of consecutive frames from ``start``."""
        if start < 0 or count < 1 or start + count > len(self):
            raise IndexError(f"frames [{start}, {start + count}) are outside {self.name} of {len(self)} frames")
        first = self._pts[start]
        frames: list[np.ndarray] = []
        with self._open() as container:
            stream = container.streams.video[0]
            container.seek(first, stream=stream, backward=True)  # lands on the keyframe at or before
            for frame in container.decode(stream):
                if frame.pts is None or frame.pts < first:
                    continue
                frames.append(frame.to_ndarray(format="rgb24"))
                if len(frames) == count:
                    return np.stack(frames)
        raise ValueError(f"{self.name}: decoded {len(frames)} of {count} frames from index {start}")

    def __repr__(self) -> str:
        return f"VideoFile({str(self.path)!r}, {len(self)} frames)"


Source = ImageFiles | VideoFile | GeneratedImages
DEADLEAVES = "deadleaves"
TEXT = "text"
_SPECS = f"a folder of images, a video file, 'skimage', '{DEADLEAVES}[:N]' or '{TEXT}[:N[:FONT_FOLDER]]'"


def open_source(spec: str | Path) -> Source:
    """``"skimage"``; ``"deadleaves"`` (procedural, see ``deadleaves.py``; ``"deadleaves:N"`` is a fixed pool
    of N images, cheap to train on once each is generated); ``"text"``, ``"text:N"`` or ``"text:N:FONTS"``
    (signs, pages and plates, see ``text.py``, drawn with the fonts under the folder FONTS or Pillow's
    built-in face); a folder of images; or a video file."""
    text = str(spec)
    if text == "skimage":
        return skimage_photos()
    kind, pooled, rest = text.partition(":")
    if kind in (DEADLEAVES, TEXT):  # the keyword wins over a folder of that name (give ./text for the folder)
        count_text, _, fonts = rest.partition(":")
        if pooled and (not count_text.isdigit() or int(count_text) < 1):
            raise ValueError(f"source {text!r}: the pool size after '{kind}:' must be a whole number >= 1")
        count = {"count": int(count_text)} if pooled else {}
        if kind == DEADLEAVES:
            if fonts:
                raise ValueError(f"source {text!r}: '{DEADLEAVES}' takes a pool size only ('{DEADLEAVES}:N')")
            return DeadLeaves(**count)
        return RenderedText(**count, fonts=font_files(fonts) if fonts else ())
    path = Path(spec)
    if path.is_dir():
        return image_folder(path)
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        raise ValueError(f"{path} is a single image; give the folder that holds it")
    if not path.exists():
        raise FileNotFoundError(f"source {path} does not exist; give {_SPECS}")
    return VideoFile(path)
