"""Live input/output (``vdeblur SOURCE SINK``): MPEG-TS over UDP and TCP on 127.0.0.1, pipes,
drops under a slow backend, a source that disappears, Ctrl-C, and the one-line refusals.

Every frame the senders make carries its index as 8 black/white blocks, so the tests can read
back which frames came out and in which order. Network traffic goes to 127.0.0.1 only; every
wait is bounded (timeouts on sockets, subprocesses and threads).
"""

import fractions
import io
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import av
import numpy as np
import pytest
from click.testing import CliRunner

from vdeblur.benchmarks.live import encode_ts, send_in_real_time
from vdeblur.engine.backends import load_backend
from vdeblur.engine.cli import cli
from vdeblur.engine.endpoints import parse_sink, parse_source, sink_target
from vdeblur.engine.live import LiveOptions, run_live
from vdeblur.engine.live_buffer import STANDING_TAKES, Captured, Ema, FrameBuffer, Retimer
from vdeblur.engine.video_io import VideoError

FPS, SIZE = 25, 64
LOW, HIGH = 48, 208  # block levels: far enough from 128 to survive two H.264 passes and the model


def _pattern(i: int) -> np.ndarray:
    """(64, 64, 3): bit b of ``i`` as a 16x32 block (2 rows x 4 columns)."""
    img = np.full((SIZE, SIZE, 3), LOW, np.uint8)
    for b in range(8):
        if (i >> b) & 1:
            r, c = divmod(b, 4)
            img[r * 32:(r + 1) * 32, c * 16:(c + 1) * 16] = HIGH
    return img


def _index(rgb: np.ndarray) -> int:
    bits = [rgb[r * 32 + 8:(r + 1) * 32 - 8, c * 16 + 4:(c + 1) * 16 - 4].mean() > 128
            for r, c in (divmod(b, 4) for b in range(8))]
    return sum(int(bit) << b for b, bit in enumerate(bits))


def _indices(source: object) -> list[int]:
    with av.open(source) as c:
        return [_index(f.to_ndarray(format="rgb24")) for f in c.decode(video=0)]


def _ts_frames(frames: int) -> tuple[bytes, list[int]]:
    """An MPEG-TS clip of pattern frames (a keyframe every 10) and each frame's end offset."""
    return encode_ts([_pattern(i % 256) for i in range(frames)], FPS, gop=10)


def _free_port(kind: int = socket.SOCK_DGRAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _UdpSender:
    """A bounded sender thread: ``frames`` pattern frames to 127.0.0.1:port at FPS, after ``delay``."""

    def __init__(self, port: int, frames: int, delay: float = 0.3) -> None:
        self.data, self.ends = _ts_frames(frames)
        self.stop = threading.Event()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.thread = threading.Thread(target=self._run, args=(port, delay), daemon=True)

    def _run(self, port: int, delay: float) -> None:
        if not self.stop.wait(delay):
            send_in_real_time(lambda b: self.sock.sendto(b, ("127.0.0.1", port)), self.data, self.ends, FPS, self.stop)

    def __enter__(self) -> "_UdpSender":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=5)
        self.sock.close()


class _SlowBackend:
    """A real backend made slower than real time; counts fresh states (first frame and each reset)."""

    def __init__(self, inner: object, seconds: float) -> None:
        self.inner, self.seconds, self.fresh_states = inner, seconds, 0

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    def initial_state(self, height: int, width: int, batch: int = 1) -> object:
        self.fresh_states += 1
        return self.inner.initial_state(height, width, batch)

    def run(self, frame, state):
        time.sleep(self.seconds)
        return self.inner.run(frame, state)


@pytest.fixture(scope="module")
def backend(fast_checkpoint):
    return load_backend(str(fast_checkpoint), "torch", "cpu")


def _no_part_files(folder: Path) -> bool:
    return not list(folder.glob(".*.part*"))


def _cli(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vdeblur.engine.cli", *args], capture_output=True, timeout=60, **kw)


# --- the rules, with a fake clock -------------------------------------------------------------

def test_endpoints_are_classified() -> None:
    assert parse_source("clip.mp4").kind == "file" and parse_source("-").kind == "pipe"
    assert parse_source("/dev/video0").kind == "device" and parse_source("/dev/video0").is_live
    assert parse_source("/dev/null").kind == "device" and parse_source("/dev/shm/clip.mp4").kind == "file"
    assert parse_source("rtsp://cam.local/stream").scheme == "rtsp" and parse_source("udp://127.0.0.1:5000").is_live
    assert not parse_source("-").is_live  # a pipe's writer waits for us: every frame is kept
    assert sink_target(parse_sink("udp://127.0.0.1:5000?pkt_size=1316"), "mpegts") == ("udp://127.0.0.1:5000?pkt_size=1316", "mpegts")
    assert sink_target(parse_sink("rtsp://127.0.0.1:8554/live"), "mpegts")[1] == "rtsp"
    assert sink_target(parse_sink("-"), "matroska") == ("pipe:1", "matroska")
    for bad, allowed in (("ftp://host/x", "udp://"), ("/dev/video0", "stdout"), ("/dev/null", "stdout")):
        with pytest.raises(VideoError, match=f"allowed: .*{allowed}"):
            (parse_source if bad.startswith("ftp") else parse_sink)(bad)


def _frame(i: int, t: float) -> Captured:
    return Captured(np.zeros((2, 2, 3), np.uint8), i, t, i)


def test_frame_buffer_drops_late_frames_in_order_but_never_the_newest() -> None:
    now = [0.0]
    buf = FrameBuffer(4, drop=True, clock=lambda: now[0])
    for i in range(6):  # capacity 4: frames 0 and 1 are pushed out without the producer waiting
        buf.put(_frame(i, 0.1 * i))
    assert buf.dropped == 2
    now[0] = 0.55  # ages 0.35, 0.25, 0.15, 0.05; bound 0.3 with 0.1 still to go: 2 and 3 are late
    frame, gap = buf.take(bound_s=0.3, remaining_s=0.1)
    assert frame.index == 4 and gap and buf.dropped == 4
    now[0] = 5.0  # far too late, but the newest is always run
    frame, gap = buf.take(bound_s=0.3, remaining_s=0.1)
    assert frame.index == 5 and not gap
    assert buf.take(0.3, 0.1, wait_s=0.01) == (None, False) and not buf.ended
    buf.finish("end of stream")
    assert buf.ended and buf.end_reason == "end of stream"


def test_a_standing_queue_is_cut_to_the_newest_frame_well_inside_the_bound() -> None:
    now = [0.0]
    buf = FrameBuffer(64, drop=True, clock=lambda: now[0])
    ages, taken, next_capture, i = [], [], 0.0, 0
    for _ in range(40):  # inference takes 0.1 s a frame, the source sends one every 0.04 s
        while next_capture <= now[0] + 1e-9:
            buf.put(_frame(i, next_capture))
            i, next_capture = i + 1, next_capture + 0.04
        frame, _ = buf.take(bound_s=10.0, remaining_s=0.0)  # a bound that would never drop anything
        ages.append(now[0] - frame.captured_s)
        taken.append(frame.index)
        now[0] += 0.1
    assert max(ages[:STANDING_TAKES]) > 0.1  # a backlog builds at first (it could be a hiccup) ...
    assert max(ages[STANDING_TAKES + 1:]) <= 0.04 + 1e-9  # ... then only the newest frame is run
    buf.discard()  # what is still waiting counts as dropped too
    assert taken == sorted(taken) and buf.dropped == i - len(taken)


def test_remaining_time_estimate_covers_jitter() -> None:
    e = Ema()
    for sample in [0.1, 0.2] * 20:
        e.update(sample)
    assert 0.14 < e.mean < 0.16 and e.value > 0.2  # above most samples, not their average


def test_frame_buffer_without_drops_keeps_every_frame_and_waits_for_room() -> None:
    buf = FrameBuffer(2, drop=False)
    stop = threading.Event()
    producer = threading.Thread(target=lambda: [buf.put(_frame(i, 0.0), stop) for i in range(6)], daemon=True)
    producer.start()
    taken = []
    while len(taken) < 6:
        frame, gap = buf.take(bound_s=0.0, remaining_s=10.0, wait_s=1.0)  # a bound would not apply
        assert frame is not None and not gap
        taken.append(frame.index)
    producer.join(timeout=5)
    assert taken == list(range(6)) and buf.dropped == 0


def test_retimer_starts_at_zero_keeps_gaps_and_never_goes_back() -> None:
    r = Retimer(fractions.Fraction(1, 90000), fractions.Fraction(25))
    assert [r(p, 0.0) for p in (900000, 903600, 914400)] == [0, 3600, 14400]  # a dropped stretch keeps its time
    assert r(3600, 0.0) == 18000  # the clock jumped back (a wrap, a restarted sender): one frame on
    assert r(7200, 0.0) == 21600


# --- real streams on 127.0.0.1 ------------------------------------------------------------------

def test_udp_stream_into_a_file_ends_cleanly_when_the_sender_goes_quiet(tmp_path: Path, backend, one_thread) -> None:
    port, out, lines = _free_port(), tmp_path / "live.mkv", []
    stale = tmp_path / ".live.k1ll3d_0.part.mkv"  # what a run killed by SIGKILL left (no lock held)
    stale.write_bytes(b"half a video")
    with _UdpSender(port, frames=40):
        stats = run_live(f"udp://127.0.0.1:{port}", str(out), backend, options=LiveOptions(source_timeout_s=1.0),
                         log=lines.append)
    assert stats.lost and "quiet" in stats.ended
    assert not stale.exists() and any(stale.name in line for line in lines)
    got = _indices(str(out))  # the file is complete and playable, under its final name only
    assert _no_part_files(tmp_path)
    assert len(got) == stats.encoded >= 20 and got == sorted(set(got)) and set(got) <= set(range(40))
    assert stats.captured == stats.encoded + stats.dropped
    assert len(stats.latency_s) == stats.encoded


def test_slow_backend_drops_frames_keeps_order_and_bounds_latency(tmp_path: Path, backend, one_thread) -> None:
    slow = _SlowBackend(backend, 0.12)  # 3x slower than the 25 fps source
    port, out = _free_port(), tmp_path / "slow.mp4"
    with _UdpSender(port, frames=60):
        stats = run_live(f"udp://127.0.0.1:{port}", str(out), slow,
                         options=LiveOptions(max_latency_ms=250, source_timeout_s=1.0))
    got = _indices(str(out))
    assert stats.dropped > 10 and stats.captured == stats.encoded + stats.dropped
    assert got == sorted(set(got)) and len(got) == stats.encoded  # order kept, every encoded frame plays
    # Without drops the last of 60 frames would wait ~60 x 0.12 - 2.4 = 4.8 s.
    assert max(stats.latency_s) < 1.0 and np.median(stats.latency_s) < 0.5
    assert stats.gaps > 0 and slow.fresh_states == stats.gaps + 1  # the state restarts after every gap


def test_tcp_source_that_disappears_mid_stream_closes_a_playable_output(tmp_path: Path, backend, one_thread) -> None:
    data, ends = _ts_frames(40)
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(5)
    port = server.getsockname()[1]

    def serve() -> None:
        conn, _ = server.accept()
        send_in_real_time(conn.sendall, data[:ends[24]], ends[:25], FPS, threading.Event())
        # RST instead of FIN: the connection breaks as a crashed camera's would
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    out = tmp_path / "cut.mp4"
    stats = run_live(f"tcp://127.0.0.1:{port}", str(out), backend, options=LiveOptions(source_timeout_s=2.0))
    thread.join(timeout=5)
    server.close()
    assert stats.lost and "source lost" in stats.ended, stats.ended
    got = _indices(str(out))
    assert 10 <= len(got) == stats.encoded and got == sorted(set(got)) and max(got) <= 24
    assert _no_part_files(tmp_path)


def test_file_into_a_udp_sink_is_paced_and_complete(tmp_path: Path, backend, one_thread) -> None:
    clip = tmp_path / "clip.ts"
    data, _ = _ts_frames(30)
    clip.write_bytes(data)
    port, received = _free_port(), []

    def receive() -> None:
        with av.open(f"udp://127.0.0.1:{port}", timeout=(10.0, 1.5)) as c:
            try:
                for f in c.decode(video=0):
                    received.append(_index(f.to_ndarray(format="rgb24")))
            except av.error.ExitError:
                pass  # the read timeout after the last frame: the stream is over

    receiver = threading.Thread(target=receive, daemon=True)
    receiver.start()
    time.sleep(0.3)  # the receiver's socket is bound
    stats = run_live(str(clip), f"udp://127.0.0.1:{port}?pkt_size=1316", backend)
    receiver.join(timeout=15)
    assert stats.encoded == 30 and stats.dropped == 0
    assert stats.active_s >= 29 / FPS * 0.9  # sent at the clip's own pace, not as fast as possible
    assert received == list(range(30))


def test_an_engine_error_mid_run_leaves_no_output(tmp_path: Path, backend, one_thread) -> None:
    class Failing(_SlowBackend):
        calls = 0

        def run(self, frame, state):
            self.calls += 1
            if self.calls > 5:
                raise RuntimeError("CUDA error: an illegal memory access")  # what a dying GPU says
            return self.inner.run(frame, state)

    clip, out = tmp_path / "clip.ts", tmp_path / "out.mkv"
    clip.write_bytes(_ts_frames(20)[0])
    with pytest.raises(RuntimeError, match="illegal memory access"):
        run_live(str(clip), str(out), Failing(backend, 0.0))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.ts"]


def test_a_ctrl_c_dropped_on_its_way_still_stops_the_recording(tmp_path: Path, backend, one_thread) -> None:
    class DropsCtrlC(_SlowBackend):
        calls = 0

        def run(self, frame, state):
            self.calls += 1
            if self.calls == 6:
                try:
                    signal.getsignal(signal.SIGINT)(signal.SIGINT, None)  # Ctrl-C arrives here ...
                except KeyboardInterrupt:
                    pass  # ... and is dropped, as Python does in a callback from C code
            return self.inner.run(frame, state)

    clip, out = tmp_path / "clip.ts", tmp_path / "out.mp4"
    clip.write_bytes(_ts_frames(40)[0])
    before = signal.signal(signal.SIGINT, signal.default_int_handler)  # as started from a terminal
    try:
        stats = run_live(str(clip), str(out), DropsCtrlC(backend, 0.0))
    finally:
        signal.signal(signal.SIGINT, before)
    assert stats.ended == "stopped by Ctrl-C"
    got = _indices(str(out))
    assert 5 <= len(got) < 40 and got == sorted(set(got))  # stopped there, and the file plays


def test_a_frame_size_change_ends_the_run_with_a_playable_output(tmp_path: Path, backend, one_thread) -> None:
    clip, out = tmp_path / "two_sizes.ts", tmp_path / "out.mkv"
    wider = [np.full((SIZE, 96, 3), 128, np.uint8)] * 10
    clip.write_bytes(_ts_frames(10)[0] + encode_ts(wider, FPS)[0])  # a sender restarted at another size
    stats = run_live(str(clip), str(out), backend)
    assert "changed its frame size from 64x64 to 96x64" in stats.ended
    assert _indices(str(out)) == list(range(10)) and _no_part_files(tmp_path)


def test_pipe_in_and_out(tmp_path: Path, fast_checkpoint) -> None:
    data, _ = _ts_frames(12)
    result = _cli("-", "-", "--model", str(fast_checkpoint), "--threads", "1", "--quiet", input=data)
    assert result.returncode == 0 and result.stderr == b"", result.stderr.decode()
    assert _indices(io.BytesIO(result.stdout)) == list(range(12))  # every frame of a pipe is kept, in order


def test_closing_the_reader_of_stdout_ends_the_run_cleanly(tmp_path: Path, fast_checkpoint) -> None:
    clip = tmp_path / "clip.ts"
    clip.write_bytes(_ts_frames(200)[0])
    proc = subprocess.Popen([sys.executable, "-m", "vdeblur.engine.cli", str(clip), "-", "--model", str(fast_checkpoint),
                             "--threads", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=False)
    try:
        assert len(proc.stdout.read(4000)) == 4000  # what `| head -c 4000` or a closed ffplay does
        proc.stdout.close()
        code, err = proc.wait(timeout=30), proc.stderr.read().decode()
    finally:
        proc.kill()
    assert code == 0 and "the reader of - closed the pipe" in err, err


def _ctrl_c_as_in_a_terminal() -> None:
    # The suite itself may run with SIGINT ignored (started as a shell's background job), and a child
    # inherits that; an interactive shell starts `vdeblur` with Ctrl-C's default action.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_a_signal_ignored_at_start_stays_ignored_during_a_live_run(tmp_path: Path, backend, one_thread) -> None:
    seen: list[tuple[object, object]] = []

    class Watches(_SlowBackend):
        def run(self, frame, state):
            seen.append((signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)))
            return self.inner.run(frame, state)

    clip, out = tmp_path / "clip.ts", tmp_path / "out.mp4"
    clip.write_bytes(_ts_frames(5)[0])
    term_before = signal.getsignal(signal.SIGTERM)
    int_before = signal.signal(signal.SIGINT, signal.SIG_IGN)  # as a shell starts `vdeblur ... &` in a script
    try:
        run_live(str(clip), str(out), Watches(backend, 0.0))
        int_after = signal.getsignal(signal.SIGINT)
    finally:
        signal.signal(signal.SIGINT, int_before)
    assert seen and {sigint for sigint, _ in seen} == {signal.SIG_IGN}  # the shell's choice kept ...
    assert int_after is signal.SIG_IGN
    assert all(callable(t) and t is not term_before for _, t in seen)  # ... SIGTERM still closes the run
    assert signal.getsignal(signal.SIGTERM) is term_before


def test_ctrl_c_closes_a_live_recording(tmp_path: Path, fast_checkpoint) -> None:
    port, out = _free_port(), tmp_path / "rec.mp4"  # MP4: playable only if the trailer was written
    with _UdpSender(port, frames=400, delay=0.0):
        proc = subprocess.Popen([sys.executable, "-m", "vdeblur.engine.cli", f"udp://127.0.0.1:{port}", str(out),
                                 "--model", str(fast_checkpoint), "--threads", "1", "--fps-report",
                                 "--source-timeout", "10"], stderr=subprocess.PIPE, text=True,
                                preexec_fn=_ctrl_c_as_in_a_terminal)
        try:
            lines = []
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not any(l.startswith("live:") for l in lines):
                lines.append(proc.stderr.readline())  # the first fps report: frames are flowing
            proc.send_signal(signal.SIGINT)
            rest = proc.communicate(timeout=20)[1]
        finally:
            proc.kill()
    assert proc.returncode == 0, "".join(lines) + rest
    assert "stopped by Ctrl-C" in rest and "dropped" in rest
    got = _indices(str(out))
    assert len(got) >= 10 and got == sorted(set(got)) and _no_part_files(tmp_path)


def _waiting(port: int, out: Path, fast_checkpoint: Path) -> tuple[subprocess.Popen, list[str]]:
    """``vdeblur udp://...:port out`` started before any sender, and its lines up to the one saying it waits."""
    proc = subprocess.Popen([sys.executable, "-m", "vdeblur.engine.cli", f"udp://127.0.0.1:{port}", str(out),
                             "--model", str(fast_checkpoint), "--threads", "1", "--source-timeout", "1"],
                            stderr=subprocess.PIPE, text=True, preexec_fn=_ctrl_c_as_in_a_terminal)
    lines = [proc.stderr.readline()]
    while lines[-1] and "waiting for" not in lines[-1]:  # the process says it before it waits: no race
        lines.append(proc.stderr.readline())
    return proc, lines


def test_a_late_udp_sender_is_waited_for(tmp_path: Path, fast_checkpoint) -> None:
    port, out = _free_port(), tmp_path / "late.mkv"
    proc, lines = _waiting(port, out, fast_checkpoint)
    try:
        assert lines[-1].strip() == f"vdeblur: waiting for udp://127.0.0.1:{port} to send video (Ctrl-C stops)", lines
        with _UdpSender(port, frames=30, delay=0.0):  # starts only now, however long that took
            rest = proc.communicate(timeout=120)[1]
    finally:
        proc.kill()
    assert proc.returncode == 0 and "went quiet" in rest and "waiting" not in rest, "".join(lines) + rest
    got = _indices(str(out))
    assert got and got == sorted(set(got)) and _no_part_files(tmp_path)


def test_ctrl_c_while_waiting_for_a_source_leaves_nothing(tmp_path: Path, fast_checkpoint) -> None:
    port, out = _free_port(), tmp_path / "never.mp4"
    proc, lines = _waiting(port, out, fast_checkpoint)
    try:
        assert "waiting for" in lines[-1], lines
        proc.send_signal(signal.SIGINT)
        rest = proc.communicate(timeout=30)[1]
    finally:
        proc.kill()
    assert proc.returncode == 130 and rest.strip() == "vdeblur: interrupted; no output was written", rest
    assert list(tmp_path.iterdir()) == []


# --- refusals: one line, exit 1, nothing left behind ---------------------------------------------

@pytest.mark.parametrize("source, sink, expected", [
    ("ftp://127.0.0.1/x.ts", "out.mp4", "unsupported scheme ftp://; allowed: .*udp://"),
    ("/dev/video99", "out.mp4", "capture device /dev/video99 does not exist"),
    ("rtsp://127.0.0.1:{tcp}/cam", "out.mp4", "refused the connection"),
    ("udp://127.0.0.1:{udp}", "out.mp4", r"sent no video within 0.5 s \(--wait\)"),
    ("{clip}", "gopher://127.0.0.1/x", "unsupported scheme gopher://; allowed: .*udp://"),
    ("{clip}", "rtsp://127.0.0.1:{tcp}/live", "sink rtsp://.* could not be opened"),
])
def test_bad_sources_and_sinks_fail_in_one_line(tmp_path: Path, fast_checkpoint, source: str, sink: str,
                                                expected: str, one_thread) -> None:
    import re

    clip = tmp_path / "clip.ts"
    clip.write_bytes(_ts_frames(5)[0])
    fill = {"tcp": _free_port(socket.SOCK_STREAM), "udp": _free_port(), "clip": clip}
    source, sink = source.format(**fill), sink.format(**fill)
    sink = str(tmp_path / sink) if "://" not in sink else sink
    before = set(tmp_path.iterdir())
    result = CliRunner().invoke(cli, [source, sink, "--model", str(fast_checkpoint), "--quiet", "--wait", "0.5"])
    assert result.exit_code == 1 and re.search(expected, result.output), result.output
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output
    assert set(tmp_path.iterdir()) == before  # no output, no part file


@pytest.mark.parametrize("stdin, expected", [("empty", "ended before a video arrived"),
                                             ("silent", "sent no video within 1 s (--wait)")])
def test_a_pipe_without_data_fails_in_one_line(tmp_path: Path, fast_checkpoint, stdin: str, expected: str) -> None:
    out = tmp_path / "out.mp4"
    args = ["-", str(out), "--model", str(fast_checkpoint), "--quiet", "--source-timeout", "1", "--wait", "1"]
    if stdin == "empty":
        result = _cli(*args, stdin=subprocess.DEVNULL)
        code, err = result.returncode, result.stderr.decode()
    else:  # a writer that holds the pipe open and sends nothing
        proc = subprocess.Popen([sys.executable, "-m", "vdeblur.engine.cli", *args], stdin=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        try:
            code = proc.wait(timeout=60)  # not communicate(): it would close stdin, which is the "empty" case
            err = proc.stderr.read()
        finally:
            proc.kill()
            proc.stdin.close()
    assert code == 1 and expected in err and len(err.strip().splitlines()) == 1, err
    assert list(tmp_path.iterdir()) == []
