"""What a stage is: the contract between the engine and every trunk or refiner plugin.

A *stage type* is a registered name, a kind, a pydantic options model and a builder. The
builder returns a stage module: a :class:`Trunk` (encoder + decoder, makes the coarse image)
or a :class:`Refiner` (maps the previous stage's image to a sharper, possibly larger one).
Each stage computes its own loss terms; the engine only sums and logs them.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from .options import StrictModel, validate_options

__all__ = [
    "BuildContext",
    "Kind",
    "LossContext",
    "Posterior",
    "Refiner",
    "Stage",
    "StageOptions",
    "StageType",
    "Trunk",
    "Upgrade",
]

Kind = Literal["trunk", "refiner"]

#: ``upgrade(options, tensors, version) -> (options, tensors)``: a stage's options (a plain dict)
#: and its tensors (names relative to the stage) as the plugin version ``version`` wrote them,
#: turned into what the installed version builds and loads. See docs/plugins.md, section 6.
Upgrade = Callable[[dict[str, Any], dict[str, torch.Tensor], str], "tuple[dict[str, Any], dict[str, torch.Tensor]]"]


class StageOptions(StrictModel):
    """Base for every stage's options: unknown keys are errors, not silently ignored."""


@dataclass(frozen=True)
class BuildContext:
    """What the engine tells a builder about where its stage sits in the chain."""

    channels: int  # image channels (1 or 3)
    in_resolution: int  # resolution of the stage's input image (0 for a trunk)
    out_resolution: int  # resolution the stage must produce
    index: int  # position in the chain, 0 = trunk
    # False when a pipeline is loaded for inference: loss-only resources (a perceptual
    # network, its pretrained weights) are then neither built nor required.
    training: bool = True


@dataclass(frozen=True, kw_only=True)
class StageType:
    """A registered stage type. ``build(options, ctx)`` returns a Trunk or a Refiner.

    ``scale(options)`` is how a refiner declares its resolution factor (output size over input
    size; 1 when not given): the engine reads it before building, to give every stage its
    resolution. ``upgrade`` (optional) turns options and tensors written by an older version
    of the plugin into current ones when a pipeline file is loaded."""

    name: str
    kind: Kind
    options: type[StageOptions]
    build: Callable[[Any, BuildContext], nn.Module]
    description: str = ""
    scale: Callable[[Any], int] | None = None
    upgrade: Upgrade | None = None

    def __post_init__(self):
        if self.kind not in ("trunk", "refiner"):
            raise ValueError(f"stage type {self.name!r}: kind must be 'trunk' or 'refiner', got {self.kind!r}")
        if self.kind == "trunk" and self.scale is not None:
            raise ValueError(f"stage type {self.name!r}: a trunk has no scale (it makes the first image)")

    def validate_options(self, raw: dict[str, Any] | None) -> StageOptions:
        return validate_options(self.options, raw, f"options of stage {self.name!r}")

    def scale_of(self, options: StageOptions) -> int:
        """The declared resolution factor for these options: a positive integer."""
        scale = 1 if self.scale is None else self.scale(options)
        if type(scale) is not int or scale < 1:
            raise ValueError(
                f"stage type {self.name!r} declares scale {scale!r}; a scale must be a positive integer (1, 2, 4, ...)"
            )
        return scale


@dataclass
class LossContext:
    """Everything a stage may need to compute its loss, besides its output and target."""

    step: int
    input: torch.Tensor | None = None  # the stage's input image (None for a trunk)
    posterior: Posterior | None = None  # the trunk's q(z|x)
    auxiliary: nn.Module | None = None  # the stage's extra module (a discriminator), if any
    #: numbers a stage reports for the log without adding them to the loss (ELBO, sigma, ...)
    diagnostics: dict[str, torch.Tensor] = field(default_factory=dict)

    def report(self, name: str, value: torch.Tensor) -> None:
        """Log ``value`` (detached) as ``stage<k>/<name>``; it is not part of the loss."""
        self.diagnostics[name] = value.detach().float()


@dataclass
class Posterior:
    """Diagonal Gaussian q(z|x)."""

    mean: torch.Tensor
    std: torch.Tensor

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        device = generator.device if generator is not None else self.mean.device
        eps = torch.randn(self.mean.shape, generator=generator, device=device, dtype=self.mean.dtype).to(self.mean.device)
        return self.mean + self.std * eps

    def kl(self) -> torch.Tensor:
        """Elementwise KL(q || N(0, I)), same shape as the mean; computed in float32."""
        mean, std = self.mean.float(), self.std.float()
        var = std.square()
        return 0.5 * (mean.square() + var - 1.0 - torch.log(var.clamp_min(1e-12)))


class Stage(nn.Module, abc.ABC):
    """Common parts of trunks and refiners."""

    @abc.abstractmethod
    def loss(self, output: torch.Tensor, target: torch.Tensor, ctx: LossContext) -> dict[str, torch.Tensor]:
        """Named, already weighted loss terms; the engine sums them. Scalars."""

    # Extra modules that train beside the generator but are not part of it (a discriminator).
    def build_auxiliary(self) -> nn.Module | None:
        return None

    def auxiliary_optimizer(self, auxiliary: nn.Module) -> torch.optim.Optimizer:
        return torch.optim.Adam(auxiliary.parameters(), lr=2e-4, betas=(0.5, 0.9))

    def auxiliary_loss(
        self, auxiliary: nn.Module, output: torch.Tensor, target: torch.Tensor, ctx: LossContext
    ) -> dict[str, torch.Tensor]:
        """Loss terms of the extra module's own update; ``output`` is detached. The engine logs
        them as ``stage<k>/aux/<name>``, apart from the generator's loss."""
        return {}


class Trunk(Stage):
    """A VAE: ``encode`` gives q(z|x), ``decode`` gives the coarse image in [-1, 1]."""

    latent_shape: tuple[int, ...]

    @abc.abstractmethod
    def encode(self, x: torch.Tensor) -> Posterior:
        """q(z|x) for images in [-1, 1]."""

    @abc.abstractmethod
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latents of ``latent_shape`` -> images in [-1, 1]."""

    def reconstruction_latent(self, posterior: Posterior) -> torch.Tensor:
        """The latent ``reconstruct`` decodes: the posterior mean unless a trunk says otherwise."""
        return posterior.mean


class Refiner(Stage):
    """Maps an image in [-1, 1] to a refined image in [-1, 1], as many times larger as its
    stage type's ``scale`` declares."""

    @abc.abstractmethod
    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """The previous stage's image -> this stage's image."""
