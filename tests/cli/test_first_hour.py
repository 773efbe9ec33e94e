"""What a newcomer met in their first hour (issue 19's list), each checked by running the command:
commands on a pipeline file read the dataset it was trained on, long phases say what they do,
grids say what their rows are, and reports say what they were measured on."""

import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner
from PIL import Image

from stagegen.cli import cli
from stagegen.pipeline import Pipeline

from ..conftest import tiny_pipeline_config
from ..train.test_interruption import TINY


def _invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture
def folder_pipeline(tmp_path):
    """A pipeline file that says it was trained on a folder of images, and that folder."""
    root = tmp_path / "images"
    root.mkdir()
    for i in range(40):
        Image.new("L", (16, 16), 6 * i).save(root / f"{i:03d}.png")
    pipe = Pipeline(tiny_pipeline_config()).eval()
    path = pipe.save(tmp_path / "p.safetensors")
    from stagegen.pipeline.file import save_pipeline

    save_pipeline(pipe, path, extra={"data": "folder", "data_root": str(root), "train_steps": 7})
    return path, root


def test_commands_on_a_pipeline_read_the_dataset_it_was_trained_on(folder_pipeline, tmp_path):
    path, root = folder_pipeline
    result = _invoke("reconstruct", path, "-n", 4, "-o", tmp_path / "r.png")
    assert result.exit_code == 0, result.output
    assert f"data: folder from {root}, the dataset the pipeline was trained on" in result.stderr
    result = _invoke("fit-prior", path, "-O", "components=2", "-O", "covariance=diag", "-o", tmp_path / "g.safetensors")
    assert result.exit_code == 0 and "folder train images" in result.stdout  # not "1527 digits train images"
    result = _invoke("eval", path, "--metrics", "psnr", "--limit", 8)
    assert result.exit_code == 0 and "data: folder" in result.stderr
    assert _invoke("eval", path, "--data", "digits", "--metrics", "psnr", "--limit", 8).stderr.count("data: folder") == 0


def test_eval_says_what_it_measures_and_on_how_many_images(folder_pipeline):
    path, _ = folder_pipeline
    result = _invoke("eval", path, "--metrics", "psnr,sharpness", "--split", "train", "--limit", 8, "--samples", 6)
    assert "evaluating psnr, sharpness on" in result.stderr
    assert "8 real images, 6 samples per stage from the normal prior at temperature 1.0" in result.stdout


def test_grids_label_their_rows(folder_pipeline, tmp_path):
    path, _ = folder_pipeline
    _invoke("reconstruct", path, "-n", 4, "-o", tmp_path / "r.png")
    _invoke("sample", path, "-n", 4, "--all-stages", "-o", tmp_path / "s.png")
    plain = 4 * 50 + 2  # four 48-pixel images and their gaps: a label margin makes it wider
    assert Image.open(tmp_path / "r.png").width > plain and Image.open(tmp_path / "s.png").width > plain


def test_compare_says_when_the_step_counts_differ(folder_pipeline, tmp_path):
    path, root = folder_pipeline
    other = Pipeline(tiny_pipeline_config()).eval()
    from stagegen.pipeline.file import save_pipeline

    save_pipeline(other, tmp_path / "q.safetensors", extra={"data": "folder", "data_root": str(root), "train_steps": 339})
    result = _invoke(
        "compare", path, tmp_path / "q.safetensors", "--names", "a,b", "--metrics", "psnr", "--limit", 8, "-o", tmp_path / "c.png"
    )
    assert result.exit_code == 0, result.output
    assert "Training steps: a 7, b 339 (unequal: this is not a comparison at equal budget)" in result.stdout
    assert json.loads((tmp_path / "c.json").read_text())["b"]["train_steps"] == 339


def test_a_short_run_says_its_preset_and_its_prior_fit_and_leaves_a_final_grid(tmp_path):
    out = tmp_path / "run"
    result = _invoke("train", "--steps", 3, "--out", out, "--no-progress", *TINY)
    assert result.exit_code == 0, result.output
    assert "preset: sharp-digits (the dataset's own; --preset chooses another)" in result.stderr
    assert "fitting the gmm prior to 1500 training images' posteriors" in result.stderr
    assert (out / "samples" / "step_0000003.png").is_file()  # presets write every 500 steps: none before
    from stagegen import load

    assert load(out / "pipeline.safetensors").file_metadata["extra"]["data"] == "digits"


@pytest.mark.parametrize("given", ["../shapes", "./shapes", "shapes/"])
def test_a_path_given_as_the_dataset_name_points_to_the_folder_dataset(tmp_path, monkeypatch, given):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["train", "--data", given, "--steps", "1", "--out", str(tmp_path / "run")])
    assert result.exit_code == 1
    assert "looks like a path" in result.stderr and f"--data folder --data-root {given}" in result.stderr
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_an_existing_folder_given_as_the_dataset_name_is_recognised_too(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "shapes").mkdir()
    result = CliRunner().invoke(cli, ["train", "--data", "shapes", "--steps", "1", "--out", str(tmp_path / "run")])
    assert result.exit_code == 1 and "--data folder --data-root shapes" in result.stderr


BROKEN = 'raise RuntimeError("operator torchvision::nms does not exist")  # torchvision built for another torch\n'


def _broken(tmp_path, *packages):
    """A PYTHONPATH on which ``packages`` fail to import the way they do beside a mismatched torchvision."""
    site = tmp_path / "broken-site"
    for package in packages:
        (site / package).mkdir(parents=True)
        (site / package / "__init__.py").write_text(BROKEN)
    return {"PYTHONPATH": os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH")) if p)}


def test_eval_leaves_out_a_metric_whose_package_is_broken_and_says_why(tmp_path, classifier_cache):
    from .test_commands import run

    run("train", "--steps", "2", "--out", str(tmp_path / "run"), "--no-progress", *TINY)
    env = {**_broken(tmp_path, "torch_fidelity"), "STAGEGEN_CACHE": str(classifier_cache)}
    proc = run(
        "eval", str(tmp_path / "run" / "pipeline.safetensors"), "--metrics", "sharpness,precision_recall",
        "--fid-features", "digits", "--limit", "64", "--json", env=env,
    )  # fmt: skip
    assert "note: precision_recall is left out: it needs torch_fidelity, which cannot be imported here" in proc.stderr
    assert "was built for another release of torch" in proc.stderr and "unexpected" not in proc.stderr
    stages = json.loads(proc.stdout)["stages"]
    assert all("sample_sharpness" in s and "sample_precision" not in s for s in stages)


def test_a_loss_whose_package_is_broken_stops_training_with_the_reason(tmp_path):
    from .test_commands import run

    args = ["train", "--stages", "vae,srresnet-perceptual", *TINY[:4], "--batch-size", "8", "--steps", "1"]
    args += ["-O", "srresnet-perceptual.width=8", "-O", "srresnet-perceptual.blocks=1", "-O", "srresnet-perceptual.scale=1"]
    proc = run(*args, "--out", str(tmp_path / "run"), env=_broken(tmp_path, "lpips"), check=False)
    assert proc.returncode == 1 and "unexpected" not in proc.stderr
    assert "needs lpips, which cannot be imported here: the installed torchvision" in proc.stderr


@pytest.mark.parametrize("args", [["--help"], ["train", "--help"], ["train", "--bogus"], ["sample"]])
def test_help_and_argument_errors_do_not_wait_for_torch(args):
    """Every call took 2-6 s, `--help` and a mistyped flag too: the error handler imported torch
    to know its exception types. benchmarks/startup.py times these (0.2 s against 1.8 s for
    importing torch, on the 2-core machine)."""
    code = (
        "import sys\nfrom stagegen.cli import main\n"
        f"sys.argv = ['stagegen', *{args!r}]\n"
        "try:\n    main()\nexcept SystemExit as exit:\n    code = exit.code\n"
        "print('torch' in sys.modules, code)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    imported, code = proc.stdout.split()[-2:]
    assert imported == "False", f"stagegen {' '.join(args)} imported torch"
    assert code == ("0" if "--help" in args else "2")
