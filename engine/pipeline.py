"""decode -> deblur -> encode, overlapped: ``deblur_video(src, dst, backend)``.

Three stages joined by bounded queues (memory stays flat however long the video): a decode thread
(PyAV demux + decode), inference on the calling thread (so Ctrl-C lands where it can clean up),
and an encode thread (encode + mux, other streams remuxed in demux order). PyAV and torch release
the GIL in their heavy calls, so the stages really overlap. An error in any stage stops all three
and is re-raised here; the output is written to a temporary file beside the target and renamed
only after the encoder is flushed, so a failed or interrupted run leaves nothing behind.

Before the stages start, a first pass (``scan.scan_source``) reads the whole input without
converting it: frames that do not decode stop the run there, and the timestamps the frames are
written with are chosen for the whole file (``timestamps.choose_timing``).
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import av
import numpy as np
import torch

from vdeblur.console import reach
from vdeblur.export.artifact_cache import to_stderr
from vdeblur.train.frames import to_uint8
from vdeblur.train.motion import NO_MOTION, estimate_motion

from .adapt import AdaptConfig, AdaptResult
from .adapt.adapter import adapt_backend, check_adaptable
from .adapt.adapter import save_adapted as save_adapted_weights
from .backends.base import Backend
from .checks import check_checkpoint_output, check_paths
from .nvcodec import CudaFrame, NvencWriter, VideoIOChoice, nvdec_demux, pick_video_io
from .options import EncodeOptions
from .packet_timing import PacketTiming
from .part_files import PartFile, remove_stale_part_files
from .stream import DeblurStream
from .tiling import TileSpec
from .scan import scan_source
from .timestamps import Timing
from .video_io import DecodedFrame, VideoError, VideoWriter, demux, open_input, peek_rotation

_QUEUE_FRAMES = 8  # enough to ride out a slow I-frame decode or encoder lookahead burst; ~25 MB at 1080p
_END = object()


@dataclass
class RunStats:
    frames: int = 0
    wall_s: float = 0.0
    stage_s: dict[str, float] = field(default_factory=lambda: {"decode": 0.0, "infer": 0.0, "encode": 0.0})
    state_starts: int = 0
    adapt: AdaptResult | None = None  # what --adapt did, when it ran
    copy_losses: str = ""  # copied packets (audio, subtitles) the output could not hold, and why

    def summary(self) -> str:
        fps = {k: (self.frames / v if v > 0 else float("inf")) for k, v in self.stage_s.items()}
        per_stage = ", ".join(f"{k} {v:.1f}" for k, v in fps.items())
        losses = f"; {self.copy_losses}" if self.copy_losses else ""
        return (f"{self.frames} frames in {self.wall_s:.1f} s ({self.frames / max(self.wall_s, 1e-9):.1f} fps end to end; "
                f"per stage fps: {per_stage}){losses}")


class _Stop(Exception):
    """Raised inside a stage when another stage failed: unwind quietly, the caller re-raises theirs."""


class _Channel:
    """A bounded queue whose put/get give up as soon as any stage has failed (no deadlock)."""

    def __init__(self, failed: threading.Event, size: int = _QUEUE_FRAMES) -> None:
        self.q: queue.Queue[Any] = queue.Queue(maxsize=size)
        self.failed = failed

    def put(self, item: Any) -> None:
        while not self.failed.is_set():
            try:
                return self.q.put(item, timeout=0.1)
            except queue.Full:
                continue
        raise _Stop

    def get(self) -> Any:
        while not self.failed.is_set():
            try:
                return self.q.get(timeout=0.1)
            except queue.Empty:
                continue
        raise _Stop


def stage(body: Callable[[], None], errors: list[BaseException], failed: threading.Event) -> Callable[[], None]:
    """``body`` as a stage: its error is recorded and stops the other stages."""
    def run() -> None:
        try:
            body()
        except _Stop:
            pass  # another stage failed first; its error is the one reported
        except BaseException as e:
            errors.append(e)
            failed.set()
    return run


def deblur_video(src: str | Path, dst: str | Path, backend: Backend, *, overwrite: bool = False,
                 encode: EncodeOptions = EncodeOptions(), reset_on_cut: bool = False, reset_every: int = 0,
                 tile: TileSpec | None = None, video_io: str = "pyav", adapt: AdaptConfig | None = None,
                 save_adapted: str | Path | None = None, progress: Callable[[int, int], None] | None = None,
                 adapt_progress: Callable[[float, float], None] | None = None,
                 log: Callable[[str], None] | None = None) -> RunStats:
    """``video_io``: "pyav" (CPU codecs), "nvcodec" (NVDEC/NVENC, an error where they cannot run) or
    "auto" (NVDEC/NVENC where they can run, else PyAV, the reason given to ``log``, default stderr);
    see ``nvcodec``. ``adapt``: first fine-tune a copy of the (torch) backend's model on the clip's own
    sharpest frames (``vdeblur.engine.adapt``), kept only where it beats the base weights on pairs it
    did not train on; ``save_adapted`` writes the weights used as a checkpoint once the video is written."""
    src, dst = Path(src), Path(dst)
    check_paths(src, dst, overwrite)
    if adapt is not None:
        check_adaptable(backend)
    if save_adapted is not None:
        if adapt is None:
            raise ValueError("--save-adapted writes the weights --adapt made; add --adapt")
        check_checkpoint_output(Path(save_adapted), overwrite)
    choice = pick_video_io(src, video_io, codec=encode.codec, device=str(backend.device), say=log)  # before any output
    say = to_stderr if log is None else log
    for stale in remove_stale_part_files(dst):  # what a run killed by SIGKILL or a power cut left
        say(f"vdeblur: removed {stale.name}, left in {stale.parent} by an earlier run that was killed")
    stats, started = RunStats(), time.perf_counter()
    scan = scan_source(src)  # before any output exists: a refused input leaves nothing behind
    if scan.problem():
        raise VideoError(f"input {src}: {scan.problem()}")
    if scan.timing.regenerated:
        say(f"vdeblur: {src}: {scan.timing.reason}; all timestamps regenerated from the frame rate")
    for timing in scan.packet_timing.values():
        if timing.reason:
            say(f"vdeblur: {timing.line(str(src))}")
    if adapt is not None:
        backend, stats.adapt = adapt_backend(backend, src, scan.frames, adapt, adapt_progress)
        say(f"vdeblur: {src.name}: {stats.adapt.summary()}")
    container = open_input(src)
    part = PartFile(dst)  # locked while this run writes it: another run's cleanup leaves it alone
    tmp = part.path
    try:
        gpu = backend.device.index or 0
        items = nvdec_demux(container, src, gpu) if choice.decode == "nvdec" else demux(container, src)
        with _open_writer(choice, tmp, src, dst, container, encode, gpu, scan.packet_timing) as writer:
            stream = DeblurStream(backend, reset_on_cut=reset_on_cut, reset_every=reset_every, tile=tile)
            _run_stages(_retimed(items, scan.timing), stream, writer, stats, scan.frames, progress)
            stats.state_starts = stream.state_starts
        if isinstance(writer, VideoWriter):  # NVENC runs mux the other streams in their own pass
            stats.copy_losses = writer.copy_losses()
        os.replace(tmp, dst)
        if save_adapted is not None and stats.adapt is not None:
            save_adapted_weights(stats.adapt, save_adapted, src)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        part.release()
        container.close()
    stats.wall_s = time.perf_counter() - started
    return stats


def _retimed(items: Iterator[DecodedFrame | CudaFrame | av.Packet],
             timing: Timing) -> Iterator[DecodedFrame | CudaFrame | av.Packet]:
    """The frames with the timestamps they are written with (the same ones the state reset on a
    backwards jump sees); packets pass unchanged."""
    for item in items:
        if timing.regenerated and not isinstance(item, av.Packet):
            item = replace(item, pts=timing.pts(item.index, item.pts), time_base=timing.time_base)
        yield item


def _open_writer(choice: VideoIOChoice, tmp: Path, src: Path, dst: Path, container: av.container.InputContainer,
                 encode: EncodeOptions, gpu: int, packet_timing: dict[int, PacketTiming]) -> VideoWriter | NvencWriter:
    if choice.encode == "nvenc":
        return NvencWriter(tmp, src, codec=encode.codec, crf=encode.crf, preset=encode.preset, format_from=dst,
                           rotation=peek_rotation(src), gpu=gpu)
    return VideoWriter(tmp, container, codec=encode.codec, crf=encode.crf, preset=encode.preset,
                       pix_fmt=encode.pix_fmt, format_from=dst, rotation=peek_rotation(src), packet_timing=packet_timing)


def _run_stages(items: Iterator[DecodedFrame | CudaFrame | av.Packet], stream: DeblurStream,
                writer: VideoWriter | NvencWriter,
                stats: RunStats, total: int, progress: Callable[[int, int], None] | None) -> None:
    failed = threading.Event()
    errors: list[BaseException] = []
    to_infer, to_encode = _Channel(failed), _Channel(failed)

    def guarded(body: Callable[[], None]) -> Callable[[], None]:
        return stage(body, errors, failed)

    takes_motion = stream.backend.input_kind == "rgb+motion"

    def decode() -> None:
        t, previous = time.perf_counter(), None
        for item in items:
            if takes_motion and isinstance(item, DecodedFrame):
                # Here, not in the model's step: the frames are on the host already, and this thread
                # runs beside inference instead of before it.
                item, previous = with_motion(item, previous), item.rgb
            stats.stage_s["decode"] += time.perf_counter() - t
            to_infer.put(item)
            t = time.perf_counter()
        to_infer.put(_END)

    def encode() -> None:
        while (item := to_encode.get()) is not _END:
            t = time.perf_counter()
            if isinstance(item, av.Packet):
                writer.copy_packet(item)
            else:
                frame, rgb = item
                if isinstance(rgb, torch.Tensor) and isinstance(writer, VideoWriter):
                    rgb = to_uint8(rgb)  # NVDEC frames come out on the GPU; this copy overlaps the next inference
                writer.write_frame(rgb, frame.pts, frame.time_base)
            stats.stage_s["encode"] += time.perf_counter() - t

    workers = [threading.Thread(target=guarded(decode), name="vdeblur-decode", daemon=True),
               threading.Thread(target=guarded(encode), name="vdeblur-encode", daemon=True)]
    for w in workers:
        w.start()
    # Ctrl-C arrives on this thread: guarded() records it and stops the workers like any failure.
    guarded(lambda: _infer(to_infer, to_encode, stream, stats, total, progress))()
    for w in workers:
        w.join()
    if errors:
        raise errors[0]


def _infer(inbox: _Channel, outbox: _Channel, stream: DeblurStream, stats: RunStats, total: int,
           progress: Callable[[int, int], None] | None) -> None:
    previous_pts: int | None = None
    device = stream.backend.device
    while (item := inbox.get()) is not _END:
        if isinstance(item, av.Packet):
            outbox.put(item)
            continue
        if previous_pts is not None and item.pts is not None and item.pts <= previous_pts:
            stream.reset()  # timestamps went backwards: a splice or broken stream, not continuous motion
        previous_pts = item.pts
        if stats.frames == 0:
            reach("first-frame")
        t = time.perf_counter()
        frame = _upload(item.rgb, device) if device.type == "cuda" and isinstance(item.rgb, np.ndarray) else item.rgb
        motion = item.motion if isinstance(item, DecodedFrame) else None
        rgb = stream.push(frame, motion)  # a GPU tensor stays on the GPU: the encode thread brings it back
        stats.stage_s["infer"] += time.perf_counter() - t
        outbox.put((item, rgb))
        stats.frames += 1
        if progress is not None:
            progress(stats.frames, total)
    outbox.put(_END)


def with_motion(item: DecodedFrame, previous: np.ndarray | None) -> DecodedFrame:
    """``item`` with the global motion back to ``previous`` (the frame decoded before it; none at the
    start or after a change of size)."""
    found = NO_MOTION if previous is None or previous.shape != item.rgb.shape else estimate_motion(previous, item.rgb)
    return replace(item, motion=found)


def _upload(rgb: np.ndarray, device: torch.device) -> torch.Tensor:
    """(H, W, 3) uint8 -> (3, H, W) float on a CUDA ``device``: staged in pinned memory and copied
    asynchronously, so this thread only queues the copy. The output then stays on the GPU and the
    encode thread copies it back (``to_uint8``) while this thread runs the next frame: the copies
    overlap compute instead of waiting for it. Written for, not yet run on, a GPU."""
    host = torch.from_numpy(rgb).pin_memory()  # the caching host allocator keeps it until the copy is done
    return host.to(device, non_blocking=True).permute(2, 0, 1).float().div_(255)
