"""Copy the photographs listed in scripts/photos.tsv out of extracted Debian packages, resized.

Each photo is downscaled (INTER_AREA) to at most ``--long-side`` px on its long side and written as
JPEG: 2560-5120 px wallpapers are soft at pixel level, a 1600 px version has the dense detail of a
video frame. Photos stored inside Qt resource files (``/_rcc/ACTIVITY/PATH``, GCompris) are read
with ``qt_rcc.py``. Every photo's decoded size must match the list (a changed package is noticed, not
silently trained on), and the reserved evaluation photographs are refused.

    python scripts/prepare_photos.py --root EXTRACTED_ROOT --out data/photos
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import cv2
import numpy as np

from qt_rcc import Rcc

LIST = Path(__file__).with_name("photos.tsv")
COLUMNS = ("name", "split", "path", "package", "width", "height", "licence")
# train: the training pool; test: the five held-out photographs of data/eval, data/eval_small and data/eval_crf12
# (kept as they were, so every earlier figure stays comparable); test_dense: held-out photographs of dense detail
# (buildings, foliage, bark, text) for data/eval_dense. No photograph is in two of them.
SPLITS = ("train", "test", "test_dense")
# scikit-learn's and matplotlib's sample photographs are reserved for evaluation from outside the project:
# never trained on, never held out here.
RESERVED_NAMES = ("china.jpg", "flower.jpg", "grace_hopper.jpg")
RESERVED_PACKAGES = ("python3-sklearn", "python3-matplotlib", "python-matplotlib-data", "python-sklearn")
# Photographs of one scene (stereo and optical-flow pairs, two viewpoints, one landmark in two activities): each
# group stays in one split, else a held-out score would partly measure a scene the model trained on.
SAME_SCENE = (
    ("cv_aero1", "cv_aero3"), ("cv_aloeL", "cv_aloeR"), ("cv_basketball1", "cv_basketball2"), ("cv_graf1", "cv_graf3"),
    ("cv_left", "cv_right"), ("cv_leuvenA", "cv_leuvenB"), ("cv_rubberwhale1", "cv_rubberwhale2"),
    ("sk_motorcycle_left", "sk_motorcycle_right"),
    ("gc_details_Neuschwanstein_background", "gc_explore_monuments_neuschwansteinCastle"),
    ("gc_details_TajMahal_background", "gc_explore_monuments_tajMahal"),
    ("gc_details_GizahPyramids_background", "gc_explore_monuments_greatPyramidOfGiza"),
)
RCC_PREFIX = "/_rcc/"
RCC_DIR = "usr/share/gcompris-qt/rcc"


def read_list(path: Path = LIST) -> list[dict[str, str]]:
    """The rows of ``photos.tsv``, checked: known split, unique names, nothing reserved, scenes not split."""
    with path.open() as f:
        rows = [dict(zip(COLUMNS, r)) for r in csv.reader(f, delimiter="\t") if r and not r[0].startswith("#")]
    names = set()
    for row in rows:
        if len(row) != len(COLUMNS) or row["split"] not in SPLITS:
            raise ValueError(f"{path}: row {row.get('name')!r} needs {len(COLUMNS)} columns {COLUMNS} and a split in {SPLITS}")
        if row["name"] in names:
            raise ValueError(f"{path}: photo name {row['name']!r} is listed twice")
        names.add(row["name"])
        if Path(row["path"]).name in RESERVED_NAMES or row["package"].startswith(RESERVED_PACKAGES):
            raise ValueError(f"{path}: {row['path']} ({row['package']}) is reserved for outside evaluation; "
                             f"never {', '.join(RESERVED_NAMES)} nor {', '.join(RESERVED_PACKAGES)}")
    split = {r["name"]: r["split"] for r in rows}
    for group in SAME_SCENE:
        sides = {split[name] for name in group if name in split}
        if len(sides) > 1:
            raise ValueError(f"{path}: {', '.join(group)} show one scene and must share a split; got {sorted(sides)}")
    return rows


def load(root: Path, row: dict[str, str]) -> np.ndarray:
    """The listed photo as BGR uint8, from a plain file or from inside a Qt resource file."""
    if row["path"].startswith(RCC_PREFIX):
        activity, inner = row["path"][len(RCC_PREFIX):].split("/", 1)
        data = np.frombuffer(Rcc(root / RCC_DIR / f"{activity}.rcc").read(inner), np.uint8)
        image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    else:
        image = cv2.imread(str(root / row["path"].lstrip("/")), cv2.IMREAD_COLOR)
    if image is None:
        raise SystemExit(f"cannot read {row['path']} (listed as {row['name']} in {LIST}); is {row['package']} extracted?")
    h, w = image.shape[:2]
    if (w, h) != (int(row["width"]), int(row["height"])):
        raise SystemExit(f"{row['name']}: {row['path']} in {row['package']} is {w}x{h}, listed as "
                         f"{row['width']}x{row['height']}: the package changed; look at it again before using it")
    return image


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, required=True, help="folder the .deb packages were extracted into")
    parser.add_argument("--out", type=Path, default=Path("data/photos"))
    parser.add_argument("--long-side", type=int, default=1600)
    parser.add_argument("--quality", type=int, default=92)
    args = parser.parse_args(argv)
    rows = read_list()
    for row in rows:
        image = load(args.root, row)
        h, w = image.shape[:2]
        scale = min(1.0, args.long_side / max(h, w))
        if scale < 1:
            image = cv2.resize(image, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
        dst = args.out / row["split"] / f"{row['name']}.jpg"
        dst.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(dst), image, [cv2.IMWRITE_JPEG_QUALITY, args.quality])
    counts = ", ".join(f"{sum(r['split'] == s for r in rows)} {s}" for s in SPLITS)
    print(f"wrote {len(rows)} photos to {args.out}/{{{','.join(SPLITS)}}} ({counts})")


if __name__ == "__main__":
    main()
