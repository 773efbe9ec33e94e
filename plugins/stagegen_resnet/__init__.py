"""The residual refiner networks and the paper's refiners built from them.

Networks: ``resnet`` (the paper's refiner, after the authors' code) and ``srresnet`` (SRResNet,
Ledig et al.), one class with two sets of defaults (:mod:`.network`). Stage types, each a
network with default losses (from ``stagegen_losses``) that a stage spec can replace:

- ``resnet-l1`` (the multi-stage VAE's refiner) and ``resnet-l2`` (the deep residual VAE's);
- ``srresnet-perceptual``: ``srresnet`` with l1 + 0.1 x perceptual;
- ``resnet-gan``: the paper's network drawing a correction to its input (it starts as the
  identity) with l1 + the adversarial loss at its defaults (reconstructions and prior samples,
  feature matching, R1, spectral norm);
- ``adversarial``: stagegen 0.1's refiner, a light residual network with l1 + 0.1 x adversarial
  on reconstructions (batch norm, no spectral norm, no feature matching).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

import stagegen
from stagegen.stages import NetworkType

from .compositions import adversarial_refiners, paper_refiners, perceptual_refiners
from .network import ResidualNet, ResidualNetOptions, build, upgrade

__version__ = stagegen.__version__
__all__ = ["ResidualNet", "ResidualNetOptions", "SRResNetOptions"]


class SRResNetOptions(ResidualNetOptions):
    """SRResNet's shape: 9x9 head and tail, PReLU, blocks without post-activation, conv + BN on
    the long skip, x2 PixelShuffle, no wide conv before the output."""

    blocks: int = Field(8, ge=0, le=256, description="residual blocks (SRResNet uses 16)")
    head_width: int = Field(0, ge=0, le=8192, description="channels of a wide conv before the output; 0: none (SRResNet)")
    scale: Literal[1, 2, 4] = Field(2, description="upsampling factor from input to output")
    activation: Literal["lrelu", "prelu"] = Field("prelu", description="PReLU (SRResNet) or lrelu")
    head_kernel: Literal[3, 5, 7, 9] = Field(9, description="kernel of the first conv")
    tail_kernel: Literal[3, 5, 7, 9] = Field(9, description="kernel of the output conv")
    skip: Literal["conv", "conv-bn", "identity"] = Field("conv-bn", description="conv + BN on the long skip")
    block_activation: bool = Field(False, description="ReLU after each block's sum (false: SRResNet's block)")


@stagegen.hookimpl
def register_networks(register):
    register(
        NetworkType(
            name="resnet",
            options=ResidualNetOptions,
            build=build,
            scale=lambda options: options.scale,
            upgrade=upgrade,
            description="the paper's residual refiner (authors' code); residual output and SRResNet shapes by option",
        )
    )
    register(
        NetworkType(
            name="srresnet",
            options=SRResNetOptions,
            build=build,
            scale=lambda options: options.scale,
            upgrade=upgrade,
            description="SRResNet (Ledig et al.): 9x9 head and tail, PReLU, PixelShuffle x2 by default",
        )
    )


@stagegen.hookimpl
def register_stages(register):
    for stage_type in (*paper_refiners(), *perceptual_refiners(), *adversarial_refiners()):
        register(stage_type)
