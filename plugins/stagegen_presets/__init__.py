"""The built-in presets: the paper's three models on its two datasets (settings from the paper,
section 3.1, and the authors' code), the default run on the embedded digits, and the ``sharp-*``
configurations beyond the paper. They register through the ``register_presets`` hook, like a
third-party package's would; a dataset names its own (``DatasetType.default_preset``).
"""

from __future__ import annotations

from typing import Any

import stagegen
from stagegen.config.presets import Preset

__version__ = stagegen.__version__
__all__ = ["PRESETS", "gan_refiner"]

# --- the paper's architectures (section 3.1; widths, BN and lrelu 0.3 from the authors' code)
_MNIST_TRUNK = {"widths": [64, 128, 256], "convs_per_block": 1, "latent_dim": 128}
_CELEBA_TRUNK = {"widths": [64, 128, 256, 512], "convs_per_block": 2, "latent_dim": 512}
_PAPER_REFINER = {"width": 64, "blocks": 5, "head_width": 256}
_MNIST = {"image_size": 28, "channels": 1}
_CELEBA = {"image_size": 128, "channels": 3}
_MNIST_TRAIN = {"batch_size": 256, "lr": 1e-3, "steps": 100_000}
_CELEBA_TRAIN = {"batch_size": 32, "lr": 2e-4, "steps": 200_000}
_NO_TRUNK_LOSS = {"recon_loss": "none"}

# --- beyond the paper: what makes samples people accept (docs/results.md has the measurements)
# A calibrated Gaussian decoder (sigma^2 = the batch MSE; the sigma-VAE of Rybkin et al. 2021) with the
# KL summed per image needs no hand-tuned KL weight and keeps the posterior informative; a Gaussian
# mixture fitted to the training posteriors after training (Ghosh et al. 2020) samples where the
# decoder has learned to draw, instead of from N(0, I), which such a posterior does not match.
_CALIBRATED = {"recon_loss": "calibrated", "sigma_mode": "optimal", "kl_reduction": "elbo"}


# A refiner that adds detail (docs/training.md): the paper's network drawing a correction to its input,
# trained with l1 + a realism loss that also judges its outputs on prior samples (the sample path) and
# matches the discriminator's features; it joins once the trunk draws the coarse image (train_from).
def gan_refiner(width: int, blocks: int, scale: int, weight: float, disc_width: int, train_from: int) -> dict[str, Any]:
    return {
        "type": "resnet-gan",
        "options": {"width": width, "blocks": blocks, "scale": scale},
        "losses": [
            {"type": "l1"},
            {"type": "adversarial", "weight": weight, "options": {"adaptive": False, "disc_width": disc_width}},
        ],
        "train_from": train_from,
    }


def _sharp(image: dict, trunk: dict, refiner: dict, prior: dict, train: dict, data: str) -> dict[str, Any]:
    refiner = refiner if "type" in refiner else {"type": "resnet-l1", "options": refiner}
    return {
        "pipeline": {
            **image,
            "stages": [{"type": "vae", "options": {**trunk, **_CALIBRATED}}, refiner],
            "prior": prior,
        },
        "train": train,
        "data": {"name": data},
    }


def _paper(image: dict, trunk: dict, train: dict, data: str, model: str) -> dict[str, Any]:
    stages = {
        "vae": [{"type": "vae", "options": trunk}],
        "resvae": [{"type": "vae", "options": {**trunk, **_NO_TRUNK_LOSS}}, {"type": "resnet-l2", "options": _PAPER_REFINER}],
        "msvae": [{"type": "vae", "options": trunk}, {"type": "resnet-l1", "options": _PAPER_REFINER}],
    }[model]
    return {"pipeline": {**image, "stages": stages}, "train": train, "data": {"name": data}}


PRESETS: dict[str, tuple[str, dict[str, Any]]] = {
    "sharp-digits": (
        "the default: calibrated VAE trunk + l1 refiner + fitted mixture prior on the embedded 16x16 digits; "
        "1,500 steps, 2 to 3 minutes on an idle 2-core CPU (capped at 10 minutes)",
        _sharp(
            {"image_size": 16, "channels": 1},
            {"widths": [32, 64, 128], "latent_dim": 32},
            {"width": 32, "blocks": 3, "head_width": 64},
            {"type": "gmm", "options": {"components": 10}},
            {"steps": 1500, "batch_size": 64, "lr": 1e-3, "sample_every": 500, "checkpoint_every": 500, "time_budget": 600},
            "digits",
        ),
    ),
    "sharp-mnist": (
        "calibrated VAE trunk + l1 refiner + 20-component fitted mixture prior on MNIST 28x28 (widths below the paper's)",
        _sharp(
            {"image_size": 28, "channels": 1},
            {"widths": [32, 64, 128], "latent_dim": 32},
            {"width": 32, "blocks": 3, "head_width": 64},
            {"type": "gmm", "options": {"components": 20}},
            {"steps": 6000, "batch_size": 64, "lr": 1e-3},
            "mnist",
        ),
    ),
    "sharp-celeba64": (
        "a coarse-to-fine ladder on CelebA 64x64 RGB: a calibrated VAE trunk at 32x32, then a x2 refiner trained with l1 + "
        "a realism loss on reconstructions and prior samples (it joins at step 2,000); 20-component fitted mixture prior; "
        "about 15 minutes on a 2-core CPU",
        _sharp(
            {"image_size": 64, "channels": 3},
            {"widths": [64, 128, 256], "latent_dim": 128},
            gan_refiner(width=32, blocks=2, scale=2, weight=0.015, disc_width=16, train_from=2000),
            {"type": "gmm", "options": {"components": 20}},
            {"steps": 2800, "batch_size": 32, "lr": 5e-4, "sample_path_batch": 16, "time_budget": 900},
            "celeba",
        ),
    ),
    "sharp-celeba128": (
        "the ladder to the paper's 128x128: the trunk at 32x32, then two x2 refiners (to 64, to 128), each with l1 + a "
        "realism loss on reconstructions and prior samples, joining one after the other; CPU-sized (docs/cli.md gives the "
        "GPU-sized setting)",
        {
            "pipeline": {
                "image_size": 128,
                "channels": 3,
                "stages": [
                    {"type": "vae", "options": {"widths": [64, 128, 256], "latent_dim": 128, **_CALIBRATED}},
                    gan_refiner(width=32, blocks=2, scale=2, weight=0.015, disc_width=16, train_from=2000),
                    gan_refiner(width=16, blocks=2, scale=2, weight=0.015, disc_width=16, train_from=2600),
                ],
                "prior": {"type": "gmm", "options": {"components": 20}},
            },
            "train": {"steps": 3200, "batch_size": 32, "lr": 5e-4, "sample_path_batch": 16},
            "data": {"name": "celeba"},
        },
    ),
    "sharp-celeba128-gpu": (
        "the 128x128 ladder sized for one GPU and a short run: trunk widths 128..512 at 32x32, x2 refiners of 64 and "
        "32 channels (join at steps 1,500 and 3,000), EMA 0.999 with warm-up; 6,000 steps of batch 64, at most 7 "
        "minutes of training (docs/results.md, 'CelebA at 128x128 on a GPU')",
        {
            "pipeline": {
                "image_size": 128,
                "channels": 3,
                "stages": [
                    {
                        "type": "vae",
                        "options": {"widths": [128, 256, 512], "convs_per_block": 2, "latent_dim": 256, **_CALIBRATED},
                    },
                    gan_refiner(width=64, blocks=4, scale=2, weight=0.015, disc_width=64, train_from=1500),
                    gan_refiner(width=32, blocks=4, scale=2, weight=0.015, disc_width=64, train_from=3000),
                ],
                "prior": {"type": "gmm", "options": {"components": 20}},
            },
            "train": {
                "steps": 6000,
                "batch_size": 64,
                "lr": 5e-4,
                "sample_path_batch": 32,
                "ema_decay": 0.999,
                "sample_every": 1000,
                "checkpoint_every": 2000,
                "time_budget": 420,
            },
            "data": {"name": "celeba"},
        },
    ),
    "msvae-digits": (
        "the paper's two-stage model (vae,resnet-l1) with the authors' loss settings, scaled to the embedded 16x16 digits",
        {
            "pipeline": {
                "image_size": 16,
                "channels": 1,
                "stages": [
                    {"type": "vae", "options": {"widths": [32, 64, 128], "latent_dim": 32}},
                    {"type": "resnet-l1", "options": {"width": 32, "blocks": 3, "head_width": 64}},
                ],
            },
            "train": {"steps": 1500, "batch_size": 64, "lr": 1e-3, "sample_every": 500, "checkpoint_every": 500},
            "data": {"name": "digits"},
        },
    ),
    "vae-mnist": (
        "the paper's original VAE on MNIST 28x28, the authors' settings (l2 + KL mean, N(0, I) prior)",
        _paper(_MNIST, _MNIST_TRUNK, _MNIST_TRAIN, "mnist", "vae"),
    ),
    "resvae-mnist": (
        "the paper's deep residual VAE on MNIST, the authors' settings: trunk loss off, l2 + KL mean on the refined output",
        _paper(_MNIST, _MNIST_TRUNK, _MNIST_TRAIN, "mnist", "resvae"),
    ),
    "msvae-mnist": (
        "the paper's multi-stage VAE on MNIST, the authors' settings: l2 + KL mean on the coarse image, l1 on the refined one",
        _paper(_MNIST, _MNIST_TRUNK, _MNIST_TRAIN, "mnist", "msvae"),
    ),
    "vae-celeba": (
        "the paper's original VAE on CelebA 128x128, the authors' settings",
        _paper(_CELEBA, _CELEBA_TRUNK, _CELEBA_TRAIN, "celeba", "vae"),
    ),
    "resvae-celeba": (
        "the paper's deep residual VAE on CelebA 128x128, the authors' settings",
        _paper(_CELEBA, _CELEBA_TRUNK, _CELEBA_TRAIN, "celeba", "resvae"),
    ),
    "msvae-celeba": (
        "the paper's multi-stage VAE on CelebA 128x128, the authors' settings",
        _paper(_CELEBA, _CELEBA_TRUNK, _CELEBA_TRAIN, "celeba", "msvae"),
    ),
    "ladder-celeba": (
        "beyond the paper: a true coarse-to-fine ladder on CelebA: the trunk works at 32x32, an l1 refiner upsamples to 64, "
        "a perceptual SRResNet to 128, an adversarial refiner sharpens at 128",
        {
            "pipeline": {
                "image_size": 128,
                "channels": 3,
                "stages": [
                    {"type": "vae", "options": {"widths": [64, 128, 256], "convs_per_block": 2, "latent_dim": 256}},
                    {"type": "resnet-l1", "options": {**_PAPER_REFINER, "scale": 2}},
                    {"type": "srresnet-perceptual", "options": {"scale": 2}},
                    {"type": "adversarial", "options": {"scale": 1, "start_step": 20_000}},
                ],
            },
            "train": {"batch_size": 32, "lr": 2e-4, "steps": 200_000, "ema_decay": 0.999},
            "data": {"name": "celeba"},
        },
    ),
}


@stagegen.hookimpl
def register_presets(register):
    for name, (description, config) in PRESETS.items():
        register(Preset(name=name, config=config, description=description))
