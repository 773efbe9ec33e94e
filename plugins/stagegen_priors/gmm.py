"""A Gaussian mixture over latents, fitted by EM in torch (float64) after training."""

from __future__ import annotations

import math
import time
from typing import Literal

import torch
from pydantic import Field

from stagegen.priors import LatentSet, Prior, PriorOptions


class GMMOptions(PriorOptions):
    components: int = Field(10, ge=1, le=1000, description="mixture components (Ghosh et al. use 10)")
    covariance: Literal["full", "diag"] = Field("full", description="full or diagonal covariance per component")
    iterations: int = Field(100, ge=1, le=10_000, description="most EM iterations")
    tolerance: float = Field(1e-3, gt=0, description="stop when the mean log-likelihood per latent improves by less")
    reg_covar: float = Field(
        1e-4, gt=0, le=1e3, description="added to every variance, relative to the latents' mean variance (0 is singular)"
    )
    fit_on: Literal["mean", "sample"] = Field("mean", description="fit to posterior means, or to one posterior sample per image")


class GMMPrior(Prior):
    draws_on_device = True

    def __init__(self, options: GMMOptions, latent_shape: tuple[int, ...]):
        super().__init__(latent_shape)
        self.options = options
        k, d = options.components, math.prod(latent_shape)
        if options.covariance == "full":
            _check_covariance_memory(k, d)
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

    def fit_bytes(self, n: int) -> int:
        """The EM's float64 working set: responsibilities and distances (N x K), and for full
        covariances the K x N x D projection and four K x D x D matrices (covariances, Cholesky
        factors, their inverses, identities)."""
        k, d = min(self.options.components, n), self.latent_dim
        full = k * n * d + 4 * k * d * d if self.options.covariance == "full" else 2 * n * d
        return 8 * (3 * n * k + 2 * n * d + full)

    def check_state(self) -> str | None:
        problem = super().check_state()
        if problem is None and bool((self.weights < 0).any()):
            problem = f"prior.weights holds {int((self.weights < 0).sum())} negative mixture weight(s)"
        if problem is not None or not self.fitted:  # all-zero weights: not fitted yet, which sampling says
            return problem
        if abs(float(self.weights.sum()) - 1) > 1e-3:
            return f"prior.weights sums to {float(self.weights.sum()):.6g}, not 1"
        if self.options.covariance == "full":
            diagonal = self.scale_tril.diagonal(dim1=1, dim2=2)[self.weights > 0]
            if bool((diagonal <= 0).any()) or bool(self.scale_tril.triu(1).ne(0).any()):
                return "prior.scale_tril is not a Cholesky factor (lower triangular with a positive diagonal)"
        elif bool((self.stds[self.weights > 0] <= 0).any()):
            return "prior.stds holds a standard deviation <= 0"
        return None

    # ------------------------------------------------------------------ sampling

    def sample_flat(self, n: int, generator: torch.Generator, temperature: float) -> torch.Tensor:
        # on the generator's device: a CPU generator gives the same latents wherever the prior is,
        # and the sample path's draws on a GPU never wait on the host
        device = generator.device
        weights, means = self.weights.to(device, torch.float64), self.means.to(device, torch.float64)
        component = torch.multinomial(weights, n, replacement=True, generator=generator)
        eps = torch.randn((n, means.shape[1]), generator=generator, dtype=torch.float64, device=device) * temperature
        if self.options.covariance == "full":
            noise = torch.einsum("nij,nj->ni", self.scale_tril.to(device, torch.float64)[component], eps)
        else:
            noise = self.stds.to(device, torch.float64)[component] * eps
        return (means[component] + noise).float()

    #: EM iterations a time-budgeted run sets time aside for: fits to trained posteriors take 10
    #: to 30 (CelebA 64x64: 24; MNIST per label: about 21); the fit itself is not cut short
    BUDGETED_ITERATIONS = 40

    def fit_seconds(self, n: int, probe: LatentSet) -> float:
        """One EM iteration on ``n`` latents shaped like the probe's (its cost depends on the
        shapes only, and grows faster than linearly once they leave the caches, so it is timed
        at full size, up to 20,000), times the iterations a fit is expected to need."""
        d = probe.mean.shape[1] if probe.mean.ndim == 2 else self.latent_dim
        m = min(n, 20_000)
        if m == 0:
            return 0.0
        k = min(self.options.components, m)
        x = torch.randn(m, d, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        resp = torch.nn.functional.one_hot(torch.arange(m) % k, k).double()
        times = []
        for rows in (min(m, 4 * k), m, m):  # a small first pass: the first call of each kernel sets itself up
            start = time.perf_counter()
            weights, means, covs = _m_step(x[:rows], resp[:rows], self.options.reg_covar, self.options.covariance)
            log_prob = _log_prob(x[:rows], weights, means, covs, self.options.covariance)
            (log_prob - torch.logsumexp(log_prob, 1, keepdim=True)).exp()
            times.append(time.perf_counter() - start)
        per_iteration = min(times[1:]) * n / m
        return per_iteration * min(self.options.iterations, self.BUDGETED_ITERATIONS)

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


def _check_covariance_memory(k: int, d: int) -> None:
    """K full D x D covariances (float32) must fit before they are allocated (1,000 components over
    4,096-dim latents are 67 GB); built on the meta device (a file being checked), nothing is."""
    if torch.empty(0).device.type == "meta":
        return
    from stagegen.devices import available_memory

    needed, available = 4 * k * d * d, available_memory(torch.device("cpu"))
    if needed > available:
        raise ValueError(
            f"a gmm prior of {k} full-covariance components over {d}-value latents holds {needed / 2**30:,.1f} GiB "
            f"of covariances and {available / 2**30:,.1f} GiB is available; use fewer components or covariance=diag"
        )


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
