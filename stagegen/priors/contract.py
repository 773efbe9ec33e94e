"""Where latents come from at sampling time: the prior, a component of its own.

The paper samples z ~ N(0, I). A trained VAE's aggregate posterior q(z) = E_x q(z|x) is rarely
N(0, I), and decodes of latents from the regions q(z) leaves empty look unlike anything the
refiners were trained on. So the chain owns a *prior*: a registered plugin (``normal``, a
Gaussian mixture, a second small VAE, ...) with validated options and its state in buffers,
stored in the pipeline file like every stage, and fitted to the trained trunk's posterior
after training ("ex-post density estimation", Ghosh et al. 2020; Dai & Wipf 2019).

Plugins register prior types through the ``register_priors`` hook, like stages; the built-ins
(``normal``, ``gmm``, ``latent-vae``) live in ``plugins/stagegen_priors``.
"""

from __future__ import annotations

import abc
import copy
import functools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..config.options import StrictModel, validate_options
from ..stages.contract import Upgrade

__all__ = [
    "LatentSet",
    "Prior",
    "PriorContext",
    "PriorOptions",
    "PriorType",
    "encode_dataset",
    "fit_prior",
]


class PriorOptions(StrictModel):
    """Base for every prior's options: unknown keys are errors."""


@dataclass(frozen=True)
class PriorContext:
    """What a prior's builder knows: the shape of one latent."""

    latent_shape: tuple[int, ...]

    @property
    def latent_dim(self) -> int:
        return math.prod(self.latent_shape)


@dataclass(frozen=True, kw_only=True)
class PriorType:
    """A registered prior. ``build(options, ctx)`` returns a :class:`Prior`."""

    name: str
    options: type[PriorOptions]
    build: Callable[[Any, PriorContext], Prior]
    description: str = ""
    #: the prior's options and buffers (names relative to it) as another version of its plugin
    #: wrote them, made current: the same hook as a stage type's (docs/plugins.md section 6)
    upgrade: Upgrade | None = None
    #: names it had before a rename: files, configs and commands with them still find it
    renamed_from: tuple[str, ...] = ()

    def validate_options(self, raw: dict[str, Any] | None) -> PriorOptions:
        return validate_options(self.options, raw, f"options of prior {self.name!r}")


@dataclass
class LatentSet:
    """The trained trunk's posteriors over a dataset: one row per image (flattened latents)."""

    mean: torch.Tensor  # N x D
    std: torch.Tensor  # N x D
    #: which images of the dataset the rows encode (a seeded subset may leave some out)
    index: torch.Tensor | None = None

    def samples(self, generator: torch.Generator) -> torch.Tensor:
        """One draw z ~ q(z|x) per image."""
        return self.mean + self.std * torch.randn(self.mean.shape, generator=generator, dtype=self.mean.dtype)


class Prior(nn.Module, metaclass=abc.ABCMeta):
    """A distribution over latents. Its state lives in buffers (saved in the pipeline file);
    any parameters it trains in ``fit`` must not require grad outside ``fit``, so the
    generator's optimiser and DistributedDataParallel leave them alone."""

    #: False for priors with nothing to learn (N(0, I)): training then skips the fitting pass
    needs_fit: bool = True
    #: True when ``sample_flat`` draws on its generator's device (any device): training's sample
    #: path then draws on the GPU with a GPU generator; otherwise it passes a CPU generator and
    #: moves the latents (a copy, and on a GPU a wait, every sample-path step)
    draws_on_device: bool = False

    def __init__(self, latent_shape: tuple[int, ...]):
        super().__init__()
        self.latent_shape = tuple(latent_shape)
        self.fit_done = False  # a fit ran (see `fitted`); pipeline files record it in their header

    def __init_subclass__(cls, **kwargs):
        """A subclass's ``fit`` marks the prior fitted when it returns, so ``fitted`` is right for
        every prior without each tracking it (a prior's own state may still say more)."""
        super().__init_subclass__(**kwargs)
        own_fit = cls.__dict__.get("fit")
        if own_fit is None or getattr(own_fit, "_marks_fitted", False):
            return

        @functools.wraps(own_fit)
        def fit(self, latents, generator):
            stats = own_fit(self, latents, generator)
            self.fit_done = True
            return stats

        fit._marks_fitted = True
        cls.fit = fit

    @property
    def latent_dim(self) -> int:
        """The size of one flattened latent."""
        return math.prod(self.latent_shape)

    @property
    def fitted(self) -> bool:
        """Whether sampling may use the prior: always when it needs no fit; otherwise once its
        ``fit`` has run, or the pipeline file it came from says a fit ran. A prior whose state
        tells (the gmm's weights are zero until fitted) may override this."""
        return not self.needs_fit or self.fit_done

    def fit(self, latents: LatentSet, generator: torch.Generator) -> dict[str, float]:
        """Fit to the posteriors of the training images; returns numbers worth logging."""
        return {}

    def fit_bytes(self, n: int) -> int:
        """Memory a fit to ``n`` latents needs at its peak (0: little). Checked before a fit, and
        before training for the fit at its end, so that options that cannot fit fail first."""
        return 0

    def fit_seconds(self, n: int, probe: LatentSet) -> float:
        """About how long a fit to ``n`` latents takes on this machine, given ``probe`` (a few
        hundred real posteriors): what a time-budgeted run sets aside for the fit at its end.
        By default a fit of a copy to the probe, timed and scaled linearly to ``n``; a prior
        whose cost is not one fit scaled (EM's iteration count grows with the data) says better."""
        if not self.needs_fit or len(probe.mean) == 0:
            return 0.0
        trial = copy.deepcopy(self)
        start = time.perf_counter()
        with torch.random.fork_rng(devices=[]):
            trial.fit(probe, torch.Generator().manual_seed(0))
        return (time.perf_counter() - start) * n / len(probe.mean)

    def check_state(self) -> str | None:
        """What is wrong with this prior's state (after a fit, or read from a file), or None.
        Every floating tensor must be finite; a prior adds its distribution's own constraints
        (mixture weights that are a distribution, positive scales) by extending this."""
        for name, tensor in self.state_dict().items():
            if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                return f"prior.{name} holds {int((~torch.isfinite(tensor)).sum())} NaN or infinite value(s)"
        return None

    @abc.abstractmethod
    def sample_flat(self, n: int, generator: torch.Generator, temperature: float) -> torch.Tensor:
        """n latents, flattened (n x D), drawn with ``generator`` (a CPU generator gives the same
        latents wherever the prior's tensors are). Only a prior that sets :attr:`draws_on_device`
        is given a generator on another device (a GPU's), and returns its latents there."""

    def sample(self, n: int, generator: torch.Generator | None = None, temperature: float = 1.0) -> torch.Tensor:
        """n latents of the trunk's latent shape. ``temperature`` scales the spread (0 gives
        the modes); the same generator state gives the same latents on any device."""
        if not math.isfinite(temperature) or temperature < 0:
            raise ValueError(f"temperature must be a finite number >= 0, got {temperature}")
        if not self.fitted:
            raise ValueError(
                f"the {type(self).__name__} of this pipeline was never fitted: fit it with "
                "`stagegen fit-prior PIPELINE --data ...` (or stagegen.priors.contract.fit_prior in Python)"
            )
        if generator is None:  # fresh entropy, without touching the global RNG
            generator = torch.Generator()
            generator.seed()
        return self.sample_flat(n, generator, temperature).reshape(n, *self.latent_shape)


# ---------------------------------------------------------------------------- fitting


@torch.inference_mode()
def encode_dataset(
    pipeline, images, max_images: int | None = None, seed: int = 0, batch: int = 256, labels: torch.Tensor | None = None
) -> LatentSet:
    """Posterior mean and std under the pipeline's trunk (in eval mode) of ``images``: a
    dataset of uint8 C x H x W tensors, or a tensor of images (uint8, or float in [0, 1]).
    Beyond ``max_images``, a seeded random subset. A label-conditioned trunk encodes each image
    with its class: ``labels`` (one index per image), else the dataset's own labels."""
    n = len(images)
    if n == 0:
        raise ValueError("no images to fit the prior to")
    if pipeline.label_conditioned and labels is None:
        from ..data.labels import labels_of

        declared = labels_of(images)
        if declared is None:
            raise ValueError(
                "this pipeline's trunk is conditioned on class labels (a CVAE), and these images declare none: "
                "encode a labelled dataset (digits, MNIST, a folder of class subfolders)"
            )
        if tuple(declared.names) != pipeline.labels:
            raise ValueError(
                f"this pipeline's trunk is conditioned on the labels {', '.join(pipeline.labels[:10])}, and these images "
                f"declare {', '.join(declared.names[:10])}: encode the dataset it was trained on"
            )
        labels = declared.index
    index = torch.arange(n)
    if max_images is not None and n > max_images:
        index = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:max_images].sort().values
    was_training = pipeline.training
    pipeline.eval()
    means, stds = [], []
    try:
        for start in range(0, len(index), batch):
            part = index[start : start + batch]
            x = images[part] if torch.is_tensor(images) else torch.stack([images[int(i)] for i in part])
            x = x.float() / 255 if not x.is_floating_point() else x
            q = pipeline.encode(x, None if labels is None else labels[part])
            means.append(q.mean.flatten(1).float().cpu())
            stds.append(q.std.flatten(1).float().cpu())
    finally:
        pipeline.train(was_training)
    return LatentSet(torch.cat(means), torch.cat(stds), index)


class PriorFitError(ValueError):
    """A prior's fit failed or produced an unusable prior; nothing was written with it."""


def check_fit_memory(prior: Prior, n: int, prior_name: str) -> None:
    """Refuse, before it starts, a fit to ``n`` latents that cannot fit in memory."""
    from ..devices import available_memory

    needed = prior.fit_bytes(n)
    available = available_memory(torch.device("cpu"))
    if needed > available:
        raise PriorFitError(
            f"fitting the {prior_name} prior to {n:,} latents of {prior.latent_dim} values needs about "
            f"{needed / 2**30:,.1f} GiB and {available / 2**30:,.1f} GiB is available; choose smaller prior options "
            "(fewer components, covariance=diag) or fewer images (--max-images, train.prior_fit_images)"
        )


def check_fit_memory_of_run(prior: Prior, prior_name: str, train_config) -> None:
    """A run's fits of its prior (the final one, to at most ``prior_fit_images`` latents, and the
    sample path's refits) must fit in memory: found out before training, not after hours of it."""
    if prior.needs_fit:
        check_fit_memory(prior, max(train_config.prior_fit_images, train_config.sample_prior_latents), prior_name)


def fit_prior(
    pipeline, images, max_images: int | None = 20_000, seed: int = 0, latents: LatentSet | None = None
) -> dict[str, float]:
    """Fit ``pipeline.prior`` to the trunk's posteriors of ``images`` (a dataset of uint8 images
    or batches in [0, 1]); deterministic under ``seed``. Returns the prior's fit statistics.
    ``latents``: those posteriors, when already encoded (``encode_dataset``, same subset).
    A fit that fails, or whose result :meth:`Prior.check_state` finds unusable (NaN, a mixture
    weight below zero), is a :class:`PriorFitError`: check it before writing anything with it."""
    prior = pipeline.prior
    if not prior.needs_fit:
        return {}
    name = pipeline.config.prior.type
    n = len(images) if max_images is None else min(len(images), max_images)
    check_fit_memory(prior, n, name)
    if latents is None:
        latents = encode_dataset(pipeline, images, max_images, seed)
    if not (torch.isfinite(latents.mean).all() and torch.isfinite(latents.std).all()):
        raise ValueError("the trunk's posteriors hold non-finite values; the pipeline's weights are broken, no prior was fitted")
    generator = torch.Generator().manual_seed(seed)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            stats = prior.fit(latents, generator)
    except (torch.linalg.LinAlgError, ValueError) as exc:  # a singular covariance, ...
        prior.fit_done = False
        raise PriorFitError(f"fitting the {name} prior failed ({' '.join(str(exc).split())[:300]}); {FIT_ADVICE}") from None
    problem = prior.check_state()
    if problem is not None:
        prior.fit_done = False
        raise PriorFitError(f"fitting the {name} prior gave an unusable prior: {problem}; {FIT_ADVICE}")
    return {"prior_fit_images": float(len(latents.mean)), **stats}


FIT_ADVICE = "try other prior options (a lower lr, a larger reg_covar, fewer components)"
