"""One step on a TrainState, without the trainer: what it updates, what it returns, and what it
refuses to apply."""

import torch

from stagegen.config import TrainConfig
from stagegen.pipeline import Pipeline
from stagegen.train import TrainState, train_step
from stagegen.train.auxiliary import build_auxiliaries

from ..conftest import tiny_pipeline_config


def _state(stages=("vae", "resnet-l1"), **train):
    torch.manual_seed(0)
    pipeline = Pipeline(tiny_pipeline_config(stages)).train()
    config = TrainConfig(**train)
    return TrainState.create(pipeline, build_auxiliaries(pipeline), config), config


def _batches(seed=0, n=8):
    g = torch.Generator().manual_seed(seed)
    while True:
        yield torch.rand(n, 1, 16, 16, generator=g) * 2 - 1


def test_a_step_updates_the_generator_and_returns_its_terms_by_stage():
    state, config = _state()
    before = {k: v.clone() for k, v in state.pipeline.state_dict().items()}
    outcome = train_step(state, _batches(), config)
    assert state.step == 1 and not outcome.nonfinite
    assert set(outcome.losses) == {(0, "l2"), (0, "kl"), (1, "l1")}
    assert all(v.dim() == 0 and torch.isfinite(v) for v in outcome.losses.values())
    assert any(not torch.equal(v, before[k]) for k, v in state.pipeline.state_dict().items())


def test_a_non_finite_term_skips_the_step_and_is_named():
    state, config = _state()
    before = {k: v.detach().clone() for k, v in state.pipeline.named_parameters()}
    real = state.pipeline.objective.losses[1][0].loss.forward
    state.pipeline.objective.losses[1][0].loss.forward = lambda *a: real(*a) * float("nan")
    outcome = train_step(state, _batches(), config)
    assert outcome.nonfinite == ["stage1/l1"] and state.step == 0
    # no parameter moved (normalisation statistics may: the forward pass itself was finite)
    assert all(torch.equal(v, before[k]) for k, v in state.pipeline.named_parameters())


def test_accumulating_two_half_batches_is_one_full_batch():
    full, config = _state(batch_size=8)
    half, half_config = _state(batch_size=4, accumulate=2)
    torch.manual_seed(1)
    a = train_step(full, _batches(n=8), config)
    torch.manual_seed(1)
    halves = (b for whole in _batches(n=8) for b in (whole[:4], whole[4:]))
    b = train_step(half, halves, half_config)
    # the reparameterisation noise is drawn per micro-batch, so compare what does not depend on it
    assert torch.allclose(a.losses[1, "l1"], b.losses[1, "l1"], atol=0.05)
    assert half.step == full.step == 1


def test_the_sample_path_runs_only_when_a_loss_asks_for_it():
    state, config = _state()
    assert state.sample_prior is None and not state.pipeline.objective.uses_samples  # l1 alone reads no samples
    calls = []
    real = state.pipeline.sample_path
    state.pipeline.sample_path = lambda z, stages=None, labels=None: calls.append(len(z)) or real(z, stages, labels)
    for _ in range(2):
        train_step(state, _batches(), config)
    assert calls == []

    config_gan = tiny_pipeline_config(("vae", "resnet-l1"))
    config_gan.stages[1].losses = [
        {"type": "l1"},
        {"type": "adversarial", "weight": 0.1, "options": {"disc_width": 8, "disc_layers": 2}},
    ]
    pipeline = Pipeline(type(config_gan).model_validate(config_gan.model_dump())).train()
    train = TrainConfig(sample_path_batch=5)
    state = TrainState.create(pipeline, build_auxiliaries(pipeline), train)
    assert state.sample_prior is not None and state.sample_prior.ready  # N(0, I): nothing to fit
    real = pipeline.sample_path
    pipeline.sample_path = lambda z, stages=None, labels=None: calls.append(len(z)) or real(z, stages, labels)
    outcome = train_step(state, _batches(), train)
    assert calls == [5] and (1, "aux") not in outcome.auxiliary and (1, "d_loss") in outcome.auxiliary
