"""vdeblur: video deblurring engine.

The code lives in the repository's top-level folders, installed as sub-packages:
``vdeblur.train`` (architectures, losses, data, trainer), ``vdeblur.export`` (ONNX, TensorRT),
``vdeblur.engine`` (streaming decode -> deblur -> encode) and ``vdeblur.benchmarks``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

__version__ = "0.1.0"

# What ``vdeblur`` runs without --model: the quality model. ``vdeblur_fast`` (also bundled) is the
# real-time option; the README says which to pick when.
DEFAULT_MODEL = "vdeblur_deep"


def bundled_model_path(name: str = DEFAULT_MODEL) -> Path:
    """Path of a checkpoint shipped inside the package (``vdeblur/models/<name>.safetensors``)."""
    # Imported here: every console script imports this package first, and its start must stay short
    # (vdeblur.launch answers Ctrl-C only once this package has loaded).
    from importlib import resources
    from pathlib import Path

    return Path(str(resources.files("vdeblur") / "models" / f"{name}.safetensors"))
