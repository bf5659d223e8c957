"""The hidden file an output grows in (``.{stem}.XXXXXXXX.part{suffix}`` beside it), and the removal
of those that killed runs left behind.

A run renames its part file to the output when complete and deletes it on any error, but a SIGKILL
or a power cut leaves it. The next run for the same output removes such files, and must never
remove one that another run is still writing. How a live one is told from a dead one: **a lock**.
The writing run holds an exclusive ``fcntl.flock`` on its part file for as long as it writes; the
kernel drops it when the process ends, however it ends (SIGKILL included). The cleanup takes the
same lock without waiting: a file it can lock has no live writer, and is unlinked while the lock is
held. Chosen over the file's age (a slow run on a long video writes nothing for minutes while its
encoder buffers, and a file killed a second ago is just as dead) and over a PID in the name (PIDs are
reused, and mean nothing across containers or NFS clients).

Only files of this exact name pattern are considered (mkstemp's 8 characters from [a-z0-9_]: another
output's part files never match), only regular files (no links, no folders) owned by the user
running the cleanup. Where ``fcntl`` is missing (Windows), or the file system refuses locks, nothing
is removed: a live file cannot be told from a dead one there. flock is honoured across processes on
local file systems and on NFS (Linux maps it to NFS byte-range locks); a part file written by a
vdeblur older than this module holds no lock and counts as dead.
"""

from __future__ import annotations

import os
import re
import stat
import tempfile
from pathlib import Path

from vdeblur.export.artifact_cache import plain_permissions

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]


class PartFile:
    """A new part file for ``dst``, locked until ``release()``; its path is ``.path``."""

    def __init__(self, dst: Path) -> None:
        for _ in range(3):
            fd, name = tempfile.mkstemp(prefix=f".{dst.stem}.", suffix=f".part{dst.suffix}", dir=dst.parent)
            _lock(fd)  # waits while a cleanup holds it, which is only ever for an unlink
            if _same_file(fd, Path(name)):
                break
            # A cleanup took the file between its creation and our lock, and removed it: start again.
            os.close(fd)
        else:
            raise OSError(f"could not create a part file for {dst} (removed three times while being created)")
        self.fd, self.path = fd, Path(name)
        plain_permissions(self.path)

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)  # closing the last descriptor drops the lock
            self.fd = -1


def _lock(fd: int, wait: bool = True) -> bool | None:
    """True: locked by us; False: another process holds it; None: no locks here (no fcntl, or a file
    system that refuses them), so a live file cannot be told from a dead one."""
    if fcntl is None:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except BlockingIOError:
        return False
    except OSError:  # ENOLCK, EOPNOTSUPP...: the run goes on unlocked, and no cleanup removes anything
        return None
    return True


def _same_file(fd: int, path: Path) -> bool:
    """Whether ``path`` still names the file open as ``fd``."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino)


def _candidates(dst: Path) -> list[Path]:
    if not dst.parent.is_dir():
        return []
    pattern = re.compile(rf"\.{re.escape(dst.stem)}\.[a-z0-9_]{{8}}\.part{re.escape(dst.suffix)}")
    return sorted(p for p in dst.parent.iterdir() if pattern.fullmatch(p.name))


def _open_if_ours(path: Path) -> int | None:
    """A descriptor of ``path`` if it is a regular file of ours (a link is not followed), else None."""
    try:
        # Opened for writing: NFS turns flock into a byte-range lock, which needs a writable descriptor.
        fd = os.open(path, os.O_RDWR | getattr(os, "O_NOFOLLOW", 0))
    except OSError:  # gone, a symlink (ELOOP), unreadable
        return None
    st = os.fstat(fd)
    if not (stat.S_ISREG(st.st_mode) and st.st_uid == os.getuid()):
        os.close(fd)
        return None
    return fd


def remove_stale_part_files(dst: Path) -> list[Path]:
    """Delete the part files of ``dst`` that no live run holds (what killed runs left), each while
    holding its lock, so a file cannot come to life between the check and the unlink; returns them."""
    if fcntl is None:
        return []
    removed = []
    for path in _candidates(dst):
        fd = _open_if_ours(path)
        if fd is None:
            continue
        try:
            if _lock(fd, wait=False) is True and _same_file(fd, path):
                path.unlink()
                removed.append(path)
        except FileNotFoundError:
            pass  # another cleanup got there first
        finally:
            os.close(fd)
    return removed
