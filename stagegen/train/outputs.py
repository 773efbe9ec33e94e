"""What a run leaves for people and for sampling: the pipeline file, the fitted prior, and the
sample and reconstruction grids; always from the generator weights (the EMA ones when EMA is on)."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ..data.attributes import Attributes, attributes_of
from ..data.labels import Labels, labels_of
from ..images import grid, save_grid
from ..pipeline.chain import to_unit_range
from ..pipeline.file import FITTED_AFTER_TRAINING, save_pipeline
from ..priors.contract import encode_dataset, fit_prior
from .state import TrainState

GRID_IMAGES = 8


@contextlib.contextmanager
def generator_weights(state: TrainState):
    """The pipeline holding the weights its file holds (EMA weights when EMA is on), in eval mode."""
    pipeline = state.pipeline
    was_training = pipeline.training
    backup = None
    if state.ema is not None:
        backup = {k: v.clone() for k, v in pipeline.state_dict().items()}
        # the EMA copy averages the generator; what was fitted after training stays as it is
        missing, unexpected = pipeline.load_state_dict(state.ema.state_dict(), strict=False)
        if unexpected or any(not k.startswith(FITTED_AFTER_TRAINING) for k in missing):
            raise RuntimeError(f"the EMA weights do not match the pipeline: missing {missing[:3]}, unexpected {unexpected[:3]}")
    pipeline.eval()
    try:
        yield pipeline
    finally:
        if backup is not None:
            pipeline.load_state_dict(backup)
        pipeline.train(was_training)


def save_run_pipeline(state: TrainState, path: Path, data_name: str, data_root: str | None = None) -> Path:
    """The pipeline file of a run; its header records the dataset (and where its files were), so
    `reconstruct`, `eval` and `fit-prior` on the file read the same data unless told otherwise."""
    extra = {"train_steps": state.step, "ema": state.ema is not None, "data": data_name}
    if data_root:
        extra["data_root"] = str(Path(data_root).resolve())
    return save_pipeline(state.pipeline, path, state_dict=state.generator_state(), extra=extra)


def fit_run_prior(state: TrainState, dataset, max_images: int, seed: int, conditional: bool = True) -> dict[str, Any]:
    """Fit the pipeline's prior to the training images' posteriors under the generator weights;
    the fitted state goes into the EMA copy too, so the pipeline file holds it. With
    ``conditional``, where the dataset declares labels, also a prior per label to the same
    posteriors (:mod:`stagegen.priors.per_label`), and where it declares attributes, their latent
    directions (:mod:`stagegen.priors.directions`); a failure of those is recorded (``conditional_error``,
    ``attributes_error``), the unconditional prior is kept."""
    start = time.perf_counter()
    labels = labels_of(dataset) if conditional else None
    attributes = attributes_of(dataset) if conditional else None
    label_priors = directions = None
    record: dict[str, Any] = {}
    with generator_weights(state) as pipeline:
        unfitted = {k: v.detach().clone() for k, v in pipeline.prior.state_dict().items()}
        try:
            latents = encode_dataset(pipeline, dataset, max_images, seed)
            stats = fit_prior(pipeline, dataset, max_images, seed=seed, latents=latents)
        except BaseException:  # a failed or interrupted fit leaves the prior as it was, never half-fitted
            pipeline.prior.load_state_dict(unfitted)
            raise
        fitted = {f"prior.{k}": v.detach().clone() for k, v in pipeline.prior.state_dict().items()}
        seconds = time.perf_counter() - start
        if labels is not None:
            label_priors, fit = _fit_label_priors(pipeline, latents, labels, seed)
            record.update(fit)
        if attributes is not None:
            directions, fit = _fit_directions(pipeline, dataset, attributes, latents)
            record.update(fit)
    state.pipeline.load_state_dict(fitted, strict=False)
    if state.ema is not None:
        state.ema.load_state_dict(fitted)
    # after the weights are back: modules of their own, beside them
    if label_priors is not None:
        state.pipeline.set_conditional(*label_priors)
    if directions is not None:
        state.pipeline.set_attributes(directions)
    return {
        "step": state.step,
        "event": "prior_fit",
        "prior": state.pipeline.config.prior.type,
        **stats,
        "seconds": seconds,
        **record,
    }


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _fit_label_priors(pipeline, latents, labels: Labels, seed: int) -> tuple[tuple | None, dict[str, Any]]:
    """A prior per label to the posteriors the unconditional fit used (so the labels cost no
    second encoding pass): ((the conditional prior, its spec), record) or (None, the error)."""
    from ..priors.per_label import fit_label_priors, label_prior_spec

    start = time.perf_counter()
    try:
        conditional, spec, stats = fit_label_priors(pipeline, latents, labels, label_prior_spec(pipeline), seed, _say)
    except (ValueError, torch.linalg.LinAlgError) as exc:  # PriorFitError included: no labels, the run still stands
        return None, {"conditional_error": str(exc)}
    return (conditional.to(pipeline.device), spec), {**stats, "conditional_seconds": time.perf_counter() - start}


def _fit_directions(pipeline, dataset, attributes: Attributes, latents) -> tuple[Any, dict[str, Any]]:
    """Attribute directions from the same posteriors: (directions, record) or (None, the error)."""
    from ..priors.directions import fit_attribute_directions

    start = time.perf_counter()
    try:
        directions, stats = fit_attribute_directions(pipeline, dataset, attributes, latents=latents)
    except ValueError as exc:
        return None, {"attributes_error": str(exc)}
    note = {"attributes_note": attributes.note} if attributes.note else {}
    return directions.to(pipeline.device), {**stats, **note, "attributes_seconds": time.perf_counter() - start}


def grid_prior(state: TrainState) -> str:
    """Which prior the grids draw from now (see :func:`grid_latents`), for their labels."""
    name = state.pipeline.config.prior.type
    if state.pipeline.prior.fitted:
        return "N(0, I)" if name == "normal" else f"fitted {name} prior"
    if state.sample_prior is not None and state.sample_prior.fits:
        return f"{name} prior fitted to recent posteriors"
    return "N(0, I) (prior not fitted yet)"


def grid_latents(state: TrainState, seed: int) -> torch.Tensor:
    """The same noise at every grid: from the prior once it is fitted; before that, from the
    sample path's prior when the run has one (fitted to recent posteriors), else N(0, I)."""
    generator = torch.Generator().manual_seed(seed)
    prior = state.pipeline.prior
    if prior.fitted:
        return prior.sample(GRID_IMAGES, generator)
    if state.sample_prior is not None and state.sample_prior.fits:
        return state.sample_prior.prior.sample(GRID_IMAGES, generator)
    return torch.randn((GRID_IMAGES, *state.pipeline.trunk.latent_shape), generator=generator)


@torch.no_grad()
def write_grids(
    state: TrainState,
    path: Path,
    seed: int,
    inputs: torch.Tensor,
    prepare: Callable[[torch.Tensor], torch.Tensor],
    recon_path: Path | None = None,
    input_labels: torch.Tensor | None = None,
) -> torch.Tensor:
    """Samples from a fixed latent batch (one row per stage) and, with ``recon_path``, a
    reconstruction grid of ``inputs`` (input row, then each stage). Returns the sample grid.
    A label-conditioned trunk decodes the samples with its classes in turn (0, 1, 2, ...) and
    the inputs with theirs (``input_labels``)."""
    with generator_weights(state) as pipeline:
        latents = grid_latents(state, seed).to(pipeline.device)
        classes = None
        if pipeline.label_conditioned:
            classes = torch.arange(len(latents), device=pipeline.device) % pipeline.trunk.label_count
        samples = [to_unit_range(y).float() for y in pipeline.run_chain(latents, labels=classes).images]
        save_grid(samples, path, labels=pipeline.row_labels(f", z: {grid_prior(state)}"))
        if recon_path is not None:
            x = prepare(inputs)
            known = pipeline.label_indices(input_labels, len(x))
            posterior = pipeline.encode(to_unit_range(x), known)
            latent = pipeline.trunk.reconstruction_latent(posterior)
            stages = [to_unit_range(y).float() for y in pipeline.run_chain(latent, labels=known).images]
            save_grid([to_unit_range(x).float(), *stages], recon_path, labels=["input", *pipeline.row_labels()])
    return grid(samples)
