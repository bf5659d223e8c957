"""NVIDIA hardware video I/O through PyNvVideoCodec (``pip install 'vdeblur[nvcodec]'``): NVDEC
decodes into CUDA memory and frames reach the model as CUDA tensors (DLPack, no host copy); NVENC
encodes from CUDA memory on GPUs that have it (H100 and A100 have none: there PyAV encodes).

NOT RUN: the NVDEC and NVENC paths were written from NVIDIA's PyNvVideoCodec documentation, its
published 2.0 sources and the samples and binding names of the 2.2.4 wheel, on machines without
an NVIDIA GPU, and have never been executed. What the tests run: the colour conversion they rely
on (``engine/yuv.py``, against FFmpeg's) and ``pick_video_io``'s checks and fallbacks.

``pick_video_io`` makes every check before any output is opened: package importable, CUDA GPU
present, codec / 4:2:0 / bit depth / size supported by this GPU's NVDEC, NVENC present for the
output codec. It falls back to PyAV with the reason in one line or, when nvcodec was asked for
explicitly, raises one line naming what is missing, so nothing fails in the middle of a file.

Design:
- Demuxing stays with PyAV, as in ``video_io.demux``: exact source timestamps (PyNvVideoCodec's
  demuxer rounds them to milliseconds) and the other streams' packets in demux order. Only video
  packets go to NVDEC, in Annex B form from FFmpeg's own bitstream filter.
- NVENC writes an elementary stream; ``NvencWriter`` disables B-frames so packets leave in
  presentation order, then muxes them with the source timestamps and copies the other streams.
"""

from __future__ import annotations

import heapq
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import torch

from .video_io import SourceInfo, VideoError, _format_for, open_input, source_info
from .yuv import ColourSpec, colour_spec_of, nv12_to_rgb, rgb_to_nv12

INSTALL_HINT = "pip install 'vdeblur[nvcodec]'"
PREFERENCES = ("auto", "nvcodec", "pyav")
# Codecs whose container packets NVDEC takes as they are (H.264/HEVC after the Annex B filter). AV1,
# MPEG-4 part 2 and VC-1 need their extradata spliced into the stream, as NVIDIA's own demuxer does:
# they stay on PyAV rather than risk a decoder that sees no sequence header.
_NV_CODECS = {"h264": "H264", "hevc": "HEVC", "vp9": "VP9", "vp8": "VP8", "mpeg2video": "MPEG2"}
_ANNEX_B = {"h264": "h264_mp4toannexb", "hevc": "hevc_mp4toannexb"}  # NVDEC parses start codes, not MP4's lengths
_YUV420 = {"yuv420p", "yuvj420p", "nv12", "yuv420p10le", "p010le", "yuv420p12le"}
_NVENC_CODECS = {"libx264": "h264", "h264": "h264", "libx265": "hevc", "hevc": "hevc"}
_NVENC_PRESETS = {"ultrafast": "P1", "superfast": "P1", "veryfast": "P2", "faster": "P3", "fast": "P3",
                  "medium": "P4", "slow": "P5", "slower": "P6", "veryslow": "P7", "placebo": "P7"}


class NvcodecUnavailable(RuntimeError):
    """nvcodec was asked for but cannot run here; the message says what is missing."""


@dataclass(frozen=True)
class VideoIOChoice:
    decode: str  # "nvdec" or "pyav"
    encode: str  # "nvenc" or "pyav"
    reason: str = ""  # why something runs on PyAV; "" when nothing fell back


@dataclass(frozen=True)
class CudaFrame:
    rgb: torch.Tensor  # (3, H, W) float32 in [0, 1] on the GPU: what DeblurStream.push takes
    pts: int | None
    time_base: Fraction
    index: int


def pick_video_io(src: str | Path, prefer: str = "auto", *, codec: str = "libx264", device: str = "cuda:0",
                  say: Callable[[str], None] | None = None) -> VideoIOChoice:
    """Decide where ``src`` is decoded and its output encoded, before anything is opened.

    ``codec`` is the output encoder asked for (EncodeOptions.codec), ``device`` the backend's.
    """
    if prefer not in PREFERENCES:
        raise ValueError(f"video I/O {prefer!r} is not supported; allowed: {', '.join(PREFERENCES)}")
    say = say or _stderr_line
    if prefer == "pyav":
        return VideoIOChoice("pyav", "pyav", "asked for pyav")
    gpu = torch.device(device).index or 0
    problem = _environment_problem(str(device))
    if not problem:
        info, spec = _probe(Path(src))
        problem = spec if isinstance(spec, str) else _nvdec_problem(info, spec, gpu)
    if problem:
        if prefer == "nvcodec":
            raise NvcodecUnavailable(f"nvcodec video I/O cannot run: {problem}")
        say(f"vdeblur: decoding and encoding on PyAV: {problem}")
        return VideoIOChoice("pyav", "pyav", problem)
    assert isinstance(spec, ColourSpec)
    problem = _nvenc_problem(info, spec, codec, gpu)
    if problem:  # not an error even when asked for: an H100 decodes on NVDEC but has no NVENC
        say(f"vdeblur: decoding on NVDEC, encoding on PyAV: {problem}")
        return VideoIOChoice("nvdec", "pyav", problem)
    return VideoIOChoice("nvdec", "nvenc")


def import_nvc() -> Any:
    try:
        import PyNvVideoCodec as nvc
    except ImportError:
        raise NvcodecUnavailable(f"PyNvVideoCodec is not installed ({INSTALL_HINT})") from None
    except Exception as e:  # its __init__ checks the driver's NVENC version and raises if it cannot
        raise NvcodecUnavailable(f"PyNvVideoCodec is installed but did not load ({_first_line(e)}); "
                                 f"it needs an NVIDIA driver") from None
    return nvc


def _probe(src: Path) -> tuple[SourceInfo, ColourSpec | str]:
    """The source's stream facts, and its colour or why it has none we can convert."""
    with open_input(src) as container:  # a bad input is the user's error on any path: raised
        try:
            return source_info(container), colour_spec_of(container.streams.video[0].codec_context)
        except ValueError as e:
            return source_info(container), str(e)


def _environment_problem(device: str) -> str:
    try:
        import_nvc()
    except NvcodecUnavailable as e:
        return str(e)
    if not torch.cuda.is_available():
        return "torch sees no CUDA GPU (needs an NVIDIA GPU, its driver and a CUDA build of torch)"
    if not device.startswith("cuda"):
        return f"the model runs on {device}: frames decoded into GPU memory would only be copied back"
    return ""


def _nvdec_problem(info: SourceInfo, spec: ColourSpec, gpu: int) -> str:
    nvc = import_nvc()
    if info.codec not in _NV_CODECS:
        return f"this NVDEC path decodes {', '.join(_NV_CODECS)}, not {info.codec}"
    if info.pix_fmt not in _YUV420 or info.width % 2 or info.height % 2:
        return f"this NVDEC path takes 4:2:0 frames of even size, not {info.pix_fmt} {info.width}x{info.height}"
    try:
        caps = nvc.GetDecoderCaps(gpuid=gpu, codec=getattr(nvc.cudaVideoCodec, _NV_CODECS[info.codec]),
                                  chromaformat=getattr(nvc.cudaVideoChromaFormat, "420"), bitdepth=spec.bit_depth)
    except Exception as e:  # the driver's libnvcuvid missing, a bad GPU index: all mean "no NVDEC here"
        return f"NVDEC is not usable ({_first_line(e)})"
    if not caps.get("supported"):
        return f"this GPU's NVDEC cannot decode {info.codec} 4:2:0 {spec.bit_depth}-bit"
    if not (caps.get("width_min", 0) <= info.width <= caps.get("width_max", 1 << 30)
            and caps.get("height_min", 0) <= info.height <= caps.get("height_max", 1 << 30)):
        return (f"{info.width}x{info.height} is outside this GPU's NVDEC range "
                f"({caps.get('width_min')}x{caps.get('height_min')} to {caps.get('width_max')}x{caps.get('height_max')})")
    return ""


def _nvenc_problem(info: SourceInfo, spec: ColourSpec, codec: str, gpu: int) -> str:
    nvc = import_nvc()
    if codec not in _NVENC_CODECS:
        return f"NVENC writes H.264 or HEVC here, not {codec} (use --codec libx264 or libx265)"
    if spec.bit_depth != 8 or spec.full_range or spec.matrix == "bt2020":
        kind = f"{spec.bit_depth}-bit {'full' if spec.full_range else 'limited'}-range {spec.matrix.upper()}"
        return f"this NVENC path writes 8-bit limited-range BT.601/709; the source is {kind}"
    try:
        caps = nvc.GetEncoderCaps(gpuid=gpu, codec=_NVENC_CODECS[codec])
    except Exception as e:  # no libnvidia-encode, or no encoder engine: what an H100 reports
        return f"this GPU has no usable NVENC ({_first_line(e)})"
    if not caps or not caps.get("num_encoder_engines", 1):
        return "this GPU has no NVENC"
    if info.width > caps.get("width_max", 1 << 30) or info.height > caps.get("height_max", 1 << 30):
        return f"{info.width}x{info.height} is larger than this GPU's NVENC allows"
    return ""


def nvdec_demux(container: av.container.InputContainer, path: str | Path, gpu: int = 0) -> Iterator[CudaFrame | av.Packet]:
    """``video_io.demux`` with NVDEC: decoded frames are RGB CUDA tensors, other packets pass through."""
    nvc = import_nvc()
    video = container.streams.video[0]
    spec, name = colour_spec_of(video.codec_context), video.codec_context.name
    stream = torch.cuda.Stream(device=gpu)  # the conversion's own, so waiting for it never waits for inference
    decoder = nvc.CreateDecoder(gpuid=gpu, codec=getattr(nvc.cudaVideoCodec, _NV_CODECS[name]), cudacontext=0,
                                cudastream=0, usedevicememory=True)
    annex_b = av.bitstream.BitStreamFilterContext(_ANNEX_B[name], video) if name in _ANNEX_B else None
    shape = (video.codec_context.height * 3 // 2, video.codec_context.width)
    index = 0
    try:
        for packet in container.demux():
            if packet.stream.index != video.index:
                if packet.dts is not None and packet.size:
                    yield packet
                continue
            # A size-0 packet marks the end: it flushes the bitstream filter; NVDEC is flushed below.
            pieces = annex_b.filter(packet if packet.size else None) if annex_b else [packet] if packet.size else []
            for piece in pieces:
                for surface in _decode(nvc, decoder, piece, piece.pts):
                    yield _to_frame(surface, spec, shape, stream, video.time_base, index, path)
                    index += 1
        for surface in _decode(nvc, decoder, None, None):  # an empty packet flushes NVDEC's reorder queue
            yield _to_frame(surface, spec, shape, stream, video.time_base, index, path)
            index += 1
    except av.error.FFmpegError as e:
        raise VideoError(f"input {path} could not be demuxed after {index} frames ({e.strerror or e})") from None
    if index == 0:
        raise VideoError(f"input {path} has a video stream but NVDEC decoded no frame")


def _decode(nvc: Any, decoder: Any, packet: av.Packet | None, pts: int | None) -> list[Any]:
    data = nvc.PacketData()
    payload = np.frombuffer(packet, np.uint8) if packet is not None and packet.size else None
    if payload is not None:  # NVDEC reads the bytes during Decode; ``payload`` keeps them alive until then
        data.bsl_data, data.bsl = payload.ctypes.data, payload.size
    data.pts = pts if pts is not None else 0  # returned on the frame it belongs to, after reordering
    return decoder.Decode(data)


def _to_frame(surface: Any, spec: ColourSpec, shape: tuple[int, int], stream: torch.cuda.Stream,
              time_base: Fraction, index: int, path: str | Path) -> CudaFrame:
    with torch.cuda.stream(stream):
        # (H * 3/2, W) uint8 NV12, or uint16 P016 for 10/12-bit; DLPack makes ``stream`` wait for NVDEC.
        nv12 = torch.from_dlpack(surface)
        if tuple(nv12.shape) != shape:
            raise VideoError(f"input {path}: NVDEC returned a {tuple(nv12.shape)} surface, expected {shape}")
        rgb = nv12_to_rgb(nv12, spec)
    # NVDEC reuses the surface on a later Decode: the RGB copy must be finished before then, and
    # finished before another thread (inference) reads it without knowing this stream.
    stream.synchronize()
    return CudaFrame(rgb, surface.timestamp, time_base, index)


class NvencWriter:
    """``video_io.VideoWriter``'s calls with NVENC: ``write_frame`` takes the (3, H, W) float CUDA
    tensor that ``DeblurStream.push`` returns. Encoded packets go to an elementary stream beside
    ``path``; ``close`` muxes them with the source timestamps and copies the source's audio and
    subtitles from ``src`` in the same pass (so ``copy_packet`` has nothing to do)."""

    def __init__(self, path: str | Path, src: str | Path, *, codec: str = "libx264", crf: int | None = 18,
                 preset: str | None = "medium", format_from: str | Path | None = None, rotation: int = 0,
                 gpu: int = 0) -> None:
        self.nvc = import_nvc()
        self.path, self.src, self.rotation = Path(path), Path(src), rotation
        self.format = _format_for(Path(format_from or self.path))
        self.codec = _NVENC_CODECS[codec]
        with open_input(self.src) as container:
            info, self.spec = source_info(container), colour_spec_of(container.streams.video[0].codec_context)
        self.pts: list[int] = []  # source pts of frame i (the index NVENC hands back as 'timestamp')
        self.written = 0  # packets written to the elementary stream
        self.time_base: Fraction | None = None
        self.encoder = self.nvc.CreateEncoder(
            info.width, info.height, "NV12", False, codec=self.codec, gpu_id=gpu,
            preset=_NVENC_PRESETS.get(preset or "medium", "P4"), tuning_info="high_quality",
            rc="vbr", cq=crf if crf is not None else 23,  # NVENC's constant-quality scale, close to x264's CRF
            bf=0, fps=float(info.rate or 30), colorspace=self.spec.matrix)
        if self.encoder.GetNumBFrames():  # the elementary stream keeps no timestamps: order must be enough
            raise VideoError(f"NVENC kept {self.encoder.GetNumBFrames()} B-frames although asked for none")
        self.elementary = self.path.with_name(f".{self.path.name}.{self.codec}")
        self.out = open(self.elementary, "wb")

    def write_frame(self, rgb: torch.Tensor, pts: int | None, time_base: Fraction) -> None:
        if pts is None:
            raise VideoError(f"input {self.src}: a frame without a timestamp cannot be muxed by the NVENC path")
        params = self.nvc.NV_ENC_PIC_PARAMS()
        params.inputTimeStamp = len(self.pts)
        self.pts.append(pts)
        self.time_base = time_base
        # Encode copies the surface on NVENC's stream; the DLPack handshake (__dlpack__(stream=its
        # stream)) makes that stream wait for rgb_to_nv12's kernels.
        self._write(self.encoder.Encode(_DLPackNV12(rgb_to_nv12(rgb, self.spec)), params))

    def _write(self, packets: list[dict[str, Any]]) -> None:
        """Append NVENC's packets ({'data', 'timestamp', 'picture_type'}) to the elementary stream."""
        for packet in packets:
            if packet["timestamp"] != self.written:  # _timed() relies on packet i being frame i
                raise VideoError(f"NVENC returned frame {packet['timestamp']} where frame {self.written} was due")
            self.out.write(bytes(packet["data"]))
            self.written += 1

    def copy_packet(self, packet: av.Packet) -> None:
        """Nothing: ``close`` copies the other streams from the source, interleaved with the video."""

    def close(self) -> None:
        try:
            self._write(self.encoder.EndEncode())  # flush: NVENC holds frames in its queue
            self.out.close()
            self._mux()
        finally:
            self.out.close()
            self.elementary.unlink(missing_ok=True)

    def _mux(self) -> None:
        with av.open(str(self.elementary), format=self.codec) as es, av.open(str(self.src)) as source, \
                av.open(str(self.path), mode="w", format=self.format) as out:
            video = out.add_stream_from_template(es.streams.video[0])
            video.time_base = self.time_base
            copies = {}
            for s in source.streams:
                if s.type in ("audio", "subtitle"):
                    copies[s.index] = out.add_stream_from_template(s)
                    copies[s.index].time_base = s.time_base  # PyAV #1953: not copied by the template
            if self.rotation:
                video.set_display_rotation(self.rotation)  # before the first packet writes the header
            frames = ((float(p.dts * p.time_base), 0, p) for p in self._timed(es.demux(), video))
            others = ((float(p.dts * p.time_base), 1, p) for p in source.demux(*[source.streams[i] for i in copies])
                      if p.dts is not None and p.size)
            muxed = 0
            for _, is_copy, packet in heapq.merge(frames, others, key=lambda item: item[:2]):
                if is_copy:
                    packet.stream = copies[packet.stream.index]
                muxed += not is_copy
                out.mux(packet)
        if muxed != len(self.pts):
            raise VideoError(f"NVENC wrote {muxed} video packets for {len(self.pts)} frames of {self.src}")

    def _timed(self, packets: Iterator[av.Packet], stream: av.stream.Stream) -> Iterator[av.Packet]:
        """The elementary stream has no timestamps; without B-frames packet i is frame i."""
        for i, packet in enumerate(p for p in packets if p.size):
            if i >= len(self.pts):
                raise VideoError(f"NVENC wrote more video packets than the {len(self.pts)} frames of {self.src}")
            packet.stream = stream
            packet.pts = packet.dts = self.pts[i]
            packet.time_base = self.time_base
            yield packet

    def __enter__(self) -> NvencWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self.close()
        else:
            self.out.close()
            self.elementary.unlink(missing_ok=True)


class _DLPackNV12:
    """What ``Encoder.Encode`` takes: an object with ``cuda()`` whose result has ``__dlpack__``.
    A torch tensor has both, but PyNvVideoCodec 2.0's sources pass the stream positionally, and
    torch's ``__dlpack__`` takes it by keyword only."""

    def __init__(self, nv12: torch.Tensor) -> None:
        self.nv12 = nv12  # (H * 3/2, W) uint8, contiguous: NVENC assumes the U/V plane follows Y

    def cuda(self) -> _DLPackNV12:
        return self

    def __dlpack__(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("stream", args[0] if args else None)
        return self.nv12.__dlpack__(**kwargs)

    def __dlpack_device__(self) -> tuple[int, int]:
        return self.nv12.__dlpack_device__()


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


def _stderr_line(text: str) -> None:
    print(text, file=sys.stderr)
