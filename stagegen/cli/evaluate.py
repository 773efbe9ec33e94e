"""`stagegen eval` and `stagegen compare`: metrics per stage."""

from __future__ import annotations

import functools
import json
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

import click

from .app import SEED, cli, data_options, grid_path, pipeline_data, real_for


def _chosen_metrics(text: str | None) -> tuple[tuple[str, ...], set[str]]:
    """The requested metric names (default: those on by default) and the resources they need."""
    from ..metrics import metric_names
    from ..plugin.manager import get_plugin_manager

    names = tuple(m.strip() for m in text.split(",") if m.strip()) if text else metric_names(defaults_only=True)
    registry = get_plugin_manager().metrics
    unknown = [m for m in names if m not in registry]
    if unknown:
        raise click.BadParameter(
            f"unknown metric(s) {', '.join(unknown)}; registered: {', '.join(registry.names())}", param_hint="--metrics"
        )
    return names, {need for m in names for need in registry.get(m).needs}


@dataclass
class Evaluation:
    """What `eval` and `compare` share: the data, the metrics and what they need, the samples."""

    data_name: str | None
    data_root: str | None
    split: str
    metrics: str | None
    n_samples: int | None
    limit: int | None
    fid_features: str
    classifier: str
    temperature: float
    mnist_root: str | None
    inception_weights: str | None
    tf_inception_weights: str | None
    resource_options: tuple[str, ...]
    seed: int
    device: str


def _evaluation_options(command):
    """The options `eval` and `compare` share, handed to ``command`` as one ``evaluation``."""

    @functools.wraps(command)
    def with_evaluation(**kwargs):
        shared = {name: kwargs.pop(name) for name in Evaluation.__dataclass_fields__}
        return command(evaluation=Evaluation(**shared), **kwargs)

    return data_options(_eval_options(with_evaluation))


def _resources(needs, e: Evaluation, data_name: str, data_root: str | None):
    """The resources the chosen metrics need, from the plugins that provide them, for this data."""
    from ..config.overrides import parse_value
    from ..metrics.resources import INPUTS, provide_resources

    options = {
        "classifier": e.classifier,
        "fid_features": e.fid_features,
        "mnist_root": e.mnist_root,
        "inception_weights": e.inception_weights,
        "tf_inception_weights": e.tf_inception_weights,
        "device": e.device,
    }
    named = set(options)  # the built-in resources' options: each a name or a path
    for assignment in e.resource_options:
        key, sep, value = assignment.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{assignment!r} is not KEY=VALUE", param_hint="--resource-option")
        key, value = key.strip(), parse_value(value)
        if key in named and not isinstance(value, str):
            raise click.BadParameter(f"{key} takes a name or a path, not {value!r}", param_hint="--resource-option")
        options[key] = value
    wanted = {need for need in needs if need not in INPUTS}
    return provide_resources(wanted, data_name, data_root, options, note=lambda text: click.echo(f"note: {text}", err=True))


def _eval_options(f):
    f = click.option(
        "--metrics",
        help="comma-separated metric names (default: psnr, ssim, sharpness, swd, realism, spectrum, fid, precision_recall, "
        "tf_fid and kid (where the TF-Inception weights are), recognisability, label_recognisability (a pipeline with "
        "a prior per label) and any plugin metric on by default; "
        "`stagegen plugins` lists them all, lpips too)",
    )(f)
    f = click.option(
        "--samples", "n_samples", type=click.IntRange(min=1), help="prior samples per stage (default: as many as real images)"
    )(f)
    f = click.option(
        "--limit", type=click.IntRange(min=1), default=2000, show_default=True, help="real images used (a seeded subset)"
    )(f)
    f = click.option(
        "--fid-features",
        type=click.Choice(["auto", "mnist", "digits", "inception"]),
        default="auto",
        show_default=True,
        help="auto: the digit classifier for mnist/digits data, Inception (where its weights are) for other images",
    )(f)
    f = click.option(
        "--classifier",
        type=click.Choice(["auto", "mnist", "digits", "none"]),
        default="auto",
        show_default=True,
        help="digit classifier for recognisability (auto: the one matching --data)",
    )(f)
    f = click.option("--temperature", type=float, default=1.0, show_default=True, help="prior temperature of the samples")(f)
    f = click.option(
        "--mnist-root", type=click.Path(), help="MNIST files for the mnist classifier (default: --data-root of mnist data)"
    )(f)
    f = click.option("--inception-weights", type=click.Path(), help="Inception-v3 weights file for --fid-features inception")(f)
    f = click.option(
        "--tf-inception-weights",
        type=click.Path(),
        help="the TF-FID Inception weights (weights-inception-2015-12-05-6726825d.pth) for the tf_fid and kid metrics "
        "(default: torch-fidelity's download location)",
    )(f)
    f = click.option(
        "--resource-option",
        "resource_options",
        multiple=True,
        metavar="KEY=VALUE",
        help="an option for the plugins that provide metric resources (see `stagegen plugins`)",
    )(f)
    f = click.option("--seed", type=SEED, default=0, show_default=True)(f)
    f = click.option("--device", default="cpu", show_default=True)(f)
    return f


@cli.command(name="eval")
@click.argument("pipeline", type=click.Path(exists=True))
@_evaluation_options
@click.option("--json", "as_json", is_flag=True, help="print the report as JSON")
def eval_(pipeline, evaluation: Evaluation, as_json):
    """Metrics per stage: PSNR/SSIM of reconstructions; sharpness, SWD, FID and recognisability of
    samples; and any metric a plugin registers."""
    from .. import load
    from ..metrics import evaluate, format_table
    from ..report import record_eval
    from ..train.lock import RunLocked, run_lock_for

    e = evaluation
    metrics, needs = _chosen_metrics(e.metrics)
    pipe = load(pipeline, device=e.device)
    data_name, data_root = pipeline_data(pipe, e.data_name, e.data_root)
    real, real_labels = real_for(pipe, data_name, data_root, e.split, e.limit, e.seed)
    resources = _resources(needs, e, data_name, data_root)
    _say_what_is_measured(pipe, metrics, resources, e.n_samples or len(real), len(real))
    report = evaluate(
        pipe, real, metrics, e.n_samples, e.seed, temperature=e.temperature, resources=resources, real_labels=real_labels
    )
    report["data"] = f"{data_name}, {e.split} split"
    click.echo(json.dumps(report, indent=2) if as_json else format_table(report, title=str(pipeline)))
    command = "stagegen " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    try:
        with run_lock_for(pipeline):  # eval.json is the run's: not while another command writes there
            saved = record_eval(pipeline, report, command)
    except RunLocked as exc:
        click.echo(f"note: the evaluation is not kept beside the run for `stagegen report`: {exc}", err=True)
        return
    if saved is not None:
        click.echo(f"kept beside the run for `stagegen report`: {saved}", err=True)


def _say_what_is_measured(pipe, metrics, resources, n_samples: int, n_real: int) -> None:
    """What is measured, and what is left out and why, on stderr before the work."""
    from ..metrics.evaluate import label_sample_count, runnable_metrics

    runnable, left_out = runnable_metrics(pipe, metrics, resources)
    for name, why in left_out.items():
        click.echo(f"note: {name} is left out: {why}", err=True)
    per_label = label_sample_count(pipe, runnable, n_samples)
    per_label = f", and {per_label} of each of its {len(pipe.labels)} labels" if per_label else ""
    click.echo(
        f"evaluating {', '.join(runnable)} on {n_real} real images and {n_samples} samples per stage{per_label} ...",
        err=True,
    )


@cli.command(name="compare")
@click.argument("pipelines", nargs=-1, required=True, type=click.Path(exists=True))
@_evaluation_options
@click.option(
    "-o", "--out", required=True, type=click.Path(), callback=grid_path, help="figure .png (also writes -samples.png, .md, .json)"
)
@click.option("--names", help="comma-separated labels for the pipelines")
def compare_cmd(pipelines, evaluation: Evaluation, out, names):
    """Compare pipelines: reconstruction and sample figures plus a metrics table."""
    from .. import load
    from ..report.compare import compare

    e = evaluation
    labels = names.split(",") if names else [Path(p).parent.name or Path(p).stem for p in pipelines]
    if len(labels) != len(pipelines):
        raise click.BadParameter(f"{len(labels)} names for {len(pipelines)} pipelines", param_hint="--names")
    loaded = {label: load(p, device=e.device) for label, p in zip(labels, pipelines)}
    first = next(iter(loaded.values()))
    data_name, data_root = pipeline_data(first, e.data_name, e.data_root)
    real, real_labels = real_for(first, data_name, data_root, e.split, e.limit, e.seed)
    metrics, needs = _chosen_metrics(e.metrics)
    resources = _resources(needs, e, data_name, data_root)
    compare(
        loaded,
        real,
        out,
        seed=e.seed,
        real_labels=real_labels,
        metrics=metrics,
        n_samples=e.n_samples,
        temperature=e.temperature,
        resources=resources,
    )
    click.echo(Path(out).with_suffix(".md").read_text())
