"""Self-describing checkpoints: round trip, and refusals that say what differs."""

from pathlib import Path

import pytest
import torch

from vdeblur.train.checkpoint import CheckpointError, load_checkpoint, load_weights, read_info, save_checkpoint
from vdeblur.train.registry import build_model


@pytest.mark.parametrize("name", ["vdeblur_fast", "pix2pix_sa_sn", "deblurgan_feedback"])
def test_round_trip_rebuilds_model_config_and_weights(tmp_path: Path, name: str) -> None:
    model = build_model(name, {"ngf": 8} if name.startswith("deblurgan") else None)
    path = save_checkpoint(tmp_path / "m.safetensors", model, step=42, metrics={"psnr": 30.5})
    loaded, info = load_checkpoint(path)
    assert (info.model, info.step, info.metrics) == (name, 42, {"psnr": 30.5})
    assert loaded.cfg == model.cfg and not loaded.training
    for (k, a), (k2, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert k == k2 and torch.equal(a, b)


def test_wrong_model_and_wrong_config_are_refused(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "fast.safetensors", build_model("vdeblur_fast"))
    with pytest.raises(CheckpointError, match="holds a 'vdeblur_fast' model, not 'rir'"):
        load_weights(build_model("rir"), path)
    with pytest.raises(CheckpointError, match=r"config differs in \['lstm_hidden'\]"):
        load_weights(build_model("vdeblur_fast", {"lstm_hidden": 32}), path)


def test_non_checkpoints_are_refused(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00" * 100)
    with pytest.raises(CheckpointError, match="not a safetensors checkpoint"):
        read_info(garbage)
    with pytest.raises(CheckpointError, match="does not exist"):
        read_info(tmp_path / "missing.safetensors")
    from safetensors.torch import save_file

    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign))
    with pytest.raises(CheckpointError, match="not a vdeblur checkpoint"):
        read_info(foreign)


def test_truncated_weights_are_refused(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "m.safetensors", build_model("vdeblur_fast"))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError):
        load_checkpoint(path)
