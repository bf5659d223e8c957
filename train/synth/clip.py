"""One call from sharp pixels to a (blurred, sharp) training clip with realistic camera shake.

Per clip we draw one blur mode, one mean blur length, one shutter (duty) and one window on the
source; the camera path then varies the blur smoothly from frame to frame. Everything comes from
``np.random.default_rng(seed)``: the same seed gives bit-identical clips on any worker or rank.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .camera import CameraConfig, random_camera_path
from .degrade import CompressionConfig, NoiseConfig, degrade_clip, linear_to_srgb, srgb_to_linear
from .objects import Layer, ObjectsConfig, ParallaxConfig, draw_near_layers, draw_objects, object_mask
from .temporal import render_temporal_clip, warp_view
from .trajectories import render_kernel_clip

BLUR_MODES = ("temporal", "kernel", "mixed")


@dataclass(frozen=True)
class ShakeConfig:
    # "temporal": sub-frames along a rotating/zooming camera path (spatially varying blur);
    # "kernel": DeblurGAN random-walk kernels (uniform blur, curlier shake); "mixed": either per clip.
    mode: str = "mixed"
    kernel_share: float = 0.3  # probability of "kernel" in mixed mode
    # Mean blur length per clip in output px, log-uniform: from barely soft to heavy handheld shake
    # at 720p. (0, 0) disables synthetic shake (a high-fps video then blurs by its own motion).
    blur_px: tuple[float, float] = (2.0, 32.0)
    # Exposure time / frame interval: a 180 to 360 degree shutter, what video cameras use indoors.
    duty: tuple[float, float] = (0.5, 1.0)
    # False: blur_px is the blur of the exposure, whatever its duty. True: blur_px is the blur a whole
    # frame interval would gather, so a short exposure blurs less (a phone in daylight exposes 1/4 of
    # the interval or less, and the turns of the shake leave some frames nearly sharp).
    blur_per_interval: bool = False
    max_step_px: float = 1.0
    max_subframes: int = 61
    # Kernel mode: the blur length of frame t is mean * exp(kernel_variation * sin(...)).
    kernel_variation: float = 0.4
    camera: CameraConfig = field(default_factory=CameraConfig)
    noise: NoiseConfig | None = field(default_factory=NoiseConfig)
    compression: CompressionConfig | None = field(default_factory=CompressionConfig)
    # Cut-outs moving on their own across the view (objects.py), what a global alignment cannot follow;
    # a clip with objects is always rendered in temporal mode. None: none (and the same draws as before).
    objects: ObjectsConfig | None = None
    # Near layers (objects.py): regions that move further or less far than the background under the camera's
    # motion, as parallax does; temporal mode as with objects. None: none (and the same draws as before).
    parallax: ParallaxConfig | None = None

    def __post_init__(self) -> None:
        if self.mode not in BLUR_MODES:
            raise ValueError(f"unknown blur mode {self.mode!r}; allowed: {', '.join(BLUR_MODES)}")
        if not 0 <= self.kernel_share <= 1:
            raise ValueError(f"kernel_share must be in [0, 1]; got {self.kernel_share}")
        lo, hi = self.blur_px
        if not (0 < lo <= hi or lo == hi == 0):
            raise ValueError(f"blur_px must be a range with 0 < lo <= hi, or (0, 0) for no shake; got {self.blur_px}")
        if not 0 < self.duty[0] <= self.duty[1] <= 1:
            raise ValueError(f"duty must be a range within (0, 1]; got {self.duty}")
        if self.max_step_px <= 0 or self.max_subframes < 1:
            raise ValueError(f"max_step_px must be > 0 and max_subframes >= 1; got {self.max_step_px}, {self.max_subframes}")


NOISE_CHOICES = ("default", "none")


def shake_config(*, blur_px: tuple[float, float] = ShakeConfig.blur_px, noise: str = "default",
                 compression: str = "mixed", compression_probability: float = 0.5,
                 h264_crf: tuple[int, int] = CompressionConfig.h264_crf,
                 shutter: tuple[float, float] | None = None,
                 objects: tuple[int, int] | None = None,
                 parallax: tuple[int, int] | None = None) -> ShakeConfig:
    """The few knobs a data set is described by (training config keys, ``render_dataset`` flags) as a
    ShakeConfig; the defaults give ``ShakeConfig()`` exactly. noise: the default sensor-noise mix or none;
    compression: ``none``, ``jpeg``, ``h264`` or ``mixed``, applied to that share of clips; shutter: the
    exposure's share of the frame interval, drawn per clip, which then scales ``blur_px`` (the blur of a
    whole interval) as a real shutter does; None keeps ShakeConfig's exposure-normalised blur; objects: how
    many cut-outs cross each clip on their own paths (ObjectsConfig's other defaults), None for none; parallax:
    how many near layers each clip has (ParallaxConfig's other defaults), None for none."""
    if noise not in NOISE_CHOICES:
        raise ValueError(f"noise {noise!r} is not allowed; choose one of {', '.join(NOISE_CHOICES)}")
    exposure = {} if shutter is None else {"duty": (float(shutter[0]), float(shutter[1])), "blur_per_interval": True}
    return ShakeConfig(blur_px=(float(blur_px[0]), float(blur_px[1])), noise=NoiseConfig() if noise == "default" else None,
                       compression=CompressionConfig(kind=compression, probability=compression_probability,
                                                     h264_crf=(int(h264_crf[0]), int(h264_crf[1]))),
                       objects=None if objects is None else ObjectsConfig(count=(int(objects[0]), int(objects[1]))),
                       parallax=None if parallax is None else ParallaxConfig(count=(int(parallax[0]), int(parallax[1]))),
                       **exposure)


def render_shake_clip(image: np.ndarray, *, frames: int, height: int, width: int, seed: int,
                      config: ShakeConfig | None = None, centred: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """A still photo filmed by a shaking handheld camera: (blurred, sharp), each (T, H, W, 3) uint8.

    The output window (height x width) looks at a random place of ``image``, which must be at least
    that large (``centred``: at its middle, for an image that is already a region cut around the
    window); where the path looks past its edge the image is mirrored.
    """
    return render_object_clip(image, frames=frames, height=height, width=width, seed=seed, config=config,
                              centred=centred)[:2]


def render_object_clip(image: np.ndarray, *, frames: int, height: int, width: int, seed: int,
                       config: ShakeConfig | None = None,
                       centred: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``render_shake_clip`` and the (T, H, W) bool masks of where moving objects (``config.objects``) and
    near layers (``config.parallax``) cover the sharp frames; all False without either."""
    _check_rgb_u8(image, "image", ndim=3)
    return _render([srgb_to_linear(image)], image.shape[:2], frames=frames, height=height, width=width,
                   per_output=1, rng=np.random.default_rng(seed), config=config or ShakeConfig(), centred=centred)


def render_video_clip(video: np.ndarray, *, frames: int, height: int, width: int, seed: int, per_output: int = 1,
                      config: ShakeConfig | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(blurred, sharp) from consecutive video frames, each (T, H, W, 3) uint8.

    video: (N, Hs, Ws, 3) uint8 with N >= frames * per_output. Output frame t averages source frames
    ``[t * per_output, (t + 1) * per_output)`` (set per_output to source fps / output fps for
    high-fps footage) along the synthetic shake path; its sharp target is their middle frame.
    """
    _check_rgb_u8(video, "video", ndim=4)
    if per_output < 1 or len(video) < frames * per_output:
        raise ValueError(f"{frames} frames at {per_output} source frames each need {frames * per_output} video frames; "
                         f"got {len(video)} (per_output must be >= 1)")
    linear = [srgb_to_linear(f) for f in video[: frames * per_output]]
    return _render(linear, video.shape[1:3], frames=frames, height=height, width=width, per_output=per_output,
                   rng=np.random.default_rng(seed), config=config or ShakeConfig())[:2]


def _render(linear: list[np.ndarray], source_hw: tuple[int, int], *, frames: int, height: int, width: int,
            per_output: int, rng: np.random.Generator, config: ShakeConfig,
            centred: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if frames < 1 or height < 1 or width < 1:
        raise ValueError(f"frames, height and width must be >= 1; got {frames}, {height}, {width}")
    use_kernel, blur, duty, center = draw_shot(rng, config, source_hw, height=height, width=width)
    if centred:  # drawn all the same, so the draws after it do not change
        center = ((source_hw[1] - width) // 2 + width / 2, (source_hw[0] - height) // 2 + height / 2)
    masks = np.zeros((frames, height, width), bool)
    if use_kernel and config.objects is None and config.parallax is None:
        phase, freq = rng.uniform(0, 2 * np.pi), rng.uniform(*config.camera.shake_freq)
        per_frame = blur * np.exp(config.kernel_variation * np.sin(2 * np.pi * freq * np.arange(frames) + phase))
        # A video frame's kernel blurs its middle source frame; a still image serves every frame.
        views = [linear[0] if len(linear) == 1 else linear[t * per_output + per_output // 2] for t in range(frames)]
        blurred, sharp = render_kernel_clip(views, rng, height=height, width=width, blur_px=per_frame, duty=duty,
                                            source_center=center)
    else:
        path = random_camera_path(rng, config.camera, frames=frames, height=height, width=width, blur_px=blur, duty=duty)
        objects: list[Layer] = [] if config.objects is None else \
            draw_objects(rng, linear[0], config.objects, frames=frames, height=height, width=width)
        if config.parallax is not None:  # behind the objects, which cross in front of the scene
            mid_view = warp_view(linear[0], path.homographies(np.array([(frames - 1) / 2]), center)[0], height, width,
                                 sharp=True)
            objects = [*draw_near_layers(rng, mid_view, path, center, config.parallax, frames=frames), *objects]
        blurred, sharp = render_temporal_clip(linear, path, frames=frames, duty=duty, source_center=center,
                                              per_output=per_output, max_step_px=config.max_step_px,
                                              max_subframes=config.max_subframes, objects=objects)
        if objects:
            masks = np.stack([object_mask(objects, t, height, width) for t in range(frames)])
    return (degrade_clip(blurred, rng, config.noise, config.compression), np.stack([linear_to_srgb(s) for s in sharp]),
            masks)


def draw_shot(rng: np.random.Generator, config: ShakeConfig, source_hw: tuple[int, int], *, height: int,
              width: int) -> tuple[bool, float, float, tuple[float, float]]:
    """The per-clip draws before the blur itself: (kernel mode?, mean blur px, duty, window centre on the source).

    Shared by the CPU renderer and ``device_render.py``, so both turn one seed into the same shot.
    """
    sh, sw = source_hw
    if sh < height or sw < width:
        raise ValueError(f"source {sw}x{sh} is smaller than the requested {width}x{height} window")
    # The same draws in the same order for every mode: changing the mode does not reshuffle the clips.
    mode_draw = rng.uniform()
    use_kernel = config.mode == "kernel" or (config.mode == "mixed" and mode_draw < config.kernel_share)
    lo, hi = config.blur_px
    blur = float(np.exp(rng.uniform(np.log(lo), np.log(hi)))) if hi > 0 else 0.0
    duty = float(rng.uniform(*config.duty))
    if config.blur_per_interval:
        blur *= duty
    # Whole-pixel window corner: without shake the views are then exact copies of the source.
    left, top = np.round(rng.uniform(0, sw - width)), np.round(rng.uniform(0, sh - height))
    return use_kernel, blur, duty, (float(left) + width / 2, float(top) + height / 2)


def _check_rgb_u8(array: np.ndarray, name: str, ndim: int) -> None:
    if array.dtype != np.uint8 or array.ndim != ndim or array.shape[-1] != 3:
        shape = "(N, H, W, 3)" if ndim == 4 else "(H, W, 3)"
        raise ValueError(f"{name} must be RGB uint8 of shape {shape}; got {array.shape} {array.dtype}")
