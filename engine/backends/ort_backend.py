"""ONNX Runtime backend: runs an exported one-step graph, feeding each state output back in.

Everything it needs (padding multiple, input kind, state layout) comes from the file's metadata
(``vdeblur.export.contract.GraphInfo``). CUDA is used when the installed onnxruntime offers it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from vdeblur.export.contract import FRAME_INPUT, state_input_name


class OrtBackend:
    name = "onnxruntime"

    def __init__(self, path: str | Path, device: str = "cpu", threads: int = 0) -> None:
        from vdeblur.export.dependencies import import_onnxruntime
        from vdeblur.export.onnx import read_graph_info

        ort = import_onnxruntime()

        self.info = read_graph_info(path)
        available = ort.get_available_providers()
        wants_cuda = device.startswith("cuda")
        if wants_cuda and "CUDAExecutionProvider" not in available:
            raise ValueError(f"device {device!r} needs onnxruntime's CUDAExecutionProvider; installed: {available}")
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if wants_cuda else ["CPUExecutionProvider"]
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(path), options, providers=providers)
        except Exception as e:  # onnxruntime raises its own untyped errors for corrupt graphs
            raise ValueError(f"{path} could not be loaded by ONNX Runtime ({str(e).splitlines()[0]})") from None
        self.device = torch.device("cpu")  # I/O goes through host numpy arrays either way
        self.pad_multiple = self.info.pad_multiple
        self.input_kind = self.info.input_kind
        self.is_recurrent = bool(self.info.state_slots)
        self.label = f"onnxruntime {providers[0].removesuffix('ExecutionProvider').lower()}"

    def initial_state(self, height: int, width: int, batch: int = 1) -> tuple[np.ndarray, ...]:
        return tuple(np.zeros((batch, s.channels, height // s.stride, width // s.stride), np.float32)
                     for s in self.info.state_slots)

    def run(self, frame: torch.Tensor, state: tuple[np.ndarray, ...]) -> tuple[torch.Tensor, tuple[np.ndarray, ...]]:
        feeds = {FRAME_INPUT: frame.detach().cpu().float().contiguous().numpy()}
        feeds.update({state_input_name(s): v for s, v in zip(self.info.state_slots, state)})
        out, *new_state = self.session.run(self.info.output_names, feeds)
        return torch.from_numpy(out), tuple(new_state)
