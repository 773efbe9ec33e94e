"""The perceptual loss, and the SRResNet refiner trained with it.

``perceptual``: a distance between deep features of output and target, from ``lpips`` (vgg,
alex, squeeze) or a ``timm`` backbone. Its network is not part of the generator: losses are
never saved in the pipeline file, and a pipeline loaded for sampling builds none, so it needs
no weights. ``srresnet-perceptual``: the ``srresnet`` network with l1 + 0.1 x perceptual.
"""

from __future__ import annotations

from pydantic import Field

import stagegen
from stagegen.loss_types import Loss, LossOptions, LossType
from stagegen.losses import perceptual_network
from stagegen.stages import StageType

__version__ = stagegen.__version__


class PerceptualOptions(LossOptions):
    backbone: str = Field("lpips-vgg", description="perceptual features: lpips-vgg, lpips-alex, lpips-squeeze or timm:<model>")
    pretrained: bool = Field(True, description="use pretrained backbone weights (false: random weights, for tests)")
    weights_path: str | None = Field(
        None, description="explicit backbone weights file (.pth or .safetensors) instead of the cache"
    )


class PerceptualLoss(Loss):
    def __init__(self, options: PerceptualOptions):
        super().__init__()
        # built when the loss is (for training only): missing weights are named before a run starts
        self.network = perceptual_network(options.backbone, options.pretrained, options.weights_path)

    def forward(self, output, target, ctx):
        return self.network(output, target)


@stagegen.hookimpl
def register_losses(register):
    register(
        LossType(
            name="perceptual",
            options=PerceptualOptions,
            build=lambda options, ctx: PerceptualLoss(options),
            description="distance between deep features (LPIPS vgg/alex/squeeze or a timm backbone); needs pretrained weights",
        )
    )


@stagegen.hookimpl
def register_stages(register):
    register(
        StageType(
            name="srresnet-perceptual",
            kind="refiner",
            network="srresnet",
            losses=({"type": "l1"}, {"type": "perceptual", "weight": 0.1}),
            # stagegen 0.1 set the losses as options of the stage
            aliases={
                "pixel_loss": (0, "type"),
                "pixel_weight": (0, "weight"),
                "perceptual_weight": (1, "weight"),
                "backbone": (1, "options", "backbone"),
                "pretrained": (1, "options", "pretrained"),
                "weights_path": (1, "options", "weights_path"),
            },
            description="SRResNet refiner (PixelShuffle x1/x2/x4) with pixel + perceptual (LPIPS or timm) loss",
        )
    )
