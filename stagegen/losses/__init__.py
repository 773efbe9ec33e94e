"""Losses: the contract every loss plugin implements, in one place, and the pieces built-in
and third-party losses share.

- :mod:`.contract`: a loss type (name, options, builder) and the :class:`Loss` module it builds;
- :mod:`.context`: what a loss sees (:class:`LossContext`) and the one API of an extra module
  that trains beside the generator (:class:`AuxiliaryOwner`, a discriminator);
- :mod:`.pixel`, :mod:`.perceptual`, :mod:`.gan`: distances and GAN pieces;
- :mod:`.binding`: a stage's built losses and how its terms are summed.

The built-in losses themselves register from one plugin package, ``stagegen_losses``.
"""

from __future__ import annotations

import importlib
from typing import Any

from .._deprecated import warn_once

#: name -> the submodule that defines it. Loaded on first use: the stage contract imports
#: :mod:`.context`, and this package must not pull the loss contract (which needs the stage
#: contract's BuildContext) in before it.
_NAMES = {
    **dict.fromkeys(["AuxiliaryOwner", "LossContext"], "context"),
    **dict.fromkeys(["Loss", "LossBuildContext", "LossOptions", "LossType"], "contract"),
    **dict.fromkeys(
        ["GanLoss", "adaptive_weight", "discriminator_loss", "feature_matching", "generator_loss", "r1_penalty"], "gan"
    ),
    **dict.fromkeys(["LPIPSFeatures", "TimmFeatures", "perceptual_network"], "perceptual"),
    **dict.fromkeys(["PixelKind", "pixel_loss"], "pixel"),
}

__all__ = sorted(_NAMES)


def __getattr__(name: str) -> Any:
    if name == "PixelLoss":  # stagegen 0.2 called the pixel distances' names PixelLoss, like the plugin's class
        warn_once("stagegen.losses.PixelLoss", "stagegen.losses.PixelKind")
        name = "PixelKind"
    elif name not in _NAMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_NAMES[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
