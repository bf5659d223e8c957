"""Optional libraries (the ``onnx`` and ``tensorrt`` extras), imported only where they are needed.

A missing one is a ``MissingDependencyError`` whose one-line message says which extra installs it,
instead of ``No module named 'onnx'`` or a traceback. It is both an ``ImportError`` (code that treats
an absent library as "this backend is unavailable" keeps working) and a ``RuntimeError`` (the
command-line tools turn it into their one-line error).
"""

from __future__ import annotations

import importlib
from types import ModuleType

ONNX_INSTALL_HINT = ('ONNX export and the onnxruntime backend need the onnx extra, which is not installed: '
                     'pip install "vdeblur[onnx]"')


class MissingDependencyError(ImportError, RuntimeError):
    """An optional library is absent; the message says how to install it."""


def import_optional(module: str, install_hint: str) -> ModuleType:
    """``import module``, or a one-line ``MissingDependencyError``: ``install_hint`` and the import's own reason."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise MissingDependencyError(f"{install_hint} ({e})") from None


def import_onnx() -> ModuleType:
    return import_optional("onnx", ONNX_INSTALL_HINT)


def import_onnxruntime() -> ModuleType:
    return import_optional("onnxruntime", ONNX_INSTALL_HINT)
