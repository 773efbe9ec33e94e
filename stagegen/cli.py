"""The `stagegen` command: a thin click layer over the Python API."""

from __future__ import annotations

import json
import os
import sys
from datetime import datetime
from pathlib import Path

import click

from .text import safe_text


SEED = click.IntRange(0, 2**63 - 1)  # what every generator we seed accepts
DEBUG_HINT = "run it again with --debug (or STAGEGEN_DEBUG=1) to see the traceback"


def _debugging(ctx: click.Context | None = None) -> bool:
    if os.environ.get("STAGEGEN_DEBUG", "") not in ("", "0"):
        return True
    return bool(ctx is not None and ctx.find_root().params.get("debug"))


def _one_line(text: str) -> str:
    """Messages go out on one line, control characters escaped (a message may quote a file's text)."""
    return safe_text(" ".join(str(text).split()))


class _Errors(click.Group):
    """Every failure is one line on stderr, never a traceback unless asked for.

    Known user errors (bad input, files, plugins, data, weights, the machine) say what was wrong
    and what to do. Anything else is a bug in stagegen or a plugin: one line naming the
    exception plus how to see its traceback, so a bug is never dressed up as a user error."""

    def invoke(self, ctx):
        from .data.registry import DataError
        from .losses import MissingWeightsError
        from .plugins import PluginError

        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except BrokenPipeError:  # `stagegen info ... | head`: the reader left, nothing more to say
            sys.stdout = open(os.devnull, "w")
            sys.exit(0)
        except (ValueError, PluginError, DataError, MissingWeightsError) as exc:
            if _debugging(ctx):
                raise
            raise click.ClickException(_one_line(exc)) from None
        except OSError as exc:
            if _debugging(ctx):
                raise
            if exc.errno is None:  # ours, with its own message (no pipeline file at ...)
                raise click.ClickException(_one_line(exc)) from None
            # the machine said no: a full disk, a permission, a folder where a file should be
            where = f" {exc.filename}:" if exc.filename else ""
            raise click.ClickException(_one_line(f"cannot write or read{where} {exc.strerror or exc}; check the path, "
                                                 "its permissions and the free space there")) from None
        except Exception as exc:
            if _debugging(ctx):
                raise
            raise click.ClickException(_one_line(f"unexpected {type(exc).__name__}: {exc} (a bug in stagegen or a plugin; "
                                                 f"{DEBUG_HINT})")) from None


@click.group(cls=_Errors, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="stagegen")
@click.option("--debug", is_flag=True, help="show the Python traceback of an error (also STAGEGEN_DEBUG=1)")
def cli(debug):
    """Coarse-to-fine image generation: a VAE trunk plus a chain of refiner plugins."""


# ---------------------------------------------------------------------------- train


def _seconds(text: str | None) -> float | None:
    """'90', '90s', '2m', '1.5h' -> seconds."""
    if text is None:
        return None
    units = {"s": 1, "m": 60, "h": 3600}
    value, unit = (text[:-1], text[-1]) if text and text[-1] in units else (text, "s")
    try:
        seconds = float(value) * units[unit]
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a duration: use seconds (90), or 90s, 2m, 1.5h", param_hint="--time-budget")
    if not seconds > 0 or seconds == float("inf"):
        raise click.BadParameter(f"{text!r}: the time budget must be a positive, finite duration", param_hint="--time-budget")
    return seconds


@cli.command()
@click.option("--preset", "preset_name", help="starting configuration (see `stagegen presets`); default msvae-digits")
@click.option("--stages", help="comma-separated stage types, trunk first, e.g. vae,resnet-l1")
@click.option("--prior", "prior_name", help="latent prior fitted after training: normal, gmm, latent-vae (see `stagegen plugins`)")
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
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False), help="JSON or TOML file with pipeline/train/data sections")
@click.option("-O", "--option", "options", multiple=True, metavar="KEY=VALUE", help="set any option: resnet-l1.blocks=3, 0.latent_dim=64, train.grad_clip=1.0")
@click.option("--out", type=click.Path(file_okay=False), help="run directory (default runs/<preset-or-stages>-<time>)")
@click.option("--resume", type=click.Path(exists=True, file_okay=False), help="continue the run in this directory from its last checkpoint")
@click.option("--progress/--no-progress", default=None, help="show a progress bar")
def train(preset_name, stages, prior_name, data_name, data_root, split, cache_dir, image_size, channels, steps, time_budget,
          batch_size, lr, seed, device, precision, ema_decay, num_workers, compile_, config_file, options, out, resume, progress):
    """Train a pipeline and write it, with sample grids and metrics, to a run directory."""
    from .presets import compose_run_config
    from .train import TrainingInterrupted, TrainingStopped
    from .train import resume as resume_run
    from .train import train as run_training
    from .train.lock import RunLocked

    try:
        if resume:
            fixed = {"--preset": preset_name, "--stages": stages, "--prior": prior_name, "--data": data_name,
                     "--data-root": data_root, "--split": split, "--cache-dir": cache_dir, "--image-size": image_size,
                     "--channels": channels, "--batch-size": batch_size, "--lr": lr, "--seed": seed, "--precision": precision,
                     "--ema": ema_decay, "--compile/--no-compile": compile_, "--config": config_file,
                     "-O": options or None, "--out": out}
            given = [flag for flag, value in fixed.items() if value is not None]
            if given:
                raise click.UsageError(
                    f"{', '.join(given)} cannot be changed when resuming: the run continues with the settings in its "
                    "config.json. Only --steps, --time-budget, --device, --num-workers and --progress apply to a resumed "
                    "run; start a new run (without --resume) to change the others"
                )
            overrides = {k: v for k, v in {"progress": progress, "device": device, "num_workers": num_workers,
                                           "time_budget": time_budget}.items() if v is not None}
            result = resume_run(resume, steps=steps, **overrides)
        else:
            config = compose_run_config(
                preset_name, config_file, stages.split(",") if stages else None, list(options), prior_name,
                data__name=data_name, data__root=data_root, data__split=split, data__cache_dir=cache_dir,
                pipeline__image_size=image_size, pipeline__channels=channels,
                train__steps=steps, train__time_budget=time_budget, train__batch_size=batch_size, train__lr=lr, train__seed=seed, train__device=device,
                train__precision=precision, train__ema_decay=ema_decay, train__num_workers=num_workers,
                train__compile=compile_, train__progress=progress,
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


# ---------------------------------------------------------------------------- sample


@cli.command()
@click.argument("pipeline", type=click.Path(exists=True))
@click.option("-n", "--num", "n", type=click.IntRange(min=1), default=16, show_default=True, help="number of images")
@click.option("-o", "--out", required=True, type=click.Path(), help="a grid image (.png, .jpg, .webp, ...), or a folder (no suffix) for one file per image")
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--temperature", type=float, default=1.0, show_default=True, help="scale of the prior latents")
@click.option("--all-stages", is_flag=True, help="one grid row per stage (coarse to fine)")
@click.option("--device", default="cpu", show_default=True)
def sample(pipeline, n, out, seed, temperature, all_stages, device):
    """Draw images from a trained pipeline."""
    from . import load
    from .images import image_format, save_grid, save_image

    out = Path(out)
    if out.suffix:
        image_format(out)  # an unwritable name fails before the work, not after it
    elif out.exists() and not out.is_dir():
        raise click.BadParameter(f"{out} is a file; give a folder (no suffix) for one image per file, or a grid name such as {out}.png",
                                 param_hint="-o")
    pipe = load(pipeline, device=device)
    stages = pipe.sample(n, seed=seed, temperature=temperature, return_stages=True)
    if out.suffix:  # a grid, in the format the suffix names
        rows = stages if all_stages else [stages[-1]]
        save_grid(rows, out)
        click.echo(f"wrote {out} ({len(rows)} row(s) x {n} images)")
    else:
        out.mkdir(parents=True, exist_ok=True)
        chosen = list(enumerate(stages)) if all_stages else [(len(stages) - 1, stages[-1])]
        for s, images in chosen:
            for i, image in enumerate(images):
                save_image(image, out / (f"stage{s}_{i:05d}.png" if all_stages else f"{i:05d}.png"))
        click.echo(f"wrote {n * len(chosen)} images to {out}")


# ---------------------------------------------------------------------------- fit-prior


@cli.command(name="fit-prior")
@click.argument("pipeline", type=click.Path(exists=True))
@click.option("--prior", "prior_name", default="gmm", show_default=True, help="prior type (see `stagegen plugins`)")
@click.option("-O", "--option", "options", multiple=True, metavar="KEY=VALUE", help="prior option, e.g. components=20 or prior.components=20")
@click.option("--data", "data_name", default="digits", show_default=True, help="dataset the pipeline was trained on")
@click.option("--data-root", type=click.Path(), help="where the dataset's files are")
@click.option("--split", default="train", show_default=True, help="split whose posteriors the prior is fitted to")
@click.option("--max-images", type=click.IntRange(min=1), default=20_000, show_default=True, help="at most this many images (a seeded subset)")
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("-o", "--out", required=True, type=click.Path(dir_okay=False), help="the new pipeline file")
def fit_prior_cmd(pipeline, prior_name, options, data_name, data_root, split, max_images, seed, out):
    """Fit a latent prior to a trained pipeline's posteriors; write the pipeline with it."""
    import time

    from . import load
    from .data import open_dataset
    from .pipeline_file import save_pipeline
    from .presets import parse_value
    from .prior import fit_prior

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
    click.echo(f"fitted a {prior_name} prior to {int(stats.get('prior_fit_images', 0))} {data_name} {split} images "
               f"in {time.perf_counter() - start:.1f} s; wrote {out}")


# ---------------------------------------------------------------------------- evaluation


def _grid_path(ctx, param, value):
    """-o of a figure: a name whose suffix is an image format, checked before any work is done."""
    from .images import image_format

    if value is not None:
        try:
            image_format(value)
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None
    return value


def _data_options(f):
    f = click.option("--data", "data_name", default="digits", show_default=True, help="dataset name")(f)
    f = click.option("--data-root", type=click.Path(), help="where the dataset's files are")(f)
    f = click.option("--split", default="test", show_default=True, help="train, val or test")(f)
    return f


def _real(pipe, data_name, data_root, split, n, seed=0):
    from .compare import real_images

    return real_images(data_name, data_root, split, pipe.config.image_size, pipe.config.channels, n, seed=seed)


@cli.command()
@click.argument("pipeline", type=click.Path(exists=True))
@_data_options
@click.option("-n", "--num", "n", type=click.IntRange(min=1), default=10, show_default=True, help="images to reconstruct")
@click.option("-o", "--out", required=True, type=click.Path(), callback=_grid_path, help="output image (.png, ...): input row, then one row per stage")
@click.option("--seed", type=SEED, default=0, show_default=True, help="which images (a seeded subset)")
@click.option("--device", default="cpu", show_default=True)
def reconstruct(pipeline, data_name, data_root, split, n, out, seed, device):
    """Reconstruct dataset images: input row, then each stage (the paper's Figures 4 to 7)."""
    from . import load
    from .images import save_grid

    pipe = load(pipeline, device=device)
    x = _real(pipe, data_name, data_root, split, n, seed)
    save_grid([x, *pipe.reconstruct(x, return_stages=True)], out)
    click.echo(f"wrote {out} (input row + {len(pipe.specs)} stage rows x {len(x)} images)")


@cli.command()
@click.argument("pipeline", type=click.Path(exists=True))
@_data_options
@click.option("--steps", type=click.IntRange(min=2), default=10, show_default=True, help="images per interpolation row")
@click.option("--rows", type=click.IntRange(min=1), default=4, show_default=True, help="number of interpolations")
@click.option("--from-data/--random", "from_data", default=False, help="between encoded dataset images, or random latents")
@click.option("-o", "--out", required=True, type=click.Path(), callback=_grid_path, help="output image (.png, ...)")
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--all-stages", is_flag=True, help="show every stage's output (rows grouped per interpolation)")
@click.option("--device", default="cpu", show_default=True)
def interpolate(pipeline, data_name, data_root, split, steps, rows, from_data, out, seed, all_stages, device):
    """Spherical interpolation in latent space, between dataset images or random points."""
    from . import load
    from .images import save_grid

    pipe = load(pipeline, device=device)
    if from_data:
        ends = pipe.encode(_real(pipe, data_name, data_root, split, 2 * rows, seed)).mean
    else:
        import torch

        ends = pipe.prior.sample(2 * rows, torch.Generator().manual_seed(seed)).to(pipe.device)
    grid_rows = []
    for r in range(rows):
        stages = pipe.interpolate(ends[2 * r], ends[2 * r + 1], steps=steps, return_stages=True)
        grid_rows += stages if all_stages else [stages[-1]]
    save_grid(grid_rows, out)
    click.echo(f"wrote {out} ({rows} interpolations of {steps} images)")


def _classifier_name(choice: str, data_name: str) -> str | None:
    """auto: the digit classifier of a digit dataset; nothing for other images."""
    if choice == "auto":
        return data_name if data_name in ("mnist", "digits") else None
    return None if choice == "none" else choice


def _measures(metrics, data_name, data_root, classifier, fid_features, mnist_root, inception_weights):
    """(classifier for recognisability, FID feature extractor) for these metrics and data.
    One trained classifier serves both where they agree; the MNIST files default to the data root."""
    from .metrics.classifiers import Classifier
    from .metrics.fid import ClassifierFeatures, InceptionFeatures

    mnist_root = mnist_root or (data_root if data_name == "mnist" else None)
    name = _classifier_name(classifier, data_name)
    model = Classifier(name, mnist_root) if name and "recognisability" in metrics else None
    features = None
    if "fid" in metrics:
        fid_name = _classifier_name(fid_features, data_name) if fid_features == "auto" else fid_features
        if fid_name in ("mnist", "digits"):
            features = ClassifierFeatures(classifier=model if model is not None and model.name == fid_name else Classifier(fid_name, mnist_root))
        elif fid_name == "inception" or fid_features == "auto":
            from .losses import MissingWeightsError

            try:
                features = InceptionFeatures(inception_weights)
            except MissingWeightsError as exc:
                if fid_features != "auto":
                    raise
                click.echo(f"note: FID skipped ({exc})", err=True)
    return model, features


def _lpips(metrics):
    if "lpips" not in metrics:
        return None
    from .losses import LPIPSFeatures

    return LPIPSFeatures("alex", pretrained=True)


def _eval_options(f):
    f = click.option("--metrics", default="psnr,ssim,sharpness,swd,fid,recognisability", show_default=True,
                     help="comma-separated: psnr, ssim, sharpness, swd, fid, recognisability, lpips")(f)
    f = click.option("--samples", "n_samples", type=click.IntRange(min=1), help="prior samples per stage (default: as many as real images)")(f)
    f = click.option("--limit", type=click.IntRange(min=1), default=2000, show_default=True, help="real images used (a seeded subset)")(f)
    f = click.option("--fid-features", type=click.Choice(["auto", "mnist", "digits", "inception"]), default="auto", show_default=True,
                     help="auto: the digit classifier for mnist/digits data, Inception (where its weights are) for other images")(f)
    f = click.option("--classifier", type=click.Choice(["auto", "mnist", "digits", "none"]), default="auto", show_default=True,
                     help="digit classifier for recognisability (auto: the one matching --data)")(f)
    f = click.option("--temperature", type=float, default=1.0, show_default=True, help="prior temperature of the samples")(f)
    f = click.option("--mnist-root", type=click.Path(), help="MNIST files for the mnist classifier (default: --data-root of mnist data)")(f)
    f = click.option("--inception-weights", type=click.Path(), help="Inception-v3 weights file for --fid-features inception")(f)
    f = click.option("--seed", type=SEED, default=0, show_default=True)(f)
    f = click.option("--device", default="cpu", show_default=True)(f)
    return f


@cli.command(name="eval")
@click.argument("pipeline", type=click.Path(exists=True))
@_data_options
@_eval_options
@click.option("--json", "as_json", is_flag=True, help="print the report as JSON")
def eval_(pipeline, data_name, data_root, split, metrics, n_samples, limit, fid_features, classifier, temperature, mnist_root,
          inception_weights, seed, device, as_json):
    """Metrics per stage: PSNR/SSIM of reconstructions; sharpness, SWD, FID and recognisability of samples."""
    from . import load
    from .metrics import evaluate, format_table

    metrics = tuple(m.strip() for m in metrics.split(",") if m.strip())
    pipe = load(pipeline, device=device)
    real = _real(pipe, data_name, data_root, split, limit, seed)
    model, features = _measures(metrics, data_name, data_root, classifier, fid_features, mnist_root, inception_weights)
    report = evaluate(pipe, real, metrics, n_samples, seed, features, _lpips(metrics), classifier=model, temperature=temperature)
    click.echo(json.dumps(report, indent=2) if as_json else format_table(report, title=str(pipeline)))


@cli.command(name="compare")
@click.argument("pipelines", nargs=-1, required=True, type=click.Path(exists=True))
@_data_options
@_eval_options
@click.option("-o", "--out", required=True, type=click.Path(), callback=_grid_path, help="figure .png (also writes -samples.png, .md, .json)")
@click.option("--names", help="comma-separated labels for the pipelines")
def compare_cmd(pipelines, data_name, data_root, split, metrics, n_samples, limit, fid_features, classifier, temperature,
                mnist_root, inception_weights, seed, device, out, names):
    """Compare pipelines: reconstruction and sample figures plus a metrics table."""
    from . import load
    from .compare import compare

    labels = names.split(",") if names else [Path(p).parent.name or Path(p).stem for p in pipelines]
    if len(labels) != len(pipelines):
        raise click.BadParameter(f"{len(labels)} names for {len(pipelines)} pipelines", param_hint="--names")
    loaded = {label: load(p, device=device) for label, p in zip(labels, pipelines)}
    first = next(iter(loaded.values()))
    real = _real(first, data_name, data_root, split, limit, seed)
    metrics = tuple(m.strip() for m in metrics.split(",") if m.strip())
    model, features = _measures(metrics, data_name, data_root, classifier, fid_features, mnist_root, inception_weights)
    compare(loaded, real, out, seed=seed, metrics=metrics, n_samples=n_samples, fid_features=features,
            lpips_network=_lpips(metrics), classifier=model, temperature=temperature)
    click.echo(Path(out).with_suffix(".md").read_text())


# ---------------------------------------------------------------------------- info / listings


@cli.command()
@click.argument("pipeline", type=click.Path(exists=True))
@click.option("--json", "as_json", is_flag=True, help="print the raw header document")
def info(pipeline, as_json):
    """Describe a pipeline file: format, versions, stages, config."""
    from .pipeline_file import read_header

    doc = read_header(pipeline)
    tensors = doc.pop("_tensors")
    doc.pop("_path")
    if as_json:  # JSON escapes control characters itself
        click.echo(json.dumps(doc, indent=2))
        return
    say = lambda line: click.echo(safe_text(line))  # noqa: E731  the text comes from the file: never let it drive the terminal
    cfg = doc["config"]
    size = cfg.get("image_size", "?")
    say(f"{pipeline}: stagegen pipeline, format {doc['format_version']}, written by stagegen {doc.get('stagegen_version', '?')} "
        f"on {doc.get('created', '?')}")
    say(f"images: {cfg.get('channels', '?')} channel(s), {size}x{size}; {len(tensors)} tensors")
    specs = cfg.get("stages") if isinstance(cfg.get("stages"), list) else []
    for rec, spec in zip(doc["stages"], specs):
        spec = spec if isinstance(spec, dict) else {}
        extra = "" if rec["index"] == 0 else (f", loss weight {spec.get('loss_weight', '?')}, "
                                              f"{'detached' if spec.get('detach_input') else 'joint'}")
        r = rec.get("resolution", "?")
        say(f"  stage {rec['index']}: {rec.get('type', '?')} ({rec.get('kind', '?')}) at {r}x{r} from {rec.get('package', '?')} "
            f"{rec.get('package_version', '')}{extra}")
        options = spec.get("options") if isinstance(spec.get("options"), dict) else {}
        for k, v in options.items():
            say(f"      {k} = {json.dumps(v)}")
    prior = cfg.get("prior") if isinstance(cfg.get("prior"), dict) else {"type": "normal", "options": {}}
    prior_options = prior.get("options") if isinstance(prior.get("options"), dict) else {}
    options = ", ".join(f"{k}={json.dumps(v)}" for k, v in prior_options.items())
    say(f"  prior: {prior.get('type', '?')}" + (f" ({options})" if options else "") + "; latents are drawn from it when sampling")
    if doc.get("extra"):
        say("extra: " + json.dumps(doc["extra"]))


@cli.command()
@click.option("--json", "as_json", is_flag=True)
def plugins(as_json):
    """List every registered stage type and prior with its kind, provider, version and options."""
    from .plugins import get_plugin_manager

    manager = get_plugin_manager()
    rows = []
    for registry, kind_of in ((manager.stages, lambda t: t.kind), (manager.priors, lambda t: "prior")):
        for name in registry.names():
            st = registry.get(name)
            p = registry.provider(name)
            opts = {
                k: {"default": f.get_default(call_default_factory=True), "description": f.description or ""}
                for k, f in st.options.model_fields.items()
            }
            rows.append({"name": name, "kind": kind_of(st), "package": p.package, "version": p.version, "plugin": p.plugin,
                         "description": st.description, "options": opts})
    if as_json:
        click.echo(json.dumps(rows, indent=2, default=str))
        return
    for r in rows:
        click.echo(f"{r['name']} ({r['kind']}) from {r['package']} {r['version']}: {r['description']}")
        for k, o in r["options"].items():
            click.echo(f"    {k} = {json.dumps(o['default'], default=str)}  {o['description']}")


@cli.command()
def datasets():
    """List registered datasets with their options."""
    from .plugins import get_plugin_manager

    registry = get_plugin_manager().datasets
    for name in registry.names():
        dt = registry.get(name)
        p = registry.provider(name)
        root = " (needs --data-root)" if dt.needs_root else ""
        click.echo(f"{name} from {p.package} {p.version}{root}: {dt.description}")
        for k, f in dt.options.model_fields.items():
            click.echo(f"    {k} = {json.dumps(f.get_default(call_default_factory=True), default=str)}  {f.description or ''}")


@cli.command()
@click.argument("name", required=False)
def presets(name):
    """List presets, or print one as JSON."""
    from .presets import PRESETS, preset

    if name:
        click.echo(json.dumps(preset(name), indent=2))
        return
    for key, (description, raw) in PRESETS.items():
        stages = ",".join(s["type"] for s in raw["pipeline"]["stages"])
        click.echo(f"{key:15s} {stages:45s} {description}")


def main():
    cli(prog_name="stagegen")


if __name__ == "__main__":
    main()
