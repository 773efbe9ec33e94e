"""An example stagegen plugin: a loss, a network and a stage type built from them, a prior and
a metric.

- the loss ``edge``: an l1 loss on the images' spatial gradients (finite differences), which
  rewards sharp edges where the target has them. Any stage can use it:
  ``stagegen train --stages vae,resnet-l1 -O 1.losses=l1,edge``.
- the network ``edge-conv``: a few 3x3 convs that add a correction to their input.
- the stage type ``edge-l1``: ``edge-conv`` trained with l1 + edge.
- the prior ``truncated-normal``: N(0, I) with every coordinate redrawn until it is within
  ``limit`` (``--prior truncated-normal``), a common trick for cleaner samples.
- the metric ``edge-energy``: the mean gradient magnitude of each stage's samples
  (``stagegen eval P --metrics edge-energy``).

Copy this package to start your own plugin; docs/plugins.md walks through it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

import stagegen
from stagegen.losses import Loss, LossOptions, LossType
from stagegen.metrics import MetricType
from stagegen.priors import Prior, PriorOptions, PriorType
from stagegen.stages import BuildContext, NetworkType, Refiner, StageOptions, StageType

__version__ = "0.2.0"


# ----------------------------------------------------------------------------- the loss


class EdgeOptions(LossOptions):
    """Every option has a default and a description: `stagegen plugins` shows them."""

    order: int = Field(1, ge=1, le=2, description="1: compare first differences; 2: also the differences of those")


def image_gradients(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return x[..., :, 1:] - x[..., :, :-1], x[..., 1:, :] - x[..., :-1, :]


class EdgeLoss(Loss):
    def __init__(self, options: EdgeOptions):
        super().__init__()
        self.order = options.order

    def forward(self, output: torch.Tensor, target: torch.Tensor, ctx) -> torch.Tensor:
        total = output.new_zeros(())
        a, b = [output], [target]
        for _ in range(self.order):
            a = [d for x in a for d in image_gradients(x)]
            b = [d for x in b for d in image_gradients(x)]
            total = total + sum(F.l1_loss(x, y) for x, y in zip(a, b))
        return total


# ----------------------------------------------------------------------------- the network


class EdgeConvOptions(StageOptions):
    width: int = Field(32, ge=1, le=1024, description="channels of the hidden convolutions")
    layers: int = Field(4, ge=1, le=64, description="number of 3x3 conv layers")


class EdgeConv(Refiner):
    """A small conv net that adds a correction to its input: tanh(input + net(input))."""

    def __init__(self, options: EdgeConvOptions, channels: int):
        super().__init__()
        layers: list[nn.Module] = []
        c = channels
        for _ in range(options.layers - 1):
            layers += [nn.Conv2d(c, options.width, 3, padding=1), nn.LeakyReLU(0.2, inplace=True)]
            c = options.width
        layers.append(nn.Conv2d(c, channels, 3, padding=1))
        self.net = nn.Sequential(*layers)

    @property
    def last_layer(self) -> torch.Tensor:
        return self.net[-1].weight  # lets a loss balance its gradient against the others' here

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return torch.tanh(image + self.net(image))  # stays in [-1, 1] like every stage


def build(options: EdgeConvOptions, ctx: BuildContext) -> EdgeConv:
    return EdgeConv(options, ctx.channels)


# ----------------------------------------------------------------------------- the prior and the metric


class TruncatedOptions(PriorOptions):
    limit: float = Field(2.0, gt=0, le=10, description="every coordinate is redrawn until |z| <= limit")


class TruncatedNormal(Prior):
    needs_fit = False  # nothing to learn from the training latents

    def __init__(self, options: TruncatedOptions, latent_shape):
        super().__init__(latent_shape)
        self.limit = options.limit

    def sample_flat(self, n, generator, temperature):
        z = torch.randn((n, self.latent_dim), generator=generator)
        outside = z.abs() > self.limit
        while outside.any():
            z[outside] = torch.randn(int(outside.sum()), generator=generator)
            outside = z.abs() > self.limit
        return z * temperature


def edge_energy(ctx) -> dict[str, float]:
    dx, dy = image_gradients(ctx.samples)
    return {"sample_edge_energy": float(dx.abs().mean() + dy.abs().mean())}


# ----------------------------------------------------------------------------- the hooks


@stagegen.hookimpl
def register_losses(register):
    register(
        LossType(
            name="edge",
            options=EdgeOptions,
            build=lambda options, ctx: EdgeLoss(options),
            description="example plugin: l1 between the image gradients of output and target",
        )
    )


@stagegen.hookimpl
def register_networks(register):
    register(
        NetworkType(name="edge-conv", options=EdgeConvOptions, build=build, description="example plugin: a residual conv net")
    )


@stagegen.hookimpl
def register_stages(register):
    register(
        StageType(
            name="edge-l1",
            kind="refiner",
            network="edge-conv",
            losses=({"type": "l1"}, {"type": "edge"}),
            # options of release 0.1, where the weights were options of the stage
            aliases={"pixel_weight": (0, "weight"), "edge_weight": (1, "weight")},
            description="example plugin: edge-conv trained with l1 + edge",
        )
    )


@stagegen.hookimpl
def register_priors(register):
    register(
        PriorType(
            name="truncated-normal",
            options=TruncatedOptions,
            build=lambda options, ctx: TruncatedNormal(options, ctx.latent_shape),
            description="example plugin: N(0, I) truncated at +-limit",
        )
    )


@stagegen.hookimpl
def register_metrics(register):
    register(
        MetricType(
            name="edge-energy",
            needs=("samples",),
            compute=edge_energy,
            default=False,
            description="example plugin: mean gradient magnitude of the samples",
        )
    )
