"""The residual refiner network every built-in refiner shares: head -> residual blocks with a
long skip -> upsampler -> tail.

Its options cover the three shapes stagegen had as separate copies: the paper's refiner (the
authors' code: a 5x5 head, blocks conv-BN-lrelu-conv-BN + ReLU, a conv on the long skip, a
wide 256-channel conv before the output), SRResNet (Ledig et al.: 9x9 head and tail, PReLU,
blocks without a post-activation, conv + BN on the long skip) and the lighter body of the
former adversarial refiner. With ``output="residual"`` the network adds a correction to its
(upsampled) input instead of drawing the whole image: it starts as the identity, so a refiner
can only make its input better, and all its capacity goes to what the input lacks.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from stagegen.layers import PixelShuffleUpsampler, ResidualBlock
from stagegen.stages import BuildContext, Refiner, StageOptions

#: inputs are clamped to this before atanh in residual mode (atanh(0.999) = 3.8)
_EDGE = 0.999


class ResidualNetOptions(StageOptions):
    width: int = Field(64, ge=1, le=4096, description="channels of the residual body")
    blocks: int = Field(5, ge=0, le=256, description="number of residual blocks")
    head_width: int = Field(
        256, ge=0, le=8192, description="channels of the wide conv before the output (the paper's); 0: one conv makes the output"
    )
    scale: Literal[1, 2, 4] = Field(1, description="resolution factor from input to output: 1 (paper), 2 or 4")
    leaky_slope: float = Field(0.3, ge=0, le=1, description="negative slope of the leaky ReLUs")
    activation: Literal["lrelu", "prelu"] = Field("lrelu", description="leaky ReLU, or PReLU per channel (SRResNet)")
    head_kernel: Literal[3, 5, 7, 9] = Field(5, description="kernel of the first conv (paper 5, SRResNet 9)")
    tail_kernel: Literal[3, 5, 7, 9] = Field(3, description="kernel of the conv that makes the output (SRResNet 9)")
    skip: Literal["conv", "conv-bn", "identity"] = Field(
        "conv",
        description="what the long skip adds to the head's features: a conv of the blocks' output (paper), conv + BN "
        "(SRResNet), or the blocks' output itself",
    )
    block_activation: bool = Field(True, description="ReLU after each block's sum (the paper's block); false: SRResNet's")
    output: Literal["image", "residual"] = Field(
        "image",
        description="image: the network draws the output (tanh); residual: it adds a learned correction to its upsampled "
        "input (in tanh's pre-activation space), starting as the identity",
    )


def _activation(o: ResidualNetOptions, channels: int) -> nn.Module:
    return nn.PReLU(channels) if o.activation == "prelu" else nn.LeakyReLU(o.leaky_slope, inplace=True)


class ResidualNet(Refiner):
    def __init__(self, options: ResidualNetOptions, channels: int):
        super().__init__()
        o = self.options = options
        self.head = nn.Sequential(
            nn.Conv2d(channels, o.width, o.head_kernel, padding=o.head_kernel // 2), _activation(o, o.width)
        )
        self.blocks = nn.Sequential(
            *[ResidualBlock(o.width, o.leaky_slope, o.block_activation, prelu=o.activation == "prelu") for _ in range(o.blocks)]
        )
        if o.skip == "conv":
            self.skip = nn.Sequential(nn.Conv2d(o.width, o.width, 3, padding=1))
        elif o.skip == "conv-bn":
            self.skip = nn.Sequential(nn.Conv2d(o.width, o.width, 3, padding=1, bias=False), nn.BatchNorm2d(o.width))
        else:
            self.skip = nn.Identity()
        self.upsample = PixelShuffleUpsampler(o.width, o.scale, o.leaky_slope)
        tail: list[nn.Module] = []
        width = o.width
        if o.head_width:
            tail += [nn.Conv2d(o.width, o.head_width, 3, padding=1), _activation(o, o.head_width)]
            tail += [nn.Conv2d(o.head_width, o.width, 3, padding=1), _activation(o, o.width)]
        last = nn.Conv2d(width, channels, o.tail_kernel, padding=o.tail_kernel // 2)
        if o.output == "residual":  # the identity at the start: the correction begins at zero
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)
        tail.append(last)
        if o.output == "image":
            tail.append(nn.Tanh())
        self.tail = nn.Sequential(*tail)

    @property
    def last_layer(self) -> torch.Tensor:
        return self.tail[-2 if self.options.output == "image" else -1].weight

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        h = self.head(image)
        h = h + self.skip(self.blocks(h))
        out = self.tail(self.upsample(h))
        if self.options.output == "image":
            return out
        base = image
        if self.options.scale > 1:
            base = F.interpolate(image, scale_factor=self.options.scale, mode="bilinear", align_corners=False)
        return torch.tanh(torch.atanh(base.clamp(-_EDGE, _EDGE)) + out)


def build(options: ResidualNetOptions, ctx: BuildContext) -> ResidualNet:
    return ResidualNet(options, ctx.channels)


def upgrade(options: dict, tensors: dict[str, torch.Tensor], version: str):
    """Files and checkpoints of stagegen 0.1, where the three refiners had their own copies of
    this network: the paper refiner's long-skip conv was ``skip_conv``, the adversarial
    refiner's output conv ``last_layer``. Renamed by what the tensors hold, whatever ``version``."""
    renames = (("skip_conv.", "skip.0."), ("last_layer.", "tail.0."))
    out = {}
    for key, value in tensors.items():
        for old, new in renames:
            if key.startswith(old):
                key = new + key[len(old) :]
        out[key] = value
    return options, out
