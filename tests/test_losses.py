"""Content, perceptual and GAN losses: values against formulas, the WGAN-GP penalty on a toy critic,
and loading VGG19 weights from a torchvision-layout state dict."""

from __future__ import annotations

import math

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from vdeblur.train.losses import (CharbonnierLoss, GANObjective, PerceptualLoss, content_loss, gradient_penalty,
                                  load_vgg19_features, vgg19_head)

# torchvision's vgg19 "E" configuration: the whole features stack, so test files look like real ones.
_VGG19_E = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M")


def random_vgg19_state_dict() -> dict[str, torch.Tensor]:
    """A randomly initialised state dict with torchvision vgg19's keys (features.N.*, classifier.N.*)."""
    layers: list[nn.Module] = []
    cin = 3
    for v in _VGG19_E:
        if v == "M":
            layers.append(nn.MaxPool2d(2))
        else:
            layers += [nn.Conv2d(cin, int(v), 3, padding=1), nn.ReLU()]
            cin = int(v)
    state = {f"features.{k}": v for k, v in nn.Sequential(*layers).state_dict().items()}
    state |= {"classifier.0.weight": torch.randn(8, 4), "classifier.0.bias": torch.randn(8)}
    return state


def test_content_losses_match_their_formulas() -> None:
    pred, target = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8)
    diff = pred - target
    assert torch.allclose(content_loss("l1")(pred, target), diff.abs().mean())
    assert torch.allclose(content_loss("l2")(pred, target), diff.pow(2).mean())
    assert torch.allclose(content_loss("charbonnier")(pred, target), torch.sqrt(diff**2 + 1e-6).mean())
    # At zero error Charbonnier is eps, and its gradient is finite (L1's is not defined there).
    x = target.clone().requires_grad_(True)
    loss = CharbonnierLoss()(x, target)
    loss.backward()
    assert loss.item() == pytest.approx(1e-3) and torch.isfinite(x.grad).all()
    with pytest.raises(ValueError, match="l1, l2, charbonnier"):
        content_loss("ssim")


def test_gan_objectives_values() -> None:
    zero = torch.zeros(4, 1, 2, 2)
    assert GANObjective("vanilla").critic_loss(zero, zero).item() == pytest.approx(math.log(2))
    assert GANObjective("vanilla").generator_loss(zero).item() == pytest.approx(math.log(2))
    real, fake = torch.full((4, 1), 0.5), torch.full((4, 1), -0.25)
    assert GANObjective("lsgan").critic_loss(real, fake).item() == pytest.approx(0.5 * (0.25 + 0.0625))
    assert GANObjective("lsgan").generator_loss(fake).item() == pytest.approx(1.5625)
    assert GANObjective("hinge").critic_loss(real, fake).item() == pytest.approx(0.5 + 0.75)
    assert GANObjective("hinge").generator_loss(fake).item() == pytest.approx(0.25)
    assert GANObjective("wgan_gp").critic_loss(real, fake).item() == pytest.approx(-0.75)
    assert GANObjective("wgan_gp").needs_gradient_penalty and not GANObjective("hinge").needs_gradient_penalty
    with pytest.raises(ValueError, match="vanilla, lsgan, wgan_gp, hinge"):
        GANObjective("none")


class _LinearCritic(nn.Module):
    """score = <w, image>: its gradient w.r.t. the image is w everywhere, so the penalty is known."""

    def __init__(self, w: torch.Tensor) -> None:
        super().__init__()
        self.w = nn.Parameter(w)

    def forward(self, blurred: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        return (image * self.w).flatten(1).sum(dim=1, keepdim=True)


def test_gradient_penalty_on_a_linear_critic() -> None:
    w = torch.randn(3, 4, 4)
    real, fake, blurred = torch.rand(5, 3, 4, 4), torch.rand(5, 3, 4, 4), torch.rand(5, 3, 4, 4)
    gp = gradient_penalty(_LinearCritic(w), blurred, real, fake)
    assert gp.item() == pytest.approx((w.norm().item() - 1) ** 2, rel=1e-5)
    assert gradient_penalty(_LinearCritic(w / w.norm()), blurred, real, fake).item() == pytest.approx(0.0, abs=1e-10)
    # The penalty trains the critic: it has a gradient w.r.t. the critic's weights.
    critic = _LinearCritic(w)
    gradient_penalty(critic, blurred, real, fake).backward()
    expected = 2 * (w.norm() - 1) * w / w.norm()
    assert torch.allclose(critic.w.grad, expected, rtol=1e-4)


def test_vgg_head_has_torchvision_indices() -> None:
    conv = vgg19_head("conv3_3")
    assert len(conv) == 15 and isinstance(conv[14], nn.Conv2d)
    assert len(vgg19_head("relu3_3")) == 16 and isinstance(vgg19_head("relu3_3")[15], nn.ReLU)
    assert sorted({k.split(".")[0] for k in conv.state_dict()}, key=int) == ["0", "2", "5", "7", "10", "12", "14"]
    with pytest.raises(ValueError, match="conv3_3, relu3_3"):
        vgg19_head("conv5_4")


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_perceptual_loss_loads_torchvision_state_dict(tmp_path, suffix: str) -> None:
    state = random_vgg19_state_dict()
    path = tmp_path / f"vgg19{suffix}"
    if suffix == ".pth":
        torch.save(state, path)
    else:
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    loss = PerceptualLoss(path)
    assert torch.equal(loss.features[14].weight, state["features.14.weight"])
    assert not any(p.requires_grad for p in loss.parameters())
    target = torch.rand(2, 3, 32, 32)
    assert loss(target, target).item() == 0.0
    pred = (target + 0.1 * torch.randn_like(target)).requires_grad_(True)
    value = loss(pred, target)
    value.backward()
    assert value.item() > 0 and pred.grad.abs().sum() > 0
    loss.train()
    assert not loss.features.training  # the frozen extractor never switches to training mode


def test_perceptual_weights_refused_with_reasons(tmp_path) -> None:
    head = vgg19_head()
    with pytest.raises(FileNotFoundError, match="loss.vgg_weights"):
        load_vgg19_features(head, tmp_path / "missing.pth")
    renamed = tmp_path / "renamed.pth"
    torch.save({k.replace("features.", "body."): v for k, v in random_vgg19_state_dict().items()}, renamed)
    with pytest.raises(ValueError, match=r"lack \['features.0.bias'"):
        load_vgg19_features(head, renamed)
    wrong_shape = tmp_path / "vgg_narrow.pth"
    state = random_vgg19_state_dict()
    state["features.14.weight"] = torch.zeros(128, 256, 3, 3)
    torch.save(state, wrong_shape)
    with pytest.raises(ValueError, match=r"features.14.weight has shape \(128, 256, 3, 3\)"):
        load_vgg19_features(head, wrong_shape)
    other = tmp_path / "vgg19.npz"
    other.write_bytes(b"x")
    with pytest.raises(ValueError, match="allowed: .pth, .pt, .safetensors"):
        load_vgg19_features(head, other)


def test_fft_loss_is_zero_on_equal_images_and_weighs_lost_detail() -> None:
    from vdeblur.train.losses import FFTLoss

    torch.manual_seed(0)
    sharp = torch.rand(2, 3, 32, 32)
    loss = FFTLoss()
    assert loss(sharp, sharp).item() == 0
    blurred = torch.nn.functional.avg_pool2d(sharp, 3, stride=1, padding=1, count_include_pad=False)
    offset = sharp + (blurred - sharp).abs().mean()  # the same mean absolute error, spent on brightness only
    # Equal pixel L1, but blur spreads its error over many frequencies, a brightness offset over one (DC).
    assert loss(blurred, sharp) > 3 * loss(offset, sharp)
    pred = blurred.clone().requires_grad_(True)
    loss(pred, sharp).backward()
    assert pred.grad is not None and pred.grad.abs().sum() > 0
