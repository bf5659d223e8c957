from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
    np.random.seed(0)


@pytest.fixture
def one_thread():
    """For training tests: the test machine's cores are shared, and two OpenMP threads waiting on a
    busy core make a tiny step 100x slower, while one thread never waits."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def photo() -> np.ndarray:
    """A real photograph (scikit-image's astronaut, 512x512 RGB uint8): real image statistics."""
    from skimage import data

    return data.astronaut()


def write_frames(path: Path, frames: list[np.ndarray]) -> Path:
    """A lossless clip (ffv1, bgr0) of exactly these RGB frames."""
    import av

    with av.open(str(path), "w") as c:
        v = c.add_stream("ffv1", rate=24)
        v.height, v.width, v.pix_fmt = *frames[0].shape[:2], "bgr0"
        for rgb in frames:
            c.mux(v.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        c.mux(v.encode(None))
    return path


def make_clip(path, *, width: int = 96, height: int = 64, frames: int = 12, audio: bool = True, rate: int = 24,
              vfr: bool = False, rotation: int = 0, codec: str = "libx264", pix_fmt: str = "yuv420p",
              options: dict[str, str] | None = None, times_ms: list[int] | None = None,
              time_base: Fraction = Fraction(1, 1000), audio_s: float | None = None,
              images: np.ndarray | None = None) -> None:
    """Write a small test clip with PyAV: random frames (or ``images``, (N, H, W, 3) uint8) at ``times_ms`` (default: every 1/rate s; VFR:
    intervals of 1, 2, 3 frames), in ``time_base``, with encoder ``options``; optional AAC tone,
    ``audio_s`` seconds long (default: as long as the frames at ``rate``)."""
    import av

    from vdeblur.engine.sample import mux_tone

    if images is not None:
        frames, height, width = images.shape[:3]
    if times_ms is None:
        steps = [(1000 // rate) * (1 + (i % 3 if vfr else 0)) for i in range(frames)]
        times_ms = [sum(steps[:i]) for i in range(frames)]
    rng = np.random.default_rng(0)
    with av.open(str(path), "w") as c:
        v = c.add_stream(codec, rate=rate, options=options or {})
        v.width, v.height, v.pix_fmt = width, height, pix_fmt
        # The same time base on stream and encoder: with only the stream's set, libx264 would
        # regenerate 1/rate timestamps (and VFR would not be VFR).
        v.time_base = v.codec_context.time_base = time_base
        if rotation:
            v.set_display_rotation(rotation)
        a = c.add_stream("aac", rate=48000, layout="mono") if audio else None
        for i, ms in enumerate(times_ms):
            img = images[i] if images is not None else (rng.random((height, width, 3)) * 255).astype(np.uint8)
            f = av.VideoFrame.from_ndarray(img, format="rgb24")
            f.pts, f.time_base = round(Fraction(ms, 1000) / time_base), time_base
            c.mux(v.encode(f))
        c.mux(v.encode(None))
        if a is not None:
            mux_tone(c, a, int(48000 * audio_s) if audio_s is not None else 48000 * len(times_ms) // rate, amplitude=0.3)


@pytest.fixture(scope="session")
def fast_checkpoint(tmp_path_factory):
    """A vdeblur_fast checkpoint whose zero head is randomised, so output != input and state matters."""
    from vdeblur.train.checkpoint import save_checkpoint
    from vdeblur.train.registry import build_model

    torch.manual_seed(1)
    model = build_model("vdeblur_fast")
    with torch.no_grad():
        model.head[0].weight.normal_(0, 0.02)
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "fast.safetensors", model)


def write_tiny_gopro(root: Path, photo: np.ndarray) -> Path:
    """A GoPro-layout folder of 48x48 frames: a slow pan over a photo, box-blurred along the pan."""
    for split, sequences, frames in (("train", 3, 5), ("test", 1, 3)):
        for s in range(sequences):
            for kind in ("blur", "sharp"):
                (root / split / f"seq{s}" / kind).mkdir(parents=True, exist_ok=True)
            for t in range(frames):
                y, x = 100 + 60 * s + (200 if split == "test" else 0), 150 + 3 * t
                sharp = np.ascontiguousarray(photo[y:y + 48, x:x + 48, ::-1])  # BGR for cv2
                blur = cv2.blur(photo[y:y + 48, x - 4:x + 52, ::-1], (9, 1))[:, 4:52]
                cv2.imwrite(str(root / split / f"seq{s}" / "sharp" / f"{t:06d}.png"), sharp)
                cv2.imwrite(str(root / split / f"seq{s}" / "blur" / f"{t:06d}.png"), np.ascontiguousarray(blur))
    return root
