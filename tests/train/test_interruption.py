"""Real processes stopped from outside: SIGTERM checkpoints and resumes; SIGKILL never
leaves a broken checkpoint behind."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import stagegen

TINY = [
    "-O",
    "vae.widths=[8,16]",
    "-O",
    "vae.latent_dim=8",
    "-O",
    "resnet-l1.width=8",
    "-O",
    "resnet-l1.blocks=1",
    "-O",
    "resnet-l1.head_width=8",
    "--batch-size",
    "8",
    "--no-progress",
    "-O",
    "train.log_every=1",
]


def _start(out: Path, steps: int, *extra):
    return subprocess.Popen(
        [sys.executable, "-m", "stagegen", "train", "--steps", str(steps), "--out", str(out), *TINY, *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_lines(path: Path, n: int, proc, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if path.is_file() and len(path.read_text().splitlines()) >= n:
            return
        if proc.poll() is not None:
            raise AssertionError(f"training ended early: {proc.stderr.read()}")
        time.sleep(0.05)
    raise AssertionError("training did not log in time")


@pytest.mark.slow
def test_sigterm_checkpoints_then_resume_finishes_the_same_run(tmp_path):
    out = tmp_path / "run"
    proc = _start(out, 100_000, "-O", "train.checkpoint_every=0")
    _wait_for_lines(out / "metrics.jsonl", 3, proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "--resume" in err
    state = torch.load(out / "checkpoints" / "last.pt", weights_only=True)
    stopped_at = state["step"]
    assert stopped_at >= 3
    proc = subprocess.run(
        [sys.executable, "-m", "stagegen", "train", "--resume", str(out), "--steps", str(stopped_at + 5), "--no-progress"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert f"resuming from step {stopped_at}" in proc.stderr  # the run says where it continues
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in records if "loss" in r]  # the last line is the prior's fit, not a step
    assert steps[-5:] == list(range(stopped_at + 1, stopped_at + 6)), "the resumed run did not continue from its step"
    assert stagegen.load(out / "pipeline.safetensors").file_metadata["extra"]["train_steps"] == stopped_at + 5


@pytest.mark.slow
def test_sigkill_during_checkpointing_never_leaves_a_broken_checkpoint(tmp_path):
    out = tmp_path / "run"
    last_step = 0
    for attempt, delay in enumerate([0.3, 0.55, 0.8, 1.1]):
        proc = (
            _start(out, 100_000, "-O", "train.checkpoint_every=1")
            if attempt == 0
            else subprocess.Popen(
                [sys.executable, "-m", "stagegen", "train", "--resume", str(out), "--no-progress"],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
        _wait_for_lines(out / "metrics.jsonl", last_step + 2, proc)
        time.sleep(delay)  # checkpoints are written every step: the kill lands at a random point of one
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        state = torch.load(out / "checkpoints" / "last.pt", weights_only=True)  # never torn
        assert state["step"] >= last_step
        last_step = state["step"]
    assert last_step > 0
    # a later run of the same directory clears the temporary files the kills left behind
    subprocess.run(
        [sys.executable, "-m", "stagegen", "train", "--resume", str(out), "--steps", str(last_step + 1), "--no-progress"],
        check=True,
        capture_output=True,
        timeout=300,
    )
    assert not list((out / "checkpoints").glob(".*.tmp"))


def _wait_for_file(path: Path, proc, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline and not path.is_file():
        if proc.poll() is not None:
            raise AssertionError(f"training ended early: {proc.stderr.read()}")
        time.sleep(0.05)
    assert path.is_file(), f"{path} did not appear in time"


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_during_the_final_prior_fit_ends_the_run_and_resume_finishes_it(tmp_path, signum):
    """The prior fit after the last step can take minutes (a latent VAE of a million steps): a
    signal there ends the run in seconds, with the final checkpoint kept for a resume."""
    out = tmp_path / "run"
    proc = _start(out, 3, "--prior", "latent-vae", "-O", "prior.steps=1000000", "-O", "prior.width=8")
    _wait_for_file(out / "checkpoints" / "last.pt", proc)  # written at the end of training, before the prior fit
    time.sleep(1.0)  # well inside the fit
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=30)  # the bound of the test, not a timing claim: it hung for minutes before
    assert proc.returncode == 130, err
    assert "while fitting the prior" in err and "it fits the prior and writes the pipeline" in err
    assert not (out / "pipeline.safetensors").exists()
    assert torch.load(out / "checkpoints" / "last.pt", weights_only=True)["step"] == 3


def test_a_signal_while_the_sample_prior_refits_ends_the_run_keeping_the_last_checkpoint(tmp_path):
    out = tmp_path / "run"
    args = ["--stages", "vae,resnet-gan", "--prior", "latent-vae", "--batch-size", "8", "--no-progress"]
    for option in ("vae.widths=[8,16]", "vae.latent_dim=8", "1.width=8", "1.blocks=1", "prior.steps=1000000", "prior.width=8"):
        args += ["-O", option]
    args += ["-O", "train.sample_prior_latents=64", "-O", "train.checkpoint_every=1"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "stagegen", "train", "--steps", "100000", "--out", str(out), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    last = out / "checkpoints" / "last.pt"
    _wait_for_file(last, proc)
    deadline = time.time() + 120  # the first refit starts once 64 posteriors are in: at step 9
    while time.time() < deadline and torch.load(last, weights_only=True)["step"] < 8:
        time.sleep(0.1)
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "while refitting the sample path's prior" in err and "is kept; continue with: stagegen train --resume" in err
