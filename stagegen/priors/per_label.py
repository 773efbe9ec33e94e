"""Sampling what you ask for from an unconditional model: a prior per label, fitted ex post.

The networks are trained without labels; afterwards each class's training images are encoded
and a prior of a registered type (a Gaussian mixture by default) is fitted to that class's
posteriors alone. Sampling label ``y`` draws z from its prior and decodes it through every
stage, so a conditional sample costs what an unconditional one does, and the unconditional
prior stays in the file beside them. This is ex-post density estimation (Ghosh et al. 2020)
once per class: the trunk's aggregate posterior is a mixture of the classes' posteriors, and
each class occupies its own region of latent space, which one prior per class models directly.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import torch
from torch import nn

from ..data.labels import Labels, resolve_label
from ..text import shown_names
from .contract import FIT_ADVICE, LatentSet, Prior, PriorFitError, check_fit_memory, encode_dataset

__all__ = ["ConditionalPrior", "fit_conditional_prior", "NO_CONDITIONAL_PRIOR"]

#: fewest images of a class its prior is fitted to: fewer say nothing of the class's spread
MIN_IMAGES_PER_LABEL = 2

NO_CONDITIONAL_PRIOR = (
    "this pipeline has no conditional prior, so it cannot sample a label: fit one from labelled "
    "training images with `stagegen fit-prior PIPELINE --conditional -o NEW.safetensors` (its dataset must declare "
    "labels: digits, MNIST, or a folder of class subfolders)"
)


class ConditionalPrior(nn.Module):
    """One prior per label (``priors[i]`` for ``labels[i]``), all of one type and options. Its
    buffers are stored in the pipeline file under ``conditional.priors.<i>.``."""

    def __init__(self, labels: Sequence[str], build_prior: Callable[[], Prior]):
        super().__init__()
        self.labels = tuple(labels)
        self.priors = nn.ModuleList(build_prior() for _ in self.labels)

    def resolve(self, label: int | str) -> int:
        """A label's index, from its name or its index."""
        return resolve_label(self.labels, label)

    @property
    def fitted(self) -> bool:
        return all(p.fitted for p in self.priors)

    def mark_fitted(self) -> None:
        """Said by the file that holds it (a conditional prior is only ever written fitted)."""
        for prior in self.priors:
            prior.fit_done = True

    def check_state(self) -> str | None:
        for name, prior in zip(self.labels, self.priors):
            problem = prior.check_state()
            if problem is not None:
                return f"the prior of label '{name}': {problem.replace('prior.', '', 1)}"
        return None

    def sample(self, n: int, label: int | str, generator: torch.Generator, temperature: float = 1.0) -> torch.Tensor:
        """n latents of the trunk's shape from the prior of ``label``."""
        return self.priors[self.resolve(label)].sample(n, generator, temperature)


def fit_conditional_prior(
    pipeline,
    images,
    labels: Labels,
    max_images: int | None = 20_000,
    seed: int = 0,
    prior=None,
    latents: LatentSet | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, float]:
    """Fit one prior per label to the trunk's posteriors of that label's images, and give the
    pipeline the result (its unconditional prior is left as it is).

    ``images``: the labelled dataset (``labels`` has one entry per image); ``prior``: the type
    and options of each label's prior (a PriorSpec or dict; default: the pipeline's own
    prior's). ``latents``: the images' posteriors when already encoded (by
    :func:`~stagegen.priors.contract.encode_dataset` with the same ``max_images`` and ``seed``), which
    the end of a run shares with the unconditional fit. ``progress``: called with a line now and
    then during a long fit (see :func:`fit_label_priors`). Nothing changes on failure
    (:class:`~stagegen.priors.PriorFitError`)."""
    if len(labels) != len(images):
        raise ValueError(f"{len(labels)} labels for {len(images)} images")
    spec = label_prior_spec(pipeline, prior)
    if latents is None:
        latents = encode_dataset(pipeline, images, max_images, seed)
    conditional, spec, stats = fit_label_priors(pipeline, latents, labels, spec, seed, progress)
    pipeline.set_conditional(conditional.to(pipeline.device), spec)
    return stats


def label_prior_spec(pipeline, prior=None):
    """The validated spec of each label's prior: ``prior`` (a PriorSpec or dict), else the
    pipeline's own prior's type and options; refused for a prior with nothing to fit."""
    from ..config.models import PriorSpec

    spec = PriorSpec.model_validate(prior if prior is not None else pipeline.config.prior.model_dump())
    probe, spec = pipeline.make_prior(spec)
    if not probe.needs_fit:
        raise PriorFitError(
            f"the {spec.type} prior has nothing to fit, so it is the same for every label; choose another type (--prior gmm)"
        )
    return spec


#: seconds between the lines a long per-label fit writes to ``progress``
PROGRESS_EVERY = 10.0


def fit_label_priors(pipeline, latents: LatentSet, labels: Labels, spec, seed: int = 0, progress=None):
    """A :class:`ConditionalPrior` fitted to ``latents`` (rows of the labelled images, with
    their ``index``), its spec and the fit's statistics; the pipeline is left as it is.
    ``progress``, when given, is called with a line every ``PROGRESS_EVERY`` seconds of fitting
    (labels done, time left)."""
    if latents.index is None:
        raise ValueError("the latents do not say which images they encode; make them with encode_dataset")
    if not (torch.isfinite(latents.mean).all() and torch.isfinite(latents.std).all()):
        raise ValueError("the trunk's posteriors hold non-finite values; the pipeline's weights are broken, no prior was fitted")
    row_labels = labels.index[latents.index]
    counts = torch.bincount(row_labels, minlength=len(labels.names))
    scarce = [f"'{name}' ({int(c)})" for name, c in zip(labels.names, counts) if c < MIN_IMAGES_PER_LABEL]
    if scarce:
        raise PriorFitError(
            f"too few images of {len(scarce):,} label(s), {shown_names(scarce, 10)}, among the {len(row_labels):,} encoded to fit a prior per label "
            f"(at least {MIN_IMAGES_PER_LABEL} each); fit on a larger split or more images (--max-images)"
        )
    check_fit_memory(pipeline.make_prior(spec)[0], int(counts.max()), spec.type)
    conditional = ConditionalPrior(labels.names, lambda: pipeline.make_prior(spec)[0])
    stats: dict[str, float] = {}
    start = last_said = time.perf_counter()
    for i, (name, label_prior) in enumerate(zip(labels.names, conditional.priors)):
        if progress is not None and i and time.perf_counter() - last_said >= PROGRESS_EVERY:
            last_said, elapsed = time.perf_counter(), time.perf_counter() - start
            left = elapsed / i * (len(labels.names) - i)
            progress(f"fitted the priors of {i:,} of {len(labels.names):,} labels in {elapsed:.0f} s; about {left:.0f} s to go")
        rows = row_labels == i
        generator = torch.Generator().manual_seed(seed + i)
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed + i)
                fit = label_prior.fit(LatentSet(latents.mean[rows], latents.std[rows]), generator)
        except (torch.linalg.LinAlgError, ValueError) as exc:
            raise PriorFitError(
                f"fitting the {spec.type} prior of label '{name}' failed ({' '.join(str(exc).split())[:300]}); {FIT_ADVICE}"
            ) from None
        for key, value in fit.items():  # the mean over labels of what each fit reports (named so)
            stats[f"conditional_mean_{key}"] = stats.get(f"conditional_mean_{key}", 0.0) + value / len(labels.names)
    problem = conditional.check_state()
    if problem is not None:
        raise PriorFitError(f"fitting a {spec.type} prior per label gave an unusable prior: {problem}; {FIT_ADVICE}")
    return (
        conditional,
        spec,
        {
            "conditional_labels": float(len(labels.names)),
            "conditional_fit_images": float(len(row_labels)),
            "conditional_fewest_images": float(counts.min()),
            **stats,
        },
    )
