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
    from ..report import write_report

    start = time.perf_counter()
    path = write_report(run_dir, out, interpolations=not no_interpolations)
    size = path.stat().st_size
    click.echo(f"wrote {path} ({size / 2**20:.1f} MB in {time.perf_counter() - start:.1f} s)")
