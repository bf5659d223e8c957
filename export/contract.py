"""The I/O contract of exported graphs, shared by the exporter and every runtime backend.

A recurrent model exports *one time step*: inputs ``frame`` and one tensor per state slot
(``h0``, ``c0``, ...), outputs ``deblurred`` and the next state (``h1``, ``c1``, ...). The runtime
feeds each output state back as the next input. Everything a runtime needs to drive the graph
(padding multiple, input kind, state layout) travels in the file's metadata, so a deployed
``.onnx`` (or an engine built from it, with its sidecar) needs nothing else.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from vdeblur.train.archs.base import DeblurModel, StateSlot

FRAME_INPUT = "frame"
FRAME_OUTPUT = "deblurred"
META_PREFIX = "vdeblur."


def state_input_name(slot: StateSlot) -> str:
    return f"{slot.name}0"


def state_output_name(slot: StateSlot) -> str:
    return f"{slot.name}1"


@dataclass(frozen=True)
class GraphInfo:
    """What a runtime must know about an exported model."""

    model: str
    config: dict
    in_channels: int
    input_kind: str
    pad_multiple: int
    state_slots: tuple[StateSlot, ...]
    precision: str  # "fp32" or "fp16" (the graph's compute type; I/O stays FP32)

    @property
    def input_names(self) -> list[str]:
        return [FRAME_INPUT] + [state_input_name(s) for s in self.state_slots]

    @property
    def output_names(self) -> list[str]:
        return [FRAME_OUTPUT] + [state_output_name(s) for s in self.state_slots]

    def to_metadata(self) -> dict[str, str]:
        return {
            META_PREFIX + "model": self.model,
            META_PREFIX + "config": json.dumps(self.config, sort_keys=True),
            META_PREFIX + "in_channels": str(self.in_channels),
            META_PREFIX + "input_kind": self.input_kind,
            META_PREFIX + "pad_multiple": str(self.pad_multiple),
            META_PREFIX + "state_slots": json.dumps([[s.name, s.channels, s.stride] for s in self.state_slots]),
            META_PREFIX + "precision": self.precision,
        }

    @classmethod
    def from_metadata(cls, meta: Mapping[str, str], source: str = "model file") -> GraphInfo:
        try:
            return cls(
                model=meta[META_PREFIX + "model"],
                config=json.loads(meta[META_PREFIX + "config"]),
                in_channels=int(meta[META_PREFIX + "in_channels"]),
                input_kind=meta[META_PREFIX + "input_kind"],
                pad_multiple=int(meta[META_PREFIX + "pad_multiple"]),
                state_slots=tuple(StateSlot(n, int(c), int(s)) for n, c, s in json.loads(meta[META_PREFIX + "state_slots"])),
                precision=meta.get(META_PREFIX + "precision", "fp32"),
            )
        except (KeyError, ValueError, TypeError) as e:
            raise ValueError(f"{source} lacks vdeblur metadata ({e}); export it with vdeblur-export") from None

    @classmethod
    def from_model(cls, model: DeblurModel, precision: str = "fp32") -> GraphInfo:
        import dataclasses

        return cls(model.model_name, json.loads(json.dumps(dataclasses.asdict(model.cfg))), model.in_channels,
                   model.input_kind, model.pad_multiple, tuple(model.state_slots), precision)
