"""`stagegen report`: a run as one HTML page."""

from __future__ import annotations

import time

import click

from .app import cli


@cli.command()
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option("-o", "--out", type=click.Path(dir_okay=False), help="the HTML file (default: RUN_DIR/report.html)")
@click.option("--no-interpolations", is_flag=True, help="leave out the interpolation strips (they load the pipeline)")
def report(run_dir, out, no_interpolations):
    """One self-contained HTML page of a training run: configuration, curves per stage, grids
    over time, the prior's fit, the latest `eval`, interpolations. Opens offline; share the file."""
    from pathlib import Path

    from ..report import REPORT_FILE, write_report
    from ..train.lock import RunLocked, run_lock_for

    start = time.perf_counter()
    try:  # report.html in a run directory is the run's: not while its training (which writes it) goes on
        with run_lock_for(Path(out) if out else Path(run_dir) / REPORT_FILE):
            path = write_report(run_dir, out, interpolations=not no_interpolations)
    except RunLocked as exc:
        raise click.ClickException(f"{exc}; `--out FILE` writes the report elsewhere now") from None
    size = path.stat().st_size
    click.echo(f"wrote {path} ({size / 2**20:.1f} MB in {time.perf_counter() - start:.1f} s)")
