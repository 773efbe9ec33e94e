"""A checkpoint that resume accepts is one it can train from: every field a tampered file could
carry into a run (the sample path's prior, optimiser moments, extra modules' optimisers) is
checked before anything is loaded, and refused in one line naming the file and the field."""

import pytest
import torch

from stagegen.train import Trainer, resume
from stagegen.train.checkpoint import CHECKPOINT_NAME

from .test_host_reads import _sharp_chain_config


@pytest.fixture(scope="module")
def stopped_run(tmp_path_factory):
    """A run of the sharp chain (gmm sample-path prior, adversarial loss with its own optimiser)
    stopped at step 10, after its sample path's prior was fitted; its checkpoint's bytes."""
    run = tmp_path_factory.mktemp("tampered") / "run"
    trainer = Trainer(_sharp_chain_config(steps=12, checkpoint_every=0), run)
    trainer.fit(stop_after=10)
    assert trainer.state.sample_prior.fits == 1 and trainer.state.aux_optimizers
    path = run / "checkpoints" / CHECKPOINT_NAME
    return run, path, path.read_bytes()


def _tampered(stopped_run, tmp_path, change):
    """A copy of the stopped run whose checkpoint went through ``change(state)``."""
    import shutil

    run, path, original = stopped_run
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    state = torch.load(copy / "checkpoints" / CHECKPOINT_NAME, weights_only=True)
    change(state)
    torch.save(state, copy / "checkpoints" / CHECKPOINT_NAME)
    return copy


def _first_moments(optimizer_state):
    return next(iter(optimizer_state["state"].values()))


def _aux(state):
    return next(iter(state["aux_optimizers"].values()))


def test_the_untampered_checkpoint_resumes(stopped_run, tmp_path):
    run = _tampered(stopped_run, tmp_path, lambda state: None)
    assert resume(run, steps=12).steps == 12


TAMPERED = {
    "sample prior NaN": (
        lambda s: s["sample_prior"]["prior"]["means"].fill_(float("nan")),
        r"the sample path's prior.means holds \d+ NaN or infinite value",
    ),
    "sample prior inf latents": (
        lambda s: s["sample_prior"]["means"].fill_(float("inf")),
        r"sample_prior.means holds NaN or infinite values",
    ),
    "stds of another shape": (
        lambda s: s["sample_prior"].__setitem__("stds", s["sample_prior"]["stds"][:1]),
        r"sample_prior.stds is \(1, \d+\), where this run keeps \(64, \d+\) posteriors",
    ),
    "negative stds": (lambda s: s["sample_prior"]["stds"].fill_(-1.0), r"sample_prior.stds holds a negative"),
    "seen negative": (lambda s: s["sample_prior"].__setitem__("seen", -(10**18)), r"sample_prior.seen is -1000000000000000000"),
    "seen NaN": (lambda s: s["sample_prior"].__setitem__("seen", float("nan")), r"sample_prior.seen is nan"),
    "fits negative": (lambda s: s["sample_prior"].__setitem__("fits", -1), r"sample_prior.fits is -1"),
    "no sample prior": (lambda s: s.__setitem__("sample_prior", None), r"sample_prior is NoneType"),
    "negative mixture weights": (
        lambda s: s["sample_prior"]["prior"]["weights"].fill_(-0.5),
        r"the sample path's prior.weights .*negative",
    ),
    "negative second moment": (
        lambda s: _first_moments(s["optimizers"][0])["exp_avg_sq"].fill_(-1.0),
        r"optimiser 0's exp_avg_sq of parameter \d+ holds negative values",
    ),
    "generator moment of another shape": (
        lambda s: _first_moments(s["optimizers"][0]).__setitem__("exp_avg", torch.zeros(3)),
        r"optimiser 0's exp_avg of parameter \d+ is \(3,\)",
    ),
    "discriminator moment of another shape": (
        lambda s: _first_moments(_aux(s)).__setitem__("exp_avg", torch.zeros(2, 2)),
        r"the optimiser of 1/adversarial's exp_avg of parameter \d+ is \(2, 2\)",
    ),
    "discriminator lr NaN": (
        lambda s: _aux(s)["param_groups"][0].__setitem__("lr", float("nan")),
        r"the optimiser of 1/adversarial has learning rate nan",
    ),
    "discriminator lr 1e308": (
        lambda s: _aux(s)["param_groups"][0].__setitem__("lr", 1e308),
        r"the optimiser of 1/adversarial has learning rate 1e\+308",
    ),
}


@pytest.mark.parametrize("case", list(TAMPERED))
def test_a_tampered_field_is_refused_naming_the_file(stopped_run, tmp_path, case):
    change, message = TAMPERED[case]
    run = _tampered(stopped_run, tmp_path, change)
    before = (run / "metrics.jsonl").read_bytes()
    with pytest.raises(ValueError, match=message) as refused:
        resume(run, steps=12)
    assert CHECKPOINT_NAME in str(refused.value)
    assert (run / "metrics.jsonl").read_bytes() == before  # refused before a step ran
