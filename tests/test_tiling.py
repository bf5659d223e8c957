"""`--tile`: overlapping tiles with one state each, blended back into the frame."""

from pathlib import Path

import av
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import make_clip

from vdeblur.engine.backends import load_backend
from vdeblur.engine.cli import cli
from vdeblur.engine.stream import DeblurStream
from vdeblur.engine.tiling import TiledRunner, TileSpec, tile_starts
from vdeblur.train.frames import from_uint8
from vdeblur.train.metrics import psnr_ssim_uint8


class RunningSum:
    """A pointwise recurrent 'model': out = frame + state, state += frame. Spatially local, so tiling
    must reproduce whole-frame results exactly, and only if every tile carries its own state."""

    pad_multiple = 8
    input_kind = "rgb"

    def initial_state(self, height: int, width: int, batch: int = 1) -> torch.Tensor:
        return torch.zeros(batch, 3, height, width)

    def run(self, frame: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return frame + state, state + frame


@pytest.mark.parametrize("length,tile,overlap", [(100, 32, 8), (64, 32, 0), (33, 32, 4), (20, 32, 8), (251, 96, 32)])
def test_tiles_cover_the_frame_with_the_overlap_asked_for(length: int, tile: int, overlap: int) -> None:
    starts = tile_starts(length, tile, overlap)
    size = min(tile, length)
    covered = np.zeros(length, bool)
    for s in starts:
        covered[s:s + size] = True
    assert covered.all() and starts[0] == 0 and starts[-1] + size == length
    assert all(b - a <= tile - overlap for a, b in zip(starts, starts[1:]))  # neighbours share >= overlap


@pytest.mark.parametrize("shape,spec", [((61, 97), TileSpec(32, 8)), ((64, 64), TileSpec(32, 0)), ((40, 130), TileSpec(48, 16))])
def test_pointwise_recurrent_model_is_exact_when_tiled(shape: tuple[int, int], spec: TileSpec) -> None:
    model = RunningSum()
    tiled = TiledRunner(model, spec)
    states = tiled.initial_state(*shape)
    assert len(states) == len(tiled.grid(*shape)) > 1
    whole = model.initial_state(*shape)
    for _ in range(3):
        frame = torch.rand(1, 3, *shape)
        out, states = tiled.run(frame, states)
        ref, whole = model.run(frame, whole)
        torch.testing.assert_close(out, ref, rtol=0, atol=1e-5)


def test_wrong_number_of_states_is_refused() -> None:
    tiled = TiledRunner(RunningSum(), TileSpec(32, 8))
    with pytest.raises(ValueError, match="tile states"):
        tiled.run(torch.rand(1, 3, 64, 64), tiled.initial_state(40, 40))


@pytest.mark.parametrize("tile,overlap", [(8, 0), (64, 32), (64, -1)])
def test_bad_tile_specs_are_refused(tile: int, overlap: int) -> None:
    with pytest.raises(ValueError, match=f"tile {tile} with overlap {overlap}"):
        TileSpec(tile, overlap)


def _frames(n: int, shape: tuple[int, int]) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (shape[0] + 8, shape[1] + 8, 3), dtype=np.uint8)
    return [np.ascontiguousarray(base[i:i + shape[0], i:i + shape[1]]) for i in range(n)]  # a moving scene


def test_real_model_tiled_matches_whole_frames(fast_checkpoint) -> None:
    backend = load_backend(str(fast_checkpoint), "torch", "cpu")
    frames = _frames(3, (120, 200))
    ref = DeblurStream(backend)
    whole = [ref.push(f) for f in frames]
    # A tile as large as the frame is the whole-frame path, bit for bit, state included.
    big = DeblurStream(backend, tile=TileSpec(256, 32))
    assert all(np.array_equal(big.push(f), w) for f, w in zip(frames, whole))
    # Real tiles: seams blended, state per tile; close to whole frames, not equal (border context).
    stream = DeblurStream(backend, tile=TileSpec(96, 32))
    tiled = [stream.push(f) for f in frames]
    for t, w in zip(tiled, whole):
        assert psnr_ssim_uint8(from_uint8(t)[None], from_uint8(w)[None])[0] > 40


def test_cli_tile_option_runs_and_refuses_bad_values(tmp_path: Path, fast_checkpoint) -> None:
    src = tmp_path / "in.mp4"
    make_clip(src, width=200, height=120, frames=4, audio=False)
    out = tmp_path / "out.mp4"
    result = CliRunner().invoke(cli, [str(src), str(out), "--model", str(fast_checkpoint), "--tile", "96", "--quiet"])
    assert result.exit_code == 0, result.output
    with av.open(str(out)) as c:
        assert sum(1 for _ in c.decode(video=0)) == 4
    bad = tmp_path / "bad.mp4"
    result = CliRunner().invoke(cli, [str(src), str(bad), "--model", str(fast_checkpoint), "--tile", "40", "--quiet"])
    assert result.exit_code == 1 and "tile 40 with overlap 32" in result.output and not bad.exists()
