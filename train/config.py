"""Training configuration: frozen dataclasses read once from a TOML preset or file.

Presets live in ``presets/<name>.toml`` and list only what differs from the defaults below.
``--set section.key=value`` overrides any value (the value is parsed as TOML, bare words as
strings). Unknown keys and wrongly typed values are refused by name.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .losses import CONTENT_LOSSES, GAN_LOSSES, PERCEPTUAL_LAYERS
from .synth.clip import NOISE_CHOICES
from .synth.degrade import COMPRESSION_KINDS

if sys.version_info >= (3, 11):
    import tomllib
else:  # the same parser, before it joined the standard library
    import tomli as tomllib

PRESET_DIR = Path(__file__).parent / "presets"


class ConfigError(ValueError):
    """A configuration that cannot be used; the message names the key."""


def _choice(key: str, value: str, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise ConfigError(f"{key} = {value!r} is not allowed; choose one of {', '.join(allowed)}")


def _synthetic_count(key: str, count: tuple[int, int], what: str, kind: str) -> None:
    """A per-clip count range of something only the CPU synthesis draws (synth/objects.py)."""
    if not 0 <= count[0] <= count[1] or (count[1] and kind != "synthetic"):
        raise ConfigError(f"{key} must be a range 0 <= lo <= hi, and {what} need data.kind = 'synthetic'; "
                          f"got {list(count)} with {kind!r}")


@dataclass(frozen=True)
class ModelConfig:
    name: str = "vdeblur_fast"
    overrides: dict[str, Any] = field(default_factory=dict)  # fields of the registry config
    discriminator: str = ""  # "" = the generator's registry default (used only when loss.gan != "none")
    discriminator_overrides: dict[str, Any] = field(default_factory=dict)  # PatchGANConfig fields


DATA_KINDS = ("synthetic", "gopro", "device")


@dataclass(frozen=True)
class DataConfig:
    # "synthetic": blur rendered on the fly from sources (CPU, DataLoader workers); "gopro": a GoPro-layout
    # folder; "device": still-image sources rendered on the training device itself (device_data.py)
    kind: str = "synthetic"
    root: str = ""  # gopro: <root>/{train,test}/<seq>/{blur,sharp}/*.png; test/ is the held-out split
    blur_kind: str = "blur"
    sources: tuple[str, ...] = ("skimage",)  # synthetic: image folders, video files or "skimage"
    val_sources: tuple[str, ...] = ()  # synthetic held-out sources; () = ``sources`` with another seed
    length: int = 4096  # synthetic items per epoch
    scale: tuple[float, float] = (0.5, 1.0)
    val_sequences: int = 8
    val_frames: int = 0  # frames per held-out sequence; 0 = the training window
    val_size: int = 128  # held-out crop (square); 0 = whole frames (gopro only)
    workers: int = 0
    # Skip flat training windows (sky, bokeh: nothing to learn) whose sharp frame's mean |dx| + |dy| of
    # luma is below this many 8-bit levels (data.detail); 0 = keep all. 2.5 drops 16% of data/shake2's photo clips.
    min_detail: float = 0.0
    # How synthetic and device clips are degraded (synth.clip.shake_config; the defaults are ShakeConfig's):
    # mean blur per clip in px (log-uniform), sensor noise ("default" mix or "none"), and the compression
    # ("none", "jpeg", "h264", "mixed") of that share of clips, H.264 at a CRF drawn from h264_crf.
    blur_px: tuple[float, float] = (2.0, 32.0)
    # Synthetic training clips: rescale and render only the window plus this margin (px, every side) of a photo,
    # not the whole photo (SyntheticDataset.region_margin; 0 = whole photo, as held-out sets are rendered).
    region_margin: int = 0
    noise: str = "default"
    compression: str = "mixed"
    compression_probability: float = 0.5
    h264_crf: tuple[int, int] = (18, 32)
    # Synthetic clips: how many cut-outs cross each clip on their own paths (synth/objects.py; uniform, inclusive),
    # what a model fed the previous frame aligned by the camera's motion must learn to ignore; (0, 0) = none.
    objects: tuple[int, int] = (0, 0)
    # Synthetic clips: how many near layers each has (synth/objects.py: regions moving further or less far than the
    # background under the camera's motion, as parallax does; uniform, inclusive); (0, 0) = none.
    parallax: tuple[int, int] = (0, 0)

    def __post_init__(self) -> None:
        _choice("data.kind", self.kind, DATA_KINDS)
        if self.kind == "gopro" and not self.root:
            raise ConfigError("data.kind = 'gopro' needs data.root (the folder holding train/ and test/)")
        if self.min_detail < 0:
            raise ConfigError(f"data.min_detail must be >= 0; got {self.min_detail}")
        if self.min_detail > 0 and self.kind == "device":
            raise ConfigError("data.min_detail applies to data.kind = 'gopro' and 'synthetic'; the device renderer "
                              "(data.kind = 'device') does not skip flat crops: set data.min_detail = 0")
        _choice("data.noise", self.noise, NOISE_CHOICES)
        _choice("data.compression", self.compression, COMPRESSION_KINDS)
        if not (0 < self.blur_px[0] <= self.blur_px[1] or self.blur_px == (0.0, 0.0)):
            raise ConfigError(f"data.blur_px must be a range with 0 < lo <= hi (or [0, 0]: no shake); got {list(self.blur_px)}")
        if self.region_margin < 0:
            raise ConfigError(f"data.region_margin must be >= 0; got {self.region_margin}")
        _synthetic_count("data.objects", self.objects, "moving objects", self.kind)
        _synthetic_count("data.parallax", self.parallax, "near layers", self.kind)
        if not 0 <= self.compression_probability <= 1 or not 0 <= self.h264_crf[0] <= self.h264_crf[1] <= 51:
            raise ConfigError(f"data.compression_probability must be in [0, 1] and data.h264_crf a range within 0..51; "
                              f"got {self.compression_probability}, {list(self.h264_crf)}")
        if self.val_size == 0 and self.kind != "gopro":
            raise ConfigError(f"data.val_size = 0 (whole frames) needs data.kind = 'gopro'; {self.kind} clips need a size")


@dataclass(frozen=True)
class LossConfig:
    content: str = "l1"
    content_weight: float = 1.0
    fft_weight: float = 0.0  # L1 between spectra (losses.FFTLoss); MIMO-UNet uses 0.1
    perceptual_weight: float = 0.0
    perceptual_layer: str = "conv3_3"
    vgg_weights: str = ""  # torchvision vgg19 state dict (.pth or .safetensors); needed when perceptual_weight > 0
    gan: str = "none"
    gan_weight: float = 0.0
    gp_weight: float = 10.0  # WGAN-GP penalty weight
    critic_steps: int = 1  # critic updates per generator update (DeblurGAN's WGAN-GP uses 5)

    def __post_init__(self) -> None:
        _choice("loss.content", self.content, CONTENT_LOSSES)
        _choice("loss.gan", self.gan, GAN_LOSSES)
        _choice("loss.perceptual_layer", self.perceptual_layer, tuple(PERCEPTUAL_LAYERS))
        if self.critic_steps < 1:
            raise ConfigError(f"loss.critic_steps must be >= 1; got {self.critic_steps}")


@dataclass(frozen=True)
class OptimConfig:
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    schedule: str = "cosine"  # "constant"; "cosine" to 0; "linear": constant, then linear to 0 (pix2pix, DeblurGAN)
    decay_start: float = 0.5  # "linear": fraction of train.steps after which the decay starts
    warmup_steps: int = 0

    def __post_init__(self) -> None:
        _choice("optim.schedule", self.schedule, ("constant", "cosine", "linear"))


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 10000
    batch: int = 4  # per process
    crop: int = 128  # square training crop; must be a multiple of the model's pad_multiple
    window: int = 4  # frames per sequence for recurrent models (the TBPTT length); image models use 1
    # Mixed precision: "bf16" on CUDA and on CPUs with AVX512-BF16/AMX (with channels_last 2.2x cheaper
    # steps on this project's EPYC, gradient cosine 0.999 to FP32: docs/training.md); "fp16" on CUDA only.
    amp: str = "off"
    # Model weights in NHWC, oneDNN's and cuDNN's native conv layout (1.07x on this CPU alone, 1.25x with bf16).
    channels_last: bool = False
    grad_clip: float = 0.0  # max gradient norm; 0 = no clipping
    ema_decay: float = 0.999  # 0 = no averaging (the EMA copy follows the weights)
    val_every: int = 1000
    ckpt_every: int = 1000
    log_every: int = 50
    seed: int = 0
    # Share of frames with a previous frame given a wrong, missing or cut one (faults.py); models whose
    # input is rgb+motion only, so that they learn to ignore a previous frame that does not align.
    alignment_faults: float = 0.0

    def __post_init__(self) -> None:
        _choice("train.amp", self.amp, ("off", "bf16", "fp16"))
        if not 0 <= self.alignment_faults <= 1:
            raise ConfigError(f"train.alignment_faults must be a share in [0, 1]; got {self.alignment_faults}")
        if min(self.steps, self.batch, self.crop, self.window, self.val_every, self.ckpt_every, self.log_every) < 1:
            raise ConfigError("train.steps, batch, crop, window, val_every, ckpt_every and log_every must be >= 1")
        if not 0 <= self.ema_decay < 1:
            raise ConfigError(f"train.ema_decay must be in [0, 1); got {self.ema_decay}")


@dataclass(frozen=True)
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def from_dict(data: Mapping[str, Any]) -> Config:
    return _build(Config, data, "")


def _build(cls: type, data: Mapping[str, Any], where: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(names))
    if unknown:
        section = f"[{where}]" if where else "the top level"
        raise ConfigError(f"unknown key(s) {[where + '.' + k if where else k for k in unknown]}; allowed in {section}: {names}")
    kwargs = {k: _coerce(v, hints[k], f"{where}.{k}" if where else k) for k, v in data.items()}
    return cls(**kwargs)


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """``value`` as type ``tp``, or a ConfigError naming the key, the value and the type."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise ConfigError(f"[{key}] must be a table; got {value!r}")
        return _build(tp, value, key)
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key} must be a table of fields; got {value!r}")
        return dict(value)
    if origin is tuple:
        fixed = Ellipsis not in args
        if not isinstance(value, (list, tuple)) or (fixed and len(value) != len(args)):
            raise ConfigError(f"{key} must be a list of {len(args) if fixed else 'any number of'} values; got {value!r}")
        return tuple(_coerce(v, args[0], key) for v in value)
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if tp in (int, str, bool) and isinstance(value, tp) and not (tp is int and isinstance(value, bool)):
        return value
    raise ConfigError(f"{key} must be {getattr(tp, '__name__', tp)}; got {value!r}")


def to_toml(cfg: Config) -> str:
    """``cfg`` as a TOML file that ``load_config`` reads back to an equal Config (a run's own record,
    what ``--resume`` on another machine is given as ``--config``)."""
    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, str):
            return json.dumps(v)  # JSON string escapes are valid TOML basic-string escapes
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(value(x) for x in v) + "]"
        if isinstance(v, Mapping):
            return "{" + ", ".join(f"{k} = {value(x)}" for k, x in v.items()) + "}"
        raise ConfigError(f"cannot write {v!r} ({type(v).__name__}) as TOML")

    sections = []
    for name, fields in cfg.to_dict().items():
        sections.append(f"[{name}]\n" + "".join(f"{k} = {value(v)}\n" for k, v in fields.items()))
    return "\n".join(sections)


def list_presets() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.toml"))


def preset_path(name_or_path: str | Path) -> Path:
    """A preset name (``pix2pix``) or a path to a TOML file."""
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        return path
    candidate = PRESET_DIR / f"{name_or_path}.toml"
    if not candidate.is_file():
        raise ConfigError(f"unknown preset {str(name_or_path)!r}; presets: {', '.join(list_presets())} (or give a .toml path)")
    return candidate


def apply_sets(data: dict[str, Any], sets: Sequence[str]) -> dict[str, Any]:
    """Apply ``section.key=value`` overrides to a raw config dict (returns a new dict)."""
    out = _deepcopy(data)
    for item in sets:
        key, sep, text = item.partition("=")
        parts = key.strip().split(".")
        if not sep or len(parts) < 2 or not all(parts):
            raise ConfigError(f"--set {item!r} is not section.key=value (e.g. train.steps=100)")
        try:
            value = tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError:
            value = text  # a bare word such as model.name=rir
        node = out
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {item!r}: {p} is a value, not a table")
        node[parts[-1]] = value
    return out


def _deepcopy(d: dict[str, Any]) -> dict[str, Any]:
    return {k: _deepcopy(v) if isinstance(v, dict) else v for k, v in d.items()}


def load_config(name_or_path: str | Path, sets: Sequence[str] = ()) -> Config:
    path = preset_path(name_or_path)
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path} is not valid TOML: {e}") from None
    return from_dict(apply_sets(data, sets))
