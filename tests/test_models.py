"""Every registered generator honours the one model contract."""

import pytest
import torch

from vdeblur.train.archs import build_discriminator
from vdeblur.train.archs.base import padded_size
from vdeblur.train.padding import pad_to_multiple, run_padded
from vdeblur.train.registry import build_model, get_spec, list_models, make_config, register

PAPER_MODELS = {"pix2pix", "pix2pix_sa", "pix2pix_sa_gr", "pix2pix_sa_sn", "pix2pix_sa_ca_gr_sn", "rir", "rir_large",
                "deblurgan", "deblurgan_edge", "deblurgan_feedback"}


def test_registry_holds_every_paper_model_and_the_default() -> None:
    assert PAPER_MODELS | {"vdeblur_fast"} <= set(list_models())


def _randomise_zero_params(model: torch.nn.Module) -> None:
    # Zero-initialised heads / gamma make a fresh model the identity; tests need it to do something.
    with torch.no_grad():
        for p in model.parameters():
            if p.abs().sum() == 0:
                p.normal_(0, 0.05)


@pytest.mark.parametrize("name", list_models())
def test_contract_on_tiny_odd_frames(name: str) -> None:
    model = build_model(name).eval()
    _randomise_zero_params(model)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"{name}: {n_params / 1e6:.2f} M parameters")
    assert n_params > 0
    h, w = 37, 45  # odd on purpose: padding must make any size work
    frames = [torch.rand(1, 3, h, w) for _ in range(3)]
    state = model.initial_state(1, h, w)
    assert len(state) == len(model.state_slots)
    shapes = [s.shape for s in state]
    outs = []
    with torch.no_grad():
        for f in frames:
            out, state = run_padded(model, f, state)
            assert out.shape == f.shape and torch.isfinite(out).all()
            assert [s.shape for s in state] == shapes  # the state round-trips with a fixed layout
            outs.append(out)
        again, _ = run_padded(model, frames[0], model.initial_state(1, h, w))
    assert torch.equal(again, outs[0]), "eval mode must be deterministic"
    if model.is_recurrent:
        # The carried state must matter: frame 3 after two frames differs from frame 3 on a fresh state.
        fresh, _ = run_padded(model, frames[2], model.initial_state(1, h, w))
        assert not torch.allclose(fresh, outs[2])


@pytest.mark.parametrize("name", ["vdeblur_fast", "vdeblur_deep", "deblurgan_feedback"])
def test_recurrent_state_layout_follows_padded_frame(name: str) -> None:
    model = build_model(name)
    for slot, s in zip(model.state_slots, model.initial_state(2, 251, 341)):
        assert s.shape == (2, slot.channels, padded_size(251, model.pad_multiple) // slot.stride,
                           padded_size(341, model.pad_multiple) // slot.stride)


def test_default_model_runs_720p_and_odd_size_within_budget() -> None:
    model = build_model("vdeblur_fast").eval()
    assert sum(p.numel() for p in model.parameters()) < 1.5e6
    for h, w in [(720, 1280), (251, 341)]:
        x = torch.rand(1, 3, h, w)
        with torch.no_grad():
            out, _ = run_padded(model, x, model.initial_state(1, h, w))
        assert out.shape == x.shape
        assert torch.equal(out, x), "a fresh default model starts as the identity (zero head)"


def test_self_attention_refuses_oversized_input_clearly() -> None:
    model = build_model("pix2pix_sa", {"attention_stride": 2}).eval()
    with pytest.raises(ValueError, match="self-attention over .* positions exceeds"):
        with torch.no_grad():
            model(torch.rand(1, 3, 512, 512), ())


def test_self_attention_at_stride_16_runs_720p() -> None:
    model = build_model("pix2pix_sa_gr").eval()
    x = torch.rand(1, 3, 720, 1280)
    with torch.no_grad():
        out, _ = run_padded(model, x, ())
    assert out.shape == x.shape


def test_edge_model_takes_four_channels_and_global_residual() -> None:
    model = build_model("deblurgan_edge").eval()
    assert model.in_channels == 4 and model.input_kind == "rgb+canny"
    with pytest.raises(ValueError, match=r"expects \(B, 4, H, W\)"):
        model.check_input(torch.rand(1, 3, 8, 8))


def test_global_residual_flag_changes_output_mapping() -> None:
    # With all weights zero the GR model returns its input, the plain U-Net returns mid-grey.
    x = torch.rand(1, 3, 256, 256)
    for name, expected in [("pix2pix_sa_gr", x), ("pix2pix", torch.full_like(x, 0.5))]:
        model = build_model(name).eval()
        with torch.no_grad():
            for p in model.parameters():
                p.zero_()
            out, _ = model(x, ())
        assert torch.allclose(out, expected, atol=1e-6), name


def test_spectral_norm_is_applied_where_asked() -> None:
    sn = build_model("pix2pix_sa_sn")
    plain = build_model("pix2pix_sa")
    has_sn = lambda m: any("parametrizations" in k for k in m.state_dict())  # noqa: E731
    assert has_sn(sn) and not has_sn(plain)
    assert has_sn(build_discriminator(get_spec("pix2pix_sa_sn").discriminator))


@pytest.mark.parametrize("disc", ["patchgan", "patchgan_sn", "patchgan_wgan"])
def test_patchgan_scores_patches(disc: str) -> None:
    d = build_discriminator(disc)
    score = d(torch.rand(2, 3, 128, 128), torch.rand(2, 3, 128, 128))
    assert score.shape == (2, 1, 14, 14)  # 70x70 receptive fields tiled over the image


def test_registry_refuses_duplicates_and_unknown_names_and_fields() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register("vdeblur_fast", object)(lambda cfg: None)
    with pytest.raises(KeyError, match="unknown model 'nope'.*vdeblur_fast"):
        build_model("nope")
    with pytest.raises(ValueError, match="no config field"):
        make_config("rir", {"widht": 3})


def test_padding_reflects_small_pads_and_replicates_large_ones() -> None:
    x = torch.arange(12.0).view(1, 1, 3, 4)
    p = pad_to_multiple(x, 4)
    assert p.shape == (1, 1, 4, 4) and torch.equal(p[..., 3, :], x[..., 1, :])
    big = pad_to_multiple(x, 16)
    assert big.shape == (1, 1, 16, 16) and torch.equal(big[..., 15, 15], x[..., 2, 3])


def test_deep_model_starts_as_identity_and_its_feedback_path_carries_the_previous_frame() -> None:
    model = build_model("vdeblur_deep").eval()
    frame = torch.rand(1, 3, 48, 64)
    state = model.initial_state(1, 48, 64)
    assert [s.name for s in model.state_slots] == ["h", "c", "f"]
    with torch.no_grad():
        out, state = model(frame, state)
        assert torch.equal(out, frame)  # zero head: an untrained model changes nothing
        _randomise_zero_params(model)
        first, after_one = model(frame, model.initial_state(1, 48, 64))
        # Only the fine feedback differs between these two states: it must reach the output.
        kept = (*after_one[:2], torch.zeros_like(after_one[2]))
        with_feedback, _ = model(frame, after_one)
        without_feedback, _ = model(frame, kept)
    assert after_one[2].shape == (1, model.cfg.feedback, 12, 16)
    assert not torch.allclose(with_feedback, without_feedback)
    no_feedback = build_model("vdeblur_deep", {"feedback": 0, "lstm_hidden": 0})
    assert not no_feedback.is_recurrent and no_feedback.initial_state(1, 48, 64) == ()
    with pytest.raises(ValueError, match="vdeblur_deep has 4 levels"):
        build_model("vdeblur_deep", {"channels": (8, 8, 8)})


def test_warp_moves_features_by_the_flow_and_aligned_feedback_grows_onto_a_trained_model() -> None:
    from vdeblur.train.archs.deep import warp
    from vdeblur.train.checkpoint import load_checkpoint
    from vdeblur import bundled_model_path

    features = torch.randn(2, 5, 12, 20)
    assert torch.allclose(warp(features, torch.zeros(2, 2, 12, 20)), features, atol=1e-5)
    flow = torch.zeros(2, 2, 12, 20)
    flow[:, 0], flow[:, 1] = 3.0, -2.0  # sample 3 px to the right and 2 px up
    moved = warp(features, flow)
    assert torch.allclose(moved[..., 2:, :17], features[..., :-2, 3:], atol=1e-5)
    assert torch.equal(moved[..., 0, -1], features[..., 0, -1])  # past the edge: the edge value
    # Grown onto the bundled weights, the aligned path changes nothing until it is trained.
    small, _ = load_checkpoint(bundled_model_path("vdeblur_deep"))
    aligned = build_model("vdeblur_deep", {**small.cfg.__dict__, "feedback_align": True}).eval()
    added = aligned.load_grown(small.state_dict())
    assert added and all(k.split(".")[0] in ("flow", "aligned_in") for k in added)
    frame = torch.rand(1, 3, 48, 64)
    a_state, b_state = small.initial_state(1, 48, 64), aligned.initial_state(1, 48, 64)
    with torch.no_grad():
        for _ in range(2):  # run_padded: the input channels each model takes (the bundled one: + motion)
            a, a_state = run_padded(small, frame, a_state)
            b, b_state = run_padded(aligned, frame, b_state)
            assert torch.allclose(a, b, atol=1e-6)
    with pytest.raises(ValueError, match="feedback_align warps the fed-back features"):
        build_model("vdeblur_deep", {"feedback_align": True, "feedback": 0})
