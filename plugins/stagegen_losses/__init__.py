"""Every built-in loss, registered from one package.

- :mod:`.pixel`: ``l1``, ``l2``, ``charbonnier``, ``gradient`` and ``frequency``, which compare a
  stage's output with its target;
- :mod:`.perceptual`: ``perceptual``, deep features (LPIPS or a timm backbone) compared;
- :mod:`.adversarial`: ``adversarial``, a PatchGAN discriminator (:mod:`.discriminator`) that
  judges reconstructions and prior samples.

The pieces they share with third-party losses (distances, GAN objectives) are in
:mod:`stagegen.losses`.
"""

from __future__ import annotations

import stagegen

from .adversarial import AdversarialLoss, AdversarialOptions, register_adversarial_loss
from .discriminator import PatchDiscriminator
from .perceptual import PerceptualLoss, PerceptualOptions, register_perceptual_loss
from .pixel import register_pixel_losses

__version__ = stagegen.__version__
__all__ = ["AdversarialLoss", "AdversarialOptions", "PatchDiscriminator", "PerceptualLoss", "PerceptualOptions"]


@stagegen.hookimpl
def register_losses(register):
    register_pixel_losses(register)
    register_perceptual_loss(register)
    register_adversarial_loss(register)
