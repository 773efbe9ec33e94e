"""The Two-Stage VAE's second stage (Dai & Wipf 2019): a small VAE trained on the trunk's
latents, whose own latent u ~ N(0, I) is what sampling draws. The first VAE's aggregate
posterior need not be N(0, I); the second one learns to map N(0, I) onto it. Its decoder's
variance (gamma) is learned, which is what lets the second stage match the first's codes;
sampling draws from its marginal, decoder mean plus gamma-scaled noise."""

from __future__ import annotations

import math
import time

import torch
from pydantic import Field
from torch import nn

from stagegen.priors import LatentSet, Prior, PriorOptions


class LatentVAEOptions(PriorOptions):
    width: int = Field(256, ge=1, le=8192, description="hidden units of each dense layer")
    depth: int = Field(2, ge=1, le=8, description="hidden dense layers in the encoder and in the decoder")
    latent_dim: int | None = Field(None, ge=1, le=8192, description="size of u (default: the trunk's latent size)")
    steps: int = Field(2000, ge=1, le=1_000_000, description="Adam steps of fitting")
    batch_size: int = Field(256, ge=1, le=65_536, description="latents per step (fresh posterior samples each step)")
    lr: float = Field(1e-3, gt=0, description="Adam learning rate (cosine decay to zero)")


def _mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-2], sizes[1:-1]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    layers.append(nn.Linear(sizes[-2], sizes[-1]))
    return nn.Sequential(*layers)


class LatentVAEPrior(Prior):
    draws_on_device = True

    def __init__(self, options: LatentVAEOptions, latent_shape: tuple[int, ...]):
        super().__init__(latent_shape)
        self.options = options
        d = math.prod(latent_shape)
        u = options.latent_dim or d
        hidden = [options.width] * options.depth
        self.encoder = _mlp([d, *hidden, 2 * u])
        self.decoder = _mlp([u, *hidden, d])
        self.log_gamma = nn.Parameter(torch.zeros(()))
        # the latents' scale, so the small VAE sees standardised codes whatever the trunk's scale
        self.register_buffer("offset", torch.zeros(d))
        self.register_buffer("scale", torch.ones(d))
        self.register_buffer("fitted_flag", torch.zeros((), dtype=torch.uint8))
        self.requires_grad_(False)

    @property
    def fitted(self) -> bool:
        return bool(self.fitted_flag)

    def sample_flat(self, n: int, generator: torch.Generator, temperature: float) -> torch.Tensor:
        u_dim, device = self.decoder[0].in_features, generator.device
        u = torch.randn((n, u_dim), generator=generator, device=device) * temperature
        # the second VAE's own Gaussian noise belongs to its marginal: without it, a stage that
        # explains part of the latents as noise (gamma not small) would sample too narrowly
        noise = torch.randn((n, self.offset.numel()), generator=generator, device=device) * temperature
        param = self.decoder[0].weight
        with torch.inference_mode():
            z = self.decoder(u.to(param.device, param.dtype)).float().to(device)
            z = z + noise * self.log_gamma.clamp_min(-6).exp().float().to(device)
        return z * self.scale.to(device) + self.offset.to(device)

    #: Adam steps timed for a time budget's estimate of a fit
    TIMED_STEPS = 20

    def fit_seconds(self, n: int, probe: LatentSet) -> float:
        """A fit is ``steps`` Adam steps on batches of ``batch_size``, whatever ``n``: a copy
        fitted with a few of them, timed and scaled to all."""
        if len(probe.mean) == 0:
            return 0.0
        trial = LatentVAEPrior(self.options.model_copy(update={"steps": self.TIMED_STEPS}), self.latent_shape)
        trial.to(self.offset.device)
        start = time.perf_counter()
        with torch.random.fork_rng(devices=[]):
            trial.fit(probe, torch.Generator().manual_seed(0))
        return (time.perf_counter() - start) * self.options.steps / self.TIMED_STEPS

    def fit(self, latents: LatentSet, generator: torch.Generator) -> dict[str, float]:
        o = self.options
        device = self.offset.device
        mean, std = latents.mean.to(device), latents.std.to(device)
        offset, scale = mean.mean(0), (mean.var(0) + std.square().mean(0)).sqrt().clamp_min(1e-6)
        self.offset.copy_(offset)
        self.scale.copy_(scale)
        params = list(self.parameters())
        self.requires_grad_(True)
        opt = torch.optim.Adam(params, lr=o.lr)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, o.steps)
        d = mean.shape[1]
        loss = torch.zeros(())
        try:
            with torch.enable_grad():
                for _ in range(o.steps):
                    pick = torch.randint(len(mean), (o.batch_size,), generator=generator).to(device)
                    eps = torch.randn((o.batch_size, d), generator=generator).to(device)
                    z = (mean[pick] + std[pick] * eps - offset) / scale
                    h = self.encoder(z)
                    mu, logvar = h.chunk(2, dim=1)
                    logvar = logvar.clamp(-12, 6)
                    u = mu + (0.5 * logvar).exp() * torch.randn(mu.shape, generator=generator).to(device)
                    gamma = self.log_gamma.clamp_min(-6).exp()
                    recon = 0.5 * ((self.decoder(u) - z) / gamma).square().sum(1) + d * gamma.log()
                    kl = 0.5 * (mu.square() + logvar.exp() - 1 - logvar).sum(1)
                    loss = (recon + kl).mean()
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    sched.step()
        finally:
            self.requires_grad_(False)
        self.fitted_flag.fill_(1)
        return {
            "prior_nelbo_per_latent": float(loss.detach()) / d + 0.5 * math.log(2 * math.pi),
            "prior_gamma": float(self.log_gamma.exp()),
        }
