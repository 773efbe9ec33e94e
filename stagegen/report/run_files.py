"""What a run directory holds, read for the report: the configuration, the metrics log, the
grids over time, the pipeline file and the latest evaluation.

Everything is read bounded (a metrics line of a megabyte at most, config files of 16 MiB) and
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

from ..io import atomic_write, read_text_file

__all__ = ["EVAL_RECORD", "RunFiles", "read_run", "record_eval"]

#: the latest `stagegen eval` of a run's pipeline, written beside it
EVAL_RECORD = "eval.json"
PIPELINE_FILE = "pipeline.safetensors"
MAX_CONFIG_BYTES = 16 * 2**20
STEP_GRID = re.compile(r"^(step|recon)_(\d{1,12})\.png$")


@dataclass
class RunFiles:
    """A run directory's contents, as the report shows them."""

    run_dir: Path
    config: dict[str, Any]
    metrics: list[dict[str, float]] = field(default_factory=list)  # one per logged step, numbers only
    events: list[dict[str, Any]] = field(default_factory=list)  # prior fits, non-finite steps
    sample_grids: dict[int, Path] = field(default_factory=dict)  # step -> samples/step_N.png
    recon_grids: dict[int, Path] = field(default_factory=dict)  # step -> samples/recon_N.png
    final_samples: Path | None = None
    final_reconstructions: Path | None = None
    pipeline: Path | None = None
    evaluation: dict[str, Any] | None = None


def _metrics(path: Path) -> tuple[list[dict[str, float]], list[dict[str, Any]]]:
    from ..train.logging import MAX_METRICS_LINE, bounded_lines

    metrics, events = [], []
    if not path.is_file():
        return metrics, events
    with open(path, "rb") as f:
        for line in bounded_lines(f, MAX_METRICS_LINE):
            try:
                record = json.loads(line) if line else None
            except (ValueError, RecursionError):
                continue  # a torn last line of a killed run, or not ours
            if not isinstance(record, dict) or not isinstance(record.get("step"), int):
                continue
            if "event" in record:
                events.append(record)
                continue
            numbers = {
                k: float(v)
                for k, v in record.items()
                if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
            }
            metrics.append(numbers)
    return metrics, events


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
    metrics, events = _metrics(run_dir / "metrics.jsonl")
    samples, recons = _grids(run_dir / "samples")
    run = RunFiles(run_dir, config, metrics, events, samples, recons)
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
