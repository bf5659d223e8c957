"""Self-describing checkpoints: one safetensors file with architecture name, config and weights.

The metadata (strings only, as safetensors requires) carries everything needed to rebuild the
model through the registry, plus optional training step and metrics. Loading checks every fact it
relies on and names what differs when something does not fit.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from .registry import build_model, get_spec

FORMAT = "vdeblur-checkpoint/1"


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used; the message says why."""


@dataclass(frozen=True)
class CheckpointInfo:
    model: str
    config: dict[str, Any]
    step: int = 0
    metrics: dict[str, float] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


def save_checkpoint(path: str | Path, model: nn.Module, *, step: int = 0, metrics: Mapping[str, float] | None = None,
                    extra: Mapping[str, Any] | None = None) -> Path:
    """Write ``model`` (built by the registry) to ``path`` atomically."""
    name = getattr(model, "model_name", "")
    if not name:
        raise CheckpointError("model has no registry name; build it with vdeblur.train.registry.build_model")
    config = dataclasses.asdict(model.cfg)
    meta = {
        "format": FORMAT,
        "model": name,
        "config": json.dumps(config, sort_keys=True),
        "step": str(step),
        "metrics": json.dumps(dict(metrics or {}), sort_keys=True),
        "extra": json.dumps(dict(extra or {}), sort_keys=True),
    }
    # contiguous(): safetensors refuses views; clone breaks weight sharing it also refuses.
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata=meta)
    tmp.replace(path)
    return path


def read_info(path: str | Path, arch: str | None = None) -> CheckpointInfo:
    """The metadata of a checkpoint, validated, without building the model. A foreign checkpoint
    (another project's ``.pth``/``.h5``, ``vdeblur.train.foreign``) is described by its detected
    layout; ``arch`` picks the variant for those."""
    if _foreign(path, arch):
        from .foreign import read_foreign_info

        return read_foreign_info(path, arch)
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path} is not a safetensors checkpoint ({e})") from None
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a vdeblur checkpoint (format {meta.get('format')!r}, expected {FORMAT!r})")
    try:
        return CheckpointInfo(meta["model"], json.loads(meta["config"]), int(meta.get("step", "0")),
                              json.loads(meta.get("metrics", "{}")), json.loads(meta.get("extra", "{}")))
    except (KeyError, ValueError) as e:
        raise CheckpointError(f"{path} has damaged metadata ({e})") from None


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu",
                    arch: str | None = None) -> tuple[nn.Module, CheckpointInfo]:
    """Rebuild the model a checkpoint describes and load its weights (eval mode); ``arch`` as in ``read_info``."""
    if _foreign(path, arch):
        from .foreign import load_foreign

        model, info = load_foreign(path, arch)
        return model.to(map_location), info
    info = read_info(path)
    try:
        get_spec(info.model)
        model = build_model(info.model, info.config)
    except (KeyError, ValueError, TypeError) as e:
        raise CheckpointError(f"{path}: cannot rebuild model {info.model!r}: {e}") from None
    load_weights(model, path, map_location)
    return model.eval(), info


def load_weights(model: nn.Module, path: str | Path, map_location: str | torch.device = "cpu") -> None:
    """Load a checkpoint's weights into an existing model, refusing any mismatch by name."""
    info = read_info(path)
    name = getattr(model, "model_name", "")
    if name and info.model != name:
        raise CheckpointError(f"{path} holds a {info.model!r} model, not {name!r}")
    own = dataclasses.asdict(model.cfg)
    # A field the checkpoint lacks was added to the model after it was saved; new fields default to the
    # old architecture, so the checkpoint had the default.
    saved = {k: jsonable(v) for k, v in dataclasses.asdict(type(model.cfg)()).items()} | info.config
    if {k: jsonable(v) for k, v in own.items()} != saved:
        diff = sorted(k for k in set(own) | set(saved) if jsonable(own.get(k)) != saved.get(k))
        raise CheckpointError(f"{path} config differs in {diff}: checkpoint {[saved.get(k) for k in diff]}, "
                              f"model {[own.get(k) for k in diff]}")
    try:
        tensors = load_file(str(path), device=str(map_location))
    except (SafetensorError, OSError) as e:
        raise CheckpointError(f"{path} is unreadable ({e})") from None
    expected = model.state_dict()
    missing, unexpected = sorted(set(expected) - set(tensors)), sorted(set(tensors) - set(expected))
    bad_shape = sorted(k for k in set(expected) & set(tensors) if expected[k].shape != tensors[k].shape)
    if missing or unexpected or bad_shape:
        raise CheckpointError(f"{path} does not fit {info.model!r}: missing {missing[:5]}, unexpected {unexpected[:5]}, "
                              f"wrong shape {bad_shape[:5]}")
    model.load_state_dict(tensors)


def _foreign(path: str | Path, arch: str | None) -> bool:
    from .foreign import is_foreign

    if is_foreign(path):
        return True
    if arch is not None:
        raise CheckpointError(f"--arch {arch} applies to other projects' checkpoints (.pth, .pt, .h5, .ckpt); "
                              f"{Path(path).name} names its own architecture")
    return False


def jsonable(v: Any) -> Any:
    """``v`` as it reads back from a saved JSON config (tuples become lists)."""
    return json.loads(json.dumps(v))
