"""One reader for checkpoints other projects publish: their weights in our architectures.

Formats: a BasicSR-style ``.pth`` holding ``params`` / ``params_ema`` (NAFNet), DeblurGAN-v2's
``.h5`` (a torch pickle holding ``model``), or a bare state dict; a ``module.`` prefix
(``nn.DataParallel``) is dropped. Files are read with ``torch.load(weights_only=True)``: tensors
and plain containers only, never code from the file.

Which architecture a file holds is told by its parameter names and shapes: each known layout
derives the config from the shapes, builds our model at that config without allocating weights
(meta device) and must find exactly the file's names and shapes. ``arch`` picks among the
variants of a layout (``nafnet`` vs ``nafnet_local``, which share their weights). A file that fits
no layout gets one line naming the closest one and what differs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .checkpoint import CheckpointError, CheckpointInfo
from .registry import build_model

FOREIGN_SUFFIXES = (".pth", ".pt", ".h5", ".ckpt")
# The keys under which the supported projects store their weights, in the order they are preferred:
# NAFNet's own loader reads ``params``; BasicSR files of EMA-trained models may only have ``params_ema``.
CONTAINER_KEYS = ("params", "params_ema", "model", "state_dict")

Shapes = Mapping[str, torch.Size]


@dataclass(frozen=True)
class Layout:
    """A released parameter layout: how to recognise it and which of our architectures run it."""

    family: str
    archs: tuple[str, ...]  # registry names; the first is the default
    config: Callable[[Shapes], dict[str, Any]]  # config overrides read from the shapes (KeyError if absent)


def layouts() -> tuple[Layout, ...]:
    # Imported here, not at the top: the engine imports FOREIGN_SUFFIXES at start-up, the arch files
    # are needed only once a file is read.
    from .archs import deblurganv2, deblurganv2_inception, nafnet

    return (Layout("NAFNet", ("nafnet_local", "nafnet"), nafnet.config_from_shapes),
            Layout("DeblurGAN-v2 FPN-MobileNet", ("deblurgan_v2_mobilenet",), deblurganv2.config_from_shapes),
            Layout("DeblurGAN-v2 FPN-Inception", ("deblurgan_v2_inception",), deblurganv2_inception.config_from_shapes))


def is_foreign(path: str | Path) -> bool:
    return Path(path).suffix.lower() in FOREIGN_SUFFIXES


def read_state_dict(path: str | Path) -> tuple[dict[str, torch.Tensor], str]:
    """(tensors by name with any ``module.`` prefix dropped, where in the file they were found)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises UnpicklingError, RuntimeError or zipfile errors alike
        raise CheckpointError(f"{path} is not a torch checkpoint that loads without running code "
                              f"({str(e).splitlines()[0][:160]})") from None
    where = "a bare state dict"
    if isinstance(obj, dict):
        for key in CONTAINER_KEYS:
            if isinstance(obj.get(key), dict):
                obj, where = obj[key], f"'{key}'"
                break
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        keys = sorted(obj)[:6] if isinstance(obj, dict) else type(obj).__name__
        raise CheckpointError(f"{path} holds no state dict (looked for {', '.join(CONTAINER_KEYS)} or bare tensors; "
                              f"found {keys})")
    return {k.removeprefix("module."): v for k, v in obj.items()}, where


def expected_shapes(arch: str, overrides: Mapping[str, Any]) -> dict[str, torch.Size]:
    """The names and shapes of our ``arch`` at that config, built on the meta device (no memory)."""
    with torch.device("meta"):
        model = build_model(arch, overrides)
    return {k: v.shape for k, v in model.state_dict().items()}


def _difference(want: Shapes, have: Shapes) -> tuple[int, str]:
    """(how many names differ, a short description) between our layout and a file's."""
    missing, unexpected = sorted(set(want) - set(have)), sorted(set(have) - set(want))
    shape = sorted(k for k in set(want) & set(have) if want[k] != have[k])
    parts = [f"{len(missing)} missing (e.g. {missing[:2]})" if missing else "",
             f"{len(unexpected)} unexpected (e.g. {unexpected[:2]})" if unexpected else "",
             f"{len(shape)} of other shape (e.g. {shape[0]}: file {tuple(have[shape[0]])}, expected "
             f"{tuple(want[shape[0]])})" if shape else ""]
    return len(missing) + len(unexpected) + len(shape), ", ".join(p for p in parts if p)


def detect(shapes: Shapes, arch: str | None = None, overrides: Mapping[str, Any] | None = None,
           source: str = "checkpoint") -> tuple[str, dict[str, Any]]:
    """(registry name, config) of the layout ``shapes`` has exactly; ``arch`` restricts the choice."""
    candidates = layouts()
    if arch is not None:
        candidates = tuple(layout for layout in candidates if arch in layout.archs)
        if not candidates:
            known = [a for layout in layouts() for a in layout.archs]
            raise CheckpointError(f"--arch {arch!r} reads no foreign checkpoint; allowed: {', '.join(known)}")
    closest: tuple[float, str] = (-1.0, "")
    for layout in candidates:
        name = arch or layout.archs[0]
        try:
            config = {**layout.config(shapes), **(overrides or {})}
            want = expected_shapes(name, config)
        except (KeyError, IndexError, ValueError) as e:
            shared = 0.0
            why = f"the file has no {e.args[0]!r}" if isinstance(e, KeyError) else f"its config cannot be read ({e})"
        else:
            count, why = _difference(want, shapes)
            if count == 0:
                return name, config
            shared = len(set(want) & set(shapes)) / max(len(want), 1)
        closest = max(closest, (shared, f"{layout.family} ({name}): {why}"))
    raise CheckpointError(f"{source} matches no known layout ({len(shapes)} tensors); closest is {closest[1]}")


def read_foreign_info(path: str | Path, arch: str | None = None) -> CheckpointInfo:
    """What ``load_foreign`` would build, without building it."""
    tensors, where = read_state_dict(path)
    name, config = detect({k: v.shape for k, v in tensors.items()}, arch, source=str(path))
    return _info(path, name, config, where)


def load_foreign(path: str | Path, arch: str | None = None, overrides: Mapping[str, Any] | None = None
                 ) -> tuple[nn.Module, CheckpointInfo]:
    """Our model holding a foreign checkpoint's weights (eval mode), and metadata describing it."""
    tensors, where = read_state_dict(path)
    name, config = detect({k: v.shape for k, v in tensors.items()}, arch, overrides, source=str(path))
    model = build_model(name, config)
    model.load_state_dict(tensors, strict=True)
    return model.eval(), _info(path, name, config, where)


def _info(path: str | Path, name: str, config: Mapping[str, Any], where: str) -> CheckpointInfo:
    """The metadata our own checkpoints carry (architecture + full config), plus where the weights came from."""
    from vdeblur.export.artifact_cache import file_sha256  # stdlib only: the export cache hashes files the same way

    from .registry import make_config

    cfg = dataclasses.asdict(make_config(name, config))
    extra = {"source_file": Path(path).name, "source_sha256": file_sha256(path), "source_weights": where}
    return CheckpointInfo(name, cfg, extra=extra)
