"""What a stage is: the contract between the engine and every trunk or refiner plugin.

A *stage type* is a registered name, a kind, a pydantic options model and a builder. The
builder returns a stage module: a :class:`Trunk` (encoder + decoder, makes the coarse image)
or a :class:`Refiner` (maps the previous stage's image to a sharper, possibly larger one).
Each stage computes its own loss terms; the engine only sums and logs them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Literal

import torch
from pydantic import BaseModel, ConfigDict
from torch import nn

if TYPE_CHECKING:
    from .plugins import Provider

Kind = Literal["trunk", "refiner"]


class StageOptions(BaseModel):
    """Base for every stage's options: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


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


@dataclass(frozen=True)
class StageType:
    """A registered stage type. ``build(options, ctx)`` returns a Trunk or a Refiner."""

    name: str
    kind: Kind
    options: type[StageOptions]
    build: Callable[[Any, BuildContext], nn.Module]
    description: str = ""
    provider: "Provider | None" = field(default=None, compare=False)

    def validate_options(self, raw: dict[str, Any] | None) -> StageOptions:
        return validate_options(self.options, raw, f"options of stage {self.name!r}")


def scale_of(options: StageOptions) -> int:
    """A refiner that changes resolution declares it with an option named ``scale``: a positive integer."""
    scale = getattr(options, "scale", 1)
    if type(scale) is not int or scale < 1:
        raise ValueError(f"a refiner's scale must be a positive integer (1, 2, 4, ...), got {scale!r}")
    return scale


@dataclass
class LossContext:
    """Everything a stage may need to compute its loss, besides its output and target."""

    step: int
    input: torch.Tensor | None = None  # the stage's input image (None for a trunk)
    posterior: "Posterior | None" = None  # the trunk's q(z|x)
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


class Stage(nn.Module):
    """Common parts of trunks and refiners."""

    #: registered name, set by the engine after building
    stage_name: str = ""

    def loss(self, output: torch.Tensor, target: torch.Tensor, ctx: LossContext) -> dict[str, torch.Tensor]:
        """Named, already weighted loss terms; the engine sums them. Scalars."""
        raise NotImplementedError

    # Extra modules that train beside the generator but are not part of it (a discriminator).
    def build_auxiliary(self) -> nn.Module | None:
        return None

    def auxiliary_optimizer(self, auxiliary: nn.Module) -> torch.optim.Optimizer:
        return torch.optim.Adam(auxiliary.parameters(), lr=2e-4, betas=(0.5, 0.9))

    def auxiliary_loss(
        self, auxiliary: nn.Module, output: torch.Tensor, target: torch.Tensor, ctx: LossContext
    ) -> dict[str, torch.Tensor]:
        """Loss terms of the extra module's own update; ``output`` is detached."""
        return {}


class Trunk(Stage):
    """A VAE: ``encode`` gives q(z|x), ``decode`` gives the coarse image in [-1, 1]."""

    latent_shape: tuple[int, ...]

    def encode(self, x: torch.Tensor) -> Posterior:
        raise NotImplementedError

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def reconstruction_latent(self, posterior: Posterior) -> torch.Tensor:
        """The latent ``reconstruct`` decodes: the posterior mean unless a trunk says otherwise."""
        return posterior.mean


class Refiner(Stage):
    """Maps an image in [-1, 1] to a refined image in [-1, 1], ``scale`` times larger."""

    scale: int = 1

    def forward(self, image: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


def validate_options(model: type[BaseModel], raw: dict[str, Any] | None, where: str) -> Any:
    """``model`` validated from ``raw``, or a ValueError naming the bad key (stages, datasets)."""
    from pydantic import ValidationError

    try:
        return model.model_validate(raw or {})
    except ValidationError as exc:
        raise ValueError(describe_validation_error(where, exc, model)) from None


def describe_validation_error(where: str, exc, model: type[BaseModel] | None = None) -> str:
    """One readable line from a pydantic error: which key, what was wrong, what is allowed."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(root)"
        if err["type"] == "extra_forbidden":
            known = ", ".join(model.model_fields) if model is not None and len(err["loc"]) == 1 else ""
            parts.append(f"unknown option {loc!r}" + (f" (known options: {known})" if known else ""))
        else:
            parts.append(f"{loc}: {err['msg']}")
    return f"invalid {where}: " + "; ".join(parts)
