"""The `train` flags come from the config models: each sets its field, says its field's
description, and a resumed run accepts exactly the fields marked resumable."""

from click.testing import CliRunner

from stagegen.cli import cli
from stagegen.cli.config_flags import CONFIG_FLAGS, MODELS, refused_on_resume, resumable_flags
from stagegen.config import TrainConfig, resumable_fields
from stagegen.train.run import RESUMABLE_OVERRIDES


def test_every_flag_names_a_field_and_shows_its_description():
    help_text = " ".join(CliRunner().invoke(cli, ["train", "--help"], terminal_width=1000).output.split())
    for flag, (section, field) in CONFIG_FLAGS.items():
        description = MODELS[section].model_fields[field].description
        assert flag.replace("/", " / ") in help_text and " ".join(description.split()) in help_text, flag


def test_resumable_fields_are_one_list_read_by_the_cli_and_by_resume():
    assert set(resumable_fields()) == {"steps", "time_budget", "budget_schedule", "device", "num_workers", "progress"}
    assert set(RESUMABLE_OVERRIDES) == set(resumable_fields()) - {"steps"}
    assert resumable_flags() == ["--steps", "--time-budget", "--device", "--num-workers", "--progress/--no-progress"]
    given = {"train__lr": 0.1, "train__device": "cpu", "data__name": "mnist", "train__steps": 9}
    assert refused_on_resume(given) == ["--data", "--lr"]
    assert all(name in TrainConfig.model_fields for name in resumable_fields())


def test_flags_set_their_fields(tmp_path):
    from unittest import mock

    seen = {}

    def fake_train(config, run_dir, overwrite=False, started=None):
        seen["config"] = config
        raise SystemExit(0)

    with mock.patch("stagegen.train.train", fake_train):
        CliRunner().invoke(
            cli,
            [
                "train",
                "--steps",
                "7",
                "--time-budget",
                "2m",
                "--ema",
                "0.9",
                "--no-progress",
                "--precision",
                "fp32",
                "--out",
                str(tmp_path),
            ],
        )
    train = seen["config"].train
    assert (train.steps, train.time_budget, train.ema_decay, train.progress, train.precision) == (7, 120.0, 0.9, False, "fp32")
