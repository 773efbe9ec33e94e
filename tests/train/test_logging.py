"""metrics.jsonl on resume: the lines past the checkpoint are dropped by streaming the file, so
a huge or hostile log costs time, never memory; lines that are not ours are dropped."""

import json

from stagegen.train.logging import truncate_metrics

from ..hostile import run_bounded


def test_lines_up_to_the_step_are_kept_and_foreign_ones_dropped(tmp_path):
    path = tmp_path / "metrics.jsonl"
    lines = [
        json.dumps({"step": 1, "loss": 1.0}),
        '{"step": ' + "9" * 5000 + "}",  # "Exceeds the limit (4300 digits)" broke --resume before
        "[1, 2]",
        json.dumps({"step": 2, "loss": 0.5}),
        json.dumps({"step": 3, "loss": 0.2}),
        '{"step": 4, "lo',  # torn by a kill
    ]
    path.write_text("\n".join(lines))
    truncate_metrics(path, 2)
    assert [json.loads(line)["step"] for line in path.read_text().splitlines()] == [1, 2]


def test_a_sparse_log_of_gigabytes_is_streamed_under_a_memory_limit(tmp_path):
    """A 2 GiB sparse metrics.jsonl (one 'line' of zeros) made --resume fail with MemoryError."""
    path = tmp_path / "metrics.jsonl"
    with open(path, "wb") as f:
        f.write((json.dumps({"step": 1, "loss": 1.0}) + "\n").encode())
        f.truncate(2 * 2**30)
        f.seek(0, 2)
        f.write((json.dumps({"step": 2, "loss": 1.0}) + "\n").encode())
    code = (
        "from stagegen.train.logging import truncate_metrics\nfrom pathlib import Path\ntruncate_metrics(Path(sys.argv[1]), 5)\n"
    )
    proc = run_bounded(code, str(path), memory_bytes=2**30, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert [json.loads(line)["step"] for line in path.read_text().splitlines()] == [1]


def test_a_short_runs_progress_bar_moves_between_metrics_lines(tmp_path, monkeypatch):
    """A 32-step run with log_every=50 showed its first step's loss until the end."""
    from stagegen.train import train
    from stagegen.train.logging import Progress

    from ..conftest import tiny_run_config

    shown = []
    monkeypatch.setattr(Progress, "show", lambda self, values: shown.append(values["loss"]))
    train(tiny_run_config(steps=32, log_every=50, progress=True), tmp_path / "run")
    assert len(shown) >= 20 and len(set(shown)) >= 20
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert len([line for line in lines if '"loss"' in line]) == 2  # the log keeps its own interval (first step, last)


def test_a_run_without_a_bar_says_where_it_is_every_so_often(capsys, monkeypatch):
    from stagegen.train.logging import Progress

    monkeypatch.setattr(Progress, "LINE_EVERY", 0.0)
    progress = Progress(total=10, initial=0, enabled=False, lines=True)
    progress.show({"loss": 0.25})
    progress.update()
    err = capsys.readouterr().err
    assert err.startswith("step 1/10, ") and "steps/s, about " in err and "left at this speed; loss 0.25" in err
    quiet = Progress(total=10, initial=0, enabled=False, lines=False)  # another rank's: silent
    quiet.update()
    assert capsys.readouterr().err == ""
