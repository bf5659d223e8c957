"""Real-world containers and timestamps, generated here with PyAV (nothing downloaded): each case's
output plays, has every frame the input decodes to, strictly increasing timestamps (the input's where
valid, else regenerated from the frame rate with one line saying so) and the input's audio bytes,
packet for packet, with strictly increasing timestamps (rebuilt from the packet durations, with one
line saying so, where the input's are missing, repeated or go back); a packet the muxer cannot take
is named in the summary line. A case that cannot give a complete output fails in one line, exit 1,
with nothing written."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from click.testing import CliRunner
from conftest import make_clip

from vdeblur.engine.cli import cli
from vdeblur.engine.sample import mux_tone
from vdeblur.engine.timestamps import choose_timing
from vdeblur.engine.video_io import peek_rotation

_PER_FRAME = Fraction(1, 24)  # AVI stores one tick per frame: a finer time base would be padded with empty frames


def _decoded(path: Path) -> list[float | None]:
    """Every frame the input decodes to, as seconds (None: no timestamp); undecodable packets skipped."""
    times: list[float | None] = []
    with av.open(str(path)) as c:
        for packet in c.demux(video=0):
            try:
                frames = packet.decode()
            except av.error.FFmpegError:
                continue
            times += [None if f.pts is None else float(f.pts * f.time_base) for f in frames]
    return times


def _audio(path: Path) -> list[bytes]:
    """The audio packets' payloads; ADTS headers (AAC in MPEG-TS) dropped, as MP4 and MKV store AAC without."""
    with av.open(str(path)) as c:
        packets = [bytes(p) for p in c.demux(audio=0) if p.size] if c.streams.audio else []
    return [p[7 if p[1] & 1 else 9:] if p[0] == 0xFF and p[1] & 0xF0 == 0xF0 else p for p in packets]


def _remux(src: Path, dst: Path, video: Callable[[int, av.Packet], tuple[bytes, int, int]], audio: bool = True) -> Path:
    """Copy ``src`` to ``dst`` packet by packet; ``video(i, packet)`` gives the i-th video packet's
    new (bytes, pts, dts): how a damaged or oddly written file is made from a clean one."""
    with av.open(str(src)) as i, av.open(str(dst), "w") as o:
        streams = {s.index: o.add_stream_from_template(s) for s in i.streams if audio or s.type == "video"}
        n = 0
        for packet in i.demux():
            if (packet.dts is None and not packet.size) or packet.stream.index not in streams:
                continue
            index = packet.stream.index
            if packet.stream.type == "video":
                data, pts, dts = video(n, packet)
                out = av.Packet(data)
                out.pts, out.dts, out.time_base, out.is_keyframe = pts, dts, packet.time_base, packet.is_keyframe
                n += 1
                packet = out
            packet.stream = streams[index]
            o.mux(packet)
    return dst


_VOP = b"\x00\x00\x01\xb6"


def pack_b_frames(src: Path, dst: Path) -> Path:
    """MPEG-4 Part 2 in AVI as DivX writes it ("packed B-frames"): each B-frame shares the packet of
    the reference frame before it, a 6-byte not-coded frame takes its slot, and the stream says
    ``DivX503b1393p`` in its user data. Decoded, the frames come in display order with their
    neighbours' timestamps, like Megamind.avi of OpenCV's samples."""
    with av.open(str(src)) as c:
        payloads = [bytes(p) for p in c.demux(video=0) if p.size]
    is_b = [p[p.find(_VOP) + 4] >> 6 == 2 for p in payloads]
    packed = list(payloads)
    for k in range(1, len(payloads)):
        if is_b[k] and not is_b[k - 1]:
            packed[k - 1], packed[k] = payloads[k - 1] + payloads[k], _VOP + b"\x50\x4f"  # a not-coded P-VOP
    first = packed[0].find(_VOP)
    packed[0] = packed[0][:first] + b"\x00\x00\x01\xb2DivX503b1393p" + packed[0][first:]
    assert sum(is_b) > 3, "the encoder wrote no B-frames to pack"
    # Video only: FFmpeg's AVI muxer miscounts an audio stream it did not encode (every packet copied
    # with a template stream reads back as four with one timestamp); MPEG-4 in AVI with audio is
    # the "avi-mpeg4-b-frames" case, and Megamind.avi was checked by hand.
    return _remux(src, dst, lambda i, p: (packed[i], i, i), audio=False)


def avi_audio_at_zero(tmp: Path, damage_first: bool = False) -> Path:
    """MPEG-4 video with AC-3 audio in an AVI made by a stream copy from another AVI, as cutting
    Megamind.avi of OpenCV's samples with a stream copy makes it: the audio packets demux with
    repeated timestamps (there all 0; here 0 for the first ten, then 1). ``damage_first``: the first audio packet lacks its first half, as a cut made in the middle of
    a frame leaves it, so that it does not decode (as Megamind.avi's own first packet)."""
    plain = tmp / "plain.avi"
    with av.open(str(plain), "w") as c:
        video = c.add_stream("mpeg4", rate=24)
        video.width, video.height, video.pix_fmt, video.time_base = 64, 48, "yuv420p", _PER_FRAME
        audio = c.add_stream("ac3", rate=48000, layout="mono")
        rng = np.random.default_rng(0)
        for i in range(12):
            frame = av.VideoFrame.from_ndarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8), format="rgb24")
            frame.pts = i
            c.mux(video.encode(frame))
        c.mux(video.encode(None))
        mux_tone(c, audio, 24000, 0.3)
    dst = tmp / "in.avi"
    with av.open(str(plain)) as i, av.open(str(dst), "w") as o:
        streams = {s.index: o.add_stream_from_template(s) for s in i.streams}
        first = True
        for packet in i.demux():
            if not packet.size:
                continue
            if packet.stream.type == "audio" and first and damage_first:
                cut = av.Packet(bytes(packet)[packet.size // 2:])
                cut.pts, cut.dts, cut.time_base = packet.pts, packet.dts, packet.time_base
                cut.stream, packet = streams[packet.stream.index], cut
            else:
                packet.stream = streams[packet.stream.index]
            first = first and packet.stream.type != "audio"
            o.mux(packet)
    with av.open(str(dst)) as c:
        stamps = [p.pts for p in c.demux(audio=0) if p.size]
    assert stamps[0] == 0 and len(set(stamps)) <= len(stamps) // 4, f"the AVI muxer kept the audio timestamps: {stamps}"
    return dst


def restamp(src: Path, dst: Path, times_ms: list[int]) -> Path:
    """The same frames with the timestamps ``times_ms`` (intra-only or B-frame-free input: one
    packet per frame, in display order)."""
    return _remux(src, dst, lambda i, p: (bytes(p), *(2 * [round(Fraction(times_ms[i], 1000) / p.time_base)])))


def corrupt(src: Path, dst: Path, frame: int, at: int | None = None, length: int = 10**9) -> Path:
    """The clip with ``length`` bytes of video packet ``frame`` overwritten from byte ``at`` (default
    its middle), as a bad sector or a lost network packet leaves it."""
    def damage(i: int, p: av.Packet) -> tuple[bytes, int, int]:
        data = bytes(p)
        if i == frame:
            start = len(data) // 2 if at is None else at
            data = data[:start] + (bytes(range(256)) * (1 + len(data) // 256))[:length] + data[start + length:]
        return data[:p.size], p.pts, p.dts
    return _remux(src, dst, damage, audio=dst.suffix != ".avi")  # AVI: see pack_b_frames


def strip_pes_timestamps(src: Path, dst: Path) -> Path:
    """The MPEG-TS with the PTS/DTS flags of every video PES header cleared: a stream whose frames
    arrive without timestamps, as damaged broadcast recordings have them."""
    data = bytearray(src.read_bytes())
    for at in range(0, len(data), 188):
        packet = data[at:at + 188]
        if not packet[1] & 0x40:  # no PES starts in this packet
            continue
        start = 4 + (1 + packet[4] if packet[3] & 0x20 else 0)  # after the adaptation field
        if packet[start:start + 3] == b"\x00\x00\x01" and 0xE0 <= packet[start + 3] <= 0xEF:
            data[at + start + 7] &= 0x3F
    dst.write_bytes(bytes(data))
    return dst


def concatenate(dst: Path, *parts: Path) -> Path:
    """Segments joined byte by byte (``cat a.ts b.ts``): each restarts its clock."""
    dst.write_bytes(b"".join(p.read_bytes() for p in parts))
    return dst


_TIMES = [0, 42, 83, 125, 167, 208, 250, 292, 333, 375, 417, 458]


def _ts_segments(tmp: Path, audio: bool) -> list[Path]:
    parts = [tmp / "a.ts", tmp / "b.ts"]
    for p in parts:
        make_clip(p, frames=6, audio=audio, time_base=Fraction(1, 90000))
    return parts


@dataclass(frozen=True)
class Case:
    make: Callable[[Path], Path]  # writes the input into a folder, returns its path
    expect: str  # "kept", "regenerated" or a regex of the one-line refusal
    output: str = "out.mp4"
    audio: str = "kept"  # "kept", "rebuilt" (timestamps rebuilt, one line says so) or "first-left-out" (by the muxer)


CASES = {
    "avi-mpeg4-packed-b-frames": Case(lambda t: pack_b_frames(make_clip_at(
        t / "plain.avi", codec="mpeg4", options={"bf": "1"}, frames=24, time_base=_PER_FRAME), t / "in.avi"),
        "regenerated"),
    "avi-mpeg4-b-frames": Case(lambda t: make_clip_at(t / "in.avi", codec="mpeg4", options={"bf": "2"}, frames=12,
                                                      time_base=_PER_FRAME), "kept"),
    "avi-mjpeg-full-range": Case(lambda t: make_clip_at(t / "in.avi", codec="mjpeg", pix_fmt="yuvj420p",
                                                        time_base=_PER_FRAME), "kept"),
    "mkv-repeated-timestamp": Case(lambda t: restamp(make_clip_at(t / "c.mkv", options={"bf": "0"}), t / "in.mkv",
                                                     _TIMES[:3] + [83] + _TIMES[4:]), "regenerated"),
    "mkv-vfr-duplicate-timestamps": Case(lambda t: restamp(make_clip_at(t / "c.mkv", options={"bf": "0"}),
                                                           t / "in.mkv", [0, 42, 125, 125, 250, 292, 292, 417, 458, 500,
                                                                          583, 583]), "regenerated", "out.mkv"),
    "ts-missing-timestamps": Case(lambda t: strip_pes_timestamps(make_clip_at(t / "c.ts", time_base=Fraction(1, 90000)),
                                                                 t / "in.ts"), "regenerated"),
    "ts-timestamp-jump-forward": Case(lambda t: make_clip_at(t / "in.ts", time_base=Fraction(1, 90000),
                                                             times_ms=_TIMES[:6] + [5000 + x for x in _TIMES[6:]]),
                                      "kept"),
    "ts-concatenated-video": Case(lambda t: concatenate(t / "in.ts", *_ts_segments(t, audio=False)), "regenerated"),
    "ts-concatenated-with-audio": Case(lambda t: concatenate(t / "in.ts", *_ts_segments(t, audio=True)),
                                       "regenerated", audio="rebuilt"),
    "ts-concatenated-with-audio-to-mkv": Case(lambda t: concatenate(t / "in.ts", *_ts_segments(t, audio=True)),
                                              "regenerated", "out.mkv", audio="rebuilt"),
    "mp4-start-offset-edit-list": Case(lambda t: make_clip_at(t / "in.mp4", times_ms=[500 + x for x in _TIMES]), "kept"),
    "mov-b-frames-edit-list": Case(lambda t: make_clip_at(t / "in.mov", options={"bf": "2"}), "kept", "out.mov"),
    "mkv-vfr": Case(lambda t: make_clip_at(t / "in.mkv", vfr=True), "kept", "out.mkv"),
    "mov-prores-422-10-bit": Case(lambda t: make_clip_at(t / "in.mov", codec="prores_ks", pix_fmt="yuv422p10le",
                                                         frames=4), "kept"),
    "mkv-h264-422": Case(lambda t: make_clip_at(t / "in.mkv", pix_fmt="yuv422p", frames=6), "kept"),
    "mp4-h264-10-bit": Case(lambda t: make_clip_at(t / "in.mp4", pix_fmt="yuv420p10le", frames=6), "kept"),
    "mkv-odd-size": Case(lambda t: make_clip_at(t / "in.mkv", width=33, height=21, codec="ffv1", pix_fmt="yuv444p",
                                                frames=4), "kept"),
    "mp4-rotated": Case(lambda t: make_clip_at(t / "in.mp4", rotation=90, frames=4), "kept"),
    "mp4-audio-outlasts-video": Case(lambda t: make_clip_at(t / "in.mp4", frames=6, audio_s=2.0), "kept"),
    # FFmpeg's AVI muxer writes an audio stream it did not encode with repeated timestamps (see
    # pack_b_frames): MP4 would refuse them as they are, Matroska takes them; both get rebuilt ones.
    "avi-repeated-audio-timestamps": Case(lambda t: _remux(make_clip_at(t / "c.avi", time_base=_PER_FRAME,
                                                                        codec="mjpeg", pix_fmt="yuvj420p"),
                                                           t / "in.avi", lambda i, p: (bytes(p), p.pts, p.dts)),
                                          "kept", audio="rebuilt"),
    "avi-repeated-audio-timestamps-to-mkv": Case(lambda t: CASES["avi-repeated-audio-timestamps"].make(t), "kept",
                                                 "out.mkv", audio="rebuilt"),
    "avi-audio-without-timestamps": Case(avi_audio_at_zero, "kept", audio="rebuilt"),
    "avi-audio-without-timestamps-to-mkv": Case(avi_audio_at_zero, "kept", "out.mkv", audio="rebuilt"),
    # Matroska takes an AC-3 packet that does not decode as it is; FFmpeg's MP4 muxer leaves it out
    # (it parses the first AC-3 packets for the stream's header), which the summary line says.
    "avi-undecodable-first-audio-packet-to-mkv": Case(lambda t: avi_audio_at_zero(t, damage_first=True), "kept",
                                                      "out.mkv", audio="rebuilt"),
    "avi-undecodable-first-audio-packet": Case(lambda t: avi_audio_at_zero(t, damage_first=True), "kept",
                                               audio="first-left-out"),
    # Damage the decoder repairs (H.264 error concealment) leaves a frame for every packet: complete.
    "mkv-h264-damaged-slice": Case(lambda t: corrupt(make_clip_at(t / "c.mkv"), t / "in.mkv", frame=6, length=16),
                                   "kept"),
    "mkv-h264-corrupt-packet": Case(lambda t: corrupt(make_clip_at(t / "c.mkv"), t / "in.mkv", frame=6, at=8),
                                    r"in.mkv: 1 video frame\(s\) could not be decoded \(corrupt data, first in "
                                    r"video packet 6 \(0\.\d+ s\); 11 decoded\); only complete outputs are written$"),
    "avi-mjpeg-corrupt-packet": Case(lambda t: corrupt(make_clip_at(t / "c.avi", codec="mjpeg", pix_fmt="yuvj420p",
                                                                    time_base=_PER_FRAME), t / "in.avi", frame=6, at=8),
                                     r"in.avi: 1 video frame\(s\) could not be decoded \(corrupt data, first in "
                                     r"video packet 6 \(0\.\d+ s\); 11 decoded\)"),
}


def make_clip_at(path: Path, **kwargs: object) -> Path:
    make_clip(path, **kwargs)  # type: ignore[arg-type]
    return path


@pytest.mark.parametrize("name", sorted(CASES))
def test_real_world_case(tmp_path: Path, fast_checkpoint: Path, name: str) -> None:
    case = CASES[name]
    src = case.make(tmp_path)
    dst = tmp_path / case.output
    result = CliRunner().invoke(cli, [str(src), str(dst), "--model", str(fast_checkpoint), "--threads", "1"])
    text = result.output
    if case.expect not in ("kept", "regenerated"):
        assert result.exit_code == 1 and re.search(case.expect, text, re.MULTILINE), text
        assert len(text.strip().splitlines()) == 2 and ".part" not in text, text  # the backend's line, the error's
        assert not dst.exists() and not list(tmp_path.glob(".out.*"))
        return
    assert result.exit_code == 0, text
    source, out = _decoded(src), _decoded(dst)
    assert len(out) == len(source) > 0
    assert all(t is not None for t in out) and all(b > a for a, b in zip(out, out[1:])), out
    regenerated = "timestamps regenerated from the frame rate" in text
    assert regenerated == (case.expect == "regenerated"), text
    if regenerated:
        assert len(re.findall("regenerated", text)) == 1
        with av.open(str(src)) as c:
            rate = float(c.streams.video[0].average_rate or c.streams.video[0].guessed_rate)
        assert out == pytest.approx([out[0] + i / rate for i in range(len(out))], abs=1e-3)
    else:
        assert out == pytest.approx(source, abs=1e-3)  # the input's own, a jump or an offset included
    _check_audio(case.audio, src, dst, text)
    assert peek_rotation(dst) == peek_rotation(src)
    with av.open(str(src)) as a, av.open(str(dst)) as b:
        assert (b.streams.video[0].width, b.streams.video[0].height) == (a.streams.video[0].width, a.streams.video[0].height)
        assert ("10" in b.streams.video[0].codec_context.pix_fmt) == ("10" in a.streams.video[0].codec_context.pix_fmt)
        assert _full_range(b) == _full_range(a)


def _check_audio(expect: str, src: Path, dst: Path, text: str) -> None:
    rebuilt = "timestamps rebuilt from the packet durations" in text
    assert rebuilt == (expect in ("rebuilt", "first-left-out")), text
    assert len(re.findall("rebuilt", text)) == rebuilt, text
    kept = _audio(src)
    if expect == "first-left-out":
        assert re.search(rf"; 1 of {len(kept)} audio packets left out by the mp4 muxer, which drops packets it "
                         r"cannot parse \(the first at 0\.000 s\)", text), text
        kept = kept[1:]
    else:
        assert "left out" not in text and "not written" not in text, text
    assert _audio(dst) == kept
    with av.open(str(dst)) as c:
        times = [p.dts for p in c.demux(audio=0) if p.size] if c.streams.audio else []
    assert all(b > a for a, b in zip(times, times[1:])), times


def _full_range(container: av.container.InputContainer) -> bool:
    cc = container.streams.video[0].codec_context
    return cc.color_range == 2 or cc.pix_fmt.startswith("yuvj")


def test_packed_b_frames_decode_out_of_order_like_divx_files(tmp_path: Path) -> None:
    """The generated AVI fails the way Megamind.avi does: frames in display order, stamps not."""
    src = CASES["avi-mpeg4-packed-b-frames"].make(tmp_path)
    times = _decoded(src)
    backwards = sum(b <= a for a, b in zip(times, times[1:]))
    assert len(times) == 24 and backwards >= 8, times


def test_timing_keeps_valid_timestamps_and_regenerates_broken_ones() -> None:
    tb = Fraction(1, 1000)
    kept = choose_timing([0, 40, 120, 130], tb, Fraction(25))
    assert not kept.regenerated and [kept.pts(i, p) for i, p in enumerate([0, 40, 120, 130])] == [0, 40, 120, 130]
    for broken, why in (([5, 10, 10, 20], "repeats the timestamp 0.010 s"), ([5, None, 15], "frame 1 has no timestamp"),
                        ([5, 30, 20, 40], "goes back from 0.030 s to 0.020 s")):
        timing = choose_timing(broken, tb, Fraction(25))
        assert timing.regenerated and why in timing.reason
        assert [timing.pts(i, p) for i, p in enumerate(broken)] == [5 + 40 * i for i in range(len(broken))]
    avi = choose_timing([1, 2, 3, 5, 4, 6], Fraction(125, 2997), Fraction(2997, 125))  # Megamind.avi's start
    assert [avi.pts(i, None) for i in range(6)] == [1, 2, 3, 4, 5, 6]
    coarse = choose_timing([None, None, None], Fraction(1, 10), None)  # no rate: 25 fps, but at least one tick
    assert [coarse.pts(i, None) for i in range(3)] == [0, 1, 2]
    ntsc = choose_timing([0, 0], Fraction(1, 90000), Fraction(30000, 1001))
    assert [ntsc.pts(i, 0) for i in range(3)] == [0, 3003, 6006]


def with_subtitles(tmp: Path) -> Path:
    """A clip with AAC audio and a SubRip subtitle stream of two cues, in Matroska."""
    clip, srt, dst = make_clip_at(tmp / "clip.mkv", frames=12), tmp / "cues.srt", tmp / "in.mkv"
    srt.write_text("1\n00:00:00,000 --> 00:00:00,200\nHello\n\n2\n00:00:00,200 --> 00:00:00,400\nWorld\n")
    with av.open(str(clip)) as v, av.open(str(srt)) as s, av.open(str(dst), "w") as o:
        streams = {st.index: o.add_stream_from_template(st) for st in v.streams}
        cues = o.add_stream_from_template(s.streams.subtitles[0])
        for packet in v.demux():
            if packet.size:
                packet.stream = streams[packet.stream.index]
                o.mux(packet)
        for packet in s.demux():
            if packet.size:
                packet.stream = cues
                o.mux(packet)
    return dst


def _subtitles(path: Path) -> list[bytes]:
    with av.open(str(path)) as c:
        return [bytes(p) for p in c.demux(subtitles=0) if p.size] if c.streams.subtitles else []


@pytest.mark.parametrize("output", ["out.mkv", "out.mp4"])
def test_subtitles_are_copied_or_counted_where_the_container_cannot_hold_them(tmp_path: Path, fast_checkpoint: Path,
                                                                            output: str) -> None:
    src, dst = with_subtitles(tmp_path), tmp_path / output
    result = CliRunner().invoke(cli, [str(src), str(dst), "--model", str(fast_checkpoint), "--threads", "1"])
    assert result.exit_code == 0, result.output
    assert len(_subtitles(src)) == 2 and _audio(dst) == _audio(src)
    if output == "out.mkv":
        assert _subtitles(dst) == _subtitles(src) and "not written" not in result.output
    else:  # MP4 holds only its own text format: the stream cannot go in at all, and the summary says so
        assert _subtitles(dst) == [] and "2 of 2 subtitle packets not written: the mp4 muxer refused them " \
                                         "(mp4 cannot hold srt subtitle; the first at 0.000 s)" in result.output
