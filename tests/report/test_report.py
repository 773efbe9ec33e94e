"""`stagegen report`: the page a run leaves, what it shows and what it refuses to read."""

import base64
import json
import os
import re
import shutil

import pytest

from stagegen.report import build_report, record_eval, write_report
from stagegen.report.figures import curve_groups
from stagegen.report.page import png_size

from ..cli.test_commands import run

IMG = re.compile(r'<img[^>]* src="([^"]*)"')


def _images(text):
    return IMG.findall(text)


def test_the_run_writes_a_self_contained_report_of_every_part(finished_run):
    text = (finished_run / "report.html").read_text()
    for section in ("curves", "samples", "reconstructions", "final", "prior", "evaluation", "interpolations", "labels"):
        assert f'id="{section}"' in text, section
    sources = _images(text)
    # curves: the run's and each stage's; grids at steps 4, 8, 12 (samples and reconstructions);
    # samples.png and reconstructions.png; two interpolation paths; the digits' rows per label
    assert len(sources) == 3 + 3 + 3 + 2 + 2 + 1
    for src in sources:
        assert src.startswith("data:image/png;base64,")  # nothing is fetched from anywhere
        assert png_size(base64.b64decode(src.split(",", 1)[1])) is not None
    assert "<script" not in text and "http://" not in text and "https://" not in text
    assert "step 12" in text and "fitted gmm" not in text  # captions; the prior's fit is a table
    assert "prior_fit_images" in text and "no evaluation yet" in text
    assert os.path.getsize(finished_run / "report.html") < 5 * 2**20


def test_curves_are_grouped_by_stage_with_every_logged_term(finished_run):
    metrics = [json.loads(line) for line in (finished_run / "metrics.jsonl").read_text().splitlines()]
    groups = curve_groups([m for m in metrics if "event" not in m])
    assert list(groups)[:3] == ["run", "stage 0", "stage 1"]
    assert "loss" in groups["run"] and "lr" in groups["run"]
    assert "l1" in groups["stage 1"] and "step" not in groups["run"]
    steps, values = groups["stage 1"]["l1"]
    assert steps == sorted(steps) and len(steps) == len(values) >= 6


def test_an_evaluation_of_the_runs_pipeline_appears_in_its_report(finished_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(finished_run, run_dir)
    report = {
        "stages": [
            {"stage": 0, "type": "vae", "resolution": 16, "recon_psnr": 21.5},
            {"stage": 1, "type": "resnet-l1", "resolution": 16, "recon_psnr": 23.25},
        ],
        "n_real": 64,
        "n_samples": 64,
        "prior": "gmm",
        "temperature": 1.0,
        "data": "digits, test split",
        "better": {"recon_psnr": "higher"},
        "prior_fit_images": 20000.0,
    }
    assert record_eval(run_dir / "pipeline.safetensors", report, "stagegen eval x") == run_dir / "eval.json"
    assert record_eval(tmp_path / "elsewhere.safetensors", report, "stagegen eval y") is None  # not a run's pipeline
    text = build_report(run_dir, interpolations=False)
    assert "23.250" in text and "digits, test split" in text and "no evaluation yet" not in text
    # one row per value, one column per stage, and which way is better beside each value
    assert "<th class=name>value</th><th class=name>better</th><th>0 vae 16px</th><th>1 resnet-l1 16px</th>" in text
    assert "<td class=name>recon_psnr</td><td class=name>higher</td><td>21.500</td><td>23.250</td>" in text
    assert "prior_fit_images: 20,000" in text and "2e+04" not in text  # a count reads as one
    assert "<div class=scroll><table>" in text  # a wide table scrolls in its box, not past the window
    (run_dir / "eval.json").write_text('{"report": {"stages": 5}}')  # foreign: said, not shown, no crash
    assert "not a report stagegen wrote" in build_report(run_dir, interpolations=False)


def test_file_contents_are_escaped_and_links_are_refused(finished_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(finished_run, run_dir)
    config = json.loads((run_dir / "config.json").read_text())
    config["data"]["name"] = "<img src=x onerror=alert(1)>"
    (run_dir / "config.json").write_text(json.dumps(config))
    text = build_report(run_dir, interpolations=False)
    assert "<img src=x" not in text and "&lt;img src=x" in text

    secret = tmp_path / "secret.txt"
    secret.write_text("do not share")
    (run_dir / "config.json").unlink()
    (run_dir / "config.json").symlink_to(secret)
    with pytest.raises(ValueError, match="symbolic link"):
        build_report(run_dir)


def test_a_run_without_grids_metrics_or_pipeline_still_reports_what_it_has(finished_run, tmp_path):
    run_dir = tmp_path / "early"
    run_dir.mkdir()
    shutil.copy(finished_run / "config.json", run_dir)
    (run_dir / "metrics.jsonl").write_text('{"step": 1, "loss": 1.5}\n{"torn": ')  # a killed run's torn last line
    path = write_report(run_dir, tmp_path / "out" / "page.html")
    text = path.read_text()
    assert "no grids were written" in text and "no pipeline file yet" in text and len(_images(text)) == 1

    with pytest.raises(ValueError, match="not a stagegen run directory"):
        build_report(tmp_path / "out")


def test_the_command_writes_the_page_and_says_where(finished_run, tmp_path):
    out = tmp_path / "shared.html"
    proc = run("report", str(finished_run), "-o", str(out))
    assert f"wrote {out}" in proc.stdout and out.is_file()
    assert out.read_text().count("data:image/png;base64,") == 14
    proc = run("report", str(tmp_path), check=False)
    assert proc.returncode == 1 and "not a stagegen run directory" in proc.stderr
