"""`stagegen report RUN_DIR`: one self-contained HTML page of a training run, to open or share.

It shows the run's header and configuration, every logged value over training (one panel per
loss term and diagnostic, per stage), the sample and reconstruction grids over time, the
prior's fit, the latest `stagegen eval` of the run's pipeline (``eval.json``), and an
interpolation strip through every stage; for a pipeline with a prior per label, one row of
samples per label. `stagegen train` writes it as ``report.html`` at the end of a run.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from ..files import atomic_write
from .page import Page
from .run_files import EVAL_RECORD, RunFiles, read_run, record_eval

__all__ = ["EVAL_RECORD", "REPORT_FILE", "build_report", "record_eval", "write_report"]

REPORT_FILE = "report.html"
#: grids over time shown at most (evenly spaced, the first and the last always)
MAX_GRIDS = 12
MAX_IMAGE_BYTES = 8 * 2**20  # a grid is tens of kilobytes; anything this large is not one of ours
INTERPOLATIONS, INTERPOLATION_STEPS = 2, 10
#: a per-label grid shows at most this many labels, of this many samples each
MAX_LABEL_ROWS, LABEL_SAMPLES = 20, 10
#: the evaluation table shows at most this many rows and value columns (a pipeline has at most
#: 32 stages, and eval's metrics fill a dozen columns; an eval.json with more was not written by eval)
MAX_EVAL_ROWS, MAX_EVAL_COLUMNS, MAX_NOTES = 64, 40, 30
#: a curve panel per logged name, at most this many in one figure (the rest are said)
MAX_PANELS = 24


def _spread(steps: list[int], most: int) -> list[int]:
    if len(steps) <= most:
        return steps
    picks = {steps[round(i * (len(steps) - 1) / (most - 1))] for i in range(most)}
    return sorted(picks)


def _read_png(path: Path) -> bytes | None:
    if path.stat().st_size > MAX_IMAGE_BYTES:
        return None
    return path.read_bytes()


def _image(page: Page, path: Path, caption: str) -> None:
    data = _read_png(path)
    if data is None:
        page.paragraph(f"{caption}: {path.name} is over {MAX_IMAGE_BYTES // 2**20} MB, left out", note=True)
    else:
        page.image(data, caption)


def _overview(page: Page, run: RunFiles) -> None:
    pipeline, train, data = (run.config.get(k) or {} for k in ("pipeline", "train", "data"))
    stages = pipeline.get("stages") or []
    last = run.last_metrics
    rows = [
        ["run directory", str(run.run_dir.resolve())],
        ["stages", " -> ".join(str(s.get("type", "?")) for s in stages if isinstance(s, dict))],
        ["prior", str((pipeline.get("prior") or {}).get("type", "?"))],
        ["data", f"{data.get('name', '?')} ({data.get('split', '?')} split) at {pipeline.get('image_size', '?')}px"],
        ["steps", f"{int(last.get('step', 0))} of {train.get('steps', '?')}, batch {train.get('batch_size', '?')}"],
    ]
    if "loss" in last:
        rows.append(["final loss", f"{last['loss']:.4g}"])
    if "images_per_second" in last:
        rows.append(["images/s (last interval)", f"{last['images_per_second']:.0f}"])
    page.table(None, rows)
    page.preformatted(run.config, "the full configuration (config.json)")


def _curves(page: Page, run: RunFiles) -> None:
    from .figures import curve_groups, curves_png

    page.heading("Training curves", "curves")
    groups = curve_groups(run.metrics)
    if not groups:
        page.paragraph("metrics.jsonl holds no logged steps yet.", note=True)
    for line in run.metrics_notes:
        page.paragraph(line, note=True)
    stages = (run.config.get("pipeline") or {}).get("stages") or []
    for name, series in groups.items():
        title = "the run: total loss, learning rate, throughput"
        if name.startswith("stage "):
            k = int(name.split()[1])
            kind = stages[k].get("type", "?") if k < len(stages) and isinstance(stages[k], dict) else "?"
            title = f"stage {k} ({kind}): loss terms and diagnostics"
        if len(series) > MAX_PANELS:
            title += f"; the first {MAX_PANELS} of {len(series)} logged values"
            series = dict(list(series.items())[:MAX_PANELS])
        page.image(curves_png(series), title, pixelated=False)


def _grids_over_time(page: Page, run: RunFiles) -> None:
    page.heading("Samples over training", "samples")
    page.paragraph(
        "The same latents at every step, one row per stage (coarse to fine); the first row's label says which prior drew "
        "them (before the final fit: the run's prior refitted to recent posteriors)."
    )
    if not run.sample_grids:
        page.paragraph("no grids were written during training (train.sample_every is 0 or larger than the run).", note=True)
    for step in _spread(list(run.sample_grids), MAX_GRIDS):
        _image(page, run.sample_grids[step], f"step {step}")
    if run.recon_grids:
        page.heading("Reconstructions over training", "reconstructions")
        page.paragraph("The same training images (first row), then each stage's reconstruction.")
        for step in _spread(list(run.recon_grids), MAX_GRIDS):
            _image(page, run.recon_grids[step], f"step {step}")
    page.heading("The finished pipeline", "final")
    for path, caption in ((run.final_samples, "samples.png"), (run.final_reconstructions, "reconstructions.png")):
        if path is not None:
            _image(page, path, caption)


def _prior(page: Page, run: RunFiles) -> None:
    from ..metrics.evaluate import format_value

    page.heading("The prior's fit", "prior")
    fit = run.events.get("prior_fit")
    refits = run.event_counts.get("sample_prior_fit", 0)
    if fit is not None:
        rows = [[k, format_value(v)] for k, v in list(fit.items())[:MAX_NOTES] if k != "event"]
        page.table(["final fit", ""], rows)
    else:
        prior = ((run.config.get("pipeline") or {}).get("prior") or {}).get("type", "?")
        page.paragraph(f"no final fit is logged (the {prior} prior needs none, or the run has not finished).", note=True)
    if refits:
        page.paragraph(f"{refits} refits of the sample path's prior to recent posteriors during training.")
    nonfinite = run.event_counts.get("nonfinite", 0)
    if nonfinite:
        page.paragraph(f"{nonfinite} steps were skipped for non-finite values (see metrics.jsonl).", note=True)


def _evaluation(page: Page, run: RunFiles) -> None:
    from ..metrics.evaluate import better_text, format_value, report_notes, table_columns

    page.heading("Evaluation", "evaluation")
    if run.evaluation is None:
        page.paragraph(f"no evaluation yet: `stagegen eval {run.run_dir / 'pipeline.safetensors'}` adds one here.", note=True)
        return
    report: dict[str, Any] = run.evaluation["report"]
    try:
        stages = report["stages"][:MAX_EVAL_ROWS]
        columns = table_columns({"stages": stages})
        shown = columns[:MAX_EVAL_COLUMNS]
        better = report.get("better") if isinstance(report.get("better"), dict) else {}
        # one row per value and one column per stage: a pipeline has few stages and many values,
        # so the table stays narrow and the names stay readable
        head = [
            "value",
            "better",
            *(f"{format_value(r['stage'])} {format_value(r['type'])} {format_value(r['resolution'])}px" for r in stages),
        ]
        rows = [[c[:60], better_text(better.get(c)), *(format_value(r.get(c)) for r in stages)] for c in shown]
        notes = report_notes(report)
    except (KeyError, TypeError, ValueError, AttributeError):
        page.paragraph(f"{EVAL_RECORD} is not a report stagegen wrote; left out.", note=True)
        return
    page.paragraph(
        f"{str(run.evaluation.get('command', 'stagegen eval'))[:500]} ({format_value(run.evaluation.get('time', '?'))})"
    )
    page.table(head, rows, name_columns=2)
    if len(report["stages"]) > len(stages) or len(columns) > len(shown):
        page.paragraph(
            f"{EVAL_RECORD} holds {len(report['stages']):,} rows; the table shows the first {len(stages)}, and "
            f"{len(shown)} of their {len(columns):,} columns",
            note=True,
        )
    for line in notes[:MAX_NOTES]:
        page.paragraph(line[:300], note=True)


def _from_pipeline(page: Page, run: RunFiles) -> None:
    """The sections drawn from the pipeline file: interpolations, and each label's samples."""
    from .. import load

    page.heading("Interpolations", "interpolations")
    if run.pipeline is None:
        page.paragraph("no pipeline file yet (the run has not finished).", note=True)
        return
    try:
        pipe = load(run.pipeline)
    except (ValueError, RuntimeError, OSError) as exc:  # a file that does not load
        page.paragraph(f"no interpolation: {exc}", note=True)
        return
    _interpolations(page, pipe)
    if pipe.labels:
        _labels(page, pipe)


def _labels(page: Page, pipe, seed: int = 0) -> None:
    import torch

    from ..images import save_grid

    page.heading("Samples per label", "labels")
    if pipe.conditional is not None:
        drawn = (
            f"drawn from that label's own {pipe.config.conditional.prior.type} prior (fitted ex post to the posteriors of "
            "its training images)"
        )
    else:
        drawn = f"drawn from the {pipe.config.prior.type} prior"
    if pipe.label_conditioned:
        drawn += ", decoded by the label-conditioned trunk with that label"
    page.paragraph(
        f"One row per label, each {drawn} and through every stage; the last stage is shown "
        f"(`stagegen sample PIPELINE --label all`), seed {seed}."
    )
    labels = pipe.labels[:MAX_LABEL_ROWS]
    with torch.inference_mode(), tempfile.TemporaryDirectory() as tmp:
        rows = [pipe.sample(LABEL_SAMPLES, seed=seed, label=name) for name in labels]
        path = save_grid(rows, Path(tmp) / "labels.png", labels=[f"label {name}" for name in labels])
        page.image(
            path.read_bytes(), f"{len(labels)} of {len(pipe.labels)} labels" if len(labels) < len(pipe.labels) else "every label"
        )


def _interpolations(page: Page, pipe, seed: int = 0) -> None:
    import torch

    from ..images import save_grid

    try:
        ends = pipe.prior.sample(2 * INTERPOLATIONS, torch.Generator().manual_seed(seed)).to(pipe.device)
    except ValueError as exc:  # an unfitted prior
        page.paragraph(f"no interpolation: {exc}", note=True)
        return
    page.paragraph(
        f"Spherical interpolation between pairs of latents drawn from the pipeline's {pipe.config.prior.type} prior "
        f"(seed {seed}); each block is one path through every stage."
    )
    with torch.inference_mode(), tempfile.TemporaryDirectory() as tmp:
        for r in range(INTERPOLATIONS):
            label = r % len(pipe.labels) if pipe.label_conditioned else None  # a CVAE decodes a path with one class
            stages = pipe.interpolate(ends[2 * r], ends[2 * r + 1], steps=INTERPOLATION_STEPS, return_stages=True, label=label)
            path = save_grid(stages, Path(tmp) / f"path{r}.png", labels=pipe.row_labels())
            page.image(path.read_bytes(), f"path {r + 1}")


def build_report(run_dir: str | Path, interpolations: bool = True) -> str:
    """The report of a run directory, as HTML text."""
    run = read_run(run_dir)
    page = Page(f"stagegen run: {run.run_dir.resolve().name}")
    _overview(page, run)
    _curves(page, run)
    _grids_over_time(page, run)
    _prior(page, run)
    _evaluation(page, run)
    if interpolations:
        _from_pipeline(page, run)
    return page.html()


def write_report(run_dir: str | Path, out: str | Path | None = None, interpolations: bool = True) -> Path:
    """Write the run's report (default: ``RUN_DIR/report.html``, atomically); returns its path."""
    text = build_report(run_dir, interpolations)
    path = Path(out) if out is not None else Path(run_dir) / REPORT_FILE
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    return path
