"""The model study's tooling: curves from training logs, per-clip evaluation, the study script's refusals."""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import write_tiny_gopro

from vdeblur.benchmarks.model_study import main, read_curve
from vdeblur.train.checkpoint import save_checkpoint
from vdeblur.train.registry import build_model
from vdeblur.train.run_state import LOG_COLUMNS

REPO = Path(__file__).resolve().parents[1]


def _log(path: Path, rows: list[dict[str, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, LOG_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def test_curves_read_validation_rows_against_cpu_minutes(tmp_path: Path) -> None:
    _log(tmp_path / "runs" / "a" / "log.csv", [
        {"step": "50", "cpu_s": "30", "g_loss": "0.1"},  # a training row: no validation, not a curve point
        {"step": "100", "cpu_s": "120", "val_psnr": "30.5", "val_input_psnr": "30.0", "val_ssim": "0.81",
         "val_input_ssim": "0.80"},
    ])
    points = read_curve(tmp_path / "runs" / "a" / "log.csv")
    assert len(points) == 1 and points[0].cpu_min == 2.0 and points[0].gain == pytest.approx(0.5)
    main(["curves", "--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "out")])
    text = (tmp_path / "out" / "curves.md").read_text()
    assert "| a | 100 | 2.0 | 30.50 | 30.00 | +0.500 |" in text
    assert json.loads((tmp_path / "out" / "curves.json").read_text())["a"][0]["gain"] == pytest.approx(0.5)


def test_evaluate_reports_mean_worst_clip_and_share_improved(tmp_path: Path, photo: np.ndarray) -> None:
    data = write_tiny_gopro(tmp_path / "gopro", photo)
    identity = save_checkpoint(tmp_path / "identity.safetensors", build_model("vdeblur_fast"))  # zero head
    main(["evaluate", "--checkpoint", f"id={identity}", "--eval", str(data), "--out", str(tmp_path / "out")])
    [result] = json.loads((tmp_path / "out" / "evaluation.json").read_text())
    # The untrained model is the identity: exactly the input's scores, no clip better or worse.
    assert result["gain"] == 0 and result["worst_clip_gain"] == 0 and result["share_improved"] == 0
    assert result["clips"] == 1 and result["frames"] == 3 and len(result["per_clip"]) == 1
    with pytest.raises(SystemExit, match="expected NAME=PATH"):
        main(["evaluate", "--checkpoint", "nope", "--eval", str(data), "--out", str(tmp_path / "out")])


def test_study_script_refuses_an_unknown_candidate() -> None:
    result = subprocess.run(["bash", str(REPO / "scripts" / "model_study.sh"), "nonsense"], capture_output=True, text=True)
    assert result.returncode == 2 and "unknown candidate 'nonsense'; allowed: fast deep" in result.stderr


def test_evaluate_scores_the_moving_regions_of_a_set_rendered_with_objects(tmp_path: Path) -> None:
    from vdeblur.train.synth.render_dataset import main as render

    render(["--source", "skimage", "--out", str(tmp_path / "moving"), "--split", "test", "--sequences", "2",
            "--frames", "3", "--size", "48x64", "--seed", "3", "--blur-px", "3", "6", "--objects", "--parallax"])
    masks = sorted((tmp_path / "moving" / "test").glob("*/mask/*.png"))
    assert len(masks) == 6
    record = json.loads((tmp_path / "moving" / "test-seq.json").read_text())
    assert record["objects"] is True and record["parallax"] is True
    identity = save_checkpoint(tmp_path / "identity.safetensors", build_model("vdeblur_fast"))
    main(["evaluate", "--checkpoint", f"id={identity}", "--eval", str(tmp_path / "moving"), "--out", str(tmp_path / "out")])
    [result] = json.loads((tmp_path / "out" / "evaluation.json").read_text())
    assert result["moving_gain"] == 0  # the identity, inside the masks too
    assert all(c["moving_psnr"] == c["moving_input_psnr"] for c in result["per_clip"] if c["moving_psnr"] is not None)
    assert "gain in moving regions" in (tmp_path / "out" / "evaluation.md").read_text()


def test_evaluate_can_tell_an_aligned_model_a_wrong_motion(tmp_path: Path, photo: np.ndarray) -> None:
    """--misalign: the bundled aligned model is told every motion shifted, with its confidence kept; its
    output changes and its row says so, while a model without the aligned input runs as always."""
    data = write_tiny_gopro(tmp_path / "gopro", photo)
    bundled = REPO / "vdeblur" / "models" / "vdeblur_deep.safetensors"
    single = save_checkpoint(tmp_path / "single.safetensors", build_model("vdeblur_fast"))
    results = {}
    for px in ("0", "12"):
        main(["evaluate", "--checkpoint", f"deep={bundled}", "--checkpoint", f"single={single}", "--eval", str(data),
              "--misalign", px, "--out", str(tmp_path / px)])
        results[px] = {r["model"]: r for r in json.loads((tmp_path / px / "evaluation.json").read_text())}
    assert set(results["12"]) == {"deep, told 12 px wrong", "single"}
    assert results["12"]["single"]["psnr"] == results["0"]["single"]["psnr"]
    # The same frames through the same weights: any change is what it was told (it copes: a small loss).
    assert results["12"]["deep, told 12 px wrong"]["psnr"] < results["0"]["deep"]["psnr"]
