"""What a run is asked for, settled before anything heavy loads: the output encoding and the
inference thread count. Kept free of torch and the model code so that the command line can check
its options and answer in well under a second."""

from __future__ import annotations

import os
from dataclasses import dataclass


def inference_threads(load: float | None = None) -> int:
    """torch's intra-op threads when none are asked for: the usable cores that other processes do not
    keep busy (the 1-minute load average, ``load`` if given), at least one.

    torch's OpenMP threads wait at each barrier for the slowest of them; a thread that shares its
    core with another CPU-heavy process loses time slices, and the whole team waits for it. With a
    training on one of 2 cores that made two threads 7x slower than one (docs/benchmarks.md). On an
    idle machine every core goes to the model, as before: decoding and encoding take little there.
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    busy = os.getloadavg()[0] if load is None else load
    return max(1, min(cores, cores - round(busy)))


@dataclass(frozen=True)
class EncodeOptions:
    codec: str = "libx264"
    crf: int | None = 18
    preset: str | None = "medium"
    pix_fmt: str | None = None
