"""Names that come from data (class folders, attribute files, pipeline files) are bounded where
they are read and escaped wherever they are printed; every command that writes into a run
directory takes its lock. Played as an attacker would: real files, real commands."""

import io
import zipfile

import pytest
from PIL import Image

from stagegen.train.lock import run_lock

from ..hostile import edit_document
from .test_commands import SMALL, run

OSC = "\x1b]0;pwned\x07"  # sets a terminal's window title when printed raw


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """A short run on the digits: a pipeline with a prior per digit, in its run directory."""
    out = tmp_path_factory.mktemp("runs") / "digits"
    run("train", "--steps", "4", "--out", str(out), *SMALL)
    return out


def _png(value: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (8, 8), value).save(buffer, format="PNG")
    return buffer.getvalue()


def _zip_of_classes(path, classes, per_class=2):
    image = _png(128)
    with zipfile.ZipFile(path, "w") as z:
        for c in classes:
            for i in range(per_class):
                z.writestr(f"{c}/{i}.png", image)
    return path


@pytest.mark.parametrize(
    ("classes", "said"),
    [
        (["a" * 60_000, "b"], "is 60,000 characters; a name has at most 100"),
        ([f"class{i}" for i in range(1001)], "1,001 names, more than the 1,000 stagegen takes"),
    ],
    ids=["60,000-character class", "1,001 classes"],
)
def test_class_folders_past_the_bounds_leave_nothing_to_condition_on(digits_run, tmp_path, classes, said):
    """A 60,000-character class folder made `sample --label all` write a 360,135 px wide PNG;
    10,000 classes made a 129 KB error and a fit that never ended."""
    data = _zip_of_classes(tmp_path / "classes.zip", classes)
    out = tmp_path / "conditional.safetensors"
    proc = run(
        "fit-prior", str(digits_run / "pipeline.safetensors"), "--conditional",
        "--data", "folder", "--data-root", str(data), "-o", str(out), check=False,
    )  # fmt: skip
    assert proc.returncode == 2 and "declare no labels" in proc.stderr
    assert said in proc.stderr and "the images are used without labels" in proc.stderr
    assert len(proc.stderr) < 3000 and not out.exists()


def test_a_pipeline_file_with_an_overlong_label_is_refused_on_load(digits_run, tmp_path):
    def overlong(doc):
        doc["config"]["conditional"]["labels"][3] = "x" * 60_000

    crafted = edit_document(digits_run / "pipeline.safetensors", tmp_path / "crafted.safetensors", overlong)
    proc = run("sample", str(crafted), "--label", "all", "-n", "2", "-o", str(tmp_path / "s.png"), check=False)
    assert proc.returncode == 1 and "a name has at most 100" in proc.stderr and len(proc.stderr) < 2000
    assert not (tmp_path / "s.png").exists()


@pytest.mark.parametrize(
    "args",
    [("--label", f"seven{OSC}"), ("--attribute", f"Smiling{OSC}=1")],
    ids=["label", "attribute"],
)
def test_names_in_errors_are_escaped_not_sent_to_the_terminal(digits_run, tmp_path, args):
    proc = run("sample", str(digits_run / "pipeline.safetensors"), *args, "-o", str(tmp_path / "s.png"), check=False)
    assert proc.returncode != 0
    assert "\x1b" not in proc.stderr and "\x07" not in proc.stderr
    if args[0] == "--label":  # (this pipeline has no attributes, so that error names none)
        assert "\\x1b]0;pwned\\x07" in proc.stderr  # shown, as an escape


def test_fit_prior_into_a_run_waits_for_no_one_it_is_refused_while_the_run_is_in_use(digits_run):
    """fit-prior -o RUN/pipeline.safetensors during a resume wrote step-60 weights over the step-100 run."""
    pipeline = digits_run / "pipeline.safetensors"
    before = pipeline.read_bytes()
    with run_lock(digits_run):  # as a training process holds it
        proc = run("fit-prior", str(pipeline), "-O", "components=2", "--max-images", "64", "-o", str(pipeline), check=False)
        assert proc.returncode == 1 and "is in use by another stagegen command" in proc.stderr
        assert pipeline.read_bytes() == before
        report = run("report", str(digits_run), "--no-interpolations", check=False)
        assert report.returncode == 1 and "is in use by another stagegen command" in report.stderr
        assert run("report", str(digits_run), "--no-interpolations", "-o", str(digits_run.parent / "r.html")).returncode == 0
    proc = run("fit-prior", str(pipeline), "-O", "components=2", "--max-images", "64", "-o", str(pipeline))
    assert "fitted a gmm prior" in proc.stdout and pipeline.read_bytes() != before


def test_eval_of_a_run_in_use_prints_its_table_and_keeps_no_record(digits_run):
    pipeline = digits_run / "pipeline.safetensors"
    with run_lock(digits_run):
        proc = run("eval", str(pipeline), "--metrics", "psnr", "--limit", "32")
    assert "recon_psnr" in proc.stdout and "not kept beside the run" in proc.stderr
    assert not (digits_run / "eval.json").exists()


def test_a_resource_option_of_the_wrong_kind_is_a_usage_error(digits_run):
    proc = run("eval", str(digits_run / "pipeline.safetensors"), "--resource-option", 'classifier=["x"]', check=False)
    assert proc.returncode == 2 and "classifier takes a name or a path, not ['x']" in proc.stderr


def test_a_stage_that_joins_after_the_last_step_is_said_at_the_start(tmp_path):
    proc = run("train", "--steps", "2", "--out", str(tmp_path / "r"), *SMALL, "-O", "1.train_from=999999999999")
    assert "not trained in this run's 2 steps: stage 1 (resnet-l1) joins at step 999,999,999,999" in proc.stderr


def test_a_sample_path_batch_no_machine_holds_is_refused_before_training(tmp_path):
    proc = run("train", "--steps", "2", "--out", str(tmp_path / "r"), *SMALL, "-O", "train.sample_path_batch=1000000000",
               check=False)  # fmt: skip
    assert proc.returncode == 1 and "train.sample_path_batch=1,000,000,000: one pass of that many images" in proc.stderr
    assert "unexpected" not in proc.stderr and not (tmp_path / "r" / "metrics.jsonl").exists()


def test_the_success_line_of_fit_prior_escapes_what_it_quotes(digits_run, tmp_path):
    out = tmp_path / f"p{OSC}.safetensors"
    proc = run("fit-prior", str(digits_run / "pipeline.safetensors"), "-O", "components=2", "--max-images", "64", "-o", str(out))
    assert "\x1b" not in proc.stdout and "\\x1b" in proc.stdout and out.is_file()
