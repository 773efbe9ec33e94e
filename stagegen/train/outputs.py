"""What a run leaves for people and for sampling: the pipeline file, the fitted prior, and the
sample and reconstruction grids; always from the generator weights (the EMA ones when EMA is on)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ..images import grid, save_grid
from ..pipeline import to_unit_range
from ..pipeline_file import save_pipeline
from ..prior import fit_prior
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
        pipeline.load_state_dict(state.ema.state_dict())
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


def fit_run_prior(state: TrainState, dataset, max_images: int, seed: int) -> dict[str, Any]:
    """Fit the pipeline's prior to the training images' posteriors under the generator weights;
    the fitted state goes into the EMA copy too, so the pipeline file holds it."""
    start = time.perf_counter()
    with generator_weights(state) as pipeline:
        unfitted = {k: v.detach().clone() for k, v in pipeline.prior.state_dict().items()}
        try:
            stats = fit_prior(pipeline, dataset, max_images, seed=seed)
        except BaseException:  # a failed or interrupted fit leaves the prior as it was, never half-fitted
            pipeline.prior.load_state_dict(unfitted)
            raise
        fitted = {f"prior.{k}": v.detach().clone() for k, v in pipeline.prior.state_dict().items()}
    state.pipeline.load_state_dict(fitted, strict=False)
    if state.ema is not None:
        state.ema.load_state_dict(fitted)
    return {
        "step": state.step,
        "event": "prior_fit",
        "prior": state.pipeline.config.prior.type,
        **stats,
        "seconds": time.perf_counter() - start,
    }


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
) -> torch.Tensor:
    """Samples from a fixed latent batch (one row per stage) and, with ``recon_path``, a
    reconstruction grid of ``inputs`` (input row, then each stage). Returns the sample grid."""
    with generator_weights(state) as pipeline:
        samples = [to_unit_range(y).float() for y in pipeline.run_chain(grid_latents(state, seed).to(pipeline.device)).images]
        save_grid(samples, path, labels=pipeline.row_labels(f", z: {grid_prior(state)}"))
        if recon_path is not None:
            x = prepare(inputs)
            posterior = pipeline.encode(to_unit_range(x))
            latent = pipeline.trunk.reconstruction_latent(posterior)
            stages = [to_unit_range(y).float() for y in pipeline.run_chain(latent).images]
            save_grid([to_unit_range(x).float(), *stages], recon_path, labels=["input", *pipeline.row_labels()])
    return grid(samples)
