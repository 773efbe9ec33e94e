"""A Gaussian mixture over latents, fitted by EM in torch (float64) after training."""

from __future__ import annotations

import math
from typing import Literal

import torch
from pydantic import Field

from stagegen.prior import LatentSet, Prior, PriorOptions


class GMMOptions(PriorOptions):
    components: int = Field(10, ge=1, le=1000, description="mixture components (Ghosh et al. use 10)")
    covariance: Literal["full", "diag"] = Field("full", description="full or diagonal covariance per component")
    iterations: int = Field(100, ge=1, le=10_000, description="most EM iterations")
    tolerance: float = Field(1e-3, gt=0, description="stop when the mean log-likelihood per latent improves by less")
    reg_covar: float = Field(1e-4, ge=0, description="added to every variance, relative to the latents' mean variance")
    fit_on: Literal["mean", "sample"] = Field("mean", description="fit to posterior means, or to one posterior sample per image")


class GMMPrior(Prior):
    def __init__(self, options: GMMOptions, latent_shape: tuple[int, ...]):
        super().__init__(latent_shape)
        self.options = options
        k, d = options.components, math.prod(latent_shape)
        # zero weights mean "not fitted yet"
        self.register_buffer("weights", torch.zeros(k))
        self.register_buffer("means", torch.zeros(k, d))
        if options.covariance == "full":
            self.register_buffer("scale_tril", torch.eye(d).repeat(k, 1, 1))
        else:
            self.register_buffer("stds", torch.ones(k, d))

    @property
    def fitted(self) -> bool:
        return bool(self.weights.sum() > 0)

    # ------------------------------------------------------------------ sampling

    def sample_flat(self, n: int, generator: torch.Generator, temperature: float) -> torch.Tensor:
        weights, means = self.weights.cpu().double(), self.means.cpu().double()
        component = torch.multinomial(weights, n, replacement=True, generator=generator)
        eps = torch.randn((n, means.shape[1]), generator=generator, dtype=torch.float64) * temperature
        if self.options.covariance == "full":
            noise = torch.einsum("nij,nj->ni", self.scale_tril.cpu().double()[component], eps)
        else:
            noise = self.stds.cpu().double()[component] * eps
        return (means[component] + noise).float()

    # ------------------------------------------------------------------ EM

    def fit(self, latents: LatentSet, generator: torch.Generator) -> dict[str, float]:
        o = self.options
        x = (latents.mean if o.fit_on == "mean" else latents.samples(generator)).double()
        n, d = x.shape
        k = min(o.components, n)
        reg = o.reg_covar * float(x.var(0).mean().clamp_min(1e-12))
        means = _kmeans_plus_plus(x, k, generator)
        resp = torch.nn.functional.one_hot(torch.cdist(x, means).argmin(1), k).double()
        previous, loglik, iterations = -math.inf, -math.inf, 0
        for iterations in range(1, o.iterations + 1):  # noqa: B007  (the count is reported after the loop)
            weights, means, covs = _m_step(x, resp, reg, o.covariance)
            log_prob = _log_prob(x, weights, means, covs, o.covariance)
            norm = torch.logsumexp(log_prob, 1, keepdim=True)
            loglik = float(norm.mean())
            resp = (log_prob - norm).exp()
            if loglik - previous < o.tolerance:
                break
            previous = loglik
        weights, means, covs = _m_step(x, resp, reg, o.covariance)
        self.weights.zero_()
        self.weights[:k] = weights.float()
        self.means[:k] = means.float()
        if o.covariance == "full":
            self.scale_tril[:k] = torch.linalg.cholesky(covs).float()
        else:
            self.stds[:k] = covs.sqrt().float()
        return {"prior_loglik_per_latent": loglik, "prior_em_iterations": float(iterations)}


def _kmeans_plus_plus(x: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """Seeded k-means++ centres, refined by a few Lloyd iterations."""
    centres = [x[torch.randint(len(x), (1,), generator=generator)].squeeze(0)]
    dist = ((x - centres[0]) ** 2).sum(1)
    for _ in range(1, k):
        probs = dist / dist.sum() if dist.sum() > 0 else torch.full_like(dist, 1 / len(dist))
        centres.append(x[torch.multinomial(probs, 1, generator=generator)].squeeze(0))
        dist = torch.minimum(dist, ((x - centres[-1]) ** 2).sum(1))
    c = torch.stack(centres)
    for _ in range(10):
        assign = torch.cdist(x, c).argmin(1)
        for j in range(k):
            members = x[assign == j]
            if len(members):
                c[j] = members.mean(0)
    return c


def _m_step(x, resp, reg, covariance):
    nk = resp.sum(0) + 1e-10
    weights = nk / nk.sum()
    means = (resp.T @ x) / nk[:, None]
    if covariance == "full":
        d = x.shape[1]
        # E[x x^T] - mu mu^T per component, from one weighted product
        second = ((resp.T[:, :, None] * x).transpose(1, 2) @ x) / nk[:, None, None]
        covs = second - means[:, :, None] * means[:, None, :]
        covs = 0.5 * (covs + covs.transpose(1, 2)) + reg * torch.eye(d, dtype=x.dtype)
    else:
        covs = (resp.T @ x.square()) / nk[:, None] - means.square() + reg
        covs = covs.clamp_min(reg)
    return weights, means, covs


def _log_prob(x, weights, means, covs, covariance):
    """log w_k + log N(x | mu_k, Sigma_k) for every latent and component: N x K."""
    d = x.shape[1]
    if covariance == "full":
        # with Sigma = L L^T: |L^-1 (x - mu)|^2 = |L^-1 x - L^-1 mu|^2, one batched solve for all components
        chol = torch.linalg.cholesky(covs)
        eye = torch.eye(d, dtype=x.dtype).expand_as(chol)
        inv = torch.linalg.solve_triangular(chol, eye, upper=False)  # K x D x D
        projected = x @ inv.transpose(1, 2) - (inv @ means.unsqueeze(2)).transpose(1, 2)  # K x N x D, batched matmuls
        maha = projected.square().sum(2).T
        logdet = 2 * chol.diagonal(dim1=1, dim2=2).log().sum(1)
    else:
        maha = (x.square() @ (1 / covs).T) - 2 * x @ (means / covs).T + (means.square() / covs).sum(1)
        logdet = covs.log().sum(1)
    return weights.log() - 0.5 * (d * math.log(2 * math.pi) + logdet + maha)
