"""Read files out of a compiled Qt resource file (``.rcc``, magic ``qres``, format versions 1-3).

GCompris ships its photographs (monuments, animals, musicians) inside such files, one per activity.
Reading them needs no Qt: the format is a header, a tree of fixed-size nodes, a table of UTF-16 names
and a data block whose entries are raw or zlib-compressed (``qCompress``: a 4-byte big-endian size,
then a zlib stream). Layout as in Qt's ``rcc.cpp`` (``RCCFileInfo::writeDataInfo``).

    python scripts/qt_rcc.py FILE.rcc            # list the paths inside
"""

from __future__ import annotations

import struct
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path

MAGIC = b"qres"
COMPRESSED, DIRECTORY, COMPRESSED_ZSTD = 0x01, 0x02, 0x04


class RccError(ValueError):
    """A file that is not a Qt resource file this reader understands; the message names it."""


class Rcc:
    """The files of one ``.rcc`` by path (``a/b/c.webp``, no leading slash)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.blob = self.path.read_bytes()
        if self.blob[:4] != MAGIC:
            raise RccError(f"{self.path} is not a Qt resource file (no 'qres' magic)")
        self.version, self.tree, self.data, self.names = struct.unpack(">iiii", self.blob[4:20])
        if self.version not in (1, 2, 3):
            raise RccError(f"{self.path}: resource format version {self.version}; this reader knows 1, 2 and 3")
        # Version 2 added an 8-byte modification time to every node.
        self.node_size = 14 if self.version == 1 else 22

    def _name(self, offset: int) -> str:
        at = self.names + offset
        (length,) = struct.unpack(">H", self.blob[at:at + 2])
        return self.blob[at + 6:at + 6 + 2 * length].decode("utf-16-be")  # after the length and a 4-byte hash

    def _node(self, index: int) -> tuple[str, int, int, int]:
        """(name, flags, a, b): a directory's (child count, first child) or a file's (locale, data offset)."""
        at = self.tree + index * self.node_size
        name_offset, flags, a, b = struct.unpack(">iHii", self.blob[at:at + 14])
        return (self._name(name_offset) if index else ""), flags, a, b

    def files(self) -> Iterator[tuple[str, int, int]]:
        """(path, flags, data offset) of every file, depth first from the root node."""
        stack = [(0, "")]
        while stack:
            index, prefix = stack.pop()
            name, flags, a, b = self._node(index)
            path = f"{prefix}/{name}" if prefix else name
            if flags & DIRECTORY:
                stack.extend((child, path) for child in range(b, b + a))
            else:
                yield path, flags, b

    def read(self, wanted: str) -> bytes:
        """The bytes of the file at ``wanted``, decompressed."""
        for path, flags, offset in self.files():
            if path == wanted.lstrip("/"):
                at = self.data + offset
                (size,) = struct.unpack(">I", self.blob[at:at + 4])
                payload = self.blob[at + 4:at + 4 + size]
                if flags & COMPRESSED_ZSTD:
                    raise RccError(f"{self.path}:{wanted} is zstd-compressed; this reader knows raw and zlib entries")
                return zlib.decompress(payload[4:]) if flags & COMPRESSED else payload
        raise RccError(f"{self.path} has no file {wanted!r}")


if __name__ == "__main__":
    for path, _, _ in sorted(Rcc(sys.argv[1]).files()):
        print(path)
