"""Resuming, locking and stopping told truthfully: flags are applied or refused, never dropped;
metrics hold each step once; one process per run directory; a full disk or a broken checkpoint
is one line, and the previous checkpoint survives."""

import json
import os
import signal
import subprocess
import sys

import pytest
import torch
from click.testing import CliRunner

from stagegen.cli import cli
from stagegen.train import Trainer, TrainingStopped, resume, train
from stagegen.train.checkpoint import load_checkpoint
from stagegen.train.lock import RunLocked, run_lock

from ..conftest import tiny_run_config
from ..hostile import fill, run_bounded
from .test_interruption import TINY, _start, _wait_for_lines
from .test_trainer import _register_nan_plugin


def _stopped_run(path, at=3, steps=8, **train_fields):
    Trainer(tiny_run_config(steps=steps, **train_fields), path).fit(stop_after=at)
    return path


def _steps(path):
    return [json.loads(line)["step"] for line in (path / "metrics.jsonl").read_text().splitlines() if "loss" in json.loads(line)]


# ---------------------------------------------------------------------------- resume flags


def test_resume_refuses_settings_that_would_change_the_run(tmp_path):
    run = _stopped_run(tmp_path / "r")
    for field in ("batch_size", "lr", "seed"):
        with pytest.raises(ValueError, match=f"cannot change {field} when resuming"):
            resume(run, **{field: 1})


def test_resume_below_the_current_step_says_so_and_leaves_config_alone(tmp_path):
    run = _stopped_run(tmp_path / "r", at=4)
    before = (run / "config.json").read_bytes()
    with pytest.raises(ValueError, match="already past step 2 .*at step 4"):
        resume(run, steps=2)
    assert (run / "config.json").read_bytes() == before
    assert resume(run, steps=6).steps == 6  # a larger target continues
    with pytest.raises(ValueError, match="already at step 6"):
        resume(run, steps=6)


def test_resume_applies_steps_and_time_budget(tmp_path):
    run = _stopped_run(tmp_path / "r", at=2)
    result = resume(run, steps=5, time_budget=3600)
    assert result.steps == 5
    saved = json.loads((run / "config.json").read_text())["train"]
    assert saved["steps"] == 5 and saved["time_budget"] == 3600


# ---------------------------------------------------------------------------- metrics after a kill


def test_metrics_lines_past_the_checkpoint_are_dropped_on_resume(tmp_path):
    run = _stopped_run(tmp_path / "r", at=3)
    with open(run / "metrics.jsonl", "a") as f:  # what a run killed after its checkpoint had logged
        f.write(json.dumps({"step": 4, "loss": 1.0}) + "\n" + json.dumps({"step": 5, "loss": 1.0}) + "\n" + '{"step": 6, "lo')
    resume(run, steps=6)
    assert _steps(run) == [1, 2, 3, 4, 5, 6]


@pytest.mark.slow
def test_sigkill_then_resume_keeps_each_step_once(tmp_path):
    out = tmp_path / "run"
    proc = _start(out, 100_000, "-O", "train.checkpoint_every=4")
    _wait_for_lines(out / "metrics.jsonl", 10, proc)
    proc.kill()
    proc.wait(timeout=60)
    checkpoint = torch.load(out / "checkpoints" / "last.pt", weights_only=True)["step"]
    logged = max(_steps(out))
    result = subprocess.run(
        [sys.executable, "-m", "stagegen", "train", "--resume", str(out), "--steps", str(logged + 3), "--no-progress"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    steps = _steps(out)
    assert steps == sorted(set(steps)), f"duplicate steps after resuming from {checkpoint} (logged to {logged}): {steps}"
    assert steps[-1] == logged + 3


# ---------------------------------------------------------------------------- one process per run directory


def test_second_training_in_the_same_directory_is_refused_with_the_holder(tmp_path):
    run = tmp_path / "r"
    with run_lock(run):
        with pytest.raises(RunLocked, match=f"in use by another stagegen command \\(pid {os.getpid()}"):
            train(tiny_run_config(steps=1), run)
        result = CliRunner().invoke(cli, ["train", "--steps", "1", "--out", str(run), *TINY])
        assert result.exit_code == 1 and f"pid {os.getpid()}" in result.stderr
    assert train(tiny_run_config(steps=1), run).steps == 1  # released: the next run goes ahead


def test_lock_of_a_killed_process_is_released(tmp_path):
    run = tmp_path / "r"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from stagegen.train.lock import run_lock\n"
            "with run_lock(sys.argv[1]):\n    print('held', flush=True); time.sleep(600)",
            str(run),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(RunLocked, match=f"pid {holder.pid}"):
        with run_lock(run):
            pass
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=30)
    with run_lock(run):  # the operating system released it with the process
        pass


# ---------------------------------------------------------------------------- stopping on non-finite values


def test_nonfinite_stop_without_a_checkpoint_says_there_is_none(tmp_path):
    _register_nan_plugin()
    with pytest.raises(TrainingStopped, match="No checkpoint was written before it stopped"):
        train(tiny_run_config(("vae", "nan-refiner"), steps=20, max_nonfinite=2, checkpoint_every=0), tmp_path / "r")


def test_nonfinite_stop_with_a_good_checkpoint_says_it_is_intact(tmp_path):
    _register_nan_plugin()
    config = tiny_run_config(("vae", "nan-refiner"), steps=50, max_nonfinite=3, checkpoint_every=2)
    config.pipeline.stages[1].options = {"bad_from": 2}
    with pytest.raises(TrainingStopped, match=r"checkpoint .* step 2\) is intact and finite"):
        train(config, tmp_path / "r")


def test_a_poisoned_checkpoint_is_refused_at_resume_and_never_called_intact(tmp_path):
    from stagegen.train.checkpoint import checkpoint_note

    run = _stopped_run(tmp_path / "r", at=2, max_nonfinite=2)
    path = run / "checkpoints" / "last.pt"
    state = torch.load(path, weights_only=True)
    for value in state["pipeline"].values():
        if value.is_floating_point():
            value.fill_(float("nan"))
    torch.save(state, path)
    with pytest.raises(ValueError, match="holds non-finite values in pipeline"):
        resume(run)
    assert "already holds non-finite values (pipeline" in checkpoint_note(path.parent)


# ---------------------------------------------------------------------------- broken checkpoints and configs


@pytest.mark.parametrize("damage", ["missing pipeline weights", "wrong shape", "no step"])
def test_damaged_checkpoint_is_one_message(tmp_path, damage):
    run = _stopped_run(tmp_path / "r", at=2)
    path = run / "checkpoints" / "last.pt"
    state = torch.load(path, weights_only=True)
    if damage == "missing pipeline weights":
        state["pipeline"].pop(next(iter(state["pipeline"])))
    elif damage == "wrong shape":
        key = next(k for k, v in state["pipeline"].items() if v.dim() == 4)
        state["pipeline"][key] = torch.zeros(1, 1, 1, 1)
    else:
        state.pop("step")
    torch.save(state, path)
    with pytest.raises(ValueError, match="does not fit this run"):
        resume(run, steps=4)
    result = CliRunner().invoke(cli, ["train", "--resume", str(run), "--steps", "4"])
    assert result.exit_code == 1 and "does not fit this run" in result.stderr and "Traceback" not in result.output


def test_full_disk_during_checkpointing_keeps_the_previous_checkpoint(tmp_path, small_filesystem):
    run = small_filesystem(tmp_path / "disk", free_bytes=8 * 2**20) / "run"
    _stopped_run(run, at=2, steps=6, log_every=1)
    before = (run / "checkpoints" / "last.pt").read_bytes()
    fill(small_filesystem, run.parent, leave=64 * 1024)  # room for config and metrics, not for a checkpoint
    result = CliRunner().invoke(cli, ["train", "--resume", str(run), "--steps", "4"])
    assert result.exit_code == 1, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "No space left on device" in errors[0] and "last.pt" in errors[0], result.stderr
    assert "Traceback" not in result.output
    assert (run / "checkpoints" / "last.pt").read_bytes() == before
    assert load_checkpoint(run / "checkpoints")["step"] == 2  # still loadable
    assert not list((run / "checkpoints").glob(".*.tmp"))


def test_oversized_pipeline_for_training_is_refused_before_allocating(tmp_path):
    code = (
        "from stagegen.cli import cli\n"
        "cli(['train', '--steps', '1', '--out', sys.argv[1], '--image-size', '4096', '-O', 'vae.widths=[4096,4096,4096]',"
        " '-O', 'vae.latent_dim=65536'], standalone_mode=True)\n"
    )
    proc = run_bounded(code, str(tmp_path / "r"), memory_bytes=2**30, timeout=120)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "training needs at least" in proc.stderr and "GiB" in proc.stderr and "Traceback" not in proc.stderr
