"""The photograph pool: its list (scripts/photos.tsv), the Qt resource reader and the preparation checks.

Nothing is downloaded: the list is checked as committed, and the reader and the copy step run on files
the tests make.
"""

from __future__ import annotations

import struct
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
sys.path.insert(0, str(SCRIPTS))

import prepare_photos  # noqa: E402
from qt_rcc import COMPRESSED, DIRECTORY, Rcc, RccError  # noqa: E402


def write_rcc(path: Path, files: dict[str, tuple[bytes, bool]]) -> None:
    """A format-3 ``qres`` file holding ``files`` (path -> (bytes, zlib?)), laid out as Qt's rcc writes it:
    header, data, names, then the tree of 22-byte nodes, each folder's children consecutive."""
    tree: dict = {}
    for name, content in files.items():
        *folders, leaf = name.split("/")
        node = tree
        for folder in folders:
            node = node.setdefault(folder, {})
        node[leaf] = content
    names, data = bytearray(), bytearray()
    nodes: list[bytes] = [b""]  # the root first; children are appended folder by folder (breadth first)
    pending = [(0, 0, tree)]  # (node index, name offset, folder)
    while pending:
        index, name_at, folder = pending.pop(0)
        first = len(nodes)
        nodes.extend([b""] * len(folder))
        nodes[index] = struct.pack(">iHii", name_at, DIRECTORY, len(folder), first) + bytes(8)
        for k, (child_name, child) in enumerate(folder.items()):
            child_at = len(names)
            names.extend(struct.pack(">HI", len(child_name), 0) + child_name.encode("utf-16-be"))
            if isinstance(child, dict):
                pending.append((first + k, child_at, child))
                continue
            content, compress = child
            payload = struct.pack(">I", len(content)) + zlib.compress(content) if compress else content
            nodes[first + k] = struct.pack(">iHhhi", child_at, COMPRESSED if compress else 0, 0, 0, len(data)) + bytes(8)
            data.extend(struct.pack(">I", len(payload)) + payload)
    data_at = 24  # magic, version, tree, data, names, flags
    names_at = data_at + len(data)
    tree_at = names_at + len(names)
    path.write_bytes(b"qres" + struct.pack(">iiiii", 3, tree_at, data_at, names_at, 0) + data + names + b"".join(nodes))


def test_rcc_reader_lists_and_reads_raw_and_zlib_entries(tmp_path: Path) -> None:
    webp = cv2.imencode(".webp", np.full((8, 12, 3), 200, np.uint8))[1].tobytes()
    files = {"app/resource/a.webp": (webp, True), "app/resource/b.txt": (b"plain", False), "app/top.qml": (b"x", True)}
    write_rcc(tmp_path / "t.rcc", files)
    rcc = Rcc(tmp_path / "t.rcc")
    assert sorted(p for p, _, _ in rcc.files()) == sorted(files)
    assert rcc.read("app/resource/a.webp") == webp
    assert rcc.read("/app/resource/b.txt") == b"plain"
    assert cv2.imdecode(np.frombuffer(rcc.read("app/resource/a.webp"), np.uint8), cv2.IMREAD_COLOR).shape == (8, 12, 3)
    with pytest.raises(RccError, match="no file 'app/missing.webp'"):
        rcc.read("app/missing.webp")
    (tmp_path / "bad.rcc").write_bytes(b"RIFF0000")
    with pytest.raises(RccError, match="not a Qt resource file"):
        Rcc(tmp_path / "bad.rcc")


ROWS = prepare_photos.read_list()


def test_the_committed_list_is_checked_and_photo_disjoint() -> None:
    counts = {s: sum(r["split"] == s for r in ROWS) for s in prepare_photos.SPLITS}
    assert counts["train"] >= 200 and counts["test"] == 5 and counts["test_dense"] >= 20
    assert len({(r["package"], r["path"]) for r in ROWS}) == len(ROWS)  # no photograph listed twice
    assert all(r["licence"] and min(int(r["width"]), int(r["height"])) >= 384 for r in ROWS)
    listed = {r["name"] for r in ROWS}
    assert all(name in listed for group in prepare_photos.SAME_SCENE for name in group)  # the groups name real rows


def _write_list(path: Path, rows: list[list[str]]) -> Path:
    path.write_text("# name\tsplit\tpath\tpackage\twidth\theight\tlicence\n" + "".join("\t".join(r) + "\n" for r in rows))
    return path


def test_reserved_photographs_duplicates_bad_splits_and_split_scenes_are_refused(tmp_path: Path) -> None:
    def row(name: str, split: str, path: str, package: str = "pkg") -> list[str]:
        return [name, split, path, package, "640", "480", "GPL-2+"]

    good = row("a", "train", "/usr/share/x/a.jpg")
    assert len(prepare_photos.read_list(_write_list(tmp_path / "ok.tsv", [good]))) == 1
    for rows, message in (
        ([good, row("b", "train", "/usr/share/x/china.jpg")], "reserved for outside evaluation"),
        ([good, row("b", "test", "/usr/lib/python3/dist-packages/sklearn/x.jpg", "python3-sklearn")], "reserved"),
        ([good, row("a", "train", "/usr/share/x/c.jpg")], "listed twice"),
        ([good, row("b", "validation", "/usr/share/x/c.jpg")], "split in"),
        ([row("cv_aloeL", "train", "/x/aloeL.jpg"), row("cv_aloeR", "test_dense", "/x/aloeR.jpg")],
         "show one scene and must share a split"),
    ):
        with pytest.raises(ValueError, match=message):
            prepare_photos.read_list(_write_list(tmp_path / "bad.tsv", rows))


def test_prepare_copies_resized_photos_and_refuses_a_changed_package(tmp_path: Path, monkeypatch,
                                                                      photo: np.ndarray) -> None:
    root = tmp_path / "root"
    (root / "usr/share/x").mkdir(parents=True)
    cv2.imwrite(str(root / "usr/share/x/a.png"), photo)
    (root / prepare_photos.RCC_DIR).mkdir(parents=True)
    write_rcc(root / prepare_photos.RCC_DIR / "act.rcc", {"g/res/b.png": (cv2.imencode(".png", photo[:400])[1].tobytes(), True)})
    rows = [["a", "train", "/usr/share/x/a.png", "pkg", "512", "512", "GPL"],
            ["b", "test_dense", "/_rcc/act/g/res/b.png", "gc", "512", "400", "GPL"]]
    listed = _write_list(tmp_path / "list.tsv", rows)
    monkeypatch.setattr(prepare_photos, "read_list", lambda path=listed: _read(path))
    prepare_photos.main(["--root", str(root), "--out", str(tmp_path / "out"), "--long-side", "256"])
    assert cv2.imread(str(tmp_path / "out/train/a.jpg")).shape == (256, 256, 3)
    assert cv2.imread(str(tmp_path / "out/test_dense/b.jpg")).shape == (200, 256, 3)
    rows[0][4] = "640"
    _write_list(tmp_path / "list.tsv", rows)
    with pytest.raises(SystemExit, match="is 512x512, listed as 640x512: the package changed"):
        prepare_photos.main(["--root", str(root), "--out", str(tmp_path / "out2")])


_read = prepare_photos.read_list
