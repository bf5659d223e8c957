"""vdeblur-bench: the quick path runs end to end, baselines do what they claim, reports are valid."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from vdeblur.benchmarks import cli, report
from vdeblur.benchmarks.baselines import (BaselineConfig, baseline_filters, estimate_motion_kernel,
                                          gaussian_blur_covariance, line_kernel, richardson_lucy, wiener)
from vdeblur.benchmarks.quality import Clip, baseline_method, evaluate, mean_frame_difference
from vdeblur.train.metrics import psnr_ssim_uint8


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    def t(x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(x).permute(2, 0, 1)[None].float() / 255

    return psnr_ssim_uint8(t(a), t(b))[0]


def _motion_blur(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    blurred = cv2.filter2D(image.astype(np.float32), -1, kernel.astype(np.float32), borderType=cv2.BORDER_REFLECT)
    return np.clip(np.round(blurred), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def blurred_photo(photo: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    sharp = photo[128:384, 128:384].copy()  # 256x256 keeps the deconvolutions fast
    return _motion_blur(sharp, line_kernel(9, 30)), sharp


def test_kernel_estimate_recovers_a_known_straight_motion(photo: np.ndarray) -> None:
    for length, angle in ((9, 30), (15, 120)):
        est = estimate_motion_kernel(_motion_blur(photo, line_kernel(length, angle)))
        assert abs(est.length - length) <= 1.5
        assert min(abs(est.angle_deg - angle), 180 - abs(est.angle_deg - angle)) <= 4


def test_kernel_estimate_finds_no_blur_in_a_sharp_photo(photo: np.ndarray) -> None:
    assert estimate_motion_kernel(photo).length == 1.0


def test_deconvolution_baselines_improve_psnr_on_a_known_kernel_blur(blurred_photo) -> None:
    blurred, sharp = blurred_photo
    before = _psnr(blurred, sharp)
    for name in ("wiener", "richardson_lucy"):
        after = _psnr(baseline_filters()[name](blurred), sharp)
        assert after > before + 1.0, f"{name}: {before:.2f} -> {after:.2f} dB"
    # With the true kernel handed in, both must do at least as well as the input does.
    true_kernel = line_kernel(9, 30)
    assert _psnr(wiener(blurred, kernel=true_kernel), sharp) > before
    assert _psnr(richardson_lucy(blurred, kernel=true_kernel), sharp) > before


def test_gaussian_fallback_estimates_an_isotropic_blur(photo: np.ndarray) -> None:
    blurred = cv2.GaussianBlur(photo, (0, 0), sigmaX=2.0, borderType=cv2.BORDER_REFLECT)
    assert estimate_motion_kernel(blurred).length == 1.0  # no straight-line dip: the fallback must act
    sigmas = np.sqrt(np.linalg.eigvalsh(gaussian_blur_covariance(blurred)))
    assert 1.0 < sigmas.min() <= sigmas.max() < 3.0 and sigmas.max() / sigmas.min() < 1.5
    assert _psnr(baseline_filters()["wiener"](blurred), photo) > _psnr(blurred, photo)


def test_deconvolution_leaves_a_sharp_frame_alone(photo: np.ndarray) -> None:
    np.testing.assert_array_equal(wiener(photo), photo)


def test_input_baseline_is_the_identity_and_unsharp_changes_edges(blurred_photo) -> None:
    blurred, sharp = blurred_photo
    filters = baseline_filters(BaselineConfig())
    np.testing.assert_array_equal(filters["input"](blurred), blurred)
    sharpened = filters["unsharp"](blurred)
    assert abs(_psnr(sharpened, sharp) - _psnr(blurred, sharp)) < 3  # a mild filter, not a broken range
    assert np.abs(cv2.Laplacian(sharpened, cv2.CV_32F)).mean() > np.abs(cv2.Laplacian(blurred, cv2.CV_32F)).mean()


def test_baselines_refuse_wrong_frames() -> None:
    with pytest.raises(ValueError, match=r"uint8 RGB"):
        baseline_filters()["wiener"](np.zeros((8, 8), np.float32))


def test_flicker_figure_and_quality_of_the_identity(blurred_photo) -> None:
    blurred, sharp = blurred_photo
    clip = Clip("c", np.stack([blurred, blurred, np.roll(blurred, 2, axis=1)]), np.stack([sharp] * 3))
    result = evaluate("input", "baseline", "-", baseline_method(baseline_filters()["input"]), [clip], "test")
    assert result.psnr == pytest.approx(np.mean([_psnr(f, sharp) for f in clip.blurred]), abs=1e-6)  # per-frame mean
    assert result.flicker_sharp == 0.0
    assert result.flicker == pytest.approx(mean_frame_difference(clip.blurred))
    assert result.flicker > 0 and result.frames == 3


def test_resolutions_and_checkpoint_specs_parse_or_name_what_is_allowed() -> None:
    assert cli.parse_resolution("720p") == (1280, 720)
    assert cli.parse_resolution("96x64") == (96, 64)
    with pytest.raises(ValueError, match="360p, 720p, 1080p or WxH"):
        cli.parse_resolution("4k")
    with pytest.raises(ValueError, match="NAME=PATH"):
        cli.parse_checkpoints(("runs/best.safetensors",))
    with pytest.raises(ValueError, match="allowed: torch-fp32"):
        cli.settings_from_options(True, None, "tensorflow", None, None, None, None, None, None, None, True)


def test_pareto_front_keeps_only_undominated_points() -> None:
    points = [(10.0, 20.0), (5.0, 25.0), (8.0, 19.0), (1.0, 24.0), (20.0, 18.0)]
    assert report.pareto_front(points) == [(20.0, 18.0), (10.0, 20.0), (5.0, 25.0)]


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[report.BenchReport, object]:
    """The --quick path on tiny sizes: every part, both CPU backends plus the GPU-only ones (skipped)."""
    out = tmp_path_factory.mktemp("bench")
    # One thread: on a CPU shared with other processes, two OpenMP threads wait on each other's time slices.
    settings = cli.settings_from_options(True, "vdeblur_fast", "torch-fp32,onnxruntime,torch-fp16,tensorrt-fp16",
                                         "64x48", None, None, 2, 1, 1, "48x32", True, threads=1)
    threads = torch.get_num_threads()
    try:
        result = cli.run_benchmarks(settings, None, out, tmp_path_factory.mktemp("work"), echo=lambda _: None,
                                    argv=["--quick"])
    finally:
        torch.set_num_threads(threads)  # run_benchmarks sets it for the process; later tests expect the default
    return result, out


def test_quick_run_writes_json_with_every_field(quick_run) -> None:
    result, out = quick_run
    data = json.loads((out / "bench.json").read_text())
    assert data["command"] == "vdeblur-bench --quick"
    for key in ("cpu", "logical_cores", "gpu", "gpu_driver", "libraries", "load_average_at_start"):
        assert key in data["machine"]
    rows = {(r["backend"], r["status"]) for r in data["latency"]}
    assert {("torch-fp32", "ok"), ("onnxruntime", "ok")} <= rows
    if not torch.cuda.is_available():
        assert ("torch-fp16", "skipped") in rows
    for row in data["latency"]:
        assert row["width"] == 64 and row["height"] == 48
        if row["status"] == "ok":
            assert 0 < row["p50_ms"] <= row["p95_ms"] <= row["p99_ms"] and row["fps"] > 0
            assert row["peak_rss_mib"] > 0 and row["params"] > 0 and row["gflops"] > 0
        else:
            assert row["reason"]
    methods = {r["method"] for r in data["quality"]}
    assert methods == {"input", "unsharp", "wiener", "richardson_lucy", "vdeblur_fast"}
    assert all(r["psnr"] > 0 and 0 < r["ssim"] <= 1 and r["flicker_sharp"] >= 0 for r in data["quality"])
    # vdeblur_fast runs the bundled weights when they ship, random weights (and says so) otherwise.
    import vdeblur

    quality_weights = {r["method"]: r["weights"] for r in data["quality"]}
    if vdeblur.bundled_model_path("vdeblur_fast").is_file():
        assert quality_weights["vdeblur_fast"] == str(vdeblur.bundled_model_path("vdeblur_fast"))
        assert not any("Untrained" in note for note in data["notes"])
    else:
        assert any("Untrained" in note for note in data["notes"])
    for stage in data["stages"]:
        assert set(stage["stage_ms"]) == {"decode", "motion", "host_to_device", "inference", "device_to_host", "encode"}
        assert stage["stage_ms"]["motion"] == 0  # the quick run's models take no motion input
        # Both figures of the ratio come from one pipelined run, whose inference stage lies inside its wall time.
        assert stage["end_to_end_ms"] >= stage["pipeline_inference_ms"] > 0
        assert stage["ratio"] == pytest.approx(stage["end_to_end_ms"] / stage["pipeline_inference_ms"]) and stage["ratio"] >= 1


def test_quick_run_markdown_has_a_table_per_part(quick_run) -> None:
    result, out = quick_run
    text = (out / "bench.md").read_text()
    assert "Command: `vdeblur-bench --quick`" in text
    for heading in ("## Latency", "## Quality", "## Pipeline stages"):
        assert heading in text
    table = [line for line in text.splitlines() if line.startswith("| `vdeblur_fast` | onnxruntime")]
    header = next(line for line in text.splitlines() if line.startswith("| model | backend | resolution | p50"))
    assert table and table[0].count("|") == header.count("|")


def test_plots_are_drawn_with_matplotlib(quick_run, tmp_path) -> None:
    pytest.importorskip("matplotlib")
    result, _ = quick_run
    paths = report.write_plots(result, tmp_path)
    assert {p.name for p in paths} == {"latency_vs_resolution.png", "quality_vs_speed.png"}
    for path in paths:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plots_without_matplotlib_say_how_to_install_it(quick_run, tmp_path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` raise ImportError
    with pytest.raises(ImportError, match=r'pip install "vdeblur\[bench\]"'):
        report.write_plots(quick_run[0], tmp_path)


def test_cli_turns_a_bad_option_into_one_line(tmp_path) -> None:
    from click.testing import CliRunner

    result = CliRunner().invoke(cli.bench, ["--resolutions", "4k", "--out", str(tmp_path)])
    assert result.exit_code == 1
    assert "resolution '4k' is not one of 360p, 720p, 1080p or WxH" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "bench.json").exists()


TINY_RUN = ["--parts", "latency", "--backends", "torch-fp32", "--resolutions", "32x32", "--frames", "2", "--repeats",
            "1", "--threads", "1"]


def test_an_existing_results_folder_is_refused_without_overwrite(tmp_path) -> None:
    from click.testing import CliRunner

    earlier = tmp_path / "bench.md"
    earlier.write_text("earlier results")
    result = CliRunner().invoke(cli.bench, [*TINY_RUN, "--out", str(tmp_path)])
    assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1
    assert f"--out {tmp_path} already holds files (bench.md); give another --out, or --overwrite" in result.output
    assert earlier.read_text() == "earlier results" and sorted(tmp_path.iterdir()) == [earlier]
    (tmp_path / "a-file").write_text("")
    result = CliRunner().invoke(cli.bench, [*TINY_RUN, "--out", str(tmp_path / "a-file")])
    assert result.exit_code == 1 and "is a file; give a folder" in result.output

    result = CliRunner().invoke(cli.bench, [*TINY_RUN, "--out", str(tmp_path), "--overwrite"])
    assert result.exit_code == 0, result.output
    assert earlier.read_text().startswith("# vdeblur benchmark") and (tmp_path / "bench.json").exists()


def test_without_out_results_go_to_a_new_timestamped_folder(tmp_path, monkeypatch) -> None:
    from click.testing import CliRunner

    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli.bench, TINY_RUN)
    assert result.exit_code == 0, result.output
    (folder,) = (tmp_path / "bench-results").iterdir()
    assert re.fullmatch(r"\d{8}-\d{6}", folder.name) and (folder / "bench.json").exists()
    assert f"wrote {Path('bench-results') / folder.name / 'bench.json'}" in result.output


def test_streams_option_adds_the_multistream_figures(tmp_path) -> None:
    from click.testing import CliRunner

    result = CliRunner().invoke(cli.bench, ["--parts", "latency", "--backends", "torch-fp32", "--resolutions", "64x48",
                                            "--frames", "2", "--repeats", "1", "--threads", "1", "--streams", "1,2",
                                            "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    figures = json.loads((tmp_path / "multistream.json").read_text())
    assert [row["streams"] for row in figures["rows"]] == [1, 2] and (tmp_path / "bench.json").exists()
    assert "codec-only" in result.output


def test_a_file_of_a_bundled_architecture_gets_its_own_rows(tmp_path, fast_checkpoint) -> None:
    """--models vdeblur_fast --model FILE (also vdeblur_fast): two rows each, the bundled weights and the file's."""
    from click.testing import CliRunner

    result = CliRunner().invoke(cli.bench, ["--models", "vdeblur_fast", "--model", str(fast_checkpoint), "--parts",
                                            "latency,quality", "--backends", "torch-fp32,onnxruntime", "--resolutions",
                                            "64x48", "--frames", "2", "--repeats", "1", "--clips", "1", "--clip-size",
                                            "48x32", "--no-baselines", "--threads", "1", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "bench.json").read_text())
    label = f"vdeblur_fast ({fast_checkpoint.name})"
    assert [(r["model"], r["backend"]) for r in data["latency"]] == [
        ("vdeblur_fast", "torch-fp32"), ("vdeblur_fast", "onnxruntime"), (label, "torch-fp32"), (label, "onnxruntime")]
    quality = {r["method"]: r["weights"] for r in data["quality"]}
    assert quality[label] == str(fast_checkpoint) and quality["vdeblur_fast"].endswith("vdeblur_fast.safetensors")
    # The file's weights differ from the bundled ones (a randomised head), so their outputs differ.
    psnr = {r["method"]: r["psnr"] for r in data["quality"]}
    assert psnr[label] != psnr["vdeblur_fast"]
    assert data["settings"]["weights"][label] == str(fast_checkpoint)


def test_the_same_file_twice_is_refused_in_one_line(fast_checkpoint) -> None:
    with pytest.raises(ValueError, match="given twice"):
        cli.bench_entries(("vdeblur_fast",), {}, (str(fast_checkpoint),) * 3)
    with pytest.raises(ValueError, match="not among --models"):
        cli.bench_entries(("vdeblur_fast",), {"vdeblur_deep": fast_checkpoint}, ())


def test_before_after_picture_has_one_row_per_sequence(tmp_path, fast_checkpoint) -> None:
    from vdeblur.benchmarks.before_after import main as before_after
    from vdeblur.train.data import SyntheticDataset
    from vdeblur.train.synth.render_dataset import render_folder
    from vdeblur.train.synth.sources import open_source

    render_folder(SyntheticDataset([open_source("skimage")], length=2, frames=3, height=64, width=96, seed=1),
                  tmp_path / "shake", "test")
    out = tmp_path / "ba.png"
    before_after(["--model", str(fast_checkpoint), "--gopro", str(tmp_path / "shake"), "--out", str(out),
                  "--rows", "2", "--frames", "3", "--crop", "48"])
    assert cv2.imread(str(out)).shape == (2 * 48, 3 * 48, 3)


def test_train_speed_rows_cover_precision_and_layout_with_gradient_checks() -> None:
    from vdeblur.benchmarks.train_speed import measure, table

    torch.set_num_threads(1)
    rows = measure("vdeblur_fast", batch=2, crop=32, steps=1, device=torch.device("cpu"))
    assert [(r.amp, r.channels_last) for r in rows] == [("off", False), ("off", True), ("bf16", False), ("bf16", True)]
    assert rows[0].grad_cos == pytest.approx(1.0, abs=1e-3) and rows[1].grad_cos > 0.999  # layout alone: the same gradient
    assert all(r.grad_cos > 0.99 and r.cpu_s > 0 for r in rows)
    assert "| bf16 | true |" in table(rows) and "1.00x" in table(rows)


def test_stages_time_the_motion_estimate_of_a_model_that_takes_the_previous_frame(tmp_path) -> None:
    from vdeblur.benchmarks.stages import StagesConfig, measure_stages
    from vdeblur.train.registry import build_model

    model = build_model("vdeblur_deep", {"channels": (8, 8, 16, 16), "lstm_hidden": 8, "feedback": 4,
                                         "aligned_previous": True}).eval()
    stage = measure_stages(model, "torch-fp32", 96, 64, StagesConfig(frames=4), tmp_path, threads=1)
    assert stage is not None and stage.stage_ms["motion"] > 0 and stage.stage_ms["inference"] > 0
    assert "| motion ms |" in report.stages_table([stage])


def test_aligned_probe_trains_and_scores_every_arm(tmp_path, photo: np.ndarray) -> None:
    """Each arm of the probe builds its input, trains a step and runs a held-out clip frame by frame."""
    from vdeblur.benchmarks import aligned_probe as probe
    from vdeblur.train.synth import render_shake_clip

    photos = tmp_path / "photos"
    photos.mkdir()
    cv2.imwrite(str(photos / "a.png"), cv2.cvtColor(photo, cv2.COLOR_RGB2BGR))
    pool = probe.build_pool(photos, clips=2, seed=0)
    assert pool["blurred"].shape == (2, probe.POOL_FRAMES, probe.POOL_SIZE, probe.POOL_SIZE, 3)
    assert pool["homographies"].shape == (2, len(probe.TARGETS), 3, 3, 3) and (pool["confidences"] > 0).any()
    blurred, sharp = render_shake_clip(photo, frames=3, height=48, width=64, seed=1)
    for kind, frames in (("blur", blurred), ("sharp", sharp)):
        (tmp_path / "eval/test/c0" / kind).mkdir(parents=True)
        for t, f in enumerate(frames):
            cv2.imwrite(str(tmp_path / "eval/test/c0" / kind / f"{t:03d}.png"), cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    for name, arm in probe.ARMS.items():
        net, steps = probe.train_arm(arm, pool, seed=0, cpu_s=0.0)  # a budget of nothing still takes one step
        assert steps == 1 and net.e1[0][0].in_channels == arm.in_channels, name
        gains = probe.evaluate(net, arm, tmp_path / "eval")
        assert list(gains) == ["c0"] and np.isfinite(gains["c0"]), name


def test_ghost_share_measures_how_much_of_the_previous_frame_is_pasted_in(tmp_path, fast_checkpoint, capsys) -> None:
    from conftest import make_clip

    from vdeblur.benchmarks.ghosts import ghost_share, main

    rng = np.random.default_rng(0)
    change = rng.normal(0, 20, (8, 10, 3))
    where = np.ones((8, 10), bool)
    assert ghost_share(0.5 * change, change, where) == pytest.approx(0.5)
    assert abs(ghost_share(rng.normal(0, 5, (8, 10, 3)), change, where)) < 0.2
    video = tmp_path / "v.mp4"
    make_clip(video, width=64, height=48, frames=4, audio=False)
    main([str(video), "--reference", str(fast_checkpoint), "--candidate", str(fast_checkpoint), "--frames", "4",
          "--show", "2", "--out", str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert "mean ghost share: moving +0.000, still +0.000 over 3 frames" in out  # the same model: nothing differs
    assert (tmp_path / "out" / "frame0002.png").is_file()


def test_step_cost_times_models_round_by_round_and_refuses_what_it_cannot_time(fast_checkpoint, capsys) -> None:
    from vdeblur.benchmarks.step_cost import StepCost, markdown_table, main, model_input, measure
    from vdeblur.train.registry import build_model

    aligned = build_model("vdeblur_deep", {"channels": [8, 8, 8, 8], "aligned_previous": True}).eval()
    x = model_input(aligned, 32, 48)
    assert x.shape == (1, 7, 32, 48) and torch.equal(x[:, 3:5], torch.full((1, 2, 32, 48), 3.0))
    assert model_input(build_model("vdeblur_fast").eval(), 32, 48).shape == (1, 3, 32, 48)
    rows = measure({"a": aligned, "b": build_model("vdeblur_fast").eval()}, 30, 40, rounds=2, steps=1)
    assert [r.model for r in rows] == ["a", "b"] and all(r.cpu_ms > 0 and r.wall_ms > 0 for r in rows)
    table = markdown_table([StepCost("old", 100.0, 50.0), StepCost("new", 112.0, 40.0)])
    assert "| new | 112.0 | 1.120 | 40.0 | 0.800 |" in table
    main([str(fast_checkpoint), "--size", "48x32", "--rounds", "1", "--steps", "1"])
    assert "48x32, 1 thread(s), median of 1 interleaved rounds" in capsys.readouterr().out
    for argv, said in ((["missing.safetensors"], "model file missing.safetensors does not exist"),
                       ([str(fast_checkpoint), "--size", "big"], "resolution 'big' is not one of 360p, 720p, 1080p or WxH"),
                       ([str(fast_checkpoint), "--size", "12x5"], "size '12x5' is below 16x16"),
                       ([str(fast_checkpoint), str(fast_checkpoint)], "each model once"),
                       ([str(fast_checkpoint), "--rounds", "0"], "must be >= 1")):
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 2 and said in capsys.readouterr().err, argv
