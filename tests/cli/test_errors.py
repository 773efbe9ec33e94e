"""Every bad input the CLI can be given ends in one line that says what was wrong and what to
do: never a traceback, unless asked for with --debug."""

import json
import os

import pytest
from click.testing import CliRunner

from stagegen.cli import cli
from stagegen.pipeline import Pipeline

from ..conftest import tiny_pipeline_config
from ..hostile import edit_document, with_document_text


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli-errors")
    pipe = Pipeline(tiny_pipeline_config(("vae", "resnet-l1"))).eval()
    good = pipe.save(root / "good.safetensors")
    made = {"good": good, "root": root}
    made["config-string"] = edit_document(good, root / "c.safetensors", lambda d: d.update(config="hello"))
    made["no-config"] = edit_document(good, root / "n.safetensors", lambda d: d.pop("config"))
    made["metadata-list"] = edit_document(good, root / "m.safetensors", lambda d: d.update(stages=[1, 2]))
    made["no-index"] = edit_document(good, root / "i.safetensors", lambda d: [r.pop("index") for r in d["stages"]])
    made["deep"] = with_document_text(good, root / "d.safetensors", "[" * 100_000 + "]" * 100_000)
    made["scale0"] = edit_document(good, root / "s.safetensors", lambda d: d["config"]["stages"][1]["options"].update(scale=0))
    made["version-true"] = edit_document(good, root / "v.safetensors", lambda d: d.update(format_version=True))
    (root / "a-folder.png").mkdir()
    (root / "a-file").write_text("x")
    (root / "no-train").mkdir()
    (root / "no-train" / "config.json").write_text(json.dumps({"pipeline": {"stages": [{"type": "vae"}]}}))
    (root / "bad-json").mkdir()
    (root / "bad-json" / "config.json").write_text("{not json")
    return made


def _cases():
    P = "{good}"
    train = ["train", "--steps", "1", "--no-progress", "--out", "{root}/never"]
    return {
        # stagegen info / load on malformed documents
        "info config a string": (["info", "{config-string}"], "no pipeline config"),
        "info no config": (["info", "{no-config}"], "no pipeline config"),
        "info records not objects": (["info", "{metadata-list}"], "not a list of stage records"),
        "info records without index": (["info", "{no-index}"], "no integer 'index'"),
        "info deep JSON": (["info", "{deep}"], "nested too deeply"),
        "info format_version true": (["info", "{version-true}"], "invalid format_version"),
        "sample scale 0": (["sample", "{scale0}", "-o", "{root}/x.png"], "scale"),
        # -O paths
        "-O into the stage list": (train + ["-O", "pipeline.stages.0.type=vae"], "STAGE.FIELD=VALUE"),
        "-O below a value": (train + ["-O", "train.steps.x=1"], "train.steps is a single value"),
        "-O without =": (train + ["-O", "vae.latent_dim"], "must look like"),
        "-O latent_dim 1e9": (train + ["-O", "vae.latent_dim=1000000000"], "latent_dim"),
        "-O lr inf": (train + ["--lr", "inf"], "finite"),
        # devices
        "train --device tpu": (train + ["--device", "tpu"], "unknown device 'tpu'"),
        "train --device empty": (train + ["--device", ""], "unknown device ''"),
        "train --device meta": (train + ["--device", "meta"], "unknown device 'meta'"),
        "sample --device cuda": (["sample", P, "-o", "{root}/x.png", "--device", "cuda:7"], "device 'cuda:7'"),
        # counts and ranges
        "sample -n 0": (["sample", P, "-n", "0", "-o", "{root}/x.png"], "'-n'"),
        "sample -n -1": (["sample", P, "-n", "-1", "-o", "{root}/x.png"], "'-n'"),
        "interpolate --steps 0": (["interpolate", P, "--steps", "0", "-o", "{root}/x.png"], "'--steps'"),
        "interpolate --rows 0": (["interpolate", P, "--rows", "0", "-o", "{root}/x.png"], "'--rows'"),
        "eval --limit 0": (["eval", P, "--limit", "0"], "'--limit'"),
        "eval --samples 0": (["eval", P, "--samples", "0"], "'--samples'"),
        "fit-prior --max-images 0": (["fit-prior", P, "--max-images", "0", "-o", "{root}/f.safetensors"], "'--max-images'"),
        "train --seed 2**70": (train + ["--seed", str(2**70)], "'--seed'"),
        "sample --seed -1": (["sample", P, "--seed", "-1", "-o", "{root}/x.png"], "'--seed'"),
        "sample --temperature nan": (["sample", P, "--temperature", "nan", "-o", "{root}/x.png"], "temperature"),
        "sample --temperature inf": (["sample", P, "--temperature", "inf", "-o", "{root}/x.png"], "temperature"),
        "sample --temperature -1": (["sample", P, "--temperature", "-1", "-o", "{root}/x.png"], "temperature"),
        # where output goes
        "sample -o unknown suffix": (["sample", P, "-o", "{root}/grid.xyz"], "'.xyz' is not an image format"),
        "sample -o an existing folder": (["sample", P, "-o", "{root}/a-folder.png"], "is a folder"),
        "sample -o a file as folder": (["sample", P, "-o", "{root}/a-file"], "is a file"),
        "sample -o unwritable place": (["sample", P, "-o", "/proc/stagegen/x.png"], "/proc/stagegen/x.png"),
        "reconstruct -o unknown suffix": (["reconstruct", P, "-o", "{root}/r.xyz"], "not an image format"),
        "train --cache-dir a file": (train + ["--cache-dir", "{root}/a-file"], "is a file"),
        # resuming
        "resume config without train": (["train", "--resume", "{root}/no-train"], "no 'train' section"),
        "resume config not JSON": (["train", "--resume", "{root}/bad-json"], "not valid JSON"),
        "resume with --lr": (["train", "--resume", "{root}/no-train", "--lr", "0.1"], "--lr cannot be changed"),
        "resume with --stages and -O": (
            ["train", "--resume", "{root}/no-train", "--stages", "vae", "-O", "1.x=2"],
            "--stages, -O",
        ),
        "missing pipeline file": (["info", "{root}/nope.safetensors"], "does not exist"),
    }


CASES = _cases()


def _invoke(args, files, extra_env=None):
    args = [a.format(**{k: str(v) for k, v in files.items()}) for a in args]
    return CliRunner().invoke(cli, args, env={"STAGEGEN_DEBUG": None, **(extra_env or {})}, catch_exceptions=True)


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_without_traceback(files, case):
    args, message = CASES[case]
    result = _invoke(args, files)
    assert result.exit_code in (1, 2), (result.exit_code, result.output, result.exception)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.stderr
    assert message in errors[0], errors[0]
    assert "Traceback" not in result.output and "unexpected" not in errors[0]


def test_nothing_was_left_behind_by_refused_training(files):
    assert not (files["root"] / "never").exists()


def test_an_unexpected_error_is_one_line_with_the_way_to_its_traceback(files, monkeypatch):
    import stagegen

    def broken(*args, **kwargs):
        raise KeyError("a bug")

    monkeypatch.setattr(stagegen, "load", broken)
    result = _invoke(["sample", "{good}", "-o", "{root}/x.png"], files)
    assert result.exit_code == 1
    assert "unexpected KeyError: 'a bug'" in result.stderr and "--debug" in result.stderr
    with_debug = _invoke(["--debug", "sample", "{good}", "-o", "{root}/x.png"], files)
    assert isinstance(with_debug.exception, KeyError)  # raised, so Python prints its traceback
    by_env = _invoke(["sample", "{good}", "-o", "{root}/x.png"], files, {"STAGEGEN_DEBUG": "1"})
    assert isinstance(by_env.exception, KeyError)


def test_debug_shows_the_traceback_of_a_user_error_too(files):
    result = _invoke(["--debug", "info", "{deep}"], files)
    assert result.exception is not None and "nested too deeply" in str(result.exception)


def test_info_escapes_control_characters_from_the_file(files, tmp_path):
    path = edit_document(
        files["good"], tmp_path / "e.safetensors", lambda d: d["stages"][0].update(package="\x1b[2J\x1b]0;pwned\x07evil\u202e")
    )
    result = _invoke(["info", str(path)], files)
    assert result.exit_code == 0
    assert "\x1b" not in result.output and "\x07" not in result.output and "\u202e" not in result.output
    assert "\\x1b[2J" in result.output and "evil" in result.output


@pytest.mark.parametrize("suffix,magic", [(".bmp", b"BM"), (".png", b"\x89PNG"), (".jpg", b"\xff\xd8"), (".tif", b"II")])
def test_grid_is_written_in_the_format_its_suffix_names(files, tmp_path, suffix, magic):
    out = tmp_path / f"grid{suffix}"
    result = _invoke(["sample", "{good}", "-n", "2", "-o", str(out)], files)
    assert result.exit_code == 0, result.output
    assert out.is_file() and out.read_bytes().startswith(magic)


def test_unwritable_output_names_the_file_not_a_temporary(files, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    os.chmod(locked, 0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as a user who can write anywhere (root): permissions cannot be tested here")
        result = _invoke(["sample", "{good}", "-o", str(locked / "x.png")], files)
        assert result.exit_code == 1 and str(locked / "x.png") in result.stderr and ".tmp" not in result.stderr
    finally:
        os.chmod(locked, 0o700)


def test_full_disk_while_writing_a_grid_is_one_line(files, tmp_path, monkeypatch):
    import errno

    from PIL import Image

    def full(self, fp, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", full)
    out = tmp_path / "x.png"
    result = _invoke(["sample", "{good}", "-o", str(out)], files)
    assert result.exit_code == 1
    assert "No space left on device" in result.stderr and str(out) in result.stderr
    assert list(tmp_path.iterdir()) == []  # no half-written or temporary file left


def test_broken_pipe_ends_quietly(files):
    import subprocess
    import sys

    proc = subprocess.run(
        f"{sys.executable} -m stagegen plugins | head -1", shell=True, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0 and "Error" not in proc.stderr and "Traceback" not in proc.stderr
