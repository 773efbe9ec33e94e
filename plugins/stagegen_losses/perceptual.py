"""``perceptual``: a distance between deep features of output and target, from ``lpips`` (vgg,
alex, squeeze) or a ``timm`` backbone. Its network is not part of the generator: losses are
never saved in the pipeline file, and a pipeline loaded for sampling builds none, so it needs
no weights."""

from __future__ import annotations

from pydantic import Field

from stagegen.losses import Loss, LossOptions, LossType, perceptual_network


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


def register_perceptual_loss(register) -> None:
    register(
        LossType(
            name="perceptual",
            options=PerceptualOptions,
            build=lambda options, ctx: PerceptualLoss(options),
            description="distance between deep features (LPIPS vgg/alex/squeeze or a timm backbone); needs pretrained weights",
        )
    )
