"""Batch mode on a Ray cluster: ``run_batch(jobs, model)`` deblurs many videos, one Ray task per file.

Each task runs the same engine as ``vdeblur IN OUT`` (``deblur_video``) on whichever node Ray picks,
so inputs, outputs and the model file must sit on storage every node sees under the same paths
(NFS, a shared volume); docs/cluster.md shows a setup. How failures are handled:

- a bad input or output (a corrupt file, an existing output, a missing model) is a *user error*:
  the task returns it as that file's result and it is never retried (it would fail the same way);
- a worker process or node that dies, a CUDA out-of-memory error or a network error is a *system
  failure*: Ray runs the task again, at most ``max_retries`` times;
- anything else is a bug: reported with its type and message, not retried.

No failure leaves a partial output: ``deblur_video`` writes a temporary file beside the output and
renames it only when the encoder is flushed, and every attempt first deletes the temporary files
that an earlier, killed attempt at the same output left behind.

Ray is imported only when a batch runs (``pip install 'vdeblur[cluster]'``).
"""

from __future__ import annotations

import functools
import json
import os
import socket
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from .adapt import AdaptConfig
from .backends import load_backend
from .backends.base import Backend
from .checks import check_distinct_outputs
from .options import EncodeOptions
from .part_files import remove_stale_part_files
from .pipeline import deblur_video

INSTALL_HINT = "pip install 'vdeblur[cluster]'"
# Raised by a task, these are retried like a dead worker: they can pass on another attempt (a GPU
# shared with another job, a storage server that hiccupped). FileNotFoundError and friends are
# OSErrors too, but user errors: they are caught inside the task before Ray sees them.
_TRANSIENT = (ConnectionError, TimeoutError, torch.cuda.OutOfMemoryError)
_USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError,
                PermissionError)


@dataclass(frozen=True)
class TaskSettings:
    """What every task needs besides its two paths (shipped to the workers with each task)."""

    model: str | None
    backend: str = "auto"
    device: str = "auto"
    fp16: bool = False
    encode: EncodeOptions = EncodeOptions()
    overwrite: bool = False
    reset_on_cut: bool = False
    reset_every: int = 0
    adapt: AdaptConfig | None = None  # --adapt: each task adapts its own copy of the model to its file
    arch: str | None = None  # --arch: the architecture to read another project's checkpoint into


@dataclass(frozen=True)
class FileResult:
    input: str
    output: str
    ok: bool
    frames: int = 0
    wall_s: float = 0.0
    error: str | None = None
    error_kind: str | None = None  # "input" (user error), "system" (retries used up), "crash" (a bug)
    node: str | None = None
    adapt: str | None = None  # what --adapt did to this file's model, when it ran


@dataclass(frozen=True)
class BatchReport:
    files: tuple[FileResult, ...]
    wall_s: float
    address: str
    ray_version: str
    settings: TaskSettings

    @property
    def failed(self) -> list[FileResult]:
        return [f for f in self.files if not f.ok]

    def summary(self) -> str:
        done = [f for f in self.files if f.ok]
        lines = [f"{len(self.files)} files in {self.wall_s:.1f} s: {len(done)} done "
                 f"({sum(f.frames for f in done)} frames), {len(self.failed)} failed"]
        lines += [f"  failed ({f.error_kind}): {f.input}: {f.error}" for f in self.failed]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"summary": {"files": len(self.files), "ok": len(self.files) - len(self.failed),
                            "failed": len(self.failed), "frames": sum(f.frames for f in self.files),
                            "wall_s": round(self.wall_s, 3)},
                "ray": {"version": self.ray_version, "address": self.address},
                "settings": asdict(self.settings),
                "files": [asdict(f) for f in self.files]}

    def write_json(self, path: str | Path) -> Path:
        """Write the report atomically (a reader never sees half a report)."""
        path = Path(path)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(self.to_dict(), f, indent=2)
                f.write("\n")
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path


def run_batch(jobs: Sequence[tuple[str | Path, str | Path]], model: str | None = None, *,
              address: str | None = None, num_gpus: float = 0, num_cpus: float = 1, backend: str = "auto",
              device: str = "auto", fp16: bool = False, encode: EncodeOptions = EncodeOptions(),
              overwrite: bool = False, reset_on_cut: bool = False, reset_every: int = 0,
              adapt: AdaptConfig | None = None, max_retries: int = 2, report: str | Path | None = None,
              on_result: Callable[[FileResult], None] | None = None, arch: str | None = None) -> BatchReport:
    """Deblur every ``(input, output)`` pair as its own Ray task; never raises for a single file.

    ``address``: ``None`` starts a local Ray instance (or joins the one ``RAY_ADDRESS`` names),
    ``"auto"`` joins the cluster started on this machine with ``ray start``, ``"ray://host:10001"``
    connects as a Ray client. ``num_gpus``/``num_cpus`` are what each task reserves (fractions
    share a GPU). ``on_result`` is called with each file's result as soon as it is known.
    """
    if num_gpus == 0 and device == "auto":
        # Ray leaves CUDA_VISIBLE_DEVICES alone for a task that reserves no GPU: "auto" would take
        # a GPU that Ray may have given to another task.
        device = "cpu"
    settings = TaskSettings(model, backend, device, fp16, encode, overwrite, reset_on_cut, reset_every, adapt, arch)
    pairs = _check_jobs(jobs, settings, num_gpus, num_cpus, max_retries, report)
    ray = import_ray()
    owned = not ray.is_initialized()
    if owned:
        # A local instance gets no dashboard (it needs extra packages and a port); a cluster keeps its own.
        ray.init(address=address, **({"include_dashboard": False} if address is None else {}))
    started = time.perf_counter()
    try:
        _check_resources(ray, num_gpus, num_cpus)
        task = ray.remote(deblur_file).options(**task_options(num_gpus, num_cpus, max_retries))
        pending = {task.remote(src, dst, settings): (src, dst) for src, dst in pairs}
        results: dict[tuple[str, str], FileResult] = {}
        try:
            while pending:
                [ref], _ = ray.wait(list(pending), num_returns=1)
                src, dst = pending.pop(ref)
                results[(src, dst)] = result = _collect(ray, ref, src, dst)
                if on_result is not None:
                    on_result(result)
        except BaseException:
            # Ctrl-C or a failing on_result: a cancelled task gets KeyboardInterrupt, and
            # deblur_video deletes its temporary file on the way out.
            for ref in pending:
                ray.cancel(ref)
            raise
        # A Ray client session has no GCS address of its own to report: keep the ray:// one.
        used_address = address if str(address).startswith("ray://") else ray.get_runtime_context().gcs_address
    finally:
        if owned:
            ray.shutdown()
    batch = BatchReport(tuple(results[p] for p in pairs), time.perf_counter() - started, used_address,
                        ray.__version__, settings)
    if report is not None:
        batch.write_json(report)
    return batch


def task_options(num_gpus: float, num_cpus: float, max_retries: int) -> dict[str, Any]:
    """Ray options of a file's task: its resources, and the retry policy described above (a dead
    worker is always retried up to ``max_retries``; of the exceptions, only the transient ones)."""
    return {"num_gpus": num_gpus, "num_cpus": num_cpus, "max_retries": max_retries,
            "retry_exceptions": list(_TRANSIENT)}


def deblur_file(src: str, dst: str, settings: TaskSettings) -> FileResult:
    """One task: deblur ``src`` into ``dst`` on this worker. User errors come back as the result;
    anything else is raised for Ray to retry (system failures) or report (bugs)."""
    started = time.perf_counter()
    node = socket.gethostname()
    try:
        engine = _backend(settings.model, settings.backend, settings.device, settings.fp16, settings.arch)
        stats = deblur_video(src, dst, engine, overwrite=settings.overwrite, encode=settings.encode,
                             reset_on_cut=settings.reset_on_cut, reset_every=settings.reset_every,
                             adapt=settings.adapt, log=lambda line: None)
    except _USER_ERRORS as e:
        return FileResult(src, dst, False, wall_s=round(time.perf_counter() - started, 3), error=str(e),
                          error_kind="input", node=node)
    return FileResult(src, dst, True, stats.frames, round(time.perf_counter() - started, 3), node=node,
                      adapt=stats.adapt.summary() if stats.adapt is not None else None)


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ImportError(f"batch mode on a Ray cluster needs Ray: {INSTALL_HINT}") from None
    return ray


@functools.lru_cache(maxsize=2)
def _backend(model: str | None, backend: str, device: str, fp16: bool, arch: str | None = None) -> Backend:
    """Ray reuses worker processes: a worker loads the model once, not once per file."""
    return load_backend(model, backend, device, fp16, arch=arch)


def _check_jobs(jobs: Sequence[tuple[str | Path, str | Path]], settings: TaskSettings, num_gpus: float,
                num_cpus: float, max_retries: int, report: str | Path | None) -> list[tuple[str, str]]:
    """Refuse a batch that cannot work, before any task starts."""
    if report is not None and not os.access(Path(report).parent, os.W_OK):
        raise ValueError(f"report {report}: folder {Path(report).parent} does not exist or is not writable")
    if num_gpus < 0 or num_cpus < 0 or max_retries < 0:
        raise ValueError(f"num_gpus, num_cpus and max_retries must be >= 0; got {num_gpus}, {num_cpus}, {max_retries}")
    if settings.device.startswith("cuda") and num_gpus == 0:
        raise ValueError(f"device {settings.device!r} needs num_gpus > 0: a task that reserves no GPU "
                         f"would use one that Ray may have given to another task")
    pairs = [(str(src), str(dst)) for src, dst in jobs]
    check_distinct_outputs(pairs)
    return pairs


def _check_resources(ray: Any, num_gpus: float, num_cpus: float) -> None:
    # Ray would queue a task no node can take forever (with only a warning in the log).
    have = ray.cluster_resources()
    for name, want in (("GPU", num_gpus), ("CPU", num_cpus)):
        if want > have.get(name, 0):
            raise ValueError(f"each task asks for {want} {name} but the cluster has {have.get(name, 0):g} "
                             f"(resources: {', '.join(f'{k}={v:g}' for k, v in sorted(have.items()) if '/' not in k and ':' not in k)})")


def _collect(ray: Any, ref: Any, src: str, dst: str) -> FileResult:
    """The task's result, or a failed result saying why the task itself failed."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as e:  # raised by our code: a bug or transient errors retried out
        cause = e.cause if getattr(e, "cause", None) is not None else e
        kind = "system" if isinstance(cause, _TRANSIENT) else "crash"
        error = f"{type(cause).__name__}: {cause}".splitlines()[0]
    except ray.exceptions.RayError as e:  # the worker or node died, or the object was lost, retries used up
        kind, error = "system", f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    remove_stale_part_files(Path(dst))  # best effort: the driver may not see the workers' storage
    return FileResult(src, dst, False, error=error, error_kind=kind)
