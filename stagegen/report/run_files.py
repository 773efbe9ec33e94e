"""What a run directory holds, read for the report: the configuration, the metrics log, the
grids over time, the pipeline file and the latest evaluation.

Everything is read bounded (a metrics line of a megabyte at most, the curves thinned to what a
plot shows, config files of 16 MiB) and
never through a link inside the directory (a run directory from elsewhere could point
``config.json`` at a private file, which the report would then inline for sharing).
"""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..files import atomic_write, read_text_file

__all__ = ["EVAL_RECORD", "RunFiles", "read_run", "record_eval"]

#: the latest `stagegen eval` of a run's pipeline, written beside it
EVAL_RECORD = "eval.json"
PIPELINE_FILE = "pipeline.safetensors"
MAX_CONFIG_BYTES = 16 * 2**20
STEP_GRID = re.compile(r"^(step|recon)_(\d{1,12})\.png$")


#: the report reads at most this much of metrics.jsonl (a 100,000-step run logs a few MB)
MAX_METRICS_BYTES = 256 * 2**20
#: logged steps kept for the curves: a longer log is thinned evenly (every 2nd, 4th, ... line)
MAX_POINTS = 2000
#: distinct logged names drawn (a run logs a few dozen); names past it are counted, not drawn
MAX_SERIES = 120
MAX_NAME = 100  # characters of a logged name
MAX_COUNTED = 10_000  # names past MAX_SERIES counted (kept in a set of at most a megabyte)
#: a step or value past these is not one a run logs (and would overflow a float or a plot's axis)
MAX_STEP, MAX_VALUE = 10**15, 1e100


@dataclass
class RunFiles:
    """A run directory's contents, as the report shows them."""

    run_dir: Path
    config: dict[str, Any]
    metrics: list[dict[str, float]] = field(default_factory=list)  # logged steps, numbers only, thinned to MAX_POINTS
    last_metrics: dict[str, float] = field(default_factory=dict)  # the last logged step, never thinned away
    events: dict[str, dict[str, Any]] = field(default_factory=dict)  # the last of each event (prior fits, ...)
    event_counts: dict[str, int] = field(default_factory=dict)
    metrics_notes: list[str] = field(default_factory=list)  # what the curves leave out of metrics.jsonl, and why
    sample_grids: dict[int, Path] = field(default_factory=dict)  # step -> samples/step_N.png
    recon_grids: dict[int, Path] = field(default_factory=dict)  # step -> samples/recon_N.png
    final_samples: Path | None = None
    final_reconstructions: Path | None = None
    pipeline: Path | None = None
    evaluation: dict[str, Any] | None = None


def _number(value: Any) -> float | None:
    """A logged value as a float the curves can draw, or None (a bool, NaN, 10**400, text)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, int) and abs(value) > MAX_VALUE:
        return None  # float() of it would overflow
    value = float(value)
    return value if math.isfinite(value) and abs(value) <= MAX_VALUE else None


class _Thinned:
    """Every ``stride``-th of the records added, at most ``most`` of them: the stride doubles
    (and every other kept record goes) whenever they would be more."""

    def __init__(self, most: int):
        self.most, self.stride, self.seen, self.kept = most, 1, 0, []

    def add(self, record: dict[str, float]) -> None:
        if self.seen % self.stride == 0:
            self.kept.append(record)
            if len(self.kept) > self.most:
                self.kept, self.stride = self.kept[::2], self.stride * 2
        self.seen += 1


def _read_metrics(run: RunFiles, path: Path) -> None:
    """The logged steps and events of ``path``, streamed: memory stays bounded by what the
    report shows (MAX_POINTS steps of MAX_SERIES names), whatever the file holds."""
    from ..train.logging import MAX_METRICS_LINE, bounded_lines

    if not path.is_file():
        return
    names: set[str] = set()
    dropped: set[str] = set()  # names past MAX_SERIES, only to count them (bounded too)
    thinned = _Thinned(MAX_POINTS)
    read = 0
    with open(path, "rb") as f:
        for line in bounded_lines(f, MAX_METRICS_LINE):
            read += len(line or b"")
            if read > MAX_METRICS_BYTES:
                run.metrics_notes.append(
                    f"metrics.jsonl is over {MAX_METRICS_BYTES // 2**20} MB; the curves show its first "
                    f"{MAX_METRICS_BYTES // 2**20} MB"
                )
                break
            try:
                record = json.loads(line) if line else None
            except (ValueError, RecursionError):
                continue  # a torn last line of a killed run, or not ours
            if not isinstance(record, dict):
                continue
            step = record.get("step")
            if isinstance(step, bool) or not isinstance(step, int) or not 0 <= step <= MAX_STEP:
                continue
            event = record.get("event")
            if event is not None:
                if isinstance(event, str) and (event in run.event_counts or len(run.event_counts) < MAX_SERIES):
                    run.events[event] = record
                    run.event_counts[event] = run.event_counts.get(event, 0) + 1
                continue
            numbers = {}
            for key, value in record.items():
                number = _number(value)
                if number is None or len(key) > MAX_NAME:
                    continue
                if key not in names:
                    if len(names) >= MAX_SERIES:
                        if len(dropped) < MAX_COUNTED:
                            dropped.add(key)
                        continue
                    names.add(key)
                numbers[key] = number
            thinned.add(numbers)
            run.last_metrics = numbers
    run.metrics = thinned.kept
    if thinned.stride > 1:
        run.metrics_notes.append(
            f"{thinned.seen:,} logged steps: the curves show every {thinned.stride}th ({len(thinned.kept):,})"
        )
    if dropped:
        more = "at least " if len(dropped) >= MAX_COUNTED else ""
        run.metrics_notes.append(
            f"metrics.jsonl logs {more}{len(names) + len(dropped):,} distinct values; the curves show the first {MAX_SERIES}"
        )


def _grids(folder: Path) -> tuple[dict[int, Path], dict[int, Path]]:
    samples, recons = {}, {}
    if folder.is_dir():
        for path in folder.iterdir():
            match = STEP_GRID.match(path.name)
            if match and path.is_file():
                (samples if match[1] == "step" else recons)[int(match[2])] = path
    return dict(sorted(samples.items())), dict(sorted(recons.items()))


def read_run(run_dir: str | Path) -> RunFiles:
    """The run directory's files; one ValueError naming what is missing or not a run's."""
    from ..train.run_dir import check_run_directory

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ValueError(f"{run_dir} is not a folder: give the run directory `stagegen train --out` wrote")
    config_path = run_dir / "config.json"
    if not config_path.is_file():
        raise ValueError(
            f"{run_dir} holds no config.json, so it is not a stagegen run directory (the folder `train --out` names)"
        )
    check_run_directory(run_dir)
    try:
        config = json.loads(read_text_file(config_path, "the run's configuration", MAX_CONFIG_BYTES))
    except (ValueError, RecursionError) as exc:
        raise ValueError(f"{config_path} is not the JSON a run writes ({exc})") from None
    if not isinstance(config, dict):
        raise ValueError(f"{config_path} is not the JSON object a run writes")
    samples, recons = _grids(run_dir / "samples")
    run = RunFiles(run_dir, config, sample_grids=samples, recon_grids=recons)
    _read_metrics(run, run_dir / "metrics.jsonl")
    for name, attr in (
        ("samples.png", "final_samples"),
        ("reconstructions.png", "final_reconstructions"),
        (PIPELINE_FILE, "pipeline"),
    ):
        if (run_dir / name).is_file():
            setattr(run, attr, run_dir / name)
    if (run_dir / EVAL_RECORD).is_file():
        try:
            record = json.loads(read_text_file(run_dir / EVAL_RECORD, "the run's evaluation", MAX_CONFIG_BYTES))
            run.evaluation = record if isinstance(record, dict) and isinstance(record.get("report"), dict) else None
        except (ValueError, RecursionError):
            run.evaluation = None  # a foreign or torn record: the report says there is no evaluation
    return run


def run_directory_of(pipeline_path: str | Path) -> Path | None:
    """The run directory a pipeline file was trained in (its own ``pipeline.safetensors``), else None."""
    path = Path(pipeline_path)
    if path.name == PIPELINE_FILE and (path.parent / "config.json").is_file():
        return path.parent
    return None


def record_eval(pipeline_path: str | Path, report: dict[str, Any], command: str) -> Path | None:
    """Keep an evaluation of a run's pipeline beside it (``eval.json``, atomically), for the run's
    report; other pipeline files are left alone. Returns where it went."""
    run_dir = run_directory_of(pipeline_path)
    if run_dir is None:
        return None
    record = {"command": command, "time": time.strftime("%Y-%m-%d %H:%M:%S"), "report": report}
    path = run_dir / EVAL_RECORD
    atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(record, indent=1, default=str) + "\n"))
    return path
