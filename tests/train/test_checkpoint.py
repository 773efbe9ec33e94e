"""Training checkpoints on their own: written atomically, read without running code, refused
when foreign, and carrying the versions their stages' upgrade hooks need."""

import json
import zipfile

import pytest
import torch
from click.testing import CliRunner

import stagegen
from stagegen.cli import cli
from stagegen.train import Trainer, resume
from stagegen.train.checkpoint import CHECKPOINT_NAME, load_checkpoint, save_checkpoint

from ..conftest import tiny_run_config


def test_a_checkpoint_is_written_atomically_and_read_back(tmp_path):
    save_checkpoint({"format": "x", "step": 3, "weights": torch.ones(2)}, tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == [CHECKPOINT_NAME]  # no temporary file left
    state = load_checkpoint(tmp_path)
    assert state["step"] == 3 and torch.equal(state["weights"], torch.ones(2))


def test_missing_and_foreign_checkpoints_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint at .*last.pt"):
        load_checkpoint(tmp_path)
    (tmp_path / CHECKPOINT_NAME).write_bytes(b"not a checkpoint at all")
    with pytest.raises(ValueError, match="not the zip archive torch.save writes"):
        load_checkpoint(tmp_path)


def test_a_pickled_object_is_not_executed(tmp_path):
    class Payload:
        def __reduce__(self):
            return (print, ("this must never run",))

    torch.save({"format": "stagegen.checkpoint", "payload": Payload()}, tmp_path / CHECKPOINT_NAME)
    with pytest.raises(ValueError, match="cannot be read"):
        load_checkpoint(tmp_path)  # weights_only: the payload's class is refused, not called


def test_a_checkpoint_records_the_version_of_each_stages_plugin(tmp_path):
    trainer = Trainer(tiny_run_config(steps=1), tmp_path / "run")
    trainer.fit()
    state = load_checkpoint(tmp_path / "run" / "checkpoints")
    assert state["stage_versions"] == [stagegen.__version__, stagegen.__version__]
    assert state["format"] == "stagegen.checkpoint" and state["step"] == 1


# ---------------------------------------------------------------------------- hostile checkpoints


def _stopped(tmp_path, at=2, steps=4, **train):
    run = tmp_path / "run"
    Trainer(tiny_run_config(steps=steps, **train), run).fit(stop_after=at)
    return run, run / "checkpoints" / CHECKPOINT_NAME


def test_a_deflated_entry_is_refused_before_it_is_inflated(tmp_path):
    """A 1.5 MB checkpoint with a deflated entry inflated 1.6 GB before any check: torch.save
    never compresses, so a compressed entry is refused from the zip's directory."""
    run, path = _stopped(tmp_path)
    entries = {}
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            entries[info.filename] = archive.read(info)
    bomb = next(name for name in entries if "/data/" in name)
    entries[bomb] = bytes(64 * 2**20)  # 64 MiB of zeros deflate to about 64 KiB
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data, compress_type=zipfile.ZIP_DEFLATED if name == bomb else zipfile.ZIP_STORED)
    assert path.stat().st_size < 2**20
    with pytest.raises(ValueError, match=f"entry '{bomb}' is compressed .*refusing to inflate it \\(67,108,864 bytes"):
        load_checkpoint(path.parent)
    result = CliRunner().invoke(cli, ["train", "--resume", str(run), "--steps", "4"])
    assert result.exit_code == 1 and "is compressed" in result.stderr


def _edit(path, change):
    state = torch.load(path, weights_only=True)
    change(state)
    torch.save(state, path)


@pytest.mark.parametrize(
    ("field", "value"), [("step", -1), ("step", 3.5), ("step", "3"), ("epoch", 10**30), ("batch_in_epoch", True)]
)
def test_counters_that_no_run_writes_are_refused_by_name(tmp_path, field, value):
    run, path = _stopped(tmp_path)
    _edit(path, lambda state: state.__setitem__(field, value))
    with pytest.raises(ValueError, match=f"{field} is {value!r}, not a whole number"):
        resume(run, steps=4)


def test_a_checkpoint_without_the_runs_optimisers_is_refused(tmp_path):
    run, path = _stopped(tmp_path)
    _edit(path, lambda state: state.__setitem__("optimizers", []))
    with pytest.raises(ValueError, match="holds 0 optimizers where this run has 1"):
        resume(run, steps=4)


def test_a_negative_learning_rate_in_the_optimiser_is_refused(tmp_path):
    """An optimiser lr of -1 trained by gradient ascent and wrote the pipeline."""
    run, path = _stopped(tmp_path)
    _edit(path, lambda state: state["optimizers"][0]["param_groups"][0].__setitem__("lr", -1.0))
    with pytest.raises(ValueError, match="optimiser 0 has learning rate -1.0"):
        resume(run, steps=4)


def test_an_edited_config_learning_rate_is_refused_not_ignored(tmp_path):
    run, path = _stopped(tmp_path)
    config = json.loads((run / "config.json").read_text())
    config["train"]["lr"] = 0.5
    (run / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="config.json says lr 0.5 but its checkpoint .* trained with 0.001"):
        resume(run, steps=4)


def test_a_nan_optimiser_state_is_refused_and_not_called_intact(tmp_path):
    from stagegen.train.checkpoint import checkpoint_note

    run, path = _stopped(tmp_path)

    def poison(state):
        moments = next(iter(state["optimizers"][0]["state"].values()))
        moments["exp_avg"].fill_(float("nan"))

    _edit(path, poison)
    with pytest.raises(ValueError, match="non-finite values in optimizers"):
        resume(run, steps=4)
    note = checkpoint_note(path.parent)
    assert "intact" not in note and "non-finite values (optimizers)" in note
