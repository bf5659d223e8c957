"""Other projects' released deblurrers read through ``vdeblur.train.foreign`` match their authors' code.

The fixtures (tests/fixtures/published, made by scripts/published_fixtures.py from the authors'
public repositories) hold reduced-width networks with random weights, saved in the authors' own
checkpoint formats, and what the authors' whole inference path returned for fixed inputs. No
released weights are involved. The manifests hold the names and shapes of the released files.
"""

from __future__ import annotations

import lzma
from pathlib import Path

import numpy as np
import pytest
import torch

from vdeblur.train.checkpoint import CheckpointError, load_checkpoint, read_info
from vdeblur.train.foreign import detect, expected_shapes, load_foreign

FIXTURES = Path(__file__).parent / "fixtures" / "published"
MANIFESTS = FIXTURES / "manifests"
# (manifest, our architecture, config read from the released configuration, prefix of the file's names)
RELEASED = [
    ("NAFNet-GoPro-width32.pth", "nafnet_local", {"width": 32}, ""),
    ("NAFNet-GoPro-width64.pth", "nafnet_local", {"width": 64}, ""),
    ("NAFNet-REDS-width64.pth", "nafnet_local", {"width": 64}, ""),
    ("fpn_mobilenet.h5", "deblurgan_v2_mobilenet", {}, "module."),
    ("fpn_inception.h5", "deblurgan_v2_inception", {}, "module."),
]
DEBLURGAN_V2 = {"fpn_mobilenet-width16": "deblurgan_v2_mobilenet", "fpn_inception-width16": "deblurgan_v2_inception"}


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """The fixture checkpoints, decompressed under their authors' file names."""
    folder = tmp_path_factory.mktemp("published")
    out = {}
    for packed in FIXTURES.glob("*.xz"):
        path = folder / packed.name.removesuffix(".xz")
        path.write_bytes(lzma.decompress(packed.read_bytes()))
        out[path.name] = path
    return out


def run(model: torch.nn.Module, image: np.ndarray) -> np.ndarray:
    """The engine's view of an 8-bit RGB image: float32 in [0, 1], (1, 3, H, W); back to (H, W, 3)."""
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        y, state = model(x, ())
    assert state == ()
    return y[0].permute(1, 2, 0).numpy()


def read_manifest(name: str) -> dict[str, tuple[int, ...]]:
    rows = [line.split("\t") for line in (MANIFESTS / f"{name}.txt").read_text().splitlines() if not line.startswith("#")]
    return {n: tuple(int(d) for d in shape.split("x")) if shape else () for n, shape in rows}


@pytest.mark.parametrize("manifest, arch, config, prefix", RELEASED, ids=[r[0] for r in RELEASED])
def test_released_layouts_are_ours_exactly(manifest: str, arch: str, config: dict, prefix: str) -> None:
    released = read_manifest(manifest)
    ours = {prefix + k: tuple(v) for k, v in expected_shapes(arch, config).items()}
    assert ours == released
    # ... and the reader takes a file of that layout for that architecture, config included.
    name, detected = detect({k.removeprefix(prefix): torch.Size(v) for k, v in released.items()})
    assert name == arch and all(detected[k] == v for k, v in config.items())


def test_nafnet_matches_the_authors_forward(files) -> None:
    records = np.load(FIXTURES / "nafnet-width8.npz")
    clamp = np.clip  # the authors' tensor2img clamps to [0, 1]; our forward does it itself
    model, _ = load_checkpoint(files["nafnet-width8.pth"], arch="nafnet")
    assert np.abs(run(model, records["image"]) - clamp(records["nafnet"], 0, 1)).max() <= 1e-5
    # TLC: with a 64 px training crop the windows (96 px at full resolution) are smaller than the
    # 100x120 image, so the local attention differs from the global one, and matches the authors'.
    local, _ = load_foreign(files["nafnet-width8.pth"], "nafnet_local", {"train_size": 64})
    got = run(local, records["image"])
    assert np.abs(got - clamp(records["nafnet_local_train64"], 0, 1)).max() <= 1e-5
    assert np.abs(got - clamp(records["nafnet"], 0, 1)).max() > 1e-3


@pytest.mark.parametrize("stem", DEBLURGAN_V2)
def test_deblurganv2_matches_the_authors_predictor(stem: str, files) -> None:
    records = np.load(FIXTURES / f"{stem}.npz")
    model, info = load_checkpoint(files[f"{stem}.h5"])
    assert info.model == DEBLURGAN_V2[stem] and info.config["num_filters"] == 16 and info.config["num_filters_fpn"] == 32
    for case in ("odd", "multiple"):  # a frame that is not a multiple of 32, and one that still gets a whole extra block
        assert np.abs(run(model, records[f"image_{case}"]) - records[f"out_{case}"]).max() <= 1e-5, case


def test_reader_finds_the_weights_in_every_container_and_describes_them(files, tmp_path) -> None:
    state = torch.load(files["nafnet-width8.pth"], weights_only=True)["params"]
    reference, info = load_foreign(files["nafnet-width8.pth"])
    assert info.model == "nafnet_local" and info.config["enc_blocks"] == (1, 1, 1, 2) and info.config["width"] == 8
    assert info.extra["source_file"] == "nafnet-width8.pth" and info.extra["source_weights"] == "'params'"
    assert read_info(files["nafnet-width8.pth"]) == info
    x = torch.rand(1, 3, 40, 56)
    for container in ({"params_ema": state}, state, {"state_dict": {f"module.{k}": v for k, v in state.items()}}):
        torch.save(container, tmp_path / "other.pth")
        model, _ = load_foreign(tmp_path / "other.pth")
        with torch.no_grad():
            assert torch.equal(model(x)[0], reference(x)[0])


def test_files_that_fit_nothing_get_one_line_naming_the_closest_layout(files, tmp_path) -> None:
    state = torch.load(files["nafnet-width8.pth"], weights_only=True)["params"]
    state.pop("ending.bias")
    state["intro.weight"] = torch.zeros(8, 3, 5, 5)
    torch.save({"params": state}, tmp_path / "edited.pth")
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(tmp_path / "edited.pth")
    message = str(e.value)
    assert "\n" not in message and "closest is NAFNet" in message
    assert "1 missing" in message and "ending.bias" in message and "intro.weight: file (8, 3, 5, 5)" in message

    torch.save({"model": {"conv.weight": torch.zeros(4, 3, 3, 3)}}, tmp_path / "unknown.h5")
    with pytest.raises(CheckpointError, match="matches no known layout"):
        load_checkpoint(tmp_path / "unknown.h5")
    with pytest.raises(CheckpointError, match="--arch 'deblurgan' reads no foreign checkpoint; allowed: nafnet_local"):
        load_checkpoint(files["nafnet-width8.pth"], arch="deblurgan")
    with pytest.raises(CheckpointError, match="DeblurGAN-v2 FPN-MobileNet"):
        load_checkpoint(files["nafnet-width8.pth"], arch="deblurgan_v2_mobilenet")
    (tmp_path / "text.pth").write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="not a torch checkpoint that loads without running code"):
        load_checkpoint(tmp_path / "text.pth")


class Payload:
    """A pickled object: loading it would run code, which weights_only refuses."""


def test_pickled_code_is_refused(tmp_path) -> None:
    torch.save({"params": Payload()}, tmp_path / "code.pth")
    with pytest.raises(CheckpointError, match="without running code"):
        load_checkpoint(tmp_path / "code.pth")


def test_export_saves_their_file_as_a_self_describing_checkpoint(files, tmp_path) -> None:
    from vdeblur.export.cli import main

    out = tmp_path / "nafnet.safetensors"
    main(["safetensors", "--model", str(files["fpn_mobilenet-width16.h5"]), "--source", "https://example.org/fpn_mobilenet.h5",
          "--licence", "BSD-3-Clause", str(out)])
    ours, info = load_checkpoint(out)
    theirs, their_info = load_checkpoint(files["fpn_mobilenet-width16.h5"])
    assert info.model == their_info.model and info.config == their_info.config
    assert info.extra["licence"] == "BSD-3-Clause" and info.extra["source"].endswith("fpn_mobilenet.h5")
    assert info.extra["source_sha256"] == their_info.extra["source_sha256"]
    x = torch.rand(1, 3, 45, 61)
    with torch.no_grad():
        assert torch.equal(ours(x)[0], theirs(x)[0])
    with pytest.raises(SystemExit):
        main(["safetensors", "--model", str(out), "--source", "-", "--licence", "-", str(tmp_path / "again.safetensors")])


def test_exported_graph_pads_every_frame_size_as_the_model(tmp_path) -> None:
    """The padding is computed in the graph (next multiple of 32 plus a block, at least 128 px for
    Inception), not frozen at the size the exporter traced (64x96)."""
    import onnxruntime as ort

    from vdeblur.export.onnx import export_onnx
    from vdeblur.train.registry import build_model

    model = build_model("deblurgan_v2_inception", {"num_filters": 16, "num_filters_fpn": 32, "repeats": (1, 1, 1)}).eval()
    export_onnx(model, tmp_path / "m.onnx")
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    for h, w in [(37, 45), (100, 130), (128, 160)]:
        x = torch.rand(1, 3, h, w)
        with torch.no_grad():
            expected = model(x)[0].numpy()
        got = session.run(None, {"frame": x.numpy()})[0]
        assert got.shape == (1, 3, h, w) and np.abs(got - expected).max() < 4e-4, (h, w)


def test_frames_batched_together_keep_their_own_statistics(files) -> None:
    """DeblurGAN-v2 normalises with each frame's statistics: a batch (--streams) gives each frame what it gets alone."""
    model, _ = load_checkpoint(files["fpn_mobilenet-width16.h5"])
    a, b = torch.rand(1, 3, 40, 56), torch.rand(1, 3, 40, 56) * 0.5
    with torch.no_grad():
        together = model(torch.cat([a, b]))[0]
        alone = torch.cat([model(a)[0], model(b)[0]])
    # Batched convolutions round differently, which this random network amplifies to ~1e-4; statistics
    # shared across the batch would move b's output by tenths.
    assert (together - alone).abs().max() < 1e-3
