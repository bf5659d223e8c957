"""One registry from model names to factories.

The CLI, export, engine and benchmarks take a *name* (or a checkpoint that records one), never an
import path. Each entry pairs a factory with the frozen config dataclass it accepts, so a checkpoint
can rebuild exactly the model it was saved from.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from torch import nn

_GENERATORS: dict[str, ModelSpec] = {}


@dataclass(frozen=True)
class ModelSpec:
    name: str
    config_cls: type
    factory: Callable[[Any], nn.Module]
    # Default discriminator used by GAN presets of this generator ("" for none).
    discriminator: str
    description: str


def register(name: str, config_cls: type, *, discriminator: str = "patchgan", description: str = ""):
    """Decorator: ``@register("pix2pix", UNetConfig)`` on a ``factory(config) -> nn.Module``."""

    def wrap(factory: Callable[[Any], nn.Module]) -> Callable[[Any], nn.Module]:
        if name in _GENERATORS:
            raise ValueError(f"model name {name!r} is already registered")
        _GENERATORS[name] = ModelSpec(name, config_cls, factory, discriminator, description or (factory.__doc__ or "").strip())
        return factory

    return wrap


def _ensure_loaded() -> None:
    # Importing the arch package runs every @register; kept lazy so registry.py has no cycle.
    from . import archs  # noqa: F401


def list_models() -> list[str]:
    _ensure_loaded()
    return sorted(_GENERATORS)


def get_spec(name: str) -> ModelSpec:
    _ensure_loaded()
    try:
        return _GENERATORS[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; registered models: {', '.join(sorted(_GENERATORS))}") from None


def make_config(name: str, overrides: Mapping[str, Any] | None = None) -> Any:
    """The model's config with ``overrides`` applied; unknown fields are refused by name."""
    spec = get_spec(name)
    overrides = dict(overrides or {})
    fields = {f.name for f in dataclasses.fields(spec.config_cls)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ValueError(f"model {name!r} has no config field(s) {unknown}; allowed: {sorted(fields)}")
    # JSON round-trips turn tuples into lists; the frozen configs want hashable tuples back.
    fixed = {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()}
    return spec.config_cls(**fixed)


def build_model(name: str, overrides: Mapping[str, Any] | None = None) -> nn.Module:
    spec = get_spec(name)
    model = spec.factory(make_config(name, overrides))
    model.model_name = name
    return model
