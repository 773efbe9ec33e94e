"""The events of a run: their order, callbacks from Python and from a plugin hook, and a
callback that ends a run early (as an early-stopping plugin would)."""

import json
import types

import torch

import stagegen
from stagegen.train import Callback, CallbackType, Trainer, resume, train
from stagegen.train.jobs import default_callbacks

from ..conftest import tiny_run_config


class Recorder(Callback):
    def __init__(self):
        self.events = []

    def __getattribute__(self, name):
        if name.startswith("on_"):
            return lambda trainer, *args: object.__getattribute__(self, "events").append((name[3:], trainer.step))
        return object.__getattribute__(self, name)


def test_events_come_in_the_order_of_a_run(tmp_path):
    recorder = Recorder()
    train(tiny_run_config(steps=4, sample_every=2, checkpoint_every=2, log_every=2), tmp_path / "run", callbacks=[recorder])
    events = recorder.events
    assert events[0] == ("run_start", 0) and events[-1] == ("teardown", 4)
    names = [name for name, _ in events]
    assert names.count("step_end") == 4
    assert ("grid", 2) in events and ("checkpoint", 2) in events  # on schedule, before the last step
    # at the end: the last checkpoint, (no prior fit: this chain samples N(0, I)), the pipeline file,
    # the final grids (samples.png, then the last of the samples/ series)
    end = names.index("train_end")
    assert names[end:] == ["train_end", "checkpoint", "run_end", "grid", "grid", "teardown"]
    assert ("checkpoint", 4) in events


def test_a_plugin_callback_can_end_a_run_and_the_run_finishes_like_a_budgeted_one(tmp_path, plugin_manager):
    class StopAtTwo(Callback):
        def on_step_end(self, trainer, outcome):
            if trainer.step == 2:
                trainer.request_stop("enough")

    module = types.ModuleType("early_stop")

    def register_callbacks(register):
        register(CallbackType(name="stop-at-two", build=lambda config: StopAtTwo(), description="test"))

    module.register_callbacks = stagegen.hookimpl(register_callbacks)
    plugin_manager.register(module)
    trainer = Trainer(tiny_run_config(steps=10), tmp_path / "run")
    assert any(isinstance(c, StopAtTwo) for c in trainer.callbacks)
    result = trainer.fit()
    assert result.steps == 2 and result.pipeline_path.is_file()
    lines = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert lines[-1]["step"] == 2


def test_a_plugin_callback_may_stay_out_of_a_run(tmp_path, plugin_manager):
    module = types.ModuleType("never")

    def register_callbacks(register):
        register(CallbackType(name="never", build=lambda config: None, description="test"))

    module.register_callbacks = stagegen.hookimpl(register_callbacks)
    plugin_manager.register(module)
    callbacks = Trainer(tiny_run_config(steps=1), tmp_path / "run").callbacks
    assert [type(c) for c in callbacks] == [type(c) for c in default_callbacks()]  # the defaults only


def test_step_outcomes_are_structured_by_stage(tmp_path):
    trainer = Trainer(tiny_run_config(("vae", "adversarial"), steps=1), tmp_path / "run")
    outcome = trainer.train_step(trainer.batches())
    assert set(outcome.losses) == {(0, "l2"), (0, "kl"), (1, "l1"), (1, "adversarial")}
    assert {(1, "d_loss"), (1, "d_real"), (1, "d_fake")} == set(outcome.auxiliary)
    assert "stage1/aux/d_loss" in outcome.terms and "stage0/l2" in outcome.terms


def test_a_time_budget_that_reaches_every_stage_says_nothing_of_them(tmp_path, capsys):
    config = tiny_run_config(steps=30, time_budget=600.0, report=False)
    config.pipeline.stages[1].train_from = 5
    train(type(config).model_validate(config.model_dump()), tmp_path / "run")
    err = capsys.readouterr().err
    assert "will not train" not in err and "never trained" not in err


class StepCounter(Callback):
    """A plugin callback with state of its own: the steps it has seen, over every resume."""

    def __init__(self):
        self.seen = 0

    def on_step_end(self, trainer, outcome):
        self.seen += 1

    def state_dict(self):
        return {"seen": self.seen}

    def load_state_dict(self, state):
        self.seen = state["seen"]


def _counting_plugin(built: list):
    module = types.ModuleType("step_counter")

    def register_callbacks(register):
        def build(config):
            built.append(StepCounter())
            return built[-1]

        register(CallbackType(name="step-counter", build=build, description="counts steps"))

    module.register_callbacks = stagegen.hookimpl(register_callbacks)
    return module


def test_a_plugin_callbacks_state_survives_resume(tmp_path, plugin_manager):
    built: list[StepCounter] = []
    plugin_manager.register(_counting_plugin(built))
    train(tiny_run_config(steps=3, checkpoint_every=1), tmp_path / "run")
    assert built[-1].seen == 3
    resume(tmp_path / "run", steps=5)
    assert len(built) == 2 and built[-1].seen == 5  # a fresh callback, given back its 3, then 2 more steps


def test_a_callback_added_after_the_checkpoint_starts_fresh_and_duplicates_are_kept_apart(tmp_path, plugin_manager):
    train(tiny_run_config(steps=2, checkpoint_every=1), tmp_path / "run")
    built: list[StepCounter] = []
    plugin_manager.register(_counting_plugin(built))
    twin = StepCounter()
    twin.seen = 100
    resume(tmp_path / "run", steps=3, callbacks=[twin])
    assert built[-1].seen == 1 and twin.seen == 101  # nothing saved for either: each keeps its own start
    checkpoint = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)
    assert checkpoint["callbacks"] == {"StepCounter": {"seen": 1}, "StepCounter#2": {"seen": 101}}
