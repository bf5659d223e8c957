"""Live deblurring over loopback UDP: throughput, drops and capture-to-encoded latency.

A sender thread plays an MPEG-TS clip (a shaken photo, looped) to 127.0.0.1 in real time, one
frame's packets every 1/FPS s, as a camera encoder would; ``run_live`` deblurs it from
``udp://127.0.0.1:PORT`` into an MPEG-TS file with the live defaults (x264 veryfast, zerolatency).
The figures are ``LiveStats``'s, the ones ``vdeblur``'s summary line prints:

    python -m vdeblur.benchmarks.live --size 640x360 --fps 25 --seconds 20 --threads 1

``encode_ts`` and ``send_in_real_time`` are the sender the live tests use too.
"""

from __future__ import annotations

import argparse
import io
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch

from vdeblur import DEFAULT_MODEL
from vdeblur.engine.backends import load_backend
from vdeblur.engine.endpoints import DEFAULT_LATENCY_MS
from vdeblur.engine.live import LiveOptions, LiveStats, run_live
from vdeblur.engine.live_buffer import percentile_ms
from vdeblur.engine.options import EncodeOptions
from vdeblur.engine.stream import DeblurStream

from .stages import make_test_video


def encode_ts(frames: Sequence[np.ndarray], fps: int, gop: int = 10, preset: str = "ultrafast") -> tuple[bytes, list[int]]:
    """(MPEG-TS bytes, byte offset where each frame's packets end) for (H, W, 3) uint8 frames."""
    buf, ends = io.BytesIO(), []
    h, w = frames[0].shape[:2]
    # flush_packets: each frame's packets reach ``buf`` as they are muxed, so ``ends`` is exact
    with av.open(buf, "w", format="mpegts", options={"flush_packets": "1"}) as c:
        v = c.add_stream("libx264", rate=fps, options={"tune": "zerolatency", "preset": preset, "g": str(gop)})
        v.width, v.height, v.pix_fmt = w, h, "yuv420p"
        for i, rgb in enumerate(frames):
            f = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            f.pts, f.time_base = i, Fraction(1, fps)
            c.mux(v.encode(f))
            ends.append(buf.tell())
        c.mux(v.encode(None))
    return buf.getvalue(), ends


def send_in_real_time(send: Callable[[bytes], None], data: bytes, ends: list[int], fps: float,
                      stop: threading.Event, chunk: int = 1316) -> None:
    """Send frame i's bytes at i/fps s, in pieces of ``chunk`` (7 TS packets: one UDP datagram)."""
    t0, start = time.perf_counter(), 0
    for i, end in enumerate(ends):
        if stop.is_set():
            return
        for k in range(start, end, chunk):
            send(data[k:min(k + chunk, end)])
        start = end
        time.sleep(max(0.0, t0 + (i + 1) / fps - time.perf_counter()))


def measure(backend: object, frames: Sequence[np.ndarray], fps: int, max_latency_ms: float | None,
            workdir: Path) -> LiveStats:
    data, ends = encode_ts(frames, fps, gop=fps)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    stop = threading.Event()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sender = threading.Thread(target=lambda: stop.wait(0.5) or send_in_real_time(
            lambda b: sock.sendto(b, ("127.0.0.1", port)), data, ends, fps, stop), daemon=True)
        sender.start()
        try:
            return run_live(f"udp://127.0.0.1:{port}", str(workdir / f"live-{fps}.ts"), backend,
                            options=LiveOptions(max_latency_ms=max_latency_ms, source_timeout_s=2.0, wait_s=10.0),
                            encode=EncodeOptions(preset="veryfast"), overwrite=True)
        finally:
            stop.set()
            sender.join(timeout=5)


def inference_ms(backend: object, frames: Sequence[np.ndarray], count: int = 20) -> float:
    """Inference alone (one DeblurStream step), per frame, now: the machine's speed this minute."""
    stream = DeblurStream(backend)
    stream.push(frames[0])  # first-call allocations
    started = time.perf_counter()
    for i in range(count):
        stream.push(frames[i % len(frames)])
    return 1000 * (time.perf_counter() - started) / count


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None,
                        help=f"checkpoint or model name [the bundled default, {DEFAULT_MODEL}; vdeblur_fast for real time]")
    parser.add_argument("--size", default="640x360", help="WIDTHxHEIGHT")
    parser.add_argument("--fps", default="25", help="source frame rates, comma-separated")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--max-latency-ms", type=float, default=None, help=f"[{DEFAULT_LATENCY_MS:g}]")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    width, height = map(int, args.size.split("x"))
    backend = load_backend(args.model, "torch", "cpu")
    with tempfile.TemporaryDirectory() as tmp:
        clip = make_test_video(Path(tmp) / "clip.mp4", width, height, 48)
        with av.open(str(clip)) as c:
            shot = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
        print(f"{backend.label}, {args.threads} thread(s), {width}x{height}, bound "
              f"{args.max_latency_ms or DEFAULT_LATENCY_MS:g} ms, {args.seconds:g} s per row\n")
        print("| source fps | frames in | frames out | dropped | fps out | latency p50 ms | p95 ms | max ms | "
              "inference alone ms |")
        print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for fps in map(int, args.fps.split(",")):
            frames = [shot[i % len(shot)] for i in range(round(fps * args.seconds))]
            alone = inference_ms(backend, shot)
            s = measure(backend, frames, fps, args.max_latency_ms, Path(tmp))
            print(f"| {fps} | {s.captured} | {s.encoded} | {s.dropped} | {s.encoded / s.active_s:.1f} | "
                  f"{percentile_ms(s.latency_s, 50):.0f} | {percentile_ms(s.latency_s, 95):.0f} | "
                  f"{max(s.latency_s) * 1000:.0f} | {alone:.1f} |", flush=True)


if __name__ == "__main__":
    main()
