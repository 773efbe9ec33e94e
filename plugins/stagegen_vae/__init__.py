"""The VAE trunk: encoder, reparameterisation, decoder to the coarse image.

Shaped after the authors' code: widths double per down block, 3x3 convs with batch norm and
leaky ReLU (slope 0.3), a dense layer to the smallest feature map, stride-2 transposed convs
back up, tanh at the end. Any square resolution works: the decoder's transposed convs pick
their output padding so every feature map matches the encoder's size at that depth. With
``classes``, a CVAE: a learned embedding of the class is appended to the encoder's features and
to z (the engine passes each image's label; see ``Trunk.label_count``).

Registered through the ``stagegen`` entry-point group like any plugin: the engine names no
stage type, the trunk included.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

import torch
import torch.nn.functional as F
from pydantic import Field, field_validator
from torch import nn

import stagegen
from stagegen.layers import conv_bn_act
from stagegen.losses import LossContext
from stagegen.stages import BuildContext, Posterior, StageOptions, StageType, Trunk
from stagegen.text import MAX_LABELS

__version__ = stagegen.__version__
__all__ = ["VAEOptions", "VAETrunk"]


class VAEOptions(StageOptions):
    widths: list[Annotated[int, Field(ge=1, le=4096)]] = Field(
        [64, 128, 256], min_length=1, max_length=10, description="channels of each down block; resolution halves per block"
    )
    convs_per_block: Literal[1, 2] = Field(
        1, description="1: a stride-2 conv per block (paper, MNIST); 2: stride-1 then stride-2 (paper, CelebA)"
    )
    latent_dim: int = Field(128, ge=1, le=65536, description="size of the latent vector z")
    leaky_slope: float = Field(0.3, ge=0, description="negative slope of the leaky ReLUs")
    std_parameterization: Literal["sqrt4sigmoid", "exp"] = Field(
        "sqrt4sigmoid", description="posterior std as sqrt(4 * sigmoid(s)) (authors' code) or exp(s / 2) (log-variance)"
    )
    recon_loss: Literal["l2", "gaussian_nll", "calibrated", "none"] = Field(
        "l2",
        description="loss on the coarse image: l2 (mean squared error); Gaussian NLL with a fixed sigma; calibrated: "
        "Gaussian NLL whose sigma is fitted (see sigma_mode; the sigma-VAE, Rybkin et al. 2021); or none (deep residual VAE)",
    )
    recon_weight: float = Field(1.0, ge=0, description="weight of the reconstruction term")
    sigma: float = Field(1.0, gt=0, description="fixed standard deviation of the Gaussian NLL (recon_loss gaussian_nll)")
    sigma_mode: Literal["optimal", "learned"] = Field(
        "optimal", description="calibrated only: sigma^2 = the batch's MSE (analytic optimum), or a learned parameter"
    )
    sigma_per_channel: bool = Field(False, description="calibrated only: one sigma per image channel instead of one in all")
    kl_weight: float = Field(1.0, ge=0, description="weight of the KL term")
    classes: int = Field(
        0,
        ge=0,
        le=MAX_LABELS,
        description="condition the encoder and decoder on a class label with this many classes (a CVAE; training needs "
        "a labelled dataset with as many classes); 0: unconditional",
    )
    label_dim: int = Field(32, ge=1, le=4096, description="classes > 0 only: size of the learned label embedding")
    kl_reduction: Literal["mean", "sum", "elbo"] = Field(
        "mean",
        description="mean: KL averaged over latent elements (authors' code); sum: summed per image, averaged over the "
        "batch; elbo: summed per image and divided by the image's pixel count, the ELBO per dimension that matches a "
        "per-pixel NLL (use with calibrated)",
    )

    @field_validator("classes")
    @classmethod
    def _classes(cls, v: int) -> int:
        if v == 1:
            raise ValueError("a label-conditioned trunk needs at least two classes (0: unconditional)")
        return v


MIN_LOG_SIGMA = -6.0
HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def feature_sizes(resolution: int, depth: int) -> list[int]:
    """Spatial size at each depth of the encoder with stride-2, padding-1 convs."""
    sizes = [resolution]
    for _ in range(depth):
        sizes.append(math.ceil(sizes[-1] / 2))
    return sizes


class VAETrunk(Trunk):
    def __init__(self, options: VAEOptions, channels: int, resolution: int):
        super().__init__()
        self.options = options
        o = options
        self.latent_shape = (o.latent_dim,)
        sizes = feature_sizes(resolution, len(o.widths))

        down: list[nn.Module] = []
        cin = channels
        for w in o.widths:
            if o.convs_per_block == 2:
                down.append(conv_bn_act(cin, w, 3, 1, o.leaky_slope))
                cin = w
            down.append(conv_bn_act(cin, w, 3, 2, o.leaky_slope))
            cin = w
        self.encoder = nn.Sequential(*down)
        self._bottom = (o.widths[-1], sizes[-1], sizes[-1])
        flat = o.widths[-1] * sizes[-1] ** 2
        # A CVAE: one learned embedding of the label, appended to the encoder's flattened features
        # and to z, so both q(z|x, y) and p(x|z, y) see it; z is left to carry what the label does not.
        self.label_count = o.classes
        extra = o.label_dim if o.classes else 0
        if o.classes:
            self.label_embedding = nn.Embedding(o.classes, o.label_dim)
        self.to_posterior = nn.Linear(flat + extra, 2 * o.latent_dim)

        self.from_latent = nn.Sequential(
            nn.Linear(o.latent_dim + extra, flat, bias=False), nn.BatchNorm1d(flat), nn.LeakyReLU(o.leaky_slope, inplace=True)
        )
        up: list[nn.Module] = []
        widths_up = list(reversed(o.widths))
        for i, w in enumerate(widths_up):
            w_out = widths_up[i + 1] if i + 1 < len(widths_up) else o.widths[0]
            size_in, size_out = sizes[-1 - i], sizes[-2 - i]
            output_padding = size_out - (2 * size_in - 1)
            up += [
                nn.ConvTranspose2d(w, w_out, 3, 2, padding=1, output_padding=output_padding, bias=False),
                nn.BatchNorm2d(w_out),
                nn.LeakyReLU(o.leaky_slope, inplace=True),
            ]
        up += [nn.Conv2d(o.widths[0], channels, 3, padding=1), nn.Tanh()]
        self.decoder = nn.Sequential(*up)
        if o.recon_loss == "calibrated" and o.sigma_mode == "learned":
            self.log_sigma = nn.Parameter(torch.zeros(channels if o.sigma_per_channel else 1))

    def _with_label(self, h: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        if not self.label_count:
            return h
        if labels is None:
            raise ValueError(f"this vae trunk is conditioned on {self.label_count} classes: give each image's label")
        return torch.cat([h, self.label_embedding(labels).to(h.dtype)], dim=1)

    def encode(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> Posterior:
        h = self.to_posterior(self._with_label(self.encoder(x).flatten(1), labels))
        mean, s = h.chunk(2, dim=1)
        if self.options.std_parameterization == "sqrt4sigmoid":
            std = torch.sqrt(4 * torch.sigmoid(s))
        else:
            std = torch.exp(0.5 * s)
        return Posterior(mean, std)

    def decode(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.decoder(self.from_latent(self._with_label(z, labels)).view(-1, *self._bottom))

    def _log_sigma(self, squared_error: torch.Tensor) -> torch.Tensor:
        """log sigma of the calibrated Gaussian, per channel (1 x C x 1 x 1) or shared (a scalar)."""
        o = self.options
        if o.sigma_mode == "learned":
            log_sigma = self.log_sigma.view(1, -1, 1, 1) if o.sigma_per_channel else self.log_sigma.squeeze()
        else:  # the analytic optimum: sigma^2 = MSE over the batch
            mse = squared_error.mean((0, 2, 3), keepdim=True) if o.sigma_per_channel else squared_error.mean()
            log_sigma = 0.5 * mse.clamp_min(1e-12).log()
        # a floor keeps a perfect fit (a constant image, a tiny batch) from driving the loss to -infinity
        return log_sigma.clamp_min(MIN_LOG_SIGMA)

    def loss(self, output: torch.Tensor, target: torch.Tensor, ctx: LossContext) -> dict[str, torch.Tensor]:
        o = self.options
        terms: dict[str, torch.Tensor] = {}
        pixels = output[0].numel()
        nll = None  # per pixel, in nats on the networks' [-1, 1] scale
        if o.recon_loss == "l2":
            terms["l2"] = o.recon_weight * F.mse_loss(output, target)
        elif o.recon_loss == "gaussian_nll":
            nll = 0.5 * F.mse_loss(output, target) / o.sigma**2 + math.log(o.sigma) + HALF_LOG_2PI
            terms["nll"] = o.recon_weight * nll
        elif o.recon_loss == "calibrated":
            squared_error = (output.float() - target.float()).square()
            log_sigma = self._log_sigma(squared_error)
            nll = (0.5 * squared_error * torch.exp(-2 * log_sigma) + log_sigma).mean() + HALF_LOG_2PI
            terms["nll"] = o.recon_weight * nll
            ctx.report("sigma", log_sigma.exp().mean())
        if ctx.posterior is not None:
            kl = ctx.posterior.kl()
            per_image = kl.flatten(1).sum(1).mean()
            reduced = {"mean": kl.mean(), "sum": per_image, "elbo": per_image / pixels}[o.kl_reduction]
            terms["kl"] = o.kl_weight * reduced
            ctx.report("kl_nats", per_image)
            if nll is not None:
                # the negative ELBO per image, and in bits per dimension of 8-bit data (bins of 2/255 on [-1, 1])
                nelbo = nll.detach() * pixels + per_image
                ctx.report("nelbo_nats", nelbo)
                ctx.report("bpd", nelbo / (pixels * math.log(2)) + math.log2(127.5), headline=True)
        return terms


def build_vae(options: VAEOptions, ctx: BuildContext) -> VAETrunk:
    return VAETrunk(options, ctx.channels, ctx.out_resolution)


@stagegen.hookimpl
def register_stages(register):
    register(
        StageType(
            name="vae",
            kind="trunk",
            options=VAEOptions,
            build=build_vae,
            description="VAE trunk (l2 or Gaussian NLL + KL) producing the coarse image",
        )
    )
