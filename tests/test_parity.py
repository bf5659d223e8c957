"""Faster inference paths against the FP32 reference: `vdeblur-export parity`, torch.compile, CUDA graphs."""

import math

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from vdeblur.engine.backends import load_backend
from vdeblur.engine.backends.cuda_graphs import CudaGraphStep
from vdeblur.engine.backends.torch_backend import TorchBackend
from vdeblur.export.cli import cli
from vdeblur.export.parity import check_parity, compare, markdown_table
from vdeblur.train.checkpoint import load_checkpoint
from vdeblur.train.registry import build_model


def _clip(n: int = 3, h: int = 64, w: int = 96) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (h + n, w + n, 3), dtype=np.uint8)
    return [np.ascontiguousarray(base[i:i + h, i:i + w]) for i in range(n)]


def test_onnx_paths_pass_and_gpu_paths_skip_with_a_reason(fast_checkpoint) -> None:
    pytest.importorskip("onnxruntime")
    model, _ = load_checkpoint(fast_checkpoint)
    results = {r.candidate: r for r in check_parity(model, _clip(), ["onnx-fp32", "onnx-fp16", "torch-fp16"])}
    assert results["onnx-fp32"].passed and results["onnx-fp32"].min_psnr_db > 100
    fp16 = results["onnx-fp16"]
    assert fp16.passed and 45 < fp16.min_psnr_db < results["onnx-fp32"].min_psnr_db  # FP16 rounds, a little
    if not torch.cuda.is_available():
        assert results["torch-fp16"].status == "skipped" and "CUDA" in results["torch-fp16"].reason
        assert "skipped: torch-fp16 needs a CUDA GPU" in markdown_table(list(results.values()))


def test_compare_fails_noisy_and_non_finite_outputs() -> None:
    reference = torch.rand(4, 3, 16, 16)
    assert compare("same", reference, reference.clone(), "cpu").passed
    assert compare("same", reference, reference.clone(), "cpu").min_psnr_db == math.inf
    noisy = reference.clone()
    noisy[2] += 0.02 * torch.randn_like(noisy[2])  # ~34 dB on one frame only: the minimum catches it
    result = compare("noisy", reference, noisy, "cpu")
    assert not result.passed and result.min_psnr_db < 40 < result.mean_psnr_db
    broken = reference.clone()
    broken[1, 0, 0, 0] = float("nan")
    assert not compare("nan", reference, broken, "cpu").passed


def test_torch_compile_matches_eager_with_state_carried() -> None:
    torch.manual_seed(0)
    model = build_model("vdeblur_fast").eval()
    with torch.no_grad():
        model.head[0].weight.normal_(0, 0.02)  # the zero-initialised head would make every path equal
    result = check_parity(model, _clip(), ["torch-compile"])[0]
    # The same FP32 arithmetic on the CPU; on a GPU the compiled candidate runs FP16 (tests/test_cuda.py).
    assert result.status == "ok" and result.passed and result.min_psnr_db > (45 if torch.cuda.is_available() else 100)


def test_parity_cli_reports_a_table_and_refuses_unknown_candidates(fast_checkpoint, tmp_path) -> None:
    pytest.importorskip("onnxruntime")
    result = CliRunner().invoke(cli, ["parity", "--model", str(fast_checkpoint), "--frames", "3",
                                      "--candidates", "onnx-fp16"])
    assert result.exit_code == 0, result.output
    assert "| onnx-fp16 | cpu | 3 |" in result.output
    bad = CliRunner().invoke(cli, ["parity", "--model", str(fast_checkpoint), "--candidates", "tensorrt-int4"])
    assert bad.exit_code != 0 and "unknown parity candidate" in str(bad.exception)


def test_compile_modes_are_checked_before_any_work(fast_checkpoint) -> None:
    model, _ = load_checkpoint(fast_checkpoint)
    with pytest.raises(ValueError, match="allowed: off, inductor, cuda-graphs"):
        TorchBackend(model, "cpu", compile="tensorrt")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="cuda-graphs needs a CUDA device"):
            TorchBackend(model, "cpu", compile="cuda-graphs")
    with pytest.raises(ValueError, match="CUDA graphs need CUDA tensors"):
        CudaGraphStep(lambda f, s: (f, s))(torch.zeros(1, 3, 8, 8), ())


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a CUDA GPU")
def test_cuda_graphs_replay_equals_eager_across_frames_and_sizes(fast_checkpoint) -> None:
    eager = load_backend(str(fast_checkpoint), "torch", "cuda")
    graphed = load_backend(str(fast_checkpoint), "torch", "cuda", compile="cuda-graphs")
    for h, w in ((64, 96), (128, 64), (64, 96)):  # a second size, then back to the first graph
        s1, s2 = eager.initial_state(h, w), graphed.initial_state(h, w)
        for _ in range(3):
            x = torch.rand(1, 3, h, w, device="cuda")
            (y1, s1), (y2, s2) = eager.run(x, s1), graphed.run(x, s2)
            torch.testing.assert_close(y2, y1, rtol=1e-4, atol=1e-4)


def test_compile_is_refused_for_non_torch_model_files(tmp_path) -> None:
    graph = tmp_path / "model.onnx"
    graph.write_bytes(b"not read: the refusal comes first")
    with pytest.raises(ValueError, match="--compile inductor applies to the torch backend; model.onnx runs on onnxruntime"):
        load_backend(str(graph), compile="inductor")
