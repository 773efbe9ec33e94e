"""`stagegen train` and `stagegen fit-prior`."""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime
from pathlib import Path

import click

from .app import COMMAND_STARTED, SEED, cli, data_options, pipeline_data
from .config_flags import config_flags, given_config_fields, refused_on_resume, resumable_flags


@cli.command()
@click.option(
    "--preset",
    "preset_name",
    help="starting configuration (see `stagegen presets`); default: the dataset's own (sharp-digits for the default digits)",
)
@click.option(
    "--stages",
    help="comma-separated stage types, trunk first, e.g. vae,resnet-l1: they replace the starting preset's chain (the dataset's preset unless --preset names one), which keeps its other settings",
)
@click.option(
    "--prior", "prior_name", help="latent prior fitted after training: normal, gmm, latent-vae (see `stagegen plugins`)"
)
@config_flags
@click.option(
    "--config",
    "config_file",
    type=click.Path(exists=True, dir_okay=False),
    help="JSON or TOML file with pipeline/train/data sections",
)
@click.option(
    "-O",
    "--option",
    "options",
    multiple=True,
    metavar="KEY=VALUE",
    help="set any option: resnet-l1.blocks=3, 0.latent_dim=64, 1.losses=l1,adversarial, train.grad_clip=1.0",
)
@click.option("--out", type=click.Path(file_okay=False), help="run directory (default runs/<preset-or-stages>-<time>)")
@click.option(
    "--resume", type=click.Path(exists=True, file_okay=False), help="continue the run in this directory from its last checkpoint"
)
@click.option(
    "--overwrite",
    is_flag=True,
    help="train into an --out that holds an earlier run: delete that run's files first (without it, such an --out is refused)",
)
def train(preset_name, stages, prior_name, config_file, options, out, resume, overwrite, **flags):
    """Train a pipeline and write it, with sample grids and metrics, to a run directory."""
    from ..config.models import read_config_file
    from ..config.presets import compose_run_config, starting_preset
    from ..train import TrainingInterrupted, TrainingStopped
    from ..train import resume as resume_run
    from ..train import train as run_training
    from ..train.lock import RunLocked
    from ..train.run_dir import RunDirectoryInUse

    fields = given_config_fields(flags)
    try:
        if resume and overwrite:
            raise click.UsageError("--resume continues the run in a directory and --overwrite starts a new one there: give one")
        if resume:
            others = {"--preset": preset_name, "--stages": stages, "--prior": prior_name, "--config": config_file, "--out": out}
            given = [flag for flag, value in others.items() if value is not None] + (["-O"] if options else [])
            given += refused_on_resume(flags)
            if given:
                raise click.UsageError(
                    f"{', '.join(given)} cannot be changed when resuming: the run continues with the settings in its "
                    f"config.json. Only {', '.join(resumable_flags())} apply to a resumed run; start a new run "
                    "(without --resume) to change the others"
                )
            overrides = {key.removeprefix("train__"): value for key, value in fields.items()}
            result = resume_run(resume, started=COMMAND_STARTED, **overrides)
        else:
            stage_list = stages.split(",") if stages else None
            from_file = read_config_file(config_file) if config_file else {}  # read once: it may change under us
            config = compose_run_config(preset_name, from_file, stage_list, list(options), prior_name, **fields)
            starting = starting_preset(preset_name, from_file, fields.get("data__name"))
            how = "" if preset_name else " (the dataset's own; --preset chooses another)"
            click.echo(f"preset: {starting}{how}" if starting else "preset: none (the config file lists its stages)", err=True)
            name = (preset_name or "-".join(config.pipeline.stage_names)) if not stages else stages.replace(",", "-")
            run_dir = Path(out) if out else Path("runs") / f"{name}-{datetime.now():%Y%m%d-%H%M%S}"
            result = run_training(config, run_dir, overwrite=overwrite, started=COMMAND_STARTED)
    except TrainingInterrupted as exc:
        click.echo(str(exc), err=True)
        sys.exit(130)
    except (TrainingStopped, RunLocked, RunDirectoryInUse) as exc:
        raise click.ClickException(str(exc)) from None
    if result.pipeline_path is not None:
        last = result.losses[-1] if result.losses else {}
        budget = " (the time budget ended the run early)" if result.stopped_by_budget else ""
        took = _duration(time.monotonic() - COMMAND_STARTED)
        click.echo(f"trained {result.steps} steps{budget}; final loss {last.get('loss', float('nan')):.4f}; the run took {took}")
        click.echo(f"pipeline:        {result.pipeline_path}")
        click.echo(f"samples:         {result.run_dir / 'samples.png'} (one row per stage, coarse to fine)")
        click.echo(f"reconstructions: {result.run_dir / 'reconstructions.png'} (input row, then each stage)")
        if result.report_path is not None:
            click.echo(f"report:          {result.report_path} (the run as one page; open it in a browser)")
    if result.prior_error is not None:
        run = json.loads((result.run_dir / "config.json").read_text())
        prior, data = run["pipeline"]["prior"]["type"], run["data"]["name"]
        raise click.ClickException(
            f"{result.prior_error}. The pipeline was written with its prior unfitted (sampling says so): fit one with "
            f"stagegen fit-prior {result.pipeline_path} --data {data} --prior {prior} -O ... -o {result.pipeline_path}"
        )


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(round(seconds), 60)
    return f"{minutes} min {seconds} s" if minutes else f"{seconds} s"


def data_options_for_fit(f):
    return data_options(f, split="train")  # the prior is fitted to the training posteriors


def _fit_conditional(pipe, dataset, data_name, split, max_images, seed, spec) -> tuple[dict, int, str]:
    """A prior per label and/or attribute directions, whichever the data declares."""
    from ..data.attributes import attributes_of
    from ..data.labels import labels_of
    from ..priors.directions import fit_attribute_directions
    from ..priors.per_label import fit_conditional_prior
    from ..text import shown_names

    labels, attributes = labels_of(dataset), attributes_of(dataset)
    if labels is None and attributes is None:
        missing = getattr(dataset, "attribute_file", None)
        where = (
            f"; its attributes come from {missing.name} beside its images: put the official file in {missing.parent}"
            if missing
            else ""
        )
        raise click.UsageError(
            f"the {data_name} {split} images declare no labels or attributes, so there is nothing to condition on{where}. "
            "Labelled data: digits, mnist, or a folder of class subfolders root/<class>/*.png"
        )
    stats: dict = {}
    done = []
    if labels is not None:
        say = lambda line: click.echo(line, err=True)  # noqa: E731
        stats.update(fit_conditional_prior(pipe, dataset, labels, max_images, seed=seed, prior=spec, progress=say))
        done.append(f"a {spec['type']} prior per label ({len(labels.names)} labels: {shown_names(labels.names, 10)})")
        fitted = int(stats["conditional_fit_images"])
    if attributes is not None:
        if attributes.note:
            click.echo(f"stagegen: {attributes.note}", err=True)
        directions, found = fit_attribute_directions(pipe, dataset, attributes, max_images, seed)
        pipe.set_attributes(directions)
        stats.update(found)
        done.append(f"the latent directions of {int(found['attributes_usable'])} of {len(attributes.names)} attributes")
        fitted = int(found["attribute_images"])
    return stats, fitted, " and ".join(done)


@cli.command(name="fit-prior")
@click.argument("pipeline", type=click.Path(exists=True))
@click.option(
    "--prior",
    "prior_name",
    help="prior type (see `stagegen plugins`); default gmm, or with --conditional the type of the file's own prior",
)
@click.option(
    "--conditional",
    is_flag=True,
    help="fit a prior per label of the (labelled) data instead, so that `sample --label` works, and for data with "
    "attributes (CelebA) their latent directions, for `sample --attribute` and `edit`; the file's own prior is kept",
)
@click.option(
    "-O",
    "--option",
    "options",
    multiple=True,
    metavar="KEY=VALUE",
    help="prior option, e.g. components=20 or prior.components=20",
)
@data_options_for_fit
@click.option(
    "--max-images",
    type=click.IntRange(min=1),
    default=20_000,
    show_default=True,
    help="at most this many images (a seeded subset)",
)
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("-o", "--out", required=True, type=click.Path(dir_okay=False), help="the new pipeline file")
def fit_prior_cmd(pipeline, prior_name, conditional, options, data_name, data_root, split, max_images, seed, out):
    """Fit a latent prior (or, with --conditional, one per label) to a trained pipeline's
    posteriors; write the pipeline with it."""
    from .. import load
    from ..train.lock import RunLocked, run_lock_for

    try:
        with run_lock_for(out):  # -o into a run directory: not while its training (or another fit) writes there
            pipe = load(pipeline)
            _fit_and_save(pipe, prior_name, conditional, options, data_name, data_root, split, max_images, seed, out)
    except RunLocked as exc:
        raise click.ClickException(str(exc)) from None


def _fit_and_save(pipe, prior_name, conditional, options, data_name, data_root, split, max_images, seed, out):
    import time

    from ..config.overrides import set_option
    from ..data import open_dataset
    from ..pipeline.file import save_pipeline
    from ..priors.contract import fit_prior
    from ..text import safe_text

    own = pipe.config.prior
    if prior_name is None:
        prior_name = own.type if conditional else "gmm"
    start_options = dict(own.options) if conditional and prior_name == own.type else {}
    raw: dict = {"pipeline": {"prior": {"type": prior_name, "options": start_options}}}
    for assignment in options:  # the -O grammar of `train`, where a bare key is the prior's
        if "=" not in assignment:
            raise click.BadParameter(f"{assignment!r} must look like KEY=VALUE, e.g. components=20", param_hint="-O")
        set_option(raw, assignment if assignment.startswith("prior.") else f"prior.{assignment}")
    spec = raw["pipeline"]["prior"]
    if not conditional:
        pipe.set_prior(spec)
    data_name, data_root = pipeline_data(pipe, data_name, data_root)
    dataset = open_dataset(data_name, data_root, split, pipe.config.image_size, pipe.config.channels)
    start = time.perf_counter()
    if conditional:
        record = "conditional_prior_fit"
        stats, fitted, what = _fit_conditional(pipe, dataset, data_name, split, max_images, seed, spec)
    else:
        from ..data.labels import labels_of
        from ..train.budget import estimate_prior_fit

        labels = labels_of(dataset) if pipe.label_conditioned else None
        expected = estimate_prior_fit(pipe, dataset, max_images, False, None if labels is None else labels.index)
        click.echo(
            f"fitting a {prior_name} prior to {expected.images:,} images' posteriors ({expected.fit_note()}) ...", err=True
        )
        stats = fit_prior(pipe, dataset, max_images, seed=seed)
        record, fitted, what = "prior_fit", int(stats.get("prior_fit_images", 0)), f"a {prior_name} prior"
    extra = {**pipe.file_metadata.get("extra", {}), record: {"data": data_name, "split": split, **stats}}
    save_pipeline(pipe, out, extra=extra)
    took = time.perf_counter() - start
    click.echo(safe_text(f"fitted {what} to {fitted} {data_name} {split} images in {took:.1f} s; wrote {out}"))
