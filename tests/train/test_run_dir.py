"""A run directory from elsewhere cannot make a run write outside it: links inside it are
refused before anything is read or written, and the files they point at stay as they were."""

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
