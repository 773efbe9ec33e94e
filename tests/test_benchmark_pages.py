"""docs/results.md, docs/performance.md and the README's figures are rendered from the committed
files under benchmarks/results/ (benchmarks/pages.py): the pages agree with the files, and an
edit by hand, a figure with no file behind it or a marker naming nothing is caught."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import pages  # noqa: E402


def test_the_published_pages_agree_with_the_committed_files():
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "quality.py"), "--check"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert pages.check() == []  # performance.md and the README too


def test_a_figure_edited_by_hand_fails_the_check(tmp_path):
    text = (ROOT / "docs" / "results.md").read_text()
    marked = pages.FIG.search(text)
    assert marked is not None, "docs/results.md holds no marked figure"
    edited = text[: marked.start("text")] + "9" + marked["text"] + text[marked.end("text") :]
    page = tmp_path / "results.md"
    page.write_text(edited)
    problems = pages.check([str(page)])
    assert len(problems) == 1 and "the page says" in problems[0]
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "pages.py"), "--check", str(page)], capture_output=True, text=True
    )
    assert proc.returncode == 1 and "the files say" in proc.stderr
    subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "pages.py"), "--render", str(page)], check=True, capture_output=True
    )
    assert page.read_text() == text  # rendering writes the files' figure back


def test_a_table_edited_by_hand_fails_the_check(tmp_path):
    text = (ROOT / "docs" / "performance.md").read_text()
    table = pages.TABLE.search(text)
    edited = text[: table.start("text")] + table["text"].replace("|", "| x", 1) + text[table.end("text") :]
    page = tmp_path / "performance.md"
    page.write_text(edited)
    assert any("the page says" in p for p in pages.check([str(page)]))


def test_a_figure_outside_the_markers_has_no_file_behind_it(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "Sampling runs at 360 images/s and the critic scores 0.62, 12% better.\n"
        "`--time-budget 10m` and `0.5` are settings, [a link](x/1.5.md) is a link,\n"
        "```\npython x.py --lr 0.001\n```\n"
    )
    found = [figure for _, figure in pages.unmarked_figures(page.read_text())]
    assert found == ["360 images/s", "0.62", "12%"]
    assert len(pages.check([str(page)])) == 3


def test_markers_that_name_nothing_say_so(tmp_path, monkeypatch):
    monkeypatch.setattr(pages, "RESULTS", tmp_path)
    pages.load.cache_clear()
    (tmp_path / "bench.json").write_text(json.dumps({"rows": [{"rate": 12.345}], "runs": {"a b": {"x": 1}}}))
    assert pages.render("<!--fig bench rows.0.rate .1f-->?<!--/fig-->") == "<!--fig bench rows.0.rate .1f-->12.3<!--/fig-->"
    assert pages.lookup(pages.load("bench"), "runs.0.x") == 1  # an object's values by position
    with pytest.raises(pages.PageError, match="no 'speed'"):
        pages.render("<!--fig bench rows.0.speed .1f-->?<!--/fig-->")
    with pytest.raises(pages.PageError, match="does not exist"):
        pages.render("<!--fig missing rows.0.rate .1f-->?<!--/fig-->")
    pages.load.cache_clear()


def test_figure_formats():
    assert pages.format_figure({"values": [1.0, 2.0, 3.0], "mean": 2.0, "sd": 1.0}, "pm.2f") == "2.00 ± 1.00"
    assert pages.format_figure([0.5], "pm.2f") == "0.50"  # one run: its value, no spread
    assert pages.format_figure([1.0, 3.0], "mean.1f") == "2.0"
    assert pages.format_figure(177.4, "dur") == "2 min 57 s" and pages.format_figure(42, "dur") == "42 s"
    assert pages.format_figure(0.9345, ".1%") == "93.5%" and pages.format_figure(None, ".2f") == "n/a"


def test_a_figure_can_be_the_ratio_of_two_values(tmp_path, monkeypatch):
    monkeypatch.setattr(pages, "RESULTS", tmp_path)
    pages.load.cache_clear()
    (tmp_path / "speed.json").write_text(json.dumps({"rows": [{"rate": 30.0}, {"rate": 20.0}]}))
    assert pages.render("<!--fig speed rows.0.rate/rows.1.rate .2f-->?<!--/fig-->").endswith("-->1.50<!--/fig-->")
    pages.load.cache_clear()
