"""One file per architecture family; importing this package registers every generator."""

from . import deblurgan, deblurganv2, deblurganv2_inception, deep, fast, nafnet, pix2pix, rir  # noqa: F401  (imported for their @register side effects)
from .base import DeblurModel, State, StateSlot
from .patchgan import PatchGAN, build_discriminator

__all__ = ["DeblurModel", "PatchGAN", "State", "StateSlot", "build_discriminator"]
