"""Hardware video I/O, the parts that run without an NVIDIA GPU: the NV12/P016 <-> RGB conversion
against FFmpeg's own (PyAV); ``pick_video_io``'s checks, fallbacks and errors with PyNvVideoCodec
absent (as here) or faked; and the plumbing around NVDEC/NVENC (Annex B packets, timestamps,
flushing, muxing, audio copy) with CPU stand-ins for the decoder and encoder. NVDEC and NVENC
themselves never run in these tests."""

from __future__ import annotations

import contextlib
import ctypes
import sys
import types

from fractions import Fraction

import av
import numpy as np
import pytest
import torch
from av.video.reformatter import Interpolation
from conftest import make_clip

from vdeblur.engine import nvcodec
from vdeblur.engine.video_io import DecodedFrame, VideoError, demux, open_input
from vdeblur.engine.yuv import ColourSpec, colour_spec_of, nv12_to_rgb, rgb_to_nv12

_SPACES = {"bt601": 5, "bt709": 1, "bt2020": 9}


def _test_image(photo: np.ndarray) -> np.ndarray:
    """96x128 RGB: a real photograph over saturated colour bars (where a wrong chroma scale shows)."""
    image = np.ascontiguousarray(photo[100:196, 150:278])
    bars = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [0, 255, 255], [255, 0, 255], [255, 255, 0],
                     [255, 255, 255], [0, 0, 0]], np.uint8)
    image[-32:] = bars.repeat(16, axis=0)[None]  # 8 bars of 16 pixels, on 2x2 chroma boundaries
    return image


def _encoded_frame(path, photo, matrix: str, full: bool, pix_fmt: str = "yuv420p") -> av.VideoFrame:
    """Encode a 2-frame clip tagged with ``matrix``/range, decode it back: a frame as a file gives it."""
    space, rng = _SPACES[matrix], 2 if full else 1
    rgb = _test_image(photo)
    with av.open(str(path), "w") as c:
        v = c.add_stream("libx264", rate=24)
        v.width, v.height, v.pix_fmt = 128, 96, pix_fmt
        v.codec_context.colorspace, v.codec_context.color_range = space, rng
        for i in range(2):
            f = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format=pix_fmt, dst_colorspace=space,
                                                                         dst_color_range=rng)
            f.pts = i
            c.mux(v.encode(f))
        c.mux(v.encode(None))
    with av.open(str(path)) as c:
        assert colour_spec_of(c.streams.video[0].codec_context) == colour_spec_of(frame := next(c.decode(video=0)))
        return frame


def _ffmpeg_rgb(frame: av.VideoFrame) -> np.ndarray:
    """FFmpeg's YUV -> RGB of ``frame`` with each chroma sample spread over its 2x2 pixels, as ours
    and NVIDIA's kernels do: the chroma is replicated here into a 4:4:4 frame, so swscale's own
    upsampling (which follows the chroma siting) does not enter, and ACCURATE_RND rounds."""
    h, w = frame.height, frame.width
    planar = frame.to_ndarray()  # (H * 3/2, W): Y, then U and V of (H/2, W/2) each
    u, v = (planar[h + i * h // 4:h + (i + 1) * h // 4].reshape(h // 2, w // 2).repeat(2, 0).repeat(2, 1)
            for i in (0, 1))
    full = av.VideoFrame(w, h, "yuv444p" if planar.dtype == np.uint8 else "yuv444p10le")
    for plane, samples in zip(full.planes, (planar[:h], u, v)):
        padded = np.zeros((h, plane.line_size // planar.itemsize), planar.dtype)
        padded[:, :w] = samples
        plane.update(padded.tobytes())
    full.colorspace, full.color_range = frame.colorspace, frame.color_range
    exact = Interpolation.POINT | Interpolation.ACCURATE_RND
    return full.reformat(format="rgb24", interpolation=exact, src_color_range=frame.color_range).to_ndarray()


def _as_uint8(rgb: torch.Tensor) -> np.ndarray:
    return (rgb * 255).round().to(torch.uint8).permute(1, 2, 0).numpy().astype(int)


@pytest.mark.parametrize("matrix", ["bt601", "bt709"])
@pytest.mark.parametrize("full", [False, True], ids=["limited", "full"])
def test_nv12_to_rgb_matches_ffmpeg(tmp_path, photo, matrix, full):
    frame = _encoded_frame(tmp_path / "c.mp4", photo, matrix, full)
    spec = colour_spec_of(frame)
    assert spec == ColourSpec(matrix, full, 8)  # taken from the stream's tags
    nv12 = frame.reformat(format="nv12").to_ndarray()  # (H * 3/2, W): NVDEC's surface layout
    ours = _as_uint8(nv12_to_rgb(torch.from_numpy(nv12), spec))
    assert np.abs(ours - _ffmpeg_rgb(frame)).max() <= 1
    # PyAV's default conversion (video_io's path) truncates where ours rounds: 1-2 levels darker.
    default = frame.to_ndarray(format="rgb24", src_color_range="JPEG" if full else "MPEG")
    assert np.abs(ours - default).max() <= 3 and np.abs(ours - default).mean() < 2


@pytest.mark.parametrize("matrix, full", [("bt2020", False), ("bt709", False), ("bt2020", True)])
def test_p016_to_rgb_matches_ffmpeg(tmp_path, photo, matrix, full):
    frame = _encoded_frame(tmp_path / "c.mp4", photo, matrix, full, pix_fmt="yuv420p10le")
    spec = colour_spec_of(frame)
    assert spec == ColourSpec(matrix, full, 10)
    p010 = frame.reformat(format="p010le")  # 10 bits in the high bits of 16: what NVDEC gives as "P016"
    h, w = p010.height, p010.width
    planes = [np.frombuffer(p010.planes[i], np.uint16).reshape(-1, p010.planes[i].line_size // 2)[:, :w]
              for i in (0, 1)]
    surface = torch.from_numpy(np.concatenate(planes))  # (H * 3/2, W) uint16
    assert surface.dtype == torch.uint16 and surface.shape == (h * 3 // 2, w)
    assert np.abs(_as_uint8(nv12_to_rgb(surface, spec)) - _ffmpeg_rgb(frame)).max() <= 1


@pytest.mark.parametrize("matrix, full", [("bt601", False), ("bt709", True)])
def test_rgb_to_nv12_matches_ffmpeg_and_round_trips(photo, matrix, full):
    rgb = _test_image(photo)
    spec = ColourSpec(matrix, full)
    ours = rgb_to_nv12(torch.from_numpy(rgb).permute(2, 0, 1).float() / 255, spec).numpy().astype(int)
    theirs = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(
        format="nv12", dst_colorspace=_SPACES[matrix], dst_color_range=2 if full else 1).to_ndarray()
    assert np.abs(ours[:96] - theirs[:96]).max() <= 1  # luma; chroma filters differ (box vs swscale's)
    # Constant 2x2 blocks lose nothing to chroma subsampling: back to RGB within rounding.
    blocks = np.ascontiguousarray(rgb[::2, ::2].repeat(2, 0).repeat(2, 1))
    there = rgb_to_nv12(torch.from_numpy(blocks).permute(2, 0, 1).float() / 255, spec)
    assert np.abs(_as_uint8(nv12_to_rgb(there, spec)) - blocks).max() <= 2


def test_conversion_refuses_what_it_cannot_convert():
    with pytest.raises(ValueError, match="allowed: bt601, bt709, bt2020"):
        ColourSpec("smpte240m")
    frame = av.VideoFrame(4, 4, "yuv420p")
    frame.colorspace = 7  # SMPTE 240M: a matrix this converter does not have; the pipeline stays on PyAV
    with pytest.raises(ValueError, match=r"colour matrix 7 .* is not supported"):
        colour_spec_of(frame)
    with pytest.raises(ValueError, match=r"\(H \* 3/2, W\) with even H and W"):
        nv12_to_rgb(torch.zeros(5, 4, dtype=torch.uint8), ColourSpec())
    with pytest.raises(ValueError, match="even width and height"):
        rgb_to_nv12(torch.zeros(3, 3, 4), ColourSpec())


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("nvc") / "in.mp4"
    make_clip(path, width=64, height=48, frames=2, audio=False)
    return path


def _fake_nvc(monkeypatch, *, decodes: bool = True, nvenc: bool = True, cuda: bool = True) -> None:
    """PyNvVideoCodec as its bindings look (enums, GetDecoderCaps, GetEncoderCaps), on a GPU with or
    without NVDEC support for the clip and with or without NVENC (an H100 has none)."""
    def encoder_caps(gpuid: int = 0, codec: str = "h264") -> dict[str, int]:
        if not nvenc:
            raise RuntimeError("NVENC library file is not found. Please ensure NV driver is installed")
        return {"num_encoder_engines": 1, "width_max": 8192, "height_max": 8192}

    fake = types.ModuleType("PyNvVideoCodec")
    fake.cudaVideoCodec = types.SimpleNamespace(**{v: v for v in nvcodec._NV_CODECS.values()})
    fake.cudaVideoChromaFormat = types.SimpleNamespace(**{"420": "420"})
    fake.GetDecoderCaps = lambda **kw: {"supported": int(decodes), "width_min": 48, "height_min": 16,
                                        "width_max": 8192, "height_max": 8192}
    fake.GetEncoderCaps = encoder_caps
    monkeypatch.setitem(sys.modules, "PyNvVideoCodec", fake)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)


def test_without_the_package_auto_falls_back_in_one_line(clip):
    lines: list[str] = []
    choice = nvcodec.pick_video_io(clip, "auto", say=lines.append)
    assert (choice.decode, choice.encode) == ("pyav", "pyav")
    [line] = lines
    assert "PyNvVideoCodec is not installed" in line and "pip install 'vdeblur[nvcodec]'" in line


def test_without_the_package_asking_for_it_is_a_one_line_error(clip):
    with pytest.raises(nvcodec.NvcodecUnavailable) as e:
        nvcodec.pick_video_io(clip, "nvcodec", say=pytest.fail)
    assert "\n" not in str(e.value) and "pip install 'vdeblur[nvcodec]'" in str(e.value)


def test_package_without_cuda(clip, monkeypatch):
    _fake_nvc(monkeypatch, cuda=False)
    lines: list[str] = []
    assert nvcodec.pick_video_io(clip, "auto", say=lines.append).decode == "pyav"
    assert len(lines) == 1 and "no CUDA GPU" in lines[0]
    with pytest.raises(nvcodec.NvcodecUnavailable, match="no CUDA GPU"):
        nvcodec.pick_video_io(clip, "nvcodec", say=pytest.fail)


def test_model_on_the_cpu_keeps_pyav(clip, monkeypatch):
    _fake_nvc(monkeypatch)
    lines: list[str] = []
    assert nvcodec.pick_video_io(clip, device="cpu", say=lines.append).decode == "pyav"
    assert "the model runs on cpu" in lines[0]


def test_codec_this_gpu_cannot_decode(clip, tmp_path, monkeypatch):
    _fake_nvc(monkeypatch, decodes=False)
    lines: list[str] = []
    assert nvcodec.pick_video_io(clip, say=lines.append) == nvcodec.VideoIOChoice(
        "pyav", "pyav", "this GPU's NVDEC cannot decode h264 4:2:0 8-bit")
    make_clip(tmp_path / "lossless.mkv", width=64, height=48, frames=1, audio=False, codec="ffv1")
    with pytest.raises(nvcodec.NvcodecUnavailable, match="NVDEC path decodes h264, hevc, vp9, vp8, mpeg2video, not ffv1"):
        nvcodec.pick_video_io(tmp_path / "lossless.mkv", "nvcodec")


def test_gpu_without_nvenc_decodes_on_nvdec_and_encodes_on_pyav(clip, monkeypatch):
    _fake_nvc(monkeypatch, nvenc=False)
    for prefer in ("auto", "nvcodec"):  # no NVENC is normal (H100, A100): not an error even when asked
        lines: list[str] = []
        choice = nvcodec.pick_video_io(clip, prefer, say=lines.append)
        assert (choice.decode, choice.encode) == ("nvdec", "pyav")
        assert len(lines) == 1 and "no usable NVENC" in lines[0]


def test_everything_present(clip, monkeypatch):
    _fake_nvc(monkeypatch)
    assert nvcodec.pick_video_io(clip, "nvcodec", say=pytest.fail) == nvcodec.VideoIOChoice("nvdec", "nvenc")
    lines: list[str] = []
    choice = nvcodec.pick_video_io(clip, codec="ffv1", say=lines.append)  # NVENC writes H.264/HEVC only
    assert (choice.decode, choice.encode) == ("nvdec", "pyav") and "not ffv1" in lines[0]


def test_checks_come_before_any_output(clip, tmp_path, monkeypatch):
    _fake_nvc(monkeypatch)
    with pytest.raises(VideoError, match="does not exist"):  # a bad input is reported, not "no NVDEC"
        nvcodec.pick_video_io(tmp_path / "missing.mp4", "nvcodec")
    with pytest.raises(ValueError, match="allowed: auto, nvcodec, pyav"):
        nvcodec.pick_video_io(clip, "cuda")
    assert nvcodec.pick_video_io(clip, "pyav", say=pytest.fail).decode == "pyav"
    assert list(tmp_path.iterdir()) == []


class _CpuDecoder:
    """NVDEC's Decode contract, done by FFmpeg on the CPU: reads the bytes at ``bsl_data``, hands back
    frames (display order, the packet's pts as ``timestamp``) exposing an NV12 surface by DLPack."""

    def __init__(self) -> None:
        self.ctx = av.CodecContext.create("h264", "r")
        self.payloads: list[bytes] = []

    def Decode(self, data):
        payload = ctypes.string_at(data.bsl_data, data.bsl) if data.bsl else None
        if payload is not None:
            self.payloads.append(payload)
        packet = av.Packet(payload) if payload is not None else None
        if packet is not None:
            packet.pts = data.pts
        return [_Surface(f.pts, torch.from_numpy(f.reformat(format="nv12").to_ndarray())) for f in self.ctx.decode(packet)]


class _Surface:
    """A decoded frame as PyNvVideoCodec returns it: ``timestamp`` and the surface by DLPack."""

    def __init__(self, timestamp: int, surface: torch.Tensor) -> None:
        self.timestamp, self.tensor = timestamp, surface

    def __dlpack__(self, **kwargs):
        return self.tensor.__dlpack__(**kwargs)

    def __dlpack_device__(self):
        return self.tensor.__dlpack_device__()


class _CpuEncoder:
    """NVENC's Encode contract, done by libx264 on the CPU without B-frames: takes the object
    NvencWriter passes (``cuda()`` then DLPack), returns [{'data', 'timestamp', 'picture_type'}]."""

    def __init__(self, width: int, height: int) -> None:
        self.ctx = av.CodecContext.create("libx264", "w")
        self.ctx.width, self.ctx.height, self.ctx.pix_fmt = width, height, "yuv420p"
        self.ctx.time_base = Fraction(1, 24)
        self.ctx.options = {"bframes": "0", "preset": "ultrafast"}
        self.index = 0

    def GetNumBFrames(self):
        return 0

    def Encode(self, frame, params):
        nv12 = torch.from_dlpack(frame.cuda()).numpy()  # what PyNvVideoCodec reads, by the same protocol
        assert params.inputTimeStamp == self.index
        picture = av.VideoFrame.from_ndarray(nv12, format="nv12").reformat(format="yuv420p")
        picture.pts, self.index = self.index, self.index + 1
        return self._packets(self.ctx.encode(picture))

    def EndEncode(self):
        return self._packets(self.ctx.encode(None))

    @staticmethod
    def _packets(packets):
        return [{"data": bytes(p), "timestamp": p.pts, "picture_type": 0} for p in packets]


@pytest.fixture()
def cpu_nvc(monkeypatch):
    """PyNvVideoCodec with FFmpeg doing NVDEC's and NVENC's work, and CUDA streams as no-ops."""
    fake = types.ModuleType("PyNvVideoCodec")
    fake.cudaVideoCodec = types.SimpleNamespace(H264="H264")
    fake.PacketData = lambda: types.SimpleNamespace(bsl_data=0, bsl=0, pts=0)
    fake.NV_ENC_PIC_PARAMS = lambda: types.SimpleNamespace(inputTimeStamp=None)
    decoders: list[_CpuDecoder] = []
    fake.CreateDecoder = lambda **kwargs: decoders.append(_CpuDecoder()) or decoders[-1]
    fake.CreateEncoder = lambda width, height, fmt, cpu, **kwargs: _CpuEncoder(width, height)
    monkeypatch.setitem(sys.modules, "PyNvVideoCodec", fake)
    monkeypatch.setattr(torch.cuda, "Stream", lambda device=None: types.SimpleNamespace(synchronize=lambda: None))
    monkeypatch.setattr(torch.cuda, "stream", lambda stream: contextlib.nullcontext())
    return decoders


def test_nvdec_plumbing_against_pyav(tmp_path, cpu_nvc):
    """nvdec_demux with a CPU stand-in for NVDEC gives what video_io.demux gives: the same frames
    (within the two conversions' rounding), the same timestamps, the same audio packets."""
    src = tmp_path / "vfr.mp4"
    make_clip(src, width=64, height=48, frames=9, vfr=True, audio=True)
    with open_input(src) as c:
        expected = list(demux(c, src))
    with open_input(src) as c:
        got = list(nvcodec.nvdec_demux(c, src))
    [decoder] = cpu_nvc
    assert all(p.startswith(b"\0\0\0\1") or p.startswith(b"\0\0\1") for p in decoder.payloads)  # Annex B
    frames = [x for x in got if isinstance(x, nvcodec.CudaFrame)]
    reference = [x for x in expected if isinstance(x, DecodedFrame)]
    assert [f.pts for f in frames] == [f.pts for f in reference] and [f.index for f in frames] == list(range(9))
    for ours, theirs in zip(frames, reference):
        assert ours.rgb.shape == (3, 48, 64) and ours.time_base == theirs.time_base
        assert np.abs(_as_uint8(ours.rgb) - theirs.rgb.astype(int)).max() <= 3
    assert len(got) - len(frames) == len(expected) - len(reference) > 0  # audio packets passed through


def test_nvenc_plumbing_muxes_timestamps_and_audio(tmp_path, cpu_nvc):
    """NvencWriter with a CPU stand-in for NVENC: every frame lands with its source pts (VFR kept),
    the audio is copied, and the elementary stream beside the output is gone."""
    src, out = tmp_path / "vfr.mp4", tmp_path / "out.mp4"
    make_clip(src, width=64, height=48, frames=9, vfr=True, audio=True)
    with open_input(src) as c:
        items = list(demux(c, src))
    frames = [x for x in items if isinstance(x, DecodedFrame)]
    with nvcodec.NvencWriter(out, src, codec="libx264") as writer:
        for f in frames:
            writer.write_frame(torch.from_numpy(f.rgb).permute(2, 0, 1).float() / 255, f.pts, f.time_base)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4", "vfr.mp4"]
    with av.open(str(out)) as c:
        decoded = list(c.decode(video=0))
        assert [float(f.pts * f.time_base) for f in decoded] == [float(f.pts * f.time_base) for f in frames]
        assert len(c.streams.audio) == 1
    with av.open(str(out)) as c, av.open(str(src)) as s:
        assert sum(1 for p in c.demux(audio=0) if p.size) == sum(1 for p in s.demux(audio=0) if p.size)


def _real_nvdec_problem() -> str:
    """Why the real NVDEC cannot run here ("" where it can): a CUDA GPU and PyNvVideoCodec."""
    if not torch.cuda.is_available():
        return "needs a CUDA GPU"
    try:
        nvcodec.import_nvc()
    except nvcodec.NvcodecUnavailable as e:
        return str(e)
    return ""


_NVDEC_PROBLEM = _real_nvdec_problem()


@pytest.mark.cuda
@pytest.mark.skipif(bool(_NVDEC_PROBLEM), reason=f"real NVDEC: {_NVDEC_PROBLEM}")
@pytest.mark.parametrize("matrix, full", [("bt709", False), ("bt601", True)], ids=["bt709-limited", "bt601-full"])
def test_real_nvdec_and_gpu_conversion_match_ffmpeg(tmp_path, photo, matrix, full):
    """NEVER RUN YET (no GPU so far). H.264 decoding is bit-exact, so NVDEC's NV12 surface holds
    FFmpeg's samples; the GPU conversion of it must be within one level of FFmpeg's own RGB."""
    src = tmp_path / "c.mp4"
    _encoded_frame(src, photo, matrix, full)
    with av.open(str(src)) as c:
        reference = list(c.decode(video=0))
        want = [_ffmpeg_rgb(f) for f in reference]
    assert nvcodec.pick_video_io(src, "nvcodec", codec="ffv1", say=lambda _: None).decode == "nvdec"
    with open_input(src) as c:
        got = [x for x in nvcodec.nvdec_demux(c, src) if isinstance(x, nvcodec.CudaFrame)]
    assert [f.pts for f in got] == [f.pts for f in reference] and len(got) == 2
    for ours, theirs in zip(got, want):
        assert ours.rgb.is_cuda and ours.rgb.shape == (3, 96, 128)
        assert np.abs(_as_uint8(ours.rgb.cpu()) - theirs).max() <= 1


@pytest.mark.cuda
@pytest.mark.skipif(bool(_NVDEC_PROBLEM), reason=f"real NVDEC: {_NVDEC_PROBLEM}")
def test_real_nvdec_pipeline_matches_pyav_decoding(tmp_path, fast_checkpoint):
    """NEVER RUN YET. The engine with NVDEC decoding against the same run decoding on PyAV: same
    timestamps (VFR), audio kept, worst frame > 45 dB (PyAV's RGB conversion truncates, ours rounds)."""
    from vdeblur.engine.backends import load_backend
    from vdeblur.engine.pipeline import deblur_video

    src = tmp_path / "vfr.mp4"
    make_clip(src, width=128, height=96, frames=9, vfr=True, audio=True)
    backend = load_backend(str(fast_checkpoint), "torch", "cuda")
    outputs = {}
    for video_io in ("pyav", "nvcodec"):
        deblur_video(src, tmp_path / f"{video_io}.mp4", backend, video_io=video_io, log=lambda _: None)
        with av.open(str(tmp_path / f"{video_io}.mp4")) as c:
            frames = list(c.decode(video=0))
            outputs[video_io] = ([f.to_ndarray(format="rgb24") for f in frames],
                                 [float(f.pts * f.time_base) for f in frames], len(c.streams.audio))
    (want, want_times, want_audio), (got, got_times, got_audio) = outputs["pyav"], outputs["nvcodec"]
    assert got_times == want_times and got_audio == want_audio == 1
    for ours, theirs in zip(got, want, strict=True):
        mse = np.mean((ours.astype(float) - theirs.astype(float)) ** 2)
        assert 10 * np.log10(255**2 / max(mse, 1e-12)) > 45
