"""The stage types built from the residual networks: each a network with default losses (from
``stagegen_losses``), which a stage spec can replace."""

from __future__ import annotations

from stagegen.stages import StageType

__all__ = ["adversarial_refiners", "paper_refiners", "perceptual_refiners"]


def paper_refiners() -> list[StageType]:
    """``resnet-l1`` (the multi-stage VAE's refiner) and ``resnet-l2`` (the deep residual VAE's)."""
    return [
        StageType(
            name=f"resnet-{loss}",
            kind="refiner",
            network="resnet",
            losses=({"type": loss},),
            # stagegen 0.1 set the loss's weight as an option of the stage
            aliases={"pixel_weight": (0, "weight")},
            description=f"the paper's residual refiner with an {loss} loss ({what})",
        )
        for loss, what in (("l1", "multi-stage VAE"), ("l2", "deep residual VAE"))
    ]


def perceptual_refiners() -> list[StageType]:
    """``srresnet-perceptual``: ``srresnet`` with l1 + 0.1 x perceptual."""
    return [
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
        ),
    ]


#: the options stagegen 0.1's adversarial refiner had, as options of its loss
_LEGACY_LOSS_OPTIONS = (
    "gan_loss",
    "start_step",
    "adaptive",
    "disc_width",
    "disc_layers",
    "spectral_norm",
    "disc_lr",
    "disc_betas",
)


def adversarial_refiners() -> list[StageType]:
    """``resnet-gan`` (l1 + the adversarial loss at its defaults) and ``adversarial`` (stagegen 0.1's refiner)."""
    return [
        StageType(
            name="resnet-gan",
            kind="refiner",
            network="resnet",
            network_defaults={"width": 32, "blocks": 2, "head_width": 0, "output": "residual"},
            losses=({"type": "l1"}, {"type": "adversarial", "weight": 0.02}),
            description="residual refiner that adds detail: l1 + adversarial on reconstructions and prior samples, with "
            "feature matching (the sharp-* presets' refiner)",
        ),
        StageType(
            name="adversarial",
            kind="refiner",
            network="resnet",
            network_defaults={
                "blocks": 5,
                "head_width": 0,
                "leaky_slope": 0.2,
                "head_kernel": 5,
                "tail_kernel": 3,
                "skip": "identity",
            },
            losses=(
                {"type": "l1"},
                {
                    "type": "adversarial",
                    "weight": 0.1,
                    # stagegen 0.1's refiner: reconstructions only, batch norm, adaptive weight, no penalty or feature matching
                    "options": {
                        "judge": "reconstructions",
                        "spectral_norm": False,
                        "feature_matching": 0.0,
                        "r1": 0.0,
                        "adaptive": True,
                        "disc_width": 64,
                    },
                },
            ),
            aliases={
                "pixel_loss": (0, "type"),
                "pixel_weight": (0, "weight"),
                "adversarial_weight": (1, "weight"),
                **{name: (1, "options", name) for name in _LEGACY_LOSS_OPTIONS},
            },
            description="residual refiner with l1 + adversarial loss on reconstructions (stagegen 0.1's refiner)",
        ),
    ]
