"""An example stagegen plugin: the ``edge-l1`` refiner.

Its loss is one the built-ins lack: besides l1 on pixels it compares the images' spatial
gradients (finite differences), which rewards sharp edges where the target has them. Copy
this package to start your own plugin; docs/plugins.md walks through it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

import stagegen
from stagegen.stages import BuildContext, LossContext, Refiner, StageOptions, StageType

__version__ = "0.1.0"


class EdgeOptions(StageOptions):
    """Every option has a default and a description: `stagegen plugins` shows them."""

    width: int = Field(32, ge=1, description="channels of the hidden convolutions")
    layers: int = Field(4, ge=1, description="number of 3x3 conv layers")
    pixel_weight: float = Field(1.0, ge=0, description="weight of the l1 pixel loss")
    edge_weight: float = Field(1.0, ge=0, description="weight of the l1 loss on horizontal and vertical image gradients")


def image_gradients(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return x[..., :, 1:] - x[..., :, :-1], x[..., 1:, :] - x[..., :-1, :]


class EdgeRefiner(Refiner):
    """A small residual conv net: output = tanh(atanh-free residual on the input)."""

    def __init__(self, options: EdgeOptions, channels: int):
        super().__init__()
        self.options = options
        layers: list[nn.Module] = []
        c = channels
        for _ in range(options.layers - 1):
            layers += [nn.Conv2d(c, options.width, 3, padding=1), nn.LeakyReLU(0.2, inplace=True)]
            c = options.width
        layers.append(nn.Conv2d(c, channels, 3, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return torch.tanh(image + self.net(image))  # stays in [-1, 1] like every stage

    def loss(self, output: torch.Tensor, target: torch.Tensor, ctx: LossContext) -> dict[str, torch.Tensor]:
        o = self.options
        (ox, oy), (tx, ty) = image_gradients(output), image_gradients(target)
        edge = F.l1_loss(ox, tx) + F.l1_loss(oy, ty)
        return {"l1": o.pixel_weight * F.l1_loss(output, target), "edge": o.edge_weight * edge}


def build(options: EdgeOptions, ctx: BuildContext) -> EdgeRefiner:
    return EdgeRefiner(options, ctx.channels)


@stagegen.hookimpl
def register_stages(register):
    register(
        StageType(
            name="edge-l1",
            kind="refiner",
            options=EdgeOptions,
            build=build,
            description="example plugin: residual conv refiner with l1 + image-gradient (edge) loss",
        )
    )
