"""What a stage is: the contract between the engine and every trunk or refiner plugin.

A stage is a network plus a list of loss terms (:mod:`stagegen.losses.contract`), two independent
plugin axes. A *network type* is a registered name, a pydantic options model, a builder and a
scale: the builder returns a :class:`Refiner` that maps the previous stage's image to a
sharper, possibly larger one. A *stage type* is the name a chain uses (``resnet-l1``): either a
composition (a network, options that differ from the network's defaults, and default losses)
or a self-contained module that computes its own loss, as a :class:`Trunk` does (its KL term
belongs to it) and as plugins written before networks and losses were separate do. The engine
sums and logs every term; it knows no network or loss by name.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from ..config.options import StrictModel, validate_options
from ..losses.context import AuxiliaryOwner, LossContext

__all__ = [
    "BuildContext",
    "Kind",
    "NetworkType",
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
class NetworkType:
    """A registered refiner network: ``build(options, ctx)`` returns a :class:`Refiner` whose
    ``forward`` maps images; its losses come from the stage that uses it.

    ``scale(options)`` declares the resolution factor (output size over input size; 1 when not
    given). ``upgrade`` (optional) turns options and tensors written by an older version of the
    plugin into current ones when a pipeline file or checkpoint is loaded."""

    name: str
    options: type[StageOptions]
    build: Callable[[Any, BuildContext], nn.Module]
    description: str = ""
    scale: Callable[[Any], int] | None = None
    upgrade: Upgrade | None = None
    #: names it had before a rename: files, configs and commands with them still find it
    renamed_from: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class StageType:
    """A registered stage type: what ``--stages`` names.

    Either self-contained (``options`` and ``build``: a Trunk or a Refiner that computes its own
    loss), or a composition of a registered ``network`` (its options, with ``network_defaults``
    changing their defaults) and default ``losses`` (loss specs: ``{"type": "l1", "weight": 1.0,
    "options": {...}}``). Any stage may carry losses; a stage spec's own ``losses`` list replaces
    the defaults. ``aliases`` keep option names of earlier releases working on a composition:
    ``{"pixel_weight": (0, "weight"), "backbone": (1, "options", "backbone")}`` moves the option
    into that default loss (by position) before the network's options are validated.

    ``scale(options)`` is how a refiner declares its resolution factor (output size over input
    size; 1 when not given): the engine reads it before building, to give every stage its
    resolution. ``upgrade`` (optional) turns options and tensors written by an older version
    of the plugin into current ones when a pipeline file or checkpoint is loaded."""

    name: str
    kind: Kind
    options: type[StageOptions] | None = None
    build: Callable[[Any, BuildContext], nn.Module] | None = None
    description: str = ""
    scale: Callable[[Any], int] | None = None
    upgrade: Upgrade | None = None
    network: str | None = None
    network_defaults: dict[str, Any] = field(default_factory=dict)
    losses: tuple[dict[str, Any], ...] = ()
    aliases: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    #: names it had before a rename: files, configs and commands with them still find it
    renamed_from: tuple[str, ...] = ()

    def __post_init__(self):
        if self.kind not in ("trunk", "refiner"):
            raise ValueError(f"stage type {self.name!r}: kind must be 'trunk' or 'refiner', got {self.kind!r}")
        if self.kind == "trunk" and self.scale is not None:
            raise ValueError(f"stage type {self.name!r}: a trunk has no scale (it makes the first image)")
        if self.network is None and (self.options is None or self.build is None):
            raise ValueError(f"stage type {self.name!r}: give either options and build, or the network it composes")
        if self.network is not None and self.kind != "refiner":
            raise ValueError(f"stage type {self.name!r}: only refiners are composed from a network")
        object.__setattr__(self, "losses", tuple(dict(spec) for spec in self.losses))

    @property
    def composed(self) -> bool:
        return self.network is not None

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


class Stage(nn.Module, AuxiliaryOwner, abc.ABC):
    """Common parts of trunks and refiners."""

    def loss(self, output: torch.Tensor, target: torch.Tensor, ctx: LossContext) -> dict[str, torch.Tensor]:
        """The stage's own named, already weighted loss terms (scalars); the engine sums them
        with the terms of the stage's losses. A network whose losses all come from loss
        plugins keeps the default: none."""
        return {}


class Trunk(Stage):
    """A VAE: ``encode`` gives q(z|x), ``decode`` gives the coarse image in [-1, 1].

    A trunk conditioned on class labels (a CVAE) sets ``label_count`` to its number of classes;
    the engine then passes every call a ``labels`` tensor (N class indices, int64):
    ``encode(x, labels)`` and ``decode(z, labels)``. An unconditioned trunk (``label_count``
    0, the default) is called with the images or latents alone."""

    latent_shape: tuple[int, ...]
    label_count: int = 0

    @abc.abstractmethod
    def encode(self, x: torch.Tensor) -> Posterior:
        """q(z|x) for images in [-1, 1] (q(z|x, y) with ``labels`` for a conditioned trunk)."""

    @abc.abstractmethod
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latents of ``latent_shape`` -> images in [-1, 1] (given ``labels`` for a conditioned trunk)."""

    def reconstruction_latent(self, posterior: Posterior) -> torch.Tensor:
        """The latent ``reconstruct`` decodes: the posterior mean unless a trunk says otherwise."""
        return posterior.mean


class Refiner(Stage):
    """Maps an image in [-1, 1] to a refined image in [-1, 1], as many times larger as its
    stage type's ``scale`` declares."""

    @abc.abstractmethod
    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """The previous stage's image -> this stage's image."""

    @property
    def last_layer(self) -> torch.Tensor | None:
        """The weight of the layer that makes the output, for losses that balance their
        gradient against the others' there (the adaptive adversarial weight); None: unknown."""
        return None
