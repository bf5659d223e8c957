"""Several videos through one model at once: ``deblur_many(jobs, backend)``.

Every file goes through the single-file pipeline, ``pipeline.deblur_video`` (decode thread, a thread
holding the file's ``DeblurStream``, encode thread, temporary file renamed once the encoder is
flushed), so timestamps, audio, rotation, state resets and clean-up are exactly those of
``vdeblur IN OUT``. Only the backend the streams see differs: a ``_SharedBackend`` whose ``run``
parks the step and waits, while the calling thread gathers the parked steps of all streams and runs
those of one padded size as a single batched call, the streams' states concatenated along the batch
dimension for the call and split back after it. Each stream keeps its own state, resets and
padding, because ``DeblurStream.push`` still decides them; the model just runs fewer, larger steps.

At most ``max_streams`` files are open at a time (each with its bounded queues); when one ends, the
next job takes its slot. A file that fails (unreadable input, existing output, a decode error)
fails alone: ``deblur_video`` removes its temporary file and its error becomes that job's result.
A failing model call fails the streams in that call. Ctrl-C lands on the calling thread, which
stops every stream (each removes its temporary file) and re-raises.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .backends.base import Backend, BackendState
from .checks import check_distinct_outputs
from .options import EncodeOptions
from .pipeline import RunStats, deblur_video
from .tiling import TileSpec

# Before any model call has been timed, a parked step waits this long for the other streams' steps:
# enough for the other files to open and decode their first frame.
_FIRST_PATIENCE_S = 0.05

StepOutput = tuple[torch.Tensor, BackendState]  # what Backend.run returns: (out (B, 3, H, W), new state)


@dataclass(frozen=True)
class StreamResult:
    src: Path
    dst: Path
    stats: RunStats | None  # None when the file failed
    error: Exception | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def deblur_many(jobs: Sequence[tuple[str | Path, str | Path]], backend: Backend, *, max_streams: int = 4,
                max_batch: int = 8, overwrite: bool = False, encode: EncodeOptions = EncodeOptions(),
                reset_on_cut: bool = False, reset_every: int = 0, tile: TileSpec | None = None,
                video_io: str = "pyav", progress: Callable[[int, int, int], None] | None = None,
                log: Callable[[str], None] | None = None) -> list[StreamResult]:
    """Deblur every ``(input, output)`` pair, ``max_streams`` files at a time sharing ``backend``;
    one result per job, in job order. Never raises for a single file (only for a bad call or Ctrl-C).

    ``max_batch`` caps the frames of one model call (device memory). ``progress(job, frames, total)``
    is called from the job's own thread after each of its frames.
    """
    pairs = check_jobs(jobs, max_streams, max_batch)
    if backend.name == "tensorrt":
        # TensorRTBackend keeps the state in its own ping-pong buffers, valid for one stream only.
        raise ValueError("the tensorrt backend carries one stream's state at a time; use deblur_video per "
                         "file, or a torch or onnxruntime backend for several streams")
    shared = _SharedBackend(backend, max_batch, len(pairs))

    def run_job(job: int, src: Path, dst: Path) -> StreamResult:
        shared.join()
        try:
            stats = deblur_video(src, dst, shared, overwrite=overwrite, encode=encode, reset_on_cut=reset_on_cut,
                                 reset_every=reset_every, tile=tile, video_io=video_io, log=log,
                                 progress=None if progress is None else functools.partial(progress, job))
            return StreamResult(src, dst, stats)
        except Exception as e:  # this file's failure, reported in its result; the others go on
            return StreamResult(src, dst, None, e)
        finally:
            shared.leave()

    with ThreadPoolExecutor(max_streams, thread_name_prefix="vdeblur-stream") as pool:
        futures = [pool.submit(run_job, i, src, dst) for i, (src, dst) in enumerate(pairs)]
        try:
            shared.serve()
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)  # jobs not started yet never start
            shared.abort()  # running ones fail at their next step and delete their temporary files
            raise
    return [f.result() for f in futures]


def check_jobs(jobs: Sequence[tuple[str | Path, str | Path]], max_streams: int,
               max_batch: int) -> list[tuple[Path, Path]]:
    """Refuse what would make files overwrite each other, before any work starts (per-file problems
    such as an existing output are found by each job and reported in its result)."""
    if max_streams < 1 or max_batch < 1:
        raise ValueError(f"max_streams and max_batch must be >= 1; got {max_streams} and {max_batch}")
    pairs = [(Path(src), Path(dst)) for src, dst in jobs]
    check_distinct_outputs(pairs)
    return pairs


class _Cancelled(Exception):
    """Raised in a stream's thread when the run as a whole was stopped (Ctrl-C on the calling thread)."""


class _Parked:
    """One stream's model step, waiting for the serving thread to run it."""

    def __init__(self, frame: torch.Tensor, state: BackendState) -> None:
        self.frame, self.state, self.since = frame, state, time.perf_counter()
        self._result: StepOutput | BaseException | None = None
        self._done = threading.Event()

    def finish(self, result: StepOutput | BaseException) -> None:
        if not self._done.is_set():  # only the serving thread finishes steps; an abort may come after a result
            self._result = result
            self._done.set()

    def wait(self) -> StepOutput:
        self._done.wait()
        if isinstance(self._result, BaseException):
            raise self._result
        assert self._result is not None
        return self._result


class _SharedBackend:
    """A ``Backend`` for many streams' threads: ``run`` parks the step until ``serve``, on the
    calling thread, has run it, batched with the other streams' steps of the same padded size."""

    def __init__(self, backend: Backend, max_batch: int, jobs: int) -> None:
        self.backend = backend
        self.name, self.device, self.pad_multiple = backend.name, backend.device, backend.pad_multiple
        self.input_kind, self.is_recurrent = backend.input_kind, backend.is_recurrent
        self.max_batch = max_batch
        self._cond = threading.Condition()
        self._parked: list[_Parked] = []
        self._in_flight: list[_Parked] = []  # gathered by serve, not all finished yet
        self._running, self._remaining = 0, jobs
        self._patience = _FIRST_PATIENCE_S
        self._cancelled = False

    def initial_state(self, height: int, width: int, batch: int = 1) -> BackendState:
        return self.backend.initial_state(height, width, batch)

    def run(self, frame: torch.Tensor, state: BackendState) -> StepOutput:
        parked = _Parked(frame, state)
        with self._cond:
            if self._cancelled:
                raise _Cancelled("stopped: the multi-stream run was interrupted")
            self._parked.append(parked)
            self._cond.notify()
        return parked.wait()

    def join(self) -> None:
        with self._cond:
            self._running += 1

    def leave(self) -> None:
        with self._cond:
            self._running -= 1
            self._remaining -= 1
            self._cond.notify()

    def serve(self) -> None:
        """Run parked steps until every job has left."""
        while (parked := self._gather()) is not None:
            self._in_flight = parked
            started = time.perf_counter()
            for chunk in _chunks(parked, self.max_batch):
                try:
                    results: Sequence[StepOutput | BaseException] = _run_chunk(self.backend, chunk)
                except Exception as e:  # fails the streams of this call only
                    results = [e] * len(chunk)
                for step, result in zip(chunk, results):
                    step.finish(result)
            self._in_flight = []
            self._patience = time.perf_counter() - started

    def abort(self) -> None:
        """Fail every waiting step and every later one (on the serving thread, when serve raised)."""
        with self._cond:
            self._cancelled = True
            stranded, self._parked = self._parked + self._in_flight, []
        for step in stranded:
            step.finish(_Cancelled("stopped: the multi-stream run was interrupted"))

    def _gather(self) -> list[_Parked] | None:
        """The next steps to run: once every running stream has parked one (or ``max_batch`` are
        parked), or once the first has waited as long as the last round of model calls took. A stream
        that late is waiting on its decoder or encoder (or flushing at its end); waiting longer for it
        would cost the others more than batching it saves."""
        with self._cond:
            while True:
                if not self._parked:
                    if self._remaining == 0:
                        return None
                    self._cond.wait()
                    continue
                waited = time.perf_counter() - self._parked[0].since
                if len(self._parked) >= min(self._running, self.max_batch) or waited >= self._patience:
                    parked, self._parked = self._parked, []
                    return parked
                self._cond.wait(self._patience - waited)


def _chunks(parked: list[_Parked], max_batch: int) -> Iterator[list[_Parked]]:
    """Steps of one frame shape together, ``max_batch`` at most; steps whose state cannot be joined
    (anything but a tuple of (1, ...) tensors or arrays) one at a time."""
    groups: dict[tuple[int, ...], list[_Parked]] = {}
    for step in parked:
        groups.setdefault(tuple(step.frame.shape), []).append(step)
    for group in groups.values():
        size = max_batch if all(_joinable(step.state) for step in group) else 1
        for i in range(0, len(group), size):
            yield group[i:i + size]


def _joinable(state: BackendState) -> bool:
    return isinstance(state, tuple) and all(isinstance(t, torch.Tensor | np.ndarray) and t.shape[0] == 1 for t in state)


def _run_chunk(backend: Backend, chunk: list[_Parked]) -> list[StepOutput]:
    if len(chunk) == 1:
        return [backend.run(chunk[0].frame, chunk[0].state)]
    frames = torch.cat([step.frame for step in chunk])  # (B, C, H, W)
    state = tuple(_concat([step.state[k] for step in chunk]) for k in range(len(chunk[0].state)))
    out, new_state = backend.run(frames, state)
    return [(out[i:i + 1], tuple(t[i:i + 1] for t in new_state)) for i in range(len(chunk))]


def _concat(parts: list[torch.Tensor | np.ndarray]) -> torch.Tensor | np.ndarray:
    return torch.cat(parts) if isinstance(parts[0], torch.Tensor) else np.concatenate(parts)
