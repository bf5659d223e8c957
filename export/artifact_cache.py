"""The cache folder of built artefacts (ONNX graphs, TensorRT engines) and how an entry is written.

An entry is an artefact file plus a JSON record beside it. Each is written under a unique temporary
name and renamed into place, so a reader never sees half a file; the record is written last and
holds the artefact's sha256, so an artefact without its matching record (a crash between the two
renames, a truncated copy, a flipped bit) is rebuilt, never trusted. While one process builds an
entry it holds an advisory lock (``fcntl.flock`` on ``.NAME.lock``): a second process asking for the
same entry waits and then finds it built instead of building it again. The kernel drops the lock
when its holder dies, even by SIGKILL. Where ``fcntl`` is missing (Windows) there is no lock: two
builds can run at once, and the renames alone keep the entry whole.

A cache folder that cannot be written (read-only, full, not a folder) is replaced, for this process,
by a temporary folder removed at exit, with one line saying so.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

RECORD_FORMAT = "vdeblur-cache/1"
T = TypeVar("T")
Log = Callable[[str], None]


def to_stderr(line: str) -> None:
    print(line, file=sys.stderr)


def cache_root(environ: Mapping[str, str] | None = None) -> Path:
    """``$VDEBLUR_CACHE``, else ``$XDG_CACHE_HOME/vdeblur``, else ``~/.cache/vdeblur``."""
    env = os.environ if environ is None else environ
    if env.get("VDEBLUR_CACHE"):
        return Path(env["VDEBLUR_CACHE"]).expanduser()
    if env.get("XDG_CACHE_HOME"):
        return Path(env["XDG_CACHE_HOME"]).expanduser() / "vdeblur"
    return Path.home() / ".cache" / "vdeblur"


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """``write(tmp)`` at a unique hidden name beside ``path``, then rename it to ``path``. Two writers
    never share a temporary file, and a failed or interrupted write leaves no file behind (a SIGKILL
    leaves only a ``.NAME.*.tmp`` that nothing ever reads)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    plain_permissions(tmp)  # a shared $VDEBLUR_CACHE stays readable by the group, as the umask says
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def plain_permissions(path: Path) -> None:
    """mkstemp makes 0600 files; give ``path`` the mode any new file would get (umask)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


@contextlib.contextmanager
def build_lock(path: str | Path) -> Iterator[None]:
    """Hold the build lock of the entry at ``path`` (blocks while another process builds it)."""
    path = Path(path)
    if fcntl is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(f".{path.name}.lock"), "a") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def record_path(artefact: str | Path) -> Path:
    artefact = Path(artefact)
    return artefact.with_name(artefact.name + ".json")


def write_record(artefact: str | Path, key: Mapping[str, Any]) -> None:
    """The record of a finished artefact: the key it was built for and the sha256 of its bytes."""
    record = {"format": RECORD_FORMAT, "key": dict(key), "sha256": file_sha256(artefact)}
    atomic_write(record_path(artefact), lambda tmp: tmp.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n"))


def check_entry(artefact: str | Path, key: Mapping[str, Any]) -> str:
    """Why the entry at ``artefact`` cannot be used for ``key`` ("" if it can): missing, no or damaged
    record, built for another key (stale: each differing field named), or bytes that do not match
    the record (corrupt)."""
    artefact = Path(artefact)
    if not artefact.is_file():
        return "missing"
    try:
        record = json.loads(record_path(artefact).read_text())
        if record.get("format") != RECORD_FORMAT:
            return f"its record has format {record.get('format')!r}, not {RECORD_FORMAT!r}"
        built, digest = record["key"], record["sha256"]
    except FileNotFoundError:
        return "it has no record"
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        return f"its record is damaged ({type(e).__name__})"
    if not isinstance(built, dict):
        return "its record is damaged (key is not an object)"
    stale = [f"{k} {built.get(k)!r} (now {v!r})" for k, v in key.items() if built.get(k) != v]
    if stale:
        return "stale: built for " + "; ".join(stale)
    if file_sha256(artefact) != digest:
        return "corrupt: its bytes do not match the sha256 in its record"
    return ""


def with_fallback(root: Path, attempt: Callable[[Path], T], log: Log) -> T:
    """``attempt(root)``; if the cache folder cannot be written (any OSError), say so in one line and
    ``attempt`` again in a temporary folder that is removed when the process exits."""
    try:
        return attempt(root)
    except OSError as e:
        tmp = Path(tempfile.mkdtemp(prefix="vdeblur-cache-"))
        atexit.register(shutil.rmtree, tmp, ignore_errors=True)
        log(f"cache folder {root} cannot be written ({e.strerror or e}); using {tmp} for this run")
        return attempt(tmp)
