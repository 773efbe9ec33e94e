"""The report is bounded by what it shows, not by what a run directory's files hold: a metrics
log of thousands of names or hundreds of megabytes, an eval.json of thousands of rows, names
that are TeX, numbers that overflow, a PNG that declares itself enormous. Each case is a real
file in a copy of a real run, and the report is built in a fresh process with a memory cap."""

import json
import shutil
import struct
import zlib

import pytest

from stagegen.report import build_report

from ..hostile import run_bounded

BUILD = "import sys\nfrom stagegen.report import write_report\nprint(write_report(sys.argv[1], interpolations=False))\n"


@pytest.fixture
def run_dir(finished_run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(finished_run, copy)
    return copy


def _append(run_dir, *records):
    with open(run_dir / "metrics.jsonl", "a") as f:
        for record in records:
            f.write((record if isinstance(record, str) else json.dumps(record)) + "\n")


def _report(run_dir, memory_bytes=2**30):
    proc = run_bounded(BUILD, str(run_dir), memory_bytes=memory_bytes, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return (run_dir / "report.html").read_text()


def test_a_line_of_two_thousand_names_draws_a_bounded_number_of_panels(run_dir):
    """One 27 KB line of 2,000 keys made a figure of 2,000 panels: killed at 900 s and 2 GB."""
    _append(run_dir, {"step": 13, **{f"stage1/term{i}": float(i) for i in range(2000)}})
    text = _report(run_dir)
    assert "the curves show the first 120" in text
    assert "metrics.jsonl logs 2,0" in text  # how many there were is said (2,000 and the run's own)


def test_an_eval_record_of_thousands_of_rows_makes_a_small_table(run_dir):
    """8,000 rows of one distinct column each made a 550 MB page."""
    rows = [{"stage": i, "type": "vae", "resolution": 16, f"m{i}": 1.0} for i in range(8000)]
    (run_dir / "eval.json").write_text(json.dumps({"command": "stagegen eval", "report": {"stages": rows}}))
    text = _report(run_dir)
    assert "holds 8,000 rows; the table shows the first 64, and 40 of their 64 columns" in text
    assert len(text) < 5 * 2**20


def test_a_list_of_text_in_an_eval_cell_is_shown_as_text(run_dir):
    rows = [{"stage": 0, "type": "vae", "resolution": 16, "odd": ["a", "b"], "psnr": 20.5}]
    (run_dir / "eval.json").write_text(json.dumps({"report": {"stages": rows, "n_real": 1}}))
    text = build_report(run_dir, interpolations=False)
    assert "a / b" in text and "20.500" in text


@pytest.mark.parametrize(
    "line",
    [
        '{"step": 14, "stage1/$\\\\frac{$": 1.0}',  # matplotlib's mathtext, also reachable as a loss's name
        '{"step": 14, "$x^{' + "{" * 400 + '}$": 1.0}',  # mathtext's recursion
        '{"step": 1' + "0" * 400 + ', "loss": 1.0}',  # a step of 10**400, written as an integer
        '{"step": 14, "loss": 1' + "0" * 400 + "}",  # 10**400 as a loss: float() overflows
        '{"step": 14, "loss": 1e308}',
        '{"step": 15, "loss": -1e308}',  # with the line above: an axis of range inf
    ],
    ids=["mathtext", "nested-tex", "huge-step", "huge-int-loss", "max-float", "min-float"],
)
def test_one_hostile_line_leaves_the_rest_of_the_curves(run_dir, line):
    _append(run_dir, line)
    if "-1e308" in line:
        _append(run_dir, '{"step": 16, "loss": 1e308}')
    text = build_report(run_dir, interpolations=False)
    assert text.count("data:image/png;base64,") >= 3 + 3 + 3  # the curves of the run and both stages, the grids


def test_a_metrics_log_of_many_megabytes_is_thinned_within_a_memory_cap(run_dir):
    """50 MB of valid lines took 1.65 GB; the curves keep at most 2,000 points."""
    line = {"step": 0, "loss": 1.0, "lr": 1e-3, "stage0/kl": 2.0, "stage1/l1": 0.5, "images_per_second": 100.0}
    with open(run_dir / "metrics.jsonl", "a") as f:
        for step in range(13, 13 + 150_000):  # about 20 MB
            line["step"] = step
            f.write(json.dumps(line) + "\n")
    text = _report(run_dir, memory_bytes=400 * 2**20)
    assert "logged steps: the curves show every 128th" in text
    assert f"{13 + 150_000 - 1} of" in text  # the overview's last step is the log's last, never thinned away


def _png_header(width, height):
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)) + chunk(b"IEND", b"")


def test_a_png_declaring_sixty_thousand_pixels_a_side_is_left_out(run_dir):
    (run_dir / "samples" / "step_99.png").write_bytes(_png_header(60_000, 60_000))
    text = build_report(run_dir, interpolations=False)
    assert 'width="60000"' not in text
    assert "a PNG of 60,000 x 60,000 pixels is not a grid of stagegen" in text
    assert max(int(w) for w in __import__("re").findall(r'width="(\d+)"', text)) <= 1000
