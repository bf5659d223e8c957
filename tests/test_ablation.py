"""The ablation script end to end on a tiny budget: every row trains, the table regenerates from checkpoints."""

import json
from pathlib import Path

import cv2
import pytest
from conftest import write_tiny_gopro

from vdeblur.benchmarks.ablation import ROWS, AblationBudget, main, pick_rows, row_overrides, write_table
from vdeblur.train.checkpoint import read_info
from vdeblur.train.config import load_config


pytestmark = pytest.mark.usefixtures("one_thread")


def test_every_paper_row_and_ours_is_there_with_the_papers_numbers() -> None:
    assert len(ROWS) == 11 and ROWS[-1].key == "vdeblur_fast"
    paper = {r.label: (r.paper_psnr, r.paper_ssim) for r in ROWS}
    assert paper["+SA+GR"] == (27.29, 0.858) and paper["DeblurGAN"] == (28.70, 0.958) and paper["RiR"] == (22.70, 0.640)
    for row in ROWS:
        load_config(row.key)  # a preset per row


def test_overrides_share_the_budget_and_replace_only_what_cannot_run(tmp_path: Path) -> None:
    budget = AblationBudget(steps=7, batch=2, crop=32, window=2)
    for row in ROWS:
        cfg = load_config(row.key, row_overrides(row, budget, tmp_path))
        assert (cfg.train.steps, cfg.train.batch, cfg.train.crop, cfg.train.window) == (7, 2, 32, 2)
        assert cfg.data.kind == "gopro" and cfg.loss.perceptual_weight == 0
        assert cfg.loss.content_weight > 0, f"{row.key} would train on the GAN loss alone"
        if row.key.startswith("pix2pix"):
            assert cfg.model.overrides["num_downs"] == 5  # 2**5 = the crop
    kept = load_config("deblurgan", row_overrides(ROWS[7], budget, tmp_path, vgg_weights="vgg19.pth"))
    assert kept.loss.perceptual_weight == 100 and kept.loss.vgg_weights == "vgg19.pth"
    with pytest.raises(ValueError, match="power of two"):
        AblationBudget(crop=48)
    with pytest.raises(ValueError, match="unknown ablation row"):
        pick_rows("pix2pix,resnet")


def test_tiny_budget_trains_every_row_and_regenerates_the_table(tmp_path: Path, photo) -> None:
    data = write_tiny_gopro(tmp_path / "data", photo)
    runs, out = tmp_path / "runs", tmp_path / "out"
    main(["train", "--data", str(data), "--runs", str(runs), "--steps", "1", "--batch", "1", "--crop", "32",
          "--val-every", "1", "--val-sequences", "1", "--set", "data.val_size=0"])  # whole 48x48 test frames
    for row in ROWS:
        assert read_info(runs / row.key / "last.safetensors").step == 1
    paths = write_table(ROWS, runs, data, out, frames=2, latency=False)
    assert [p.name for p in paths] == ["ablation.json", "ablation.md", "ablation_crops.png"]
    report = json.loads(paths[0].read_text())
    keys = [r["key"] for r in report["results"]]
    assert keys == ["input"] + [r.key for r in ROWS]
    assert all(r["steps"] == 1 for r in report["results"][1:])
    assert report["budget"]["pix2pix"]["train"]["crop"] == 32
    table = paths[1].read_text()
    assert "| DeblurGAN+Feedback | 27.20 / 0.827 |" in table and "| blurred input (no model) |" in table
    picture = cv2.imread(str(paths[2]))
    assert picture is not None and picture.shape == (3 * 48, 5 * 48, 3)  # 13 tiles of 48 px, 5 a row
