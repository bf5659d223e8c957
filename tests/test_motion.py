"""Global motion between consecutive frames, the motion input channels, and vdeblur_deep's aligned
previous frame built on them."""

import cv2
import numpy as np
import pytest
import torch

from vdeblur.train.frames import from_uint8
from vdeblur.train.inputs import prepare_input
from vdeblur.train.motion import MOTION_CHANNELS, NO_MOTION, GlobalMotion, add_motion_channels, estimate_motion, motion_field
from vdeblur.train.padding import run_padded
from vdeblur.train.registry import build_model


def _moved(photo: np.ndarray, homography: np.ndarray, height: int, width: int,
           offset: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """(previous, current): a window of the photo, and the view whose pixel p shows previous at H p (the
    window is ``offset`` px inside the photo, so both views see only photo, never a filled border)."""
    previous = np.ascontiguousarray(photo[offset:offset + height, offset:offset + width])
    to_photo = np.array([[1.0, 0, offset], [0, 1, offset], [0, 0, 1]]) @ homography
    current = cv2.warpPerspective(photo, to_photo, (width, height), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
    return previous, current


def _pixel_error(found: GlobalMotion, truth: np.ndarray, height: int, width: int) -> float:
    ys, xs = np.mgrid[0:height:8, 0:width:8]
    pts = np.stack([xs.ravel(), ys.ravel(), np.ones(xs.size)]).astype(np.float64)
    a, b = found.homography @ pts, truth @ pts
    return float(np.abs(a[:2] / a[2] - b[:2] / b[2]).max())


@pytest.mark.parametrize("size", [(240, 320), (360, 640)])
def test_estimate_motion_recovers_a_camera_move(photo: np.ndarray, size: tuple[int, int]) -> None:
    h, w = size
    photo = cv2.resize(photo, (1024, 1024), interpolation=cv2.INTER_CUBIC)
    theta = np.deg2rad(1.5)  # a shift of ~12 px, a small roll and zoom: what a handheld camera does in a frame
    truth = np.array([[1.01 * np.cos(theta), -np.sin(theta), 11.5], [np.sin(theta), 1.01 * np.cos(theta), -6.25], [0, 0, 1]])
    previous, current = _moved(photo, truth, h, w)
    found = estimate_motion(previous, current)
    assert found.found and found.confidence > 0.3, found  # corners near the edges leave the frame
    assert _pixel_error(found, truth, h, w) < 0.5
    # Blurred the same way, both frames still align (what the decoder hands over is blurred video).
    blur = lambda f: cv2.blur(f, (9, 1))  # noqa: E731
    assert _pixel_error(estimate_motion(blur(previous), blur(current)), truth, h, w) < 1.0


def test_no_usable_motion_gives_the_empty_field(photo: np.ndarray) -> None:
    black, flat = np.zeros((64, 96, 3), np.uint8), np.full((64, 96, 3), 120, np.uint8)
    assert estimate_motion(black, np.ascontiguousarray(photo[:64, :96])) == NO_MOTION
    assert estimate_motion(flat, flat) == NO_MOTION
    assert not motion_field(NO_MOTION, 5, 7).any()
    with pytest.raises(ValueError, match="two \\(H, W, 3\\) uint8 frames of one size"):
        estimate_motion(black, black[:32])


def test_motion_field_gives_displacement_validity_and_confidence() -> None:
    shift = GlobalMotion(np.array([[1.0, 0, 4.0], [0, 1, -2.0], [0, 0, 1]]), 0.75)
    field = motion_field(shift, 10, 12)
    assert field.shape == (MOTION_CHANNELS, 10, 12)
    assert np.allclose(field[0], 4.0) and np.allclose(field[1], -2.0) and np.allclose(field[3], 0.75)
    # Pixel (x, y) reads the previous frame at (x + 4, y - 2): inside for x <= 7, y >= 2 (half a pixel of tolerance).
    assert field[2, 2:, :8].all() and not field[2, :2].any() and not field[2, :, 8:].any()


def test_motion_channels_follow_the_previous_frame_in_the_state(photo: np.ndarray) -> None:
    truth = np.array([[1.0, 0, 6.0], [0, 1, 3.0], [0, 0, 1]])
    previous, current = _moved(photo, truth, 64, 96)
    cur, prev = from_uint8(current)[None], from_uint8(previous)[None]
    padded_prev = torch.nn.functional.pad(prev, (0, 16, 0, 8))  # the state holds the padded frame
    x = add_motion_channels(cur, padded_prev)
    assert x.shape == (1, 3 + MOTION_CHANNELS, 64, 96) and torch.equal(x[:, :3], cur)
    dx, dy, valid, confidence = x[0, 3:]
    assert abs(dx.mean().item() - 6.0) < 0.3 and abs(dy.mean().item() - 3.0) < 0.3
    assert confidence.min() > 0.3 and not valid[:, -6:].any() and valid[:-3, :-7].all()
    # First frame: the zero state holds no frame, so the model is told there is none.
    assert not add_motion_channels(cur, torch.zeros_like(padded_prev))[:, 3:].any()
    with pytest.raises(ValueError, match="previous frame as the first state slot"):
        prepare_input(cur, "rgb+motion", ())


def test_aligned_previous_grows_onto_a_trained_model_and_then_uses_the_previous_frame(photo: np.ndarray) -> None:
    small = build_model("vdeblur_deep").eval()
    with torch.no_grad():  # "trained": every zero-initialised branch given values, so it does something
        for p in small.parameters():
            if not p.any():
                p.normal_(0.0, 0.02)
    aligned = build_model("vdeblur_deep", {"aligned_previous": True}).eval()
    assert aligned.input_kind == "rgb+motion" and aligned.in_channels == 3 + MOTION_CHANNELS
    assert aligned.state_slots[0].name == "previous" and aligned.state_slots[0].stride == 1
    added = aligned.load_grown(small.state_dict())
    assert added and all(k.split(".")[0] in ("previous_in", "previous_inject") for k in added)
    frames = [from_uint8(np.ascontiguousarray(photo[3 * k:3 * k + 40, 5 * k:5 * k + 60]))[None] for k in range(3)]
    a_state, b_state = small.initial_state(1, 40, 60), aligned.initial_state(1, 40, 60)
    with torch.no_grad():
        for f in frames:  # odd size: padded, and the previous frame is kept padded
            a, a_state = run_padded(small, f, a_state)
            b, b_state = run_padded(aligned, f, b_state)
            assert torch.allclose(a, b, atol=1e-6)
        # Trained (here: random) injections make the output depend on the previous frame.
        for conv in (aligned.previous_in, aligned.previous_inject):
            conv.weight.normal_(0, 0.05)
        with_previous, _ = run_padded(aligned, frames[2], b_state)
        other = (torch.rand_like(b_state[0]), *b_state[1:])
        with_other, _ = run_padded(aligned, frames[2], other)
    assert not torch.allclose(with_previous, with_other)


def test_the_aligned_frame_at_stride_4_only_drops_the_full_resolution_conv(photo: np.ndarray) -> None:
    aligned = build_model("vdeblur_deep", {"aligned_previous": True}).eval()
    with torch.no_grad():  # trained: the aligned paths do something
        for p in aligned.parameters():
            if not p.any():
                p.normal_(0.0, 0.02)
    s4 = build_model("vdeblur_deep", {"aligned_previous": True, "aligned_first_conv": False}).eval()
    assert not hasattr(s4, "previous_in") and hasattr(s4, "previous_inject")
    assert s4.load_grown(aligned.state_dict()) == []  # nothing added; previous_in is dropped
    for k, v in s4.state_dict().items():  # everything else carried
        assert torch.equal(v, aligned.state_dict()[k]), k
    frames = [from_uint8(np.ascontiguousarray(photo[3 * k:3 * k + 48, 5 * k:5 * k + 64]))[None] for k in range(2)]
    state = s4.initial_state(1, 48, 64)
    with torch.no_grad():
        for f in frames:
            out, state = run_padded(s4, f, state)
        other, _ = run_padded(s4, frames[1], (torch.rand_like(state[0]), *state[1:]))
    assert out.shape == (1, 3, 48, 64) and not torch.allclose(out, other)  # still sees the previous frame
    # Going back is growth: previous_in starts at zero, and the model computes what the stride-4 one did.
    full = build_model("vdeblur_deep", {"aligned_previous": True}).eval()
    assert sorted(full.load_grown(s4.state_dict())) == ["previous_in.bias", "previous_in.weight"]
    with pytest.raises(ValueError, match="aligned_first_conv = false says where the aligned frame enters"):
        build_model("vdeblur_deep", {"aligned_first_conv": False})


def test_the_model_warps_its_previous_frame_onto_the_current_one(photo: np.ndarray) -> None:
    from vdeblur.train.archs.deep import DeepRecurrentDeblur

    truth = np.array([[1.0, 0, 7.0], [0, 1, -4.0], [0, 0, 1]])
    previous, current = _moved(photo, truth, 96, 128, offset=200)
    x = add_motion_channels(from_uint8(current)[None], from_uint8(previous)[None])
    view = DeepRecurrentDeblur.aligned_previous_view(from_uint8(previous)[None], x[:, 3:])  # (1, 5, H, W)
    valid = view[:, 3:4].bool().expand(1, 3, 96, 128)
    warped = (view[:, :3] + 1) / 2
    err = (warped - from_uint8(current)[None]).abs()[valid]
    assert valid.float().mean() > 0.8 and err.mean() < 0.02
    assert not view[:, :3][~valid].any()  # outside the previous frame: zero, not the edge smeared in


def test_a_motion_in_a_window_is_the_frame_field_cropped() -> None:
    theta = np.deg2rad(2.0)
    motion = GlobalMotion(np.array([[np.cos(theta), -np.sin(theta), 5.0], [np.sin(theta), np.cos(theta), -3.0],
                                    [1e-5, 0, 1]]), 0.9)
    full = motion_field(motion, 60, 80)
    window = motion_field(motion.in_window(20, 30), 25, 40)
    assert np.allclose(window[:2], full[:2, 20:45, 30:70], atol=1e-3)
    assert NO_MOTION.in_window(5, 5) == NO_MOTION


def test_alignment_faults_miss_shift_or_cut_the_previous_frame(photo: np.ndarray, monkeypatch) -> None:
    """Every frame faulted (share 1): each of the three faults, chosen by the draw, does what it says."""
    from vdeblur.train import faults

    truth = np.array([[1.0, 0, 6.0], [0, 1, 3.0], [0, 0, 1]])
    prev_a, cur_a = _moved(photo, truth, 64, 96)
    prev_b, cur_b = _moved(photo[::-1, ::-1].copy(), truth, 64, 96, offset=40)
    frame = torch.cat([from_uint8(cur_a)[None], from_uint8(cur_b)[None]])
    memory = torch.arange(2.0).view(2, 1, 1, 1).expand(2, 4, 2, 3)  # another state slot: which clip it belongs to
    state = (torch.cat([from_uint8(prev_a)[None], from_uint8(prev_b)[None]]), memory)
    honest = [estimate_motion(prev_a, cur_a), estimate_motion(prev_b, cur_b)]
    for kind in faults.FAULTS:
        monkeypatch.setattr(torch, "randint", lambda high, size, k=kind: torch.full(size, faults.FAULTS.index(k)))
        torch.manual_seed(0)
        motions, new_state = faults.with_alignment_faults(frame, state, 1.0)
        if kind == "failed":
            assert motions == [NO_MOTION, NO_MOTION] and new_state[0] is state[0]
        elif kind == "wrong":
            for got, right in zip(motions, honest):
                error = _pixel_error(got, right.homography, 64, 96)
                assert 2.5 < error < 16 + 2 and got.confidence == right.confidence, (error, got)
        else:  # each clip gets the other's whole state, and the motion estimated against it
            assert torch.equal(new_state[0], state[0].flip(0)) and torch.equal(new_state[1], memory.flip(0))
            assert all(not m.found or m.confidence < 0.5 for m in motions), motions
    # Share 0 changes nothing; a first frame (zero state) has no previous frame to fault.
    motions, same = faults.with_alignment_faults(frame, state, 0.0)
    assert all(np.allclose(m.homography, h.homography) for m, h in zip(motions, honest)) and same[0] is state[0]
    zero = (torch.zeros_like(state[0]), memory)
    assert faults.with_alignment_faults(frame, zero, 1.0)[0] == [NO_MOTION, NO_MOTION]
