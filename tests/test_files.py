"""Reading the small text files a user names (configs, a run's config.json): regular files only,
bounded, and every failure names the file."""

import json
import os

import pytest
from click.testing import CliRunner

from stagegen.cli import cli
from stagegen.config import read_config_file
from stagegen.files import read_text_file


def test_a_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "config.toml"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match=f"config file {fifo} is not a regular file"):
        read_config_file(fifo)  # blocked forever before
    result = CliRunner().invoke(cli, ["train", "--config", str(fifo), "--steps", "1", "--out", str(tmp_path / "r")])
    assert result.exit_code == 1 and "is not a regular file" in result.stderr


def test_dev_zero_is_refused_without_reading_it():
    with pytest.raises(ValueError, match="config file /dev/zero is not a regular file"):
        read_config_file("/dev/zero")  # read until a MemoryError at 3.2 GB before


def test_a_file_over_the_bound_is_refused_after_reading_only_the_bound(tmp_path):
    path = tmp_path / "big.json"
    with open(path, "wb") as f:
        f.truncate(64 * 2**20)  # sparse: costs no disk
    with pytest.raises(ValueError, match=f"config file {path} is larger than 16,777,216 bytes"):
        read_config_file(path)


def test_non_utf8_toml_names_the_file(tmp_path):
    path = tmp_path / "c.toml"
    path.write_bytes(b"[train]\nsteps = 3 # \xff\n")
    with pytest.raises(ValueError, match=f"config file {path} is not UTF-8 text"):
        read_config_file(path)


def test_a_5000_digit_number_in_a_config_names_the_file(tmp_path):
    path = tmp_path / "c.json"
    path.write_text('{"train": {"steps": ' + "9" * 5000 + "}}")
    with pytest.raises(ValueError, match=f"config file {path} is not valid JSON"):
        read_config_file(path)


def test_a_5000_digit_number_in_a_runs_config_json_names_the_file(tmp_path):
    from stagegen.train import Trainer, resume

    from .conftest import tiny_run_config

    run = tmp_path / "run"
    Trainer(tiny_run_config(steps=4), run).fit(stop_after=2)
    config = json.loads((run / "config.json").read_text())
    text = json.dumps(config).replace('"seed": 0', '"seed": ' + "1" * 5000)
    assert text != json.dumps(config)
    (run / "config.json").write_text(text)
    with pytest.raises(ValueError, match=f"{run / 'config.json'} is not valid JSON"):
        resume(run, steps=4)


def test_read_text_file_returns_the_text(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("héllo")
    assert read_text_file(path, "a file", 100) == "héllo"
    with pytest.raises(ValueError, match="cannot read a file .*missing"):
        read_text_file(tmp_path / "missing", "a file", 100)
