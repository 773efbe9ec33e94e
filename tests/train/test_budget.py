"""The time budget is the whole run's: it counts from the run's start, leaves room for the work
after training (timed on this machine), and moves a refiner that would join too late so that
every stage trains."""

import json
import time

import torch

from stagegen import Pipeline
from stagegen.train import Trainer, resume, train
from stagegen.train.budget import estimate_end_phase, scaled_train_from

from ..conftest import tiny_run_config


def test_a_moved_train_from_keeps_its_share_of_the_run():
    assert scaled_train_from(2000, 0, 2800, 280) == 200
    assert scaled_train_from(2000, 1000, 3000, 1200) == 1100  # a resumed run: the share of what remains
    assert scaled_train_from(2799, 0, 2800, 3) == 2  # joins before the last step reached
    # reached within the budget, already joined, or nothing more trains: as configured
    assert scaled_train_from(2000, 0, 2800, 2500) == 2000
    assert scaled_train_from(5, 10, 2800, 20) == 5
    assert scaled_train_from(2000, 10, 2800, 11) == 2000


def test_the_end_phase_is_timed_for_the_prior_the_run_fits(tmp_path):
    fitted = tiny_run_config(steps=2)
    fitted.pipeline.prior = fitted.pipeline.prior.model_validate({"type": "gmm", "options": {"components": 3}})
    end = estimate_end_phase(Trainer(fitted, tmp_path / "a"))
    assert end.encode > 0 and end.fit > 0
    assert end.label_fits == end.fit  # the digits declare labels: a prior per label follows
    assert end.total > end.outputs
    plain = estimate_end_phase(Trainer(tiny_run_config(steps=2), tmp_path / "b"))  # N(0, I): nothing to fit
    assert plain.encode == plain.fit == plain.label_fits == 0 and plain.total == plain.outputs


def test_the_budget_counts_from_the_start_it_is_given(tmp_path):
    config = tiny_run_config(steps=1000, time_budget=600.0, report=False, log_every=1000)
    result = train(config, tmp_path / "run", started=time.monotonic() - 600)  # the whole budget spent on set-up
    assert result.stopped_by_budget and result.steps == 1
    assert result.pipeline_path.is_file()  # and still a finished run


def _stage_weights(pipe, index):
    return {k: v.clone() for k, v in pipe.stages[index].state_dict().items()}


def test_a_refiner_the_budget_would_not_reach_joins_earlier_and_trains(tmp_path, capsys):
    config = tiny_run_config(steps=100_000, time_budget=10.0, report=False, log_every=1000)
    config.pipeline.stages[1].train_from = 50_000
    run = tmp_path / "run"
    trainer = Trainer(config, run)
    initial = _stage_weights(trainer.pipeline, 1)
    result = trainer.fit()
    assert result.stopped_by_budget and result.steps < 50_000
    moved = json.loads((run / "config.json").read_text())["pipeline"]["stages"][1]["train_from"]
    assert 10 < moved < result.steps
    err = capsys.readouterr().err
    assert f"stage 1 (resnet-l1) joins at step {moved:,} instead of 50,000" in err
    assert "never trained" not in err and "will not train" not in err
    trained = _stage_weights(Pipeline.load(result.pipeline_path), 1)
    assert any(not torch.equal(trained[k], initial[k]) for k in initial if initial[k].is_floating_point())
    assert Pipeline.load(result.pipeline_path).config.stages[1].train_from == moved
    plan = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if "budget_plan" in line]
    assert len(plan) == 1 and plan[0]["step"] == 10 and plan[0]["reach"] > 10
    # the checkpoint and config.json agree on the schedule: the run continues
    again = resume(run, steps=result.steps + 2, time_budget=600)
    assert again.steps == result.steps + 2


def test_keep_leaves_the_schedule_and_names_the_stage_that_will_not_train(tmp_path, capsys):
    config = tiny_run_config(steps=100_000, time_budget=6.0, report=False, log_every=1000, budget_schedule="keep")
    config.pipeline.stages[1].train_from = 50_000
    result = train(type(config).model_validate(config.model_dump()), tmp_path / "run")
    assert result.stopped_by_budget and result.steps < 50_000
    err = capsys.readouterr().err
    assert "stage 1 (resnet-l1, joins at step 50,000) will not train within it" in err  # said after 10 steps
    assert (
        f"stage 1 (resnet-l1, joins at step 50,000) never trained: the time budget ended the run at step {result.steps:,}" in err
    )
    assert json.loads((tmp_path / "run" / "config.json").read_text())["pipeline"]["stages"][1]["train_from"] == 50_000
