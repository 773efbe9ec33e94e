"""The sample path's prior: fitted to the latest posteriors, refitted on schedule, resumable."""

import torch

from stagegen.config import TrainConfig
from stagegen.pipeline import Pipeline
from stagegen.train.sample_prior import SamplePrior

from ..conftest import tiny_pipeline_config, tiny_run_config


def _sampler(prior="gmm", **train):
    config = tiny_pipeline_config(("vae", "resnet-l1"))
    config.prior.type = prior
    config.prior.options = {"components": 2} if prior == "gmm" else {}
    return SamplePrior(Pipeline(config), TrainConfig(sample_prior_latents=64, sample_prior_refit_every=5, **train))


def test_a_prior_that_needs_no_fit_is_ready_at_once():
    sampler = _sampler("normal")
    assert sampler.ready and sampler.maybe_refit(0) is None
    assert sampler.sample(3).shape == (3, 8)


def test_fitted_first_when_the_buffer_is_full_then_every_refit_every_steps():
    sampler = _sampler()
    assert not sampler.ready
    sampler.observe(torch.randn(40, 8), torch.ones(40, 8))
    assert sampler.maybe_refit(3) is None  # 40 of 64 latents
    sampler.observe(torch.randn(40, 8) + 20, torch.ones(40, 8))
    stats = sampler.maybe_refit(3)  # full: the first fit does not wait for the schedule
    assert stats["sample_prior_latents"] == 64 and sampler.ready
    assert sampler.maybe_refit(4) is None and sampler.maybe_refit(5) is not None
    # the buffer holds the newest latents: 16 old ones were replaced
    assert int((sampler.means > 10).all(1).sum()) == 40
    assert sampler.sample(5).shape == (5, 8)


def test_state_round_trips_so_a_resumed_run_draws_the_same_latents():
    a = _sampler()
    a.observe(torch.randn(70, 8), torch.ones(70, 8))
    a.maybe_refit(5)
    state = {k: (v.clone() if torch.is_tensor(v) else v) for k, v in a.state_dict().items()}
    b = _sampler()
    b.load_state_dict(state)
    assert torch.equal(a.sample(4), b.sample(4))
    assert b.seen == 70 and b.fits == 1


def test_training_grids_draw_from_a_prior_fitted_to_recent_posteriors(tmp_path):
    """A chain without a sample path drew its training grids from N(0, I) until the end (stroke
    fragments on MNIST at step 1,000); the grid's prior is now refitted when a grid is drawn."""
    from stagegen.train import Trainer
    from stagegen.train.outputs import grid_latents, grid_prior

    config = tiny_run_config(steps=100, sample_every=40)
    raw = config.model_dump()
    raw["pipeline"]["prior"] = {"type": "gmm", "options": {"components": 2, "covariance": "diag"}}
    trainer = Trainer(type(config).model_validate(raw), tmp_path / "run")
    sampler = trainer.state.sample_prior
    assert sampler is not None and not sampler.for_losses  # kept for the grids only: the losses never see it
    trainer.fit(stop_after=41)
    assert sampler.fits == 1 and (tmp_path / "run" / "samples" / "step_0000040.png").is_file()
    assert grid_prior(trainer.state) == "gmm prior fitted to recent posteriors"
    expected = sampler.prior.sample(8, torch.Generator().manual_seed(0))
    assert torch.equal(grid_latents(trainer.state, 0), expected)


def test_a_checkpoint_from_another_kind_of_device_gives_a_seeded_generator():
    # a CPU run resumed on a GPU (or back): the generator states of the two kinds do not fit each other
    a = _sampler()
    a.observe(torch.randn(64, 8), torch.ones(64, 8))
    a.maybe_refit(0)
    state = {**a.state_dict(), "generator_device": "cuda", "generator": torch.zeros(16, dtype=torch.uint8)}
    b, c = _sampler(), _sampler()
    b.load_state_dict(state)
    c.load_state_dict(state)
    assert b.ready and torch.equal(b.sample(3), c.sample(3))  # reseeded from the run's seed, repeatably
