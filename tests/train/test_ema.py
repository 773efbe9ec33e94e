"""The EMA of the generator's weights: a warm-up that follows the weights early in a run, and a
late-joining stage's average that starts when it joins."""

import pytest
import torch
from torch import nn

from stagegen.train import Trainer
from stagegen.train.ema import EMA, warmup_decay

from ..conftest import tiny_run_config


def test_the_decay_grows_from_a_tenth_to_the_configured_one():
    assert warmup_decay(0.999, 0) == pytest.approx(0.1)
    assert warmup_decay(0.999, 90) == pytest.approx(91 / 100)
    assert warmup_decay(0.999, 10**6) == 0.999
    assert warmup_decay(0.5, 100) == 0.5  # a low decay is reached at once


def test_the_first_update_mostly_takes_the_new_weights():
    module = nn.Linear(2, 2)
    ema = EMA(module, 0.999)
    start = module.weight.detach().clone()
    with torch.no_grad():
        module.weight.add_(1.0)
    ema.update(module, step=0)
    assert torch.allclose(ema.state_dict()["weight"], 0.1 * start + 0.9 * module.weight)


def test_a_stage_that_joins_late_starts_its_average_when_it_joins():
    chain = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2))
    ema = EMA(chain, 0.999, starts={"1.": 5})
    initial = {k: v.clone() for k, v in ema.state_dict().items()}
    with torch.no_grad():
        for p in chain.parameters():
            p.add_(1.0)
    ema.update(chain, step=4)
    shadow = ema.state_dict()
    assert torch.equal(shadow["1.weight"], initial["1.weight"])  # not joined yet: left alone
    assert torch.allclose(shadow["0.weight"], initial["0.weight"] + (1 - warmup_decay(0.999, 4)))  # from step 0
    ema.update(chain, step=5)  # its first update: the warm-up's first decay, 0.1
    assert torch.allclose(shadow["1.weight"], 0.1 * initial["1.weight"] + 0.9 * chain[1].weight)


def _distance(a, b):
    return sum(float((a[k].float() - b[k].float()).norm()) for k in a if a[k].is_floating_point())


def test_a_short_run_with_a_slow_ema_ends_near_its_trained_weights(tmp_path):
    trainer = Trainer(tiny_run_config(steps=40, ema_decay=0.999), tmp_path / "run")
    initial = {k: v.clone() for k, v in trainer.pipeline.state_dict().items()}
    trainer.fit()
    trained, averaged = trainer.pipeline.state_dict(), trainer.ema.state_dict()
    # without the warm-up, 0.999^40 = 96% of every averaged weight would still be its initial value
    assert _distance(averaged, trained) < 0.25 * _distance(initial, trained)
