"""Stages: the contract every trunk and refiner plugin implements (:mod:`.contract`), and how a
stage spec becomes a network plus its losses (:mod:`.composition`)."""

from .._deprecated import moved_attribute
from .composition import resolve_spec
from .contract import (
    BuildContext,
    Kind,
    NetworkType,
    Posterior,
    Refiner,
    Stage,
    StageOptions,
    StageType,
    Trunk,
    Upgrade,
)

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
    "resolve_spec",
]

# stagegen 0.2 kept what a loss sees here
__getattr__ = moved_attribute(__name__, {"LossContext": ("stagegen.losses", "LossContext")})
