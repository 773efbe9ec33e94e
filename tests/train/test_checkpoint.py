"""Training checkpoints on their own: written atomically, read without running code, refused
when foreign, and carrying the versions their stages' upgrade hooks need."""

import pytest
import torch

import stagegen
from stagegen.train import Trainer
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
    with pytest.raises(ValueError, match="cannot be read"):
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
