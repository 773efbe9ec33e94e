"""A run directory from elsewhere cannot make a run write outside it: links inside it are
refused before anything is read or written, and the files they point at stay as they were."""

import json
import os

import pytest
from click.testing import CliRunner

from stagegen.cli import cli
from stagegen.train import Trainer, resume
from stagegen.train.run_dir import LinkInRunDirectory, check_run_directory

from ..conftest import tiny_run_config
from .test_interruption import TINY


def _train(out, *extra):
    return CliRunner().invoke(cli, ["train", "--steps", "2", "--out", str(out), "--no-progress", *TINY, *extra])


@pytest.fixture
def victim(tmp_path):
    path = tmp_path / "victim.txt"
    path.write_text("precious\n")
    return path


@pytest.mark.parametrize("name", [".lock", "metrics.jsonl", "config.json", "pipeline.safetensors", "samples.png"])
def test_a_linked_run_file_is_refused_and_its_target_untouched(tmp_path, victim, name):
    run = tmp_path / "run"
    run.mkdir()
    (run / name).symlink_to(os.path.relpath(victim, run))
    result = _train(run)
    assert result.exit_code == 1
    assert f"{run / name} is a symbolic link" in result.stderr and "Remove the link" in result.stderr
    assert victim.read_text() == "precious\n"


@pytest.mark.parametrize("folder", ["samples", "checkpoints", "tensorboard"])
def test_a_linked_run_folder_is_refused_and_nothing_lands_in_it(tmp_path, folder):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / ".keep.tmp").write_text("not ours")  # the stale-temporary cleanup must not reach it
    run = tmp_path / "run"
    run.mkdir()
    (run / folder).symlink_to(elsewhere)
    result = _train(run, "-O", "train.sample_every=1")
    assert result.exit_code == 1 and f"{run / folder} is a symbolic link" in result.stderr
    assert sorted(p.name for p in elsewhere.iterdir()) == [".keep.tmp"]


def test_a_link_inside_a_run_folder_is_refused(tmp_path, victim):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.pt").symlink_to(victim)
    with pytest.raises(LinkInRunDirectory, match="last.pt is a symbolic link"):
        check_run_directory(run)


def test_resume_of_a_run_directory_with_a_planted_lock_link_is_refused(tmp_path, victim):
    run = tmp_path / "run"
    Trainer(tiny_run_config(steps=4), run).fit(stop_after=2)
    (run / ".lock").unlink(missing_ok=True)
    (run / ".lock").symlink_to(victim)
    with pytest.raises(LinkInRunDirectory, match=r"\.lock is a symbolic link"):
        resume(run, steps=4)
    result = CliRunner().invoke(cli, ["train", "--resume", str(run), "--steps", "4", "--no-progress"])
    assert result.exit_code == 1 and "symbolic link" in result.stderr
    assert victim.read_text() == "precious\n"


def test_the_run_directory_itself_may_be_a_link(tmp_path):
    """The user named it on the command line: it is followed, as any path they give."""
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "named").symlink_to(real)
    assert _train(tmp_path / "named").exit_code == 0
    assert (real / "pipeline.safetensors").is_file()


def test_a_link_planted_in_a_checked_folder_is_named_with_its_control_characters_escaped(tmp_path, victim):
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").symlink_to(victim)
    (run / "samples").mkdir()
    (run / "samples" / "x\x1b]0;owned\x07.png").symlink_to(victim)
    with pytest.raises(LinkInRunDirectory) as info:
        check_run_directory(run)
    assert "\x1b" not in str(info.value) and "(and 1 more)" in str(info.value)


def _contents(folder):
    """Every file's bytes but the lock's (which says who holds it now)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file() and p.name != ".lock"}


def test_a_new_run_into_a_finished_one_is_refused_and_changes_nothing(tmp_path):
    run = tmp_path / "run"
    assert _train(run).exit_code == 0
    before = _contents(run)
    result = _train(run, "--steps", "3")
    assert result.exit_code == 1
    assert "already holds a run" in result.stderr and f"--resume {run}" in result.stderr and "--overwrite" in result.stderr
    assert _contents(run) == before  # not a byte of the old run changed


def test_overwrite_starts_again_and_keeps_what_is_not_the_runs(tmp_path):
    run = tmp_path / "run"
    assert _train(run, "-O", "train.sample_every=1").exit_code == 0
    assert (run / "samples" / "step_0000001.png").is_file()
    (run / "notes.txt").write_text("mine")
    result = _train(run, "--steps", "3", "--overwrite")
    assert result.exit_code == 0, result.stderr
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines() if '"loss"' in line]
    assert steps == sorted(set(steps)) and steps[-1] == 3  # one run's lines, each step once
    assert json.loads((run / "config.json").read_text())["train"]["steps"] == 3
    assert not (run / "samples" / "step_0000001.png").exists()  # the old run's grids went with it
    assert (run / "notes.txt").read_text() == "mine"


def test_a_folder_with_other_files_is_refused_unless_asked(tmp_path):
    run = tmp_path / "photos"
    run.mkdir()
    (run / "holiday.jpg").write_bytes(b"\xff\xd8")
    result = _train(run)
    assert result.exit_code == 1 and "is not empty (holiday.jpg)" in result.stderr
    assert sorted(p.name for p in run.iterdir()) == [".lock", "holiday.jpg"]
    assert _train(run, "--overwrite").exit_code == 0 and (run / "holiday.jpg").read_bytes() == b"\xff\xd8"


def test_resume_and_overwrite_together_are_refused(tmp_path):
    run = tmp_path / "run"
    assert _train(run).exit_code == 0
    result = CliRunner().invoke(cli, ["train", "--resume", str(run), "--overwrite"])
    assert result.exit_code == 2 and "give one" in result.stderr
