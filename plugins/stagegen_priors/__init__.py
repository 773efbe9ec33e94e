"""Built-in fitted priors: a Gaussian mixture and a two-stage latent VAE (and, in
:mod:`.normal`, registered by its own entry point, N(0, I)).

They register through the same ``register_priors`` hook a third-party package uses.
"""

from stagegen import hookimpl
from stagegen.priors import PriorType

from .gmm import GMMOptions, GMMPrior
from .latent_vae import LatentVAEOptions, LatentVAEPrior

__all__ = ["GMMOptions", "GMMPrior", "LatentVAEOptions", "LatentVAEPrior"]


@hookimpl
def register_priors(register):
    register(
        PriorType(
            name="gmm",
            options=GMMOptions,
            build=lambda o, ctx: GMMPrior(o, ctx.latent_shape),
            description="Gaussian mixture fitted by EM to the training images' posterior means (Ghosh et al. 2020)",
        )
    )
    register(
        PriorType(
            name="latent-vae",
            options=LatentVAEOptions,
            build=lambda o, ctx: LatentVAEPrior(o, ctx.latent_shape),
            description="a second, small VAE trained on the trunk's latents (the Two-Stage VAE, Dai & Wipf 2019)",
        )
    )
