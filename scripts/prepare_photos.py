"""Copy the photographs listed in scripts/photos.tsv out of extracted Debian packages, resized.

Each photo is downscaled (INTER_AREA) to at most ``--long-side`` px on its long side and written as
JPEG: 2560-5120 px wallpapers are soft at pixel level, a 1600 px version has the dense detail of a
video frame, and 36 photos then fit in ~15 MB (what a GPU session can carry).

    python scripts/prepare_photos.py --root EXTRACTED_ROOT --out data/photos
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import cv2

LIST = Path(__file__).with_name("photos.tsv")


def read_list(path: Path = LIST) -> list[dict[str, str]]:
    with path.open() as f:
        rows = [r for r in csv.reader(f, delimiter="\t") if r and not r[0].startswith("#")]
    return [{"name": r[0], "split": r[1], "path": r[2], "package": r[3]} for r in rows]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, required=True, help="folder the .deb packages were extracted into")
    parser.add_argument("--out", type=Path, default=Path("data/photos"))
    parser.add_argument("--long-side", type=int, default=1600)
    parser.add_argument("--quality", type=int, default=92)
    args = parser.parse_args(argv)
    for row in read_list():
        src = args.root / row["path"].lstrip("/")
        image = cv2.imread(str(src), cv2.IMREAD_COLOR)
        if image is None:
            raise SystemExit(f"cannot read {src} (listed as {row['name']} in {LIST}); is {row['package']} extracted?")
        h, w = image.shape[:2]
        scale = min(1.0, args.long_side / max(h, w))
        if scale < 1:
            image = cv2.resize(image, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
        dst = args.out / row["split"] / f"{row['name']}.jpg"
        dst.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(dst), image, [cv2.IMWRITE_JPEG_QUALITY, args.quality])
    print(f"wrote {len(read_list())} photos to {args.out}/{{train,test}}")


if __name__ == "__main__":
    main()
