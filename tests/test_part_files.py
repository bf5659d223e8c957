"""Part files: a run killed with SIGKILL leaves its hidden ``.NAME.XXXXXXXX.part.EXT``; the next run
for that output removes it and says so, but never a part file a live run is writing (it holds a lock
on it) and never anything else."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import pytest
from conftest import make_clip

from vdeblur.engine.part_files import PartFile, remove_stale_part_files

_HOLD = ("import sys, pathlib; from vdeblur.engine.part_files import PartFile; "
         "p = PartFile(pathlib.Path(sys.argv[1])); print(p.path, flush=True); sys.stdin.read()")


def _parts(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".part." in p.name)


def _long_clip(path: Path, frames: int) -> None:
    """A plain constant-rate clip (conftest.make_clip's millisecond VFR timing is for short clips)."""
    import numpy as np

    rng = np.random.default_rng(0)
    with av.open(str(path), "w") as c:
        v = c.add_stream("libx264", rate=24, options={"preset": "ultrafast"})
        v.width, v.height, v.pix_fmt = 96, 64, "yuv420p"
        for _ in range(frames):
            rgb = rng.integers(0, 255, (64, 96, 3), dtype=np.uint8)
            c.mux(v.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        c.mux(v.encode(None))


def _frames(path: Path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


@pytest.mark.slow
def test_sigkilled_run_leaves_a_part_file_the_next_run_removes(tmp_path) -> None:
    _long_clip(tmp_path / "in.mp4", 400)
    out = tmp_path / "out.mp4"
    cmd = [sys.executable, "-m", "vdeblur.engine.cli", str(tmp_path / "in.mp4"), str(out), "--threads", "1",
           "--model", "vdeblur_fast"]
    victim = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not _parts(tmp_path) and victim.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)
    [left] = _parts(tmp_path)  # the run was killed mid-file: its part file stays, there is no output
    assert victim.returncode == -signal.SIGKILL and not out.exists()
    assert left.startswith(".out.") and left.endswith(".part.mp4")

    _long_clip(tmp_path / "short.mp4", 3)
    done = subprocess.run([*cmd[:3], str(tmp_path / "short.mp4"), *cmd[4:]], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    removed = [line for line in done.stderr.splitlines() if "removed" in line]
    assert removed == [f"vdeblur: removed {left}, left in {tmp_path} by an earlier run that was killed"]
    assert _parts(tmp_path) == [] and _frames(out) == 3


def test_a_live_runs_part_file_is_never_removed(tmp_path, fast_checkpoint) -> None:
    """Another process holds its part file (as a running vdeblur does): a run for the same output
    finishes beside it without touching it; once that process is gone, the file is removed."""
    from vdeblur.engine.backends import load_backend
    from vdeblur.engine.pipeline import EncodeOptions, deblur_video

    out = tmp_path / "out.mp4"
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, str(out)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    live = Path(holder.stdout.readline().strip())
    os.utime(live, (0, 0))  # old as well: age does not make a held file removable
    try:
        assert remove_stale_part_files(out) == []
        make_clip(tmp_path / "in.mp4", width=32, height=32, frames=2, audio=False)
        lines: list[str] = []
        deblur_video(tmp_path / "in.mp4", out, load_backend(str(fast_checkpoint), device="cpu"),
                     encode=EncodeOptions(preset="ultrafast"), log=lines.append)
        assert live.is_file() and out.is_file() and not [line for line in lines if "removed" in line]
    finally:
        holder.communicate("", timeout=30)  # the holder exits; the kernel drops its lock
    assert remove_stale_part_files(out) == [live] and not live.exists()


def test_only_our_own_part_files_are_candidates(tmp_path) -> None:
    out = tmp_path / "clip.mp4"
    keep = [".clip.abc1234.part.mp4",    # 7 random characters: not mkstemp's
            ".clip.abc12345.part.mkv",   # another output's extension
            ".clip.b.abc12345.part.mp4", # the part file of clip.b.mp4
            "clip.abc12345.part.mp4",    # not hidden
            ".clip.ABC12345.part.mp4"]   # mkstemp never writes capitals
    for name in keep:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / ".clip.folder00.part.mp4").mkdir()
    target = tmp_path / "precious.mp4"
    target.write_bytes(b"the user's file")
    (tmp_path / ".clip.symlink0.part.mp4").symlink_to(target)
    others = tmp_path / ".clip.others00.part.mp4"
    others.write_bytes(b"another user's run")
    if os.getuid() == 0:
        os.chown(others, 12345, 12345)
    dead = tmp_path / ".clip.k1ll3d_0.part.mp4"
    dead.write_bytes(b"left by a killed run")
    assert remove_stale_part_files(out) == [dead] + ([others] if os.getuid() != 0 else [])
    assert target.read_bytes() == b"the user's file" and (tmp_path / ".clip.symlink0.part.mp4").is_symlink()
    assert all((tmp_path / name).exists() for name in keep) and (tmp_path / ".clip.folder00.part.mp4").is_dir()


def test_part_file_is_locked_while_held(tmp_path) -> None:
    out = tmp_path / "v.mkv"
    part = PartFile(out)
    assert part.path.name.startswith(".v.") and part.path.name.endswith(".part.mkv")
    assert remove_stale_part_files(out) == []  # even from this process: flock is per open file
    part.release()
    assert remove_stale_part_files(out) == [part.path]


def test_without_locks_nothing_is_removed(tmp_path, monkeypatch) -> None:
    """A file system that refuses flock (ENOLCK): runs still write, and no cleanup removes anything."""
    import errno

    from vdeblur.engine import part_files

    def no_locks(fd: int, op: int) -> None:
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(part_files.fcntl, "flock", no_locks)
    dead = tmp_path / ".v.k1ll3d00.part.mp4"
    dead.write_bytes(b"x")
    part = PartFile(tmp_path / "v.mp4")
    assert part.path.is_file() and remove_stale_part_files(tmp_path / "v.mp4") == [] and dead.exists()
    part.release()
