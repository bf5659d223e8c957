"""Where a frame's time goes in the full pipeline: decode, motion, host->device, inference, device->host, encode.

A short test video (a synthesised shaken clip, encoded once with the engine's writer) is run twice:

1. *Stages one after another*: the engine's decoder, then the copy to the device, one stream step
   (edge channel, padding, model, crop), the copy back and the engine's encoder, each timed on its
   own (CUDA synchronised before every clock read). Each stage's total over the video divided by
   the frame count is reported (a mean, not a median: x264 buffers frames and encodes them in
   bursts and at the final flush, so per-frame encode times are meaningless one by one).
   ``motion`` is the global motion estimate between consecutive decoded frames, on the host, for a
   model that takes its previous frame aligned (input kind ``rgb+motion``; 0 for the others): the
   engine runs it in its decode thread and hands it to the stream step, as this pass does.
2. *End to end*: the engine's ``deblur_video`` on the same file, wall time per frame, whatever
   overlap of stages its threads achieve, and the time its own inference stage took in that run.

The ratio end-to-end / inference compares the two figures of the second run, so both saw the same
machine load and the ratio cannot fall below 1 (the inference stage runs inside the wall time):
near 1 means decode/encode hide behind inference; well above 1 means I/O, not the network, is the
limit. The first pass's inference figure comes from another moment; on a shared machine it can
differ from the second run's by more than the pipeline's cost, which is why it is not the divisor.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np
import torch

from vdeblur.engine.backends.base import Backend
from vdeblur.engine.options import EncodeOptions
from vdeblur.engine.pipeline import deblur_video, with_motion
from vdeblur.engine.stream import DeblurStream
from vdeblur.engine.video_io import VideoWriter, demux, open_input, source_info
from vdeblur.train.archs.base import DeblurModel
from vdeblur.train.frames import to_uint8

from .latency import BackendUnavailable, open_backend
from .quality import HELD_OUT_SEED
from .settings import StagesConfig

STAGES = ("decode", "motion", "host_to_device", "inference", "device_to_host", "encode")


@dataclass(frozen=True)
class StageResult:
    model: str
    backend: str
    width: int
    height: int
    frames: int
    stage_ms: dict[str, float]  # mean per frame of each of STAGES, the stages run one after another
    end_to_end_ms: float  # deblur_video wall time / frames
    pipeline_inference_ms: float  # deblur_video's inference stage / frames, in that same run
    ratio: float  # end_to_end_ms / pipeline_inference_ms: >= 1


def make_test_video(path: Path, width: int, height: int, frames: int) -> Path:
    """A shaken clip of a bundled photo, encoded once (libx264, CRF 18): the engine's defaults."""
    from vdeblur.train.synth import render_shake_clip
    from vdeblur.train.synth.sources import skimage_photos

    photo = skimage_photos().read(0)
    if photo.shape[0] < height or photo.shape[1] < width:  # the photos are ~512 px; 720p/1080p need upscaling
        scale = max(height / photo.shape[0], width / photo.shape[1])
        photo = cv2.resize(photo, (round(photo.shape[1] * scale) + 1, round(photo.shape[0] * scale) + 1),
                           interpolation=cv2.INTER_CUBIC)
    blurred, _ = render_shake_clip(photo, frames=frames, height=height, width=width, seed=HELD_OUT_SEED)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=30, options={"crf": "18"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for rgb in blurred:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        container.mux(stream.encode(None))
    return path


def measure_stages(model: DeblurModel, backend: str, width: int, height: int, config: StagesConfig, workdir: Path,
                   threads: int | None = None, label: str | None = None) -> StageResult | None:
    """Both passes over a ``width`` x ``height`` test video; None when the backend is unavailable here
    (the latency table already says why). ``label`` names the row (default: the architecture name)."""
    try:
        runner = open_backend(backend, model, workdir, (height, width), threads)
    except BackendUnavailable:
        return None
    video = workdir / f"stages-{width}x{height}-{config.frames}.mp4"
    if not video.is_file():
        make_test_video(video, width, height, config.frames)
    totals = _sequential_pass(runner, video, workdir / "stages-sequential.mp4")
    frames = totals.pop("frames")
    stage_ms = {name: 1000 * totals[name] / frames for name in STAGES}
    stats = deblur_video(video, workdir / "stages-pipeline.mp4", runner, overwrite=True)
    end_to_end, inference = (1000 * seconds / stats.frames for seconds in (stats.wall_s, stats.stage_s["infer"]))
    return StageResult(label or model.model_name, backend, width, height, frames, stage_ms, end_to_end, inference,
                       end_to_end / inference)


def _sequential_pass(runner: Backend, video: Path, out: Path) -> dict[str, float]:
    """Seconds spent in each stage over the whole video, the stages run one after another."""
    sync = (lambda: torch.cuda.synchronize(runner.device)) if runner.device.type == "cuda" else (lambda: None)
    totals = dict.fromkeys(STAGES, 0.0)
    takes_motion = runner.input_kind == "rgb+motion"
    container = open_input(video)
    try:
        options = EncodeOptions()
        with VideoWriter(out, container, codec=options.codec, crf=options.crf, preset=options.preset) as writer:
            stream = DeblurStream(runner)
            _warm_up(runner, container)
            items = demux(container, video)
            frames, previous = 0, None
            while True:
                t0 = time.perf_counter()
                item = next(items, None)
                t1 = time.perf_counter()
                totals["decode"] += t1 - t0
                if item is None:
                    break
                if takes_motion:
                    item, previous = with_motion(item, previous), item.rgb
                t2 = time.perf_counter()
                x = torch.from_numpy(item.rgb).to(runner.device).permute(2, 0, 1).float().div_(255)  # (3, H, W)
                sync()
                t3 = time.perf_counter()
                y = stream.push(x, item.motion)  # edge/motion channels, padding, one backend step, crop; state carried
                sync()
                t4 = time.perf_counter()
                rgb = to_uint8(y)  # (H, W, 3)
                t5 = time.perf_counter()
                writer.write_frame(rgb, item.pts, item.time_base)  # the test video has no rotation
                t6 = time.perf_counter()
                motion_s = t2 - t1 if takes_motion else 0.0  # a model without motion input has no such stage
                for name, seconds in zip(STAGES[1:], (motion_s, t3 - t2, t4 - t3, t5 - t4, t6 - t5)):
                    totals[name] += seconds
                frames += 1
            t7 = time.perf_counter()
        totals["encode"] += time.perf_counter() - t7  # the flush: x264 holds its lookahead frames until here
    finally:
        container.close()
    return {**totals, "frames": frames}


def _warm_up(runner: Backend, container: av.container.InputContainer) -> None:
    """One untimed step at the video's size (allocator, algorithm choice), on a stream of its own."""
    info = source_info(container)
    DeblurStream(runner).push(np.zeros((info.height, info.width, 3), np.uint8))
