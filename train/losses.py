"""Training objectives: content losses, the VGG19 perceptual loss and four GAN objectives.

The GAN *update order* (critic step, then generator step) lives once, in ``trainer.train_step``;
this file only says what each objective computes from critic scores.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

CONTENT_LOSSES = ("l1", "l2", "charbonnier")
GAN_LOSSES = ("none", "vanilla", "lsgan", "wgan_gp", "hinge")
PERCEPTUAL_LAYERS = {"conv3_3": 15, "relu3_3": 16}  # number of torchvision vgg19.features modules kept

# torchvision's vgg19.features up to relu3_3; integers are conv widths, "M" a 2x2 max-pool. Module
# indices match torchvision's, so a vgg19 state dict's ``features.N.weight`` keys load unchanged.
_VGG19_HEAD = (64, 64, "M", 128, 128, "M", 256, 256, 256)
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


class CharbonnierLoss(nn.Module):
    """sqrt((x - y)^2 + eps^2): L1 away from zero, smooth at zero, so small residuals keep a gradient."""

    def __init__(self, eps: float = 1e-3) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return torch.sqrt((pred - target).pow(2) + self.eps**2).mean()


class FFTLoss(nn.Module):
    """L1 between the 2-D spectra (real and imaginary parts of ``rfft2``), as in MIMO-UNet.

    Blur removes high frequencies, which carry little pixel energy: a pixel loss barely notices a
    soft result, the spectrum loss weighs every frequency alike. A loss term only: FFT does not
    export to TensorRT, and the model never computes it."""

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        diff = torch.fft.rfft2(pred.float(), norm="ortho") - torch.fft.rfft2(target.float(), norm="ortho")
        return torch.view_as_real(diff).abs().mean()


def content_loss(kind: str) -> nn.Module:
    if kind == "l1":
        return nn.L1Loss()
    if kind == "l2":
        return nn.MSELoss()
    if kind == "charbonnier":
        return CharbonnierLoss()
    raise ValueError(f"unknown content loss {kind!r}; allowed: {', '.join(CONTENT_LOSSES)}")


def vgg19_head(layer: str = "conv3_3") -> nn.Sequential:
    """torchvision's ``vgg19().features[:15]`` (through conv3_3) or ``[:16]`` (through relu3_3)."""
    if layer not in PERCEPTUAL_LAYERS:
        raise ValueError(f"unknown perceptual layer {layer!r}; allowed: {', '.join(PERCEPTUAL_LAYERS)}")
    modules: list[nn.Module] = []
    cin = 3
    for v in _VGG19_HEAD:
        if v == "M":
            modules.append(nn.MaxPool2d(2, 2))
        else:
            modules += [nn.Conv2d(cin, int(v), 3, padding=1), nn.ReLU(inplace=True)]
            cin = int(v)
    return nn.Sequential(*modules[:PERCEPTUAL_LAYERS[layer]])


def load_vgg19_features(head: nn.Sequential, path: str | Path, config_key: str = "loss.vgg_weights") -> None:
    """Fill ``head`` from a torchvision vgg19 state dict (.pth/.pt or .safetensors), by ``features.N`` keys.

    Keys beyond the head (deeper features, classifier) are ignored; every key the head needs must
    be present with its exact shape.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"VGG19 weights file {path} does not exist (set {config_key} to a torchvision vgg19 state dict)")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    elif path.suffix in (".pth", ".pt"):
        state = torch.load(path, map_location="cpu", weights_only=True)
    else:
        raise ValueError(f"VGG19 weights {path}: unknown suffix {path.suffix!r}; allowed: .pth, .pt, .safetensors")
    if not isinstance(state, dict):
        raise ValueError(f"VGG19 weights {path} hold a {type(state).__name__}, not a state dict")
    wanted = {f"features.{k}": v for k, v in head.state_dict().items()}
    missing = sorted(k for k in wanted if k not in state)
    if missing:
        raise ValueError(f"VGG19 weights {path} lack {missing[:4]} (found e.g. {sorted(state)[:4]}); "
                         f"expected a torchvision vgg19 state dict with features.N.weight/bias keys")
    bad = sorted(k for k in wanted if tuple(state[k].shape) != tuple(wanted[k].shape))
    if bad:
        raise ValueError(f"VGG19 weights {path}: {bad[0]} has shape {tuple(state[bad[0]].shape)}, "
                         f"expected {tuple(wanted[bad[0]].shape)}; is this a vgg19 (not vgg16) state dict?")
    head.load_state_dict({k[len("features."):]: state[k].float() for k in wanted})


class PerceptualLoss(nn.Module):
    """MSE between VGG19 features of output and target (DeblurGAN's content loss).

    Inputs are [0, 1] RGB; ImageNet normalisation happens here. ``weights=None`` keeps the random
    initialisation, which only tests should use.
    """

    def __init__(self, weights: str | Path | None, layer: str = "conv3_3") -> None:
        super().__init__()
        self.features = vgg19_head(layer)
        if weights is not None:
            load_vgg19_features(self.features, weights)
        self.features.eval().requires_grad_(False)
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def train(self, mode: bool = True) -> PerceptualLoss:
        # A frozen feature extractor stays in eval mode whatever the trainer toggles.
        return self

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        f_pred = self.features((pred - self.mean) / self.std)  # (B, 256, H/4, W/4)
        with torch.no_grad():
            f_target = self.features((target - self.mean) / self.std)
        return F.mse_loss(f_pred, f_target)


class GANObjective:
    """What the critic and the generator minimise, given critic scores of real and fake images."""

    def __init__(self, kind: str) -> None:
        if kind not in GAN_LOSSES or kind == "none":
            raise ValueError(f"unknown GAN objective {kind!r}; allowed: {', '.join(GAN_LOSSES[1:])}")
        self.kind = kind

    def critic_loss(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        if self.kind == "vanilla":  # halved as in pix2pix, which slows D relative to G
            return 0.5 * (F.binary_cross_entropy_with_logits(real, torch.ones_like(real))
                          + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake)))
        if self.kind == "lsgan":
            return 0.5 * ((real - 1).pow(2).mean() + fake.pow(2).mean())
        if self.kind == "hinge":
            return F.relu(1 - real).mean() + F.relu(1 + fake).mean()
        return fake.mean() - real.mean()  # wgan_gp; the penalty is added by the trainer

    def generator_loss(self, fake: torch.Tensor) -> torch.Tensor:
        if self.kind == "vanilla":
            return F.binary_cross_entropy_with_logits(fake, torch.ones_like(fake))
        if self.kind == "lsgan":
            return (fake - 1).pow(2).mean()
        return -fake.mean()  # wgan_gp and hinge

    @property
    def needs_gradient_penalty(self) -> bool:
        return self.kind == "wgan_gp"


def gradient_penalty(critic: nn.Module, blurred: torch.Tensor, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """WGAN-GP: mean of (||grad_x critic(x)|| - 1)^2 at random points x between real and fake.

    The norm is per sample over all critic outputs summed, as in Gulrajani et al.; a PatchGAN's
    patch scores are independent critics whose sum is the sample's score.
    """
    alpha = torch.rand(real.shape[0], 1, 1, 1, device=real.device, dtype=real.dtype)
    x = (alpha * real + (1 - alpha) * fake.detach()).requires_grad_(True)  # (B, 3, H, W)
    scores = critic(blurred, x)
    (grad,) = torch.autograd.grad(scores.sum(), x, create_graph=True)
    return (grad.flatten(1).norm(dim=1) - 1).pow(2).mean()
