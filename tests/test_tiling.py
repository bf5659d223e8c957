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
from vdeblur.train.padding import run_padded


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
    assert len(states.tiles) == len(tiled.grid(*shape)) > 1 and states.previous is None
    whole = model.initial_state(*shape)
    for _ in range(3):
        frame = torch.rand(1, 3, *shape)
        out, states = tiled.run(frame, states)
        ref, whole = model.run(frame, whole)
        torch.testing.assert_close(out, ref, rtol=0, atol=1e-5)


class PointwiseAligned:
    """A pointwise 'model' that takes its previous frame aligned: out = frame + its aligned previous
    view. Tiled, it matches whole frames only if every tile sees the whole frame's aligned previous
    frame, including what the motion brings in across the tile's edges."""

    pad_multiple = 8
    input_kind = "rgb+motion"
    device = torch.device("cpu")

    def initial_state(self, height: int, width: int, batch: int = 1) -> tuple[torch.Tensor]:
        return (torch.zeros(batch, 3, height, width),)

    def run(self, x: torch.Tensor, state: tuple[torch.Tensor]) -> tuple[torch.Tensor, tuple[torch.Tensor]]:
        from vdeblur.train.archs.deep import DeepRecurrentDeblur

        view = DeepRecurrentDeblur.aligned_previous_view(state[0], x[:, 3:])  # (B, 5, H, W)
        return x[:, :3] + 0.5 * view[:, :3] + 0.25 * view[:, 3:4] * view[:, 4:], (x[:, :3],)


def test_tiles_of_an_aligned_model_see_the_whole_frames_aligned_previous_frame() -> None:
    from vdeblur.train.motion import GlobalMotion

    model, shape = PointwiseAligned(), (70, 100)
    tiled = TiledRunner(model, TileSpec(32, 8))
    base = torch.rand(1, 3, 90, 130)
    frames = [base[..., 6 * t:6 * t + shape[0], 9 * t:9 * t + shape[1]] for t in range(3)]  # a pan: 9 px, 6 px a frame
    pan = GlobalMotion(np.array([[1.0, 0, -9.0], [0, 1, -6.0], [0, 0, 1]]), 0.8)
    for motions in (None, [pan]):  # estimated on whole frames by the tiler, or given
        states, whole = tiled.initial_state(*shape), model.initial_state(72, 104)  # the whole frame, padded
        for t, frame in enumerate(frames):
            given = None if motions is None or t == 0 else motions
            out, states = tiled.run(frame, states, given)
            ref, whole = run_padded(model, frame, whole, given)
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
