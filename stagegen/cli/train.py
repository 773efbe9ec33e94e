"""`stagegen train` and `stagegen fit-prior`."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path

import click

from .app import SEED, cli


def _seconds(text: str | None) -> float | None:
    """'90', '90s', '2m', '1.5h' -> seconds."""
    if text is None:
        return None
    units = {"s": 1, "m": 60, "h": 3600}
    value, unit = (text[:-1], text[-1]) if text and text[-1] in units else (text, "s")
    try:
        seconds = float(value) * units[unit]
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is not a duration: use seconds (90), or 90s, 2m, 1.5h", param_hint="--time-budget"
        ) from None
    if not seconds > 0 or seconds == float("inf"):
        raise click.BadParameter(f"{text!r}: the time budget must be a positive, finite duration", param_hint="--time-budget")
    return seconds


@cli.command()
@click.option("--preset", "preset_name", help="starting configuration (see `stagegen presets`); default msvae-digits")
@click.option("--stages", help="comma-separated stage types, trunk first, e.g. vae,resnet-l1")
@click.option(
    "--prior", "prior_name", help="latent prior fitted after training: normal, gmm, latent-vae (see `stagegen plugins`)"
)
@click.option("--data", "data_name", help="dataset name (see `stagegen datasets`); default: the embedded digits")
@click.option("--data-root", type=click.Path(), help="where the dataset's files are")
@click.option("--split", help="dataset split to train on (train, val, test)")
@click.option("--cache-dir", type=click.Path(), help="decoded-image cache folder")
@click.option("--image-size", type=int, help="final image resolution")
@click.option("--channels", type=int, help="1 (grayscale) or 3 (RGB)")
@click.option("--steps", type=int, help="optimiser steps")
@click.option("--time-budget", callback=lambda ctx, param, v: _seconds(v), help="finish early after this long: 90, 90s, 2m, 1h")
@click.option("--batch-size", type=int, help="images per step and process")
@click.option("--lr", type=float, help="learning rate")
@click.option("--seed", type=SEED, help="random seed (a CPU run is repeatable bit for bit)")
@click.option("--device", help="auto, cpu, cuda, cuda:1, ...")
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16"]), help="auto: bf16 on CUDA, fp32 on CPU")
@click.option("--ema", "ema_decay", type=float, help="EMA decay of generator weights, e.g. 0.999")
@click.option("--num-workers", type=int, help="DataLoader worker processes")
@click.option("--compile/--no-compile", "compile_", default=None, help="torch.compile the pipeline")
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
    help="set any option: resnet-l1.blocks=3, 0.latent_dim=64, train.grad_clip=1.0",
)
@click.option("--out", type=click.Path(file_okay=False), help="run directory (default runs/<preset-or-stages>-<time>)")
@click.option(
    "--resume", type=click.Path(exists=True, file_okay=False), help="continue the run in this directory from its last checkpoint"
)
@click.option("--progress/--no-progress", default=None, help="show a progress bar")
def train(
    preset_name,
    stages,
    prior_name,
    data_name,
    data_root,
    split,
    cache_dir,
    image_size,
    channels,
    steps,
    time_budget,
    batch_size,
    lr,
    seed,
    device,
    precision,
    ema_decay,
    num_workers,
    compile_,
    config_file,
    options,
    out,
    resume,
    progress,
):
    """Train a pipeline and write it, with sample grids and metrics, to a run directory."""
    from ..presets import compose_run_config
    from ..train import TrainingInterrupted, TrainingStopped
    from ..train import resume as resume_run
    from ..train import train as run_training
    from ..train.lock import RunLocked

    try:
        if resume:
            fixed = {
                "--preset": preset_name,
                "--stages": stages,
                "--prior": prior_name,
                "--data": data_name,
                "--data-root": data_root,
                "--split": split,
                "--cache-dir": cache_dir,
                "--image-size": image_size,
                "--channels": channels,
                "--batch-size": batch_size,
                "--lr": lr,
                "--seed": seed,
                "--precision": precision,
                "--ema": ema_decay,
                "--compile/--no-compile": compile_,
                "--config": config_file,
                "-O": options or None,
                "--out": out,
            }
            given = [flag for flag, value in fixed.items() if value is not None]
            if given:
                raise click.UsageError(
                    f"{', '.join(given)} cannot be changed when resuming: the run continues with the settings in its "
                    "config.json. Only --steps, --time-budget, --device, --num-workers and --progress apply to a resumed "
                    "run; start a new run (without --resume) to change the others"
                )
            overrides = {
                k: v
                for k, v in {
                    "progress": progress,
                    "device": device,
                    "num_workers": num_workers,
                    "time_budget": time_budget,
                }.items()
                if v is not None
            }
            result = resume_run(resume, steps=steps, **overrides)
        else:
            config = compose_run_config(
                preset_name,
                config_file,
                stages.split(",") if stages else None,
                list(options),
                prior_name,
                data__name=data_name,
                data__root=data_root,
                data__split=split,
                data__cache_dir=cache_dir,
                pipeline__image_size=image_size,
                pipeline__channels=channels,
                train__steps=steps,
                train__time_budget=time_budget,
                train__batch_size=batch_size,
                train__lr=lr,
                train__seed=seed,
                train__device=device,
                train__precision=precision,
                train__ema_decay=ema_decay,
                train__num_workers=num_workers,
                train__compile=compile_,
                train__progress=progress,
            )
            name = (preset_name or "-".join(config.pipeline.stage_names)) if not stages else stages.replace(",", "-")
            run_dir = Path(out) if out else Path("runs") / f"{name}-{datetime.now():%Y%m%d-%H%M%S}"
            result = run_training(config, run_dir)
    except TrainingInterrupted as exc:
        click.echo(str(exc), err=True)
        sys.exit(130)
    except (TrainingStopped, RunLocked) as exc:
        raise click.ClickException(str(exc)) from None
    if result.pipeline_path is not None:
        last = result.losses[-1] if result.losses else {}
        budget = " (the time budget ended the run early)" if result.stopped_by_budget else ""
        click.echo(f"trained {result.steps} steps{budget}; final loss {last.get('loss', float('nan')):.4f}")
        click.echo(f"pipeline:        {result.pipeline_path}")
        click.echo(f"samples:         {result.run_dir / 'samples.png'} (one row per stage, coarse to fine)")
        click.echo(f"reconstructions: {result.run_dir / 'reconstructions.png'} (input row, then each stage)")


@cli.command(name="fit-prior")
@click.argument("pipeline", type=click.Path(exists=True))
@click.option("--prior", "prior_name", default="gmm", show_default=True, help="prior type (see `stagegen plugins`)")
@click.option(
    "-O",
    "--option",
    "options",
    multiple=True,
    metavar="KEY=VALUE",
    help="prior option, e.g. components=20 or prior.components=20",
)
@click.option("--data", "data_name", default="digits", show_default=True, help="dataset the pipeline was trained on")
@click.option("--data-root", type=click.Path(), help="where the dataset's files are")
@click.option("--split", default="train", show_default=True, help="split whose posteriors the prior is fitted to")
@click.option(
    "--max-images",
    type=click.IntRange(min=1),
    default=20_000,
    show_default=True,
    help="at most this many images (a seeded subset)",
)
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("-o", "--out", required=True, type=click.Path(dir_okay=False), help="the new pipeline file")
def fit_prior_cmd(pipeline, prior_name, options, data_name, data_root, split, max_images, seed, out):
    """Fit a latent prior to a trained pipeline's posteriors; write the pipeline with it."""
    import time

    from .. import load
    from ..data import open_dataset
    from ..pipeline_file import save_pipeline
    from ..presets import parse_value
    from ..prior import fit_prior

    pipe = load(pipeline)
    prior_options = {}
    for assignment in options:
        key, sep, text = assignment.partition("=")
        if not sep:
            raise click.BadParameter(f"{assignment!r} must look like KEY=VALUE, e.g. components=20", param_hint="-O")
        prior_options[key.removeprefix("prior.")] = parse_value(text)
    pipe.set_prior({"type": prior_name, "options": prior_options})
    dataset = open_dataset(data_name, data_root, split, pipe.config.image_size, pipe.config.channels)
    start = time.perf_counter()
    stats = fit_prior(pipe, dataset, max_images, seed=seed)
    extra = {**pipe.file_metadata.get("extra", {}), "prior_fit": {"data": data_name, "split": split, **stats}}
    save_pipeline(pipe, out, extra=extra)
    click.echo(
        f"fitted a {prior_name} prior to {int(stats.get('prior_fit_images', 0))} {data_name} {split} images "
        f"in {time.perf_counter() - start:.1f} s; wrote {out}"
    )
